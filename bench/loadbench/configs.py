"""The configurations the load benchmark compares, numbered for ``--only``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    name: str
    engine: str
    conn_max_age: int
    app: bool  # pa_dbhealth in INSTALLED_APPS (Flask: DbHealth)
    middleware: bool  # and its ConnectionHygieneMiddleware
    flask: str | None = None  # the Flask demo with this FLASK_DEMO_ENGINE, instead of Django
    registry: bool = True  # its registry of holders (REGISTRY_DIR = False when not)
    line: bool = True  # its fair line at the cap (LINE = False when not)
    park: bool = False  # keep a request's connection while nobody waits (PARK = True)

    @property
    def env(self) -> dict[str, str]:
        """The environment that selects this configuration in benchsite or flasksite."""
        return {
            "BENCH_ENGINE": self.engine,
            "BENCH_CONN_MAX_AGE": str(self.conn_max_age),
            "BENCH_PA_DBHEALTH": "1" if self.app else "0",
            "BENCH_MIDDLEWARE": "1" if self.middleware else "0",
            "BENCH_REGISTRY": "1" if self.registry else "0",
            "BENCH_LINE": "1" if self.line else "0",
            "BENCH_PARK": "1" if self.park else "0",
            "FLASK_DEMO_ENGINE": self.flask or "",
            "FLASK_DEMO_DBHEALTH": "1" if self.app else "0",
        }


PA_ENGINE = "pa_dbhealth.backends.mysql"
PLAIN_0 = Config("plain, CONN_MAX_AGE=0", "django.db.backends.mysql", 0, False, False)
PLAIN_600 = Config("plain, CONN_MAX_AGE=600", "django.db.backends.mysql", 600, False, False)
PA = Config("pa_dbhealth backend + middleware", PA_ENGINE, 0, True, True)
# The backend alone shows what the middleware's early release adds.
PA_BACKEND = Config("pa_dbhealth backend only", PA_ENGINE, 0, True, False)
# The support question's Flask app (flask_demo): its engine (Flask-SQLAlchemy's defaults),
# the answer's hand-tuned pool, and pa_dbhealth's engine_options with DbHealth.
FLASK_SEED = Config("Flask, SQLAlchemy's default pool (5 + 10)", "", 0, False, False, "seed")
FLASK_ANSWER = Config("Flask, hand-tuned pool (2 + 1, recycle 280)", "", 0, False, False, "answer")
FLASK_PA = Config("Flask, pa_dbhealth (engine_options + DbHealth)", "", 0, True, False, "fitted")
# PA without the registry of holders: what the registry costs (--registry-ab).
PA_NO_REGISTRY = Config("pa_dbhealth, registry off", PA_ENGINE, 0, True, True, registry=False)
# PA without the fair line: each waiter polls the server (retry with backoff) instead.
PA_NO_LINE = Config(
    "pa_dbhealth backend + middleware, LINE off", PA_ENGINE, 0, True, True, line=False
)
# PA keeping each request's connection while nobody waits in the line.
PA_PARK = Config("pa_dbhealth backend + middleware, PARK", PA_ENGINE, 0, True, True, park=True)

CONFIGS = (
    PLAIN_0,
    PLAIN_600,
    PA,
    PA_BACKEND,
    FLASK_SEED,
    FLASK_ANSWER,
    FLASK_PA,
    PA_NO_REGISTRY,
    PA_NO_LINE,
    PA_PARK,
)
DEFAULT = (0, 1, 2, 9, 8, 4, 5, 6)
REGISTRY_AB = (7, 2)
# Also run with one of the account's connections held by another process all along.
HELD_ELSEWHERE = (0, 2, 9, 8, 4, 6)
# Run at a cap held outside: pa_dbhealth's Django and Flask sites, plain Django to compare.
OUTSIDERS = (2, 6, 0)


def is_pa(config: Config) -> bool:
    """pa_dbhealth's own configurations, run at every client count by default."""
    return config.app
