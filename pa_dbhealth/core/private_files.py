"""Small files only this user can read, in a directory only this user can enter.

The registry of holders lives in a directory that every process of the account shares (the
home directory, on PythonAnywhere). What it holds (command lines, file paths, thread names)
is nobody else's business, and nothing in it may be trusted blindly, so:

- the directory is created with mode 0700; an existing one is used only when it is a real
  directory (not a symlink: ``O_NOFOLLOW``), owned by this user, that group and others
  cannot enter (a mode it has not been given by this module is never changed: a
  ``REGISTRY_DIR`` set to ``/tmp`` must not make ``/tmp`` private);
- files are created with mode 0600 (``O_EXCL | O_NOFOLLOW``) under a temporary name in the
  same directory and renamed over the final name (``os.replace``), so a reader sees the old
  file or the new one, never half of one, and a symlink planted at the final name is
  replaced, never followed;
- a file is read only when it is a regular file owned by this user and not larger than the
  caller's cap, opened without following a symlink or blocking on a FIFO.

Every operation works relative to the directory's file descriptor, so the checked directory
is the one written to, even if its path is swapped for a symlink meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class NotPrivate(OSError):
    """The directory is a symlink, not a directory, or not this user's: it is not used."""


@contextmanager
def private_directory(path: Path, *, create: bool) -> Iterator[int]:
    """The directory's file descriptor, checked as the module says (created first when
    ``create``). Raises :class:`NotPrivate`, ``FileNotFoundError`` (absent and not
    ``create``) or the ``OSError`` that made it impossible (a read-only or full disk)."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, DIR_MODE)
    try:
        fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if path.is_symlink():
            raise NotPrivate(f"{path} is a symlink, not a directory: not used") from exc
        if path.exists() and not path.is_dir():
            raise NotPrivate(f"{path} is not a directory: not used") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISDIR(info.st_mode):
            raise NotPrivate(f"{path} is not a directory: not used")
        if info.st_uid != os.geteuid():
            raise NotPrivate(
                f"{path} belongs to user id {info.st_uid}, not to this user "
                f"({os.geteuid()}): not used"
            )
        if info.st_mode & 0o077:
            raise NotPrivate(
                f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}): not used"
            )
        yield fd
    finally:
        os.close(fd)


def write_atomically(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``data`` as ``name`` in the directory: a mode-0600 temporary file, renamed."""
    temporary = f".{name}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    fd = os.open(temporary, flags, FILE_MODE, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            remove(dir_fd, temporary)
        raise


def read_private(dir_fd: int, name: str, limit: int) -> bytes | None:
    """The content of ``name``, or None when it is not a regular file of this user, is
    larger than ``limit`` bytes, or cannot be read."""
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None  # gone meanwhile, a symlink (ELOOP), unreadable
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_size > limit:
            return None
        chunks = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > limit:  # grew while being read
                return None
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def remove(dir_fd: int, name: str) -> None:
    """Remove ``name`` (a symlink itself, never its target); gone already is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def modified_at(dir_fd: int, name: str) -> float | None:
    """The file's modification time (``time.time()``), without following a symlink."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime
    except OSError:
        return None


def names(dir_fd: int) -> list[str]:
    """The names in the directory, sorted."""
    return sorted(os.listdir(dir_fd))
