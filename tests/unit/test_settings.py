"""Configuration: one registry of names, clear errors, documented once in docs/configuration.md."""

from __future__ import annotations

import re

import pytest

from sessionproof import REPO_ROOT, settings

CONFIGURATION_DOC = "docs/configuration.md"


def test_every_setting_is_documented_in_docs_configuration_with_its_default():
    table = (REPO_ROOT / CONFIGURATION_DOC).read_text()
    for setting in settings.SETTINGS:
        row = re.search(rf"^\| `{setting.name}` \| `(.*?)` \|", table, re.MULTILINE)
        assert row, f"{CONFIGURATION_DOC} has no row for {setting.name} (paste `make config`)"
        assert row.group(1) == setting.default, f"{CONFIGURATION_DOC} shows another default for {setting.name}"


def test_names_are_unique():
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names))


def test_an_unset_or_empty_variable_takes_the_default():
    assert settings.get_int("APPS", {}) == 3
    assert settings.get_int("APPS", {"APPS": " "}) == 3
    assert settings.get_int("APPS", {"APPS": "5"}) == 5


@pytest.mark.parametrize(
    ("getter", "name", "value", "message"),
    [
        (settings.get_int, "APPS", "three", "APPS='three' is not an integer"),
        (settings.get_float, "REDIS_SOCKET_TIMEOUT_S", "soon", "is not a number"),
        (settings.get_float, "REDIS_SOCKET_TIMEOUT_S", "-1", "must not be negative"),
        (settings.get_bool, "SESSION_COOKIE_SECURE", "maybe", "use true or false"),
        (settings.get_addresses, "SENTINELS", "127.0.0.1", "is not host:port"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_fix(getter, name, value, message):
    with pytest.raises(settings.ConfigError, match=re.escape(message)):
        getter(name, {name: value})


def test_sentinel_addresses_are_parsed():
    assert settings.get_addresses("SENTINELS", {"SENTINELS": "a:1, b:2"}) == [("a", 1), ("b", 2)]


def test_the_redis_password_can_come_from_a_secret_file(tmp_path):
    secret = tmp_path / "redis_password"
    secret.write_text("from-the-secret\n")
    assert settings.redis_password({"REDIS_PASSWORD": "plain"}) == "plain"
    assert settings.redis_password({"REDIS_PASSWORD": "plain", "REDIS_PASSWORD_FILE": str(secret)}) == "from-the-secret"
    with pytest.raises(settings.ConfigError, match=r"REDIS_PASSWORD_FILE=.* cannot be read .*mount the secret there"):
        settings.redis_password({"REDIS_PASSWORD_FILE": str(tmp_path / "missing")})


def test_each_setting_has_one_owner_the_app_reads_only_its_own():
    import re

    from sessionproof_app import settings as app_settings

    app_names = {s.name for s in app_settings.SETTINGS}
    harness_names = {s.name for s in settings.HARNESS_SETTINGS}
    assert not app_names & harness_names
    app_code = "".join(p.read_text() for p in (REPO_ROOT / "services" / "app").rglob("*.py"))
    read_by_app = set(re.findall(r'get_(?:str|int|float|bool|choice|addresses)\(\s*"([A-Z_0-9]+)"', app_code))
    assert read_by_app, "found no settings read by the app: the pattern is broken"
    assert read_by_app <= app_names, f"the app reads harness settings: {sorted(read_by_app - app_names)}"
    assert not harness_names & set(re.findall(r'"([A-Z][A-Z_0-9]+)"', app_code)), "harness names in the app"
