"""The command line: ``orchestrator run`` exits with the session's result, and
``orchestrator serve`` answers on the port it prints, both against the scripted model."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx
import trio

from orchestrator.models import Turn, Usage, open_model_server

from .support import AGENT_KEY, DONE, WRITE_FILE, script

ROOT = Path(__file__).resolve().parents[2]


def env_for(base_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": AGENT_KEY,
        "ORCHESTRATOR_SANDBOX": "local",
        "ORCHESTRATOR_DATA_DIR": str(data_dir),
    }


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = await trio.run_process(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        cwd=ROOT,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def test_run_exits_zero_on_success_and_one_on_a_spent_budget(tmp_path: Path) -> None:
    async with open_model_server(script(WRITE_FILE, DONE)) as models:
        code, out = await run_cli(env_for(models.base_url, tmp_path), "run", "make f.txt")
    assert code == 0, out
    assert "-> Bash" in out
    assert "session ended: success" in out
    pricey = Turn(blocks=(WRITE_FILE.blocks[0],), usage=Usage(input_tokens=5_000_000))
    async with open_model_server(script(pricey, DONE)) as models:
        code, out = await run_cli(
            env_for(models.base_url, tmp_path / "b"), "run", "x", "--max-session-cost-usd", "1"
        )
    assert code == 1, out
    assert "budget exceeded" in out


async def test_bad_settings_are_refused_clearly(tmp_path: Path) -> None:
    env = {**env_for("http://127.0.0.1:9", tmp_path), "ORCHESTRATOR_SANDBOX": "vm"}
    code, out = await run_cli(env, "run", "x")
    assert code != 0
    assert "ORCHESTRATOR_SANDBOX must be one of docker, local, auto" in out


async def test_serve_answers_where_it_says_and_stops_on_sigint(tmp_path: Path) -> None:
    async with open_model_server(script(DONE)) as models:
        env = env_for(models.base_url, tmp_path)
        log = tmp_path / "serve.log"
        with open(log, "wb") as out:  # noqa: ASYNC230 - a log file for the child, once
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "orchestrator", "serve", "--port", "0"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        try:
            with trio.fail_after(30):
                while b"listening on" not in log.read_bytes():  # noqa: ASYNC110
                    await trio.sleep(0.05)
            line = log.read_text().splitlines()[0]
            url = line.split("listening on ")[1].split()[0]
            assert "admin token in" in line
            async with httpx.AsyncClient(base_url=url) as client:
                health = await client.get("/api/health")
            assert health.json()["healthy"] is True
            process.send_signal(signal.SIGINT)
            with trio.fail_after(30):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
