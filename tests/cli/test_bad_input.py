"""Every broken manifest of the corpus, through the real command line.

For each case: exit 1, the first stderr line is ``FILE:LINE:COL: message``, no
traceback, well under 2 seconds, no server contacted and no state touched.
The whole corpus runs in-process through ``kernelform.cli.main`` (the same code
path as the console script, exit status included); a sample also runs as real
subprocesses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.manifest.manifests import BrokenCase, broken_cases
from tests.support.kf import TRACEBACK, run, run_main

CASES = broken_cases()
SAMPLE = CASES[:: max(1, len(CASES) // 12)]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a broken manifest made kernelform contact a server")

    monkeypatch.setattr(requests.Session, "request", refuse)


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 150


COMMANDS = [("validate", case) for case in CASES] + [
    (command, case) for case in CASES[::5] for command in ("plan", "apply")
]


@pytest.mark.parametrize(
    ("command", "case"), COMMANDS, ids=[f"{cmd}-{case.name}" for cmd, case in COMMANDS]
)
def test_broken_manifest_is_refused(
    case: BrokenCase,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_network: None,
) -> None:
    state = tmp_path / "state" / "state.json"
    argv = [command, "-f", str(case.path)]
    if command != "validate":  # validate takes no --state: it never reads one
        argv += ["--state", str(state)]
    if command == "apply":
        argv.append("--auto-approve")
    began = time.perf_counter()
    code, out, err = run_main(argv, capsys)
    elapsed = time.perf_counter() - began
    assert code == 1, (out, err)
    first = err.splitlines()[0]
    assert first.startswith(f"Error: {case.path}:{case.line}:{case.col}: "), first
    assert case.message in first
    assert TRACEBACK not in out + err
    assert elapsed < 2.0
    assert not state.parent.exists()


@pytest.mark.parametrize("case", SAMPLE, ids=[c.name for c in SAMPLE])
def test_broken_manifest_in_a_real_process(case: BrokenCase, tmp_path: Path) -> None:
    result = run("validate", "-f", str(case.path), cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith(f"Error: {case.path}:{case.line}:{case.col}: ")
    assert list(tmp_path.iterdir()) == []


def test_missing_manifest(tmp_path: Path) -> None:
    result = run("plan", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith("Error: kernelform.yaml:1:1: cannot read the manifest")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("truncated", '{"version": 1, "serial": 3, "lineage": '),
        ("newer", '{"version": 99, "serial": 1, "lineage": "x", "resources": {}}'),
        ("not-an-object", "[1, 2, 3]"),
    ],
)
def test_corrupt_state_is_refused_and_kept(tmp_path: Path, name: str, content: str) -> None:
    manifest = tmp_path / "kernelform.yaml"
    manifest.write_text("servers:\n  lab: {url: 'http://127.0.0.1:9'}\nkernels: {}\n")
    state = tmp_path / ".kernelform" / "state.json"
    state.parent.mkdir()
    state.write_text(content)
    for args in (["plan"], ["apply", "--auto-approve"], ["state", "list"], ["destroy"]):
        result = run(*args, cwd=tmp_path)
        assert result.code == 1, result
        assert result.err.startswith("Error: ") and "state" in result.err
    assert state.read_text() == content
