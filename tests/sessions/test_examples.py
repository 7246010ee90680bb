"""The examples run, against the scripted model, in local sandboxes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from orchestrator.models import open_model_server

from .support import AGENT_KEY, DONE, WRITE_FILE, script

ROOT = Path(__file__).resolve().parents[2]


async def test_hello_session_example(tmp_path: Path) -> None:
    async with open_model_server(script(WRITE_FILE, DONE, "I wrote f.txt.")) as models:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": models.base_url,
            "ANTHROPIC_API_KEY": AGENT_KEY,
            "ORCHESTRATOR_SANDBOX": "local",
            "ORCHESTRATOR_DATA_DIR": str(tmp_path / "data"),
        }
        done = await trio.run_process(
            [sys.executable, str(ROOT / "examples" / "hello_session.py"), "make f.txt"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "tool:  Bash" in out
    assert "agent: I wrote f.txt." in out
    assert "total cost: $" in out
