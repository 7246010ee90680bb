"""The upstream conformance suite (``@durable-streams/server-conformance-tests@0.3.6``)
against our server: the on-disk store, subscriptions enabled, long-poll 500 ms.

Prints ``N passed, N failed``. Failures we cannot fix are listed with their reason in
``tests/conformance/expected-failures.txt``; any other failure, or a listed test that
now passes, fails this test."""

from __future__ import annotations

from pathlib import Path

from ..node_support import load_expected_failures, run_conformance
from .server_proc import streams_server


def test_our_server_passes_the_conformance_suite(tmp_path: Path) -> None:
    expected = load_expected_failures()
    with streams_server(tmp_path / "logs", data_dir=tmp_path / "data") as server:
        result = run_conformance(server.url, subscriptions=True, longpoll_ms=500, timeout=300)
    print(f"{result.passed} passed, {result.failed} failed")
    unexpected = sorted(set(result.failed_names) - set(expected))
    fixed = sorted(set(expected) - set(result.failed_names))
    assert not unexpected, f"unexpected failures: {unexpected}"
    assert not fixed, f"listed as failing but passed (update the list): {fixed}"
    assert result.passed + result.failed == 338
