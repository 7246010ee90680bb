"""Local sandboxes: a private directory per session, processes on this machine.

Layout under the provider's root::

    <root>/<session_id>/
        .agent-orchestrator.json   marker: server, session, project, network, env (0600)
        workspace/<project>/       the project directory (``workdir``)
        home/                      HOME of the sandbox's processes
        tmp/                       TMPDIR when there is no bubblewrap
        app.log                    output of the app (start_app)

With bubblewrap (``bwrap`` on PATH and working), every process runs with the whole
filesystem read-only, a private ``/tmp``, ``/dev`` and ``/proc``, only ``workspace`` and
``home`` writable, every namespace unshared (``--unshare-all``: no network but loopback
of its own) unless the spec's network is ``host`` or ``bridge`` (``--share-net``, so the
agent can reach a model endpoint on 127.0.0.1) and ``--new-session``. Not
``--die-with-parent``: it ties the process to the *thread* that started it, and trio
starts processes from worker threads that exit after 10 s idle (the agent was killed
then); processes are ended through their group and their environment markers instead.
Without bubblewrap processes are plain subprocesses that can do whatever this user can:
the provider logs a warning.

Processes get a small environment of their own (not the server's: it may hold
secrets): PATH, HOME, LANG, TMPDIR, then the spec's env and the call's. Each runs in a
new process group, which kill() signals; each carries markers in its environment
(``AGENT_ORCHESTRATOR_SANDBOX=<server>/<session>`` and a process marker) by which
destroy() and remove() find and kill whatever is left, even after a server restart.

Memory, pids and CPU limits of the spec are not enforced by this provider.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, final

import trio

from ._common import (
    APP_COMMAND,
    APP_MARKER,
    APP_PORT,
    LABEL_PROJECT,
    LABEL_SERVER,
    LABEL_SESSION,
    MAX_OUTPUT_BYTES,
    PROCESS_MARKER,
    Chunks,
    OutputBuffer,
    check_argv,
    check_timeout,
    merge_env,
    new_marker,
    poll_until,
    run_to_completion,
    stream_output,
    validate_id,
)
from .base import (
    AppStatus,
    ExecResult,
    Network,
    Process,
    Sandbox,
    SandboxError,
    SandboxInfo,
    SandboxProvider,
    SandboxSpec,
    validate_name,
)

__all__ = ["MARKER_FILE", "SANDBOX_MARKER", "LocalProcess", "LocalProvider", "LocalSandbox"]

logger = logging.getLogger(__name__)

MARKER_FILE = ".agent-orchestrator.json"
SANDBOX_MARKER = "AGENT_ORCHESTRATOR_SANDBOX"
KILL_TIMEOUT = 10.0
_APP_STOP_GRACE = 5.0
CLAUDE_IN_SANDBOX = "/tmp/.agent-orchestrator/claude"
CODEX_IN_SANDBOX = "/tmp/.agent-orchestrator/codex"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RECEIVE = 64 * 1024


def _marked(lines: Collection[str]) -> list[int]:
    """Pids of this machine's processes whose environment holds every one of ``lines``
    (``NAME=value``). Blocking."""
    wanted = {line.encode() for line in lines}
    found: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as environ:
                present = set(environ.read().split(b"\0"))
        except OSError:  # gone, or not ours
            continue
        if wanted <= present:
            found.append(int(name))
    return found


def _signal_marked(lines: Collection[str], signum: int) -> list[int]:
    """Send ``signum`` to the processes :func:`_marked` finds; their pids. Blocking."""
    pids = _marked(lines)
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass
    return pids


def _killpg(pgid: int, signum: int) -> None:
    """Signal a process group we started and have not reaped (so its id is still its
    own); a group already gone is fine."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _rmtree(path: Path) -> None:
    """Remove a tree, also where its processes took away write permission. Blocking."""

    def retry(fn: Callable[..., Any], name: str, _exc: Any) -> None:
        parent = os.path.dirname(name)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
        if os.path.isdir(name) and not os.path.islink(name):
            os.chmod(name, stat.S_IRWXU)
            shutil.rmtree(name, onerror=retry)
        else:
            fn(name)

    if path.exists():
        shutil.rmtree(path, onerror=retry)


def _read_marker(base: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((base / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _bwrap_works(bwrap: str) -> str:
    """Why bubblewrap cannot run here, or '' when it can. Blocking."""
    try:
        done = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if done.returncode == 0 else done.stderr.decode(errors="replace").strip()


@final
class LocalProvider(SandboxProvider):
    """Makes local sandboxes under ``root`` for ``server_id``.

    ``bwrap``: None uses bubblewrap when it is on PATH and works (else warns and runs
    plain subprocesses), True requires it, False never uses it.
    """

    runtime = "local"

    def __init__(
        self,
        server_id: str,
        root: Path,
        *,
        bwrap: bool | None = None,
        app_command: Sequence[str] = APP_COMMAND,
        app_port: int = APP_PORT,
        destroy_timeout: float = 30.0,
        claude_binary: Path | None = None,
        codex_binary: Path | None = None,
    ) -> None:
        self.server_id = validate_id(server_id, "server id")
        self.claude_binary = claude_binary
        self.codex_binary = codex_binary
        self.root = Path(root).absolute()
        self.app_command = check_argv(app_command)
        self.app_port = app_port
        self.destroy_timeout = check_timeout(destroy_timeout)
        self._want_bwrap = bwrap
        self._bwrap: str | None = None
        self._bwrap_checked = False
        self._check_lock = trio.Lock()

    async def bwrap(self) -> str | None:
        """The bubblewrap binary the sandboxes use, or None (checked once)."""
        async with self._check_lock:
            if not self._bwrap_checked:
                self._bwrap = await trio.to_thread.run_sync(self._find_bwrap)
                self._bwrap_checked = True
            return self._bwrap

    def _find_bwrap(self) -> str | None:
        if self._want_bwrap is False:
            logger.warning("local sandboxes run without bubblewrap (turned off): no isolation")
            return None
        found = shutil.which("bwrap")
        why = _bwrap_works(found) if found else "bwrap is not on PATH"
        if not why:
            return found
        if self._want_bwrap:
            raise SandboxError(f"bubblewrap was asked for but cannot run: {why}")
        logger.warning(
            "local sandboxes run WITHOUT isolation (%s): their processes can read and "
            "write whatever this user can; install bubblewrap (apt-get install bubblewrap)",
            why,
        )
        return None

    def _sandbox(self, base: Path, marker: Mapping[str, Any], bwrap: str | None) -> LocalSandbox:
        return LocalSandbox(
            base,
            server_id=self.server_id,
            session_id=str(marker[LABEL_SESSION]),
            project_name=str(marker[LABEL_PROJECT]),
            network=marker.get("network", "none"),
            env=marker.get("env") or {},
            bwrap=bwrap,
            app_command=self.app_command,
            app_port=self.app_port,
            destroy_timeout=self.destroy_timeout,
            claude_binary=self.claude_binary,
            codex_binary=self.codex_binary,
        )

    async def create(self, spec: SandboxSpec) -> LocalSandbox:
        session_id = validate_id(spec.session_id, "session id")
        bwrap = await self.bwrap()
        base = self.root / session_id
        marker = {
            LABEL_SERVER: self.server_id,
            LABEL_SESSION: session_id,
            LABEL_PROJECT: spec.project_name,
            "network": spec.network,
            "env": merge_env(spec.env),
        }

        def make() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                base.mkdir(mode=0o700)
            except FileExistsError:
                raise SandboxError(f"a sandbox of session {session_id} exists: {base}") from None
            try:
                descriptor = os.open(
                    base / MARKER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
                )
                with open(descriptor, "w") as file:
                    json.dump(marker, file)
                for part in (Path("workspace", spec.project_name), Path("home"), Path("tmp")):
                    (base / part).mkdir(parents=True)
            except BaseException:
                _rmtree(base)
                raise

        try:
            await trio.to_thread.run_sync(make)
        except OSError as exc:
            raise SandboxError(f"create a sandbox in {base}: {exc}") from exc
        return self._sandbox(base, marker, bwrap)

    def _owned(self, base: Path) -> dict[str, Any] | None:
        marker = _read_marker(base)
        if marker is None or marker.get(LABEL_SERVER) != self.server_id:
            return None
        return marker

    async def attach(self, session_id: str) -> LocalSandbox | None:
        validate_id(session_id, "session id")
        base = self.root / session_id
        marker = await trio.to_thread.run_sync(self._owned, base)
        if marker is None or not (base / "workspace").is_dir():
            return None
        return self._sandbox(base, marker, await self.bwrap())

    async def list_owned(self) -> list[SandboxInfo]:
        def find() -> list[SandboxInfo]:
            if not self.root.is_dir():
                return []
            found = []
            for base in sorted(self.root.iterdir()):
                marker = self._owned(base)
                if marker is not None:
                    found.append(
                        SandboxInfo(
                            sandbox_id=str(base),
                            session_id=str(marker.get(LABEL_SESSION, "")),
                            runtime=self.runtime,
                            alive=(base / "workspace").is_dir(),
                        )
                    )
            return found

        return await trio.to_thread.run_sync(find)

    async def remove(self, sandbox_id: str) -> None:
        """``sandbox_id``: the sandbox's directory, as ``list_owned`` gives it (or its
        session id). Kills what still runs in it, then deletes it."""
        base = Path(sandbox_id) if os.sep in sandbox_id else self.root / sandbox_id
        if base.parent.resolve() != self.root.resolve():
            raise SandboxError(f"{sandbox_id} is not a sandbox under {self.root}")
        validate_name(base.name, "sandbox directory")
        if not base.exists():
            return
        marker = await trio.to_thread.run_sync(self._owned, base)
        if marker is None:
            raise SandboxError(f"{base} is not this server's sandbox")
        await _teardown(
            base, f"{SANDBOX_MARKER}={self.server_id}/{base.name}", (), self.destroy_timeout
        )


async def _teardown(
    base: Path, marker_line: str, processes: Collection[LocalProcess], timeout: float
) -> None:
    """Kill every process marked ``marker_line`` (and reap ours), then delete ``base``;
    shielded, within ``timeout``."""
    with trio.CancelScope(shield=True), trio.move_on_after(timeout) as bound:
        await trio.to_thread.run_sync(_signal_marked, (marker_line,), signal.SIGKILL)
        for process in list(processes):
            await process.kill()
        # a signal is delivered, not awaited: gone means gone from /proc (a zombie
        # shows no marker), checked again until so
        while await trio.to_thread.run_sync(_signal_marked, (marker_line,), signal.SIGKILL):  # noqa: ASYNC110 - /proc has no event to wait on
            await trio.sleep(0.02)
        await trio.to_thread.run_sync(_rmtree, base, abandon_on_cancel=True)
    if bound.cancelled_caught:
        raise SandboxError(f"removing {base} took over {timeout} s")


@final
class LocalSandbox(Sandbox):
    """One session's directory. Made by :class:`LocalProvider`."""

    runtime = "local"

    def __init__(
        self,
        base: Path,
        *,
        server_id: str,
        session_id: str,
        project_name: str,
        network: Network = "none",
        env: Mapping[str, str] | None = None,
        bwrap: str | None = None,
        app_command: Sequence[str] = APP_COMMAND,
        app_port: int = APP_PORT,
        destroy_timeout: float = 30.0,
        claude_binary: Path | None = None,
        codex_binary: Path | None = None,
    ) -> None:
        self.base = base
        self.sandbox_id = str(base)
        # Under bubblewrap the binaries are bound read-only into the private /tmp (the
        # host path may itself be under /tmp, hidden there); without it, the host path.
        self._claude_binary = claude_binary
        if claude_binary is not None:
            self.claude_path = CLAUDE_IN_SANDBOX if bwrap else str(claude_binary)
        self._codex_binary = codex_binary
        if codex_binary is not None:
            self.codex_path = CODEX_IN_SANDBOX if bwrap else str(codex_binary)
        self.session_id = session_id
        self.project_name = project_name
        self.workdir = str(base / "workspace" / project_name)
        self.network = network
        self.bwrap = bwrap
        self._home = base / "home"
        self._marker_value = f"{server_id}/{session_id}"
        self._marker_line = f"{SANDBOX_MARKER}={self._marker_value}"
        self._env = merge_env(
            {
                "PATH": os.environ.get("PATH") or _DEFAULT_PATH,
                "HOME": str(self._home),
                "LANG": "C.UTF-8",
                "TMPDIR": "/tmp" if bwrap else str(base / "tmp"),
            },
            env,
        )
        self._app_command = list(app_command)
        self._app_port = app_port
        self._app: trio.Process | None = None
        self._destroy_timeout = destroy_timeout
        self._processes: set[LocalProcess] = set()
        self._destroyed = False

    def __repr__(self) -> str:
        return f"<LocalSandbox {self.session_id} {self.base}>"

    def _path(self, path: str) -> Path:
        """A path inside this sandbox (relative ones from ``workdir``), symlinks
        resolved; anything outside is refused."""
        if not path or "\0" in path:
            raise SandboxError(f"invalid path {path!r}")
        resolved = Path(os.path.realpath(os.path.join(self.workdir, path)))
        if not resolved.is_relative_to(os.path.realpath(self.base)):
            raise SandboxError(f"{path} is outside the sandbox {self.base}")
        return resolved

    def _check(self) -> None:
        if self._destroyed:
            raise SandboxError(f"sandbox {self.session_id} was destroyed")

    # -- processes -----------------------------------------------------------------

    def _command(self, argv: list[str], cwd: str) -> list[str]:
        if self.bwrap is None:
            return argv
        writable = [str(self._home), str(self.base / "workspace")]
        return [
            self.bwrap,
            *("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"),
            *(arg for path in writable for arg in ("--bind", path, path)),
            *(
                arg
                for binary, target in (
                    (self._claude_binary, CLAUDE_IN_SANDBOX),
                    (self._codex_binary, CODEX_IN_SANDBOX),
                )
                if binary is not None
                for arg in ("--ro-bind", str(binary), target)
            ),
            "--unshare-all",
            *(["--share-net"] if self.network != "none" else []),
            *("--new-session", "--chdir", cwd, "--"),
            *argv,
        ]

    async def _open(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None,
        env: Mapping[str, str] | None,
        marker: str,
        stdin: int,
        stdout: int,
        stderr: int,
    ) -> trio.Process:
        self._check()
        args = check_argv(argv)
        workdir = str(self._path(cwd)) if cwd else self.workdir
        environment = merge_env(
            self._env, env, {PROCESS_MARKER: marker, SANDBOX_MARKER: self._marker_value}
        )
        try:
            return await trio.lowlevel.open_process(
                self._command(args, workdir),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=workdir,
                env=environment,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"start {args[0]!r}: {exc}") from exc

    async def _spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None,
        env: Mapping[str, str] | None,
        stdin: int = subprocess.PIPE,
        stderr: int = subprocess.PIPE,
    ) -> LocalProcess:
        marker = new_marker()
        process = await self._open(
            argv,
            cwd=cwd,
            env=env,
            marker=marker,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        return LocalProcess(process, f"{PROCESS_MARKER}={marker}", self._processes)

    async def exec(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float = 60.0,
    ) -> ExecResult:
        check_timeout(timeout)
        process = await self._spawn(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE
        )

        async def drain(chunks: AsyncIterator[bytes], into: OutputBuffer) -> None:
            async for chunk in chunks:
                into.add(chunk)

        async def collect(out: OutputBuffer, err: OutputBuffer) -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, process.stdout(), out)
                nursery.start_soon(drain, process.stderr(), err)

        return await run_to_completion(
            process, repr(argv[0]), stdin=stdin, timeout=timeout, collect=collect
        )

    def exec_stream(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        args = check_argv(argv)
        start = partial(
            self._spawn, args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        return stream_output(start, repr(args[0]))

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LocalProcess:
        return await self._spawn(argv, cwd=cwd, env=env)

    # -- files ---------------------------------------------------------------------

    async def _files(self, what: str, fn: Callable[[], Any]) -> Any:
        self._check()
        try:
            return await trio.to_thread.run_sync(fn)
        except OSError as exc:
            raise SandboxError(f"{what}: {exc.strerror or exc}") from exc

    async def read_file(self, path: str) -> bytes:
        target = self._path(path)

        def read() -> bytes:
            with open(target, "rb") as file:
                if os.fstat(file.fileno()).st_size > MAX_OUTPUT_BYTES:
                    raise SandboxError(f"read {target}: over {MAX_OUTPUT_BYTES} bytes")
                return file.read()

        data: bytes = await self._files(f"read {target}", read)
        return data

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o644) -> None:
        """Atomically (a temporary file renamed into place), parents made."""
        target = self._path(path)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".write-")
            try:
                with open(descriptor, "wb") as file:
                    file.write(data)
                    os.fchmod(file.fileno(), mode & 0o7777)
                os.replace(temporary, target)
            except BaseException:
                os.unlink(temporary)
                raise

        await self._files(f"write {target}", write)

    async def list_files(self, directory: str) -> list[str]:
        top = self._path(directory)

        def walk() -> list[str]:
            found: list[str] = []
            pending = [top]
            while pending:
                with os.scandir(pending.pop()) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(Path(entry.path))
                        elif entry.is_file(follow_symlinks=False):
                            found.append(entry.path)
            return sorted(found)

        files: list[str] = await self._files(f"list {top}", walk)
        return files

    # -- the app -------------------------------------------------------------------

    def _app_lines(self) -> tuple[str, str]:
        return (f"{PROCESS_MARKER}={APP_MARKER}", self._marker_line)

    async def start_app(self) -> AppStatus:
        """Run the app command (default ``npm run dev``) in the project directory with
        ``PORT`` set, output to ``app.log``. Refused without a package.json."""
        status = await self.app_status()
        if status.running:
            return status
        package = Path(self.workdir, "package.json")

        def open_log() -> int:
            if not package.is_file():
                raise SandboxError(f"no app to start: {package} does not exist")
            return os.open(self.base / "app.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

        log = await trio.to_thread.run_sync(open_log)
        try:
            self._app = await self._open(
                self._app_command,
                cwd=None,
                env={"PORT": str(self._app_port)},
                marker=APP_MARKER,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            os.close(log)
        return AppStatus(running=True, port=self._app_port)

    async def _app_running(self, app: trio.Process | None) -> bool:
        if app is not None and app.returncode is None:
            return True
        lines: Collection[str] = self._app_lines()
        return bool(await trio.to_thread.run_sync(_marked, lines))

    async def stop_app(self) -> None:
        """SIGTERM to the app's process group and to whatever carries its marker,
        again at each look (about once a second) so that what came up meanwhile gets it
        too; SIGKILL after 5 s. Under bubblewrap, once bwrap itself is gone, what is
        left gets SIGKILL at once: the sandbox's init ignores a SIGTERM from outside
        (a stop right after the start can find it waiting for its dead parent)."""
        app, self._app = self._app, None
        lines: Collection[str] = self._app_lines()
        with trio.CancelScope(shield=True):
            for signum, grace in (
                (signal.SIGTERM, _APP_STOP_GRACE),
                (signal.SIGKILL, KILL_TIMEOUT),
            ):

                async def signalled_and_gone(signum: int = signum) -> bool:
                    if app is not None and app.returncode is None:
                        _killpg(app.pid, signum)
                    elif self.bwrap is not None:
                        signum = signal.SIGKILL
                    pids = await trio.to_thread.run_sync(_signal_marked, lines, signum)
                    return not pids and (app is None or app.returncode is not None)

                with trio.move_on_after(grace):
                    await poll_until(signalled_and_gone, first=0.02, most=1.0)
                    break
            if app is not None:
                await app.wait()

    async def app_status(self) -> AppStatus:
        if await self._app_running(self._app):
            return AppStatus(running=True, port=self._app_port)
        return AppStatus(running=False)

    # -- lifetime ------------------------------------------------------------------

    async def is_alive(self) -> bool:
        return not self._destroyed and (self.base / MARKER_FILE).is_file()

    async def destroy(self) -> None:
        """Kill everything the sandbox started (by group, and by marker), then delete
        its directory. Shielded; bounded by the provider's ``destroy_timeout``."""
        self._destroyed = True
        if self._app is not None:
            await self.stop_app()
        await _teardown(self.base, self._marker_line, self._processes, self._destroy_timeout)


@final
class LocalProcess(Process):
    """A process of a local sandbox with pipes attached. Made by
    :meth:`LocalSandbox.spawn`."""

    def __init__(
        self, process: trio.Process, marker_line: str, registry: set[LocalProcess]
    ) -> None:
        self._process = process
        self._marker_line = marker_line
        self._registry = registry
        self._write_lock = trio.Lock()
        registry.add(self)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def write(self, data: bytes) -> None:
        stdin = self._process.stdin
        async with self._write_lock:
            if stdin is None:
                raise SandboxError("stdin is not attached")
            try:
                await stdin.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise SandboxError(f"the process no longer reads its stdin ({exc})") from None

    async def close_stdin(self) -> None:
        async with self._write_lock:
            if self._process.stdin is not None:
                await self._process.stdin.aclose()

    @staticmethod
    async def _receive(stream: trio.abc.ReceiveStream | None) -> bytes | None:
        if stream is None:
            return None
        try:
            chunk = await stream.receive_some(_RECEIVE)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return None
        return bytes(chunk) or None

    def output(self) -> Chunks:
        """Its stdout (where exec_stream's process also writes its stderr)."""
        return self.stdout()

    def stdout(self) -> Chunks:
        return Chunks(partial(self._receive, self._process.stdout))

    def stderr(self) -> Chunks:
        return Chunks(partial(self._receive, self._process.stderr))

    async def wait(self) -> int:
        code = await self._process.wait()
        self._registry.discard(self)
        return code

    async def kill(self) -> None:
        """SIGKILL its process group and everything carrying its marker, then reap it
        and close its pipes; shielded, at most 10 s (then SandboxError)."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(KILL_TIMEOUT) as bound:
                if self._process.returncode is None:  # not reaped: the group id is its own
                    _killpg(self._process.pid, signal.SIGKILL)
                await trio.to_thread.run_sync(_signal_marked, (self._marker_line,), signal.SIGKILL)
                await self.wait()
            for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
                if stream is not None:
                    await stream.aclose()
        if bound.cancelled_caught:
            raise SandboxError(
                f"process {self._process.pid} still runs {KILL_TIMEOUT} s after kill"
            )
