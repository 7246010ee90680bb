"""Node side of the Durable Streams tests: the pinned npm packages in ``tests/node``,
the npm reference server (``@durable-streams/server``) and the official conformance
suite (``@durable-streams/server-conformance-tests``, run by vitest).

Without ``node`` and ``npm`` on PATH the tests that need them skip, or fail in CI
(``CI=true``). From the command line::

    python -m tests.node_support conformance http://127.0.0.1:4437 [--subscriptions]

prints each failing test's full name and ends with ``N passed, N failed, N skipped``;
the exit status is 0 when every failure is listed in ``tests/conformance/expected-failures.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs
import pytest

from .docker_support import in_ci

NODE_DIR = Path(__file__).resolve().parent / "node"
EXPECTED_FAILURES_FILE = Path(__file__).resolve().parent / "conformance" / "expected-failures.txt"
_STAMP_NAME = ".agent-orchestrator-install-stamp"
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0


class NodeSetupError(RuntimeError):
    """npm could not install the packages, or a Node process did not start."""


class ConformanceError(RuntimeError):
    """vitest ran but left no readable JSON report."""


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        _unavailable(f"`{name}` is not on PATH; the Durable Streams tests need Node >= 20")
    return path


def _install_stamp() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((NODE_DIR / name).read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """One npm install at a time for this checkout, across processes. (The lock file
    lives outside node_modules, which ``npm ci`` deletes.)"""
    key = hashlib.sha256(str(NODE_DIR).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"ds-npm-install-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _npm(npm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [npm, *args, "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def ensure_node_modules() -> Path:
    """``tests/node/node_modules``, installed with ``npm ci`` (falling back to
    ``npm install``) unless it already matches package.json and package-lock.json."""
    _tool("node")
    npm = _tool("npm")
    modules = NODE_DIR / "node_modules"
    stamp = modules / _STAMP_NAME
    with _install_lock():
        if stamp.is_file() and stamp.read_text().strip() == _install_stamp():
            return modules
        started = time.monotonic()
        done = _npm(npm, "ci")
        if done.returncode != 0:
            done = _npm(npm, "install")
        if done.returncode != 0:
            raise NodeSetupError(
                f"npm ci and npm install failed in {NODE_DIR} (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        stamp.write_text(_install_stamp() + "\n")
        print(f"npm installed {modules} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return modules


def _stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM to the process group the child leads, SIGKILL after STOP_GRACE_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_GRACE_S)
    proc.wait()


def _wait_ready(proc: subprocess.Popen[Any], log: Path) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return line.removeprefix("READY ").strip()
        if proc.poll() is not None:
            raise NodeSetupError(
                f"the reference server exited with {proc.returncode} before it was ready:\n"
                + log.read_text(errors="replace")
            )
        if time.monotonic() > deadline:
            raise NodeSetupError(
                f"the reference server printed no READY line in {READY_TIMEOUT_S:.0f} s:\n"
                + log.read_text(errors="replace")
            )
        time.sleep(0.05)


@contextlib.contextmanager
def reference_server(
    long_poll_ms: int = 500, data_dir: Path | None = None, *, webhooks: bool = False
) -> Iterator[str]:
    """Run the npm reference server on 127.0.0.1 (a free port) and yield its base URL.

    ``data_dir`` selects the file-backed (LMDB) store; ``webhooks`` allows webhook
    subscriptions. The process is stopped on exit, whatever happens; should this
    process die first, the server sees its stdin close and stops itself."""
    ensure_node_modules()
    env = {
        **os.environ,
        "PORT": "0",
        "LONGPOLL_MS": str(long_poll_ms),
        "WEBHOOKS": "1" if webhooks else "0",
        "EXIT_ON_STDIN_CLOSE": "1",
    }
    env.pop("DATA_DIR", None)
    if data_dir is not None:
        env["DATA_DIR"] = str(data_dir)
    with tempfile.TemporaryDirectory(prefix="ds-ref-") as tmp:
        log = Path(tmp) / "server.log"
        with (
            open(log, "wb") as out,
            subprocess.Popen(
                [_tool("node"), "start-ref.mjs"],
                cwd=NODE_DIR,
                env=env,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ) as proc,
        ):
            try:
                yield _wait_ready(proc, log)
            finally:
                _stop(proc)


@pytest.fixture(scope="session")
def ds_reference_url() -> Iterator[str]:
    """Base URL of the npm reference server for the whole session: in memory,
    long-poll timeout 500 ms, webhook subscriptions enabled."""
    with reference_server(long_poll_ms=500, webhooks=True) as url:
        yield url


@attrs.frozen
class ConformanceResult:
    passed: int
    failed: int
    skipped: int
    failed_names: tuple[str, ...]
    """Full names of the failed tests: describe titles and test title joined by " > "."""
    exit_code: int
    seconds: float

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"

    def unexpected_failures(self, expected: Mapping[str, str]) -> list[str]:
        return [name for name in self.failed_names if name not in expected]


def _count(report: Mapping[str, Any], key: str) -> int:
    value = report.get(key)
    if not isinstance(value, int):
        raise ConformanceError(f"the vitest JSON report has no integer {key!r}")
    return value


def parse_report(report: Mapping[str, Any]) -> tuple[int, int, int, tuple[str, ...]]:
    """(passed, failed, skipped, failed names) from a vitest ``--reporter=json`` report."""
    failed_names = [
        " > ".join([*test["ancestorTitles"], test["title"]])
        for suite in report.get("testResults", [])
        for test in suite.get("assertionResults", [])
        if test.get("status") == "failed"
    ]
    return (
        _count(report, "numPassedTests"),
        _count(report, "numFailedTests"),
        _count(report, "numPendingTests"),
        tuple(failed_names),
    )


def run_conformance(
    base_url: str,
    *,
    subscriptions: bool = False,
    longpoll_ms: int | None = None,
    name_filter: str | None = None,
    timeout: float = 900,
) -> ConformanceResult:
    """Run the conformance suite against ``base_url``.

    ``longpoll_ms`` is the server's long-poll timeout (the suite assumes 20000 unless
    told). ``name_filter`` is vitest's ``-t`` regular expression, matched against the
    full name with *spaces* between describe and test titles; tests it excludes count
    as skipped. vitest's readable output goes to this process's stdout and stderr."""
    modules = ensure_node_modules()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFORMANCE_")}
    env["CONFORMANCE_TEST_URL"] = base_url
    env["CONFORMANCE_SUBSCRIPTIONS"] = "1" if subscriptions else "0"
    if longpoll_ms is not None:
        env["CONFORMANCE_LONGPOLL_MS"] = str(longpoll_ms)
    env.setdefault("NO_COLOR", "1")
    with tempfile.TemporaryDirectory(prefix="ds-conformance-") as tmp:
        report_path = Path(tmp) / "conformance.json"
        args = [
            str(modules / ".bin" / "vitest"),
            "run",
            "--reporter=default",
            "--reporter=json",
            f"--outputFile.json={report_path}",
        ]
        if name_filter is not None:
            args += ["-t", name_filter]
        started = time.monotonic()
        with subprocess.Popen(
            args, cwd=NODE_DIR, env=env, stdin=subprocess.DEVNULL, start_new_session=True
        ) as proc:
            try:
                exit_code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise ConformanceError(f"the conformance suite ran over {timeout:.0f} s") from None
            finally:
                _stop(proc)
        seconds = time.monotonic() - started
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConformanceError(
                f"vitest exited with {exit_code} and left no readable report: {exc}"
            ) from exc
    if not isinstance(report, dict):
        raise ConformanceError("the vitest JSON report is not an object")
    passed, failed, skipped, failed_names = parse_report(report)
    return ConformanceResult(passed, failed, skipped, failed_names, exit_code, seconds)


def load_expected_failures(path: Path = EXPECTED_FAILURES_FILE) -> dict[str, str]:
    """Full test name -> reason, from lines ``<full name>  # <reason>``. Lines that
    start with ``#`` and blank lines are comments."""
    expected: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" #")
        name = name.strip()
        if name in expected:
            raise ValueError(f"{path}:{number}: {name!r} is listed twice")
        expected[name] = reason.strip()
    return expected


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.node_support")
    commands = parser.add_subparsers(dest="command", required=True)
    conformance = commands.add_parser("conformance", help="run the conformance suite against URL")
    conformance.add_argument("url", help="base URL of the server under test")
    conformance.add_argument("--subscriptions", action="store_true")
    conformance.add_argument("--longpoll-ms", type=int, help="the server's long-poll timeout")
    conformance.add_argument("-t", "--filter", dest="name_filter", help="vitest -t regexp")
    args = parser.parse_args(argv)
    try:
        result = run_conformance(
            args.url,
            subscriptions=args.subscriptions,
            longpoll_ms=args.longpoll_ms,
            name_filter=args.name_filter,
        )
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        print(f"error: {exc.msg}", file=sys.stderr)
        return 2
    expected = load_expected_failures()
    for name in result.failed_names:
        reason = expected.get(name)
        print(f"FAILED {name}" + ("" if reason is None else f"  (expected: {reason})"))
    print(f"conformance suite took {result.seconds:.1f} s")
    print(result.summary())
    return 1 if result.unexpected_failures(expected) else 0


if __name__ == "__main__":
    sys.exit(main())
