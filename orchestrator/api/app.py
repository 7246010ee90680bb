"""The HTTP API (quart-trio): the reference's session routes (§3.2-3.3), with the same
paths, JSON field names and status codes, plus authentication everywhere it was missing
(the sandbox routes take the admin token).

The layer validates input, checks tokens and posts messages to actors (through the
:class:`~orchestrator.core.Orchestrator`); it reads session events from the streams.
It holds no session state.
"""

from __future__ import annotations

import json
import math
import posixpath
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import PurePosixPath
from typing import Any, TypeVar, cast

import httpx
import trio
from quart import Quart, Response, request
from quart_trio import QuartTrio

from transport import AppendRequest, StreamError

from .. import events as ev
from ..config import Settings
from ..core import Orchestrator, OrchestratorError
from ..electric import ProvisionError, provision
from ..gates import GateExists, ToolPolicy
from ..github.app import GitHubSettings
from ..hooks.mapping import hook_to_event
from ..hooks.setup import setup_script
from ..sandboxes.base import SandboxError, SandboxSpec
from ..sessions.actor import DEFAULT_TOOLS, PRODUCTION_TOOLS
from ..sessions.registry import REGISTRY_STREAM, UpdateSession
from ..tokens import Purpose
from ..web import add_web_routes
from ._http import (
    ValidationFailed,
    _bearer,
    _error,
    _json,
    _no_constants,
    _query,
    _validated,
    event_offset,
    respond_to_gate,
    sse_response,
)
from ._limits import RateLimiter, client_ip, parse_networks, sandbox_refusal
from ._schemas import find_route
from .github import add_github_routes
from .openapi import openapi_document
from .rooms import add_room_routes

__all__ = ["MAX_BODY_BYTES", "create_api", "rate_limiter"]

MAX_BODY_BYTES = 1024 * 1024
PROVISION_POLL_INTERVAL = 1.0  # seconds between polls of the claim API
APPEND_LIMIT = 65_536
KEY_LIMIT = 1_000
SHORT_LIMIT = 500
HIDDEN_TYPES = frozenset({"command", "gate_response"})
EXCLUDED_DIRS = frozenset({"node_modules", ".git", "dist", ".next", ".cache"})

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def rate_limiter(settings: Settings, *, clock: Callable[[], float] | None = None) -> RateLimiter:
    """The per-client limits of ``settings`` (``clock``: for tests)."""
    limits = {"default": settings.rate_limit, "create": settings.create_rate_limit}
    return RateLimiter(limits) if clock is None else RateLimiter(limits, clock=clock)


def create_api(
    orch: Orchestrator,
    *,
    limiter: RateLimiter | None = None,
    github: GitHubSettings | None = None,
    github_clock: Callable[[], float] = time.time,
) -> Quart:
    """The API of ``orch``. ``limiter``: the per-client rate limits (by default from
    the settings); ``github``: the GitHub App's settings (by default from the
    environment) and ``github_clock`` its token cache's clock (for tests)."""
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["RESPONSE_TIMEOUT"] = None
    limiter = limiter if limiter is not None else rate_limiter(orch.settings)
    trusted = parse_networks(orch.settings.trusted_proxies)

    @app.before_request
    async def limits() -> Response | None:
        """Rate limits per client and route class; then the whole body is read, so
        that one over ``MAX_CONTENT_LENGTH`` (chunked too) is 413 on every route."""
        rule = request.url_rule
        route = find_route(request.method, rule.rule if rule is not None else None)
        peer = request.scope.get("client")
        client = client_ip(
            str(peer[0]) if peer else None, request.headers.get("X-Forwarded-For"), trusted
        )
        wait = limiter.take(client, route.limit if route is not None else "default")
        if wait > 0:
            response = _error("Too many requests. Please try again later.", 429)
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        # Every body, also one sent with a GET: over MAX_CONTENT_LENGTH it is the 413
        # below; and a body left unread (the route does not want it, the method is
        # not allowed) when it arrives after the answer stalls the connection's next
        # request in hypercorn.
        await request.get_data(cache=True)
        return None

    @app.errorhandler(ValidationFailed)
    async def invalid(exc: ValidationFailed) -> Response:
        return _error(exc.message, exc.status, details=exc.details)

    @app.errorhandler(OrchestratorError)
    async def refused(exc: OrchestratorError) -> Response:
        return _error(exc.message, exc.status)

    @app.errorhandler(413)
    async def too_large(exc: Exception) -> Response:
        # The rest of the body is not read: the connection is closed after the answer
        # (else a client still sending a long chunked body would wait forever).
        response = _error("Payload too large", 413)
        response.headers["Connection"] = "close"
        return response

    @app.errorhandler(404)
    async def not_found(exc: Exception) -> Response:
        return _error("Not found", 404)

    @app.errorhandler(405)
    async def not_allowed(exc: Exception) -> Response:
        return _error("Method not allowed", 405)

    def session_auth(handler: F) -> F:
        @wraps(handler)
        async def checked(session_id: str, *args: Any, **kwargs: Any) -> Any:
            if not orch.signer.check(Purpose.SESSION, session_id, _bearer()):
                return _error("Invalid or missing session token", 401)
            return await handler(session_id, *args, **kwargs)

        return cast(F, checked)

    def admin_auth(handler: F) -> F:
        @wraps(handler)
        async def checked(*args: Any, **kwargs: Any) -> Any:
            if not orch.signer.check(Purpose.ADMIN, "", _bearer()):
                return _error("Invalid or missing admin token", 401)
            return await handler(*args, **kwargs)

        return cast(F, checked)

    async def known(session_id: str) -> dict[str, Any]:
        info = await orch.session_info(session_id)
        if info is None:
            raise OrchestratorError("Session not found", 404)
        return info

    # -- server ------------------------------------------------------------------------

    @app.get("/openapi.json")
    async def openapi() -> Response:
        """The OpenAPI document of these routes, from the schemas they validate with."""
        return _json(openapi_document())

    @app.get("/api/health")
    async def health() -> Response:
        try:
            with trio.fail_after(5):
                await orch.store.head(REGISTRY_STREAM)  # the streams answer
            streams = "ok"
        except (StreamError, trio.TooSlowError):
            streams = "error"
        healthy = streams == "ok"
        checks = {"streams": streams, "sandbox": orch.provider.runtime}
        return _json({"healthy": healthy, "checks": checks}, 200 if healthy else 503)

    @app.get("/api/config")
    async def config() -> Response:
        data: dict[str, Any] = {"devMode": not orch.settings.production}
        if orch.settings.production:
            data["maxSessionCostUsd"] = orch.settings.max_session_cost_usd
        return _json(data)

    @app.post("/api/provision-electric")
    async def provision_electric() -> Response:
        """A claimable Electric Cloud database for a session's setup choice. Unlike the
        reference, the caller must hold a session token (the claim API costs money)."""
        session_id = (await _validated())["sessionId"]
        if not orch.signer.check(Purpose.SESSION, session_id, _bearer()):
            return _error("Invalid or missing session token", 401)
        await known(session_id)
        settings = orch.settings
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                claim = await provision(
                    client,
                    api_base_url=settings.electric_api_base_url,
                    dashboard_url=settings.electric_dashboard_url,
                    interval=PROVISION_POLL_INTERVAL,
                )
        except ProvisionError as exc:
            return _error(str(exc), 500)
        return _json(claim.to_json())

    # -- gates -------------------------------------------------------------------------

    @app.post("/api/sessions/<session_id>/respond")
    @session_auth
    async def respond(session_id: str) -> Response:
        await known(session_id)
        return await respond_to_gate(orch, session_id, await _validated())

    async def ask_and_wait(session_id: str, event: ev.AskUserQuestion) -> dict[str, Any] | None:
        """Block a hook on an AskUserQuestion until a person answers (``/respond``) or
        the gate expires; the answer goes back as the tool's pre-filled input."""
        gate_id = f"ask_user_question:{event.tool_use_id}"
        questions = event.questions or []
        # needsInput before the gate opens: whoever sees the gate sees the flag too
        await orch.registry.ask(UpdateSession(session_id, {"needsInput": True}))
        try:
            try:
                gate = await orch.gates.open(
                    session_id,
                    "ask_user_question",
                    gate_id,
                    request={"toolUseId": event.tool_use_id, "questions": questions},
                )
            except GateExists:
                found = orch.gates.get(session_id, gate_id)
                if found is None:
                    return None
                gate = found
            outcome = await gate.wait()
        finally:
            await orch.registry.ask(UpdateSession(session_id, {"needsInput": False}))
        if outcome.status != "resolved" or not isinstance(outcome.value, dict):
            return None
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "allow",
                "updatedInput": {
                    "questions": questions,
                    "answers": outcome.value.get("answers", {}),
                },
            }
        }

    # -- local Claude Code through hooks (reference 11) -----------------------------------

    @app.get("/api/hooks/setup")
    @admin_auth
    async def hooks_setup() -> Response:
        """The installer for a local project. It carries the global hook secret, so,
        unlike the reference, only the operator (admin token) may fetch it."""
        url = request.host_url.rstrip("/") + "/api/hook"
        script = setup_script(url, orch.signer.token(Purpose.GLOBAL_HOOK))
        return Response(script, content_type="text/plain; charset=utf-8")

    @app.post("/api/hook")
    async def hook() -> Response:
        if not orch.signer.check(Purpose.GLOBAL_HOOK, "", _bearer()):
            return _error("Invalid or missing hook secret", 401)
        payload = await _validated()
        path = payload["transcript_path"]
        cwd = payload.get("cwd")
        session = await orch.hook_session(path, cwd if isinstance(cwd, str) else None)
        event = hook_to_event(payload)
        if event is not None:
            await orch.hosted_event(session.id, event)
        if isinstance(event, ev.AskUserQuestion):
            decision = await ask_and_wait(session.id, event)
            if decision is not None:
                return _json({**decision, "sessionId": session.id})
        return _json({"ok": True, "sessionId": session.id})

    @app.post("/api/sessions/local")
    @admin_auth
    async def local_session() -> Response:
        description = (await _validated()).get("description") or ""
        session = await orch.create_local_session(description)
        return _json(
            {
                "sessionId": session.id,
                "sessionToken": session.token,
                "hookToken": orch.signer.token(Purpose.HOOK, session.id),
            },
            201,
        )

    @app.post("/api/sessions/auto")
    async def auto_session() -> Response:
        """A session started by a SessionStart hook (global hook secret: the reference
        let anyone mint sessions here)."""
        if not orch.signer.check(Purpose.GLOBAL_HOOK, "", _bearer()):
            return _error("Invalid or missing hook secret", 401)
        payload = await _validated()  # a SessionStart hook only
        cwd = payload.get("cwd")
        name = PurePosixPath(cwd).name if isinstance(cwd, str) and cwd else ""
        session = await orch.create_local_session(project_name=name or "local-session")
        event = hook_to_event(payload)
        if event is not None:
            await orch.hosted_event(session.id, event)
        return _json(
            {
                "sessionId": session.id,
                "sessionToken": session.token,
                "hookToken": orch.signer.token(Purpose.HOOK, session.id),
            },
            201,
        )

    @app.post("/api/sessions/<session_id>/hook-event")
    async def hook_event(session_id: str) -> Response:
        if not orch.signer.check(Purpose.HOOK, session_id, _bearer()):
            return _error("Invalid or missing hook token", 401)
        payload = await _validated()
        event = hook_to_event(payload)
        if event is not None:
            await orch.hosted_event(session_id, event)
        if isinstance(event, ev.AskUserQuestion):
            decision = await ask_and_wait(session_id, event)
            if decision is not None:
                return _json(decision)
        return _json({"ok": True})

    # -- sessions ----------------------------------------------------------------------

    @app.post("/api/sessions")
    async def create_session() -> Response:
        body = await _validated()
        description = body["description"]
        freeform = body.get("freeform", False)
        ask_tools = body.get("askTools", False)
        policy = None
        if ask_tools:
            production = orch.settings.production
            policy = ToolPolicy.for_session(
                production=production, tools=PRODUCTION_TOOLS if production else DEFAULT_TOOLS
            )
        session = await orch.create_session(
            description,
            freeform=freeform,
            name=body.get("name"),
            api_key=body.get("apiKey"),
            ask_infra=True,
            tool_policy=policy,
            agent=body.get("agent") or "claude",
        )
        info = await session.info()
        return _json({"sessionId": session.id, "session": info, "sessionToken": session.token}, 201)

    @app.get("/api/sessions/<session_id>")
    @session_auth
    async def get_session(session_id: str) -> Response:
        return _json(await known(session_id))

    @app.delete("/api/sessions/<session_id>")
    @session_auth
    async def delete_session(session_id: str) -> Response:
        await orch.delete_session(session_id)
        return _json({"ok": True})

    @app.post("/api/sessions/<session_id>/iterate")
    @session_auth
    async def iterate(session_id: str) -> Response:
        await known(session_id)
        text = (await _validated())["request"]
        await orch.session(session_id).send(text)
        return _json({"ok": True})

    @app.post("/api/sessions/<session_id>/interrupt")
    @session_auth
    async def interrupt(session_id: str) -> Response:
        await orch.session(session_id).interrupt()
        return _json({"ok": True})

    @app.post("/api/sessions/<session_id>/cancel")
    @session_auth
    async def cancel(session_id: str) -> Response:
        await orch.session(session_id).cancel()
        return _json({"ok": True})

    @app.get("/api/sessions/<session_id>/events")
    @session_auth
    async def events(session_id: str) -> Response:
        await known(session_id)
        _query()
        return sse_response(orch.session(session_id).events(event_offset()))

    @app.post("/api/sessions/<session_id>/stream/append")
    @session_auth
    async def stream_append(session_id: str) -> Response:
        await known(session_id)
        if "application/json" not in request.headers.get("Content-Type", ""):
            return _error("Content-Type must be application/json", 415)
        raw = await request.get_data(cache=False)
        assert isinstance(raw, bytes)
        if not raw:
            return _error("Request body is required", 400)
        if len(raw) > APPEND_LIMIT:
            return _error("Payload too large", 413)
        try:
            value = json.loads(raw, parse_constant=_no_constants)
        except ValueError:
            return _error("Invalid JSON body", 400)
        if not isinstance(value, dict):
            return _error("The body must be one JSON object", 400)
        body = json.dumps([value], separators=(",", ":")).encode()
        try:
            await orch.store.append(
                orch.session(session_id).stream,
                AppendRequest(body=body, content_type="application/json"),
            )
        except StreamError:
            return _error("Failed to append to stream", 500)
        return _json({"ok": True})

    # -- the sandbox of a session ------------------------------------------------------

    async def sandbox_of(session_id: str) -> Any:
        await known(session_id)
        sandbox = await orch.sandbox_of(session_id)
        if sandbox is None:
            raise OrchestratorError("Container not available", 404)
        return sandbox

    @app.get("/api/sessions/<session_id>/app-status")
    @session_auth
    async def app_status(session_id: str) -> Response:
        info = await known(session_id)
        sandbox = await orch.sandbox_of(session_id)
        if sandbox is None:
            return _json({"running": False, "port": info.get("appPort"), "previewUrl": None})
        status = await sandbox.app_status()
        return _json({"running": status.running, "port": status.port, "previewUrl": None})

    @app.post("/api/sessions/<session_id>/start-app")
    @session_auth
    async def start_app(session_id: str) -> Response:
        await known(session_id)
        sandbox = await orch.sandbox_of(session_id)
        if sandbox is None:
            return _error("Container is not running", 400)
        try:
            status = await sandbox.start_app()
        except SandboxError:
            # (its message names host paths)
            return _error("The app could not be started: is there a package.json?", 409)
        return _json({"ok": status.running})

    @app.post("/api/sessions/<session_id>/stop-app")
    @session_auth
    async def stop_app(session_id: str) -> Response:
        await known(session_id)
        sandbox = await orch.sandbox_of(session_id)
        if sandbox is not None:
            await sandbox.stop_app()
        return _json({"success": True})

    @app.get("/api/sessions/<session_id>/files")
    @session_auth
    async def files(session_id: str) -> Response:
        await known(session_id)
        sandbox = await orch.sandbox_of(session_id)
        if sandbox is None:
            return _json({"files": [], "prefix": ""})
        prefix = sandbox.workdir.rstrip("/")
        found = [
            path
            for path in await sandbox.list_files(prefix)
            # directories only: a file that happens to be called "dist" is listed
            if not (set(path[len(prefix) :].split("/")[:-1]) & EXCLUDED_DIRS)
        ]
        return _json({"files": sorted(found), "prefix": prefix})

    @app.get("/api/sessions/<session_id>/file-content")
    @session_auth
    async def file_content(session_id: str) -> Response:
        path = _query()["path"]
        sandbox = await sandbox_of(session_id)
        root = sandbox.workdir.rstrip("/")
        resolved = posixpath.normpath(posixpath.join(root, path))
        if "\x00" in path or not (resolved == root or resolved.startswith(root + "/")):
            return _error("Path outside project directory", 403)
        try:
            data = await sandbox.read_file(resolved)
        except Exception:
            return _error("File not found or unreadable", 404)
        return _json({"content": data.decode("utf-8", errors="replace")})

    @app.get("/api/sessions/<session_id>/git-status")
    @session_auth
    async def git_status(session_id: str) -> Response:
        sandbox = await sandbox_of(session_id)
        return _json(await _git_status(sandbox))

    # -- sandboxes (admin) -------------------------------------------------------------

    @app.get("/api/sandboxes")
    @admin_auth
    async def sandboxes() -> Response:
        owned = await orch.provider.list_owned()
        return _json(
            {
                "sandboxes": [
                    {
                        "sandboxId": item.sandbox_id,
                        "sessionId": item.session_id,
                        "runtime": item.runtime,
                        "alive": item.alive,
                    }
                    for item in owned
                ]
            }
        )

    @app.post("/api/sandboxes")
    @admin_auth
    async def create_sandbox() -> Response:
        """An operator's sandbox (no agent in it): labelled like a session's, listed
        and removed by the routes beside it."""
        body = await _validated()
        session_id = body.get("sessionId") or str(uuid.uuid4())
        project = body.get("projectName") or f"project-{session_id[:8]}"
        try:
            spec = SandboxSpec(
                session_id=session_id,
                project_name=project,
                network=orch.settings.sandbox_network,
            )
        except ValueError as exc:
            raise OrchestratorError(f"Validation failed: {exc}") from None
        refusal = await sandbox_refusal(orch)
        if refusal is not None:
            return _error(refusal, 503)
        try:
            sandbox = await orch.provider.create(spec)
        except SandboxError as exc:
            return _error(str(exc), 409)
        return _json(
            {
                "sandboxId": sandbox.sandbox_id,
                "sessionId": session_id,
                "runtime": sandbox.runtime,
                "projectDir": sandbox.workdir,
            },
            201,
        )

    @app.get("/api/sandboxes/<session_id>")
    @admin_auth
    async def sandbox(session_id: str) -> Response:
        for item in await orch.provider.list_owned():
            if item.session_id == session_id:
                live = await orch.sandbox_of(session_id)
                app_running = (await live.app_status()).running if live is not None else False
                return _json(
                    {
                        "sandboxId": item.sandbox_id,
                        "sessionId": item.session_id,
                        "runtime": item.runtime,
                        "alive": item.alive,
                        "appRunning": app_running,
                    }
                )
        return _error("Sandbox not found", 404)

    @app.delete("/api/sandboxes/<session_id>")
    @admin_auth
    async def remove_sandbox(session_id: str) -> Response:
        """Remove the sandbox of ``session_id`` (as the reference: by session id)."""
        owned = [i for i in await orch.provider.list_owned() if i.session_id == session_id]
        if not owned:
            return _error("Sandbox not found", 404)
        for item in owned:
            await orch.provider.remove(item.sandbox_id)
        return _json({"ok": True})

    add_room_routes(app, orch)
    add_github_routes(app, orch, github=github, clock=github_clock)
    add_web_routes(app)
    return app


async def _git_status(sandbox: Any) -> dict[str, Any]:
    empty = {
        "initialized": False,
        "branch": None,
        "hasUncommitted": False,
        "lastCommitHash": None,
        "lastCommitMessage": None,
    }
    workdir = sandbox.workdir
    check = await sandbox.exec(["git", "-C", workdir, "rev-parse", "--is-inside-work-tree"])
    if not check.ok:
        return empty
    branch = await sandbox.exec(["git", "-C", workdir, "rev-parse", "--abbrev-ref", "HEAD"])
    head = await sandbox.exec(["git", "-C", workdir, "log", "-1", "--format=%H%n%s"])
    status = await sandbox.exec(["git", "-C", workdir, "status", "--porcelain"])
    lines = head.stdout.decode(errors="replace").splitlines() if head.ok else []
    return {
        "initialized": True,
        "branch": branch.stdout.decode(errors="replace").strip() or None,
        "hasUncommitted": bool(status.stdout.strip()),
        "lastCommitHash": lines[0] if lines else None,
        "lastCommitMessage": lines[1] if len(lines) > 1 else None,
    }
