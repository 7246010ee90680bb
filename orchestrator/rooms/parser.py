"""Directives in an agent's reply: who, if anyone, a room message goes to (reference §9.2).

An agent talks to the room by ending its reply with a *directive*: a line that starts
with ``@`` and a target, then one whitespace character, then the message::

    I pushed the fix to main.
    @room REVIEW_REQUEST: please review the login form (branch main)

The rules, as the reference implements them:

* Only line starts count (the start of the text, or just after ``\\n`` or ``\\r``, so
  ``\\r\\n`` line ends work). No leading spaces: `` @room hi`` is not a directive.
* A candidate is ``@`` + a run of non-whitespace (the target) + one whitespace
  character. A candidate at the very end of the text with nothing after the target
  (``...\\n@room``) is not one.
* A candidate is a hit only when its target is ``room`` (a broadcast) or exactly,
  case-sensitively, the name of one of the *other* participants. ``@Bob`` is not
  ``bob``; an agent naming itself or someone absent is simply text.
* No hit: the agent stays silent (``None``). Otherwise the **last** hit wins and the
  body is everything after its whitespace character to the end of the text, stripped,
  so it may span several lines. Earlier hits are part of the text before it.

One change: a hit whose body is empty after stripping (``@room`` followed only by
whitespace) is silence too, since there is nothing to send.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

__all__ = ["BROADCAST", "DirectiveLine", "RoomMessage", "directive_lines", "parse_room_message"]

BROADCAST = "room"
REVIEW_REQUEST = "REVIEW_REQUEST:"
GATE = "GATE:"

# At the start of the text or just after a line end: "@", the target, one whitespace.
_DIRECTIVE = re.compile(r"(?:\A|(?<=[\r\n]))@(\S+)\s")


@attrs.frozen
class RoomMessage:
    """A message an agent addressed to the room (``to`` is None) or to one participant."""

    to: str | None
    body: str

    @property
    def is_review_request(self) -> bool:
        return self.body.startswith(REVIEW_REQUEST)

    @property
    def is_gate_request(self) -> bool:
        return self.body.startswith(GATE)


@attrs.frozen
class DirectiveLine:
    """A line that looks like a directive, whatever its target: ``text[start]`` is the
    ``@`` and the body (unstripped) starts at ``text[body_start]``."""

    target: str
    start: int
    body_start: int


def directive_lines(text: str) -> list[DirectiveLine]:
    """Every line of ``text`` that starts like a directive (``@`` + target + whitespace),
    in order, whether or not its target is a participant."""
    return [
        DirectiveLine(target=match.group(1), start=match.start(), body_start=match.end())
        for match in _DIRECTIVE.finditer(text)
    ]


def parse_room_message(text: str, others: Iterable[str]) -> RoomMessage | None:
    """The message ``text`` sends, or None for silence. ``others`` are the names of the
    other participants (never the sender's own)."""
    names = set(others)
    hits = [
        line for line in directive_lines(text) if line.target == BROADCAST or line.target in names
    ]
    if not hits:
        return None
    last = hits[-1]
    body = text[last.body_start :].strip()
    if not body:
        return None
    return RoomMessage(to=None if last.target == BROADCAST else last.target, body=body)
