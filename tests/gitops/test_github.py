"""Workflow commands, paths relative to the workspace, and the job summary file."""

from __future__ import annotations

from pathlib import Path

from kernelform.errors import Problem
from kernelform.github import (
    Actions,
    Annotation,
    blocked_warning,
    comment_body,
    comment_marker,
    problem_commands,
    pull_request_number,
    workflow_command,
    workspace_path,
)
from kernelform.plan import Action, Change
from kernelform.recipe import Recipe


def test_escaping_as_github_documents_it() -> None:
    line = workflow_command(
        Annotation.ERROR, "50% done\r\nnext: a,b", file="dir,x/a:b.yaml", line=3, col=9
    )
    assert line == "::error file=dir%2Cx/a%3Ab.yaml,line=3,col=9::50%25 done%0D%0Anext: a,b"
    assert workflow_command(Annotation.WARNING, "w") == "::warning::w"


def test_detect() -> None:
    assert Actions.detect({}) is None
    assert Actions.detect({"GITHUB_ACTIONS": "false"}) is None
    found = Actions.detect(
        {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/w", "GITHUB_STEP_SUMMARY": "/s"}
    )
    assert found == Actions(workspace=Path("/w"), step_summary=Path("/s"))


def test_paths_relative_to_the_workspace(tmp_path: Path) -> None:
    cwd = tmp_path / "repo" / "infra"
    workspace = tmp_path / "repo"
    assert workspace_path("kernelform.yaml", workspace=workspace, cwd=cwd) == (
        "infra/kernelform.yaml"
    )
    assert workspace_path("../x.yaml", workspace=workspace, cwd=cwd) == "x.yaml"
    outside = str(tmp_path / "elsewhere.yaml")
    assert workspace_path(outside, workspace=workspace, cwd=cwd) is None
    assert workspace_path("../../x.yaml", workspace=workspace, cwd=cwd) is None
    assert workspace_path("a.yaml", workspace=None, cwd=cwd) == "a.yaml"
    problems = [
        Problem("kernelform.yaml", 4, 7, "count must be an integer, got 'two'"),
        Problem("../../broken.yaml", 2, 3, "unknown key 'spek'"),  # a probe's ::error file=../
    ]
    assert problem_commands(problems, workspace=workspace, cwd=cwd) == [
        "::error file=infra/kernelform.yaml,line=4,col=7::count must be an integer, got 'two'",
        "::error::../../broken.yaml:2:3: unknown key 'spek'",
    ]


def test_blocked_warning() -> None:
    recipe = Recipe(spec="python3", cwd=None, revision=None)
    blocked = Change(
        address="etl[0]", server="lab", action=Action.RESTART, reason="r", recipe=recipe
    )
    assert blocked_warning([]) is None
    warning = blocked_warning([blocked])
    assert warning is not None
    assert warning.startswith("::warning title=kernelform::1 change(s) blocked")
    assert "etl[0] (restart)" in warning


def test_marker_and_body() -> None:
    marker = comment_marker("./infra/../kernelform.yaml")
    assert marker == "<!-- kernelform:plan:kernelform.yaml -->"
    assert "--" not in comment_marker("a--b/c d-->.yaml")[4:-3]
    assert comment_marker("a/k.yaml") != comment_marker("b/k.yaml")
    body = comment_body("<!-- m -->", "line\n" * 50_000, limit=1000)
    assert body.startswith("<!-- m -->\n") and len(body) <= 1000
    assert body.endswith("the job summary has the whole plan)\n")


def test_pull_request_number() -> None:
    assert pull_request_number({"pull_request": {"number": 7}}) == 7
    assert pull_request_number({"issue": {"number": 8, "pull_request": {}}}) == 8
    assert pull_request_number({"issue": {"number": 9}}) is None
    assert pull_request_number({"push": {}}) is None
