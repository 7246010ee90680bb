"""The schema language the routes validate with (``_schemas.validate``), and its
answers over HTTP: ``400 {"error": "Validation failed", "details": [...]}``, ``Invalid
JSON body``, unknown keys dropped."""

from __future__ import annotations

import math
from pathlib import Path

from orchestrator.api._schemas import CREATE_ROOM, CREATE_SANDBOX, ROUTES, find_route, validate

from .support import running_api


def test_the_validator() -> None:
    cleaned, errors = validate(CREATE_ROOM, {"name": "r", "extra": 1, "maxRounds": 3})
    assert (cleaned, errors) == ({"name": "r", "maxRounds": 3}, [])
    # an optional key sent as null is absent; a nullable one keeps its null
    cleaned, errors = validate(
        CREATE_ROOM, {"name": "r", "autoIterate": None, "idleTimeoutSeconds": None}
    )
    assert (cleaned, errors) == ({"name": "r", "idleTimeoutSeconds": None}, [])
    _, errors = validate(
        CREATE_ROOM,
        {
            "name": "  ",
            "maxRounds": True,
            "maxCostUsd": 0,
            "idleTimeoutSeconds": math.nan,
            "gateMessages": "yes",
            "stuck": {"repeat": 1.5, "other": 1, "action": "explode"},
        },
    )
    assert errors == [
        "body.name: must not be blank",
        "body.maxRounds: expected integer, got boolean",
        "body.maxCostUsd: must be greater than 0",
        "body.idleTimeoutSeconds: must be a finite number",
        "body.gateMessages: expected boolean, got string",
        "body.stuck.repeat: expected integer, got number",
        "body.stuck.other: unknown key",
        "body.stuck.action: must be one of 'close', 'gate'",
    ]
    _, errors = validate(CREATE_ROOM, {"name": None})
    assert errors == ["body.name: expected string, got null"]
    _, errors = validate(CREATE_ROOM, {})
    assert errors == ["body.name: required"]
    _, errors = validate(CREATE_ROOM, {"name": "x" * 501, "maxRounds": 10_001})
    assert errors == ["body.name: at most 500 characters", "body.maxRounds: must be at most 10000"]
    _, errors = validate(CREATE_SANDBOX, {"sessionId": "not-a-uuid"})
    assert errors == ["body.sessionId: expected a uuid"]
    _, errors = validate(CREATE_ROOM, [1])
    assert errors == ["body: expected object, got array"]


def test_the_route_table() -> None:
    keys = [(route.method, route.path) for route in ROUTES]
    assert len(keys) == len(set(keys))
    assert len({route.endpoint for route in ROUTES}) == len(ROUTES)
    assert find_route("HEAD", "/api/health") is find_route("GET", "/api/health")
    assert find_route("GET", None) is None
    creating = {route.endpoint for route in ROUTES if route.limit == "create"}
    assert creating == {
        "create_session",
        "local_session",
        "auto_session",
        "create_sandbox",
        "create_room",
        "create_app_room",
        "add_agent",
        "resume_session",
    }


async def test_validation_over_http(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        client = api.client
        response = await client.post("/api/rooms", json={"name": "", "maxRounds": "5"})
        assert response.status_code == 400
        assert response.json() == {
            "error": "Validation failed",
            "details": [
                "body.name: must not be empty",
                "body.maxRounds: expected integer, got string",
            ],
        }
        json_type = {"Content-Type": "application/json"}
        for raw in (b"{", b'{"name": NaN}', b'{"name": Infinity}', b"\xff\xfe", b"[" * 100_000):
            response = await client.post("/api/rooms", content=raw, headers=json_type)
            assert response.json() == {"error": "Invalid JSON body"}, raw[:10]
        response = await client.post("/api/rooms", json=["name"])
        assert response.json()["details"] == ["body: expected object, got array"]
        response = await client.post("/api/rooms", json={"name": "r", "surprise": {"a": 1}})
        assert response.status_code == 201  # unknown keys dropped
        assert await api.orch.rooms() != []
        # a query parameter: required, and checked
        sid = (await client.post("/api/sessions", json={"description": "x"})).json()
        headers = {"Authorization": f"Bearer {sid['sessionToken']}"}
        url = f"/api/sessions/{sid['sessionId']}/file-content"
        response = await client.get(url, headers=headers)
        assert response.json() == {
            "error": "Validation failed",
            "details": ["query.path: required"],
        }
        response = await client.get(url, params={"path": "x" * 5000}, headers=headers)
        assert response.json()["details"] == ["query.path: at most 4096 characters"]
