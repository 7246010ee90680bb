"""The stream client against scripted servers (``httpx.MockTransport``): lifecycle,
error mapping, defensive parsing, retries, live-tail resumption, the writers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from transport._client_errors import (
    MalformedResponse,
    ProducerFailed,
    StreamUnavailable,
    UnexpectedStatus,
)
from transport._errors import (
    BadRequest,
    Conflict,
    Fenced,
    SequenceGap,
    StreamClosed,
    StreamError,
    StreamNotFound,
)
from transport.client import AppendAck, Chunk, IdempotentProducer, RetryPolicy, StreamClient

BASE = "http://streams.test/v1/stream"
O1, O2, O3 = "0000000000000000_0000000000000001", "0_2", "0_3"

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class Server:
    """A scripted server: answers requests in turn from a list of replies (a Response,
    an exception to raise, or a function of the request), and records the requests."""

    def __init__(self, *replies: httpx.Response | Exception | Callable[[httpx.Request], Any]):
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            reply = await reply(request)
        assert isinstance(reply, httpx.Response)
        return reply

    def params(self, name: str) -> list[str | None]:
        return [request.url.params.get(name) for request in self.requests]

    def headers(self, name: str) -> list[str | None]:
        return [request.headers.get(name) for request in self.requests]


def client_for(handler: Handler, **options: Any) -> StreamClient:
    options.setdefault("retry", RetryPolicy(attempts=3, initial=1.0))
    return StreamClient(BASE, transport=httpx.MockTransport(handler), **options)


def reply(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=_headers(headers))


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in headers.items()}


class Body(httpx.AsyncByteStream):
    """A response body that yields its chunks and then, optionally, breaks."""

    def __init__(self, chunks: Iterable[bytes], error: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.error = error
        self.closes = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        self.closes += 1


def sse(*events: tuple[str, str], error: Exception | None = None, **headers: str) -> httpx.Response:
    body = [
        f"event: {name}\n".encode()
        + b"".join(b"data:" + line.encode() + b"\n" for line in data.split("\n"))
        + b"\n"
        for name, data in events
    ]
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream", **_headers(headers)},
        stream=Body(body, error),
    )


def control(offset: str, **fields: Any) -> tuple[str, str]:
    return ("control", json.dumps({"streamNextOffset": offset, **fields}))


async def collect(tail: AsyncIterator[Chunk]) -> list[Chunk]:
    return [chunk async for chunk in tail]


# -- lifecycle ---------------------------------------------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __aenter__(self) -> RecordingTransport:
        self.calls.append("enter")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.calls.append("exit")
        await super().__aexit__(*exc)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        self.calls.append("aclose")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        return reply(204)


async def test_the_client_opens_once_and_refuses_use_outside_its_block() -> None:
    transport = RecordingTransport()
    client = StreamClient(BASE, transport=transport)
    stream = client.stream("a")
    with pytest.raises(RuntimeError, match=r"^this StreamClient is not open: use 'async with"):
        await stream.delete()
    async with client:
        with pytest.raises(RuntimeError, match=r"^this StreamClient is already open$"):
            await client.__aenter__()
        await stream.delete()
    await client.aclose()  # idempotent
    assert transport.calls == ["enter", "DELETE /v1/stream/a", "exit", "aclose"]
    with pytest.raises(RuntimeError, match=r"^this StreamClient is closed$"):
        await stream.delete()
    with pytest.raises(RuntimeError, match=r"^this StreamClient was closed and cannot be reopened"):
        await client.__aenter__()


def test_bad_arguments_are_refused_early() -> None:
    with pytest.raises(ValueError, match=r"^base_url must be an http\(s\) URL"):
        StreamClient("ftp://x/v1/stream")
    client = StreamClient(BASE)
    with pytest.raises(ValueError, match=r"must not have empty, '\.' or '\.\.' segments"):
        client.stream("a/../b")
    assert client.stream("a b/c?d").url == BASE + "/a%20b/c%3Fd"
    with pytest.raises(ValueError, match=r"^offset must be a non-empty string"):
        client.stream("a").live("")
    with pytest.raises(ValueError, match=r"^attempts must be an int >= 0"):
        RetryPolicy(attempts=-1)
    with pytest.raises(ValueError, match=r"^linger must be a finite number"):
        client.stream("a").batcher(linger=float("inf"))
    with pytest.raises(TypeError, match=r"^StreamHandle has no public constructor"):
        type(client.stream("a"))()


# -- requests and the mapping of answers -------------------------------------------------


async def test_create_sends_the_configuration_and_reads_the_answer() -> None:
    server = Server(
        reply(201, content_type="application/json", Stream_Next_Offset=O1),
        reply(200, content_type="application/json", Stream_Next_Offset=O1),
        reply(409, b"Stream already exists with different configuration"),
    )
    async with client_for(server) as client:
        stream = client.stream("s")
        created = await stream.create("application/json", ttl=60, body="[1]")
        assert (created.created, created.offset, created.content_type) == (
            True,
            O1,
            "application/json",
        )
        assert stream.content_type == "application/json"
        assert not (await stream.create("application/json", ttl=60, body="[1]")).created
        with pytest.raises(
            Conflict, match=r"^create .*/s: 409 Conflict: Stream already exists with different"
        ):
            await stream.create("text/plain")
        with pytest.raises(ValueError, match=r"^give ttl or expires_at, not both"):
            await stream.create(ttl=1, expires_at="2030-01-01T00:00:00Z")
    first = server.requests[0]
    assert (first.method, first.headers["Stream-TTL"], first.content) == ("PUT", "60", b"[1]")


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            reply(404, b"Stream not found"),
            StreamNotFound,
            r"^append to .*/s: 404 Not Found: Stream not found$",
        ),
        (reply(400, b"bad"), BadRequest, r"^append to .*/s: 400 Bad Request: bad$"),
        (
            reply(409, Stream_Closed="true", Stream_Next_Offset=O2),
            StreamClosed,
            r"\(the stream is closed\)$",
        ),
        (reply(409, b"Sequence conflict"), Conflict, r"409 Conflict: Sequence conflict$"),
        (reply(401), UnexpectedStatus, r"^append to .*/s: 401 Unauthorized$"),
        (reply(500), StreamUnavailable, r"^append to .*/s: 500 Internal Server Error$"),
    ],
)
async def test_refusals_come_back_as_the_servers_error_classes(
    answer: httpx.Response, error: type[StreamError], message: str
) -> None:
    server = Server(answer)
    async with client_for(server) as client:
        with pytest.raises(error, match=message) as caught:
            await client.stream("s", content_type="text/plain").append("x")
    assert len(server.requests) == 1  # a plain append is never retried
    if isinstance(caught.value, StreamClosed):
        assert caught.value.final_offset == O2
        assert caught.value.headers["stream-closed"] == "true"


async def test_reads_retry_failures_and_follow_pages_until_up_to_date() -> None:
    server = Server(
        httpx.ConnectError("refused"),
        reply(503),
        reply(200, b"ab", content_type="text/plain", Stream_Next_Offset=O1),
        reply(
            200, b"c", content_type="text/plain", Stream_Next_Offset=O2, Stream_Up_To_Date="true"
        ),
    )
    async with client_for(server) as client:
        chunk = await client.stream("s").read()
    assert chunk == Chunk(data=b"abc", offset=O2, up_to_date=True)
    assert server.params("offset") == ["-1", "-1", "-1", O1]


async def test_reads_give_up_after_the_policys_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server(*[httpx.ConnectError("refused") for _ in range(4)])
    async with client_for(server) as client:
        with pytest.raises(
            StreamUnavailable, match=r"^read .*/s: ConnectError: refused \(after 4 attempts\)$"
        ) as caught:
            await client.stream("s").read()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert trio.current_time() == pytest.approx(1 + 2 + 4)


async def test_json_reads_merge_pages_into_one_array() -> None:
    server = Server(
        reply(200, b'[{"a":1}]', content_type="application/json", Stream_Next_Offset=O1),
        reply(
            200,
            b"[2, [3]]",
            content_type="application/json",
            Stream_Next_Offset=O2,
            Stream_Up_To_Date="true",
            Stream_Closed="true",
        ),
    )
    async with client_for(server) as client:
        chunk = await client.stream("s").read()
    assert chunk.messages == ({"a": 1}, 2, [3])
    assert json.loads(chunk.data) == [{"a": 1}, 2, [3]]
    assert (chunk.closed, chunk.up_to_date) == (True, True)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            reply(200, b"x", content_type="text/plain"),
            r"the 200 answer has no Stream-Next-Offset header",
        ),
        (
            reply(200, b"[1,", content_type="application/json", Stream_Next_Offset=O1),
            r"the body is not valid JSON",
        ),
        (
            reply(200, b'{"a":1}', content_type="application/json", Stream_Next_Offset=O1),
            r"must be a JSON array",
        ),
        (
            reply(200, b"", content_type="text/plain", Stream_Next_Offset="-1"),
            r"does not advance from offset '-1'",
        ),
    ],
)
async def test_malformed_read_answers_are_malformed_responses(
    answer: httpx.Response, message: str
) -> None:
    async with client_for(Server(answer)) as client:
        with pytest.raises(MalformedResponse, match=message):
            await client.stream("s").read()


async def test_head_parses_metadata_and_refuses_malformed_headers() -> None:
    server = Server(
        reply(
            200,
            content_type="text/plain",
            Stream_Next_Offset=O1,
            Stream_TTL="60",
            Stream_Closed="true",
        ),
        reply(
            200,
            content_type="text/plain",
            Stream_Next_Offset=O1,
            Stream_Expires_At="2030-01-01T00:00:00Z",
        ),
        reply(200, content_type="text/plain", Stream_Next_Offset=O1, Stream_TTL="1e3"),
        reply(200, content_type="text/plain", Stream_Next_Offset=O1, Stream_Expires_At="soon"),
    )
    async with client_for(server) as client:
        stream = client.stream("s")
        info = await stream.head()
        assert (info.ttl, info.closed, info.offset, info.expires_at) == (60, True, O1, None)
        assert (await stream.head()).expires_at is not None
        with pytest.raises(
            MalformedResponse, match=r"header Stream-TTL is not a non-negative integer: '1e3'"
        ):
            await stream.head()
        with pytest.raises(
            MalformedResponse, match=r"Stream-Expires-At is not an RFC 3339 time: 'soon'"
        ):
            await stream.head()


async def test_byte_appends_learn_the_content_type_once_and_json_appends_wrap_one_message() -> None:
    server = Server(
        reply(200, content_type="application/json", Stream_Next_Offset="0_0"),
        reply(204, Stream_Next_Offset=O1),
        reply(204, Stream_Next_Offset=O2, Stream_Closed="true"),
        reply(204, Stream_Next_Offset=O3),
    )
    async with client_for(server) as client:
        stream = client.stream("s")
        assert (await stream.append("[1,2]")).offset == O1
        assert await stream.append_json([1, 2], close=True) == AppendAck(offset=O2, closed=True)
        await stream.append_json("x", seq="0009")
        with pytest.raises(ValueError, match=r"^Out of range float values are not JSON compliant"):
            await stream.append_json(float("nan"))
    methods = [(r.method, r.headers.get("content-type"), r.content) for r in server.requests]
    assert methods == [
        ("HEAD", None, b""),
        ("POST", "application/json", b"[1,2]"),
        ("POST", "application/json", b"[[1,2]]"),
        ("POST", "application/json", b'["x"]'),
    ]
    assert server.headers("Stream-Closed")[2] == "true"
    assert server.headers("Stream-Seq")[3] == "0009"


async def test_close_only_sends_no_body_and_no_content_type() -> None:
    server = Server(reply(204, Stream_Next_Offset=O1, Stream_Closed="true"))
    async with client_for(server) as client:
        result = await client.stream("s").close()
    assert (result.offset, result.closed) == (O1, True)
    request = server.requests[0]
    assert (request.content, request.headers.get("content-type")) == (b"", None)
    assert request.headers["Stream-Closed"] == "true"


# -- live tail: long-poll ------------------------------------------------------------------


async def test_long_poll_resumes_after_failures_and_passes_the_cursor_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server(
        reply(200, b"a", content_type="text/plain", Stream_Next_Offset=O1, Stream_Cursor="7"),
        httpx.ReadError("connection reset"),
        reply(502),
        reply(204, Stream_Next_Offset=O1, Stream_Up_To_Date="true", Stream_Cursor="8"),
        reply(204, Stream_Next_Offset=O1, Stream_Up_To_Date="true", Stream_Cursor="9"),
        reply(
            200, b"b", content_type="text/plain", Stream_Next_Offset=O2, Stream_Up_To_Date="true"
        ),
        reply(204, Stream_Next_Offset=O2, Stream_Up_To_Date="true", Stream_Closed="true"),
    )
    async with (
        client_for(server) as client,
        client.stream("s", content_type="text/plain").live() as tail,
    ):
        chunks = await collect(tail)
    assert [(c.data, c.offset, c.up_to_date, c.closed) for c in chunks] == [
        (b"a", O1, False, False),
        (b"", O1, True, False),  # caught up (the second keep-alive is not yielded)
        (b"b", O2, True, False),
        (b"", O2, True, True),  # closed: the end
    ]
    assert server.params("offset") == ["-1", O1, O1, O1, O1, O1, O2]
    assert server.params("cursor") == [None, "7", "7", "7", "8", "9", "9"]
    assert server.params("live") == ["long-poll"] * 7
    assert tail.closed


async def test_a_live_tail_gives_up_with_the_offset_to_resume_from(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server(
        reply(200, b"a", content_type="text/plain", Stream_Next_Offset=O1),
        *[httpx.ConnectError("refused") for _ in range(4)],
        reply(200, b"b", content_type="text/plain", Stream_Next_Offset=O2),
    )
    async with (
        client_for(server) as client,
        client.stream("s", content_type="text/plain").live() as tail,
    ):
        assert (await tail.__anext__()).data == b"a"
        with pytest.raises(
            StreamUnavailable,
            match=r"gave up after 4 failed attempts in a row; resume from offset '0+_0+1'",
        ) as caught:
            await tail.__anext__()
        # Iterating again later resumes from there, with a fresh retry budget.
        assert (await tail.__anext__()).data == b"b"
    assert caught.value.offset == O1
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert server.params("offset") == ["-1", *[O1] * 5]


async def test_a_refusal_ends_the_live_tail() -> None:
    server = Server(reply(404, b"Stream not found"))
    async with (
        client_for(server) as client,
        client.stream("s", content_type="text/plain").live() as tail,
    ):
        with pytest.raises(StreamNotFound):
            await collect(tail)


# -- live tail: SSE ------------------------------------------------------------------------


async def test_a_dropped_sse_connection_resumes_from_the_last_control_without_duplicates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = sse(
        ("data", "a"),
        control(O1, streamCursor="5"),
        ("data", "b"),  # not confirmed by a control event before the drop
        error=httpx.RemoteProtocolError("peer closed connection"),
    )
    second = sse(
        ("data", "b"),
        ("data", "c"),  # two data events, then one control (the reference server does that)
        control(O2, upToDate=True, streamCursor="6"),
        control(O2, upToDate=True, streamCursor="6"),  # keep-alive
        ("data", "d"),
        control(O3, streamClosed=True),
    )
    server = Server(first, second)
    async with (
        client_for(server) as client,
        client.stream("s", content_type="text/plain").live(mode="sse") as tail,
    ):
        chunks = await collect(tail)
    assert [(c.data, c.offset, c.up_to_date, c.closed) for c in chunks] == [
        (b"a", O1, False, False),
        (b"bc", O2, True, False),
        (b"d", O3, True, True),
    ]
    assert server.params("offset") == ["-1", O1]
    assert server.params("cursor") == [None, "5"]
    assert server.params("live") == ["sse", "sse"]


async def test_a_cleanly_ended_sse_response_is_reconnected_at_once() -> None:
    server = Server(
        sse(("data", "a"), control(O1, upToDate=True)),
        sse(control(O1, upToDate=True), ("data", "b"), control(O2, streamClosed=True)),
    )
    async with (
        client_for(server) as client,
        client.stream("s", content_type="text/plain").live(mode="sse") as tail,
    ):
        chunks = await collect(tail)
    assert [c.data for c in chunks] == [b"a", b"b"]
    assert server.params("offset") == ["-1", O1]


async def test_sse_json_and_base64_data() -> None:
    server = Server(
        sse(
            ("data", '[{"a":1}]'),
            ("data", "[2,\n3]"),
            control(O1, upToDate=True, streamClosed=True),
        ),
        sse(
            ("data", "AAEC/w=="),
            ("data", "aGk="),
            control(O1, streamClosed=True),
            Stream_SSE_Data_Encoding="base64",
        ),
    )
    async with client_for(server) as client:
        async with client.stream("j", content_type="application/json").live(mode="sse") as tail:
            [chunk] = await collect(tail)
        assert chunk.messages == ({"a": 1}, 2, 3)
        assert json.loads(chunk.data) == [{"a": 1}, 2, 3]
        async with client.stream("b", content_type="application/octet-stream").live(
            mode="sse"
        ) as tail:
            [chunk] = await collect(tail)
        assert (chunk.data, chunk.messages) == (b"\x00\x01\x02\xffhi", None)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (sse(("control", "{not json")), r"a control event is not valid JSON"),
        (sse(("control", '{"upToDate": true}')), r"a control event has no streamNextOffset string"),
        (
            sse(("data", "%%%"), control(O1), Stream_SSE_Data_Encoding="base64"),
            r"a data event is not valid base64",
        ),
        (
            reply(200, b"<html>", content_type="text/html"),
            r"expected text/event-stream, got text/html",
        ),
    ],
)
async def test_malformed_sse_is_a_malformed_response(answer: httpx.Response, message: str) -> None:
    async with (
        client_for(Server(answer)) as client,
        client.stream("s", content_type="text/plain").live(mode="sse") as tail,
    ):
        with pytest.raises(MalformedResponse, match=r"^live tail \(sse\) of .*/s: " + message):
            await collect(tail)


async def test_sse_learns_the_content_type_with_a_head_first() -> None:
    server = Server(
        reply(200, content_type="application/json", Stream_Next_Offset=O1),
        sse(("data", "[1]"), control(O1, streamClosed=True)),
    )
    async with client_for(server) as client, client.stream("s").live(mode="sse") as tail:
        [chunk] = await collect(tail)
    assert chunk.messages == (1,)
    assert [r.method for r in server.requests] == ["HEAD", "GET"]


async def test_closing_a_live_tail_closes_its_sse_response() -> None:
    body = Body(
        [
            b"event: data\ndata:a\n\nevent: control\ndata:"
            + json.dumps({"streamNextOffset": O1}).encode()
            + b"\n\n"
        ]
    )
    server = Server(httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body))
    async with client_for(server) as client:
        tail = client.stream("s", content_type="text/plain").live(mode="sse")
        async with tail:
            assert (await tail.__anext__()).data == b"a"
            assert body.closes == 0
        assert body.closes == 1
        with pytest.raises(StopAsyncIteration):
            await tail.__anext__()
        with pytest.raises(RuntimeError, match=r"^this LiveTail was closed"):
            await tail.__aenter__()


# -- batcher -------------------------------------------------------------------------------


async def append_all(writer: Any, items: list[Any], *, json_mode: bool = False) -> list[Any]:
    results: list[Any] = [None] * len(items)

    async def one(i: int) -> None:
        method = writer.append_json if json_mode else writer.append
        results[i] = await method(items[i])

    async with trio.open_nursery() as nursery:
        for i in range(len(items)):
            nursery.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
    return results


async def test_a_batcher_sends_the_appends_of_one_linger_as_one_post(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server(reply(204, Stream_Next_Offset=O1), reply(204, Stream_Next_Offset=O2))
    async with client_for(server) as client:
        stream = client.stream("s", content_type="text/plain")
        async with stream.batcher(linger=0.5, max_batch_bytes=4) as batcher:
            results = await append_all(batcher, ["a", "b", "c", "de", "f"])
    assert [r.offset for r in results] == [O1, O1, O1, O2, O2]
    assert [r.content for r in server.requests] == [b"abc", b"def"]  # 4 bytes at most


async def test_a_json_batcher_sends_one_array_and_lingers_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sent_at: list[float] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(trio.current_time())
        return reply(204, Stream_Next_Offset=O1)

    server = Server(answer)
    async with client_for(server) as client:
        stream = client.stream("s", content_type="application/json")
        async with stream.batcher(linger=0.25) as batcher:
            await append_all(batcher, [{"a": 1}, [1, 2], "x"], json_mode=True)
            with pytest.raises(
                ValueError, match=r"^this Batcher carries JSON messages \(append_json\)"
            ):
                await batcher.append("raw")
    assert server.requests[0].content == b'[{"a":1},[1,2],"x"]'
    assert sent_at == [pytest.approx(0.25)]


async def test_a_cancelled_append_that_was_not_sent_is_withdrawn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server(reply(204, Stream_Next_Offset=O1))
    async with client_for(server) as client:
        batcher = client.stream("s", content_type="text/plain").batcher(linger=1.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(batcher.append, "keep")
            await trio.testing.wait_all_tasks_blocked()
            with trio.move_on_after(0.5):
                await batcher.append("drop")
        await batcher.aclose()
        with pytest.raises(RuntimeError, match=r"^this Batcher is closed$"):
            await batcher.append("late")
    assert [r.content for r in server.requests] == [b"keep"]


async def test_a_refused_batch_fails_each_of_its_appends() -> None:
    server = Server(reply(409, Stream_Closed="true", Stream_Next_Offset=O1))
    async with client_for(server) as client:
        batcher = client.stream("s", content_type="text/plain").batcher(linger=0)
        with pytest.raises(StreamClosed):
            await batcher.append("x")
        await batcher.aclose()


# -- idempotent producer -------------------------------------------------------------------


def text_producer(client: StreamClient, **options: Any) -> IdempotentProducer:
    options.setdefault("linger", 0)
    return client.stream("s", content_type="text/plain").producer("w", **options)


def accepted(offset: str, epoch: int = 0, seq: int = 0) -> httpx.Response:
    return reply(200, Stream_Next_Offset=offset, Producer_Epoch=str(epoch), Producer_Seq=str(seq))


async def test_a_producer_retries_a_503_with_the_same_epoch_and_seq(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server(reply(503), accepted(O1), accepted(O2, seq=1))
    async with client_for(server) as client:
        producer = text_producer(client, epoch=2)
        async with producer:
            first = await producer.append("a")
            second = await producer.append("b")
    assert (first.offset, first.duplicate, first.epoch, first.seq) == (O1, False, 2, 0)
    assert (second.seq, producer.seq) == (1, 2)
    assert server.headers("Producer-Seq") == ["0", "0", "1"]
    assert server.headers("Producer-Epoch") == ["2", "2", "2"]
    assert server.headers("Producer-Id") == ["w", "w", "w"]


async def test_a_retry_the_server_already_applied_is_acknowledged_as_a_duplicate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = Server(
        httpx.ReadError("the answer was lost"),
        reply(204, Producer_Epoch="0", Producer_Seq="0"),
    )
    async with client_for(server) as client:
        producer = text_producer(client)
        ack = await producer.append("a")
        await producer.aclose()
    assert (ack.offset, ack.duplicate, ack.seq) == (None, True, 0)
    assert server.headers("Producer-Seq") == ["0", "0"]


async def test_a_duplicate_on_a_first_attempt_means_another_producer_has_this_epoch() -> None:
    server = Server(reply(204, Producer_Epoch="0", Producer_Seq="41"))
    async with client_for(server) as client:
        producer = text_producer(client)
        with pytest.raises(
            Fenced, match=r"already holds seq 41 of this producer at epoch 0"
        ) as caught:
            await producer.append("a")
        assert caught.value.epoch == 0
        with pytest.raises(
            ProducerFailed, match=r"^producer 'w' of .* failed and takes no more appends"
        ) as failed:
            await producer.append("b")
        assert failed.value.__cause__ is caught.value
        await producer.aclose()


async def test_a_stale_epoch_is_fenced_and_ends_the_producer() -> None:
    server = Server(reply(403, b"Stale producer epoch", Producer_Epoch="3"))
    async with client_for(server) as client:
        producer = text_producer(client)
        with pytest.raises(
            Fenced,
            match=r"403 Forbidden: Stale producer epoch \(fenced: .* the stream is at epoch 3",
        ) as caught:
            await producer.append("a")
        assert (caught.value.epoch, producer.failure) == (3, caught.value)
        with pytest.raises(ProducerFailed):
            await producer.flush()
        await producer.aclose()


async def test_auto_claim_moves_past_the_fencing_epoch_and_resends_from_seq_0() -> None:
    server = Server(
        accepted(O1),
        reply(403, Producer_Epoch="3"),
        accepted(O2, epoch=4),
    )
    async with client_for(server) as client:
        producer = text_producer(client, auto_claim=True)
        async with producer:
            await producer.append("a")
            ack = await producer.append("b")
    assert (ack.epoch, ack.seq, producer.epoch, producer.seq) == (4, 0, 4, 1)
    assert list(
        zip(server.headers("Producer-Epoch"), server.headers("Producer-Seq"), strict=True)
    ) == [
        ("0", "0"),
        ("0", "1"),
        ("4", "0"),
    ]


async def test_a_sequence_gap_is_a_clear_error() -> None:
    server = Server(
        reply(
            409,
            b"IdempotentProducer sequence gap",
            Producer_Expected_Seq="0",
            Producer_Received_Seq="5",
        )
    )
    async with client_for(server) as client:
        producer = text_producer(client)
        with pytest.raises(
            SequenceGap, match=r"producer sequence gap: the server expected seq 0, received 5\)$"
        ) as caught:
            await producer.append("a")
        assert (caught.value.expected, caught.value.received) == (0, 5)
        await producer.aclose()


async def test_a_batch_whose_sender_was_cancelled_is_resent_with_its_seq(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()

    server = Server(hang, accepted(O1), accepted(O2, seq=1))
    async with client_for(server) as client:
        producer = text_producer(client)
        with trio.move_on_after(1):
            await producer.append("a")
        await producer.flush()  # resends the batch left in flight
        ack = await producer.append("b")
        await producer.aclose()
    assert [r.content for r in server.requests] == [b"a", b"a", b"b"]
    assert server.headers("Producer-Seq") == ["0", "0", "1"]
    assert ack.seq == 1
