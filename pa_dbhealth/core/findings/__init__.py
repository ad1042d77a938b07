"""The catalogue of findings: one function per id, shared by every face.

Ids are public API: never reuse a retired one. Each id is written out literally where its
finding is built, so a grep finds it. The catalogue states the problem with the real
figures; where the fix depends on the face (Django's ``CONN_MAX_AGE`` or SQLAlchemy's
``pool_recycle``), the face names its own setting and words the fix (``setting``, ``fix``).

One module per concern: ``base`` (what a finding is), ``settings`` (pa_dbhealth's own
setup), ``keeping`` (how long connections are kept), ``budget`` (how many the site can
open), ``server`` (what the server said), ``pooler`` (behind a multiplexer). Every name is
importable from here.
"""

from pa_dbhealth.core.findings.base import Finding, Level, cap_error, lost_error
from pa_dbhealth.core.findings.budget import (
    budget_at_cap,
    budget_over_cap,
    budget_queues,
    pool_too_big,
    workers_unknown,
)
from pa_dbhealth.core.findings.keeping import (
    idle_in_transaction_unlimited,
    idle_past_timeout,
    kept_forever,
    kept_past_timeout,
    kept_under_asgi,
    kept_untested,
    net_read_timeout,
    pool_recycle_too_long,
)
from pa_dbhealth.core.findings.pooler import (
    behind_multiplexer,
    pins_connections,
    prepared_statements_unsupported,
    server_side_cursors_behind_pooler,
)
from pa_dbhealth.core.findings.server import (
    cannot_connect,
    connects_locally,
    half_switched,
    not_applicable,
    server_not_asked,
    server_too_old,
    server_too_old_next,
    unreachable,
)
from pa_dbhealth.core.findings.settings import (
    margin_clamped,
    middleware_missing,
    park_without_effect,
    registry_refused,
    settings_bad_value,
    settings_findings,
    settings_not_a_mapping,
    settings_unknown_key,
    settings_weak_value,
)

__all__ = [
    "Finding",
    "Level",
    "behind_multiplexer",
    "budget_at_cap",
    "budget_over_cap",
    "budget_queues",
    "cannot_connect",
    "cap_error",
    "connects_locally",
    "half_switched",
    "idle_in_transaction_unlimited",
    "idle_past_timeout",
    "kept_forever",
    "kept_past_timeout",
    "kept_under_asgi",
    "kept_untested",
    "lost_error",
    "margin_clamped",
    "middleware_missing",
    "net_read_timeout",
    "not_applicable",
    "park_without_effect",
    "pins_connections",
    "pool_recycle_too_long",
    "pool_too_big",
    "prepared_statements_unsupported",
    "registry_refused",
    "server_not_asked",
    "server_side_cursors_behind_pooler",
    "server_too_old",
    "server_too_old_next",
    "settings_bad_value",
    "settings_findings",
    "settings_not_a_mapping",
    "settings_unknown_key",
    "settings_weak_value",
    "unreachable",
    "workers_unknown",
]
