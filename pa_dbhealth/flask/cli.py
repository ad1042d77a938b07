"""``flask dbcheck`` and ``flask dbconnections``: the Django commands' options, output and
exit codes (0 healthy, 1 findings at or above ``--fail-level``, 2 could not run)."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from pa_dbhealth.core import cli_steps as commands
from pa_dbhealth.core import findings
from pa_dbhealth.core import listings as connections
from pa_dbhealth.core.errors import server_address
from pa_dbhealth.core.options import Options
from pa_dbhealth.sqlalchemy import behind, holding
from pa_dbhealth.sqlalchemy.audit import report
from pa_dbhealth.sqlalchemy.engine_look import look_at_engine
from pa_dbhealth.sqlalchemy.engines import database_errors, engine_vendor
from pa_dbhealth.sqlalchemy.wording import flask_wording

# core.render's styles (Django's style roles) in click's colours
STYLES: dict[str, dict[str, Any]] = {
    "SUCCESS": {"fg": "green", "bold": True},
    "WARNING": {"fg": "yellow", "bold": True},
    "ERROR": {"fg": "red", "bold": True},
    "NOTICE": {"fg": "red"},
    "MIGRATE_HEADING": {"fg": "cyan", "bold": True},
}


def write(text: str, style: str | None) -> None:
    click.echo(click.style(text, **STYLES[style]) if style else text)


class FindingsFound(click.ClickException):
    """``Error: <message>`` on stderr, exit code 1."""

    exit_code = 1


class CouldNotRun(click.ClickException):
    """``Error: <message>`` on stderr, exit code 2."""

    exit_code = 2


def failed(exc: commands.CommandFailed) -> click.ClickException:
    return (FindingsFound if exc.code == 1 else CouldNotRun)(str(exc))


class Seconds(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on
    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            return commands.seconds(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _extension(app: Flask) -> Any:
    return app.extensions["pa_dbhealth"]


def _names(app: Flask, chosen: tuple[str, ...] | None) -> dict[str, Any]:
    engines: dict[str, Any] = _extension(app).engines(app)
    for name in chosen or ():
        if name not in engines:
            raise click.BadParameter(
                f"{name!r} is not one of {', '.join(map(repr, engines))}", param_hint="'--bind'"
            )
    return {name: engines[name] for name in chosen} if chosen else engines


def recycle_note(app: Flask, name: str, engine: Any) -> str:
    """Why an engine's ``pool_recycle`` is what it is, when Flask-SQLAlchemy chose it."""
    given = _extension(app).bind_options(app, name)
    if engine_vendor(engine) == "mysql" and "pool_recycle" not in given:
        return " (Flask-SQLAlchemy's default for MySQL)"
    return ""


@click.command(
    "dbcheck",
    help="Audit the app's engines against the live server's idle timeout and the account's "
    "connection cap. Exit code 0: nothing at or above --fail-level; 1: findings; 2: misuse.",
)
@click.option("--bind", help="Audit only this engine: 'default' or a bind key (default: all).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--fail-level",
    type=click.Choice(list(commands.LEVELS)),
    default="error",
    help=commands.FAIL_LEVEL_HELP,
)
@click.option(
    "--offline",
    is_flag=True,
    help="Do not connect: use PA_DBHEALTH's SERVER_IDLE_TIMEOUT and CONNECTION_LIMIT.",
)
@with_appcontext
def dbcheck(bind: str | None, fmt: str, fail_level: str, offline: bool) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    extension = _extension(app)
    site = findings.settings_findings(extension.problems(app)) + extension.registry_findings(app)
    options = extension.options(app)
    site += behind.pin_findings(options)  # what the app's processes ran that pins a multiplexer
    reports = [
        report(
            engine,
            name=name,
            options=options,
            offline=offline,
            wording=flask_wording(
                None if name == "default" else name, recycle_note(app, name, engine)
            ),
        )
        for name, engine in _names(app, (bind,) if bind else None).items()
    ]
    try:
        commands.check(reports, site, fmt, fail_level, write, name="flask dbcheck")
    except commands.CommandFailed as exc:
        raise failed(exc) from None


@click.command(
    "dbconnections",
    help="List the database account's connections on the server (id, host, db, command, "
    "state, idle seconds) against its connection cap; optionally kill its idle ones.",
)
@click.option(
    "--bind",
    "binds",
    multiple=True,
    help="Engine to look at: 'default' or a bind key; repeat for several (default: default).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--kill-idle", type=Seconds(), metavar="SECONDS", help=commands.KILL_IDLE_HELP)
@click.option("--include-transactions", is_flag=True, help=commands.INCLUDE_TRANSACTIONS_HELP)
@click.option("--dry-run", is_flag=True, help=commands.DRY_RUN_HELP)
@click.option("--watch", type=Seconds(), metavar="SECONDS", help=commands.WATCH_HELP)
@with_appcontext
def dbconnections(binds: tuple[str, ...], fmt: str, **given: Any) -> None:
    asked = commands.ListingAsked.of(given)
    misuse = asked.misuse()
    if misuse is not None:
        raise click.UsageError(misuse)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    engines = _names(app, tuple(dict.fromkeys(binds)) or ("default",))
    options = _extension(app).options(app)
    try:
        commands.connections(
            list(engines),
            lambda name: _listing(name, engines[name], options, asked),
            fmt,
            write,
            watch=asked.watch,
            say=lambda t: click.echo(t, err=True),
            findings=_extension(app).registry_findings(app),
        )
    except commands.CommandFailed as exc:
        raise failed(exc) from None


def _listing(
    name: str, engine: Any, options: Options, asked: commands.ListingAsked
) -> dict[str, Any]:
    """One engine's listing (and kills), through a look at its server."""
    return connections.listing(
        name,
        engine_vendor(engine),
        engine.dialect.name,
        lambda ask: look_at_engine(engine, ask, timeout=options.HEALTH_CONNECT_TIMEOUT),
        **asked.kills(),
        cap=options.CONNECTION_LIMIT,
        errors=database_errors(engine),
        address=server_address(engine.url.host, engine.url.port),
        holders=lambda snapshot: holding.account_holders_of(engine, options, snapshot),
    )
