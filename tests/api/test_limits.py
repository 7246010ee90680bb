"""Limits: token buckets per client and route class (a fake clock, no sleeps), the
client's IP (``X-Forwarded-For`` believed only from trusted proxies), caps on sessions
and sandboxes, admission by free memory, request sizes."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.api import _limits
from orchestrator.api._limits import (
    RateLimiter,
    client_ip,
    parse_networks,
    parse_rate,
    read_mem_available_mb,
)
from orchestrator.api.app import MAX_BODY_BYTES, rate_limiter
from orchestrator.config import ConfigError, Settings
from orchestrator.sandboxes.base import SandboxError

from .support import running_api


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the token bucket -------------------------------------------------------------------


def test_a_bucket_empties_then_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"create": (3, 30.0), "default": (100, 1.0)}, clock=clock)
    assert [limiter.take("1.2.3.4", "create") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("1.2.3.4", "create") == pytest.approx(10.0)  # one every 10 s
    # the other class, the other client: their own buckets
    assert limiter.take("1.2.3.4", "default") == 0.0
    assert limiter.take("5.6.7.8", "create") == 0.0
    clock.now += 9.0
    assert limiter.take("1.2.3.4", "create") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.take("1.2.3.4", "create") == 0.0
    assert limiter.take("1.2.3.4", "create") > 0
    clock.now += 3600  # refilled, never above the burst
    assert [limiter.take("1.2.3.4", "create") for _ in range(4)][-1] > 0


def test_no_limit_and_bounded_memory() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"default": None, "create": (2, 10.0)}, clock=clock, max_buckets=50)
    assert all(limiter.take("1.1.1.1", "default") == 0.0 for _ in range(1000))
    assert len(limiter) == 0  # no bucket for an unlimited class
    for i in range(500):  # many clients: the least recently seen are forgotten
        limiter.take(f"10.0.{i // 256}.{i % 256}", "create")
    assert len(limiter) == 50
    # full buckets are pruned (no different from new ones); partly spent ones are kept
    limiter.take("9.9.9.9", "create")
    clock.now += 4.0  # 9.9.9.9 is back to 1.8 of 2
    limiter.prune()
    assert len(limiter) == 50
    clock.now += 100.0
    limiter.prune()
    assert len(limiter) == 0
    # pruning also happens by itself as time passes
    for i in range(20):
        limiter.take(f"10.1.0.{i}", "create")
    clock.now += 120.0
    limiter.take("10.2.0.1", "create")
    assert len(limiter) == 1


def test_rate_specs_and_settings() -> None:
    assert parse_rate("600/60") == (600, 60.0)
    assert parse_rate(" 5 ") == (5, 1.0)
    assert parse_rate("off") is None
    assert parse_rate("0") is None
    for bad in ("x/1", "5/0", "-1/5", "5/nan", "5/-1"):
        with pytest.raises(ValueError, match="rate limit"):
            parse_rate(bad)
    settings = Settings.from_env(
        {
            "ORCHESTRATOR_RATE_LIMIT": "100/10",
            "ORCHESTRATOR_CREATE_RATE_LIMIT": "off",
            "ORCHESTRATOR_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16,::1",
            "ORCHESTRATOR_MAX_SESSIONS": "7",
            "ORCHESTRATOR_MAX_SANDBOXES": "0",
            "ORCHESTRATOR_MIN_FREE_MEMORY_MB": "256",
        }
    )
    assert settings.rate_limit == (100, 10.0)
    assert settings.create_rate_limit is None
    assert settings.trusted_proxies == ("10.0.0.1", "192.168.0.0/16", "::1")
    assert (settings.max_sessions, settings.max_sandboxes) == (7, 0)
    assert settings.min_free_memory_mb == 256
    defaults = Settings()
    assert defaults.trusted_proxies == ()  # nobody's X-Forwarded-For is believed
    assert defaults.max_sessions == 50
    for env in (
        {"ORCHESTRATOR_TRUSTED_PROXIES": "10.0.0.1,not-an-ip"},
        {"ORCHESTRATOR_RATE_LIMIT": "lots"},
        {"ORCHESTRATOR_MAX_SESSIONS": "-1"},
        {"ORCHESTRATOR_MIN_FREE_MEMORY_MB": "much"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(env)
    limiter = rate_limiter(settings, clock=FakeClock())
    assert all(limiter.take("a", "create") == 0.0 for _ in range(50))


# -- who the client is ------------------------------------------------------------------


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = parse_networks(["10.0.0.0/8", "::1"])
    # no trusted proxies configured: the socket peer, whatever the header says
    assert client_ip("203.0.113.9", "1.2.3.4", ()) == "203.0.113.9"
    # an untrusted peer: its header is ignored
    assert client_ip("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"
    # a trusted proxy: the right-most address that is not a trusted proxy
    assert client_ip("10.0.0.2", "1.2.3.4", trusted) == "1.2.3.4"
    assert client_ip("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", trusted) == "1.2.3.4"
    # a client cannot pick its address by writing to the left of the proxy's entry
    assert client_ip("10.0.0.2", "spoofed, 6.6.6.6, 1.2.3.4", trusted) == "1.2.3.4"
    # a malformed hop ends the walk at the last address believed
    assert client_ip("10.0.0.2", "1.2.3.4, garbage", trusted) == "10.0.0.2"
    assert client_ip("10.0.0.2", "", trusted) == "10.0.0.2"
    assert client_ip("10.0.0.2", "10.0.0.3, 10.0.0.4", trusted) == "10.0.0.3"
    assert client_ip("::1", "[2001:db8::1]", trusted) == "2001:db8::1"
    assert client_ip("::ffff:10.0.0.2", "1.2.3.4", trusted) == "1.2.3.4"
    assert client_ip(None, "1.2.3.4", trusted) == "unknown"
    assert client_ip("not-an-ip", "1.2.3.4", trusted) == "not-an-ip"
    assert ipaddress.ip_address(client_ip("10.0.0.2", " 1.2.3.4 ", trusted))


# -- over HTTP ---------------------------------------------------------------------------


async def post_room(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.post("/api/rooms", json={"name": "r"}, headers=headers)


async def test_429_after_the_burst_and_again_after_the_refill(tmp_path: Path) -> None:
    clock = FakeClock()
    limiter = RateLimiter({"create": (2, 60.0), "default": (1000, 1.0)}, clock=clock)
    async with running_api(tmp_path, limiter=limiter) as api:
        assert [(await post_room(api.client)).status_code for _ in range(2)] == [201, 201]
        refused = await post_room(api.client)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "30"
        assert refused.json() == {"error": "Too many requests. Please try again later."}
        assert len(await api.orch.rooms()) == 2  # refused: nothing made
        # other routes have their own bucket
        assert (await api.client.get("/api/health")).status_code == 200
        clock.now += 29.0
        again = await post_room(api.client)
        assert (again.status_code, again.headers["Retry-After"]) == (429, "1")
        clock.now += 1.0
        assert (await post_room(api.client)).status_code == 201
        assert (await post_room(api.client)).status_code == 429


async def test_forwarded_for_over_http(tmp_path: Path) -> None:
    clock = FakeClock()
    limits = {"create": (1, 60.0), "default": None}
    # from an untrusted peer (no proxies configured), X-Forwarded-For changes nothing
    async with running_api(tmp_path / "a", limiter=RateLimiter(limits, clock=clock)) as api:
        assert (await post_room(api.client, **{"X-Forwarded-For": "1.1.1.1"})).status_code == 201
        spoofed = await post_room(api.client, **{"X-Forwarded-For": "2.2.2.2"})
        assert spoofed.status_code == 429
    # from a trusted proxy (this test's 127.0.0.1), each forwarded client has its bucket
    async with running_api(
        tmp_path / "b", limiter=RateLimiter(limits, clock=clock), trusted_proxies=("127.0.0.1",)
    ) as api:
        assert (await post_room(api.client, **{"X-Forwarded-For": "1.1.1.1"})).status_code == 201
        assert (await post_room(api.client, **{"X-Forwarded-For": "2.2.2.2"})).status_code == 201
        again = await post_room(api.client, **{"X-Forwarded-For": "6.6.6.6, 1.1.1.1"})
        assert again.status_code == 429  # the right-most untrusted hop: 1.1.1.1
        assert (await post_room(api.client)).status_code == 201  # the proxy itself


# -- caps and admission ------------------------------------------------------------------


async def test_the_session_cap(tmp_path: Path) -> None:
    async with running_api(tmp_path, max_sessions=2) as api:
        made = []
        for _ in range(2):  # sessions waiting at their setup choice: no agent runs
            response = await api.client.post("/api/sessions", json={"description": "x"})
            assert response.status_code == 201
            made.append(response.json())
        refused = await api.client.post("/api/sessions", json={"description": "x"})
        assert refused.status_code == 503
        assert "Too many sessions" in refused.json()["error"]
        assert "ORCHESTRATOR_MAX_SESSIONS" in refused.json()["error"]
        # a create-app room is refused before anything is made
        response = await api.client.post("/api/rooms/create-app", json={"description": "x"})
        assert response.status_code == 503
        assert len(await api.orch.sessions()) == 2
        assert await api.orch.rooms() == []
        # the library refuses too
        with pytest.raises(Exception, match="Too many sessions"):
            await api.orch.create_session("x")
        # one ends: there is room again
        first = made[0]
        headers = {"Authorization": f"Bearer {first['sessionToken']}"}
        response = await api.client.delete(f"/api/sessions/{first['sessionId']}", headers=headers)
        assert response.status_code == 200
        response = await api.client.post("/api/sessions", json={"description": "x"})
        assert response.status_code == 201


async def test_admission_by_free_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_api(tmp_path, min_free_memory_mb=512) as api:
        room = await api.client.post("/api/rooms", json={"name": "r"})
        headers = {"X-Room-Token": room.json()["roomToken"]}
        monkeypatch.setattr(_limits, "meminfo_reader", lambda: 100)
        refused = await api.client.post("/api/sessions", json={"description": "x"})
        assert refused.status_code == 503
        message = refused.json()["error"]
        assert "Not enough free memory" in message
        assert "100 MiB available, 512 MiB needed" in message
        agent = await api.client.post(
            f"/api/rooms/{room.json()['roomId']}/agents", json={"name": "bob"}, headers=headers
        )
        assert agent.status_code == 503
        sandbox = await api.client.post("/api/sandboxes", json={}, headers=api.admin)
        assert sandbox.status_code == 503
        assert await api.orch.sessions() == []
        assert await api.orch.provider.list_owned() == []
        monkeypatch.setattr(_limits, "meminfo_reader", lambda: 513)
        response = await api.client.post("/api/sessions", json={"description": "x"})
        assert response.status_code == 201
        # no /proc/meminfo (another system): no memory floor
        monkeypatch.setattr(_limits, "meminfo_reader", lambda: None)
        response = await api.client.post("/api/sessions", json={"description": "x"})
        assert response.status_code == 201


async def test_the_sandbox_cap(tmp_path: Path) -> None:
    async with running_api(tmp_path, max_sandboxes=1) as api:
        first = await api.client.post("/api/sandboxes", json={}, headers=api.admin)
        assert first.status_code == 201
        second = await api.client.post("/api/sandboxes", json={}, headers=api.admin)
        assert second.status_code == 503
        assert "Too many sandboxes" in second.json()["error"]
        refused = await api.client.post("/api/sessions", json={"description": "x"})
        assert refused.status_code == 503
        assert len(await api.orch.provider.list_owned()) == 1
        sid = first.json()["sessionId"]
        assert (await api.client.delete(f"/api/sandboxes/{sid}", headers=api.admin)).is_success
        assert (await api.client.post("/api/sandboxes", json={}, headers=api.admin)).is_success


def test_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemAvailable:    2097152 kB\n")
    assert read_mem_available_mb(str(meminfo)) == 2048
    meminfo.write_text("MemTotal: 1 kB\n")
    assert read_mem_available_mb(str(meminfo)) is None
    assert read_mem_available_mb(str(tmp_path / "missing")) is None
    assert read_mem_available_mb() is not None  # this machine's


# -- request sizes -----------------------------------------------------------------------


# httpx leaves its own body generator (ByteStream.__aiter__) unfinished when the server
# answers before reading the body: a warning from the client, not from us.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*ByteStream:pytest.PytestUnraisableExceptionWarning"
)
async def test_bodies_over_the_limit_are_413_chunked_too(tmp_path: Path) -> None:
    big = b'{"description": "' + b"x" * MAX_BODY_BYTES + b'"}'

    class Chunks:
        """The body in pieces, as an iterator object: httpx drops it unfinished when
        the server answers 413 early, and a generator would be left to trio's
        finalizer (a ResourceWarning)."""

        def __init__(self) -> None:
            self.start = 0

        def __aiter__(self) -> Chunks:
            return self

        async def __anext__(self) -> bytes:
            if self.start >= len(big):
                raise StopAsyncIteration
            piece = big[self.start : self.start + 65536]
            self.start += 65536
            return piece

    def chunks() -> Chunks:
        return Chunks()

    async with running_api(tmp_path) as api:
        json_type = {"Content-Type": "application/json"}
        response = await api.client.post("/api/sessions", content=big, headers=json_type)
        assert response.status_code == 413
        assert response.json() == {"error": "Payload too large"}
        chunked = await api.client.post("/api/sessions", content=chunks(), headers=json_type)
        assert chunked.request.headers.get("Transfer-Encoding") == "chunked"
        assert chunked.status_code == 413
        # a route that reads no body, a GET: the same
        room = await api.client.post("/api/rooms", json={"name": "r"})
        headers = {"X-Room-Token": room.json()["roomToken"], **json_type}
        close = f"/api/rooms/{room.json()['roomId']}/close"
        assert (await api.client.post(close, content=chunks(), headers=headers)).status_code == 413
        health = await api.client.request("GET", "/api/health", content=big)
        assert health.status_code == 413
        assert await api.orch.sessions() == []
        # just under the limit is read (and validated)
        fits = b'{"description": "' + b"x" * (MAX_BODY_BYTES - 100) + b'"}'
        response = await api.client.post("/api/sessions", content=fits, headers=json_type)
        assert response.status_code == 400
        assert response.json()["details"] == ["body.description: at most 10000 characters"]


async def test_oversized_headers_are_refused_by_hypercorn(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        response = await api.client.get("/api/health", headers={"X-Big": "x" * 100_000})
        assert response.status_code == 431
        many = {f"X-H{i}": "y" * 10 for i in range(5000)}
        assert (await api.client.get("/api/health", headers=many)).status_code == 431
        # the server goes on
        async with httpx.AsyncClient(base_url=api.url) as fresh:
            assert (await fresh.get("/api/health")).status_code == 200


async def test_a_runtime_that_does_not_answer_is_not_a_capacity_refusal() -> None:
    class Down:
        async def list_owned(self) -> list[Any]:
            raise SandboxError("the engine does not answer")

    down: Any = Down()
    assert await _limits._sandbox_cap_refusal(down, 5) is None
