"""The registry: every session's and room's info, kept in the ``registry`` stream.

:class:`RegistryActor` owns the registry. Every change is appended to the stream first
(``session_registered`` / ``session_updated`` / ``session_deleted``, ``room_created`` /
``room_updated``, reference §5.4),
then applied in memory; on start the stream is replayed in full (no time limit: §17.18).
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from actors import Actor, Refused
from transport import AppendRequest, CreateRequest, Store

from ..errors import answers_store_errors
from ..events import now_ts

__all__ = [
    "REGISTRY_STREAM",
    "GetRoom",
    "GetSession",
    "ListRooms",
    "ListSessions",
    "LookupTranscript",
    "MapTranscript",
    "RegisterRoom",
    "RegisterSession",
    "RegistryActor",
    "RemoveSession",
    "UpdateRoom",
    "UpdateSession",
]

REGISTRY_STREAM = "/v1/stream/registry"
JSON = "application/json"


@attrs.frozen
class RegisterSession:
    info: dict[str, Any]


@attrs.frozen
class UpdateSession:
    session_id: str
    update: dict[str, Any]


@attrs.frozen
class RemoveSession:
    session_id: str


@attrs.frozen
class GetSession:
    session_id: str


@attrs.frozen
class ListSessions:
    pass


@attrs.frozen
class MapTranscript:
    """Remember which session a local Claude Code transcript feeds (persisted: the
    reference forgets it on restart)."""

    transcript_path: str
    session_id: str


@attrs.frozen
class LookupTranscript:
    transcript_path: str


@attrs.frozen
class RegisterRoom:
    info: dict[str, Any]


@attrs.frozen
class UpdateRoom:
    room_id: str
    update: dict[str, Any]


@attrs.frozen
class GetRoom:
    room_id: str


@attrs.frozen
class ListRooms:
    pass


@attrs.define(eq=False)
class RegistryActor(Actor):
    store: Store
    path: str = REGISTRY_STREAM
    sessions: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    transcripts: dict[str, str] = attrs.field(factory=dict)
    rooms: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    async def on_start(self) -> None:
        await self.store.create(self.path, CreateRequest(content_type=JSON))
        offset = "-1"
        while True:
            page = await self.store.read(self.path, offset)
            if page.chunks:
                for record in json.loads(page.body()):
                    self._apply(record)
            offset = page.next_offset
            if page.up_to_date:
                break

    def _apply(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "session_registered":
            info = record.get("session")
            if isinstance(info, dict) and isinstance(info.get("id"), str):
                self.sessions[info["id"]] = dict(info)
        elif kind == "session_updated":
            known = self.sessions.get(str(record.get("sessionId")))
            update = record.get("update")
            if known is not None and isinstance(update, dict):
                known.update(update)
        elif kind == "session_deleted":
            self.sessions.pop(str(record.get("sessionId")), None)
        elif kind == "room_created":
            room = record.get("room")
            if isinstance(room, dict) and isinstance(room.get("id"), str):
                self.rooms[room["id"]] = dict(room)
        elif kind == "room_updated":
            found = self.rooms.get(str(record.get("roomId")))
            update = record.get("update")
            if found is not None and isinstance(update, dict):
                found.update(update)
        elif kind == "session_mapped":
            path, session_id = record.get("transcriptPath"), record.get("sessionId")
            if isinstance(path, str) and isinstance(session_id, str):
                self.transcripts[path] = session_id

    async def _record(self, record: dict[str, Any]) -> None:
        body = json.dumps([record], separators=(",", ":")).encode()
        await self.store.append(self.path, AppendRequest(body=body, content_type=JSON))
        self._apply(record)

    @answers_store_errors
    async def handle(self, msg: Any) -> Any:
        if isinstance(msg, RegisterSession):
            info = {**msg.info, "lastActiveAt": now_ts()}
            await self._record({"type": "session_registered", "session": info, "ts": now_ts()})
            return dict(info)
        if isinstance(msg, UpdateSession):
            if msg.session_id not in self.sessions:
                raise Refused(f"no session {msg.session_id}")
            update = {**msg.update, "lastActiveAt": now_ts()}
            await self._record(
                {
                    "type": "session_updated",
                    "sessionId": msg.session_id,
                    "update": update,
                    "ts": now_ts(),
                }
            )
            return dict(self.sessions[msg.session_id])
        if isinstance(msg, RemoveSession):
            if msg.session_id in self.sessions:
                await self._record(
                    {"type": "session_deleted", "sessionId": msg.session_id, "ts": now_ts()}
                )
            return None
        if isinstance(msg, GetSession):
            found = self.sessions.get(msg.session_id)
            return dict(found) if found is not None else None
        if isinstance(msg, MapTranscript):
            await self._record(
                {
                    "type": "session_mapped",
                    "transcriptPath": msg.transcript_path,
                    "sessionId": msg.session_id,
                    "ts": now_ts(),
                }
            )
            return None
        if isinstance(msg, LookupTranscript):
            mapped = self.transcripts.get(msg.transcript_path)
            return mapped if mapped in self.sessions else None
        if isinstance(msg, ListSessions):
            return [dict(info) for info in self.sessions.values()]
        if isinstance(msg, RegisterRoom):
            await self._record({"type": "room_created", "room": dict(msg.info), "ts": now_ts()})
            return dict(msg.info)
        if isinstance(msg, UpdateRoom):
            if msg.room_id not in self.rooms:
                raise Refused(f"no room {msg.room_id}")
            await self._record(
                {
                    "type": "room_updated",
                    "roomId": msg.room_id,
                    "update": msg.update,
                    "ts": now_ts(),
                }
            )
            return dict(self.rooms[msg.room_id])
        if isinstance(msg, GetRoom):
            room = self.rooms.get(msg.room_id)
            return dict(room) if room is not None else None
        if isinstance(msg, ListRooms):
            return [dict(room) for room in self.rooms.values()]
        raise Refused(f"the registry does not understand {type(msg).__name__}")
