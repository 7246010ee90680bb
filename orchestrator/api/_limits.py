"""What one client, and all of them together, may ask of the server (reference §14.2 and
weak spot §17.10, done properly):

- **Rate limits**: a token bucket per client IP and route class (creating sessions,
  rooms, agents and sandboxes is the stricter ``create`` class); over it, 429 with
  ``Retry-After``. Idle buckets are dropped (a full bucket is the same as none) and
  there are at most ``max_buckets`` of them: memory stays bounded whoever calls.
- **The client's IP** is the socket peer, or what ``X-Forwarded-For`` says only when
  the peer is one of the configured trusted proxies (``ORCHESTRATOR_TRUSTED_PROXIES``):
  the right-most address that is not itself a trusted proxy.
- **Caps and admission**: a new session is refused (503, with the reason) when the
  server already runs ``max_sessions`` sessions or owns ``max_sandboxes`` sandboxes, or
  when the machine has less than ``min_free_memory_mb`` available (``MemAvailable`` of
  ``/proc/meminfo``). :func:`admission_refusal` is what ``Orchestrator._create`` asks.

Request sizes: bodies over the app's ``MAX_CONTENT_LENGTH`` are 413, chunked ones too
(Quart counts what arrives; the API reads every body before its route runs, and closes
the connection after a 413). Header sizes are hypercorn's, which ``transport.serve`` does
not configure: an HTTP/1.1 request head is parsed from hypercorn's 64 KiB reads with at
most ``h11_max_incomplete_size`` (16 KiB) left over, so a head much over 64 KiB is
refused with 431 (tested); HTTP/2 header lists are capped at
``h2_max_header_list_size`` (64 KiB).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from ..sandboxes.base import SandboxError

if TYPE_CHECKING:
    from ..core import Orchestrator
    from ..sandboxes.base import SandboxProvider

__all__ = [
    "MEMINFO",
    "Network",
    "RateLimiter",
    "RateSpec",
    "admission_refusal",
    "client_ip",
    "live_sessions",
    "parse_networks",
    "parse_rate",
    "read_mem_available_mb",
    "sandbox_refusal",
]

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(burst, seconds)``: at most ``burst`` requests at once, refilled at ``burst`` per
#: ``seconds``; None = no limit
RateSpec = tuple[int, float] | None
MEMINFO = "/proc/meminfo"


def parse_rate(text: str) -> RateSpec:
    """``"600/60"`` (600 requests, refilled over 60 s) → ``(600, 60.0)``; ``"off"`` or
    ``"0"`` → None. Raises ValueError."""
    text = text.strip().lower()
    if text in ("off", "0", "none"):
        return None
    count, sep, seconds = text.partition("/")
    try:
        burst, period = int(count), float(seconds) if sep else 1.0
    except ValueError:
        raise ValueError(f"a rate limit is COUNT/SECONDS (or off), not {text!r}") from None
    if burst < 1 or not (math.isfinite(period) and period > 0):
        raise ValueError(f"a rate limit needs COUNT >= 1 and SECONDS > 0, not {text!r}")
    return burst, period


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """IPs and CIDRs (``10.0.0.1``, ``192.168.0.0/16``, ``::1``). Raises ValueError."""
    found = []
    for item in items:
        item = item.strip()
        if item:
            try:
                found.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
    return tuple(found)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client of a request: the socket ``peer``, unless it is a trusted proxy and
    says who it forwards for (``X-Forwarded-For``): then the right-most address of
    that list that is not a trusted proxy (what a client writes to the left of the
    first untrusted hop is not believed). A malformed hop ends the walk at the last
    address believed."""
    if not peer:
        return "unknown"
    current = _address(peer)
    if current is None:
        return peer
    if not trusted or not forwarded_for:
        return str(current)

    def is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in trusted)

    if not is_trusted(current):
        return str(current)
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            break
        current = address
        if not is_trusted(address):
            break
    return str(current)


@attrs.define
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by ``(client, route class)``. ``clock`` is injectable (tests)."""

    def __init__(
        self,
        limits: Mapping[str, RateSpec],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 10_000,
        prune_every: float = 60.0,
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._max_buckets = max_buckets
        self._prune_every = prune_every
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._pruned = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, route_class: str) -> float:
        """Spend one request of ``client`` on ``route_class``: 0 when allowed, else the
        seconds until the next one is."""
        spec = self._limits.get(route_class)
        if spec is None:
            return 0.0
        burst, period = spec
        rate = burst / period
        now = self._clock()
        if now - self._pruned >= self._prune_every:
            self.prune(now)
        key = (client, route_class)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
            while len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)  # the least recently used
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def prune(self, now: float | None = None) -> None:
        """Forget the buckets that have filled up again (no different from new ones)."""
        now = self._clock() if now is None else now
        self._pruned = now
        for key, bucket in list(self._buckets.items()):
            spec = self._limits.get(key[1])
            if spec is None:
                del self._buckets[key]
                continue
            burst, period = spec
            if bucket.tokens + (now - bucket.updated) * burst / period >= burst:
                del self._buckets[key]


# -- caps and admission ----------------------------------------------------------------


def read_mem_available_mb(path: str = MEMINFO) -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in MiB; None where there is no such file."""
    try:
        with open(path, encoding="ascii", errors="replace") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    fields = line.split()
                    return int(fields[1]) // 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


#: what the admission checks read (tests replace it with a fake)
meminfo_reader: Callable[[], int | None] = read_mem_available_mb


def live_sessions(orch: Orchestrator) -> int:
    """The session actors running now (agent sessions and hook-fed ones)."""
    system = orch._system
    if system is None:
        return 0
    return sum(1 for name in system.registry.names() if name.startswith("session:"))


def _memory_refusal(min_free_mb: int) -> str | None:
    if min_free_mb <= 0:
        return None
    available = meminfo_reader()
    if available is not None and available < min_free_mb:
        return (
            f"Not enough free memory for a new session: {available} MiB available, "
            f"{min_free_mb} MiB needed (ORCHESTRATOR_MIN_FREE_MEMORY_MB). "
            "Try again when other sessions have ended."
        )
    return None


async def _sandbox_cap_refusal(provider: SandboxProvider, max_sandboxes: int) -> str | None:
    if max_sandboxes <= 0:
        return None
    try:
        owned = len(await provider.list_owned())
    except SandboxError as exc:
        # the runtime does not answer: not a capacity question (creating the sandbox
        # will fail, and say so, where it always did)
        logger.warning("sandbox cap not checked: %s", exc)
        return None
    if owned >= max_sandboxes:
        return (
            f"Too many sandboxes: this server keeps at most {max_sandboxes} "
            "(ORCHESTRATOR_MAX_SANDBOXES). Delete a session or sandbox, or try again later."
        )
    return None


async def admission_refusal(orch: Orchestrator) -> str | None:
    """Why a new session may not start now (the caller answers 503), or None."""
    settings = orch.settings
    if settings.max_sessions > 0 and live_sessions(orch) >= settings.max_sessions:
        return (
            f"Too many sessions: this server runs at most {settings.max_sessions} at once "
            "(ORCHESTRATOR_MAX_SESSIONS). Try again when one has ended."
        )
    return _memory_refusal(settings.min_free_memory_mb) or await _sandbox_cap_refusal(
        orch.provider, settings.max_sandboxes
    )


async def sandbox_refusal(orch: Orchestrator) -> str | None:
    """Why a sandbox without a session may not be made now, or None."""
    settings = orch.settings
    return _memory_refusal(settings.min_free_memory_mb) or await _sandbox_cap_refusal(
        orch.provider, settings.max_sandboxes
    )
