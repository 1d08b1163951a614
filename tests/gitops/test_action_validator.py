"""The offline validator of GitHub's action and workflow schemas, as .ci/validate-github runs it.

.ci/run installs the pinned validator into a cache outside the clone before
pytest runs; this checks that the repository's action and workflows pass it,
and that it does refuse broken ones (so that the CI step can fail). Skipped
where the validator was never installed (run .ci/validate-github once). ~3 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.kf import ROOT

SCRIPT = ROOT / ".ci" / "validate-github"


def validator() -> Path:
    version = re.search(r"^VERSION=(\S+)$", SCRIPT.read_text(encoding="utf-8"), re.M)
    assert version is not None
    cache = os.environ.get("KERNELFORM_CI_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kernelform-ci"
    )
    path = Path(cache) / f"action-validator-{version.group(1)}" / "node_modules/.bin"
    found = path / "action-validator"
    if not found.exists() or shutil.which("node") is None:
        pytest.skip(f"the action validator is not installed ({found}); run {SCRIPT}")
    return found


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(validator()), str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def test_repository_action_and_workflows_pass() -> None:
    validator()
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    for name in ("action.yml", ".github/workflows/ci.yml", "examples/github/kernelform.yml"):
        assert f"valid: {name}" in done.stdout


def test_broken_ones_are_refused(tmp_path: Path) -> None:
    action = (ROOT / "action.yml").read_text(encoding="utf-8")
    broken_action = tmp_path / "action.yml"  # the validator tells actions by this name
    broken_action.write_text(action.replace("using: composite", "using: kubernetes"))
    assert check(broken_action).returncode != 0
    workflow = (ROOT / "examples/github/kernelform.yml").read_text(encoding="utf-8")
    broken_workflow = tmp_path / "kernelform.yml"
    broken_workflow.write_text(workflow.replace("runs-on:", "run-on:", 1))
    assert check(broken_workflow).returncode != 0
    assert check(tmp_path / "kernelform.yml").returncode != 0
    broken_workflow.write_text(workflow)
    assert check(broken_workflow).returncode == 0
