"""Secrets out of command lines: what the registry of holders writes as a process's program,
and what every reader shows of it (the page, the commands, the log lines), hidden as ``***``.

A command line is read word by word (the process's own arguments, or the words of a line
another process wrote). Hidden:

- a URL's password, the whole of it up to the last ``@`` (a password may hold one), with a
  user or without (``redis://:secret@host``);
- the value of an option whose name says it holds a secret (``pass``, ``pwd``, ``secret``,
  ``token``, ``key`` anywhere in it: ``--password``, ``--db-pass``, ``--api-key``), given
  with ``=`` or as the next word, and of the MySQL client's ``-p`` (``-psecret``, ``-p
  secret``);
- ``NAME=value`` words and URL query parameters whose name says the same
  (``PASSWORD=secret``, ``?token=abc``).

More is hidden than strictly needed (a ``-p 8000`` port, a ``--key-file`` path): a program
column loses a word, a secret never leaks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

HIDDEN = "***"
_SECRET_WORDS = r"[\w.-]*(?:pass|pwd|secret|token|key)[\w.-]*"  # noqa: S105 (a pattern)
_OPTION = re.compile(rf"(?i)(--?{_SECRET_WORDS})(=.*)?")
_SHORT_PASSWORD = re.compile(r"-p(.+)")
_ONE_DASH_LONG = re.compile(r"(?i)-(?:pass|pwd)[\w.-]*")
_ASSIGNMENT = re.compile(rf"(?i)({_SECRET_WORDS})=.*")
_URL_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^:/@?#\s]*:)[^\s]*@")
_QUERY_PARAMETER = re.compile(rf"(?i)([?&;]{_SECRET_WORDS}=)[^&;#\s]*")


def _inline(word: str) -> str:
    """A word's URL passwords and secret query parameters hidden."""
    word = _URL_PASSWORD.sub(rf"\g<1>{HIDDEN}@", word)
    return _QUERY_PARAMETER.sub(rf"\g<1>{HIDDEN}", word)


def words(arguments: Iterable[str]) -> list[str]:
    """The arguments with every secret the module describes replaced by ``***``."""
    hidden: list[str] = []
    value_next = False
    for word in arguments:
        if value_next:
            hidden.append(HIDDEN)
            value_next = False
            continue
        option = _OPTION.fullmatch(word)
        if word == "-p" or _SHORT_PASSWORD.fullmatch(word):
            # -psecret; -p secret; -password secret (a long option with one dash)
            value_next = word == "-p" or _ONE_DASH_LONG.fullmatch(word) is not None
            hidden.append("-p" if word == "-p" else f"-p{HIDDEN}")
        elif option is not None:
            value_next = option.group(2) is None
            hidden.append(option.group(1) + ("" if value_next else f"={HIDDEN}"))
        elif (assignment := _ASSIGNMENT.fullmatch(word)) is not None:
            hidden.append(f"{assignment.group(1)}={HIDDEN}")
        else:
            hidden.append(_inline(word))
    return hidden


def command_line(text: str) -> str:
    """A command line written as one string, its secrets hidden (its words joined by one
    space)."""
    return " ".join(words(text.split()))
