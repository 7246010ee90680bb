"""What only the local provider does: its directory and marker file, bubblewrap's
isolation (read-only root, private /tmp, no network unless asked), paths kept inside
the sandbox, and processes left by an earlier server killed by remove."""

from __future__ import annotations

import json
import logging
import os
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from orchestrator.sandboxes import LocalProvider, LocalSandbox, SandboxError, SandboxSpec
from orchestrator.sandboxes.local import MARKER_FILE

from .conftest import bwrap_or_skip
from .helpers import read_until, running_with


@pytest.fixture(params=["bwrap", "plain"])
async def local(
    request: pytest.FixtureRequest, tmp_path: Path, server_id: str
) -> AsyncIterator[LocalProvider]:
    if request.param == "bwrap":
        bwrap_or_skip()
    async with LocalProvider(server_id, tmp_path / "root", bwrap=request.param == "bwrap") as made:
        yield made


async def test_layout_and_marker(
    local: LocalProvider, server_id: str, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = await local.create(
        SandboxSpec(session_id=session_id, project_name="proj", env={"KEY": "v"})
    )
    try:
        base = local.root / session_id
        assert sandbox.workdir == str(base / "workspace" / "proj")
        assert await trio.Path(sandbox.workdir).is_dir()
        marker = base / MARKER_FILE
        assert stat.S_IMODE(marker.stat().st_mode) == 0o600
        content = json.loads(marker.read_text())
        assert content["agent-orchestrator.server"] == server_id
        assert content["agent-orchestrator.session"] == session_id
        assert content["env"] == {"KEY": "v"}
        home = await sandbox.exec(["python3", "-c", "import os; print(os.environ['HOME'])"])
        assert home.stdout.decode().strip() == str(base / "home")
        # The server's own environment does not leak in.
        monkeypatch.setenv("AO_TEST_SERVER_SECRET", "secret")
        env = await sandbox.exec(["env"])
        assert b"AO_TEST_SERVER_SECRET" not in env.stdout
        assert b"KEY=v" in env.stdout
    finally:
        await sandbox.destroy()
    assert not (local.root / session_id).exists()


async def test_paths_outside_the_sandbox_are_refused(local: LocalProvider, session_id: str) -> None:
    sandbox = await local.create(SandboxSpec(session_id=session_id, project_name="proj"))
    try:
        with pytest.raises(SandboxError, match="outside the sandbox"):
            await sandbox.read_file("/etc/passwd")
        with pytest.raises(SandboxError, match="outside the sandbox"):
            await sandbox.write_file("../../../escaped", b"x")
        os.symlink("/etc", Path(sandbox.workdir, "link"))
        with pytest.raises(SandboxError, match="outside the sandbox"):
            await sandbox.read_file("link/passwd")
        with pytest.raises(SandboxError, match="outside the sandbox"):
            await sandbox.list_files("link")
        assert not (local.root.parent / "escaped").exists()
        # Its own home is inside.
        await sandbox.write_file(str(local.root / session_id / "home" / ".config"), b"ok")
    finally:
        await sandbox.destroy()


async def test_bubblewrap_isolates(tmp_path: Path, server_id: str, session_id: str) -> None:
    bwrap_or_skip()
    async with LocalProvider(server_id, tmp_path / "root", bwrap=True) as local:
        sandbox = await local.create(SandboxSpec(session_id=session_id, project_name="proj"))
        try:
            # The root is read-only (this root under /tmp is hidden by the private /tmp:
            # what is written there stays in that tmpfs).
            outside = f"/var/tmp/{uuid.uuid4().hex}"
            denied = await sandbox.exec(["sh", "-c", 'echo x > "$1"', "sh", outside])
            assert not denied.ok
            assert b"Read-only file system" in denied.stderr
            assert not await trio.Path(outside).exists()
            marker = local.root / session_id / MARKER_FILE
            before = marker.read_bytes()
            await sandbox.exec(["sh", "-c", 'echo x >> "$1"', "sh", str(marker)])
            assert marker.read_bytes() == before
            # /tmp is private to each process.
            name = f"/tmp/{uuid.uuid4().hex}"
            wrote = await sandbox.exec(["sh", "-c", 'echo x > "$1" && cat "$1"', "sh", name])
            assert wrote.stdout == b"x\n"
            assert not await trio.Path(name).exists()
            assert not (await sandbox.exec(["test", "-e", name])).ok
            # Its processes live in a pid namespace of their own.
            pids = await sandbox.exec(["python3", "-c", "import os; print(os.getpid())"])
            assert int(pids.stdout) < 10
        finally:
            await sandbox.destroy()


@pytest.mark.parametrize(("network", "reaches"), [("none", False), ("host", True)])
async def test_bubblewrap_shares_the_network_only_when_asked(
    tmp_path: Path, server_id: str, session_id: str, network: str, reaches: bool
) -> None:
    bwrap_or_skip()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    connect = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5).close()\n"
        "except OSError as exc:\n"
        "    sys.exit(str(exc))\n"
    )
    try:
        async with LocalProvider(server_id, tmp_path / "root", bwrap=True) as local:
            spec = SandboxSpec(session_id=session_id, project_name="p", network=network)  # type: ignore[arg-type]
            sandbox = await local.create(spec)
            try:
                result = await sandbox.exec(["python3", "-c", connect, str(port)])
                assert result.ok is reaches, result
            finally:
                await sandbox.destroy()
    finally:
        for listener in listeners:
            await listener.aclose()


async def test_without_bubblewrap_a_warning_is_logged(
    tmp_path: Path, server_id: str, session_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="orchestrator.sandboxes.local")
    async with LocalProvider(server_id, tmp_path / "root", bwrap=False) as local:
        sandbox = await local.create(SandboxSpec(session_id=session_id, project_name="p"))
        try:
            assert sandbox.bwrap is None
            assert (await sandbox.exec(["true"])).ok
        finally:
            await sandbox.destroy()
    assert any("without bubblewrap" in r.message for r in caplog.records)


async def test_bubblewrap_required_but_missing_is_an_error(
    tmp_path: Path, server_id: str, session_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    async with LocalProvider(server_id, tmp_path / "root", bwrap=True) as local:
        with pytest.raises(SandboxError, match="bubblewrap was asked for"):
            await local.create(SandboxSpec(session_id=session_id, project_name="p"))
        assert await local.list_owned() == []


async def test_remove_kills_what_an_earlier_server_left_running(
    local: LocalProvider, server_id: str, session_id: str
) -> None:
    sandbox = await local.create(SandboxSpec(session_id=session_id, project_name="p"))
    token = f"{uuid.uuid4().int % 10**6}.5"
    process = await sandbox.spawn(["sh", "-c", 'sleep "$1" & echo started; wait', "sh", token])
    assert await read_until(process.stdout(), b"started\n") == b"started\n"
    assert await running_with(sandbox, token) != []
    # A new server (same id and root) finds it and removes it, processes and all.
    async with LocalProvider(server_id, local.root, bwrap=sandbox.bwrap is not None) as later:
        [info] = await later.list_owned()
        assert info.session_id == session_id
        with trio.fail_after(15):
            await later.remove(info.sandbox_id)
        assert await running_with(sandbox, token) == []
        assert await later.list_owned() == []
    assert not sandbox.base.exists()
    await process.kill()  # reap it


async def test_create_refuses_an_existing_session_and_keeps_it(
    local: LocalProvider, session_id: str
) -> None:
    sandbox = await local.create(SandboxSpec(session_id=session_id, project_name="p"))
    try:
        await sandbox.write_file("kept", b"1")
        with pytest.raises(SandboxError, match="exists"):
            await local.create(SandboxSpec(session_id=session_id, project_name="other"))
        assert await sandbox.read_file("kept") == b"1"
        assert len(await local.list_owned()) == 1
    finally:
        await sandbox.destroy()


async def test_a_failed_create_leaves_nothing(tmp_path: Path, server_id: str) -> None:
    root = tmp_path / "not-a-directory"
    root.write_text("a file")
    async with LocalProvider(server_id, root, bwrap=False) as local:
        with pytest.raises(SandboxError, match="create a sandbox"):
            await local.create(SandboxSpec(session_id="s", project_name="p"))
        assert await local.list_owned() == []
    assert root.read_text() == "a file"


async def test_remove_refuses_what_is_not_this_servers(
    tmp_path: Path, server_id: str, session_id: str
) -> None:
    root = tmp_path / "root"
    async with (
        LocalProvider(server_id, root, bwrap=False) as ours,
        LocalProvider(f"{server_id}-other", root, bwrap=False) as theirs,
    ):
        sandbox: LocalSandbox = await theirs.create(
            SandboxSpec(session_id=session_id, project_name="p")
        )
        try:
            assert await ours.list_owned() == []
            assert await ours.attach(session_id) is None
            with pytest.raises(SandboxError, match="not this server's"):
                await ours.remove(sandbox.sandbox_id)
            with pytest.raises(SandboxError, match="not a sandbox under"):
                await ours.remove(str(tmp_path))
            assert await sandbox.is_alive()
        finally:
            await sandbox.destroy()
