"""The embedded stores, through the Store interface: the protocol's rules, the same for
MemoryStore and DiskStore, then what only the disk store promises (durability, group
commit, recovery from torn writes and failed writes)."""

from __future__ import annotations

import os
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from transport import (
    AppendRequest,
    BadRequest,
    Conflict,
    CreateRequest,
    DiskStore,
    Fenced,
    ForkSpec,
    LocalStore,
    MemoryStore,
    Producer,
    SequenceGap,
    StorageError,
    StreamClosed,
    StreamGone,
    StreamNotFound,
    _local,
    format_offset,
)

TEXT = "text/plain"
JSON = "application/json"


@pytest.fixture(params=["memory", "disk", "disk-tiny-cache"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalStore]:
    made: LocalStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "disk":
        made = DiskStore(tmp_path)
    else:  # payloads dropped from memory at once, read back from the logs
        made = DiskStore(tmp_path, cache_bytes=4)
    async with made:
        yield made


def text(body: str, **kwargs: object) -> AppendRequest:
    return AppendRequest(body=body.encode(), content_type=TEXT, **kwargs)  # type: ignore[arg-type]


async def read_all(store: LocalStore, path: str, offset: str = "-1") -> bytes:
    return (await store.read(path, offset)).body()


# -- the protocol's rules ---------------------------------------------------------------


async def test_create_append_read_with_offsets(store: LocalStore) -> None:
    created = await store.create("/s", CreateRequest(content_type=TEXT, body=b"hello"))
    assert created.created
    assert created.info.next_offset == format_offset(5)
    first = await store.append("/s", text(" world"))
    assert first.next_offset == format_offset(11)
    everything = await store.read("/s", "-1")
    assert everything.body() == b"hello world"
    assert everything.up_to_date
    assert everything.next_offset == first.next_offset
    after_hello = await store.read("/s", format_offset(5))
    assert after_hello.body() == b" world"
    at_tail = await store.read("/s", first.next_offset)
    assert at_tail.empty
    assert at_tail.next_offset == first.next_offset
    now = await store.read("/s", "now")
    assert now.empty
    assert now.next_offset == first.next_offset


async def test_idempotent_create_and_config_conflicts(store: LocalStore) -> None:
    await store.create("/s", CreateRequest(content_type=TEXT, ttl=60))
    again = await store.create("/s", CreateRequest(content_type="TEXT/PLAIN; charset=x", ttl=60))
    assert not again.created
    with pytest.raises(Conflict):
        await store.create("/s", CreateRequest(content_type=TEXT, ttl=61))
    with pytest.raises(Conflict):
        await store.create("/s", CreateRequest(content_type=JSON, ttl=60))
    with pytest.raises(Conflict):
        await store.create("/s", CreateRequest(content_type=TEXT, ttl=60, closed=True))


async def test_json_mode_flattens_one_level_and_refuses_bad_json(store: LocalStore) -> None:
    await store.create("/j", CreateRequest(content_type=JSON, body=b"[]"))
    await store.append("/j", AppendRequest(body=b'[1, {"a": [2]}]', content_type=JSON))
    await store.append("/j", AppendRequest(body=b"[[3, 4]]", content_type=JSON))
    await store.append("/j", AppendRequest(body='"é"'.encode(), content_type=JSON))
    assert await read_all(store, "/j") == '[1,{"a":[2]},[3,4],"é"]'.encode()
    for bad in (b"[]", b"{", b"NaN", b"[1, Infinity]", b"\xff"):
        with pytest.raises(BadRequest):
            await store.append("/j", AppendRequest(body=bad, content_type=JSON))
    assert await read_all(store, "/j") == '[1,{"a":[2]},[3,4],"é"]'.encode()


async def test_closing_is_final_and_idempotent(store: LocalStore) -> None:
    await store.create("/s", CreateRequest(content_type=TEXT, body=b"a"))
    closed = await store.append("/s", text("b", close=True))
    assert closed.closed
    with pytest.raises(StreamClosed) as refused:
        await store.append("/s", text("c"))
    assert refused.value.headers == {
        "Stream-Closed": "true",
        "Stream-Next-Offset": closed.next_offset,
    }
    again = await store.append("/s", AppendRequest(close=True))
    assert again.next_offset == closed.next_offset
    result = await store.read("/s", "-1")
    assert result.body() == b"ab"
    assert result.closed
    # a closed stream at its tail answers at once, even when asked to wait
    with trio.fail_after(1):
        assert (await store.read("/s", closed.next_offset, wait=30)).closed


async def test_content_type_and_stream_seq_are_checked(store: LocalStore) -> None:
    await store.create("/s", CreateRequest(content_type=TEXT))
    with pytest.raises(Conflict, match="Content-Type"):
        await store.append("/s", AppendRequest(body=b"x", content_type=JSON))
    await store.append("/s", text("1", stream_seq="09"))
    await store.append("/s", text("2", stream_seq="10"))
    with pytest.raises(Conflict, match="Stream-Seq"):
        await store.append("/s", text("3", stream_seq="10"))
    with pytest.raises(Conflict, match="Stream-Seq"):
        await store.append("/s", text("3", stream_seq="1"))
    assert await read_all(store, "/s") == b"12"


async def test_idempotent_producer(store: LocalStore) -> None:
    await store.create("/s", CreateRequest(content_type=TEXT))
    with pytest.raises(SequenceGap) as gap:
        await store.append("/s", text("x", producer=Producer("p", 0, 3)))
    assert gap.value.headers["Producer-Expected-Seq"] == "0"
    assert (await store.append("/s", text("a", producer=Producer("p", 0, 0)))).producer_seq == 0
    await store.append("/s", text("b", producer=Producer("p", 0, 1)))
    duplicate = await store.append("/s", text("b?", producer=Producer("p", 0, 0)))
    assert duplicate.duplicate
    assert duplicate.producer_seq == 1
    with pytest.raises(SequenceGap) as gap:
        await store.append("/s", text("d", producer=Producer("p", 0, 3)))
    assert gap.value.headers == {"Producer-Expected-Seq": "2", "Producer-Received-Seq": "3"}
    with pytest.raises(BadRequest, match="new producer epoch"):
        await store.append("/s", text("e", producer=Producer("p", 1, 5)))
    await store.append("/s", text("e", producer=Producer("p", 1, 0)))
    with pytest.raises(Fenced) as fenced:
        await store.append("/s", text("zombie", producer=Producer("p", 0, 2)))
    assert fenced.value.headers == {"Producer-Epoch": "1"}
    assert await read_all(store, "/s") == b"abe"


async def test_forks_share_the_prefix_and_nothing_after(store: LocalStore) -> None:
    await store.create("/src", CreateRequest(content_type=TEXT, body=b"hello"))
    middle = (await store.append("/src", text(" big"))).next_offset
    await store.append("/src", text(" world"))
    await store.create("/fork", CreateRequest(fork=ForkSpec("/src", middle)))
    await store.append("/fork", text(" fork"))
    await store.append("/src", text("!"))
    assert await read_all(store, "/fork") == b"hello big fork"
    assert (await store.head("/fork")).content_type == TEXT
    sub = await store.create("/sub", CreateRequest(fork=ForkSpec("/src", format_offset(0), 3)))
    assert sub.created
    assert await read_all(store, "/sub") == b"hel"
    with pytest.raises(BadRequest):
        await store.create("/bad", CreateRequest(fork=ForkSpec("/src", format_offset(10**6))))
    with pytest.raises(StreamNotFound):
        await store.create("/bad", CreateRequest(fork=ForkSpec("/nowhere")))
    # the source, deleted while forks read it, is gone for itself but not for them
    await store.delete("/src")
    with pytest.raises(StreamGone):
        await store.read("/src", "-1")
    with pytest.raises(Conflict):
        await store.create("/src", CreateRequest(content_type=TEXT))
    assert await read_all(store, "/fork") == b"hello big fork"
    await store.delete("/fork")
    await store.delete("/sub")
    with pytest.raises(StreamNotFound):
        await store.head("/src")  # collected with its last fork
    assert (await store.create("/src", CreateRequest(content_type=TEXT))).created


async def test_ttl_slides_on_reads_and_expiry_is_checked_at_access(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(_local, "time", types.SimpleNamespace(time=lambda: now[0]))
    await store.create("/t", CreateRequest(content_type=TEXT, ttl=2))
    now[0] += 1.5
    await store.read("/t", "now")  # refreshes
    now[0] += 1.5
    await store.head("/t")  # does not refresh
    now[0] += 0.6
    with pytest.raises(StreamNotFound):
        await store.head("/t")
    assert (await store.create("/t", CreateRequest(content_type=TEXT))).created


async def test_a_long_poll_wakes_on_append_and_on_close(store: LocalStore) -> None:
    await store.create("/s", CreateRequest(content_type=TEXT))
    tail = (await store.head("/s")).next_offset
    got: list[bytes] = []

    async def reader() -> None:
        got.append((await store.read("/s", tail, wait=30)).body())

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            await store.append("/s", text("x"))
    assert got == [b"x"]
    tail = (await store.head("/s")).next_offset
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            results: list[bool] = []

            async def closer_reader() -> None:
                results.append((await store.read("/s", tail, wait=30)).closed)

            nursery.start_soon(closer_reader)
            await trio.testing.wait_all_tasks_blocked()
            await store.append("/s", AppendRequest(close=True))
    assert results == [True]


async def test_reads_are_paginated_and_exact(tmp_path: Path) -> None:
    async with MemoryStore(max_read_bytes=1000) as store:
        await store.create("/s", CreateRequest(content_type="application/octet-stream"))
        chunks = [bytes([i]) * 300 for i in range(10)]
        for chunk in chunks:
            await store.append(
                "/s", AppendRequest(body=chunk, content_type="application/octet-stream")
            )
        offset, seen, pages = "-1", b"", 0
        while True:
            page = await store.read("/s", offset)
            if page.empty:
                break
            seen += page.body()
            offset = page.next_offset
            pages += 1
            assert page.up_to_date == (seen == b"".join(chunks))
        assert seen == b"".join(chunks)
        assert pages == 4  # 3 records of 300 bytes fit in 1000
        # a record bigger than a page comes alone, and the page says more follow
        await store.create("/big", CreateRequest(content_type="application/octet-stream"))
        for chunk in (b"b" * 2000, b"s" * 10):
            await store.append(
                "/big", AppendRequest(body=chunk, content_type="application/octet-stream")
            )
        first = await store.read("/big", "-1")
        assert first.body() == b"b" * 2000
        assert not first.up_to_date
        rest = await store.read("/big", first.next_offset)
        assert rest.body() == b"s" * 10
        assert rest.up_to_date


# -- what the disk store promises ------------------------------------------------------


async def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    async with DiskStore(tmp_path) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"a", ttl=3600))
        await store.append("/s", text("b", producer=Producer("p", 2, 0), stream_seq="5"))
        await store.create("/j", CreateRequest(content_type=JSON, body=b"[1,2]"))
        await store.create("/c", CreateRequest(content_type=TEXT, body=b"x", closed=True))
        await store.create("/f", CreateRequest(fork=ForkSpec("/s")))
        await store.append("/f", text("f"))
        await store.delete("/s")  # soft: /f reads it
        await store.create("/gone", CreateRequest(content_type=TEXT))
        await store.delete("/gone")
    async with DiskStore(tmp_path) as store:
        with pytest.raises(StreamGone):
            await store.read("/s", "-1")
        assert await read_all(store, "/f") == b"abf"
        assert await read_all(store, "/j") == b"[1,2]"
        assert (await store.read("/c", "-1")).closed
        with pytest.raises(StreamNotFound):
            await store.head("/gone")
        # producer state and the Stream-Seq came back too
        assert (await store.append("/f", text("g"))).next_offset == format_offset(4)
        info = await store.head("/f")
        assert info.ttl == 3600
        await store.delete("/f")
    async with DiskStore(tmp_path) as store:
        with pytest.raises(StreamNotFound):
            await store.head("/s")  # its last fork went: collected
    assert len(os.listdir(tmp_path / "streams")) == 2  # /j and /c; the rest went
    assert os.listdir(tmp_path / "trash") == []


async def test_producer_state_is_durable(tmp_path: Path) -> None:
    async with DiskStore(tmp_path) as store:
        await store.create("/s", CreateRequest(content_type=TEXT))
        await store.append("/s", text("a", producer=Producer("p", 0, 0), stream_seq="1"))
    async with DiskStore(tmp_path) as store:
        dup = await store.append("/s", text("a", producer=Producer("p", 0, 0)))
        assert dup.duplicate
        with pytest.raises(Conflict, match="Stream-Seq"):
            await store.append("/s", text("b", stream_seq="1"))


async def test_a_torn_tail_is_cut_off_on_open(tmp_path: Path) -> None:
    async with DiskStore(tmp_path) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"kept"))
        await store.append("/s", text("-also"))
    (log,) = (tmp_path / "streams").glob("*/log")
    whole = log.read_bytes()
    log.write_bytes(whole + b"\x20\x00\x00\x00garbage")  # half a frame
    async with DiskStore(tmp_path) as store:
        assert await read_all(store, "/s") == b"kept-also"
        await store.append("/s", text("!"))
    assert log.read_bytes().startswith(whole)
    async with DiskStore(tmp_path) as store:
        assert await read_all(store, "/s") == b"kept-also!"


async def test_concurrent_appends_share_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [0]
    real: Callable[[int], None] = os.fdatasync

    def counting(fd: int) -> None:
        calls[0] += 1
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    async with DiskStore(tmp_path) as store:
        await store.create("/s", CreateRequest(content_type=TEXT))
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(store.append, "/s", text(f"{i:02d}"))
        body = await read_all(store, "/s")
    assert sorted(body[i : i + 2] for i in range(0, 100, 2)) == [
        f"{i:02d}".encode() for i in range(50)
    ]
    assert calls[0] < 50  # group commit
    async with DiskStore(tmp_path) as store:
        assert await read_all(store, "/s") == body


async def test_a_failed_write_is_refused_and_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real: Callable[[int], None] = os.fdatasync
    failing = [True]

    def flaky(fd: int) -> None:
        if failing[0]:
            failing[0] = False
            raise OSError(28, "No space left on device")
        real(fd)

    async with DiskStore(tmp_path) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"a"))
        monkeypatch.setattr(os, "fdatasync", flaky)
        with pytest.raises(StorageError, match="No space left"):
            await store.append("/s", text("lost", producer=Producer("p", 0, 0)))
        assert await read_all(store, "/s") == b"a"
        # the producer's seq 0 was not taken: the retry is accepted, not a duplicate
        retry = await store.append("/s", text("b", producer=Producer("p", 0, 0)))
        assert not retry.duplicate
        assert await read_all(store, "/s") == b"ab"
    async with DiskStore(tmp_path) as store:
        assert await read_all(store, "/s") == b"ab"


async def test_nothing_is_visible_before_it_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real: Callable[[int], None] = os.fdatasync
    entered = trio.Event()
    release = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow(fd: int) -> None:
        trio.from_thread.run_sync(entered.set, trio_token=token)
        trio.from_thread.run(release.wait, trio_token=token)
        real(fd)

    async with DiskStore(tmp_path) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"a"))
        monkeypatch.setattr(os, "fdatasync", slow)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.append, "/s", text("b"))
            await entered.wait()
            assert await read_all(store, "/s") == b"a"  # decided, not yet durable
            assert (await store.head("/s")).next_offset == format_offset(1)
            release.set()
        assert await read_all(store, "/s") == b"ab"
