"""What an engine's pool is, in the figures the audit judges: how many connections one
process's pool may hold, whether it keeps them between checkouts, for how long."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import pool as sa_pool
from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class PoolShape:
    kind: str  # the pool's class name: "QueuePool", "NullPool", ...
    capacity: int | None  # connections one process's pool may hold at once; None: one per thread
    keeps: bool  # it keeps connections open between checkouts (so pool_recycle matters)
    recycle: float  # pool_recycle: seconds after which a kept connection is replaced; -1: never
    pre_ping: bool
    size: int | None = None  # QueuePool's pool_size and max_overflow
    overflow: int | None = None
    shared: bool = False  # one connection shared by every thread (StaticPool)

    @property
    def describe(self) -> str:
        """``"QueuePool (pool_size 5 + max_overflow 10)"``, ``"NullPool"``, ..."""
        if self.size is not None:
            return f"{self.kind} (pool_size {self.size} + max_overflow {self.overflow})"
        return self.kind


def shape(engine: Engine) -> PoolShape:
    """The shape of ``engine.pool``; a pool class pa_dbhealth does not know is taken to keep
    connections, without a limit."""
    pool = engine.pool
    kind = type(pool).__name__
    recycle = float(pool._recycle)
    pre_ping = bool(pool._pre_ping)
    if isinstance(pool, sa_pool.QueuePool):
        size, overflow = pool.size(), pool._max_overflow
        bounded = size > 0 and overflow >= 0  # SQLAlchemy: size 0 / overflow -1 mean no limit
        capacity = size + overflow if bounded else None
        return PoolShape(kind, capacity, True, recycle, pre_ping, size, overflow)
    if isinstance(pool, sa_pool.NullPool):
        return PoolShape(kind, None, False, recycle, pre_ping)
    if isinstance(pool, sa_pool.StaticPool):
        return PoolShape(kind, 1, True, recycle, pre_ping, shared=True)
    if isinstance(pool, sa_pool.AssertionPool):
        return PoolShape(kind, 1, True, recycle, pre_ping)
    # SingletonThreadPool keeps one connection per thread; others: assume the worst.
    return PoolShape(kind, None, True, recycle, pre_ping)
