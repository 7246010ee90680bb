"""Settings, from flags or the environment (flags win).

| Setting | Environment | Default |
|---|---|---|
| data_dir | ``ORCHESTRATOR_DATA_DIR`` | ``./.orchestrator`` |
| host, port | ``ORCHESTRATOR_HOST``, ``ORCHESTRATOR_PORT`` | ``127.0.0.1``, ``4400`` |
| sandbox | ``ORCHESTRATOR_SANDBOX`` (``docker`` / ``local`` / ``auto``) | ``auto`` |
| docker_hosts | ``ORCHESTRATOR_DOCKER_HOSTS`` (comma-separated ``DOCKER_HOST`` values) | none |
| sandbox_network | ``ORCHESTRATOR_SANDBOX_NETWORK`` (``none`` / ``host`` / ``bridge``) | ``host`` |
| image | ``ORCHESTRATOR_IMAGE`` | ``agent-orchestrator/debian:bookworm-1`` |
| max_session_cost_usd | ``MAX_SESSION_COST_USD`` | ``5`` |
| max_room_cost_usd | ``ORCHESTRATOR_MAX_ROOM_COST_USD`` (a room's default budget) | ``20`` |
| streams_url | ``ORCHESTRATOR_STREAMS_URL`` (an external Durable Streams server) | unset |
| mode | ``ORCHESTRATOR_MODE`` (``dev`` / ``production``) | ``dev`` |
| model | ``ORCHESTRATOR_MODEL`` | ``claude-sonnet-4-6`` |
| anthropic_api_key, anthropic_base_url | ``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL`` | unset |
| openai_api_key (Codex) | ``OPENAI_API_KEY`` | unset |
| openai_base_url (Codex) | ``ORCHESTRATOR_OPENAI_BASE_URL`` | ``https://api.openai.com/v1`` |
| electric_api_base_url | ``ELECTRIC_API_BASE_URL`` | the Electric Cloud claim API |
| electric_dashboard_url | ``ELECTRIC_DASHBOARD_URL`` | the Electric Cloud dashboard |
| max_sessions | ``ORCHESTRATOR_MAX_SESSIONS`` (live sessions) | ``50`` |
| max_sandboxes | ``ORCHESTRATOR_MAX_SANDBOXES`` (sandboxes owned) | ``50`` |
| max_sandboxes_per_host | ``ORCHESTRATOR_MAX_SANDBOXES_PER_HOST`` (one engine) | ``0`` (off) |
| min_free_memory_mb | ``ORCHESTRATOR_MIN_FREE_MEMORY_MB`` (to start a session) | ``512`` |
| trusted_proxies | ``ORCHESTRATOR_TRUSTED_PROXIES`` (IPs/CIDRs, comma-separated) | none |
| rate_limit | ``ORCHESTRATOR_RATE_LIMIT`` (per client IP, every route) | ``600/60`` |
| create_rate_limit | ``ORCHESTRATOR_CREATE_RATE_LIMIT`` (creating things) | ``30/300`` |

The caps and the memory floor are off at ``0``. Only a request whose socket peer is one of
``trusted_proxies`` is believed about its client (``X-Forwarded-For``). Creating sessions,
rooms, agents and sandboxes is the ``create`` class of rate limits; the rest ``rate_limit``.
A rate limit ``COUNT/SECONDS`` is a token bucket: ``COUNT`` requests at once, refilled at
``COUNT`` per ``SECONDS``; over it a client gets 429 with ``Retry-After``.

``docker_hosts``: with ``sandbox`` ``docker`` or ``auto``, sandboxes are placed across
these engines (``unix:///var/run/docker.sock,tcp://10.0.0.2:2376``; see
``docs/scaling.md``); none: the one engine the environment names.

``sandbox_network`` defaults to ``host`` because an agent must reach its model endpoint
(a local one on 127.0.0.1 included); ``none`` isolates it completely.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import attrs

from .api._limits import parse_networks, parse_rate

__all__ = ["ConfigError", "Mode", "SandboxKind", "Settings"]

SandboxKind = Literal["docker", "local", "auto"]
NetworkKind = Literal["none", "host", "bridge"]
Mode = Literal["dev", "production"]


class ConfigError(ValueError):
    """A setting has a value it cannot take."""


def _choice(name: str, value: str, allowed: Any) -> str:
    options = get_args(allowed)
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}, not {value!r}")
    return value


def _docker_hosts(value: str | Sequence[str]) -> tuple[str, ...]:
    """A comma-separated list (or a sequence) of ``DOCKER_HOST`` values, each once."""
    items = value.split(",") if isinstance(value, str) else list(value)
    hosts = tuple(str(item).strip() for item in items if str(item).strip())
    for host in hosts:
        scheme, sep, rest = host.partition("://")
        if not sep or not scheme or not rest:
            raise ConfigError(
                f"ORCHESTRATOR_DOCKER_HOSTS: {host!r} is no DOCKER_HOST value "
                "(unix:///path, tcp://host:port, ssh://user@host)"
            )
    if len(set(hosts)) != len(hosts):
        raise ConfigError(f"ORCHESTRATOR_DOCKER_HOSTS names a host twice: {', '.join(hosts)}")
    return hosts


@attrs.frozen(kw_only=True)
class Settings:
    data_dir: Path = Path(".orchestrator")
    host: str = "127.0.0.1"
    port: int = 4400
    sandbox: SandboxKind = "auto"
    docker_hosts: tuple[str, ...] = ()
    docker_watch_seconds: float = 5.0  # health checks of docker_hosts (library only)
    sandbox_network: NetworkKind = "host"
    image: str = "agent-orchestrator/debian:bookworm-1"
    max_session_cost_usd: float = 5.0
    max_room_cost_usd: float = 20.0
    # An external Durable Streams server (its stream base URL, e.g.
    # http://host:4437/v1/stream) instead of the embedded on-disk store.
    streams_url: str | None = None
    mode: Mode = "dev"
    model: str = "claude-sonnet-4-6"
    anthropic_api_key: str | None = attrs.field(default=None, repr=False)
    anthropic_base_url: str | None = None
    # Codex: a Responses API endpoint (it ignores OPENAI_BASE_URL itself) and its key.
    openai_api_key: str | None = attrs.field(default=None, repr=False)
    openai_base_url: str | None = None
    electric_api_base_url: str = "https://dashboard.electric-sql.cloud/api"
    electric_dashboard_url: str = "https://dashboard.electric-sql.cloud"
    # Limits (orchestrator.api._limits): caps, admission, rate limits per client.
    max_sessions: int = 50
    max_sandboxes: int = 50
    max_sandboxes_per_host: int = 0  # with docker_hosts: running sandboxes on one engine
    min_free_memory_mb: int = 512
    trusted_proxies: tuple[str, ...] = ()
    rate_limit: tuple[int, float] | None = (600, 60.0)
    create_rate_limit: tuple[int, float] | None = (30, 300.0)

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Settings from ``environ``, then ``overrides`` (flags; ``None`` = not given)."""
        values: dict[str, Any] = {}
        env = {k: v for k, v in environ.items() if v != ""}
        if "ORCHESTRATOR_DATA_DIR" in env:
            values["data_dir"] = Path(env["ORCHESTRATOR_DATA_DIR"])
        if "ORCHESTRATOR_HOST" in env:
            values["host"] = env["ORCHESTRATOR_HOST"]
        if "ORCHESTRATOR_PORT" in env:
            values["port"] = env["ORCHESTRATOR_PORT"]
        for key, name in (
            ("ORCHESTRATOR_SANDBOX", "sandbox"),
            ("ORCHESTRATOR_DOCKER_HOSTS", "docker_hosts"),
            ("ORCHESTRATOR_SANDBOX_NETWORK", "sandbox_network"),
            ("ORCHESTRATOR_IMAGE", "image"),
            ("MAX_SESSION_COST_USD", "max_session_cost_usd"),
            ("ORCHESTRATOR_MAX_ROOM_COST_USD", "max_room_cost_usd"),
            ("ORCHESTRATOR_STREAMS_URL", "streams_url"),
            ("ORCHESTRATOR_MODE", "mode"),
            ("ORCHESTRATOR_MODEL", "model"),
            ("ANTHROPIC_API_KEY", "anthropic_api_key"),
            ("ANTHROPIC_BASE_URL", "anthropic_base_url"),
            ("OPENAI_API_KEY", "openai_api_key"),
            ("ORCHESTRATOR_OPENAI_BASE_URL", "openai_base_url"),
            ("ELECTRIC_API_BASE_URL", "electric_api_base_url"),
            ("ELECTRIC_DASHBOARD_URL", "electric_dashboard_url"),
            ("ORCHESTRATOR_MAX_SESSIONS", "max_sessions"),
            ("ORCHESTRATOR_MAX_SANDBOXES", "max_sandboxes"),
            ("ORCHESTRATOR_MAX_SANDBOXES_PER_HOST", "max_sandboxes_per_host"),
            ("ORCHESTRATOR_MIN_FREE_MEMORY_MB", "min_free_memory_mb"),
            ("ORCHESTRATOR_TRUSTED_PROXIES", "trusted_proxies"),
            ("ORCHESTRATOR_RATE_LIMIT", "rate_limit"),
            ("ORCHESTRATOR_CREATE_RATE_LIMIT", "create_rate_limit"),
        ):
            if key in env:
                values[name] = env[key]
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls.checked(**values)

    @classmethod
    def checked(cls, **values: Any) -> Settings:
        """Build from raw values (strings allowed), with clear errors."""
        if "port" in values:
            try:
                port = int(values["port"])
            except (TypeError, ValueError):
                raise ConfigError(f"port must be a number, not {values['port']!r}") from None
            if not 0 <= port <= 65535:
                raise ConfigError(f"port must be 0-65535, not {port}")
            values["port"] = port
        for key, env in (
            ("max_session_cost_usd", "MAX_SESSION_COST_USD"),
            ("max_room_cost_usd", "ORCHESTRATOR_MAX_ROOM_COST_USD"),
        ):
            if key in values:
                try:
                    cost = float(values[key])
                except (TypeError, ValueError):
                    raise ConfigError(f"{env} must be a number, not {values[key]!r}") from None
                if math.isnan(cost) or cost <= 0:
                    raise ConfigError(f"{env} must be > 0, not {cost}")
                values[key] = cost
        if "sandbox" in values:
            values["sandbox"] = _choice("ORCHESTRATOR_SANDBOX", values["sandbox"], SandboxKind)
        if "docker_hosts" in values:
            values["docker_hosts"] = _docker_hosts(values["docker_hosts"])
        if "sandbox_network" in values:
            values["sandbox_network"] = _choice(
                "ORCHESTRATOR_SANDBOX_NETWORK", values["sandbox_network"], NetworkKind
            )
        if "mode" in values:
            values["mode"] = _choice("ORCHESTRATOR_MODE", values["mode"], Mode)
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        _check_limits(values)
        return cls(**values)


def _check_limits(values: dict[str, Any]) -> None:
    """The limits' settings, from strings (the environment) or values, in place."""
    for key, env in (
        ("max_sessions", "ORCHESTRATOR_MAX_SESSIONS"),
        ("max_sandboxes", "ORCHESTRATOR_MAX_SANDBOXES"),
        ("max_sandboxes_per_host", "ORCHESTRATOR_MAX_SANDBOXES_PER_HOST"),
        ("min_free_memory_mb", "ORCHESTRATOR_MIN_FREE_MEMORY_MB"),
    ):
        if key in values:
            try:
                number = int(values[key])
            except (TypeError, ValueError):
                raise ConfigError(f"{env} must be a whole number, not {values[key]!r}") from None
            if number < 0:
                raise ConfigError(f"{env} must be >= 0 (0: off), not {number}")
            values[key] = number
    if "trusted_proxies" in values:
        proxies = values["trusted_proxies"]
        items = proxies.split(",") if isinstance(proxies, str) else list(proxies)
        try:
            parse_networks(items)
        except ValueError as exc:
            raise ConfigError(f"ORCHESTRATOR_TRUSTED_PROXIES: {exc}") from None
        values["trusted_proxies"] = tuple(item.strip() for item in items if item.strip())
    for key, env in (
        ("rate_limit", "ORCHESTRATOR_RATE_LIMIT"),
        ("create_rate_limit", "ORCHESTRATOR_CREATE_RATE_LIMIT"),
    ):
        if isinstance(values.get(key), str):
            try:
                values[key] = parse_rate(values[key])
            except ValueError as exc:
                raise ConfigError(f"{env}: {exc}") from None
