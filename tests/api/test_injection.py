"""Injection and traversal through the routes: names, descriptions, room and agent
names, messages, repository and database fields with quotes, newlines, ``$(...)``,
backticks, ``;``, ``../``, NUL and long unicode. Nothing runs (a marker file that any
shell reading them would create never appears, on the host or in a sandbox), nothing is
mangled (what is accepted is stored as sent), each refusal is a 4xx that changes
nothing, and no path reads a file outside the project (hypothesis over file-content)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.api._schemas import CREATE_SESSION, validate
from orchestrator.core import Orchestrator
from orchestrator.models import Script
from orchestrator.tokens import Purpose

from ..web.support import live_server
from .support import running_api, wait_until_idle


def payloads(markers: Path) -> list[str]:
    """Each shell form twice: with a marker under ``markers`` (seen if a shell on the
    host ran it) and with a relative one (seen if it ran in a sandbox, whose root is
    read-only and whose /tmp is its own: it lands in the sandbox's working directory)."""

    def forms(m: str) -> list[str]:
        return [
            f"$(touch {m}1)",
            f"`touch {m}2`",
            f"x; touch {m}3",
            f"x && touch {m}4 || touch {m}5",
            f"x | tee {m}6",
            f"x\ntouch {m}7\n",
            f"'; touch {m}8; echo '",
            f'"; touch {m}9; echo "',
            f"${{IFS}}touch${{IFS}}{m}10",
            f"CLAUDEMD_EOF\ntouch {m}11\nCLAUDEMD_EOF",
        ]

    return [
        *forms(str(markers / "pwned-")),
        *forms("pwned-relative-"),
        "../../../../etc/passwd",
        "..\\..\\..\\windows\\system32",
        "a\x00b",
        "\u202e\u0000\ufeff",
        "line\r\nX-Injected: 1",
        "<script>alert(1)</script>{{7*7}}%2e%2e%2f",
        "é" * 600,
        "🦀" * 10_001,
    ]


def no_marker(markers: Path, *roots: Path) -> None:
    found = [path for root in (markers, *roots) for path in root.rglob("pwned*")]
    found += list(Path.cwd().glob("pwned*"))  # where a relative marker would land
    assert not found, f"a payload ran: {found}"


async def snapshot(orch: Orchestrator) -> tuple[Any, Any]:
    sessions = sorted(
        (s["id"], s.get("description"), s.get("status")) for s in await orch.sessions()
    )
    return sessions, await orch.rooms()


async def test_payloads_through_every_text_field(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    texts = payloads(markers)
    async with running_api(tmp_path) as api:
        orch, client = api.orch, api.client
        room = (await client.post("/api/rooms", json={"name": "team"})).json()
        room_headers = {"X-Room-Token": room["roomToken"]}
        refusals = 0

        async def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
            """A call that may be refused: then with a 4xx, and nothing changed."""
            nonlocal refusals
            before = await snapshot(orch)
            response = await client.request(method, url, **kwargs)
            assert response.status_code < 500, (url, kwargs, response.text)
            if response.status_code >= 400:
                refusals += 1
                assert await snapshot(orch) == before, (url, kwargs)
            return response

        for text in texts:
            # a description is data: stored exactly as sent (or refused: too long)
            response = await call("POST", "/api/sessions", json={"description": text})
            if response.status_code == 201:
                info = await orch.session_info(response.json()["sessionId"])
                assert info is not None
                assert info["description"] == text
            else:
                assert len(text) > 10_000
                assert response.json()["error"] == "Validation failed"
            # a session's name becomes a path: refused unless plain
            response = await call("POST", "/api/sessions", json={"description": "x", "name": text})
            assert response.status_code == 400
            # room names are data too
            response = await call("POST", "/api/rooms", json={"name": text})
            if response.status_code == 201:
                info = await orch.room_info(response.json()["roomId"])
                assert info is not None
                assert info["name"] == text
            # agent names are what others write after @: refused
            response = await call(
                "POST", f"/api/rooms/{room['roomId']}/agents", json={"name": text},
                headers=room_headers,
            )  # fmt: skip
            assert response.status_code == 400
            # messages: from, to, body
            await call(
                "POST", f"/api/rooms/{room['roomId']}/messages",
                json={"from": text, "body": text, "to": text}, headers=room_headers,
            )  # fmt: skip
            await call(
                "POST", f"/api/rooms/{room['roomId']}/messages",
                json={"from": "pat", "body": text}, headers=room_headers,
            )  # fmt: skip
            # an operator's sandbox: its project name becomes a path
            response = await call("POST", "/api/sandboxes", json={"projectName": text},
                                  headers=api.admin)  # fmt: skip
            assert response.status_code == 400
            # ids, codes and offsets in the URL
            code = quote(text[:1000], safe="")  # (an URL has a length limit)
            response = await call("GET", f"/api/join-room/{room['roomId']}/{code}")
            assert response.status_code == 404
            response = await call(
                "GET", f"/api/rooms/{room['roomId']}/events", params={"offset": text[:1000]},
                headers=room_headers,
            )  # fmt: skip
            assert response.status_code == 400
        assert refusals >= 4 * len(texts)
        no_marker(markers, api.root)

        # Now sessions that run: their sandboxes are made and written from these fields
        # (the project's CLAUDE.md, the room's skill files, the agent's environment).
        absolute, relative = texts[:10], texts[10:20]
        shell = [text for pair in zip(absolute, relative, strict=True) for text in pair]
        freeform = await client.post(
            "/api/sessions", json={"description": "\n".join(shell), "freeform": True}
        )
        assert freeform.status_code == 201
        gated = (await client.post("/api/sessions", json={"description": shell[0]})).json()
        answer = {
            "gate": "infra_config",
            "mode": "cloud",
            "databaseUrl": shell[1],
            "electricUrl": shell[2],
            "sourceId": shell[3],
            "secret": shell[4],
            "repoAccount": shell[5],
            "repoName": shell[6],
        }
        headers = {"Authorization": f"Bearer {gated['sessionToken']}"}
        response = await client.post(
            f"/api/sessions/{gated['sessionId']}/respond", json=answer, headers=headers
        )
        assert response.status_code == 200, response.text
        agent = await client.post(
            f"/api/rooms/{room['roomId']}/agents",
            json={
                "name": "bob",
                "role": shell[7],
                "customSkill": "\n".join(shell),
                "initialPrompt": shell[8],
            },
            headers=room_headers,
        )
        assert agent.status_code == 201, agent.text
        app = await client.post(
            "/api/rooms/create-app", json={"description": shell[9], "name": shell[10]}
        )
        assert app.status_code == 201, app.text
        for sid in (freeform.json()["sessionId"], gated["sessionId"], agent.json()["sessionId"]):
            await wait_until_idle(orch, sid)
            sandbox = await orch.sandbox_of(sid)
            assert sandbox is not None
        # what the agent was told is what was sent
        sandbox = await orch.sandbox_of(agent.json()["sessionId"])
        assert sandbox is not None
        skill = await sandbox.read_file(f"{sandbox.workdir}/.claude/skills/role/SKILL.md")
        assert "\n".join(shell).encode() in skill
        no_marker(markers, api.root)
        # and the check would see what a shell in a sandbox had left
        control = await sandbox.exec(["touch", "pwned-relative-control"], cwd=sandbox.workdir)
        assert control.ok, control.stderr
        with pytest.raises(AssertionError, match="a payload ran"):
            no_marker(markers, api.root)


async def test_traversal_in_file_content_is_refused(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        orch, client = api.orch, api.client
        response = await client.post(
            "/api/sessions", json={"description": "say done", "freeform": True}
        )
        sid, token = response.json()["sessionId"], response.json()["sessionToken"]
        await wait_until_idle(orch, sid)
        sandbox = await orch.sandbox_of(sid)
        assert sandbox is not None
        secret = tmp_path / "host-secret.txt"
        secret.write_text("HOST SECRET")
        os.symlink(secret, Path(sandbox.workdir) / "link")
        await sandbox.write_file(f"{sandbox.workdir}/ok.txt", b"fine")
        headers = {"Authorization": f"Bearer {token}"}
        url = f"/api/sessions/{sid}/file-content"
        assert (await client.get(url, params={"path": "ok.txt"}, headers=headers)).json() == {
            "content": "fine"
        }
        for path, status in (
            ("../../../../../etc/passwd", 403),
            ("/etc/passwd", 403),
            (str(secret), 403),
            ("ok.txt/../../x", 403),
            ("..", 403),
            ("link", 404),  # a symlink out of the sandbox: not followed
            ("ok.txt\x00../../etc/passwd", 403),
            ("%2e%2e/%2e%2e/etc/passwd", 404),
            ("", 400),
        ):
            response = await client.get(url, params={"path": path}, headers=headers)
            assert response.status_code == status, (path, response.text)
            assert "HOST SECRET" not in response.text
            assert "root:" not in response.text
        # a session's hook token or a room token reads nothing
        hook = {"Authorization": f"Bearer {orch.signer.token(Purpose.HOOK, sid)}"}
        assert (await client.get(url, params={"path": "ok.txt"}, headers=hook)).status_code == 401


PATH_PARTS = st.sampled_from(
    ["..", ".", "", "ok.txt", "link", "sub", "/", "etc", "passwd", "\x00", "%2e", "~", "\\", "é"]
)


def test_hypothesis_no_path_leaves_the_project(tmp_path: Path) -> None:
    """Any path built of traversal pieces: 200 only for a file of the project, else a
    4xx; never a byte of a file outside it. (A live server in a thread: hypothesis
    drives it with a plain client.)"""
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST SECRET")
    with live_server(Script.single(), tmp_path) as server:
        session = server.call(_started, server.orch)
        sid, token, workdir = session
        os.symlink(secret, Path(workdir) / "link")
        Path(workdir, "sub").mkdir()
        Path(workdir, "ok.txt").write_text("fine")
        Path(workdir).parent.parent.joinpath("outside.txt").write_text("HOST SECRET")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:

            @settings(
                max_examples=150,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            )
            @given(parts=st.lists(PATH_PARTS, min_size=1, max_size=8), absolute=st.booleans())
            def read(parts: list[str], absolute: bool) -> None:
                path = ("/" if absolute else "") + "/".join(parts)
                response = client.get(f"/api/sessions/{sid}/file-content", params={"path": path})
                assert response.status_code in (200, 400, 403, 404), (path, response.text)
                assert "HOST SECRET" not in response.text
                if response.status_code == 200:
                    resolved = os.path.normpath(os.path.join(workdir, path))
                    assert resolved.startswith(workdir + "/"), path
                    assert response.json() == {"content": "fine"}

            read()
        server.call(_deleted, server.orch, sid)


async def _started(orch: Orchestrator) -> tuple[str, str, str]:
    session = await orch.create_session("say done", freeform=True, api_key="reader")
    await wait_until_idle(orch, session.id)
    sandbox = await orch.sandbox_of(session.id)
    assert sandbox is not None
    return session.id, session.token, sandbox.workdir


async def _deleted(orch: Orchestrator, session_id: str) -> None:
    await orch.delete_session(session_id)


KEYS = st.sampled_from(["description", "name", "agent", "freeform", "x"])
VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.lists(st.text())


@given(st.dictionaries(KEYS, VALUES))
def test_hypothesis_the_validator_never_fails_open(body: dict[str, Any]) -> None:
    """Whatever the body, the create-session schema either refuses it with details or
    gives back only its own keys, each of the right type and size."""
    cleaned, errors = validate(CREATE_SESSION, body)
    if errors:
        assert all(": " in error for error in errors)
        return
    assert set(cleaned) <= {"description", "name", "freeform", "askTools", "agent", "apiKey"}
    assert isinstance(cleaned["description"], str)
    assert 1 <= len(cleaned["description"]) <= 10_000
    assert cleaned["description"].strip()
    assert cleaned.get("agent", "claude") in ("claude", "codex")
    if "name" in cleaned:
        assert isinstance(cleaned["name"], str)
        assert len(cleaned["name"]) <= 500
