"""The stream client against real servers: the npm reference server
(``@durable-streams/server`` 0.3.7, started once per session by ``ds_reference_url``)
and ours (``python -m orchestrator streams``, in memory), both with a 500 ms long-poll
timeout. Every test runs against each."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from transport._client_errors import ProducerFailed
from transport._errors import Conflict, Fenced, StreamClosed, StreamNotFound
from transport.client import Chunk, LiveMode, LiveTail, StreamClient, StreamHandle

from .server_proc import streams_server

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="session")
def ds_own_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of our own server, in memory, for the whole session."""
    with streams_server(tmp_path_factory.mktemp("client-own-server")) as server:
        yield server.url


@pytest.fixture(params=["reference", "ours"])
def server_url(request: pytest.FixtureRequest) -> str:
    fixture = "ds_reference_url" if request.param == "reference" else "ds_own_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def client(server_url: str) -> AsyncIterator[StreamClient]:
    async with StreamClient(f"{server_url}/v1/stream", timeout=10) as client:
        with trio.fail_after(20):
            yield client


def fresh(client: StreamClient, content_type: str | None = None) -> StreamHandle:
    return client.stream(f"client-{uuid.uuid4().hex}", content_type=content_type)


async def collect(tail: LiveTail) -> list[Chunk]:
    async with tail:
        return [chunk async for chunk in tail]


# -- create, head, delete ------------------------------------------------------------------


async def test_create_is_idempotent_and_another_configuration_conflicts(
    client: StreamClient,
) -> None:
    stream = fresh(client)
    first = await stream.create("text/plain", body="hello")
    again = await stream.create("text/plain")
    assert (first.created, again.created) == (True, False)
    assert first.offset == again.offset
    assert first.content_type == "text/plain"
    with pytest.raises(Conflict, match=r"^create .*: 409\b"):
        await stream.create("application/json")
    with pytest.raises(Conflict):
        await stream.create("text/plain", closed=True)


async def test_head_reports_type_tail_ttl_expiry_and_closure(client: StreamClient) -> None:
    with_ttl = fresh(client)
    await with_ttl.create("text/plain", ttl=60, body="abc")
    info = await with_ttl.head()
    assert (info.content_type, info.ttl, info.expires_at, info.closed) == (
        "text/plain",
        60,
        None,
        False,
    )
    assert info.offset == (await with_ttl.read()).offset

    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    expiring = fresh(client)
    await expiring.create(expires_at=when, closed=True)
    info = await expiring.head()
    assert (info.content_type, info.expires_at, info.closed) == (
        "application/octet-stream",
        when,
        True,
    )


async def test_a_deleted_stream_is_not_found_and_comes_back_fresh(client: StreamClient) -> None:
    stream = fresh(client)
    await stream.create("text/plain", body="old")
    await stream.delete()
    operations = (stream.head, stream.read, stream.delete, functools.partial(stream.append, "x"))
    for operation in operations:
        with pytest.raises(StreamNotFound, match=r"^\w[\w ]* http://\S+: 404\b"):
            await operation()
    await stream.create("text/plain")
    assert (await stream.read()).data == b""


# -- append and read -----------------------------------------------------------------------


async def test_text_appends_read_back_from_any_offset(client: StreamClient) -> None:
    stream = fresh(client)
    created = await stream.create("text/plain")
    first = await stream.append("a")
    second = await stream.append(b"bc\n")
    assert created.offset < first.offset < second.offset  # offsets sort as strings
    assert (await stream.read()).data == b"abc\n"
    rest = await stream.read(first.offset)
    assert (rest.data, rest.offset, rest.up_to_date, rest.closed) == (
        b"bc\n",
        second.offset,
        True,
        False,
    )
    tail = await stream.read("now")
    assert (tail.data, tail.offset) == (b"", second.offset)


async def test_json_messages_round_trip_and_raw_arrays_flatten(client: StreamClient) -> None:
    stream = fresh(client)
    await stream.create("application/json")
    await stream.append_json({"type": "started", "n": 1})
    await stream.append_json([1, 2])  # one message that is a list
    await stream.append_json("é ☃")
    await stream.append("[3, 4]")  # raw JSON: the server flattens one level
    chunk = await stream.read()
    assert chunk.messages == ({"type": "started", "n": 1}, [1, 2], "é ☃", 3, 4)
    assert (await stream.read("now")).messages == ()


async def test_close_with_a_final_append_then_appends_are_refused(client: StreamClient) -> None:
    stream = fresh(client)
    await stream.create("text/plain")
    await stream.append("a")
    closed = await stream.close("z")
    assert closed.closed
    assert (await stream.close()).offset == closed.offset  # a close-only request is idempotent
    with pytest.raises(StreamClosed, match=r"\(the stream is closed\)$") as caught:
        await stream.append("late")
    assert caught.value.final_offset == closed.offset
    everything = await stream.read()
    assert (everything.data, everything.closed, everything.up_to_date) == (b"az", True, True)
    assert (await stream.head()).closed


async def test_a_stream_seq_regression_is_a_conflict(client: StreamClient) -> None:
    stream = fresh(client)
    await stream.create("text/plain")
    await stream.append("a", seq="09")
    await stream.append("b", seq="2")  # byte-wise, "2" > "09"
    with pytest.raises(Conflict, match=r"^append to .*: 409\b"):
        await stream.append("c", seq="10")  # and "10" < "2"
    assert (await stream.read()).data == b"ab"


# -- live tails ----------------------------------------------------------------------------


async def write_then_close(stream: StreamHandle, items: list[str]) -> None:
    for item in items:
        await trio.sleep(0.05)
        if stream.content_type == "application/json":
            await stream.append_json(item)
        else:
            await stream.append(item)
    await trio.sleep(0.05)
    await stream.close()


@pytest.mark.parametrize("mode", ["long-poll", "sse"])
async def test_a_live_tail_follows_appends_and_ends_at_closure(
    client: StreamClient, mode: LiveMode
) -> None:
    stream = fresh(client)
    await stream.create("text/plain", body="before;")
    async with trio.open_nursery() as nursery:
        tail = stream.live("-1", mode=mode)
        nursery.start_soon(write_then_close, stream, ["one;", "two;", "three"])
        chunks = await collect(tail)
    assert b"".join(c.data for c in chunks) == b"before;one;two;three"
    assert chunks[0].data == b"before;"
    assert chunks[-1].closed
    assert [c.closed for c in chunks[:-1]] == [False] * (len(chunks) - 1)
    offsets = [c.offset for c in chunks]
    assert offsets == sorted(offsets)
    assert tail.closed


@pytest.mark.parametrize("mode", ["long-poll", "sse"])
async def test_a_json_tail_from_now_sees_only_new_messages(
    client: StreamClient, mode: LiveMode
) -> None:
    stream = fresh(client, "application/json")
    await stream.create("application/json", body="[0]")
    async with trio.open_nursery() as nursery:
        tail = stream.live("now", mode=mode)
        nursery.start_soon(write_then_close, stream, ["a", "b"])
        chunks = await collect(tail)
    assert [m for c in chunks for m in c.messages or ()] == ["a", "b"]
    if mode == "sse":
        assert chunks[0].empty  # the first control event says "caught up" at once
    assert all(c.up_to_date for c in chunks)


async def test_sse_catch_up_merges_the_reference_servers_several_data_events(
    client: StreamClient,
) -> None:
    # The reference server sends one data event per stored append, then one control
    # (upstream issue #262); the tail yields them as one chunk.
    stream = fresh(client)
    await stream.create("application/json")
    for n in range(3):
        await stream.append_json({"n": n})
    await stream.close()
    [chunk] = await collect(stream.live(mode="sse"))
    assert chunk.messages == ({"n": 0}, {"n": 1}, {"n": 2})
    assert chunk.closed


async def test_binary_data_round_trips_through_sse_base64(client: StreamClient) -> None:
    stream = fresh(client)
    payload = bytes(range(256)) * 3
    await stream.create(body=payload[:100])
    await stream.append(payload[100:])
    await stream.close()
    chunks = await collect(stream.live(mode="sse"))
    assert b"".join(c.data for c in chunks) == payload
    assert chunks[-1].closed


async def test_sse_turns_carriage_returns_of_text_into_line_feeds(client: StreamClient) -> None:
    # A limit of the protocol, not of the client: SSE splits text data on CR, LF and
    # CRLF alike and the client can only join the lines with LF. read() is exact.
    stream = fresh(client)
    await stream.create("text/plain", body="a\r\nb\rc\n")
    await stream.close()
    [chunk] = await collect(stream.live(mode="sse"))
    assert chunk.data == b"a\nb\nc\n"
    assert (await stream.read()).data == b"a\r\nb\rc\n"


async def test_a_tail_of_a_missing_stream_is_not_found(client: StreamClient) -> None:
    modes: tuple[LiveMode, ...] = ("long-poll", "sse")
    for mode in modes:
        with pytest.raises(StreamNotFound):
            await collect(fresh(client, "text/plain").live(mode=mode))


# -- writers -------------------------------------------------------------------------------


async def test_batched_json_appends_arrive_once_each_in_order(client: StreamClient) -> None:
    stream = fresh(client)
    await stream.create("application/json")
    acks = []
    async with stream.batcher(linger=0.05) as batcher:

        async def one(n: int) -> None:
            acks.append(await batcher.append_json({"n": n}))

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(one, n)
                await trio.testing.wait_all_tasks_blocked()
    assert (await stream.read()).messages == tuple({"n": n} for n in range(20))
    assert len({ack.offset for ack in acks}) < 20  # batched: fewer POSTs than appends


async def test_a_producer_writes_and_fences_its_older_incarnations(client: StreamClient) -> None:
    stream = fresh(client)
    await stream.create("text/plain")
    old = stream.producer("writer", linger=0)
    first = await old.append("a")
    second = await old.append("b")
    assert (first.seq, second.seq, first.duplicate) == (0, 1, False)

    # A restart that forgets to raise the epoch would be silently deduplicated by the
    # server (seq 0 at epoch 0 is already there); the producer notices and refuses.
    forgetful = stream.producer("writer", linger=0)
    with pytest.raises(Fenced, match=r"already holds seq 1 of this producer at epoch 0"):
        await forgetful.append("lost?")
    await forgetful.aclose()

    async with stream.producer("writer", auto_claim=True, linger=0) as claimer:
        ack = await claimer.append("c")
    assert (ack.epoch, ack.seq) == (1, 0)

    with pytest.raises(Fenced, match=r": 403\b.*the stream is at epoch 1") as fenced:
        await old.append("zombie")
    assert fenced.value.epoch == 1
    with pytest.raises(ProducerFailed):
        await old.append("still a zombie")
    await old.aclose()
    assert (await stream.read()).data == b"abc"
