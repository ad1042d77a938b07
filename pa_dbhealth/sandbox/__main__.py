"""``python -m pa_dbhealth.sandbox start|stop|env|status``: the local capped server."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from pa_dbhealth.sandbox.info import SandboxError, SandboxInfo
from pa_dbhealth.sandbox.server import default_dir, start, stop

PROG = "python -m pa_dbhealth.sandbox"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A throwaway MariaDB/MySQL server with PythonAnywhere's limits: an account "
        "capped at 3 connections, idle connections dropped after wait_timeout.",
    )
    parser.add_argument(
        "--dir",
        default=str(default_dir()),
        help="folder for the server's data, socket and state (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    start_parser = sub.add_parser(
        "start",
        help="start a new server, or resume the one kept in --dir (stop --keep)",
        description="Start a new server. When --dir holds a server stopped with --keep (or "
        "killed), resume it: same data, accounts and passwords, on the same port when it is "
        "free. Options left out keep the kept server's values.",
    )
    start_parser.add_argument("--port", type=_positive, help="TCP port (default: a free one)")
    start_parser.add_argument(
        "--wait-timeout", type=_positive, help="idle timeout in seconds (default: 300)"
    )
    start_parser.add_argument(
        "--net-read-timeout", type=_positive, help="net_read_timeout (default: 30)"
    )
    start_parser.add_argument(
        "--limit", type=_positive, help="MAX_USER_CONNECTIONS of the app account (default: 3)"
    )
    start_parser.add_argument(
        "--fresh",
        action="store_true",
        help="wipe a kept server's data and accounts and start a new one",
    )
    stop_parser = sub.add_parser("stop", help="stop the server and delete its folder")
    stop_parser.add_argument(
        "--keep", action="store_true", help="keep the folder: the next start resumes the server"
    )
    env_parser = sub.add_parser("env", help="print the connection settings")
    env_parser.add_argument("--format", choices=("shell", "json"), default="shell")
    sub.add_parser("status", help="say whether the server runs")
    return parser


def _command(folder: str, action: str) -> str:
    """How to run ``action`` on this sandbox again, as a shell command line."""
    if Path(folder).resolve() == default_dir().resolve():
        return f"{PROG} {action}"
    return f"{PROG} --dir {shlex.quote(folder)} {action}"


def _print_env(info: SandboxInfo, fmt: str = "shell") -> None:
    if fmt == "json":
        print(json.dumps(info.env(), indent=2))
        return
    for key, value in info.env().items():
        print(f"export {key}={shlex.quote(value)}")


def _describe(info: SandboxInfo, running: bool = True) -> str:
    where = f"on {info.host}:{info.port} (pid {info.pid})" if running else f"port {info.port}"
    return (
        f"{info.flavour} {info.version} {where}; "
        f"account {info.user!r} capped at {info.limit} connections, "
        f"wait_timeout={info.wait_timeout}s, net_read_timeout={info.net_read_timeout}s; "
        f"data in {info.base_dir}"
    )


def _say(message: str) -> None:
    print(f"# {message}", file=sys.stderr)


class _Notes(logging.Handler):
    """The sandbox's log (a resumed server, a port that changed) as ``# ...`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        _say(record.getMessage())


def _start(args: argparse.Namespace) -> None:
    logger = logging.getLogger("pa_dbhealth.sandbox")
    notes, level = _Notes(logging.INFO), logger.level
    logger.addHandler(notes)
    logger.setLevel(logging.INFO)
    try:
        info = start(
            args.dir,
            port=args.port,
            wait_timeout=args.wait_timeout,
            net_read_timeout=args.net_read_timeout,
            limit=args.limit,
            fresh=args.fresh,
        )
    finally:
        logger.removeHandler(notes)
        logger.setLevel(level)
    _say(f"started {_describe(info)}")
    _say(f'load these settings with: eval "$({_command(args.dir, "env")})"')
    _say(f"stop it with: {_command(args.dir, 'stop')} (--keep keeps its data for the next start)")
    _print_env(info)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "start":
            _start(args)
            return 0
        info = SandboxInfo.load(args.dir)
        if args.action == "stop":
            stop(info, remove=not args.keep)
            kept = f"; kept: `{_command(args.dir, 'start')}` resumes it" if args.keep else ""
            print(f"stopped the sandbox in {info.base_dir}{kept}", file=sys.stderr)
        elif args.action == "status":
            if info.is_running():
                print(f"running: {_describe(info)}")
                return 0
            print(f"stopped: {_describe(info, running=False)}")
            print(f"`{_command(args.dir, 'start')}` resumes it", file=sys.stderr)
            return 1
        else:
            if not info.is_running():
                raise SandboxError(
                    f"the sandbox in {info.base_dir} is not running: "
                    f"start it with `{_command(args.dir, 'start')}`"
                )
            _print_env(info, args.format)
    except SandboxError as exc:
        print(f"pa_dbhealth.sandbox: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
