"""The client's SSE framing and control-event parsing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transport._client_errors import MalformedResponse
from transport._client_sse import Control, SSEDecoder, SSEEvent, parse_control


def decode_all(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += decoder.push(chunk)
    return events


def test_data_lines_join_with_newline_and_one_space_is_dropped() -> None:
    body = b"event: data\ndata:a\ndata:  b\ndata:\n\nevent:control\ndata: {}\n\n"
    assert decode_all(body) == [SSEEvent("data", b"a\n b\n"), SSEEvent("control", b"{}")]


def test_crlf_and_cr_line_ends_are_line_ends() -> None:
    assert decode_all(b"event: data\r\ndata: x\r\n\r\nevent: data\rdata: y\r\r") == [
        SSEEvent("data", b"x"),
        SSEEvent("data", b"y"),
    ]


def test_cr_at_the_end_of_a_chunk_pairs_with_lf_at_the_start_of_the_next() -> None:
    # Split inside CRLF: the LF must not count as a second (blank) line.
    assert decode_all(b"data: a\r", b"\ndata: b\r", b"\n\r\n") == [SSEEvent("message", b"a\nb")]


def test_comments_ids_and_unknown_fields_are_ignored_and_eventless_blocks_dispatch_nothing() -> (
    None
):
    body = b": keep-alive\nid: 7\nretry: 100\nfoo: bar\n\nevent: control\n\ndata: z\n\n"
    assert decode_all(body) == [SSEEvent("message", b"z")]


def test_an_event_cut_off_by_the_end_of_the_body_is_dropped() -> None:
    decoder = SSEDecoder()
    assert decoder.push(b"event: data\ndata: complete\n\nevent: data\ndata: cut") == [
        SSEEvent("data", b"complete")
    ]
    assert decoder.close() is True
    assert decoder.push(b"\n\n") == []  # the cut event does not come back
    assert decoder.close() is False


def test_an_oversized_event_is_a_malformed_response() -> None:
    decoder = SSEDecoder(max_event_bytes=10)
    assert decoder.push(b"data: 12345\n") == []
    with pytest.raises(MalformedResponse, match=r"^an SSE event is larger than the 10-byte limit"):
        decoder.push(b"data: 67890\n")
    # An unterminated line counts too.
    with pytest.raises(MalformedResponse, match=r"larger than the 10-byte limit"):
        SSEDecoder(max_event_bytes=10).push(b"data: " + b"x" * 20)


# -- chunk splits never change the events ------------------------------------------------

_line_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
    max_size=12,
)
_events = st.lists(
    st.tuples(
        st.sampled_from([None, "data", "control"]), st.lists(_line_text, min_size=1, max_size=3)
    ),
    max_size=6,
)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent], list[int]]:
    events = draw(_events)
    end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    out = bytearray()
    expected = []
    for name, lines in events:
        if draw(st.booleans()):
            out += b": comment" + end
        if name is not None:
            out += b"event: " + name.encode() + end
        for line in lines:
            value = line.encode()
            space = b" " if value.startswith(b" ") or draw(st.booleans()) else b""
            out += b"data:" + space + value + end
        out += end
        expected.append(SSEEvent(name or "message", b"\n".join(s.encode() for s in lines)))
    cuts = sorted(draw(st.lists(st.integers(0, len(out)), max_size=8)))
    return bytes(out), expected, cuts


@given(_streams())
def test_any_chunk_split_of_a_valid_stream_gives_the_same_events(
    case: tuple[bytes, list[SSEEvent], list[int]],
) -> None:
    body, expected, cuts = case
    bounds = [0, *cuts, len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode_all(body) == expected
    assert decode_all(*chunks) == expected
    # Byte by byte, the worst split of all.
    assert decode_all(*(body[i : i + 1] for i in range(len(body)))) == expected


# -- control events ------------------------------------------------------------------------


def test_control_fields() -> None:
    assert parse_control(
        b'{"streamNextOffset":"0_5","streamCursor":"12","upToDate":true}', "t"
    ) == Control(next_offset="0_5", cursor="12", up_to_date=True, closed=False)
    # streamClosed implies up to date; a numeric cursor is tolerated.
    assert parse_control(
        b'{"streamNextOffset":"0_9","streamClosed":true,"streamCursor":3}', "t"
    ) == (Control(next_offset="0_9", cursor="3", up_to_date=True, closed=True))


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (b'{"streamNextOffset": "0_1"', r"is not valid JSON"),
        (b'["0_1"]', r"must be a JSON object"),
        (b'{"upToDate": true}', r"has no streamNextOffset string"),
        (b'{"streamNextOffset": 5}', r"has no streamNextOffset string"),
        (b'{"streamNextOffset": ""}', r"has no streamNextOffset string"),
        (b'{"streamNextOffset": "0_1", "upToDate": "yes"}', r"upToDate must be true or false"),
        (b'{"streamNextOffset": "0_1", "streamClosed": 1}', r"streamClosed must be true or false"),
        (b'{"streamNextOffset": "0_1", "streamCursor": [1]}', r"streamCursor must be a string"),
        (b'{"streamNextOffset": "0_1", "x": NaN}', r"is not valid JSON: NaN is not JSON"),
        (b"\xff\xfe", r"is not valid JSON"),
    ],
)
def test_a_malformed_control_event_is_a_malformed_response(payload: bytes, complaint: str) -> None:
    with pytest.raises(MalformedResponse, match=r"^tail of s: .*" + complaint):
        parse_control(payload, "tail of s")
