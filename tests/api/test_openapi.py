"""``GET /openapi.json``: generated from the schemas the routes validate with; a valid
OpenAPI 3 document (schemathesis loads it) naming every route; and schemathesis run over
it against a real server finds no server error."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from orchestrator.api import app as app_module
from orchestrator.api._schemas import ROUTES, openapi_path
from orchestrator.api.app import create_api
from orchestrator.tokens import Purpose

from ..orchestrator.test_electric import fake_claim_api
from .support import running_api, wait_until_idle

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def app_routes(app: Any) -> set[tuple[str, str]]:
    return {
        (method, openapi_path(rule.rule)[0])
        for rule in app.url_map.iter_rules()
        for method in rule.methods & METHODS
    }


async def test_the_document_names_every_route_and_loads(tmp_path: Path) -> None:
    import schemathesis
    from schemathesis.core.result import Ok

    async with running_api(tmp_path) as api:
        response = await api.client.get("/openapi.json")
        assert response.status_code == 200
        document = response.json()
        assert document["openapi"].startswith("3.")
        documented = {
            (method.upper(), path) for path, item in document["paths"].items() for method in item
        }
        assert documented == app_routes(create_api(api.orch))
        schema = schemathesis.openapi.from_dict(document)
        schema.validate()  # against the OpenAPI 3.0 meta-schema
        results = list(schema.get_all_operations())
        assert all(isinstance(result, Ok) for result in results), results
        assert len(results) == len(documented) == len(ROUTES)
        # who may call what, per route
        operation = document["paths"]["/api/rooms/{room_id}/sessions"]["post"]
        assert operation["security"] == [{"room": [], "session": []}]
        assert document["paths"]["/api/sessions"]["post"]["security"] == []
        schemes = document["components"]["securitySchemes"]
        assert schemes["room"] == {
            "type": "apiKey",
            "in": "header",
            "name": "X-Room-Token",
            "description": schemes["room"]["description"],
        }
        body = document["paths"]["/api/sessions"]["post"]["requestBody"]
        description = body["content"]["application/json"]["schema"]["properties"]["description"]
        assert description["maxLength"] == 10_000


# -- schemathesis over the document, against the real server ---------------------------

MAX_EXAMPLES = 40  # per operation and phase
SCHEMATHESIS_TIMEOUT = 240


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def schemathesis_config(blocks: list[dict[str, Any]], **top: Any) -> str:
    """A schemathesis.toml: ``top`` keys, then one ``[[operations]]`` per block."""
    lines = [f"{key} = {_toml(value)}" for key, value in top.items()]
    for block in blocks:
        lines.append("")
        lines.append("[[operations]]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in block.items())
    return "\n".join(lines) + "\n"


async def test_schemathesis_finds_no_server_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every operation, with its path parameters pinned to a live session and room and
    the right tokens (else nearly everything would stop at 401): examples, coverage
    (boundary and wrong-type values of every field) and fuzzing, each bounded. Creating
    sessions and agents is capped (6 live sessions: beyond, the documented 503)."""
    monkeypatch.setattr(app_module, "PROVISION_POLL_INTERVAL", 0.01)
    async with (
        fake_claim_api() as claim_api,
        running_api(tmp_path, max_sessions=6, electric_api_base_url=claim_api) as api,
    ):
        orch = api.orch
        session = await orch.create_session("say done", freeform=True)
        await wait_until_idle(orch, session.id)
        room = await orch.create_room("fuzzed")
        await orch.add_session_to_room(room.id, session.id, "pinned")
        await wait_until_idle(orch, session.id)
        # interrupting has a session of its own (the pinned one keeps its agent)
        other = await orch.create_session("say done", freeform=True)
        await wait_until_idle(orch, other.id)
        # and the calls that end things, theirs (made now: sessions are capped)
        doomed = await orch.create_session("to be ended")
        doomed_room = await orch.create_room("to be closed")
        sid, rid = session.id, room.id
        bearer = {"Authorization": f"Bearer {session.token}"}
        room_token = await room.token()
        code = (await orch.room_info(rid) or {})["code"]
        admin = api.admin
        hook = {"Authorization": f"Bearer {orch.signer.token(Purpose.HOOK, sid)}"}
        global_hook = {"Authorization": f"Bearer {orch.signer.token(Purpose.GLOBAL_HOOK)}"}
        capacity = {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}}
        # Event streams: read from the start (one event, then the read ends); an offset
        # past the end would wait for the next event, as a live stream does.
        start = {"offset": "-1"}
        blocks: list[dict[str, Any]] = [
            # the first block that matches an operation is its configuration
            {"include-operation-id": "events", "parameters": {"session_id": sid, **start},
             "headers": {**bearer, "Last-Event-ID": "-1"}},
            {"include-operation-id": ["room_events", "participant_events"],
             "parameters": {"room_id": rid, "session_id": sid, **start},
             "headers": {"X-Room-Token": room_token, "Last-Event-ID": "-1"}},
            {"include-operation-id": "hook_event", "parameters": {"session_id": sid},
             "headers": hook},
            {"include-operation-id": ["hook", "auto_session"], "headers": global_hook},
            {"include-operation-id": ["local_session", "hooks_setup"], "headers": admin},
            {"include-operation-id": "create_sandbox", "headers": admin, "checks": capacity},
            {"include-path-regex": "^/api/sandboxes", "parameters": {"session_id": sid},
             "headers": admin},
            {"include-operation-id": "add_session", "parameters": {"room_id": rid},
             "headers": {"X-Room-Token": room_token, **bearer}},
            {"include-operation-id": "add_agent", "parameters": {"room_id": rid},
             "headers": {"X-Room-Token": room_token}, "checks": capacity},
            {"include-path-regex": "^/api/rooms/\\{room_id\\}",
             "parameters": {"room_id": rid, "session_id": sid},
             "headers": {"X-Room-Token": room_token}},
            {"include-operation-id": "join_room", "parameters": {"room_id": rid, "code": code}},
            {"include-operation-id": ["create_session", "create_app_room"], "checks": capacity},
            {"include-operation-id": "interrupt", "parameters": {"session_id": other.id},
             "headers": {"Authorization": f"Bearer {other.token}"}},
            {"include-path-regex": "^/api/sessions/\\{session_id\\}",
             "parameters": {"session_id": sid}, "headers": bearer},
            {"include-operation-id": "provision_electric", "headers": bearer},
        ]  # fmt: skip
        started = time.monotonic()
        await run_schemathesis(
            api.url, tmp_path / "main", blocks, exclude=DESTRUCTIVE + GITHUB_LISTING
        )
        # the server still answers, the pinned session lives
        assert (await api.client.get("/api/health")).status_code == 200
        assert await orch.session_info(sid) is not None

        # then the calls that end things, on a session and a room of their own
        doomed_bearer = {"Authorization": f"Bearer {doomed.token}"}
        blocks = [
            {"include-operation-id": "remove_sandbox", "parameters": {"session_id": doomed.id},
             "headers": admin},
            {"include-path-regex": "^/api/sessions/", "parameters": {"session_id": doomed.id},
             "headers": doomed_bearer},
            {"include-path-regex": "^/api/rooms/", "parameters": {"room_id": doomed_room.id},
             "headers": {"X-Room-Token": await doomed_room.token()}},
        ]  # fmt: skip
        await run_schemathesis(api.url, tmp_path / "ending", blocks, include=DESTRUCTIVE)
        assert await orch.session_info(doomed.id) is None  # deleted
        assert (await api.client.get("/api/health")).status_code == 200
        print(f"schemathesis took {time.monotonic() - started:.1f}s")


DESTRUCTIVE = ("delete_session", "cancel", "close_room", "revoke_room", "remove_sandbox")
# With a token, these ask GitHub: fuzzed against a fake GitHub in tests/github.
GITHUB_LISTING = ("github_accounts", "github_repos", "github_branches")


async def run_schemathesis(
    url: str,
    workdir: Path,
    blocks: list[dict[str, Any]],
    *,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> None:
    """The schemathesis CLI over ``url``'s document (``not_a_server_error``), in a
    process of its own: its output is in ``workdir``, shown when it fails."""
    await trio.Path(workdir).mkdir()
    config = workdir / "schemathesis.toml"
    await trio.Path(config).write_text(
        schemathesis_config(
            blocks,
            **{
                "max-stream-events": 1,
                "request-timeout": 30,
                "workers": 1,
                "seed": 1,
                "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
                "phases": {"stateful": {"enabled": False}},
            },
        )
    )
    command = [
        sys.executable,
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--no-color",
    ]
    for operation in include:
        command += ["--include-operation-id", operation]
    for operation in exclude:
        command += ["--exclude-operation-id", operation]
    log = workdir / "schemathesis.log"
    env = {**os.environ, "NO_COLOR": "1"}
    with log.open("wb") as out, trio.fail_after(SCHEMATHESIS_TIMEOUT):
        result = await trio.run_process(
            command, stdout=out, stderr=out, check=False, env=env, cwd=workdir
        )
    output = await trio.Path(log).read_text(errors="replace")
    print(output[-4000:])
    assert result.returncode == 0, output[-8000:]
    assert " passed" in output, output[-4000:]
