"""Our Durable Streams server as a real process (``python -m orchestrator streams``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(rb"listening on (http://\S+)")


@attrs.define
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush: what a crash is."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _READY.search(log.read_bytes())
        if match:
            return match.group(1).decode()
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"the server did not start within {timeout} s:\n{log.read_text()}")


@contextlib.contextmanager
def streams_server(
    log_dir: Path,
    *,
    data_dir: Path | None = None,
    long_poll_timeout: float = 0.5,
    extra: Sequence[str] = (),
    port: int = 0,
) -> Iterator[ServerProcess]:
    """Start ``orchestrator streams`` on 127.0.0.1 (the on-disk store in ``data_dir``,
    or in memory) and stop it on exit, whatever happens."""
    store = ["--data-dir", str(data_dir)] if data_dir is not None else ["--memory"]
    args = [
        sys.executable,
        "-m",
        "orchestrator",
        "streams",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--long-poll-timeout",
        str(long_poll_timeout),
        *store,
        *extra,
    ]
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"streams-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ}
        )
    try:
        yield ServerProcess(proc, _wait_ready(proc, log, 30), log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
