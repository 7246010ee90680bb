"""Offsets, cursors and the small header grammars of the protocol.

An offset is an opaque string to clients; here it is a position (an int) printed as
``%016d_%016d`` (high and low 16 decimal digits), so that string order and number order
agree and the conformance suite's literal offsets (all zeros, all nines) mean what it
expects.
"""

from __future__ import annotations

import re
import secrets
import time

__all__ = [
    "BEFORE_START",
    "NOW",
    "ZERO",
    "format_offset",
    "next_cursor",
    "parse_offset",
    "parse_strict_int",
]

_LOW = 10**16
ZERO = 0
BEFORE_START = "-1"
NOW = "now"

_OFFSET = re.compile(r"(\d+)_(\d+)", re.ASCII)
_STRICT_INT = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)

# Cursor rule of the protocol (CDN request collapsing): 20 s intervals since this epoch.
_CURSOR_EPOCH = 1728432000.0  # 2024-10-09T00:00:00Z
_CURSOR_INTERVAL = 20


def format_offset(position: int) -> str:
    high, low = divmod(position, _LOW)
    return f"{high:016d}_{low:016d}"


def parse_offset(text: str) -> int | None:
    """The position of an ``A_B`` offset, or None if ``text`` is not one."""
    match = _OFFSET.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)) * _LOW + int(match.group(2))


def parse_strict_int(text: str, *, leading_zeros: bool = False) -> int | None:
    """A non-negative decimal integer written with digits only, or None.

    Without ``leading_zeros`` the canonical form is required (``05`` is refused).
    """
    pattern = _DIGITS if leading_zeros else _STRICT_INT
    if pattern.fullmatch(text) is None:
        return None
    return int(text)


def next_cursor(client_cursor: str | None, *, now: float | None = None) -> str:
    """The cursor to answer with: the current interval number, or strictly more than
    the client's cursor when it has caught up with it (with 1 s - 1 h of jitter)."""
    current = int(((time.time() if now is None else now) - _CURSOR_EPOCH) // _CURSOR_INTERVAL)
    if client_cursor is None or _DIGITS.fullmatch(client_cursor) is None:
        return str(current)
    theirs = int(client_cursor)
    if theirs < current:
        return str(current)
    jitter_seconds = 1 + secrets.randbelow(3600)
    return str(theirs + max(1, -(-jitter_seconds // _CURSOR_INTERVAL)))
