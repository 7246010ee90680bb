"""The web UI under test: the HTTP API (which serves the UI) run by ``trio.run`` in a
background thread, with real Claude Code CLIs in local sandboxes against the scripted
model, and Debian's chromium (never a downloaded browser) driven by Playwright's sync
API from the test's own thread.

Without chromium or the ``playwright`` package the browser tests skip, or fail in CI
(``CI=true``)."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import attrs
import pytest
import trio

from orchestrator.api.app import create_api
from orchestrator.config import Settings
from orchestrator.core import Orchestrator, bundled_claude_cli
from orchestrator.models import ModelServer, Script, open_model_server
from orchestrator.sandboxes.local import LocalProvider
from transport import serve

from ..docker_support import in_ci

T = TypeVar("T")

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def chromium() -> Path:
    """Debian's chromium (``scripts/chromium`` installs it)."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing: run `bash scripts/chromium` (as root)")
    return CHROMIUM


@attrs.define
class LiveServer:
    """The running API: its base URL, the scripted model server and the orchestrator
    (both live in the server's thread: reach them through :meth:`call`)."""

    url: str
    models: ModelServer
    orch: Orchestrator
    token: trio.lowlevel.TrioToken
    scope: trio.CancelScope

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` in the server's trio thread."""
        return trio.from_thread.run(fn, *args, trio_token=self.token)


@contextlib.contextmanager
def live_server(script: Script, data_dir: Path) -> Iterator[LiveServer]:
    """The API on 127.0.0.1 (a free port), local sandboxes, no server API key (each
    agent presents its own key, which names its script). On exit: the server stops,
    the orchestrator ends every session and no sandbox is left."""
    started: queue.Queue[LiveServer | BaseException] = queue.Queue()
    failures: list[BaseException] = []

    async def main() -> None:
        provider = LocalProvider(
            "test-web", data_dir / "sandboxes", claude_binary=bundled_claude_cli()
        )
        async with open_model_server(script) as models:
            settings = Settings(data_dir=data_dir / "data", anthropic_base_url=models.base_url)
            async with Orchestrator(settings, provider=provider) as orch:
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as nursery:
                        binds: list[str] = await nursery.start(
                            partial(serve, create_api(orch), host="127.0.0.1", port=0)
                        )
                        token = trio.lowlevel.current_trio_token()
                        started.put(LiveServer(binds[0], models, orch, token, scope))
        left = await provider.list_owned()
        if left:
            raise AssertionError(f"sandboxes left behind: {left}")

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            failures.append(exc)
            started.put(exc)

    thread = threading.Thread(target=run, name="web-ui-server", daemon=True)
    thread.start()
    first = started.get(timeout=START_TIMEOUT)
    if isinstance(first, BaseException):
        thread.join(STOP_TIMEOUT)
        raise first
    try:
        yield first
    finally:
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(first.scope.cancel, trio_token=first.token)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the server thread did not stop within {STOP_TIMEOUT:.0f} s")
        if failures:
            raise failures[0]


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """A full-page PNG, kept under ``test-artifacts/web/`` and the test's tmp dir."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    (tmp_path / f"{name}.png").write_bytes(target.read_bytes())
    return target


class DroppingProxy:
    """A TCP proxy in front of the server that can cut every connection through it at
    once (:meth:`drop`), as a flaky network would: the browser sees its event streams
    break mid-response and has to reconnect."""

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("http://").partition(":")
        self._target = (host, int(port.rstrip("/")))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self.connections = 0
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, name="web-ui-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self._target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._cut(source, sink)

    def _cut(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._open.discard(sock)

    def drop(self) -> int:
        """Cut every open connection; how many sockets were cut."""
        with self._lock:
            sockets = list(self._open)
        self._cut(*sockets)
        return len(sockets)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._listener.close()
        self.drop()
        self._thread.join(5)
