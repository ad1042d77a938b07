"""The options of ``python -m pa_dbhealth`` and where its database URL comes from.

Every option has a help line, and ``--help`` names the environment variables read. The URL
comes from ``--url``, ``--url-file`` or ``$DATABASE_URL``: the last two keep the password off
the command line, where ``ps`` shows it to every user of the machine.
"""

from __future__ import annotations

import argparse
import os
import textwrap
from pathlib import Path
from typing import Any

from pa_dbhealth.core import cli_steps as commands
from pa_dbhealth.core import registry
from pa_dbhealth.core.options import Options

PROG = "python -m pa_dbhealth"
URL_VARIABLE = "DATABASE_URL"
WIDTH = 88  # descriptions are filled to this; the epilogs are laid out by hand

URL_ENVIRONMENT = f"""\
environment variables:
  {URL_VARIABLE}  the database URL when neither --url nor --url-file is given: it keeps
                the password off the command line, where `ps` shows it to every user"""
REGISTRY_ENVIRONMENT = f"""
  {registry.ENVIRONMENT_VARIABLE}
                the registry of holders that names each connection's process, instead
                of {registry.DEFAULT_DIRECTORY}; `off` reads none"""
EXIT_CODES = {
    "check": "0 healthy, 1 findings at or above --fail-level, 2 could not run",
    "connections": "0 listed (and killed), 2 could not run",
}


def _epilog(registry_too: bool, *actions: str) -> str:
    """The environment variables read and the exit codes, for the end of ``--help``."""
    codes = "".join(f"\nexit codes of {action}: {EXIT_CODES[action]}" for action in actions)
    return URL_ENVIRONMENT + (REGISTRY_ENVIRONMENT if registry_too else "") + "\n" + codes


URL_HELP = (
    "the database: mysql://USER:PASSWORD@HOST:PORT/NAME (mysql+pymysql://, postgresql://, "
    "...), with '@', '/', ':', '?' and '#' in the password percent-encoded (%%40, %%2F, ...). "
    f"A password here shows in `ps`: prefer --url-file or ${URL_VARIABLE}"
)
URL_FILE_HELP = (
    "read the URL from the first line of this file (readable by you alone: chmod 600), "
    "instead of --url or $" + URL_VARIABLE
)


def _whole(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= 100_000:
            raise argparse.ArgumentTypeError(f"must be from {low} to 100000, not {value}")
        return value

    return parse


def _subcommand(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand with the options both have: where the database is and the format."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, WIDTH),
        epilog=_epilog(name == "connections", name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(subparser=parser)  # misuse is said with this subcommand's usage
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", metavar="URL", help=URL_HELP)
    where.add_argument("--url-file", metavar="PATH", help=URL_FILE_HELP)
    commands.add_format_argument(parser)
    return parser


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description=textwrap.fill(
            "Audit a MySQL/MariaDB or PostgreSQL account against its live server, and list "
            "(or free) its connections. No framework needed. Each subcommand's --help gives "
            "its options.",
            WIDTH,
        ),
        epilog=_epilog(True, "check", "connections"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="action", required=True, metavar="{check,connections}")
    check = _subcommand(
        sub,
        "check",
        "audit the server's timeouts and the account's cap",
        "Audit the server's idle timeout and the account's connection cap against the "
        "workers and tasks that share the account.",
    )
    _check_options(check)
    commands.add_listing_arguments(
        _subcommand(
            sub,
            "connections",
            "the account's connections; kill idle ones",
            "List the account's connections on the server against its cap, each with the "
            "process holding it when the registry of holders knows it; optionally kill idle ones.",
        )
    )
    return top


def _check_options(parser: argparse.ArgumentParser) -> None:
    commands.add_fail_level_argument(parser)
    parser.add_argument(
        "--workers",
        type=_whole(1),
        metavar="N",
        help="concurrent web workers (processes x threads) on the account; without it the "
        "connection budget is not checked",
    )
    parser.add_argument(
        "--task-connections",
        type=_whole(0),
        default=0,
        metavar="N",
        help="connections held by scheduled and always-on tasks of the account (default: 0)",
    )
    parser.add_argument(
        "--timeout-margin",
        type=_whole(0),
        default=Options.TIMEOUT_MARGIN,
        metavar="SECONDS",
        help="a connection idle for the server's timeout minus this counts as stale "
        f"(default: {Options.TIMEOUT_MARGIN})",
    )


def url_text(args: argparse.Namespace) -> str:
    """The URL from ``--url``, ``--url-file`` or ``$DATABASE_URL``; a usage error (exit 2)
    when none gives one."""
    parser: argparse.ArgumentParser = args.subparser
    if args.url:
        return str(args.url)
    if args.url_file:
        path = Path(args.url_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not a UTF-8 text file"
            parser.error(f"cannot read --url-file {path}: {reason}")
        if not lines:
            parser.error(f"--url-file {path} is empty: write the URL on its first line")
        return lines[0].strip()
    from_environment = os.environ.get(URL_VARIABLE, "").strip()
    if not from_environment:
        parser.error(f"give --url URL or --url-file PATH, or set {URL_VARIABLE}")
    return from_environment
