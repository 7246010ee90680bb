"""The Sandbox interface, the same on every provider: Docker on the real engine, local
with bubblewrap and local without. Commands are argument lists whose text arrives as
it is; files round-trip; processes have stdin and stdout attached and are really gone
once killed."""

from __future__ import annotations

import json
import posixpath
import uuid

import pytest
import trio

from orchestrator.sandboxes import (
    LocalSandbox,
    Sandbox,
    SandboxError,
    SandboxProvider,
    SandboxSpec,
)

from .helpers import UPPER, echo_round_trip, read_all, read_until, running_with

TRICKY = [
    "plain",
    "with space",
    'it\'s "quoted"',
    "$(touch /tmp/pwned)",
    "`id`",
    "a;b && c | d > e",
    "line one\nline two",
    "*",
    "$HOME",
    "-n",
    "",
]


async def test_exec_passes_each_argument_as_it_is(sandbox: Sandbox) -> None:
    echoed = await sandbox.exec(["echo", "a 'b' $(id)\nc"])
    assert echoed.ok
    assert echoed.stdout == b"a 'b' $(id)\nc\n"
    result = await sandbox.exec(
        ["python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *TRICKY]
    )
    assert result.ok, result
    assert json.loads(result.stdout) == TRICKY
    assert result.stderr == b""
    listed = await sandbox.exec(["ls", "-a", posixpath.dirname(sandbox.workdir)])
    assert b"pwned" not in listed.stdout


async def test_exec_runs_in_the_project_directory_with_env_stdin_and_exit_code(
    sandbox: Sandbox,
) -> None:
    where = await sandbox.exec(["pwd"])
    assert where.stdout.decode().strip() == sandbox.workdir
    env = await sandbox.exec(
        ["python3", "-c", "import os; print(os.environ['SPEC_VAR'], os.environ['CALL_VAR'])"],
        env={"CALL_VAR": "it's $(here)"},
    )
    assert env.stdout == b"from spec it's $(here)\n"
    failed = await sandbox.exec(
        ["python3", "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"]
    )
    assert (failed.exit_code, failed.ok) == (3, False)
    assert (failed.stdout, failed.stderr) == (b"out\n", b"err\n")
    # A large stdin and as large an output: neither side stalls the other.
    data = bytes(range(256)) * 2048
    echoed = await sandbox.exec(["cat"], stdin=data)
    assert echoed.stdout == data
    await sandbox.write_file("sub dir/x", b"")
    inside = await sandbox.exec(["pwd"], cwd="sub dir")
    assert inside.stdout.decode().strip() == f"{sandbox.workdir}/sub dir"


async def test_exec_refuses_a_string_command(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="list of arguments"):
        await sandbox.exec("echo hi")
    with pytest.raises(SandboxError, match="empty"):
        await sandbox.exec([])


async def test_a_command_past_its_timeout_is_killed(sandbox: Sandbox) -> None:
    token = f"{uuid.uuid4().int % 10**6}.125"  # a sleep this long is ours alone
    with trio.fail_after(15):
        with pytest.raises(SandboxError, match=r"did not finish within 0\.5 s"):
            await sandbox.exec(["sleep", token], timeout=0.5)
    assert await running_with(sandbox, token) == []


async def test_exec_stream_yields_output_as_it_comes(sandbox: Sandbox) -> None:
    script = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print(i, flush=True)\n"
        "    time.sleep(0.05)\n"
        "print('e', file=sys.stderr)\n"
    )
    output = await read_all(sandbox.exec_stream(["python3", "-c", script]))
    assert sorted(output.split()) == [b"0", b"1", b"2", b"e"]
    with pytest.raises(SandboxError, match="exited with 4"):
        await read_all(sandbox.exec_stream(["python3", "-c", "raise SystemExit(4)"]))


async def test_files_round_trip(sandbox: Sandbox) -> None:
    data = b"\x00binary\nline\r\n\xff" * 100
    path = f"{sandbox.workdir}/a dir/with spaces/file name.txt"
    await sandbox.write_file(path, data)
    await sandbox.write_file("relative.sh", b"#!/bin/sh\necho run\n", mode=0o755)
    await sandbox.write_file("a dir/second", b"two")
    await sandbox.write_file("a dir/second", b"replaced")
    assert await sandbox.read_file(path) == data
    assert await sandbox.read_file("a dir/second") == b"replaced"
    assert await sandbox.list_files(sandbox.workdir) == sorted(
        [path, f"{sandbox.workdir}/a dir/second", f"{sandbox.workdir}/relative.sh"]
    )
    assert await sandbox.list_files("a dir/with spaces") == [path]
    run = await sandbox.exec([f"{sandbox.workdir}/relative.sh"])
    assert run.stdout == b"run\n"
    # The agent owns what was written, the directories made on the way too, and can
    # change it.
    owned = await sandbox.exec(["stat", "-c", "%u %a %n", path, posixpath.dirname(path)])
    expected_uid = str(await _agent_uid(sandbox))
    assert [line.split(" ", 1)[0] for line in owned.stdout.decode().splitlines()] == [
        expected_uid,
        expected_uid,
    ]
    touched = await sandbox.exec(["touch", f"{posixpath.dirname(path)}/new"])
    assert touched.ok, touched


async def _agent_uid(sandbox: Sandbox) -> int:
    result = await sandbox.exec(["id", "-u"])
    return int(result.stdout)


async def test_reading_what_is_not_there_raises(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="missing"):
        await sandbox.read_file("missing")
    with pytest.raises(SandboxError, match="nowhere"):
        await sandbox.list_files("nowhere")


async def test_spawn_cat_echoes_lines_until_stdin_closes(sandbox: Sandbox) -> None:
    process = await sandbox.spawn(["cat"])
    async with process:
        await echo_round_trip(process, b"first line\n", b"first line\n")
        await echo_round_trip(process, b"it's $(not run)\n", b"it's $(not run)\n")
        await process.close_stdin()
        with trio.fail_after(10):
            assert await process.wait() == 0
        with pytest.raises(SandboxError):
            await process.write(b"too late\n")


async def test_a_killed_process_and_its_children_are_gone(sandbox: Sandbox) -> None:
    token = uuid.uuid4().hex
    process = await sandbox.spawn(["python3", "-c", UPPER, token], env={"CALL_VAR": "x"})
    await echo_round_trip(process, b"hello\n", b"HELLO\n")
    await echo_round_trip(process, b"again\n", b"AGAIN\n")
    child = f"{uuid.uuid4().int % 10**6}.25"
    parent = await sandbox.spawn(["sh", "-c", 'sleep "$1" & echo started; wait', "sh", child])
    assert await read_until(parent.stdout(), b"started\n") == b"started\n"
    assert await running_with(sandbox, token) != []
    assert await running_with(sandbox, child) != []
    with trio.fail_after(15):
        await process.kill()
        await parent.kill()
    assert await running_with(sandbox, token) == []
    assert await running_with(sandbox, child) == []
    await process.kill()  # idempotent
    assert await process.wait() != 0


async def test_stdout_and_stderr_are_read_apart_at_the_same_time(sandbox: Sandbox) -> None:
    script = (
        "import sys\n"
        "for i in range(200):\n"
        "    print(f'o{i}', flush=True)\n"
        "    print(f'e{i}', file=sys.stderr, flush=True)\n"
    )
    process = await sandbox.spawn(["python3", "-c", script])
    results: dict[str, bytes] = {}

    async def drain(name: str) -> None:
        results[name] = await read_all(getattr(process, name)())

    async with process:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, "stdout")
            nursery.start_soon(drain, "stderr")
        assert await process.wait() == 0
    assert results["stdout"].split() == [f"o{i}".encode() for i in range(200)]
    assert results["stderr"].split() == [f"e{i}".encode() for i in range(200)]


async def test_the_app_starts_reports_and_stops(sandbox: Sandbox) -> None:
    assert not (await sandbox.app_status()).running
    with pytest.raises(SandboxError, match=r"package\.json"):
        await sandbox.start_app()
    await sandbox.write_file("package.json", b"{}")
    started = await sandbox.start_app()
    assert started.running
    assert (await sandbox.app_status()).running
    with trio.fail_after(20):
        await sandbox.stop_app()
    assert not (await sandbox.app_status()).running
    await sandbox.stop_app()  # nothing to stop


async def test_destroy_removes_everything_and_is_idempotent(
    provider: SandboxProvider, session_id: str
) -> None:
    sandbox = await provider.create(SandboxSpec(session_id=session_id, project_name="p"))
    process = await sandbox.spawn(["cat"])  # left running on purpose
    assert await sandbox.is_alive()
    assert [info.session_id for info in await provider.list_owned()] == [session_id]
    with trio.fail_after(30):
        await sandbox.destroy()
    assert not await sandbox.is_alive()
    assert await provider.list_owned() == []
    assert await provider.attach(session_id) is None
    await sandbox.destroy()
    with trio.fail_after(15):
        await process.kill()
    if isinstance(sandbox, LocalSandbox):
        assert not sandbox.base.exists()


async def test_destroy_completes_when_its_caller_is_cancelled(
    provider: SandboxProvider, session_id: str
) -> None:
    sandbox = await provider.create(SandboxSpec(session_id=session_id, project_name="p"))
    with trio.CancelScope() as scope:
        scope.cancel()
        await sandbox.destroy()
    assert not await sandbox.is_alive()
    assert await provider.list_owned() == []


async def test_owned_sandboxes_are_listed_attached_and_removed(
    provider: SandboxProvider, session_id: str
) -> None:
    sandbox = await provider.create(SandboxSpec(session_id=session_id, project_name="p"))
    try:
        [info] = await provider.list_owned()
        assert (info.sandbox_id, info.session_id, info.alive) == (
            sandbox.sandbox_id,
            session_id,
            True,
        )
        assert info.runtime == provider.runtime
        attached = await provider.attach(session_id)
        assert attached is not None
        assert (attached.sandbox_id, attached.workdir) == (sandbox.sandbox_id, sandbox.workdir)
        await sandbox.write_file("kept", b"still here")
        assert await attached.read_file("kept") == b"still here"
        assert await provider.attach("another-session") is None
        await provider.remove(info.sandbox_id)
        assert await provider.list_owned() == []
        assert not await sandbox.is_alive()
        await provider.remove(info.sandbox_id)  # idempotent
    finally:
        await sandbox.destroy()


async def test_invalid_ids_are_refused(provider: SandboxProvider) -> None:
    with pytest.raises(SandboxError, match="session id"):
        await provider.create(SandboxSpec(session_id="../escape", project_name="p"))
    with pytest.raises(ValueError, match="project name"):
        SandboxSpec(session_id="s", project_name="a/b")
    assert await provider.list_owned() == []
