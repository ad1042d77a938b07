"""The SQLAlchemy face's registry of holders, in this process: its leak rules (a session
held too long, a module-level session). What both faces do alike is
test_holders_published.py's."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqla_registry import writing_to
from sqlalchemy import text
from sqlalchemy.orm import Session

from pa_dbhealth.core import registry
from pa_dbhealth.sqlalchemy import install, tracker

pytestmark = pytest.mark.matrix_once  # the same on every Django version


@pytest.fixture
def where(tmp_path: Path) -> Iterator[Path]:
    """A registry of this test's own, where this process writes (its first engine's)."""
    with writing_to(tmp_path / "holders") as place:
        yield place


def published(where: Path, server: Any) -> list[registry.Holder]:
    found = registry.read(where)
    return found.holders(registry.server_key("mysql", server.host, server.port), server.user)


def test_a_session_held_too_long_is_published_as_a_leak_without_another_event(
    make_engine: Callable[..., Any], where: Path, server: Any
) -> None:
    engine = install(
        make_engine(pool_size=1, max_overflow=0), {"REGISTRY_DIR": str(where)}, leak_after=0.3
    )
    with Session(engine) as session:
        session.execute(text("SELECT 1"))  # the session keeps the connection checked out
        (holder,) = published(where, server)
        assert holder.connection.leak is None
        deadline = time.monotonic() + 5
        while holder.connection.leak is None and time.monotonic() < deadline:
            time.sleep(0.05)  # nothing happens in this process: the timer notices
            (holder,) = published(where, server)
        assert holder.connection.leak is not None
        assert holder.connection.leak.kind == tracker.HELD_TOO_LONG
        assert "checked out for 0.3 s or more" in holder.connection.leak.why
        assert "with Session() as session" in holder.connection.leak.fix
    engine.dispose()


def test_a_module_level_session_is_published_as_a_leak(
    make_engine: Callable[..., Any],
    where: Path,
    server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = install(make_engine(pool_size=1, max_overflow=0), {"REGISTRY_DIR": str(where)})
    (tmp_path / "module_session.py").write_text(
        "from sqlalchemy import text\n"
        "from sqlalchemy.orm import Session\n"
        "import engine_holder\n"
        "session = Session(engine_holder.engine)\n"
        "session.execute(text('SELECT 1'))\n"
    )
    holder_module = type(sys)("engine_holder")
    holder_module.engine = engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine_holder", holder_module)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import module_session

        (holder,) = published(where, server)
        assert holder.connection.caller is not None
        assert "module_session.py:5 in <module>" in holder.connection.caller
        assert holder.connection.leak is not None
        assert holder.connection.leak.kind == registry.MODULE_SESSION
        assert "not at module level" in holder.connection.leak.fix
        module_session.session.close()
    finally:
        sys.modules.pop("module_session", None)
    engine.dispose()
