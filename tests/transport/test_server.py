"""The HTTP layer, through the Quart test client: status codes and headers of the
protocol, and bad input of every kind answered with a 4xx that changes nothing."""

from __future__ import annotations

import base64
import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import Quart
from quart.typing import TestClientProtocol as Client

from transport import MemoryStore, ServerSettings, create_app

S = "/v1/stream/s"


def make_app(**kwargs: float) -> Quart:
    conf = ServerSettings(
        long_poll_timeout=kwargs.get("long_poll_timeout", 0.2),
        max_body_bytes=int(kwargs.get("max_body_bytes", 4096)),
    )
    return create_app(MemoryStore(), conf)


async def tail(client: Client, path: str = S) -> str | None:
    return (await client.head(path)).headers.get("Stream-Next-Offset")


async def test_create_append_read_and_headers() -> None:
    client = make_app().test_client()
    created = await client.put(S, data=b"hi", headers={"Content-Type": "text/plain"})
    assert created.status_code == 201
    assert created.headers["Location"].endswith(S)
    assert created.headers["X-Content-Type-Options"] == "nosniff"
    appended = await client.post(S, data=b"!", headers={"Content-Type": "text/plain"})
    assert appended.status_code == 204
    read = await client.get(S + "?offset=-1")
    assert read.status_code == 200
    assert read.headers["Content-Type"] == "text/plain"
    assert await read.get_data() == b"hi!"
    assert read.headers["Stream-Up-To-Date"] == "true"
    etag = read.headers["ETag"]
    cached = await client.get(S + "?offset=-1", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    head = await client.head(S)
    assert head.headers["Cache-Control"] == "no-store"
    preflight = await client.options(S)
    assert preflight.status_code == 204
    assert "if-none-match" in preflight.headers["Access-Control-Allow-Headers"]


async def test_long_poll_times_out_with_204_and_a_cursor() -> None:
    client = make_app(long_poll_timeout=0.05).test_client()
    await client.put(S, headers={"Content-Type": "text/plain"})
    offset = await tail(client)
    polled = await client.get(f"{S}?offset={offset}&live=long-poll&cursor=1")
    assert polled.status_code == 204
    assert polled.headers["Stream-Up-To-Date"] == "true"
    assert int(polled.headers["Stream-Cursor"]) > 1


async def test_sse_splits_lines_so_nothing_can_be_injected() -> None:
    client = make_app().test_client()
    await client.put(S, headers={"Content-Type": "text/plain"})
    await client.post(
        S,
        data=b"a\r\nevent: control\rdata: x\nb",
        headers={"Content-Type": "text/plain", "Stream-Closed": "true"},
    )
    response = await client.get(S + "?offset=-1&live=sse")
    assert response.headers["Content-Type"] == "text/event-stream"
    body = await response.get_data(as_text=True)
    events = [e for e in body.split("\n\n") if e]
    assert events[0] == "event: data\ndata:a\ndata:event: control\ndata:data: x\ndata:b"
    control = json.loads(events[1].split("data:", 1)[1])
    assert control["streamClosed"] is True


async def test_sse_of_a_binary_stream_is_base64() -> None:
    client = make_app().test_client()
    await client.put(
        S,
        data=b"\x00\xff",
        headers={"Content-Type": "application/octet-stream", "Stream-Closed": "true"},
    )
    response = await client.get(S + "?offset=-1&live=sse")
    assert response.headers["Stream-SSE-Data-Encoding"] == "base64"
    body = await response.get_data(as_text=True)
    data_line = body.split("\n")[1]
    assert base64.b64decode(data_line.removeprefix("data:")) == b"\x00\xff"


async def test_oversize_bodies_are_413_and_change_nothing() -> None:
    client = make_app(max_body_bytes=100).test_client()
    await client.put(S, headers={"Content-Type": "text/plain"})
    before = await tail(client)
    response = await client.post(S, data=b"x" * 101, headers={"Content-Type": "text/plain"})
    assert response.status_code == 413
    assert await tail(client) == before


async def test_missing_streams_are_404_for_every_method() -> None:
    client = make_app().test_client()
    missing = "/v1/stream/missing"
    assert (await client.get(missing)).status_code == 404
    assert (await client.get(missing + "?offset=bad")).status_code == 404
    assert (await client.head(missing)).status_code == 404
    assert (await client.delete(missing)).status_code == 404
    post = await client.post(missing, data=b"x", headers={"Content-Type": "text/plain"})
    assert post.status_code == 404


def junk(alphabet: str = string.printable) -> st.SearchStrategy[str]:
    return st.text(alphabet=st.sampled_from(alphabet), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offset=junk(string.ascii_letters + string.digits + "_-, &=/%"), live=junk("lspoe-n"))
async def test_any_offset_and_live_value_is_answered_without_a_server_error(
    offset: str, live: str
) -> None:
    client = make_app(long_poll_timeout=0.01).test_client()
    await client.put(S, data=b"x", headers={"Content-Type": "text/plain"})
    response = await client.get(S, query_string={"offset": offset, "live": live})
    assert response.status_code in (200, 204, 400), (offset, live, response.status_code)
    if response.status_code == 200 and live != "sse":
        await response.get_data()


header_names = st.sampled_from(
    [
        "Stream-TTL",
        "Stream-Expires-At",
        "Stream-Closed",
        "Stream-Seq",
        "Producer-Id",
        "Producer-Epoch",
        "Producer-Seq",
        "Stream-Forked-From",
        "Stream-Fork-Offset",
        "Stream-Fork-Sub-Offset",
        "Content-Type",
    ]
)
header_values = st.one_of(
    junk(string.ascii_letters + string.digits + string.punctuation + " "),
    st.sampled_from(["0", "1", "-1", "1e3", "01", "true", "TRUE", "9" * 30, "", " 5"]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["PUT", "POST"]),
    headers=st.dictionaries(header_names, header_values, max_size=4),
    body=st.sampled_from([b"", b"x", b"[]", b"[1]", b"NaN", b"{", b"\xff"]),
)
async def test_bad_headers_and_bodies_get_a_4xx_and_change_nothing(
    method: str, headers: dict[str, str], body: bytes
) -> None:
    client = make_app().test_client()
    await client.put(S, data=b"[0]", headers={"Content-Type": "application/json"})
    before = await tail(client)
    before_body = await (await client.get(S + "?offset=-1")).get_data()
    target = S if method == "POST" else "/v1/stream/other"
    response = await client.open(target, method=method, data=body, headers=headers)  # type: ignore[call-arg]
    assert response.status_code < 500, (headers, body, response.status_code)
    if response.status_code >= 400:
        assert await tail(client) == before
        assert await (await client.get(S + "?offset=-1")).get_data() == before_body
        if method == "PUT":
            assert (await client.head(target)).status_code == 404
