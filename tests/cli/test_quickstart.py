"""The README's quickstart line, run as a newcomer would run it.

``bash examples/quickstart.sh`` starts its own throwaway Jupyter server and walks
through validate, plan, apply, a kernel lost behind kernelform's back, the heal,
and destroy. It reuses the repository's ``.venv`` (made by the README's test
command) when that has kernelform and a Jupyter server, as it does in CI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (REPO / ".venv").resolve(),
    reason="the quickstart uses the repository's .venv; these tests run from another one",
)
def test_quickstart_walks_through_and_cleans_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "KERNELFORM_"))}
    done = subprocess.run(
        ["bash", str(REPO / "examples" / "quickstart.sh")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid (1 server(s), 1 kernel(s), 3 address(es))" in out
    assert "Plan: 3 to start" in out
    assert out.count("No changes.") == 2
    assert "will be started: vanished from the server" in out
    assert "Destroy complete! 3 shut down" in out
    assert out.rstrip().endswith("==> done; the server stops now")
    assert "Traceback" not in done.stderr
