"""Crash test: our server with the on-disk store in a subprocess, writers appending and
recording what was acknowledged, ``kill -9`` at random moments, restart. Every
acknowledged append is there byte for byte at the offset it was acknowledged with,
offsets only grow, and the stream holds whole records only (nothing half-written)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import httpx
import pytest
import trio

from .server_proc import streams_server

RECORD = re.compile(rb"<(\d+):(\d+):(\d+):x*>")
ROUNDS = 5
WRITERS = 4


def record(writer: int, seq: int, rnd: int) -> bytes:
    pad = (writer * 7 + seq * 13) % 200
    return f"<{writer}:{seq}:{rnd}:{'x' * pad}>".encode()


async def read_everything(client: httpx.AsyncClient, url: str) -> tuple[bytes, list[str]]:
    data, offsets, offset = b"", [], "-1"
    while True:
        response = await client.get(url, params={"offset": offset})
        response.raise_for_status()
        data += response.content
        offset = response.headers["Stream-Next-Offset"]
        offsets.append(offset)
        if response.headers.get("Stream-Up-To-Date") == "true":
            return data, offsets


# A request cut off by the kill leaves httpx's request-body generator unfinished; it is
# collected later with a ResourceWarning that says nothing about our server.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_acknowledged_appends_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    data_dir = tmp_path / "data"
    acked: dict[bytes, int] = {}  # record -> the offset its append was acknowledged with
    seq = [0] * WRITERS
    last_tail = 0
    async with httpx.AsyncClient(timeout=10) as client:
        for rnd in range(ROUNDS):
            with streams_server(tmp_path / "logs", data_dir=data_dir) as server:
                url = f"{server.url}/v1/stream/crash"
                if rnd == 0:
                    created = await client.put(url, headers={"Content-Type": "text/plain"})
                    assert created.status_code == 201

                async def writer(w: int, url: str = url, rnd: int = rnd) -> None:
                    while True:
                        body = record(w, seq[w], rnd)
                        seq[w] += 1
                        try:
                            response = await client.post(
                                url, content=body, headers={"Content-Type": "text/plain"}
                            )
                        except httpx.TransportError:
                            return  # the server died under us: this one is unknown
                        assert response.status_code == 204, response.text
                        offset = int(response.headers["Stream-Next-Offset"].replace("_", ""))
                        acked[body] = offset

                async with trio.open_nursery() as nursery:
                    for w in range(WRITERS):
                        nursery.start_soon(writer, w)
                    await trio.sleep(rng.uniform(0.05, 0.6))
                    server.kill()

            with streams_server(tmp_path / "logs", data_dir=data_dir) as server:
                url = f"{server.url}/v1/stream/crash"
                data, offsets = await read_everything(client, url)
            positions = [int(o.replace("_", "")) for o in offsets]
            assert positions == sorted(positions)
            assert positions[-1] == len(data) >= last_tail
            last_tail = len(data)
            # whole records only, back to back
            assert b"".join(m.group(0) for m in RECORD.finditer(data)) == data
            for body, end in acked.items():
                assert data[end - len(body) : end] == body, f"lost acknowledged {body[:20]!r}"
    assert len(acked) > 50  # the test did write under load
