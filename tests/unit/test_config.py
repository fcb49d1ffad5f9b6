"""Settings: defaults file < CHATD_* environment < flags, and every problem reported by key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from chatd.config import DEFAULTS_FILE, ConfigError, Settings, load_settings


@pytest.fixture
def defaults_file(tmp_path: Path) -> Path:
    path = tmp_path / "chatd.toml"
    path.write_text(
        '[server]\nport = 4000\nlog_level = "WARNING"\ntrust_proxy = true\n'
        '[redis]\nprefix = "fromfile"\n'
        "[limits]\nrate_burst = 7\nhistory = 30\n"
    )
    return path


def test_defaults_file_overrides_builtin_defaults(defaults_file):
    settings = load_settings({}, {}, defaults_file=defaults_file)
    assert settings.server_port == 4000
    assert settings.server_log_level == "WARNING"
    assert settings.server_trust_proxy is True
    assert settings.redis_prefix == "fromfile"
    assert settings.limits_rate_burst == 7
    # Keys the file does not set keep the built-in default.
    assert settings.mongo_db == Settings().mongo_db


def test_environment_overrides_defaults_file(defaults_file):
    env = {"CHATD_SERVER_PORT": "4001", "CHATD_LIMITS_RATE_BURST": " 9 ", "CHATD_MONGO_DB": "envdb"}
    settings = load_settings({}, env, defaults_file=defaults_file)
    assert settings.server_port == 4001
    assert settings.limits_rate_burst == 9
    assert settings.mongo_db == "envdb"
    assert settings.limits_history == 30  # from the file, not in the environment


def test_flags_override_environment_and_file(defaults_file):
    env = {"CHATD_SERVER_PORT": "4001", "CHATD_REDIS_PREFIX": "fromenv"}
    settings = load_settings(
        {"server_port": 4002, "server_host": "127.0.0.1"}, env, defaults_file=defaults_file
    )
    assert settings.server_port == 4002
    assert settings.server_host == "127.0.0.1"
    assert settings.redis_prefix == "fromenv"


def test_flag_not_given_leaves_lower_layers_in_place(defaults_file):
    env = {"CHATD_SERVER_PORT": "4001"}
    settings = load_settings({"server_port": None}, env, defaults_file=defaults_file)
    assert settings.server_port == 4001


def test_missing_defaults_file_falls_back_to_builtin_defaults(tmp_path):
    settings = load_settings({}, {}, defaults_file=tmp_path / "absent.toml")
    assert settings == Settings()


def test_unrelated_environment_variables_are_ignored(defaults_file):
    env = {"CHATD_TEST_REDIS_PORT": "6391", "PATH": "/bin", "chatd_server_port": "1"}
    assert load_settings({}, env, defaults_file=defaults_file).server_port == 4000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_boolean_environment_values_are_parsed(tmp_path, raw, expected):
    env = {"CHATD_SERVER_TRUST_PROXY": raw}
    settings = load_settings({}, env, defaults_file=tmp_path / "absent.toml")
    assert settings.server_trust_proxy is expected


def test_config_error_lists_every_problem_naming_each_key(tmp_path):
    env = {
        "CHATD_SERVER_PORT": "abc",
        "CHATD_SERVER_TRUST_PROXY": "maybe",
        "CHATD_SERVER_DRAIN_SECS": "soon",
        "CHATD_REDIS_URL": "http://127.0.0.1:6379",
        "CHATD_MONGO_URL": "postgres://db",
        "CHATD_MONGO_DB": "bad.name",
        "CHATD_LIMITS_RATE_BURST": "0",
        "CHATD_LIMITS_HISTORY": "5000",
        "CHATD_LIMITS_FRAME_BYTES": "2000000",
        "CHATD_SERVER_CORS_ORIGINS": "*",
        "CHATD_SERVER_LOG_LEVEL": "LOUD",
    }
    with pytest.raises(ConfigError) as info:
        load_settings({}, env, defaults_file=tmp_path / "absent.toml")
    problems = info.value.problems
    for key in env:
        assert sum(key in p for p in problems) == 1, (key, problems)
    assert len(problems) == len(env)
    # The message carries every problem too, one per line.
    assert str(info.value).splitlines() == problems


def test_config_error_from_flags_names_the_environment_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(
            {"server_port": 70000, "server_worker_id": 100},
            {},
            defaults_file=tmp_path / "absent.toml",
        )
    assert len(info.value.problems) == 2
    assert any("CHATD_SERVER_PORT" in p for p in info.value.problems)
    assert any("CHATD_SERVER_WORKER_ID" in p for p in info.value.problems)


def test_bad_values_in_the_defaults_file_are_reported(tmp_path):
    path = tmp_path / "chatd.toml"
    path.write_text('[server]\nport = "x"\n[limits]\nmessage_chars = 0\n[bogus]\na = 1\n')
    with pytest.raises(ConfigError) as info:
        load_settings({}, {}, defaults_file=path)
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert any("CHATD_SERVER_PORT" in p for p in problems)
    assert any("CHATD_LIMITS_MESSAGE_CHARS" in p for p in problems)
    assert any("[bogus]" in p for p in problems)


def test_unknown_key_in_the_defaults_file_is_reported(tmp_path):
    path = tmp_path / "chatd.toml"
    path.write_text("[server]\nprot = 3000\n")
    with pytest.raises(ConfigError, match="server_prot"):
        load_settings({}, {}, defaults_file=path)


def test_malformed_defaults_file_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "chatd.toml"
    path.write_text("[server\nport = \n")
    with pytest.raises(ConfigError) as info:
        load_settings({}, {"CHATD_SERVER_PORT": "x"}, defaults_file=path)
    assert any(str(path) in p for p in info.value.problems)
    assert any("CHATD_SERVER_PORT" in p for p in info.value.problems)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CHATD_SERVER_CORS_ORIGINS", "*"),
        ("CHATD_SERVER_CORS_ORIGINS", "http://ok.example, ftp://bad.example"),
        ("CHATD_LIMITS_FRAME_BYTES", "1000001"),
        ("CHATD_LIMITS_FRAME_BYTES", "1000"),
        ("CHATD_LIMITS_MESSAGE_CHARS", "100001"),
        ("CHATD_REDIS_PREFIX", "a:b"),
        ("CHATD_REDIS_PRESENCE_TTL_SECS", "1"),
        ("CHATD_MONGO_TIMEOUT_SECS", "0"),
        ("CHATD_SERVER_STATIC_DIR", "/nonexistent/chatd-static"),
    ],
)
def test_unsafe_or_impossible_setting_is_refused(tmp_path, key, value):
    with pytest.raises(ConfigError) as info:
        load_settings({}, {key: value}, defaults_file=tmp_path / "absent.toml")
    assert len(info.value.problems) == 1
    assert key in info.value.problems[0]


def test_message_limit_must_fit_in_a_frame(tmp_path):
    env = {"CHATD_LIMITS_MESSAGE_CHARS": "50000", "CHATD_LIMITS_FRAME_BYTES": "100000"}
    with pytest.raises(ConfigError, match="CHATD_LIMITS_FRAME_BYTES"):
        load_settings({}, env, defaults_file=tmp_path / "absent.toml")


def test_allowed_origins_are_split_and_trimmed(tmp_path):
    env = {"CHATD_SERVER_CORS_ORIGINS": " https://a.example/ ,http://b.example:8080,, "}
    settings = load_settings({}, env, defaults_file=tmp_path / "absent.toml")
    assert settings.allowed_origins == ["https://a.example", "http://b.example:8080"]


def test_shipped_defaults_file_documents_every_setting_with_its_builtin_default():
    with DEFAULTS_FILE.open("rb") as fh:
        data = tomllib.load(fh)
    from_file = {
        f"{section}_{key}": value for section, table in data.items() for key, value in table.items()
    }
    builtin = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert from_file == builtin
    assert load_settings({}, {}) == Settings()


def test_env_name_follows_section_and_key():
    assert Settings().env_name("limits_rate_burst") == "CHATD_LIMITS_RATE_BURST"
