"""The Action's runner (``python -m kernelform.action``) in a simulated GitHub Actions job.

What the runner sees is what a GitHub runner gives a composite action's step:
``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` files, a ``pull_request`` event
in ``GITHUB_EVENT_PATH``, ``RUNNER_TEMP``, and the inputs as ``KF_ACTION_*``
(as action.yml passes them). GitHub's REST API is a loopback stand-in that
keeps issue comments, pages them 10 at a time with ``Link`` headers, and can
refuse writes with 403. kernelform itself runs for real against the session's
Jupyter server. About 15 s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.support.fakehttp import FakeHTTPServer, Recorded, Reply, json_reply
from tests.support.kf import ROOT, TRACEBACK, server_env, write_manifest
from tests.support.live_jupyter import JupyterServer

TOKEN = "ghs_kftestSECRETtoken0123456789"
REPO = "octo/infra"
PR = 5
PAGE = 10  # the stand-in's page size, whatever per_page asks: pagination must be followed
MARKER_PREFIX = "<!-- kernelform:plan:"


class FakeGitHub:
    """Issue comments of one repository, over the REST API paths the runner uses."""

    def __init__(self, *, others: int = 0, refuse_writes: bool = False) -> None:
        self.comments: list[dict[str, Any]] = [
            {"id": 1000 + i, "body": f"an unrelated comment {i}"} for i in range(others)
        ]
        self.refuse_writes = refuse_writes
        self.server = FakeHTTPServer(self.answer)

    def answer(self, request: Recorded, number: int) -> Reply:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return json_reply(401, {"message": "Bad credentials"})
        listing = re.fullmatch(rf"/repos/{REPO}/issues/(\d+)/comments", request.path)
        edit = re.fullmatch(rf"/repos/{REPO}/issues/comments/(\d+)", request.path)
        if request.method != "GET" and self.refuse_writes:
            return json_reply(403, {"message": "Resource not accessible by integration"})
        if listing and request.method == "GET":
            page = int(parse_qs(request.query).get("page", ["1"])[0])
            chunk = self.comments[(page - 1) * PAGE : page * PAGE]
            headers = {"Content-Type": "application/json"}
            if page * PAGE < len(self.comments):
                headers["Link"] = (
                    f'<{self.server.url}repos/{REPO}/issues/{listing.group(1)}/comments'
                    f'?per_page=100&page={page + 1}>; rel="next"'
                )
            return Reply(200, chunk, headers)
        if listing and request.method == "POST":
            comment = {"id": 2000 + len(self.comments), "body": json.loads(request.body)["body"]}
            self.comments.append(comment)
            return json_reply(201, comment)
        if edit and request.method == "PATCH":
            for comment in self.comments:
                if comment["id"] == int(edit.group(1)):
                    comment["body"] = json.loads(request.body)["body"]
                    return json_reply(200, comment)
        return json_reply(404, {"message": "Not Found"})

    def ours(self) -> list[dict[str, Any]]:
        return [c for c in self.comments if c["body"].startswith(MARKER_PREFIX)]

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.server.requests if r.method == method]


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(others=25)
    with fake.server:
        yield fake


@dataclass
class Job:
    """One simulated job: its files, and the step's results after ``step``."""

    root: Path
    jupyter: JupyterServer
    api_url: str

    def __post_init__(self) -> None:
        self.workspace = self.root / "repo"
        self.workspace.mkdir(exist_ok=True)
        self.temp = self.root / "runner-temp"
        self.temp.mkdir(exist_ok=True)
        self.event = self.root / "event.json"
        event = {"pull_request": {"number": PR, "head": {"sha": "0123456789abcdef"}}}
        self.event.write_text(json.dumps(event), encoding="utf-8")
        self.summary = self.root / "summary.md"
        self.output = self.root / "output.txt"

    def step(self, **inputs: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        self.output.write_text("", encoding="utf-8")  # one file per step, as GitHub does
        env = {
            **os.environ,
            **server_env(self.jupyter),
            "NO_COLOR": "1",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_EVENT_PATH": str(self.event),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_API_URL": self.api_url,
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_RUN_ID": "42",
            "RUNNER_TEMP": str(self.temp),
            "KF_ACTION_GITHUB_TOKEN": TOKEN,
            "PYTHONPATH": str(ROOT),
        }
        env.update({f"KF_ACTION_{k.upper()}": v for k, v in inputs.items()})
        directory = self.workspace / inputs.get("working_directory", ".")
        done = subprocess.run(
            [sys.executable, "-m", "kernelform.action"],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert TRACEBACK not in done.stdout + done.stderr, done
        return done, parse_outputs(self.output.read_text(encoding="utf-8"))

    def files_with_token(self) -> list[Path]:
        return [
            path
            for path in self.root.rglob("*")
            if path.is_file() and TOKEN in path.read_text(encoding="utf-8", errors="replace")
        ]


def parse_outputs(text: str) -> dict[str, str]:
    """``name<<DELIMITER`` blocks, as the runner reads ``$GITHUB_OUTPUT``."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        name, _, delimiter = line.partition("<<")
        value = []
        for item in lines:
            if item == delimiter:
                break
            value.append(item)
        outputs[name] = "\n".join(value)
    return outputs


@pytest.fixture
def job(tmp_path: Path, jupyter: JupyterServer, github: FakeGitHub) -> Job:
    return Job(tmp_path, jupyter, github.server.url.rstrip("/"))


def test_plan_comment_is_created_once_then_edited(job: Job, github: FakeGitHub) -> None:
    write_manifest(job.workspace, job.jupyter, "  etl: {spec: python3}\n")
    done, outputs = job.step(command="plan", comment="true")
    assert done.returncode == 0, done
    assert outputs["exitcode"] == "2" and outputs["has-changes"] == "true"
    assert outputs["summary"] == (
        "Plan: 1 to start, 0 to restart, 0 to replace, 0 to shut down, 0 to interrupt."
    )
    plan = json.loads(Path(outputs["plan-json"]).read_text(encoding="utf-8"))
    assert [c["address"] for c in plan["changes"]] == ["etl"]
    assert "etl will be started" in done.stdout  # kernelform's own output is in the log
    assert "created the comment on pull request #5" in done.stdout
    assert len(github.calls("GET")) == 3  # 25 comments, 10 a page: every page was read
    [comment] = github.ours()
    body = comment["body"]
    assert body.startswith("<!-- kernelform:plan:kernelform.yaml -->\n### kernelform plan:")
    assert "| `etl` | `+` start | `lab` | new |  |" in body
    assert "commit `0123456789ab`" in body and "/octo/infra/actions/runs/42" in body
    assert job.summary.read_text(encoding="utf-8").startswith("### kernelform plan")

    # The next push: the same comment is found (on the last page) and edited.
    write_manifest(job.workspace, job.jupyter, "  etl: {spec: python3}\n  more: {spec: python3}\n")
    done, outputs = job.step(command="plan", comment="true")
    assert done.returncode == 0 and "updated the comment on pull request #5" in done.stdout
    assert len(github.calls("POST")) == 1 and len(github.calls("PATCH")) == 1
    [comment] = github.ours()
    assert "| `more` |" in comment["body"] and len(github.comments) == 26

    # Another manifest, in another directory, gets a comment of its own.
    (job.workspace / "lab2").mkdir()
    write_manifest(job.workspace / "lab2", job.jupyter, "  x: {spec: python3}\n")
    done, _ = job.step(command="plan", comment="true", working_directory="lab2")
    assert done.returncode == 0, done
    assert [c["body"].splitlines()[0] for c in github.ours()] == [
        "<!-- kernelform:plan:kernelform.yaml -->",
        "<!-- kernelform:plan:lab2/kernelform.yaml -->",
    ]
    assert all(
        r.headers["Authorization"] == f"Bearer {TOKEN}" for r in github.server.requests
    )
    assert job.files_with_token() == []
    assert TOKEN not in done.stdout + done.stderr


def test_saved_plan_is_applied(job: Job, github: FakeGitHub) -> None:
    write_manifest(job.workspace, job.jupyter, "  etl: {spec: python3, count: 2}\n")
    _, planned = job.step(command="plan")
    done, outputs = job.step(command="apply", args=planned["plan-json"])
    assert done.returncode == 0, done
    assert outputs["exitcode"] == "0" and outputs["has-changes"] == "true"
    # The CLI's own words ("started", not "start"), as in the job summary's report.
    assert outputs["summary"] == "Apply complete! 2 started; 0 failed; 0 blocked."
    assert f"**Apply complete!** {outputs['summary'][16:]}" in job.summary.read_text("utf-8")
    report = json.loads(Path(outputs["plan-json"]).read_text(encoding="utf-8"))
    assert {a["address"] for a in report["actions"]} == {"etl[0]", "etl[1]"}
    assert {a["kernel_id"] for a in report["actions"]} == job.jupyter.kernel_ids()
    assert "### kernelform apply" in job.summary.read_text(encoding="utf-8")
    assert github.server.requests == []  # no comment asked for, none posted

    assert job.files_with_token() == []


@pytest.mark.parametrize(
    ("inputs", "said"),
    [
        (
            {"command": "apply", "args": ""},
            "command apply needs '--auto-approve' or a saved plan file in args: "
            "nobody can answer its confirmation prompt in a workflow",
        ),
        (
            {"command": "destroy", "args": "--target etl"},
            "command destroy needs '--auto-approve' in args: "
            "nobody can answer its confirmation prompt in a workflow",
        ),
        (
            {"command": "apply", "args": "--auto-approve --markdown"},
            "args: --markdown is not for command apply: the Action takes kernelform's JSON "
            "report (plan-json), and the Markdown one goes to the job summary anyway",
        ),
        (
            {"command": "plan", "args": "--out -"},
            "args: '--out -' would print the plan into the log; the Action needs a file for "
            "plan-json: give --out a path, or leave --out out",
        ),
    ],
)
def test_args_the_action_cannot_run_are_refused_in_its_own_terms(
    job: Job, inputs: dict[str, str], said: str
) -> None:
    """Checked before kernelform runs: no message names a flag the Action adds (--json)."""
    write_manifest(job.workspace, job.jupyter, "  etl: {spec: python3}\n")
    done, outputs = job.step(**inputs)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == f"::error::kernelform action: {said}"
    assert "--json" not in done.stdout + done.stderr and "Error:" not in done.stderr
    assert outputs == {
        "exitcode": "1",
        "has-changes": "false",
        "plan-json": "",
        "summary": f"kernelform action: {said}",
    }
    assert said in job.summary.read_text(encoding="utf-8")
    assert job.jupyter.kernel_ids() == set()


def test_the_users_out_is_where_the_plan_is_saved(job: Job) -> None:
    write_manifest(job.workspace, job.jupyter, "  etl: {spec: python3}\n")
    (job.workspace / "plans").mkdir()
    done, outputs = job.step(command="plan", args="--out plans/next.json")
    assert done.returncode == 0, done
    saved = job.workspace / "plans" / "next.json"
    assert outputs["plan-json"] == str(saved)
    assert [c["address"] for c in json.loads(saved.read_text("utf-8"))["changes"]] == ["etl"]
    assert list(job.temp.rglob("plan.json")) == []  # no second plan of the Action's own


def test_a_refused_comment_is_a_warning(tmp_path: Path, jupyter: JupyterServer) -> None:
    fake = FakeGitHub(refuse_writes=True)
    with fake.server:
        job = Job(tmp_path, jupyter, fake.server.url.rstrip("/"))
        write_manifest(job.workspace, jupyter, "  etl: {spec: python3}\n")
        done, outputs = job.step(command="plan", comment="true")
    assert done.returncode == 0, done
    assert outputs["exitcode"] == "2"
    [warning] = [line for line in done.stdout.splitlines() if line.startswith("::warning")]
    assert warning == (
        "::warning::kernelform: the plan comment on pull request #5 was not posted: POST "
        f"{fake.server.url}repos/{REPO}/issues/5/comments: GitHub answered 403 (Resource not "
        "accessible by integration); give the job 'permissions: pull-requests: write' (a pull "
        "request from a fork only gets a read-only token)"
    )
    assert TOKEN not in done.stdout + done.stderr and job.files_with_token() == []


def test_a_broken_manifest_fails_the_step_and_says_why_on_the_pull_request(
    job: Job, github: FakeGitHub
) -> None:
    (job.workspace / "kernelform.yaml").write_text(
        "servers:\n  lab: {url: http://127.0.0.1:9}\n"
        "kernels:\n  etl: {spec: python3, count: two}\n",
        encoding="utf-8",
    )
    done, outputs = job.step(command="plan", comment="true")
    assert done.returncode == 1
    error = "Error: kernelform.yaml:4:31: count must be an integer, got 'two'"
    assert outputs == {
        "exitcode": "1",
        "has-changes": "false",
        "plan-json": "",
        "summary": f"kernelform plan failed (exit 1).\n{error}",
    }
    assert job.summary.read_text(encoding="utf-8") == (
        "### kernelform plan: `kernelform.yaml`\n\n"
        "❌ **kernelform plan failed** (exit 1):\n\n"
        f"```text\n{error}\n```\n"
    )
    assert (
        "::error file=kernelform.yaml,line=4,col=31::count must be an integer, got 'two'"
        in done.stderr
    )
    [comment] = github.ours()
    assert "❌ **kernelform plan failed** (exit 1):" in comment["body"]
    assert "Error: kernelform.yaml:4:31: count must be an integer" in comment["body"]
    assert "::error" not in comment["body"]

    # An apply that fails before its report leaves no empty report behind.
    done, outputs = job.step(command="apply", args="--auto-approve")
    assert done.returncode == 1
    assert outputs["plan-json"] == "" and list(job.temp.rglob("*.json")) == []
    assert outputs["summary"] == f"kernelform apply failed (exit 1).\n{error}"
    assert "❌ **kernelform apply failed** (exit 1)" in job.summary.read_text(encoding="utf-8")


def test_bad_inputs(job: Job, github: FakeGitHub) -> None:
    done, outputs = job.step(command="deploy")
    assert done.returncode == 1 and outputs["exitcode"] == "1"
    assert outputs["summary"].startswith("kernelform action: command must be one of")
    assert done.stdout.startswith(
        "::error::kernelform action: command must be one of validate, plan, apply, destroy"
    )
    write_manifest(job.workspace, job.jupyter, "  etl: {spec: python3}\n")
    done, outputs = job.step(command="validate", comment="true")
    assert done.returncode == 0 and outputs["has-changes"] == "false"
    assert "valid (1 server(s)" in outputs["summary"]
    [comment] = github.ours()
    assert comment["body"].splitlines()[1] == "### kernelform validate: `kernelform.yaml`"
