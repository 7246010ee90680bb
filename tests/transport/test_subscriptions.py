"""The reserved subscription APIs (``/v1/stream/__ds/``) through the Quart test client,
with webhooks delivered to an in-process receiver (an ``httpx.MockTransport``) or, once,
to a real one on a loopback port."""

from __future__ import annotations

import json
import sys
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import Quart, Response, request
from quart.typing import TestClientProtocol as Client
from quart_trio import QuartTrio

import transport._subscriptions as subscriptions_module
from orchestrator.cli import build_parser
from transport import (
    CreateRequest,
    MemoryStore,
    ServerSettings,
    SubscriptionManager,
    SubscriptionsUnavailable,
    create_app,
    open_subscriptions,
    serve,
)
from transport._subscriptions import _b64url_decode, check_webhook_url, glob_match

ROOT = "/v1/stream"
SUBS = f"{ROOT}/__ds/subscriptions"
HOOK = "http://127.0.0.1:9/webhook"  # never dialled: the mock transport answers
JSON = {"Content-Type": "application/json"}


@attrs.define
class Delivery:
    raw: bytes
    body: dict[str, Any]
    signature: str


@attrs.define
class Receiver:
    """Records webhook POSTs and answers them with ``answer`` (status, JSON body)."""

    send: trio.MemorySendChannel[Delivery]
    inbox: trio.MemoryReceiveChannel[Delivery]
    answer: tuple[int, Any] = (200, {})

    async def handle(self, req: httpx.Request) -> httpx.Response:
        raw = await req.aread()
        delivery = Delivery(raw, json.loads(raw), req.headers["webhook-signature"])
        self.send.send_nowait(delivery)
        status, body = self.answer
        return httpx.Response(status, json=body)

    async def next(self) -> Delivery:
        with trio.fail_after(5):
            return await self.inbox.receive()


@attrs.define
class Server:
    client: Client
    receiver: Receiver
    manager: SubscriptionManager
    store: MemoryStore


@asynccontextmanager
async def server(
    *, store: MemoryStore | None = None, public_url: str | None = None
) -> AsyncIterator[Server]:
    send, inbox = trio.open_memory_channel[Delivery](100)
    receiver = Receiver(send, inbox)
    backing = store or MemoryStore()
    transport = httpx.MockTransport(receiver.handle)
    async with (
        httpx.AsyncClient(transport=transport) as http,
        open_subscriptions(client=http, public_url=public_url) as manager,
    ):
        app = create_app(backing, ServerSettings(long_poll_timeout=0.1), subscriptions=manager)
        yield Server(app.test_client(), receiver, manager, backing)


def webhook_spec(**extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "pattern": "events/*", "webhook": {"url": HOOK}} | extra


async def put_json(client: Client, path: str, body: Any) -> tuple[int, Any]:
    response = await client.put(path, data=json.dumps(body), headers=JSON)
    return response.status_code, await response.get_json()


async def post_json(
    client: Client, path: str, body: Any, token: str | None = None
) -> tuple[int, Any]:
    headers = dict(JSON)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = await client.post(path, data=json.dumps(body), headers=headers)
    return response.status_code, await response.get_json()


async def subscription(client: Client, sub_id: str) -> dict[str, Any]:
    response = await client.get(f"{SUBS}/{sub_id}")
    assert response.status_code == 200
    body = await response.get_json()
    assert isinstance(body, dict)
    return body


def verify(delivery: Delivery, jwks: dict[str, Any]) -> bool:
    fields = dict(part.split("=", 1) for part in delivery.signature.split(","))
    (key,) = [k for k in jwks["keys"] if k["kid"] == fields["kid"]]
    public = Ed25519PublicKey.from_public_bytes(_b64url_decode(key["x"]))
    public.verify(_b64url_decode(fields["ed25519"]), f"{fields['t']}.".encode() + delivery.raw)
    return True


def path_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path


# -- create, confirm, get, delete ----------------------------------------------------------


async def test_create_confirm_get_and_delete_a_webhook_subscription() -> None:
    async with server() as s:
        status, created = await put_json(s.client, f"{SUBS}/a", webhook_spec(description="d"))
        assert status == 201
        assert created["id"] == created["subscription_id"] == "a"
        assert created["type"] == "webhook"
        assert "webhook_secret" not in created
        signing = created["webhook"]["signing"]
        assert signing["alg"] == "ed25519"
        assert signing["kid"].startswith("ds_")
        assert path_of(signing["jwks_url"]) == f"{ROOT}/__ds/jwks.json"
        assert created["lease_ttl_ms"] == 30_000
        assert created["description"] == "d"

        again, confirmed = await put_json(s.client, f"{SUBS}/a", webhook_spec(description="d"))
        assert (again, confirmed["created_at"]) == (200, created["created_at"])
        clash, body = await put_json(s.client, f"{SUBS}/a", webhook_spec(description="other"))
        assert (clash, body["error"]["code"]) == (409, "SUBSCRIPTION_ALREADY_EXISTS")

        assert (await subscription(s.client, "a"))["webhook"]["url"] == HOOK
        assert (await s.client.delete(f"{SUBS}/a")).status_code == 204
        missing = await s.client.get(f"{SUBS}/a")
        assert missing.status_code == 404
        assert (await missing.get_json())["error"]["code"] == "SUBSCRIPTION_NOT_FOUND"
        assert (await s.client.delete(f"{SUBS}/a")).status_code == 204  # idempotent


async def test_jwks_publishes_the_signing_key() -> None:
    async with server(public_url="https://streams.example") as s:
        _, created = await put_json(s.client, f"{SUBS}/a", webhook_spec())
        assert created["webhook"]["signing"]["jwks_url"] == (
            "https://streams.example/v1/stream/__ds/jwks.json"
        )
        response = await s.client.get(f"{ROOT}/__ds/jwks.json")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/jwk-set+json"
        (key,) = (await response.get_json())["keys"]
        assert key | {"x": "-"} == {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "-",
            "kid": created["webhook"]["signing"]["kid"],
            "use": "sig",
            "alg": "EdDSA",
        }
        assert (await s.client.post(f"{ROOT}/__ds/jwks.json")).status_code == 405


async def test_explicit_streams_are_added_and_removed() -> None:
    async with server() as s:
        spec = {"type": "webhook", "streams": ["manual/a"], "webhook": {"url": HOOK}}
        assert (await put_json(s.client, f"{SUBS}/m", spec))[0] == 201
        added = await s.client.post(
            f"{SUBS}/m/streams", data=json.dumps({"streams": ["manual/b"]}), headers=JSON
        )
        assert added.status_code == 204
        removed = await s.client.delete(f"{SUBS}/m/streams/{urllib.parse.quote('manual/b', '')}")
        assert removed.status_code == 204
        streams = (await subscription(s.client, "m"))["streams"]
        assert streams == [
            {"path": "manual/a", "link_type": "explicit", "acked_offset": "0" * 16 + "_" + "0" * 16}
        ]
        gone = await s.client.delete(f"{SUBS}/nope/streams/manual%2Fa")
        assert gone.status_code == 404


# -- webhook URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://example.com/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.1/hook",
        "https://172.16.5.4/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1/hook",
        "https://0.0.0.0/hook",
        "https://2130706433/hook",  # 127.0.0.1 written as one number
        "https://0x7f.1/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "ftp://example.com/hook",
        "not a url",
        "https://example.com:99999/hook",
    ],
)
def test_unsafe_webhook_urls_are_refused(url: str) -> None:
    assert check_webhook_url(url) is not None


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/x", "https://8.8.8.8/x", HOOK, "http://localhost:8080/"]
)
def test_public_https_and_local_http_webhooks_are_accepted(url: str) -> None:
    assert check_webhook_url(url) is None


def test_local_http_can_be_refused() -> None:
    assert check_webhook_url(HOOK, allow_local_http=False) == "webhook.url must use https"


async def test_an_unsafe_webhook_url_is_a_400_webhook_url_rejected() -> None:
    async with server() as s:
        spec = webhook_spec(webhook={"url": "http://10.0.0.1/hook"})
        status, body = await put_json(s.client, f"{SUBS}/bad", spec)
        assert (status, body["error"]["code"]) == (400, "WEBHOOK_URL_REJECTED")
        assert (await s.client.get(f"{SUBS}/bad")).status_code == 404


# -- webhook delivery and callbacks ----------------------------------------------------------


async def test_a_signed_webhook_reaches_a_real_local_receiver() -> None:
    received: list[tuple[bytes, str]] = []
    got = trio.Event()
    hook_app = QuartTrio("receiver")

    @hook_app.post("/webhook")
    async def webhook() -> Response:
        raw = await request.get_data(as_text=False)
        assert isinstance(raw, bytes)
        received.append((raw, request.headers["Webhook-Signature"]))
        got.set()
        return Response(b'{"done": true}', content_type="application/json")

    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                hook_app, port=0, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        async with open_subscriptions() as manager:
            app = create_app(MemoryStore(), subscriptions=manager)
            client = app.test_client()
            url = binds[0] + "/webhook"
            await put_json(client, f"{SUBS}/real", webhook_spec(webhook={"url": url}))
            await client.put(f"{ROOT}/events/x", data=b'{"n": 1}', headers=JSON)
            with trio.fail_after(5):
                await got.wait()
            jwks = await (await client.get(f"{ROOT}/__ds/jwks.json")).get_json()
            raw, signature = received[0]
            assert verify(Delivery(raw, json.loads(raw), signature), jwks)
        stop.set()


async def test_webhook_delivery_is_signed_and_done_acks_the_wake() -> None:
    async with server() as s:
        s.receiver.answer = (200, {"done": True})
        await put_json(s.client, f"{SUBS}/w", webhook_spec(lease_ttl_ms=1000))
        await s.client.put(f"{ROOT}/events/one", data=b'{"n": 1}', headers=JSON)
        delivery = await s.receiver.next()
        jwks = await (await s.client.get(f"{ROOT}/__ds/jwks.json")).get_json()
        assert verify(delivery, jwks)
        tampered = Delivery(delivery.raw + b" ", delivery.body, delivery.signature)
        with pytest.raises(InvalidSignature):
            verify(tampered, jwks)
        body = delivery.body
        assert body["subscription_id"] == "w"
        assert body["generation"] == 1
        assert path_of(body["callback_url"]) == f"{SUBS}/w/callback"
        (stream,) = body["streams"]
        assert stream["path"] == "events/one"
        assert stream["acked_offset"] == "-1"
        assert stream["has_pending"] is True
        await trio.testing.wait_all_tasks_blocked()
        (link,) = (await subscription(s.client, "w"))["streams"]
        assert link["acked_offset"] == stream["tail_offset"]


async def test_callback_acks_and_a_stale_generation_is_fenced() -> None:
    async with server() as s:
        await put_json(s.client, f"{SUBS}/c", webhook_spec(lease_ttl_ms=60_000))
        await s.client.put(f"{ROOT}/events/c", data=b'{"n": 1}', headers=JSON)
        body = (await s.receiver.next()).body
        url, token = path_of(body["callback_url"]), body["callback_token"]
        tail = body["streams"][0]["tail_offset"]
        ack = {
            "wake_id": body["wake_id"],
            "generation": body["generation"],
            "acks": [{"stream": "events/c", "offset": tail}],
        }

        status, answer = await post_json(s.client, url, ack, token="forged.token")
        assert (status, answer["error"]["code"]) == (401, "TOKEN_INVALID")
        missing = await s.client.post(url, data=json.dumps(ack), headers=JSON)
        assert missing.status_code == 401
        beyond = ack | {"acks": [{"stream": "events/c", "offset": "9" * 16 + "_" + "9" * 16}]}
        status, answer = await post_json(s.client, url, beyond, token=token)
        assert (status, answer["error"]["code"]) == (409, "INVALID_OFFSET")
        stranger = ack | {"acks": [{"stream": "events/other", "offset": tail}]}
        assert (await post_json(s.client, url, stranger, token=token))[0] == 409

        assert await post_json(s.client, url, ack, token=token) == (
            200,
            {"ok": True, "next_wake": False},
        )  # not done: the wake stays open
        done = ack | {"done": True}
        assert await post_json(s.client, url, done, token=token) == (
            200,
            {"ok": True, "next_wake": False},
        )
        status, answer = await post_json(s.client, url, done, token=token)
        assert (status, answer["error"]["code"]) == (409, "FENCED")

        # New data: a new wake with the next generation; the old token is fenced there too.
        await s.client.post(f"{ROOT}/events/c", data=b'{"n": 2}', headers=JSON)
        second = (await s.receiver.next()).body
        assert second["generation"] == 2
        old = done | {"wake_id": second["wake_id"], "generation": 2}
        status, answer = await post_json(s.client, url, old, token=token)
        assert (status, answer["error"]["code"]) == (409, "FENCED")


async def test_an_expired_lease_opens_the_next_generation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with server() as s:
        await put_json(s.client, f"{SUBS}/l", webhook_spec(lease_ttl_ms=1000))
        await s.client.put(f"{ROOT}/events/l", data=b'{"n": 1}', headers=JSON)
        first = (await s.receiver.next()).body
        await trio.sleep(1.5)  # nobody calls back: the lease runs out
        second = (await s.receiver.next()).body
        assert second["generation"] == first["generation"] + 1
        stale = {"wake_id": first["wake_id"], "generation": first["generation"], "done": True}
        status, answer = await post_json(
            s.client, path_of(first["callback_url"]), stale, token=first["callback_token"]
        )
        assert (status, answer["error"]["code"]) == (409, "FENCED")


async def test_failed_deliveries_are_retried_with_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with server() as s:
        s.receiver.answer = (503, {})
        await put_json(s.client, f"{SUBS}/r", webhook_spec(lease_ttl_ms=600_000))
        await s.client.put(f"{ROOT}/events/r", data=b'{"n": 1}', headers=JSON)
        await s.receiver.next()
        assert (await subscription(s.client, "r"))["status"] == "failed"
        start = trio.current_time()
        s.receiver.answer = (200, {"done": True})
        retried = await s.receiver.next()
        assert 0.8 <= trio.current_time() - start <= 1.2  # first retry after 1 s +- 20 %
        assert retried.body["generation"] == 1
        await trio.testing.wait_all_tasks_blocked()
        assert (await subscription(s.client, "r"))["status"] == "active"


# -- pull-wake -------------------------------------------------------------------------------


async def test_pull_wake_claim_ack_and_release() -> None:
    async with server() as s:
        await s.client.put(f"{ROOT}/wake/pool", data=b"[]", headers=JSON)
        spec = {"type": "pull-wake", "pattern": "events/*", "wake_stream": "wake/pool"}
        assert (await put_json(s.client, f"{SUBS}/p", spec | {"lease_ttl_ms": 5000}))[0] == 201
        idle, answer = await post_json(s.client, f"{SUBS}/p/claim", {"worker": "w1"})
        assert (idle, answer["error"]["code"]) == (409, "NO_PENDING_WORK")

        await s.client.put(f"{ROOT}/events/p", data=b'{"n": 1}', headers=JSON)
        await trio.testing.wait_all_tasks_blocked()
        (event,) = await (await s.client.get(f"{ROOT}/wake/pool")).get_json()
        assert event | {"ts": 0} == {
            "type": "wake",
            "subscription_id": "p",
            "stream": "events/p",
            "generation": 1,
            "ts": 0,
        }

        status, claimed = await post_json(s.client, f"{SUBS}/p/claim", {"worker": "w1"})
        assert status == 200
        assert claimed["generation"] == 1
        assert claimed["lease_ttl_ms"] == 5000
        status, busy = await post_json(s.client, f"{SUBS}/p/claim", {"worker": "w2"})
        assert status == 409
        assert busy["error"]["code"] == "ALREADY_CLAIMED"
        assert busy["error"]["current_holder"] == "w1"

        tail = claimed["streams"][0]["tail_offset"]
        settle = {"wake_id": claimed["wake_id"], "generation": claimed["generation"]}
        acked = settle | {"acks": [{"stream": "events/p", "offset": tail}], "done": True}
        assert await post_json(s.client, f"{SUBS}/p/ack", acked, token=claimed["token"]) == (
            200,
            {"ok": True, "next_wake": False},
        )
        stale = await post_json(s.client, f"{SUBS}/p/release", settle, token=claimed["token"])
        assert stale[0] == 409

        await s.client.post(f"{ROOT}/events/p", data=b'{"n": 2}', headers=JSON)
        status, again = await post_json(s.client, f"{SUBS}/p/claim", {"worker": "w2"})
        assert (status, again["generation"]) == (200, 2)
        released = await s.client.post(
            f"{SUBS}/p/release",
            data=json.dumps({"wake_id": again["wake_id"], "generation": 2}),
            headers=JSON | {"Authorization": f"Bearer {again['token']}"},
        )
        assert released.status_code == 204
        # Still pending after the release: the next wake is announced and claimable.
        status, third = await post_json(s.client, f"{SUBS}/p/claim", {"worker": "w3"})
        assert (status, third["generation"]) == (200, 3)
        # Webhook-only and pull-only actions are refused across types.
        assert (await put_json(s.client, f"{SUBS}/h", webhook_spec()))[0] == 201
        assert (await post_json(s.client, f"{SUBS}/h/claim", {"worker": "w"}))[0] == 400


async def test_a_stream_seen_first_by_an_append_is_linked_at_its_old_tail() -> None:
    """A stream from before the server started (DiskStore) is not all pending."""
    store = MemoryStore()
    await store.create(
        f"{ROOT}/events/old", CreateRequest(content_type="text/plain", body=b"history")
    )
    old_tail = (await store.head(f"{ROOT}/events/old")).next_offset
    async with server(store=store) as s:
        await put_json(s.client, f"{SUBS}/o", webhook_spec())
        await s.client.post(
            f"{ROOT}/events/old", data=b"new", headers={"Content-Type": "text/plain"}
        )
        (stream,) = (await s.receiver.next()).body["streams"]
        assert stream["acked_offset"] == old_tail
        assert stream["has_pending"] is True
        await s.client.delete(f"{ROOT}/events/old")
        assert (await subscription(s.client, "o"))["streams"] == []


async def test_wake_events_wake_no_one() -> None:
    """As in the reference server, a wake event is not a change: a webhook watching the
    wake stream is not called for it (and wakes cannot feed each other in a loop)."""
    async with server() as s:
        await s.client.put(f"{ROOT}/wake/pool", data=b"[]", headers=JSON)
        pull = {"type": "pull-wake", "pattern": "events/*", "wake_stream": "wake/pool"}
        await put_json(s.client, f"{SUBS}/pull", pull)
        await put_json(s.client, f"{SUBS}/watcher", webhook_spec(pattern="wake/*"))
        await s.client.put(f"{ROOT}/events/z", data=b'{"n": 1}', headers=JSON)
        await trio.testing.wait_all_tasks_blocked()
        events = await (await s.client.get(f"{ROOT}/wake/pool")).get_json()
        assert [e["stream"] for e in events] == ["events/z"]
        with pytest.raises(trio.WouldBlock):
            s.receiver.inbox.receive_nowait()
        # A write through the server is a change: now the watcher hears of it.
        await s.client.post(f"{ROOT}/wake/pool", data=b'{"n": 2}', headers=JSON)
        assert (await s.receiver.next()).body["subscription_id"] == "watcher"


# -- malformed requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b"null",
        b'"webhook"',
        b'{"type": "webhook"}',
        b'{"type": "poll", "pattern": "a/*"}',
        b'{"type": ["webhook"], "pattern": "a/*"}',
        b'{"type": "webhook", "pattern": "a/*"}',
        b'{"type": "webhook", "pattern": "a/*", "webhook": "http://localhost/"}',
        b'{"type": "webhook", "pattern": 5, "webhook": {"url": "http://localhost/"}}',
        b'{"type": "webhook", "streams": [1], "webhook": {"url": "http://localhost/"}}',
        b'{"type": "webhook", "streams": "a", "webhook": {"url": "http://localhost/"}}',
        b'{"type": "pull-wake", "pattern": "a/*"}',
        b'{"type": "pull-wake", "pattern": "a/*", "wake_stream": "w", "lease_ttl_ms": 999}',
        b'{"type": "pull-wake", "pattern": "a/*", "wake_stream": "w", "lease_ttl_ms": 1000.5}',
        b'{"type": "pull-wake", "pattern": "a/*", "wake_stream": "w", "lease_ttl_ms": true}',
        b'{"type": "pull-wake", "pattern": "a/*", "wake_stream": "w", "lease_ttl_ms": NaN}',
        b'{"type": "pull-wake", "pattern": "a/*", "wake_stream": "w", "description": 1}',
        b"\xff\xfe",
    ],
)
async def test_malformed_subscription_bodies_are_400(body: bytes) -> None:
    async with server() as s:
        response = await s.client.put(f"{SUBS}/x", data=body, headers=JSON)
        assert response.status_code == 400
        assert (await response.get_json())["error"]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("claim", b"{}"),
        ("claim", b'{"worker": ""}'),
        ("claim", b"[1]"),
        ("claim", b"{oops"),
        ("ack", b"{}"),
        ("ack", b'{"wake_id": "w", "generation": "1"}'),
        ("ack", b'{"wake_id": "w", "generation": -1}'),
        ("ack", b'{"wake_id": "w", "generation": 1, "acks": {}}'),
        ("ack", b'{"wake_id": "w", "generation": 1, "acks": [{"stream": "a"}]}'),
        ("ack", b'{"wake_id": "w", "generation": 1, "acks": [5]}'),
        ("ack", b'{"wake_id": "w", "generation": 1, "done": "yes"}'),
        ("release", b"null"),
        ("streams", b'{"streams": []}'),
        ("streams", b'{"streams": [""]}'),
        ("streams", b'{"streams": "a"}'),
    ],
)
async def test_malformed_action_bodies_are_400(action: str, body: bytes) -> None:
    async with server() as s:
        await s.client.put(f"{ROOT}/w", data=b"[]", headers=JSON)
        spec = {"type": "pull-wake", "streams": ["a"], "wake_stream": "w"}
        assert (await put_json(s.client, f"{SUBS}/x", spec))[0] == 201
        headers = JSON | {"Authorization": "Bearer t.t"}
        response = await s.client.post(f"{SUBS}/x/{action}", data=body, headers=headers)
        assert response.status_code == 400
        assert (await response.get_json())["error"]["code"] == "INVALID_REQUEST"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
spec_keys = st.sampled_from(
    ["type", "pattern", "streams", "webhook", "wake_stream", "lease_ttl_ms", "description"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.dictionaries(spec_keys, json_values | st.sampled_from(["webhook", "pull-wake"])),
    action=st.sampled_from(["", "/streams", "/claim", "/ack", "/release", "/callback"]),
)
async def test_no_body_is_answered_with_a_server_error(body: dict[str, Any], action: str) -> None:
    async with server() as s:
        response = await s.client.put(f"{SUBS}/f", data=json.dumps(body), headers=JSON)
        assert response.status_code in (201, 400), response.status_code
        headers = JSON | {"Authorization": "Bearer a.b"}
        answer = await s.client.post(f"{SUBS}/f{action}", data=json.dumps(body), headers=headers)
        assert answer.status_code < 500, (action, answer.status_code)


async def test_unknown_control_routes_and_methods() -> None:
    async with server() as s:
        assert (await s.client.get(f"{ROOT}/__ds")).status_code == 404
        assert (await s.client.get(f"{ROOT}/__ds/other")).status_code == 404
        assert (await s.client.get(f"{SUBS}/x/frobnicate")).status_code == 404
        assert (await s.client.patch(f"{SUBS}/x")).status_code == 405
        assert (await s.client.get(f"{SUBS}/x/claim")).status_code == 405
        assert (await s.client.options(f"{SUBS}/x")).status_code == 204


# -- without a manager, and shutting down ----------------------------------------------------


async def test_without_subscriptions_the_reserved_paths_answer_501() -> None:
    app: Quart = create_app(MemoryStore())
    client = app.test_client()
    response = await client.put(f"{SUBS}/x", data=json.dumps(webhook_spec()), headers=JSON)
    assert response.status_code == 501
    assert (await response.get_json())["error"]["code"] == "NOT_IMPLEMENTED"
    created = await client.put(f"{ROOT}/__ds/stream", data=b"x", headers=JSON)
    assert created.status_code == 501  # reserved: no stream is made there


async def test_a_manager_serves_one_store() -> None:
    async with open_subscriptions() as manager:
        store = MemoryStore()
        create_app(store, subscriptions=manager)
        create_app(store, subscriptions=manager)  # the same store again is fine
        with pytest.raises(RuntimeError, match=r"already serves another store"):
            create_app(MemoryStore(), subscriptions=manager)


async def test_closing_the_manager_ends_pending_retries_at_once() -> None:
    async with server() as s:
        s.receiver.answer = (500, {})
        await put_json(s.client, f"{SUBS}/s", webhook_spec(lease_ttl_ms=600_000))
        await s.client.put(f"{ROOT}/events/s", data=b'{"n": 1}', headers=JSON)
        await s.receiver.next()
        await trio.testing.wait_all_tasks_blocked()  # the retry waits ~1 s from here
        closing = trio.current_time()
    assert trio.current_time() - closing < 0.5
    assert s.manager.closed
    status, _ = await put_json(s.client, f"{SUBS}/t", webhook_spec())
    assert status == 503


# -- glob patterns ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("events/*", "events/a", True),
        ("events/*", "events/a/b", False),
        ("events/*", "events", False),
        ("events/**", "events", True),
        ("events/**", "events/a/b", True),
        ("**/log", "a/b/log", True),
        ("**", "anything/at/all", True),
        ("a/%2A", "a/*", True),
        ("a/%2A", "a/b", False),
        ("/events/*/", "events/x", True),
    ],
)
def test_glob_match(pattern: str, path: str, matches: bool) -> None:
    assert glob_match(pattern, path) is matches


# -- the optional dependency and the command line ----------------------------------------


async def test_without_cryptography_opening_fails_and_routes_say_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.ed25519", None)
    with pytest.raises(SubscriptionsUnavailable, match=r"pip install 'agent-orchestrator\["):
        async with open_subscriptions():
            pass  # pragma: no cover
    monkeypatch.setattr(subscriptions_module, "subscriptions_available", lambda: False)
    client = create_app(MemoryStore()).test_client()
    response = await client.get(f"{SUBS}/x")
    assert response.status_code == 501
    assert "cryptography" in (await response.get_json())["error"]["message"]


def test_the_streams_command_turns_subscriptions_off_on_request() -> None:
    parser = build_parser()
    assert parser.parse_args(["streams"]).subscriptions is True
    assert parser.parse_args(["streams", "--no-subscriptions"]).subscriptions is False
