"""Durable Streams benchmark: our server (on-disk store) beside the npm reference server
(``@durable-streams/server@0.3.7``, in memory), both on loopback, measured by the same
client (httpx on trio) in the same run.

    python -m bench.streams [--quick]

Figures, per server, then ours/reference:

- append -> long-poll delivery latency, p50 and p99 (a reader parked at the tail);
- small messages (100 B): batched (100 per POST, messages/s) and unbatched (one POST
  each, 16 in flight, requests/s);
- 1 MiB messages (4 in flight, messages/s);
- fan-out: N concurrent SSE readers of one stream, append -> delivery p99;
- catch-up read of a stream of 100,000 messages (seconds).

Targets (issue 3): latency ratio <= 1.0, throughput ratios >= 1.0, fan-out p99 <= 50 ms.
The last line holds every figure as ``key=value``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import attrs
import httpx
import trio

from tests.node_support import reference_server
from tests.transport.server_proc import streams_server

_IDS = re.compile(rb'"i":(\d+)')


@attrs.define
class Sizes:
    latency_rounds: int = 200
    small_batched: int = 100_000
    small_unbatched: int = 5_000
    large: int = 50
    fanout_readers: int = 1_000
    fanout_messages: int = 20
    catchup: int = 100_000


QUICK = Sizes(20, 2_000, 200, 4, 50, 5, 2_000)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Bench:
    def __init__(self, client: httpx.AsyncClient, base: str, name: str) -> None:
        self.client = client
        self.base = base
        self.name = name
        self.counter = 0

    async def new_stream(self, content_type: str = "application/json") -> str:
        self.counter += 1
        url = f"{self.base}/v1/stream/bench-{self.name}-{self.counter}-{time.time_ns()}"
        response = await self.client.put(url, headers={"Content-Type": content_type})
        assert response.status_code == 201, response.text
        return url

    async def post(self, url: str, body: bytes, content_type: str = "application/json") -> str:
        response = await self.client.post(url, content=body, headers={"Content-Type": content_type})
        assert response.status_code in (200, 204), response.text
        return response.headers["Stream-Next-Offset"]

    # -- scenarios -----------------------------------------------------------------------

    async def latency(self, rounds: int) -> tuple[float, float]:
        url = await self.new_stream()
        offset = (await self.client.head(url)).headers["Stream-Next-Offset"]
        samples: list[float] = []
        message = json.dumps({"payload": "x" * 90}).encode()
        for _ in range(rounds):
            received: list[float] = []

            async def poll(at: str = offset, out: list[float] = received) -> None:
                response = await self.client.get(url, params={"offset": at, "live": "long-poll"})
                assert response.status_code == 200, response.status_code
                out.append(time.perf_counter())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.sleep(0.003)  # the poll is parked at the tail
                sent = time.perf_counter()
                offset = await self.post(url, message)
            samples.append(received[0] - sent)
        return percentile(samples, 50) * 1e3, percentile(samples, 99) * 1e3

    async def in_flight(self, jobs: int, width: int, job: Callable[[], Awaitable[object]]) -> float:
        remaining = [jobs]

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await job()

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(width):
                nursery.start_soon(worker)
        return time.perf_counter() - start

    async def small_batched(self, messages: int) -> float:
        url = await self.new_stream()
        batch = json.dumps([{"payload": "x" * 80, "i": i} for i in range(100)]).encode()
        seconds = await self.in_flight(messages // 100, 4, lambda: self.post(url, batch))
        return messages / seconds

    async def small_unbatched(self, requests: int) -> float:
        url = await self.new_stream()
        body = json.dumps({"payload": "x" * 90}).encode()
        seconds = await self.in_flight(requests, 16, lambda: self.post(url, body))
        return requests / seconds

    async def large(self, messages: int) -> float:
        url = await self.new_stream("application/octet-stream")
        body = b"m" * (1 << 20)
        seconds = await self.in_flight(
            messages, 4, lambda: self.post(url, body, "application/octet-stream")
        )
        return messages / seconds

    async def fanout(self, readers: int, messages: int) -> float:
        """Readers are raw sockets that only look for each message's id, so that the
        figure is the server's fan-out and not this client's SSE parsing."""
        url = httpx.URL(await self.new_stream())
        tail = (await self.client.head(url)).headers["Stream-Next-Offset"]
        target = f"{url.raw_path.decode()}?offset={tail}&live=sse"
        request = f"GET {target} HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode()
        sent: dict[int, float] = {}
        delays: list[float] = []
        connected = trio.Semaphore(0)

        async def reader() -> None:
            stream = await trio.open_tcp_stream(url.host, url.port or 80)
            async with stream:
                await stream.send_all(request)
                seen, buffered, first = 0, b"", True
                while seen < messages:
                    chunk = await stream.receive_some(65536)
                    arrived = time.perf_counter()
                    if not chunk:
                        raise RuntimeError("the server closed an SSE stream early")
                    buffered += chunk
                    if first and b"event: control" in buffered:
                        first = False
                        connected.release()
                    ids = _IDS.findall(buffered)
                    if ids:
                        buffered = buffered[buffered.rindex(b'"i":') + 4 :]
                    for found in ids:
                        delays.append(arrived - sent[int(found)])
                        seen += 1

        async with trio.open_nursery() as nursery:
            for _ in range(readers):
                nursery.start_soon(reader)
            for _ in range(readers):
                await connected.acquire()
            for i in range(messages):
                await trio.sleep(0.1)
                sent[i] = time.perf_counter()
                await self.post(str(url), json.dumps({"i": i}).encode())
        assert len(delays) == readers * messages, (len(delays), readers * messages)
        return percentile(delays, 99) * 1e3

    async def catchup(self, messages: int) -> float:
        url = await self.new_stream()
        per_post = 1000
        batch = json.dumps([{"payload": "x" * 40} for _ in range(per_post)]).encode()
        await self.in_flight(messages // per_post, 4, lambda: self.post(url, batch))
        start = time.perf_counter()
        offset, count = "-1", 0
        while True:
            response = await self.client.get(url, params={"offset": offset})
            count += len(response.json())
            offset = response.headers["Stream-Next-Offset"]
            if response.headers.get("Stream-Up-To-Date") == "true":
                break
        seconds = time.perf_counter() - start
        assert count == messages, (count, messages)
        return seconds


@attrs.define
class Figures:
    latency_p50_ms: float
    latency_p99_ms: float
    small_batched_msgs_s: float
    small_unbatched_req_s: float
    large_msgs_s: float
    fanout_p99_ms: float
    catchup_s: float


async def measure(base: str, name: str, sizes: Sizes) -> Figures:
    limits = httpx.Limits(max_connections=sizes.fanout_readers + 64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        bench = Bench(client, base, name)
        p50, p99 = await bench.latency(sizes.latency_rounds)
        return Figures(
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            small_batched_msgs_s=await bench.small_batched(sizes.small_batched),
            small_unbatched_req_s=await bench.small_unbatched(sizes.small_unbatched),
            large_msgs_s=await bench.large(sizes.large),
            fanout_p99_ms=await bench.fanout(sizes.fanout_readers, sizes.fanout_messages),
            catchup_s=await bench.catchup(sizes.catchup),
        )


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[tuple[str, str]]:
    with (
        streams_server(tmp / "logs", data_dir=tmp / "data", long_poll_timeout=30) as ours,
        reference_server(long_poll_ms=30_000) as reference,
    ):
        yield ours.url, reference


def report(ours: Figures, ref: Figures) -> dict[str, str]:
    rows = [
        ("latency p50 (ms)", ours.latency_p50_ms, ref.latency_p50_ms),
        ("latency p99 (ms)", ours.latency_p99_ms, ref.latency_p99_ms),
        ("small batched (msg/s)", ours.small_batched_msgs_s, ref.small_batched_msgs_s),
        ("small unbatched (req/s)", ours.small_unbatched_req_s, ref.small_unbatched_req_s),
        ("1 MiB (msg/s)", ours.large_msgs_s, ref.large_msgs_s),
        ("fan-out p99 (ms)", ours.fanout_p99_ms, ref.fanout_p99_ms),
        ("catch-up (s)", ours.catchup_s, ref.catchup_s),
    ]
    print(f"{'':26}{'ours':>12}{'reference':>12}{'ours/ref':>10}")
    for label, mine, theirs in rows:
        print(f"{label:26}{mine:12.2f}{theirs:12.2f}{mine / theirs:10.2f}")
    return {
        "latency_p50_ms": f"{ours.latency_p50_ms:.2f}",
        "latency_p99_ms": f"{ours.latency_p99_ms:.2f}",
        "latency_p50_ratio": f"{ours.latency_p50_ms / ref.latency_p50_ms:.2f}",
        "latency_p99_ratio": f"{ours.latency_p99_ms / ref.latency_p99_ms:.2f}",
        "small_msgs_s": f"{ours.small_batched_msgs_s:.0f}",
        "small_msgs_ratio": f"{ours.small_batched_msgs_s / ref.small_batched_msgs_s:.2f}",
        "small_req_s": f"{ours.small_unbatched_req_s:.0f}",
        "small_req_ratio": f"{ours.small_unbatched_req_s / ref.small_unbatched_req_s:.2f}",
        "large_msgs_s": f"{ours.large_msgs_s:.1f}",
        "large_ratio": f"{ours.large_msgs_s / ref.large_msgs_s:.2f}",
        "fanout_p99_ms": f"{ours.fanout_p99_ms:.1f}",
        "fanout_p99_ref_ms": f"{ref.fanout_p99_ms:.1f}",
        "catchup_s": f"{ours.catchup_s:.3f}",
        "catchup_ratio": f"{ours.catchup_s / ref.catchup_s:.2f}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp, servers(Path(tmp)) as urls:
        ours_url, ref_url = urls
        ours = trio.run(measure, ours_url, "ours", sizes)
        ref = trio.run(measure, ref_url, "ref", sizes)
    figures = report(ours, ref)
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
