"""Shell completion: ``kernelform completion SHELL`` prints click's script, and the
completion protocol it relies on answers (subcommands, and --target addresses
read from the manifest). bash itself runs the script when it is installed.
About 3 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.kf import run

BIN = str(Path(sys.executable).parent)


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "_KERNELFORM_COMPLETE=bash_complete"),
        ("zsh", "_KERNELFORM_COMPLETE=zsh_complete"),
        ("fish", "_KERNELFORM_COMPLETE=fish_complete"),
    ],
)
def test_the_script_is_printed(shell: str, marker: str, tmp_path: Path) -> None:
    result = run("completion", shell, cwd=tmp_path)
    assert result.code == 0, result
    assert marker in result.out and "kernelform" in result.out


def complete(words: str, cword: int, cwd: Path) -> list[str]:
    """Run the bash completion protocol: what the script asks the program."""
    env = {
        **os.environ,
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
        "_KERNELFORM_COMPLETE": "bash_complete",
    }
    process = subprocess.run(
        [sys.executable, "-m", "kernelform"], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert process.returncode == 0 and process.stderr == "", process
    return process.stdout.splitlines()


def test_the_protocol_completes_commands_and_targets(tmp_path: Path) -> None:
    assert complete("kernelform sta", 1, tmp_path) == ["plain,state", "plain,status"]
    assert complete("kernelform state r", 2, tmp_path) == ["plain,rm"]
    (tmp_path / "kernelform.yaml").write_text(
        "servers:\n  lab: {url: 'http://127.0.0.1:9'}\n"
        "kernels:\n  etl: {spec: python3, count: 2}\n  web: {spec: python3}\n"
    )
    assert complete("kernelform plan --target e", 3, tmp_path) == [
        "plain,etl",
        "plain,etl[0]",
        "plain,etl[1]",
    ]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_runs_the_script(tmp_path: Path) -> None:
    script = (
        'eval "$(kernelform completion bash)"; COMP_WORDS=(kernelform des); COMP_CWORD=1;'
        ' _kernelform_completion kernelform; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    process = subprocess.run(
        ["bash", "--norc", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert process.returncode == 0, process
    assert process.stdout.splitlines() == ["destroy"], process
