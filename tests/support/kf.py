"""Run the real ``kernelform`` command line as a subprocess, as a user would.

Each call is a fresh ``python -m kernelform`` process, so exit statuses,
stdout/stderr separation and the absence of tracebacks are what a user sees.
``run_main`` runs it in this process instead, for tests that patch what it calls.
When the environment asks for a fault (``KERNELFORM_CRASH_AT``/``_FAIL_AT``),
the process is ``python -m tests.support.crashing`` instead: the same command line,
with fault hooks (see tests/support/crashing.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kernelform.cli import main
from tests.support.live_jupyter import JupyterServer

FAULT_ENV = ("KERNELFORM_CRASH_AT", "KERNELFORM_FAIL_AT")
ROOT = Path(__file__).resolve().parents[2]

TRACEBACK = "Traceback (most recent call last)"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> Result:
    """``kernelform ARGS`` in *cwd*; asserts no traceback ever reaches the user."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    module = "kernelform"
    if any(full_env.get(name) for name in FAULT_ENV):
        # Faults are injected through hooks by the tests' own entry point.
        module = "tests.support.crashing"
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
        )
    # Without *stdin* the command gets an empty one, never the terminal pytest may run in.
    process = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = Result(process.returncode, process.stdout, process.stderr)
    assert TRACEBACK not in result.out + result.err, result
    return result


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``kernelform ARGV`` in this process: its exit status, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def one_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``Error:`` line *argv* ends with (exit 1, nothing on stdout)."""
    code, out, err = run_main(argv, capsys)
    assert code == 1, (out, err)
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


def write_manifest(
    directory: Path, server: JupyterServer, kernels: str, **server_keys: Any
) -> Path:
    """A manifest with one server ``lab`` (the test server) and *kernels* (YAML)."""
    extra = "".join(f"    {key}: {json.dumps(value)}\n" for key, value in server_keys.items())
    text = (
        "servers:\n"
        "  lab:\n"
        "    url: ${KF_TEST_URL}\n"
        "    token: ${KF_TEST_TOKEN}\n"
        f"{extra}"
        "kernels:\n"
        f"{kernels}"
    )
    path = directory / "kernelform.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def server_env(server: JupyterServer) -> dict[str, str]:
    return {"KF_TEST_URL": server.url, "KF_TEST_TOKEN": server.token}


def state_of(directory: Path) -> dict[str, Any]:
    """The state of the project in *directory*, as stored (snapshot and journal)."""
    from kernelform.state import FileStateStore

    store = FileStateStore(directory / ".kernelform" / "state.json")
    assert store.path.is_file(), f"no state at {store.path}"
    return store.read().to_dict()
