"""Noticing a room that goes round in circles (an addition to the reference, §9.7).

The reference stops a room only at its round cap. The detector watches the routed
messages and says when the conversation has stopped moving, before the cap is spent:

* **repeat**: one sender's own last ``repeat`` messages have the same body;
* **ping-pong**: the last ``2 * pingpong`` messages alternate between exactly two
  senders, each of whom keeps sending the same body (period 2 in (sender, body));
* **stale**: the last ``stale_rounds`` messages all carried bodies already seen earlier
  in the room, whoever sent them.

Bodies are compared normalized (whitespace collapsed, stripped, casefolded) through a
16-byte BLAKE2b digest, so memory stays bounded: the windows are short deques and the
set of seen bodies keeps at most ``SEEN_LIMIT`` digests (the least recently seen go
first). Everything is deterministic; no clocks. What to do about a stuck room (close
it, or ask a person at a gate) is the policy's ``action``, carried out by the router.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = ["SEEN_LIMIT", "StuckDetector", "StuckPolicy", "normalize_body"]

SEEN_LIMIT = 100_000
SENDER_LIMIT = 1_000
MAX_THRESHOLD = 1000
ACTIONS = ("close", "gate")
_JSON_KEYS = {"repeat": "repeat", "pingpong": "pingpong", "staleRounds": "stale_rounds"}

Action = Literal["close", "gate"]


def normalize_body(body: str) -> str:
    """The body as the detector compares it: whitespace collapsed, stripped, casefolded."""
    return " ".join(body.casefold().split())


def _digest(body: str) -> bytes:
    return hashlib.blake2b(normalize_body(body).encode(), digest_size=16).digest()


def _threshold(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        name = attribute.name
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < 0 or value > MAX_THRESHOLD:
            raise ValueError(f"{name} must be between 0 and {MAX_THRESHOLD}, got {value}")
        if 0 < value < minimum:
            raise ValueError(f"{name} must be 0 (off) or at least {minimum}, got {value}")

    return check


def _action(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {value!r}")


@attrs.frozen(kw_only=True)
class StuckPolicy:
    """When a room counts as stuck; 0 turns a rule off. ``repeat`` and ``pingpong`` are
    0 or at least 2 (1 would flag every message); ``stale_rounds`` is 0 or at least 1."""

    repeat: int = attrs.field(default=3, validator=_threshold(2))
    pingpong: int = attrs.field(default=2, validator=_threshold(2))
    stale_rounds: int = attrs.field(default=6, validator=_threshold(1))
    action: Action = attrs.field(default="close", validator=_action)

    @classmethod
    def from_json(cls, value: object) -> StuckPolicy:
        """The policy a JSON object ``{repeat, pingpong, staleRounds, action}`` describes
        (every key optional; None means the default). Raises ValueError on bad input."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ValueError(f"the stuck policy must be a JSON object, got {value!r}")
        unknown = sorted(str(key) for key in value if key not in (*_JSON_KEYS, "action"))
        if unknown:
            allowed = ", ".join([*_JSON_KEYS, "action"])
            raise ValueError(
                f"unknown stuck policy keys: {', '.join(unknown)} (allowed: {allowed})"
            )
        fields: dict[str, Any] = {}
        for key, name in _JSON_KEYS.items():
            if key in value:
                number = value[key]
                if isinstance(number, bool) or not isinstance(number, int):
                    raise ValueError(f"{key} must be an integer, got {number!r}")
                fields[name] = number
        if "action" in value:
            fields["action"] = value["action"]
        try:
            return cls(**fields)
        except ValueError as error:
            # The field names of the message are the JSON ones.
            raise ValueError(str(error).replace("stale_rounds", "staleRounds")) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "repeat": self.repeat,
            "pingpong": self.pingpong,
            "staleRounds": self.stale_rounds,
            "action": self.action,
        }


@attrs.define
class StuckDetector:
    """Feed it every routed message with :meth:`observe`; it answers why the room is
    stuck after that message, or None."""

    policy: StuckPolicy = attrs.field(factory=StuckPolicy)
    _by_sender: dict[str, deque[bytes]] = attrs.field(init=False, factory=dict)
    _recent: deque[tuple[str, bytes]] = attrs.field(init=False)
    _seen: OrderedDict[bytes, None] = attrs.field(init=False, factory=OrderedDict)
    _stale: int = attrs.field(init=False, default=0)

    @_recent.default
    def _recent_window(self) -> deque[tuple[str, bytes]]:
        return deque(maxlen=2 * self.policy.pingpong)

    def observe(self, sender: str, to: str | None, body: str) -> str | None:
        """Record one routed message. ``to`` is accepted for the record only: the rules
        look at senders and bodies, so re-addressing the same text is no new content."""
        digest = _digest(body)
        reasons = [
            self._observe_repeat(sender, digest),
            self._observe_pingpong(sender, digest),
            self._observe_stale(digest),
        ]
        return next((reason for reason in reasons if reason is not None), None)

    def reset(self) -> None:
        """Forget the windows and the stale count (a person let the room go on); the
        bodies already seen stay seen."""
        self._by_sender.clear()
        self._recent.clear()
        self._stale = 0

    def _observe_repeat(self, sender: str, digest: bytes) -> str | None:
        limit = self.policy.repeat
        if not limit:
            return None
        window = self._by_sender.pop(sender, None)
        if window is None:
            window = deque(maxlen=limit)
            if len(self._by_sender) >= SENDER_LIMIT:
                del self._by_sender[next(iter(self._by_sender))]
        self._by_sender[sender] = window  # the most recent sender last
        window.append(digest)
        if len(window) == limit and len(set(window)) == 1:
            return f"the same message repeated {limit} times by {sender}"
        return None

    def _observe_pingpong(self, sender: str, digest: bytes) -> str | None:
        window = self._recent
        if not self.policy.pingpong:
            return None
        window.append((sender, digest))
        if len(window) < (window.maxlen or 0):
            return None
        entries = list(window)
        first, second = entries[0][0], entries[1][0]
        if first == second:
            return None
        if all(entries[i] == entries[i + 2] for i in range(len(entries) - 2)):
            return f"{first} and {second} ping-pong the same two messages"
        return None

    def _observe_stale(self, digest: bytes) -> str | None:
        seen = self._seen
        if digest in seen:
            self._stale += 1
            seen.move_to_end(digest)
        else:
            self._stale = 0
            seen[digest] = None
            if len(seen) > SEEN_LIMIT:
                seen.popitem(last=False)
        limit = self.policy.stale_rounds
        if limit and self._stale >= limit:
            return f"no new content for {limit} round{'s' if limit > 1 else ''}"
        return None
