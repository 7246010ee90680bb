from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, Settings


def test_defaults_are_the_embedded_ones() -> None:
    settings = Settings.from_env({})
    assert settings.data_dir == Path(".orchestrator")
    assert (settings.host, settings.port) == ("127.0.0.1", 4400)
    assert settings.sandbox == "auto"
    assert settings.mode == "dev"
    assert not settings.production


def test_environment_then_flags() -> None:
    env = {
        "ORCHESTRATOR_DATA_DIR": "/d",
        "ORCHESTRATOR_PORT": "5000",
        "ORCHESTRATOR_SANDBOX": "local",
        "ORCHESTRATOR_SANDBOX_NETWORK": "none",
        "MAX_SESSION_COST_USD": "0.5",
        "ORCHESTRATOR_MODE": "production",
        "ANTHROPIC_API_KEY": "sk-secret-value",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    }
    settings = Settings.from_env(env, {"port": 6000, "sandbox": None})
    assert settings.data_dir == Path("/d")
    assert settings.port == 6000
    assert settings.sandbox == "local"
    assert settings.sandbox_network == "none"
    assert settings.max_session_cost_usd == 0.5
    assert settings.production
    assert settings.anthropic_api_key == "sk-secret-value"
    assert "sk-secret-value" not in repr(settings)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ORCHESTRATOR_PORT", "http", "port must be a number"),
        ("ORCHESTRATOR_PORT", "70000", "port must be 0-65535"),
        ("ORCHESTRATOR_SANDBOX", "vm", "ORCHESTRATOR_SANDBOX must be one of docker, local, auto"),
        ("ORCHESTRATOR_SANDBOX_NETWORK", "all", "must be one of none, host, bridge"),
        ("MAX_SESSION_COST_USD", "nan", "must be > 0"),
        ("MAX_SESSION_COST_USD", "-1", "must be > 0"),
        ("MAX_SESSION_COST_USD", "five", "must be a number"),
        ("ORCHESTRATOR_MODE", "prod", "must be one of dev, production"),
        ("ORCHESTRATOR_MAX_SANDBOXES_PER_HOST", "-1", "must be >= 0"),
        ("ORCHESTRATOR_MAX_SANDBOXES_PER_HOST", "many", "must be a whole number"),
    ],
)
def test_bad_values_are_refused_clearly(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({key: value})


def test_the_count_limit_per_docker_host() -> None:
    assert Settings.from_env({}).max_sandboxes_per_host == 0  # off
    limited = Settings.from_env({"ORCHESTRATOR_MAX_SANDBOXES_PER_HOST": "3"})
    assert limited.max_sandboxes_per_host == 3
