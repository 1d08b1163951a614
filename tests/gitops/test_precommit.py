"""The pre-commit hook: a valid hook definition, and its entry working on real files."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.support.kf import ROOT

HOOKS = ROOT / ".pre-commit-hooks.yaml"
# What pre-commit's manifest schema requires of a hook, and the types it checks.
REQUIRED = {"id": str, "name": str, "entry": str, "language": str}
OPTIONAL = {
    "files": str,
    "exclude": str,
    "types": list,
    "types_or": list,
    "exclude_types": list,
    "pass_filenames": bool,
    "require_serial": bool,
    "description": str,
    "args": list,
    "always_run": bool,
    "minimum_pre_commit_version": str,
    "stages": list,
    "verbose": bool,
    "fail_fast": bool,
    "additional_dependencies": list,
    "language_version": str,
    "log_file": str,
}
GOOD = """servers:
  lab:
    url: http://127.0.0.1:8888
kernels:
  etl: {spec: python3}
"""


def hook() -> dict[str, Any]:
    hooks = YAML(typ="safe").load(HOOKS.read_text(encoding="utf-8"))
    assert isinstance(hooks, list)
    [found] = [h for h in hooks if h.get("id") == "kernelform-validate"]
    assert isinstance(found, dict)
    return found


def test_definition_has_what_pre_commit_requires() -> None:
    found = hook()
    for key, kind in REQUIRED.items():
        assert isinstance(found.get(key), kind), key
    for key, value in found.items():
        assert key in REQUIRED or key in OPTIONAL, f"pre-commit knows no hook key {key!r}"
        assert isinstance(value, REQUIRED.get(key) or OPTIONAL[key]), key
    assert found["language"] == "python" and found["pass_filenames"] is True
    files = re.compile(found["files"])
    for name in ("kernelform.yaml", "infra/kernelform.yml", "prod.kernelform.yaml"):
        assert files.search(name), name
    for name in ("other.yaml", "kernelform.yaml.bak", "notkernelform.yaml"):
        assert not files.search(name), name


def run_entry(*files: Path) -> subprocess.CompletedProcess[str]:
    """The hook's entry as pre-commit runs it: the command, then the file names."""
    command, *args = shlex.split(hook()["entry"])
    executable = Path(sys.executable).parent / command  # the console script pip installed
    return subprocess.run(
        [str(executable), *args, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )


def test_entry_on_good_and_bad_manifests(tmp_path: Path) -> None:
    good = tmp_path / "kernelform.yaml"
    good.write_text(GOOD, encoding="utf-8")
    bad = tmp_path / "infra" / "kernelform.yaml"
    bad.parent.mkdir()
    bad.write_text(GOOD.replace("python3}", "python3, count: -1}"), encoding="utf-8")
    alone = run_entry(good)
    assert alone.returncode == 0, alone
    assert alone.stdout == f"{good}: valid (1 server(s), 1 kernel(s), 1 address(es)).\n"
    both = run_entry(good, bad)
    assert both.returncode == 1
    assert f"{good}: valid" in both.stdout
    assert both.stderr == f"Error: {bad}:5:31: count must not be negative, got -1\n"
