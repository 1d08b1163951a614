"""apply/destroy --json, --markdown, and the GitHub Actions integration, against the real server.

Each test drives the real command line (a subprocess) against the session's
jupyter server; "GitHub" is simulated by its environment variables and a
temporary job summary file. About 20 s in all, most of it kernel restarts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kf import Result, run, server_env, write_manifest
from tests.support.live_jupyter import JupyterServer


def github_env(workspace: Path, summary: Path) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_STEP_SUMMARY": str(summary),
    }


def kf(cwd: Path, jupyter: JupyterServer, *args: str, env: dict[str, str] | None = None) -> Result:
    result = run(*args, cwd=cwd, env={**server_env(jupyter), **(env or {})})
    assert jupyter.token not in result.out + result.err
    return result


def test_apply_and_destroy_json(tmp_path: Path, jupyter: JupyterServer) -> None:
    summary = tmp_path / "summary.md"
    gh = github_env(tmp_path, summary)
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3, count: 2}\n  solo: {spec: python3}\n")

    applied = kf(tmp_path, jupyter, "apply", "--json", "--auto-approve", env=gh)
    assert applied.code == 0, applied
    document = applied.json()  # stdout is the document and nothing else
    assert document["format_version"] == "1" and document["destroy"] is False
    actions = {a["address"]: a for a in document["actions"]}
    assert set(actions) == {"etl[0]", "etl[1]", "solo"}
    assert {a["kernel_id"] for a in actions.values()} == jupyter.kernel_ids()
    for action in actions.values():
        assert action["ok"] is True and action["error"] is None
        assert action["action"] == "start" and action["server"] == "lab"
        assert isinstance(action["seconds"], float) and action["reason"] == "new"
    assert document["summary"] == {
        "start": 3, "restart": 0, "replace": 0, "shutdown": 0, "interrupt": 0, "server-start": 0,
        "succeeded": 3, "failed": 0, "blocked": 0, "skipped": 0,
    }  # fmt: skip
    assert document["blocked"] == [] and document["state_updates"] == []
    assert "solo: started kernel" in applied.err  # progress goes to stderr
    written = summary.read_text(encoding="utf-8")
    assert written.startswith("### kernelform apply: `kernelform.yaml`")
    assert all(f"| `{address}` |" in written for address in actions)

    # solo in use, every revision bumped: the etl replicas restart, solo stays blocked.
    jupyter.create_session(actions["solo"]["kernel_id"], path="nb/used.ipynb")
    write_manifest(
        tmp_path,
        jupyter,
        "  etl: {spec: python3, count: 2, revision: 2}\n  solo: {spec: python3, revision: 2}\n",
    )
    blocked = kf(tmp_path, jupyter, "apply", "--json", "--auto-approve", env=gh)
    assert blocked.code == 3, blocked
    document = blocked.json()
    assert {(a["address"], a["action"], a["ok"]) for a in document["actions"]} == {
        ("etl[0]", "restart", True),
        ("etl[1]", "restart", True),
    }
    assert [(b["address"], b["sessions"]) for b in document["blocked"]] == [
        ("solo", ["nb/used.ipynb"])
    ]
    assert document["summary"]["restart"] == 2 and document["summary"]["blocked"] == 1
    assert "::warning title=kernelform::1 change(s) blocked" in blocked.err
    assert "is in use by `nb/used.ipynb`" in summary.read_text(encoding="utf-8")

    destroyed = kf(tmp_path, jupyter, "destroy", "--json", "--auto-approve", env=gh)
    assert destroyed.code == 3, destroyed
    document = destroyed.json()
    assert document["destroy"] is True
    assert {(a["address"], a["action"]) for a in document["actions"]} == {
        ("etl[0]", "shutdown"),
        ("etl[1]", "shutdown"),
    }
    assert [b["address"] for b in document["blocked"]] == ["solo"]
    assert "### kernelform destroy" in summary.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("apply", "--json"), "apply --json never asks for confirmation; pass --auto-approve"),
        (("destroy", "--markdown"), "destroy --markdown never asks for confirmation"),
        (("plan", "--json", "--markdown"), "--json and --markdown are exclusive"),
    ],
)
def test_machine_output_needs_no_terminal(
    tmp_path: Path, jupyter: JupyterServer, args: tuple[str, ...], words: str
) -> None:
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3}\n")
    result = kf(tmp_path, jupyter, *args)
    assert result.code == 1 and result.out == ""
    errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and words in errors[0], result.err
    assert jupyter.kernel_ids() == set()


def test_plan_markdown_is_the_step_summary(tmp_path: Path, jupyter: JupyterServer) -> None:
    summary = tmp_path / "summary.md"
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3}\n")
    gh = github_env(tmp_path, summary)
    planned = kf(tmp_path, jupyter, "plan", "--markdown", "--detailed-exitcode", env=gh)
    assert planned.code == 2, planned
    assert planned.out.startswith("### kernelform plan: `kernelform.yaml`\n")
    assert "| `etl` | `+` start | `lab` | new |  |" in planned.out
    assert summary.read_text(encoding="utf-8") == planned.out
    human = kf(tmp_path, jupyter, "plan", env=gh)  # people's output, the same summary
    assert human.code == 0 and "etl will be started" in human.out
    assert summary.read_text(encoding="utf-8") == planned.out * 2

    nowhere = kf(tmp_path, jupyter, "plan", env=github_env(tmp_path, tmp_path))  # a directory
    assert nowhere.code == 0, nowhere
    assert nowhere.err.startswith(f"Warning: cannot write the job summary to {tmp_path}")
    applied = kf(tmp_path, jupyter, "apply", "--markdown", "--auto-approve")
    assert applied.code == 0 and "**Apply complete!** 1 started" in applied.out
    again = kf(tmp_path, jupyter, "apply", "--markdown", "--auto-approve")
    assert again.code == 0 and "**Nothing to do.** The kernels match the manifest." in again.out


BROKEN = """servers:
  lab:
    url: http://127.0.0.1:9
kernels:
  etl:
    spec: python3
    count: two
    max_age: 5x
"""


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "destroy"])
def test_manifest_problems_become_annotations(tmp_path: Path, command: str) -> None:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "kernelform.yaml").write_text(BROKEN, encoding="utf-8")
    gh = github_env(tmp_path, tmp_path / "summary.md")
    result = run(command, cwd=infra, env=gh)
    assert result.code == 1
    assert "Error: kernelform.yaml:7:12: count must be an integer, got 'two'" in result.err
    annotations = [line for line in result.err.splitlines() if line.startswith("::")]
    assert annotations == [
        "::error file=infra/kernelform.yaml,line=7,col=12::count must be an integer, got 'two'",
        "::error file=infra/kernelform.yaml,line=8,col=14::invalid duration '5x': use a whole "
        "number followed by s, m, h or d, e.g. 30m",
    ]
    plain = run(command, cwd=infra)
    assert "::error" not in plain.err and plain.code == 1
