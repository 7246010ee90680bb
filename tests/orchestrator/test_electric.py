"""Electric Cloud provisioning against a local fake of the claim API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from quart import Response, request
from quart_trio import QuartTrio

from orchestrator.electric import ProvisionError, provision
from transport import serve


@asynccontextmanager
async def fake_claim_api(outcome: str = "ready", pending_polls: int = 2) -> AsyncIterator[str]:
    app = QuartTrio("fake-claim-api")
    polls: dict[str, int] = {}
    seen: list[dict[str, Any]] = []

    @app.post("/api/public/v1/claimable-sources")
    async def create() -> Response:
        seen.append({"ua": request.headers.get("User-Agent"), "body": await request.get_json()})
        polls["c-1"] = 0
        return Response('{"claimId":"c-1"}', content_type="application/json")

    @app.get("/api/public/v1/claimable-sources/<claim_id>")
    async def poll(claim_id: str) -> Response:
        polls[claim_id] = polls.get(claim_id, 0) + 1
        if polls[claim_id] <= pending_polls:
            return Response("not yet", status=404)
        if outcome == "failed":
            return Response('{"state":"failed"}', content_type="application/json")
        body = (
            '{"state":"ready","source":{"source_id":"src-9","secret":"s3cret"},'
            '"connection_uri":"postgresql://u:p@db/x"}'
        )
        return Response(body, content_type="application/json")

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            lambda task_status: serve(app, host="127.0.0.1", port=0, task_status=task_status)
        )
        yield binds[0] + "/api"
        assert seen
        assert seen[0] == {"ua": "create-electric-app", "body": {}}
        nursery.cancel_scope.cancel()


async def test_a_database_is_claimed_after_polling() -> None:
    async with fake_claim_api() as base, httpx.AsyncClient() as client:
        claim = await provision(
            client, api_base_url=base, dashboard_url="https://dash.example", interval=0.01
        )
    assert claim.to_json() == {
        "sourceId": "src-9",
        "secret": "s3cret",
        "databaseUrl": "postgresql://u:p@db/x",
        "electricUrl": "https://api.electric-sql.cloud",
        "claimId": "c-1",
        "claimUrl": "https://dash.example/claim?uuid=c-1",
    }


async def test_a_failed_or_slow_provisioning_is_an_error() -> None:
    async with fake_claim_api("failed") as base, httpx.AsyncClient() as client:
        with pytest.raises(ProvisionError, match="provisioning failed"):
            await provision(client, api_base_url=base, interval=0.01)
    async with fake_claim_api(pending_polls=100) as base, httpx.AsyncClient() as client:
        with pytest.raises(ProvisionError, match="not ready after 3 polls"):
            await provision(client, api_base_url=base, interval=0.01, attempts=3)


async def test_an_unreachable_api_is_an_error() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProvisionError, match="unreachable"):
            await provision(client, api_base_url="http://127.0.0.1:9/api", interval=0.01)
