"""The connect backoff policy: retry a connect the connection cap refused, never anything else.

Retrying a *connect* is safe: nothing has been sent to the server yet. Only errors that
:func:`pa_dbhealth.core.errors.classify` calls a cap (``kind.is_cap``: 1226 for
``max_user_connections``, 1203, 1040) are retried; an hourly quota (also 1226), a wrong
password, an unknown database or an unreachable server are raised at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from pa_dbhealth.core.errors import Classified, classify

T = TypeVar("T")

FIRST_DELAY = 0.005  # seconds before the first retry (upper bound of its jitter)
MAX_DELAY = 0.05  # no single wait is longer than this: at most 20 tries a second
FACTOR = 2.0
MAX_DOUBLINGS = 32  # the base stops growing here (far past any cap): no overflow, ever

OnRetry = Callable[[Classified, int, float], None]
OnGiveUp = Callable[[Classified, int, float], None]
OnRefused = Callable[[Classified], None]

_single_attempt: ContextVar[bool] = ContextVar("pa_dbhealth_single_attempt", default=False)


@contextmanager
def single_attempt() -> Iterator[None]:
    """Within this block every ``connect_with_retry`` tries once: for callers that must
    answer at once, such as the health view at a full cap."""
    token = _single_attempt.set(True)
    try:
        yield
    finally:
        _single_attempt.reset(token)


def in_single_attempt() -> bool:
    """Whether the caller asked for one attempt (:func:`single_attempt`)."""
    return _single_attempt.get()


def backoff(attempt: int, *, first: float | None = None, cap: float | None = None) -> float:
    """The wait after failed attempt ``attempt`` (1-based): "equal jitter" exponential backoff.

    Half of ``min(cap, first * 2 ** (attempt - 1))`` plus a uniformly random amount up to the
    other half, so waiting callers spread out but none polls faster than half the base. The
    exponent stops at :data:`MAX_DOUBLINGS`, so no number of attempts can overflow.
    """
    first = FIRST_DELAY if first is None else first
    cap = MAX_DELAY if cap is None else cap
    doublings = min(max(attempt - 1, 0), MAX_DOUBLINGS)
    base = min(cap, first * FACTOR**doublings)
    return base / 2 + random.uniform(0, base / 2)  # noqa: S311 (jitter, not a secret)


def connect_with_retry(
    connect: Callable[[], T],
    *,
    budget: float,
    on_retry: OnRetry | None = None,
    on_giveup: OnGiveUp | None = None,
    first_delay: float | None = None,
    max_delay: float | None = None,
    wait: Callable[[float], T | None] | None = None,
    on_refused: OnRefused | None = None,
) -> T:
    """Call ``connect()``; while it fails because connections are used up, wait and retry.

    ``on_retry(classified, attempt, delay)`` is called before each wait, ``attempt`` being the
    number of the attempt that just failed (1 for the first). Once ``budget`` seconds have
    passed since the first attempt, ``on_giveup(classified, attempts, elapsed)`` is called and
    the last error is re-raised unchanged. A wait never runs past the deadline; the last
    attempt is made at it. Any error that is not a cap is raised at once, without a callback.
    ``first_delay`` and ``max_delay`` default to :data:`FIRST_DELAY` and :data:`MAX_DELAY`.
    ``wait(delay)`` does the waiting (default: sleep); when it returns a connection instead
    of None (one handed over by another thread), that connection is returned at once.
    Inside :func:`single_attempt` the budget is 0 and a refusal is not a give-up: the caller
    asked for one attempt (a look); ``on_refused(classified)`` is called instead.
    """
    start = time.monotonic()
    single = _single_attempt.get()
    deadline = start + (0.0 if single else max(0.0, budget))
    attempt = 0
    while True:
        attempt += 1
        try:
            return connect()
        except Exception as exc:
            classified = classify(exc)
            if not classified.kind.is_cap:
                raise
            now = time.monotonic()
            if single or now >= deadline:
                _tell_end(classified, attempt, now - start, single, on_refused, on_giveup)
                raise
            delay = min(backoff(attempt, first=first_delay, cap=max_delay), deadline - now)
            if on_retry is not None:
                on_retry(classified, attempt, delay)
        if wait is None:
            time.sleep(delay)
        elif (handed := wait(delay)) is not None:
            return handed


def _tell_end(
    classified: Classified,
    attempts: int,
    elapsed: float,
    single: bool,
    on_refused: OnRefused | None,
    on_giveup: OnGiveUp | None,
) -> None:
    """Tell the caller why the tries end: a refusal when it asked for one attempt
    (``on_refused``), else a give-up once the budget is spent (``on_giveup``)."""
    if single:
        if on_refused is not None:
            on_refused(classified)
    elif on_giveup is not None:
        on_giveup(classified, attempts, elapsed)
