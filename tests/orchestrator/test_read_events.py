"""Every record of a stream has its own position, and resuming from any position
gives exactly the records after it (also inside an append of several records)."""

from __future__ import annotations

import json
from contextlib import aclosing

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core import read_events, split_position
from transport import AppendRequest, CreateRequest, MemoryStore

PATH = "/v1/stream/t"


async def all_from(store: MemoryStore, position: str) -> list[tuple[str, int]]:
    found = []
    async with aclosing(read_events(store, PATH, position, follow=False)) as items:
        async for item in items:
            found.append((item.offset, item.raw["n"]))
    return found


async def fill(store: MemoryStore, appends: list[int]) -> None:
    await store.create(PATH, CreateRequest(content_type="application/json"))
    n = 0
    for size in appends:
        body = [{"type": "log", "level": "system", "message": "m", "n": n + i} for i in range(size)]
        n += size
        await store.append(
            PATH, AppendRequest(body=json.dumps(body).encode(), content_type="application/json")
        )


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=8))
def test_positions_are_unique_and_resume_exactly(appends: list[int]) -> None:
    async def check() -> None:
        async with MemoryStore() as store:
            await fill(store, appends)
            records = await all_from(store, "-1")
            total = sum(appends)
            assert [n for _, n in records] == list(range(total))
            positions = [p for p, _ in records]
            assert len(set(positions)) == total
            for index, (position, _) in enumerate(records):
                rest = await all_from(store, position)
                assert [n for _, n in rest] == list(range(index + 1, total))

    trio.run(check)


def test_malformed_positions_are_refused() -> None:
    assert split_position("abc") == ("abc", 0)
    assert split_position("abc~3") == ("abc", 3)
    for bad in ("abc~", "abc~0", "abc~-1", "abc~x", "abc~1234567"):
        with pytest.raises(ValueError, match="not a stream position"):
            split_position(bad)


async def test_a_reader_from_now_gets_positions_that_resume_exactly() -> None:
    # a reader that starts at the tail, then an append of three records: each position
    # it hands out names a real offset (never "now~k") and resumes after its record
    async with MemoryStore() as store, trio.open_nursery() as nursery:
        await fill(store, [2])
        seen: list[tuple[str, int]] = []
        started = trio.Event()

        async def follow() -> None:
            async with aclosing(read_events(store, PATH, "now", wait=5)) as items:
                started.set()
                async for item in items:
                    seen.append((item.offset, item.raw["n"]))
                    if len(seen) == 3:
                        return

        nursery.start_soon(follow)
        await started.wait()
        await trio.sleep(0.05)  # the reader is waiting at the tail
        body = [{"type": "log", "level": "system", "message": "m", "n": n} for n in (2, 3, 4)]
        await store.append(
            PATH, AppendRequest(body=json.dumps(body).encode(), content_type="application/json")
        )
    assert [n for _, n in seen] == [2, 3, 4]
    for index, (position, _) in enumerate(seen):
        assert not position.startswith("now")
        assert [n for _, n in await all_from(store, position)] == [2, 3, 4][index + 1 :]
