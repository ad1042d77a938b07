"""One account key for both faces: a Django alias and an SQLAlchemy engine on the same
server and account, a Unix socket included, wait in one line and file their holders under
one key."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import sqlalchemy_url
from django.db import connections
from django.test import override_settings

from pa_dbhealth import dburl
from pa_dbhealth.backends.mysql.base import DatabaseWrapper
from pa_dbhealth.core import line as lines
from pa_dbhealth.core.server_id import account_key
from pa_dbhealth.holders import server_of

pytest.importorskip("sqlalchemy")

from sqlalchemy.pool import NullPool

from pa_dbhealth.sqlalchemy import install
from pa_dbhealth.sqlalchemy.engines import engine_account


def socket_settings(server: Any, *, as_option: bool) -> dict[str, Any]:
    settings = server.database_settings(engine="pa_dbhealth.backends.mysql")
    if as_option:
        settings["OPTIONS"] = {**settings.get("OPTIONS", {}), "unix_socket": server.socket}
    else:
        settings["HOST"], settings["PORT"] = server.socket, ""
    return dict(connections.configure_settings({"default": settings})["default"])


@pytest.mark.parametrize("as_option", [False, True], ids=["HOST", "OPTIONS"])
def test_a_socket_is_one_key_in_both_faces(server: Any, make_engine: Any, as_option: bool) -> None:
    django_key = server_of(socket_settings(server, as_option=as_option), "mysql")
    engine = make_engine(sqlalchemy_url(server, unix_socket=server.socket))
    url = dburl.parse(
        f"mysql://{server.user}:{server.password}@localhost/{server.database}"
        f"?unix_socket={server.socket}"
    )  # python -m pa_dbhealth's
    assert (
        django_key
        == engine_account(engine)
        == url.account
        == account_key("mysql", "127.0.0.1", 3306, server.user, server.socket)
    )
    assert django_key[0] == server.socket


@pytest.mark.usefixtures("unblocked_db")
def test_a_flask_engine_and_a_django_site_on_one_socket_share_the_line(
    server: Any, make_engine: Any
) -> None:
    settings = socket_settings(server, as_option=False)
    where = server_of(settings, "mysql")
    lines.forget(*where)
    engine = install(
        make_engine(sqlalchemy_url(server, unix_socket=server.socket), poolclass=NullPool),
        {"CONNECT_RETRY": 2.0},
    )
    try:
        engine.connect().close()  # the engine learns the cap: the socket's line is made
        line = lines.line_for(*where)
        assert line is not None and line.free == 3
        with engine.connect():
            assert line.free == 2
            with override_settings(PA_DBHEALTH={"CONNECT_RETRY": 2.0}):
                wrapper = DatabaseWrapper(settings, alias="socket")
                wrapper.ensure_connection()  # the Django site takes a token of the same line
                assert line.free == 1
                wrapper.close()
        assert line.free == 3
    finally:
        lines.forget(*where)
