"""DiskStore with a tiny payload budget: payloads beyond it leave memory and are read
back from the logs, and every read still sees exactly what was appended, from every
offset, through forks, live, after a restart; a read racing a removal fails cleanly."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transport import (
    AppendRequest,
    CreateRequest,
    DiskStore,
    ForkSpec,
    LocalStore,
    MemoryStore,
    ReadResult,
    ServerSettings,
    StorageError,
    StreamNotFound,
    _journal,
    create_app,
    format_offset,
    serve,
)
from transport.client import StreamClient

BUDGET = 1024
TEXT = "text/plain"
JSON = "application/json"

#: each stream's records, as (the offset after it, its payload)
Written = dict[str, list[tuple[str, bytes]]]


def payload(stream: int, n: int) -> bytes:
    """Records of 5 to ~400 bytes, each one different."""
    return f"<{stream}.{n}>".encode() * ((n * 7) % 40 + 1)


async def append(store: LocalStore, path: str, body: bytes, written: Written) -> None:
    content_type = JSON if path.startswith("/j") else TEXT
    result = await store.append(path, AppendRequest(body=body, content_type=content_type))
    written.setdefault(path, []).append((result.next_offset, body))


async def fill(store: LocalStore, count: int = 60) -> Written:
    """Records appended to four streams in turn, the budget checked after each."""
    written: Written = {}
    for path in ("/a", "/b", "/c", "/j"):
        await store.create(path, CreateRequest(content_type=JSON if path == "/j" else TEXT))
    largest = 0
    for n in range(count):
        for number, path in enumerate(("/a", "/b", "/c")):
            body = payload(number, n)
            largest = max(largest, len(body))
            await append(store, path, body, written)
            assert store.held_bytes() <= BUDGET + largest
        await append(store, "/j", b'{"n":%d,"pad":"%s"}' % (n, b"x" * n), written)
    return written


async def read_through(store: LocalStore, path: str, offset: str) -> list[ReadResult]:
    pages = [await store.read(path, offset)]
    while not pages[-1].up_to_date:
        pages.append(await store.read(path, pages[-1].next_offset))
    return pages


async def check_everything(store: LocalStore, written: Written, slack: int = 0) -> None:
    """From every offset of every stream: exactly the records after it, with their
    ends; and never more than the budget (plus ``slack``) held meanwhile."""
    for path, records in written.items():
        offsets = ["-1"] + [end for end, _ in records]
        for index, offset in enumerate(offsets):
            pages = await read_through(store, path, offset)
            assert [c for page in pages for c in page.chunks] == [p for _, p in records[index:]]
            assert [e for page in pages for e in page.ends] == [e for e, _ in records[index:]]
            assert pages[-1].next_offset == offsets[-1]
            assert store.held_bytes() <= BUDGET + slack


async def test_every_record_reads_back_from_every_offset(tmp_path: Path) -> None:
    async with DiskStore(tmp_path, cache_bytes=BUDGET, max_read_bytes=700) as store:
        written = await fill(store)
        largest = max(len(p) for records in written.values() for _, p in records)
        await check_everything(store, written, slack=largest)
        assert 0 < store.held_bytes() <= BUDGET
    # a restart reads everything back too, holding no more than the budget
    async with DiskStore(tmp_path, cache_bytes=BUDGET, max_read_bytes=700) as store:
        assert store.held_bytes() <= BUDGET
        await check_everything(store, written, slack=largest)
        await append(store, "/a", b"after the restart", written)
        await check_everything(store, written, slack=largest)
    async with DiskStore(tmp_path) as store:  # the default budget holds it all
        total = sum(len(p) for records in written.values() for _, p in records)
        assert store.held_bytes() == total
        await check_everything(store, written, slack=total)


async def test_concurrent_appends_to_one_log_read_back(tmp_path: Path) -> None:
    # group commit writes several frames of one log at once: each payload's position
    # counts from where the batch starts
    async with DiskStore(tmp_path, cache_bytes=0) as store:
        await store.create("/s", CreateRequest(content_type=TEXT))
        async with trio.open_nursery() as nursery:
            for n in range(40):
                nursery.start_soon(store.append, "/s", AppendRequest(payload(0, n), TEXT))
        assert store.held_bytes() == 0
        everything = await store.read("/s", "-1")
        assert sorted(everything.chunks) == sorted(payload(0, n) for n in range(40))
        written = {"/s": list(zip(everything.ends, everything.chunks, strict=True))}
        await check_everything(store, written)
    async with DiskStore(tmp_path, cache_bytes=0) as store:
        await check_everything(store, written)


async def test_a_page_is_read_back_in_one_thread_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = _journal._read_spans

    def counting(spans: list[tuple[_journal.LogFile, int, int]]) -> list[bytes]:
        calls.append(len(spans))
        return real(spans)

    monkeypatch.setattr(_journal, "_read_spans", counting)
    async with DiskStore(tmp_path, cache_bytes=0) as store:
        await store.create("/s", CreateRequest(content_type=TEXT))
        for n in range(30):
            await store.append("/s", AppendRequest(b"%02d" % n, TEXT))
        await store.create("/f", CreateRequest(fork=ForkSpec("/s", format_offset(20))))
        for n in range(30, 40):
            await store.append("/f", AppendRequest(b"%02d" % n, TEXT))
        assert store.held_bytes() == 0
        page = await store.read("/f", "-1")
        assert page.body() == b"".join(b"%02d" % n for n in range(10)) + b"".join(
            b"%02d" % n for n in range(30, 40)
        )
        assert calls == [2]  # one call, one span in each log


async def test_live_reads_of_evicted_records(tmp_path: Path) -> None:
    async with DiskStore(tmp_path, cache_bytes=0) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"first"))
        got: list[ReadResult] = []

        async def poll() -> None:
            got.append(await store.read("/s", format_offset(5), wait=10))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.testing.wait_all_tasks_blocked()
            await store.append("/s", AppendRequest(b"second", TEXT))
        assert got[0].chunks == (b"second",)
        assert store.held_bytes() == 0
        # SSE, through the server (which names streams by their URL path)
        path = "/v1/stream/live"
        await store.create(path, CreateRequest(content_type=TEXT, body=b"first"))
        await store.append(path, AppendRequest(b"second", TEXT))
        app = create_app(store, ServerSettings(long_poll_timeout=0.5))
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                functools.partial(serve, app, host="127.0.0.1", port=0, graceful_timeout=0.1)
            )
            async with StreamClient(binds[0] + "/v1/stream") as client:
                seen = b""
                async with client.stream("live").live(mode="sse") as tail:
                    async for chunk in tail:
                        seen += chunk.data
                        if seen == b"firstsecond":
                            await store.append(path, AppendRequest(b"third", TEXT))
                        if seen == b"firstsecondthird":
                            break
            nursery.cancel_scope.cancel()
        assert store.held_bytes() == 0


async def test_forks_of_evicted_streams(tmp_path: Path) -> None:
    written: Written = {}
    async with DiskStore(tmp_path, cache_bytes=BUDGET) as store:
        await store.create("/s", CreateRequest(content_type=TEXT))
        for n in range(30):
            await append(store, "/s", payload(0, n), written)
        middle, record = written["/s"][10]
        _, following = written["/s"][11]
        # a fork inside a record: its prefix is read back from the source's log
        await store.create("/f", CreateRequest(fork=ForkSpec("/s", middle, sub_offset=7)))
        written["/f"] = written["/s"][:11]
        written["/f"].append((format_offset(int(middle.split("_")[1]) + 7), following[:7]))
        await store.create("/ff", CreateRequest(fork=ForkSpec("/f")))
        written["/ff"] = list(written["/f"])
        for n in range(20):
            await append(store, "/f", payload(1, n), written)
            await append(store, "/ff", payload(2, n), written)
            await append(store, "/s", payload(3, n), written)
        await store.delete("/s")  # soft: the forks still read it
        del written["/s"]
        assert record in [p for _, p in written["/f"]]
        largest = max(len(p) for records in written.values() for _, p in records)
        await check_everything(store, written, slack=largest)
    async with DiskStore(tmp_path, cache_bytes=BUDGET) as store:
        await check_everything(store, written, slack=largest)


def blocking_reads(
    monkeypatch: pytest.MonkeyPatch, entered: trio.Event, release: trio.Event
) -> None:
    """Reads back from the logs wait for ``release`` in their thread, just before the
    ``pread`` (after every check that the log is still open)."""
    real = os.pread
    token = trio.lowlevel.current_trio_token()

    def blocked(fd: int, size: int, position: int) -> bytes:
        trio.from_thread.run_sync(entered.set, trio_token=token)
        trio.from_thread.run(release.wait, trio_token=token)
        return real(fd, size, position)

    monkeypatch.setattr(os, "pread", blocked)


async def test_a_read_racing_a_removal_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = trio.Event(), trio.Event()
    async with DiskStore(tmp_path, cache_bytes=0) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"evicted"))
        blocking_reads(monkeypatch, entered, release)

        async def reader() -> None:
            with pytest.raises(StreamNotFound, match=r"^stream not found: /s$"):
                await store.read("/s", "-1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await entered.wait()
            await store.delete("/s")  # closes the log's fd
            # which a new file may now have: what the read finds there is not /s
            other = tmp_path / "other"
            other.write_bytes(b"x" * 100)
            fd = os.open(other, os.O_RDONLY)
            try:
                release.set()
                await trio.testing.wait_all_tasks_blocked()
            finally:
                os.close(fd)
        with pytest.raises(StreamNotFound):
            await store.read("/s", "-1")


async def test_a_read_racing_the_store_closing_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = trio.Event(), trio.Event()
    async with DiskStore(tmp_path, cache_bytes=0) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"evicted"))
        blocking_reads(monkeypatch, entered, release)

        async def reader() -> None:
            with pytest.raises(StorageError, match=r"^the store is closed$"):
                await store.read("/s", "-1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await entered.wait()
            await store.aclose()
            release.set()


async def test_a_log_shorter_than_its_index_is_a_storage_error(tmp_path: Path) -> None:
    async with DiskStore(tmp_path, cache_bytes=0) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"kept"))
        await store.append("/s", AppendRequest(b"cut off", TEXT))
        (log,) = (tmp_path / "streams").glob("*/log")
        os.truncate(log, log.stat().st_size - 3)
        with pytest.raises(StorageError, match=r"^the log of stream \w+ is shorter than its"):
            await store.read("/s", "-1")
        assert (await store.read("/s", format_offset(11))).empty  # nothing to read back


async def test_a_failed_write_is_rolled_back_even_if_cutting_it_off_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sync: Callable[[int], None] = os.fdatasync
    real_truncate: Callable[[int, int], None] = os.ftruncate
    failing = {"sync": True, "truncate": True}

    def flaky_sync(fd: int) -> None:
        if failing.pop("sync", False):
            raise OSError(28, "No space left on device")
        real_sync(fd)

    def flaky_truncate(fd: int, size: int) -> None:
        if failing.pop("truncate", False):
            raise OSError(5, "Input/output error")
        real_truncate(fd, size)

    async with DiskStore(tmp_path, cache_bytes=0) as store:
        await store.create("/s", CreateRequest(content_type=TEXT, body=b"a"))
        monkeypatch.setattr(os, "fdatasync", flaky_sync)
        monkeypatch.setattr(os, "ftruncate", flaky_truncate)
        with pytest.raises(StorageError, match="No space left"):
            await store.append("/s", AppendRequest(b"lost", TEXT))
        # the lost frame is still in the file: the next write cuts it off first
        await store.append("/s", AppendRequest(b"b", TEXT))
        await store.append("/s", AppendRequest(b"c", TEXT))
        assert (await store.read("/s", "-1")).chunks == (b"a", b"b", b"c")
        assert (await store.read("/s", format_offset(1))).chunks == (b"b", b"c")
    async with DiskStore(tmp_path, cache_bytes=0) as store:
        assert (await store.read("/s", "-1")).chunks == (b"a", b"b", b"c")


def test_the_budget_is_checked() -> None:
    with tempfile.TemporaryDirectory() as directory, pytest.raises(ValueError, match="cache"):
        DiskStore(directory, cache_bytes=-1)


# -- against the memory store ------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 2), st.integers(1, 120)),
        st.tuples(st.just("read"), st.integers(0, 2), st.integers(0, 1000)),
        st.tuples(st.just("poll"), st.integers(0, 2), st.integers(0, 1000)),
        st.tuples(st.just("fork"), st.integers(0, 2), st.integers(0, 1000)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, budget=st.sampled_from([0, 50, 300]))
async def test_random_appends_and_reads_agree_with_the_memory_store(
    ops: list[tuple[str, int, int]], budget: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        opened: Callable[[], DiskStore] = functools.partial(
            DiskStore, directory, cache_bytes=budget, max_read_bytes=200
        )
        disk = opened()
        try:
            async with MemoryStore(max_read_bytes=200) as memory:
                paths = ["/0"]
                offsets: dict[str, list[str]] = {"/0": ["-1"]}
                largest = 0
                for store in (memory, disk):
                    await store.create("/0", CreateRequest(content_type=TEXT))
                for step, (kind, which, number) in enumerate(ops):
                    path = paths[which % len(paths)]
                    known = offsets[path]
                    if kind == "append":
                        body = bytes([65 + step % 26]) * number
                        largest = max(largest, number)
                        results = [
                            await store.append(path, AppendRequest(body, TEXT))
                            for store in (memory, disk)
                        ]
                        assert results[0] == results[1]
                        known.append(results[0].next_offset)
                    elif kind in ("read", "poll"):
                        offset = known[number % len(known)]
                        wait = 0.001 if kind == "poll" else 0.0
                        pages = [
                            await store.read(path, offset, wait=wait) for store in (memory, disk)
                        ]
                        assert pages[0] == pages[1]
                        known.append(pages[0].next_offset)
                    elif kind == "fork":
                        fork = f"/{len(paths)}"
                        offset = known[number % len(known)]
                        spec = ForkSpec(path, None if offset == "-1" else offset)
                        for store in (memory, disk):
                            await store.create(fork, CreateRequest(fork=spec))
                        paths.append(fork)
                        offsets[fork] = ["-1"]
                    else:
                        await disk.aclose()
                        disk = opened()
                    assert disk.held_bytes() <= budget + largest
                for path in paths:
                    for offset in offsets[path]:
                        assert await read_through(disk, path, offset) == await read_through(
                            memory, path, offset
                        )
        finally:
            await disk.aclose()
