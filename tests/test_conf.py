from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from pa_dbhealth import conf
from pa_dbhealth.core.options import OPTIONS, shown


def _ids(setting: object) -> list[tuple[str, str]]:
    with override_settings(PA_DBHEALTH=setting):
        found = run_checks(databases=[])  # the static checks (Django 6.1 would pass the aliases)
    return [(m.id or "", m.msg) for m in found if (m.id or "").startswith("pa_dbhealth")]


def test_missing_setting_means_defaults() -> None:
    with override_settings():
        from django.conf import settings

        del settings.PA_DBHEALTH
        values = conf.get_settings()
        assert values.SERVER_IDLE_TIMEOUT == 300
        assert values.CONNECTION_LIMIT == 3
        assert values.TIMEOUT_MARGIN == 20
        assert values.WORKERS is None
        assert values.HEALTH_TOKEN is None
        assert values.CONNECT_RETRY == 5.0
        assert values.HANDOFF is True
        assert conf.problems() == []


def test_valid_values_are_used_and_override_settings_is_seen() -> None:
    with override_settings(PA_DBHEALTH={"SERVER_IDLE_TIMEOUT": 60, "WORKERS": 2}):
        assert conf.get_settings().SERVER_IDLE_TIMEOUT == 60
        assert conf.get_settings().WORKERS == 2
    assert conf.get_settings().SERVER_IDLE_TIMEOUT == 300


def test_not_a_dict_is_e001() -> None:
    found = _ids(["SERVER_IDLE_TIMEOUT", 300])
    assert [i for i, _ in found] == ["pa_dbhealth.E001"]
    assert "must be a dict" in found[0][1]


def test_unknown_key_is_e002_with_a_close_match() -> None:
    with override_settings(PA_DBHEALTH={"CONECTION_LIMIT": 3}):
        (problem,) = conf.problems()
        assert problem.key == "CONECTION_LIMIT"
        assert problem.hint == "Did you mean 'CONNECTION_LIMIT'?"
        assert conf.get_settings().CONNECTION_LIMIT == 3
    assert [i for i, _ in _ids({"CONECTION_LIMIT": 3})] == ["pa_dbhealth.E002"]


def test_unknown_key_without_match_lists_known_keys() -> None:
    with override_settings(PA_DBHEALTH={"ZZZ": 1}):
        (problem,) = conf.problems()
        assert "Known keys:" in problem.hint and "TIMEOUT_MARGIN" in problem.hint


@pytest.mark.parametrize(
    ("key", "bad", "good"),
    [
        ("SERVER_IDLE_TIMEOUT", 0, 300),
        ("SERVER_IDLE_TIMEOUT", "300", 120),
        ("SERVER_IDLE_TIMEOUT", True, 1),
        ("CONNECTION_LIMIT", 0, 3),
        ("CONNECTION_LIMIT", 2.5, 10),
        ("TIMEOUT_MARGIN", -1, 0),
        ("WORKERS", 0, None),
        ("WORKERS", "4", 4),
        ("TASK_CONNECTIONS", -1, 1),
        ("HEALTH_TOKEN", "", None),
        ("HEALTH_TOKEN", " \n", "a-long-enough-secret-token"),
        ("HEALTH_TOKEN", 1234567890123456789, "x" * 32),
        ("HEALTH_CONNECT_TIMEOUT", 0, 0.5),
        ("CONNECT_RETRY", -0.1, 0),
        ("CONNECT_RETRY", "5", 2.5),
        ("HANDOFF", "no", False),
        ("HANDOFF", None, True),
        ("TRACK_ORIGINS", "yes", True),
        ("REGISTRY_DIR", True, False),
        ("REGISTRY_DIR", "", "~/.cache/holders"),
        ("REGISTRY_DIR", "relative/holders", "/srv/shared/holders"),
        ("REGISTRY_DIR", "/srv/\0holders", None),
        ("REGISTRY_DIR", 3, "/tmp/holders"),
        # Numbers that would break at run time: NaN, infinities, beyond any real figure.
        ("HEALTH_CONNECT_TIMEOUT", float("nan"), 3),
        ("HEALTH_CONNECT_TIMEOUT", float("inf"), 3),
        ("HEALTH_CONNECT_TIMEOUT", 2**31, 60),
        ("CONNECT_RETRY", float("inf"), 300),
        ("CONNECT_RETRY", float("nan"), 0.5),
        pytest.param("SERVER_IDLE_TIMEOUT", 10**400, 31536000, id="SERVER_IDLE_TIMEOUT-10**400"),
        pytest.param("WORKERS", 10**5000, 100000, id="WORKERS-10**5000"),
        ("TIMEOUT_MARGIN", float("-inf"), 20),
        # Past what a float can hold: an E003 naming the key, never an OverflowError.
        pytest.param("HEALTH_CONNECT_TIMEOUT", 10**5000, 60, id="HEALTH_CONNECT_TIMEOUT-10**5000"),
        pytest.param("CONNECT_RETRY", -(10**400), 300, id="CONNECT_RETRY--10**400"),
        ("CONNECT_RETRY", 1e308, 300),
    ],
)
def test_each_key_is_validated(key: str, bad: object, good: object) -> None:
    found = _ids({key: bad})
    assert [i for i, _ in found] == ["pa_dbhealth.E003"]
    assert key in found[0][1] and shown(bad) in found[0][1]
    with override_settings(PA_DBHEALTH={key: bad}):
        # A bad value never crashes a request: the default is used until it is fixed.
        assert getattr(conf.get_settings(), key) == OPTIONS[key].default
    assert _ids({key: good}) == []
    with override_settings(PA_DBHEALTH={key: good}):
        assert getattr(conf.get_settings(), key) == good


def test_every_key_has_a_default_that_passes_its_own_validation() -> None:
    for key, option in OPTIONS.items():
        assert option.validate(option.default) is None, key


def test_track_origins_follows_debug_when_none() -> None:
    with override_settings(DEBUG=True, PA_DBHEALTH={}):
        assert conf.track_origins() is True
    with override_settings(DEBUG=True, PA_DBHEALTH={"TRACK_ORIGINS": False}):
        assert conf.track_origins() is False
    with override_settings(DEBUG=False, PA_DBHEALTH={}):
        assert conf.track_origins() is False


def test_registry_dir_says_why_a_relative_path_will_not_do() -> None:
    (found,) = _ids({"REGISTRY_DIR": "holders"})
    assert found[1] == (
        "PA_DBHEALTH['REGISTRY_DIR'] = 'holders' must be an absolute path (or start with ~): "
        "each process has its own current directory."
    )


def test_a_huge_integer_is_shown_without_breaking_the_checks() -> None:
    """repr() of an int of more than 4300 digits raises: the message says its size instead."""
    (found,) = _ids({"WORKERS": 10**5000})
    assert found[1] == (
        "PA_DBHEALTH['WORKERS'] = <an integer of about 5001 digits> must be None or a whole "
        "number from 1 to 100000."
    )


def test_a_key_in_the_wrong_case_gets_its_right_name() -> None:
    with override_settings(PA_DBHEALTH={"workers": 2}):
        (problem,) = conf.problems()
    assert problem.hint == "Did you mean 'WORKERS'?"


TOKEN = "a-long-enough-secret-token"


def test_a_token_read_from_a_file_is_used_without_its_newline() -> None:
    assert _ids({"HEALTH_TOKEN": f"{TOKEN}\n"}) == []
    with override_settings(PA_DBHEALTH={"HEALTH_TOKEN": f"  {TOKEN}\n"}):
        assert conf.get_settings().HEALTH_TOKEN == TOKEN  # as typed: typed tokens are stripped


@pytest.mark.parametrize("token", ["short", " " * 15 + "a", f"{'x' * 15}\n"])
def test_a_short_token_is_w029_and_still_used(token: str) -> None:
    ((finding, message),) = _ids({"HEALTH_TOKEN": token})
    assert finding == "pa_dbhealth.W029"
    length = len(token.strip())
    assert message == (
        f"PA_DBHEALTH['HEALTH_TOKEN'] = '...' has {length} characters (spaces around it do not "
        "count): too few to be a secret."
    )
    with override_settings(PA_DBHEALTH={"HEALTH_TOKEN": token}):
        assert token.strip() == conf.get_settings().HEALTH_TOKEN
