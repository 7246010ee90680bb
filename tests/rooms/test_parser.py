"""parse_room_message (reference §9.2): examples and properties."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from orchestrator.rooms.parser import (
    DirectiveLine,
    RoomMessage,
    directive_lines,
    parse_room_message,
)

OTHERS = ("bob", "carol")


def parse(text: str) -> RoomMessage | None:
    return parse_room_message(text, OTHERS)


def test_broadcast_and_direct() -> None:
    assert parse("done.\n@room REVIEW_REQUEST: main, login form") == RoomMessage(
        to=None, body="REVIEW_REQUEST: main, login form"
    )
    assert parse("@bob please look") == RoomMessage(to="bob", body="please look")


def test_no_directive_is_silence() -> None:
    assert parse("") is None
    assert parse("I fixed it, all tests pass.") is None
    assert parse("mail me at x@room now") is None


def test_the_last_hit_wins_and_the_body_runs_to_the_end() -> None:
    text = "@bob first\nmore\n@carol second line\nthird line  \n"
    assert parse(text) == RoomMessage(to="carol", body="second line\nthird line")


def test_unknown_names_and_the_senders_own_name_are_text() -> None:
    # alice is the sender, so she is not among the others.
    assert parse_room_message("@alice note to self", OTHERS) is None
    assert parse("@dave hello") is None
    assert parse("@Bob hello") is None  # case-sensitive
    # An unknown name after a valid hit is just part of the body.
    assert parse("@bob hi\n@dave hello") == RoomMessage(to="bob", body="hi\n@dave hello")


def test_only_line_starts_count() -> None:
    assert parse(" @bob indented") is None
    assert parse("see @bob there") is None
    assert parse("> @room quoted") is None


def test_a_directive_needs_whitespace_after_the_target() -> None:
    assert parse("all done\n@room") is None
    assert parse("@bob: hi") is None  # the target is "bob:"
    assert parse("@bob hi\n@room") == RoomMessage(to="bob", body="hi\n@room")


def test_the_target_may_end_at_a_line_end() -> None:
    assert parse("@bob\nplease look") == RoomMessage(to="bob", body="please look")


def test_an_empty_body_is_silence() -> None:
    assert parse("@room ") is None
    assert parse("text\n@bob \n  \n") is None


def test_crlf_line_ends() -> None:
    text = "Summary\r\n@bob REVIEW_REQUEST: x\r\nline two\r\n"
    assert parse(text) == RoomMessage(to="bob", body="REVIEW_REQUEST: x\r\nline two")
    assert parse("a\r@room b") == RoomMessage(to=None, body="b")


def test_flags() -> None:
    review = parse("@room REVIEW_REQUEST: repo x")
    gate = parse("@room GATE: deploy now?")
    plain = parse("@room APPROVED: ok")
    assert review is not None
    assert gate is not None
    assert plain is not None
    assert (review.is_review_request, review.is_gate_request) == (True, False)
    assert (gate.is_review_request, gate.is_gate_request) == (False, True)
    assert (plain.is_review_request, plain.is_gate_request) == (False, False)
    # The flag looks at the start of the body only.
    later = parse("@room see below\nGATE: x")
    assert later is not None
    assert not later.is_gate_request


def test_directive_lines_lists_every_candidate() -> None:
    text = "@dave hi\nx @bob no\n@room yes\n@end"
    assert directive_lines(text) == [
        DirectiveLine(target="dave", start=0, body_start=6),
        DirectiveLine(target="room", start=19, body_start=25),
    ]


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
    min_size=1,
    max_size=8,
).filter(lambda name: not any(c.isspace() for c in name))
texts = st.text(alphabet=st.sampled_from("ab @\n\r\t:xroombobcarol"), max_size=60) | st.text(
    max_size=60
)


@given(texts, st.lists(names, max_size=4))
def test_never_crashes_and_the_result_is_well_formed(text: str, others: list[str]) -> None:
    message = parse_room_message(text, others)
    if message is not None:
        assert message.to is None or message.to in others
        assert message.body == message.body.strip()
        assert message.body


@given(texts, st.sampled_from(["room", *OTHERS]), texts)
def test_a_final_directive_is_found(prefix: str, name: str, body: str) -> None:
    valid = {"room", *OTHERS}
    assume(body.strip())
    assume(not any(line.target in valid for line in directive_lines(body)))
    message = parse(prefix + "\n@" + name + " " + body)
    assert message == RoomMessage(to=None if name == "room" else name, body=body.strip())
