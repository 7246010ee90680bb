"""Reading a stream of events: each record with its own position (see
:func:`read_events`), for sessions, rooms and the HTTP layer alike."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import attrs

from transport import Store, StreamNotFound

from . import events as ev

__all__ = ["EventItem", "read_events", "split_position"]


@attrs.frozen
class EventItem:
    """One event read from a session's stream, with the offset after it."""

    event: ev.Event
    source: ev.Source | None
    offset: str
    raw: dict[str, Any]


async def read_events(
    store: Store, path: str, offset: str = "-1", *, follow: bool = True, wait: float = 20.0
) -> AsyncGenerator[EventItem, None]:
    """The events of the stream at ``path`` from ``offset``, each with the position
    after it; with ``follow``, waits for more until left (or the stream is deleted).

    A store offset marks the end of one append, and one append may hold several
    records (a gate's announcement and its record): a record before the last of its
    append gets the position ``<offset of the append's start>~<records to skip>``,
    so every record's position is its own and resuming from it repeats nothing."""
    offset, skip = split_position(offset)
    if offset == "now":
        # the tail as an offset: a record's position must name where its append starts
        try:
            offset = (await store.read(path, "now", wait=0.0)).next_offset
        except StreamNotFound:
            return
        skip = 0
    while True:
        try:
            page = await store.read(path, offset, wait=wait if follow else 0.0)
        except StreamNotFound:
            return
        start = offset
        for index, chunk in enumerate(page.chunks):
            # each chunk is one append: its values, comma-joined
            end = page.ends[index] if index < len(page.ends) else page.next_offset
            values = json.loads(b"[" + chunk + b"]")
            for position, record in enumerate(values):
                if position < skip or not isinstance(record, dict):
                    continue
                event, source = ev.event_from_json(record)
                last = position == len(values) - 1
                after = end if last else f"{start}~{position + 1}"
                yield EventItem(event, source, after, record)
            skip = 0
            start = end
        offset = page.next_offset
        if not follow and page.up_to_date:
            return


def split_position(position: str) -> tuple[str, int]:
    """A position of :func:`read_events`: the store offset and how many records of
    the append there to skip. Raises ValueError for a malformed one."""
    offset, sep, count = position.partition("~")
    if not sep:
        return offset, 0
    if not count.isdigit() or len(count) > 6 or int(count) < 1:
        raise ValueError(f"not a stream position: {position!r}")
    return offset, int(count)
