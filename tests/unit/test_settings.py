"""The settings machinery: readers, defaults, the settings every function reads."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import Settings, boolean, integer, positive


def test_common_defaults_and_version():
    s = Settings.from_env({"TELEMETRY_ENV": "dev", "GATEWAY_VERSION": "v9"})
    assert (s.environment, s.project, s.version) == ("dev", "telemetry-local", "v9")
    assert Settings.from_env({"TELEMETRY_ENV": "prod"}).version == "dev-local"  # nothing staged here


@pytest.mark.parametrize(("env", "message"), [
    ({}, "TELEMETRY_ENV must be one of"),
    ({"TELEMETRY_ENV": "staging"}, r"TELEMETRY_ENV must be one of \('prod', 'dev'\), got 'staging'"),
])
def test_environment_is_required_and_checked(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(("read", "raw", "message"), [
    (integer(minimum=1), "many", "X must be an integer, got 'many'"),
    (integer(minimum=1), "0", "X must be >= 1, got 0"),
    (integer(maximum=3, why="a level"), "4", "X must be <= 3: a level, got 4"),
    (positive, "-1", r"X must be > 0, got -1.0"),
    (positive, "nan", r"X must be > 0, got nan"),
    (boolean, "maybe", "X must be true or false, got 'maybe'"),
])
def test_readers_refuse_with_the_variable_named(read, raw, message):
    with pytest.raises(ConfigError, match=message):
        read("X", raw)


def test_every_declared_setting_is_documented_with_its_default():
    """docs/configuration.md names every setting of both functions and its default."""
    from pathlib import Path

    from shared.ingest.config import IngestConfig
    from shared.sink.config import SinkConfig

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for s in {*IngestConfig.declared(), *SinkConfig.declared()}:
        assert f"`{s.env}`" in doc, s.env
        if isinstance(s.default, int | float) and not isinstance(s.default, bool):
            assert f"{s.default:g}" in doc.replace(",", "") or str(s.default) in doc, (s.env, s.default)
