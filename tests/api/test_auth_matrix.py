"""Every route of the app (from its url_map: a new route fails here until it is
classified) called with no token, the target session's own token, another session's
token, the target's hook token, the target room's token, another room's token, the
global hook secret, a wrong admin token, the admin token and the target's git token (what
its sandbox's credential helper holds); each in the headers
(``Authorization: Bearer`` and ``X-Room-Token`` at once) and as ``?token=``. A
credential is accepted (neither 401 nor 403) exactly where it belongs, refused (401 or
403) everywhere else; refusals change nothing."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import attrs
import pytest

from orchestrator.api import app as app_module
from orchestrator.api.app import create_api
from orchestrator.api.openapi import openapi_document
from orchestrator.tokens import Purpose

from ..orchestrator.test_electric import fake_claim_api
from .support import Api, running_api

VARIANTS = (
    "none",
    "session",
    "other_session",
    "hook",
    "room",
    "other_room",
    "global_hook",
    "wrong_admin",
    "admin",
    "git",
)
ALL = frozenset(VARIANTS)

# Who may call each route (endpoint names). Public routes take any token or none.
PUBLIC = ALL
CLASSES: dict[str, frozenset[str]] = {
    # the server, the page, creating things
    "health": PUBLIC,
    "config": PUBLIC,
    "openapi": PUBLIC,
    "web_index": PUBLIC,
    "web_static": PUBLIC,
    "static": PUBLIC,  # Quart's own rule for /static, served by the web UI
    "create_session": PUBLIC,
    "github_accounts": PUBLIC,
    "github_repos": PUBLIC,
    "github_branches": PUBLIC,
    "resume_session": PUBLIC,
    "github_token": frozenset({"git"}),  # the credential helper in the sandbox
    "create_room": PUBLIC,
    "create_app_room": PUBLIC,
    "join_room": PUBLIC,  # the invite code is the credential
    # the session's own token
    "provision_electric": frozenset({"session"}),
    "get_session": frozenset({"session"}),
    "delete_session": frozenset({"session"}),
    "iterate": frozenset({"session"}),
    "respond": frozenset({"session"}),
    "interrupt": frozenset({"session"}),
    "cancel": frozenset({"session"}),
    "events": frozenset({"session"}),
    "stream_append": frozenset({"session"}),
    "app_status": frozenset({"session"}),
    "start_app": frozenset({"session"}),
    "stop_app": frozenset({"session"}),
    "files": frozenset({"session"}),
    "file_content": frozenset({"session"}),
    "git_status": frozenset({"session"}),
    # hooks
    "hook_event": frozenset({"hook"}),
    "hook": frozenset({"global_hook"}),
    "auto_session": frozenset({"global_hook"}),
    # the operator
    "hooks_setup": frozenset({"admin"}),
    "local_session": frozenset({"admin"}),
    "sandboxes": frozenset({"admin"}),
    "create_sandbox": frozenset({"admin"}),
    "sandbox": frozenset({"admin"}),
    "remove_sandbox": frozenset({"admin"}),
    # the room's token
    "revoke_room": frozenset({"room"}),
    "room_state": frozenset({"room"}),
    "add_agent": frozenset({"room"}),
    "iterate_participant": frozenset({"room"}),
    "participant_events": frozenset({"room"}),
    "post_message": frozenset({"room"}),
    "room_deliver": frozenset({"room"}),
    "room_events": frozenset({"room"}),
    "close_room": frozenset({"room"}),
    "room_auto_iterate": frozenset({"room"}),
    "room_respond": frozenset({"room"}),
    # the room's token and the joining session's (tested on its own below)
    "add_session": frozenset(),
}
# What the OpenAPI document says of each class (its security requirement).
DOCUMENTED: dict[str, list[dict[str, list[str]]]] = {
    "session": [{"session": []}],
    "hook": [{"hook": []}],
    "global_hook": [{"globalHook": []}],
    "admin": [{"admin": []}],
    "room": [{"room": []}],
    "git": [{"git": []}],
}
# Accepted calls that end or change their target: made last, in this order.
DESTRUCTIVE = ("interrupt", "cancel", "delete_session", "close_room", "revoke_room")
# Bodies that get a request past validation to the token check where the check needs
# the body (else {}: a 400 after the token check is "accepted").
BODIES: dict[str, dict[str, Any]] = {
    "add_session": {"name": "joiner"},  # + sessionId
    "provision_electric": {},  # + sessionId
}


@attrs.frozen
class Target:
    session: str
    room: str
    code: str


def tokens(api: Api, target: Target, other_session: str, other_room_token: str) -> dict[str, str]:
    signer = api.orch.signer
    return {
        "session": signer.token(Purpose.SESSION, target.session),
        "other_session": signer.token(Purpose.SESSION, other_session),
        "hook": signer.token(Purpose.HOOK, target.session),
        "other_room": other_room_token,
        "global_hook": signer.token(Purpose.GLOBAL_HOOK),
        "wrong_admin": secrets.token_hex(32),
        "admin": signer.token(Purpose.ADMIN),
        "git": signer.token(Purpose.GIT, target.session),
    }


def url_of(rule: str, target: Target) -> str:
    return (
        rule.replace("<session_id>", target.session)
        .replace("<room_id>", target.room)
        .replace("<code>", target.code)
        .replace("<path:filename>", "app.js")
        .replace("<owner>", "octocat")
        .replace("<repo>", "hello")
    )


def routes(api: Api) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) of every route the app has."""
    app = create_api(api.orch)
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, rule.rule))
    return found


async def status_of(
    api: Api, method: str, url: str, *, headers: dict[str, str], params: dict[str, str], body: Any
) -> int:
    """The status of a call; an event stream is left after its headers."""
    kwargs: dict[str, Any] = {"headers": headers, "params": params}
    if method != "GET":
        kwargs["json"] = body
    async with api.client.stream(method, url, **kwargs) as response:
        return response.status_code


async def test_every_route_takes_only_its_own_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "PROVISION_POLL_INTERVAL", 0.01)
    async with (
        fake_claim_api() as claim_api,
        running_api(tmp_path, electric_api_base_url=claim_api) as api,
    ):
        orch = api.orch
        # sessions at their setup choice (no agent runs), rooms without agents
        session = await orch.create_session("the target")
        other = await orch.create_session("another")
        room = await orch.create_room("target")
        other_room = await orch.create_room("other")
        info = await orch.room_info(room.id)
        assert info is not None
        target = Target(session.id, room.id, info["code"])
        room_token = await room.token()
        creds = tokens(api, target, other.id, await other_room.token())
        creds["room"] = room_token

        found = routes(api)
        unclassified = sorted({endpoint for endpoint, _, _ in found} - set(CLASSES))
        assert not unclassified, f"classify these routes in CLASSES: {unclassified}"
        stale = sorted(set(CLASSES) - {endpoint for endpoint, _, _ in found})
        assert not stale, f"routes that are gone: {stale}"

        # the document says the same of every route
        document = openapi_document()
        for endpoint, method, rule in found:
            if endpoint == "static":
                continue
            path = rule.replace("<path:filename>", "{filename}")
            for name in ("session_id", "room_id", "code", "owner", "repo"):
                path = path.replace(f"<{name}>", "{" + name + "}")
            security = document["paths"][path][method.lower()]["security"]
            allowed = CLASSES[endpoint]
            if allowed == PUBLIC:
                assert security == [], endpoint
            elif endpoint == "add_session":
                assert security == [{"room": [], "session": []}]
            else:
                (kind,) = allowed
                assert security == DOCUMENTED[kind], endpoint

        sessions_before = {s["id"] for s in await orch.sessions()}
        rooms_before = await orch.rooms()
        refused: list[tuple[str, str, str, int]] = []
        wrongly_refused: list[tuple[str, str, str, int]] = []
        later: list[tuple[str, str, str, str, str]] = []
        for endpoint, method, rule in found:
            if endpoint == "add_session":
                continue
            url = url_of(rule, target)
            body = {**BODIES.get(endpoint, {})}
            if endpoint == "provision_electric":
                body["sessionId"] = target.session
            for variant in VARIANTS:
                for placement in ("headers", "query"):
                    token = creds.get(variant)
                    accepted = variant in CLASSES[endpoint]
                    if accepted and (endpoint in DESTRUCTIVE or method == "POST"):
                        later.append((endpoint, method, url, variant, placement))
                        continue
                    headers: dict[str, str] = {}
                    params: dict[str, str] = {}
                    if token and placement == "headers":
                        headers = {"Authorization": f"Bearer {token}", "X-Room-Token": token}
                    elif token:
                        params = {"token": token}
                    status = await status_of(
                        api, method, url, headers=headers, params=params, body=body
                    )
                    if accepted and status in (401, 403):
                        wrongly_refused.append((endpoint, variant, placement, status))
                    if not accepted:
                        refused.append((endpoint, variant, placement, status))
        let_through = [r for r in refused if r[3] not in (401, 403)]
        assert not let_through, f"not refused: {let_through}"
        assert not wrongly_refused, f"refused their own credential: {wrongly_refused}"
        assert len(refused) > 400
        # the refusals changed nothing
        assert {s["id"] for s in await orch.sessions()} == sessions_before
        assert await orch.rooms() == rooms_before

        # joining a room takes both the room's token and the session's
        url = f"/api/rooms/{target.room}/sessions"
        body = {"sessionId": target.session, "name": "joiner"}
        for variant in VARIANTS:
            token = creds.get(variant)
            headers = {"Authorization": f"Bearer {token}", "X-Room-Token": token} if token else {}
            response = await api.client.post(url, json=body, headers=headers)
            assert response.status_code == 401, variant
        both = {"X-Room-Token": room_token, "Authorization": f"Bearer {creds['session']}"}
        response = await api.client.post(url, json=body, headers=both)
        assert response.status_code not in (401, 403), response.text
        for wrong in ("other_session", "hook", "room"):
            mixed = {"X-Room-Token": room_token, "Authorization": f"Bearer {creds[wrong]}"}
            assert (await api.client.post(url, json=body, headers=mixed)).status_code == 401

        # the accepted POSTs, then the destructive calls (each once is enough)
        later.sort(key=lambda case: DESTRUCTIVE.index(case[0]) if case[0] in DESTRUCTIVE else -1)
        for endpoint, method, url, variant, placement in later:
            token = creds.get(variant)
            headers, params = {}, {}
            if token and placement == "headers":
                headers = {"Authorization": f"Bearer {token}", "X-Room-Token": token}
            elif token:
                params = {"token": token}
            body = {**BODIES.get(endpoint, {})}
            if endpoint == "provision_electric":
                body["sessionId"] = target.session
            status = await status_of(api, method, url, headers=headers, params=params, body=body)
            assert status not in (401, 403), (endpoint, variant, placement, status)
            if endpoint == "revoke_room":
                break  # the room's token changed
