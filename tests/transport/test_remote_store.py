"""RemoteStore: the Store interface over HTTP, held to the embedded store's behaviour.

Every test runs against a MemoryStore (the reference behaviour) and a RemoteStore on our
own server (``create_app`` + ``serve`` on port 0, in a thread of this process) and on
the npm reference server 0.3.7 (skipped without node/npm unless ``CI=true``). The
protocol tests of ``test_store.py`` run here again, unchanged, on those three stores.
"""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core import read_events
from transport import (
    DEFAULT_PREFIX,
    AppendRequest,
    BadRequest,
    Conflict,
    CreateRequest,
    Fenced,
    ForkSpec,
    MemoryStore,
    Producer,
    RemoteStore,
    RetryPolicy,
    SequenceGap,
    ServerSettings,
    StorageError,
    Store,
    StreamClosed,
    StreamGone,
    StreamNotFound,
    create_app,
    serve,
)
from transport._client_errors import MalformedResponse, StreamUnavailable
from transport._remote import DEFAULT_STREAM_PREFIX

from . import test_store

TEXT = "text/plain"
JSON = "application/json"
LONG_POLL_S = 0.5  # both servers' long-poll timeout here


# -- the servers -------------------------------------------------------------------------


@contextlib.contextmanager
def own_server_in_thread(long_poll_timeout: float = LONG_POLL_S) -> Iterator[str]:
    """Our server (a MemoryStore behind ``create_app``, served on a free port) in a
    thread with its own trio loop, so that every test's loop can reach it."""
    handoff: queue.Queue[tuple[trio.lowlevel.TrioToken, trio.Event, str] | BaseException] = (
        queue.Queue()
    )

    async def main() -> None:
        stop = trio.Event()
        app = create_app(MemoryStore(), ServerSettings(long_poll_timeout=long_poll_timeout))
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                functools.partial(serve, app, host="127.0.0.1", port=0, shutdown_trigger=stop.wait)
            )
            handoff.put((trio.lowlevel.current_trio_token(), stop, binds[0]))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported to the test thread
            handoff.put(exc)

    thread = threading.Thread(target=run, name="own-streams-server", daemon=True)
    thread.start()
    started = handoff.get(timeout=30)
    if isinstance(started, BaseException):
        raise started
    token, stop, url = started
    try:
        yield url
    finally:
        token.run_sync_soon(stop.set)
        thread.join(30)


@pytest.fixture(scope="session")
def ds_own_thread_url() -> Iterator[str]:
    with own_server_in_thread() as url:
        yield url


@pytest.fixture(params=["memory", "ours", "reference"])
def server_url(request: pytest.FixtureRequest) -> str | None:
    """The server a store talks to; None for the MemoryStore."""
    if request.param == "memory":
        return None
    fixture = "ds_reference_url" if request.param == "reference" else "ds_own_thread_url"
    url: str = request.getfixturevalue(fixture)
    return url


def namespace(url: str) -> str:
    """A base URL of its own for one test, so that fixed paths (``/s``) never meet."""
    return f"{url}/v1/stream/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(server_url: str | None) -> AsyncIterator[Store]:
    made: Store = (
        MemoryStore() if server_url is None else RemoteStore(namespace(server_url), timeout=10)
    )
    async with made:
        yield made


#: For tests of RemoteStore alone: on our server and on the reference.
remote_only = pytest.mark.parametrize("server_url", ["ours", "reference"], indirect=True)


# -- test_store.py's protocol tests, on every store --------------------------------------


def again(test: Any, *, not_on_reference: str | None = None) -> Any:
    """``test`` from test_store.py, collected here again on this module's stores; on the
    reference server skipped for ``not_on_reference``."""

    @functools.wraps(test)
    async def rerun(*args: Any, **kwargs: Any) -> None:
        await test(*args, **kwargs)

    reference: Any = "reference"
    if not_on_reference is not None:
        reference = pytest.param("reference", marks=pytest.mark.skip(reason=not_on_reference))
    return pytest.mark.parametrize("server_url", ["memory", "ours", reference], indirect=True)(
        rerun
    )


NODE_OFFSETS = "exact offsets: the reference counts 5 bytes of framing per record"
NODE_MESSAGES = "matches the error messages of our store; the reference words them otherwise"

test_create_append_read_with_offsets = again(
    test_store.test_create_append_read_with_offsets, not_on_reference=NODE_OFFSETS
)
test_idempotent_create_and_config_conflicts = again(
    test_store.test_idempotent_create_and_config_conflicts
)
test_json_mode_flattens_one_level_and_refuses_bad_json = again(
    test_store.test_json_mode_flattens_one_level_and_refuses_bad_json
)
test_closing_is_final_and_idempotent = again(test_store.test_closing_is_final_and_idempotent)
test_content_type_and_stream_seq_are_checked = again(
    test_store.test_content_type_and_stream_seq_are_checked, not_on_reference=NODE_MESSAGES
)
test_idempotent_producer = again(
    test_store.test_idempotent_producer, not_on_reference=NODE_MESSAGES
)
test_forks_share_the_prefix_and_nothing_after = again(
    test_store.test_forks_share_the_prefix_and_nothing_after
)
test_ttl_slides_on_reads_and_expiry_is_checked_at_access = again(
    test_store.test_ttl_slides_on_reads_and_expiry_is_checked_at_access,
    not_on_reference="fakes the clock of our store; the reference runs in another process",
)
test_a_long_poll_wakes_on_append_and_on_close = again(
    test_store.test_a_long_poll_wakes_on_append_and_on_close
)


# -- what every store must agree on, in terms any server can meet --------------------------


def json_append(*messages: Any) -> AppendRequest:
    return AppendRequest(body=json.dumps(list(messages)).encode(), content_type=JSON)


def messages_of(store_read: Any) -> list[Any]:
    loaded: list[Any] = json.loads(store_read.body())
    return loaded


async def test_offsets_sort_and_resume_exactly_after_each_append(store: Store) -> None:
    created = await store.create("/s", CreateRequest(content_type=TEXT))
    offsets = [created.info.next_offset]
    for part in ("a", "bc", "def"):
        ack = await store.append("/s", AppendRequest(body=part.encode(), content_type=TEXT))
        offsets.append(ack.next_offset)
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == len(offsets)
    for index, expected in enumerate((b"abcdef", b"bcdef", b"def", b"")):
        page = await store.read("/s", offsets[index])
        assert (page.body(), page.next_offset, page.up_to_date) == (expected, offsets[-1], True)
        # one byte chunk, or one per append: either way it ends where the page does
        if page.chunks:
            assert page.ends[-1] == page.next_offset
    assert (await store.read("/s", "-1")).body() == b"abcdef"
    now = await store.read("/s", "now")
    assert (now.empty, now.next_offset) == (True, offsets[-1])
    info = await store.head("/s")
    assert (info.path, info.content_type, info.next_offset, info.closed) == (
        "/s",
        TEXT,
        offsets[-1],
        False,
    )


async def test_json_chunks_end_where_their_ends_say(store: Store) -> None:
    await store.create("/j", CreateRequest(content_type=JSON))
    await store.append("/j", json_append({"n": 1}, {"n": 2}))
    await store.append("/j", json_append({"n": 3}))
    page = await store.read("/j", "-1")
    everything = [{"n": 1}, {"n": 2}, {"n": 3}]
    assert page.json
    assert messages_of(page) == everything
    assert len(page.ends) == len(page.chunks)
    assert page.ends[-1] == page.next_offset
    seen = 0
    for chunk, end in zip(page.chunks, page.ends, strict=True):
        seen += len(json.loads(b"[" + chunk + b"]"))
        # a chunk holds one append (embedded) or one read's appends (remote): either
        # way its end is exact
        assert messages_of(await store.read("/j", end)) == everything[seen:]


async def test_read_events_yields_every_record_once_and_resumes_exactly(
    store: Store,
) -> None:
    await store.create("/e", CreateRequest(content_type=JSON))
    records = [{"type": "x", "n": n} for n in range(5)]
    await store.append("/e", json_append(*records[:2]))
    await store.append("/e", json_append(records[2]))
    await store.append("/e", json_append(*records[3:]))
    items = [item async for item in read_events(store, "/e", follow=False)]
    assert [item.raw for item in items] == records
    for index, item in enumerate(items):
        resumed = [i.raw async for i in read_events(store, "/e", item.offset, follow=False)]
        assert resumed == records[index + 1 :]
    assert len({item.offset for item in items}) == len(items)


async def test_read_events_follows_a_stream_as_it_grows(store: Store) -> None:
    await store.create("/e", CreateRequest(content_type=JSON))
    got: list[dict[str, Any]] = []

    async def follow() -> None:
        async with contextlib.aclosing(read_events(store, "/e", wait=5)) as items:
            async for item in items:
                got.append(item.raw)
                if len(got) == 3:
                    return

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            for n in range(3):
                await trio.sleep(0.05)
                await store.append("/e", json_append({"type": "x", "n": n}))
    assert [record["n"] for record in got] == [0, 1, 2]


async def test_a_wait_is_bounded_by_the_caller_not_the_server(store: Store) -> None:
    await store.create("/s", CreateRequest(content_type=TEXT, body=b"a"))
    tail = (await store.head("/s")).next_offset
    # shorter than the servers' long-poll timeout: the request is given up
    started = trio.current_time()
    short = await store.read("/s", tail, wait=0.1)
    assert trio.current_time() - started < LONG_POLL_S
    assert (short.empty, short.up_to_date, short.next_offset, short.closed) == (
        True,
        True,
        tail,
        False,
    )
    # longer than the servers' long-poll timeout: polled again until the data comes
    async with trio.open_nursery() as nursery:

        async def late_append() -> None:
            await trio.sleep(LONG_POLL_S * 1.6)
            await store.append("/s", AppendRequest(body=b"b", content_type=TEXT))

        nursery.start_soon(late_append)
        started = trio.current_time()
        page = await store.read("/s", tail, wait=LONG_POLL_S * 4)
        assert page.body() == b"b"
        assert trio.current_time() - started >= LONG_POLL_S * 1.5


async def test_a_wait_from_now_sees_only_what_comes_after(store: Store) -> None:
    await store.create("/j", CreateRequest(content_type=JSON, body=b"[1]"))
    got: list[Any] = []

    async def reader() -> None:
        page = await store.read("/j", "now", wait=5)
        got.extend(messages_of(page))
        got.append(page.ends)
        got.append(page.next_offset)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked(0.05)
            ack = await store.append("/j", json_append(2, 3))
    two, three, ends, next_offset = got
    assert (two, three, next_offset) == (2, 3, ack.next_offset)
    assert "now" not in ends
    assert ends[-1] == ack.next_offset


async def test_closed_streams_answer_at_once(store: Store) -> None:
    await store.create("/c", CreateRequest(content_type=TEXT, body=b"x", closed=True))
    with trio.fail_after(5):  # not the 30 s asked for
        tail = await store.read("/c", "-1")
        assert (tail.body(), tail.closed, tail.up_to_date) == (b"x", True, True)
        at_end = await store.read("/c", tail.next_offset, wait=30)
        assert (at_end.empty, at_end.closed) == (True, True)
        from_now = await store.read("/c", "now", wait=30)
        assert from_now.closed
    assert (await store.head("/c")).closed
    with pytest.raises(StreamClosed) as refused:
        await store.append("/c", AppendRequest(body=b"y", content_type=TEXT))
    assert refused.value.final_offset == tail.next_offset
    assert (await store.append("/c", AppendRequest(close=True))).closed
    with pytest.raises(Conflict):
        await store.create("/c", CreateRequest(content_type=TEXT))  # not closed: differs
    assert not (await store.create("/c", CreateRequest(content_type=TEXT, closed=True))).created


async def test_producer_retries_are_duplicates_and_gaps_are_refused(store: Store) -> None:
    await store.create("/p", CreateRequest(content_type=TEXT))

    def producer_append(body: bytes, seq: int, epoch: int = 0) -> AppendRequest:
        return AppendRequest(body=body, content_type=TEXT, producer=Producer("w", epoch, seq))

    first = await store.append("/p", producer_append(b"a", 0))
    assert (first.duplicate, first.producer_seq) == (False, 0)
    again = await store.append("/p", producer_append(b"a", 0))
    assert (again.duplicate, again.producer_seq, again.next_offset) == (True, 0, first.next_offset)
    with pytest.raises(SequenceGap) as gap:
        await store.append("/p", producer_append(b"c", 2))
    assert (gap.value.expected, gap.value.received) == (1, 2)
    await store.append("/p", producer_append(b"b", 0, epoch=1))
    with pytest.raises(Fenced) as fenced:
        await store.append("/p", producer_append(b"z", 1))
    assert fenced.value.epoch == 1
    with pytest.raises(BadRequest):
        await store.append("/p", producer_append(b"z", 3, epoch=2))
    assert (await store.read("/p", "-1")).body() == b"ab"


async def test_errors_are_the_embedded_stores_classes(store: Store) -> None:
    for operation in (
        store.head("/missing"),
        store.read("/missing", "-1"),
        store.read("/missing", "-1", wait=1),
        store.append("/missing", AppendRequest(body=b"x", content_type=TEXT)),
        store.delete("/missing"),
    ):
        with pytest.raises(StreamNotFound):
            await operation
    await store.create("/s", CreateRequest(content_type=TEXT))
    for bad in ("abc", "1_2_3", ""):
        with pytest.raises(BadRequest):
            await store.read("/s", bad)
        with pytest.raises(BadRequest):
            await store.read("/s", bad, wait=1)
    with pytest.raises(BadRequest):
        await store.append("/s", AppendRequest(body=b"", content_type=TEXT))
    with pytest.raises(BadRequest):
        await store.append("/s", AppendRequest(body=b"x"))  # no Content-Type
    await store.delete("/s")
    with pytest.raises(StreamNotFound):
        await store.read("/s", "-1")
    assert (await store.create("/s", CreateRequest(content_type=TEXT))).created
    assert (await store.read("/s", "-1")).empty


async def test_a_deleted_source_is_gone_for_itself_only(store: Store) -> None:
    await store.create("/src", CreateRequest(content_type=TEXT, body=b"abc"))
    await store.create("/f", CreateRequest(fork=ForkSpec("/src")))
    await store.delete("/src")
    with pytest.raises(StreamGone):
        await store.head("/src")
    assert (await store.read("/f", "-1")).body() == b"abc"


# -- RemoteStore only --------------------------------------------------------------------


@remote_only
async def test_orchestrator_paths_map_below_the_base_url(server_url: str) -> None:
    assert DEFAULT_STREAM_PREFIX == DEFAULT_PREFIX
    base = namespace(server_url)
    async with RemoteStore(base) as store, httpx.AsyncClient() as client:
        assert store.url("/v1/stream/session/42") == base + "/session/42"
        assert store.url("/plain") == base + "/plain"
        assert store.url("/v1/streamy/x") == base + "/v1/streamy/x"
        with pytest.raises(ValueError, match="store path"):
            store.url("relative")
        await store.create("/v1/stream/session/42", CreateRequest(content_type=TEXT, body=b"hi"))
        response = await client.get(base + "/session/42", params={"offset": "-1"})
        assert response.content == b"hi"
        info = await store.head("/v1/stream/session/42")
        assert info.path == "/v1/stream/session/42"


@remote_only
async def test_a_json_body_is_flattened_and_reserialized_by_the_server(server_url: str) -> None:
    async with RemoteStore(namespace(server_url)) as store:
        await store.create("/j", CreateRequest(content_type=JSON, body=b'[{ "a" : 1 }]'))
        await store.append("/j", AppendRequest(body='[[1, 2], "é"]'.encode(), content_type=JSON))
        await store.append("/j", AppendRequest(body=b' {"b": null} ', content_type=JSON))
        page = await store.read("/j", "-1")
        assert page.chunks == ('{"a":1},[1,2],"é",{"b":null}'.encode(),)
        assert page.ends == (page.next_offset,)
        assert page.body() == '[{"a":1},[1,2],"é",{"b":null}]'.encode()


FAST = RetryPolicy(attempts=2, initial=0.01, maximum=0.01)


async def test_an_unreachable_server_is_a_storage_error_after_bounded_retries() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        async with RemoteStore(f"http://127.0.0.1:{port}/v1/stream", retry=FAST) as store:
            with trio.fail_after(5), pytest.raises(StorageError, match="after 3 attempts") as e:
                await store.head("/s")
    assert isinstance(e.value.__cause__, StreamUnavailable)
    assert e.value.status == 503


class Scripted:
    """An httpx transport answering from a script: per request, an exception to raise
    or a response to give."""

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def store(self) -> RemoteStore:
        return RemoteStore(
            "http://streams.test/v1/stream", retry=FAST, transport=httpx.MockTransport(self)
        )


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


TEXT_PAGE = httpx.Response(
    200,
    headers={
        "Content-Type": TEXT,
        "Stream-Next-Offset": "0000000000000000_0000000000000001",
        "Stream-Up-To-Date": "true",
    },
    content=b"a",
)


async def test_idempotent_requests_are_retried_and_plain_appends_are_not() -> None:
    read = Scripted(refused(), TEXT_PAGE)
    async with read.store() as store:
        assert (await store.read("/s", "-1")).body() == b"a"
    assert len(read.requests) == 2

    append = Scripted(refused())
    async with append.store() as store:
        with pytest.raises(StorageError):
            await store.append("/s", AppendRequest(body=b"x", content_type=TEXT))
    assert len(append.requests) == 1  # a retry could have written it twice

    accepted = httpx.Response(
        200, headers={"Stream-Next-Offset": "0_1", "Producer-Epoch": "0", "Producer-Seq": "0"}
    )
    produced = Scripted(refused(), accepted)
    async with produced.store() as store:
        request = AppendRequest(body=b"x", content_type=TEXT, producer=Producer("p", 0, 0))
        result = await store.append("/s", request)
    assert (result.next_offset, result.producer_seq, result.duplicate) == ("0_1", 0, False)
    assert [r.headers["Producer-Seq"] for r in produced.requests] == ["0", "0"]

    deleted = Scripted(refused(), httpx.Response(404, text="Stream not found"))
    async with deleted.store() as store:
        await store.delete("/s")  # the lost attempt deleted it
    missing = Scripted(httpx.Response(404, text="Stream not found"))
    async with missing.store() as store:
        with pytest.raises(StreamNotFound):
            await store.delete("/s")

    failing = Scripted(*[httpx.Response(503, text="busy")] * 3)
    async with failing.store() as store:
        with pytest.raises(StorageError, match="503"):
            await store.read("/s", "-1")
    assert len(failing.requests) == 3


async def test_a_duplicate_without_an_offset_asks_for_the_tail() -> None:
    duplicate = httpx.Response(204, headers={"Producer-Epoch": "0", "Producer-Seq": "4"})
    head = httpx.Response(200, headers={"Content-Type": TEXT, "Stream-Next-Offset": "0_9"})
    scripted = Scripted(duplicate, head)
    async with scripted.store() as store:
        request = AppendRequest(body=b"x", content_type=TEXT, producer=Producer("p", 0, 2))
        result = await store.append("/s", request)
    assert (result.duplicate, result.producer_seq, result.next_offset) == (True, 4, "0_9")
    assert [r.method for r in scripted.requests] == ["POST", "HEAD"]


async def test_a_broken_answer_is_a_storage_error() -> None:
    no_offset = httpx.Response(200, headers={"Content-Type": TEXT}, content=b"a")
    not_an_array = httpx.Response(
        200, headers={"Content-Type": JSON, "Stream-Next-Offset": "0_1"}, content=b'{"a":1}'
    )
    for answer in (no_offset, not_an_array):
        async with Scripted(answer).store() as store:
            with pytest.raises(StorageError) as failed:
                await store.read("/s", "-1")
        assert isinstance(failed.value.__cause__, MalformedResponse)


async def test_the_store_checks_its_arguments_and_its_lifecycle() -> None:
    for bad in ("ftp://x/v1/stream", "http://x/v1/stream?q=1", "/v1/stream"):
        with pytest.raises(ValueError, match="base_url"):
            RemoteStore(bad)
    with pytest.raises(ValueError, match="timeout"):
        RemoteStore("http://x/v1/stream", timeout=0)
    store = Scripted().store()
    async with store:
        with pytest.raises(ValueError, match="wait"):
            await store.read("/s", "-1", wait=-1)
    await store.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await store.head("/s")
    assert "closed" in repr(store)


# -- the same records through RemoteStore as through MemoryStore ------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)  # what the reference (JavaScript) keeps exact
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
records = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["a", "b"]), "n": json_values}),
    json_values,
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(records, min_size=1, max_size=3)),
        st.tuples(st.just("append raw"), records.filter(lambda r: not isinstance(r, list))),
        st.tuples(st.just("read"), st.integers(0, 1000)),
    ),
    max_size=10,
)


@remote_only
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations, close=st.booleans())
async def test_random_appends_and_reads_agree_with_the_memory_store(
    server_url: str, ops: list[tuple[str, Any]], close: bool
) -> None:
    async with MemoryStore() as memory, RemoteStore(namespace(server_url)) as remote:
        stores: tuple[Store, Store] = (memory, remote)
        for one in stores:
            await one.create("/h", CreateRequest(content_type=JSON))
        # offsets each store gave out, in the same order: the i-th ones mean the same
        offsets: tuple[list[str], list[str]] = (["-1"], ["-1"])
        for kind, argument in ops:
            if kind == "read":
                pages = [
                    await one.read("/h", known[argument % len(known)])
                    for one, known in zip(stores, offsets, strict=True)
                ]
                assert messages_of(pages[1]) == messages_of(pages[0])
                assert pages[1].up_to_date == pages[0].up_to_date
                for page, known in zip(pages, offsets, strict=True):
                    known.append(page.next_offset)
                continue
            body = json.dumps(argument).encode()  # a list is flattened: its records
            for one, known in zip(stores, offsets, strict=True):
                known.append(
                    (
                        await one.append("/h", AppendRequest(body=body, content_type=JSON))
                    ).next_offset
                )
        if close:
            for one in stores:
                assert (await one.append("/h", AppendRequest(close=True))).closed
        every = [await one.read("/h", "-1") for one in stores]
        assert messages_of(every[1]) == messages_of(every[0])
        assert every[1].closed == every[0].closed == close
        # from every offset either store gave out, the same records, and the same events
        for mine, theirs in zip(*offsets, strict=True):
            assert messages_of(await remote.read("/h", theirs)) == messages_of(
                await memory.read("/h", mine)
            )
            assert await raw_events(remote, theirs) == await raw_events(memory, mine)
        # read_events: every record once, and from each one's position exactly the rest
        expected = [r for r in messages_of(every[0]) if isinstance(r, dict)]
        items = [item async for item in read_events(remote, "/h", follow=False)]
        assert [item.raw for item in items] == expected
        for index, item in enumerate(items):
            assert await raw_events(remote, item.offset) == expected[index + 1 :]
        # ... also from positions inside a read that started mid-stream
        middle = offsets[1][len(offsets[1]) // 2]
        items = [item async for item in read_events(remote, "/h", middle, follow=False)]
        tail = [item.raw for item in items]
        for index, item in enumerate(items):
            assert await raw_events(remote, item.offset) == tail[index + 1 :]


async def raw_events(store: Store, position: str) -> list[dict[str, Any]]:
    return [item.raw async for item in read_events(store, "/h", position, follow=False)]
