"""The GitHub Action's runner: ``python -m kernelform.action``, called by ``action.yml``.

Why Python and not inline shell: this is the part of the Action with logic in
it (which flags each command needs, exit statuses, outputs, the pull request
comment), and as a module it is tested on any machine with a simulated GitHub
environment. It runs ``kernelform COMMAND -f MANIFEST ARGS`` as a subprocess
(the same CLI a user runs, with ``GITHUB_ACTIONS=true`` so that it writes the
job summary and annotations itself), copies its output to the log, then:

- before that, refuses args it cannot run in its own terms (apply without
  ``--auto-approve`` nor a saved plan: nobody can answer the prompt), so that no
  message names a flag the Action added rather than the user;
- writes the step outputs ``exitcode``, ``has-changes``, ``plan-json`` (the
  saved plan, at the user's ``--out`` if given, or apply's JSON report; only a
  file holding a JSON document) and ``summary`` (on failure, with kernelform's
  ``Error:`` lines) to ``$GITHUB_OUTPUT``, and a failure to the job summary;
- with ``comment``, creates or edits the pull request's comment for this
  manifest (a hidden marker keyed by working directory and manifest);
- exits 0 when kernelform succeeded (a plan with changes included), else with
  kernelform's status. A comment that cannot be posted is a warning only.

The inputs come as ``KF_ACTION_*`` variables (a composite action does not set
``INPUT_*``); the token is only ever sent to GitHub's API, never to kernelform
nor to any output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Any

from kernelform import __version__
from kernelform.errors import KernelformError
from kernelform.github import (
    Annotation,
    CommentError,
    Comments,
    SummaryError,
    append_step_summary,
    comment_body,
    comment_hint,
    comment_marker,
    pull_request_number,
    workflow_command,
)
from kernelform.markdown import code as code_span
from kernelform.markdown import render_plan_markdown, summary_text
from kernelform.plan import Action, Plan
from kernelform.render import tally_counts

PREFIX = "KF_ACTION_"
TOKEN_VARIABLE = PREFIX + "GITHUB_TOKEN"
ERROR_LINES = 40  # of kernelform's stderr, in a comment about a failure
EXIT_CHANGES = 2
EXIT_INTERRUPTED = 130


class Command(str, Enum):
    VALIDATE = "validate"
    PLAN = "plan"
    APPLY = "apply"
    DESTROY = "destroy"


class InputError(KernelformError):
    """An input of the Action is not usable."""


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """The Action's inputs, as ``action.yml`` passes them."""

    command: Command
    manifest: str
    args: tuple[str, ...]
    working_directory: str
    comment: bool
    token: str

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> Inputs:
        def get(name: str, default: str = "") -> str:
            return environ.get(PREFIX + name, "").strip() or default

        word = get("COMMAND", "plan")
        try:
            command = Command(word)
        except ValueError:
            raise InputError(
                f"command must be one of {', '.join(c.value for c in Command)}, not {word!r}"
            ) from None
        try:
            args = tuple(shlex.split(get("ARGS")))
        except ValueError as e:
            raise InputError(f"args cannot be split into arguments: {e}") from None
        flag = get("COMMENT", "false").lower()
        if flag not in ("true", "false"):
            raise InputError(f"comment must be true or false, not {flag!r}")
        return cls(
            command=command,
            manifest=get("MANIFEST", "kernelform.yaml"),
            args=args,
            working_directory=get("WORKING_DIRECTORY", "."),
            comment=flag == "true",
            token=environ.get(TOKEN_VARIABLE, ""),
        )

    @property
    def key(self) -> str:
        """Which manifest this is, for the comment marker and the output folder."""
        return posixpath.normpath(posixpath.join(self.working_directory, self.manifest))


@dataclass(frozen=True)
class Run:
    """How kernelform ended, and what it printed (stdout unless sent to a file)."""

    code: int
    out: str
    err: str


def _copy(source: IO[str], sink: IO[str], kept: list[str]) -> None:
    for line in source:
        sink.write(line)
        sink.flush()
        kept.append(line)


def run_kernelform(argv: Sequence[str], *, env: Mapping[str, str], stdout: Path | None) -> Run:
    """Run kernelform, copying its output to ours as it comes (for the log) and
    keeping it; with *stdout*, its standard output goes to that file instead."""
    out_lines: list[str] = []
    err_lines: list[str] = []
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(open(stdout, "w", encoding="utf-8")) if stdout else None
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdout=sink if sink is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        copiers = [threading.Thread(target=_copy, args=(process.stderr, sys.stderr, err_lines))]
        if process.stdout is not None:
            copiers.append(
                threading.Thread(target=_copy, args=(process.stdout, sys.stdout, out_lines))
            )
        for copier in copiers:
            copier.start()
        code = process.wait()
        for copier in copiers:
            copier.join()
    return Run(code, "".join(out_lines), "".join(err_lines))


@dataclass(frozen=True, kw_only=True)
class Result:
    """The Action's outputs, and the Markdown for a comment."""

    exitcode: int
    has_changes: bool
    json_path: Path | None
    summary: str
    markdown: str
    failure: str = ""  # for the job summary: kernelform writes its own unless it failed


def output_folder(inputs: Inputs, environ: Mapping[str, str]) -> Path:
    """A folder of its own for this manifest's files, in the runner's temp dir."""
    base = Path(environ.get("RUNNER_TEMP") or tempfile.gettempdir())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", inputs.key).strip("._") or "manifest"
    digest = hashlib.sha256(inputs.key.encode()).hexdigest()[:8]
    folder = base / "kernelform" / f"{slug[:60]}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def error_lines(err: str) -> list[str]:
    """The ``Error:`` lines kernelform printed (already redacted by kernelform)."""
    return [line for line in err.splitlines() if line.startswith("Error:")]


def failure_markdown(key: str, command: Command, code: int, lines: Sequence[str]) -> str:
    """What failed, its exit status and *lines* in a code block."""
    shown = "\n".join(lines) or f"exit status {code}"
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", shown)), default=0))
    return (
        f"### kernelform {command.value}: {code_span(key)}\n\n"
        f"❌ **kernelform {command.value} failed** (exit {code}):\n\n"
        f"{fence}text\n{shown}\n{fence}\n"
    )


def report_summary(command: Command, document: Mapping[str, Any], *, code: int) -> str:
    """The report's summary line, in the CLI's words ("Apply complete! 2 started; ...")."""
    summary = document.get("summary", {})
    skipped = int(summary.get("skipped", 0))
    if not (document.get("actions") or document.get("blocked") or skipped):
        return "Nothing to do."
    ending, counts = tally_counts(
        {action: int(summary.get(action.value, 0)) for action in Action},
        failed=int(summary.get("failed", 0)),
        blocked=int(summary.get("blocked", 0)),
        skipped=skipped,
        interrupted=code == EXIT_INTERRUPTED,
    )
    return f"{command.value.capitalize()} {ending} {counts}."


def read_document(path: Path) -> dict[str, Any] | None:
    """The JSON document in *path*; None, and no file left behind, if it holds none
    (kernelform failed before printing its report)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        path.unlink(missing_ok=True)
        return None
    return document


@dataclass(frozen=True, kw_only=True)
class Invocation:
    """What the Action adds to its user's args, and where the JSON document will be."""

    flags: tuple[str, ...]
    json_path: Path | None


def invocation(inputs: Inputs, folder: Path) -> Invocation:
    """The Action's own flags for *inputs*; an ``InputError``, in terms of the Action's
    inputs, for args that kernelform would refuse only because of them."""
    from kernelform.cli.arguments import given_parameters  # the CLI's parser, exactly

    given = given_parameters(inputs.command.value, inputs.args)
    name = inputs.command.value
    if inputs.command is Command.PLAN:
        out = given.get("out")
        if out is None:
            path = folder / "plan.json"
            path.unlink(missing_ok=True)
            return Invocation(flags=("--detailed-exitcode", "--out", str(path)), json_path=path)
        if str(out) == "-":
            raise InputError(
                "args: '--out -' would print the plan into the log; the Action needs a file "
                "for plan-json: give --out a path, or leave --out out"
            )
        return Invocation(flags=("--detailed-exitcode",), json_path=Path(str(out)).absolute())
    if inputs.command in (Command.APPLY, Command.DESTROY):
        if given.get("as_markdown"):
            raise InputError(
                f"args: --markdown is not for command {name}: the Action takes kernelform's "
                "JSON report (plan-json), and the Markdown one goes to the job summary anyway"
            )
        if not given.get("auto_approve") and "plan_file" not in given:
            way = "'--auto-approve' or a saved plan file" if name == "apply" else "'--auto-approve'"
            raise InputError(
                f"command {name} needs {way} in args: nobody can answer its confirmation "
                "prompt in a workflow"
            )
        return Invocation(flags=("--json",), json_path=folder / f"{name}.json")
    return Invocation(flags=(), json_path=None)


def carry_out(inputs: Inputs, environ: Mapping[str, str]) -> Result:
    """Run the command; what it gives, as the Action's outputs."""
    folder = output_folder(inputs, environ)
    planned = invocation(inputs, folder)
    # The Action's flags first: a user's trailing '--out' must not take one of them as its value.
    argv = [sys.executable, "-m", "kernelform", inputs.command.value, "-f", inputs.manifest]
    argv += [*planned.flags, *inputs.args]
    json_path = planned.json_path
    stdout = json_path if inputs.command in (Command.APPLY, Command.DESTROY) else None
    env = {k: v for k, v in environ.items() if not k.startswith(PREFIX)}
    env["GITHUB_ACTIONS"] = "true"
    run = run_kernelform(argv, env=env, stdout=stdout)
    failed = run.code not in (0, EXIT_CHANGES) or (
        run.code == EXIT_CHANGES and inputs.command is not Command.PLAN
    )
    errors = error_lines(run.err) if failed else []
    if inputs.command is Command.PLAN and not failed and json_path is not None:
        plan = Plan.from_dict(
            json.loads(json_path.read_text(encoding="utf-8")), source=str(json_path)
        )
        return Result(
            exitcode=run.code,
            has_changes=plan.has_changes,
            json_path=json_path,
            summary=summary_text(plan),
            markdown=render_plan_markdown(plan, where=inputs.key),
        )
    document = read_document(stdout) if stdout is not None else None
    markdown = ""
    if failed:  # the comment shows the end of stderr; the job summary the Error: lines
        shown = [line for line in run.err.splitlines() if not line.startswith("::")]
        markdown = failure_markdown(inputs.key, inputs.command, run.code, shown[-ERROR_LINES:])
    if inputs.command is Command.VALIDATE and not failed:
        valid = code_span(run.out.strip())
        markdown = f"### kernelform validate: {code_span(inputs.key)}\n\n✅ {valid}\n"
    if document is not None:
        summary = report_summary(inputs.command, document, code=run.code)
        has_changes = bool(document.get("actions") or document.get("blocked"))
    elif failed:
        summary = f"kernelform {inputs.command.value} failed (exit {run.code})."
        has_changes = False
    else:
        summary = run.out.strip().splitlines()[-1] if run.out.strip() else "valid"
        has_changes = False
    return Result(
        exitcode=run.code,
        has_changes=has_changes,
        json_path=stdout if document is not None else None,
        summary="\n".join([summary, *errors]),
        markdown=markdown,
        failure=failure_markdown(inputs.key, inputs.command, run.code, errors) if failed else "",
    )


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append *outputs* to ``$GITHUB_OUTPUT`` (multi-line safe delimiters)."""
    with open(path, "a", encoding="utf-8") as f:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            f.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def footer(environ: Mapping[str, str], event: Mapping[str, Any]) -> str:
    """Which commit and run the comment describes."""
    pull = event.get("pull_request")
    head = pull.get("head", {}) if isinstance(pull, Mapping) else {}
    sha = str(head.get("sha") or environ.get("GITHUB_SHA", ""))[:12]
    parts = [f"kernelform {__version__}"]
    if sha:
        parts.append(f"commit {code_span(sha)}")
    server, repository, run_id = (
        environ.get("GITHUB_SERVER_URL", "https://github.com"),
        environ.get("GITHUB_REPOSITORY", ""),
        environ.get("GITHUB_RUN_ID", ""),
    )
    if repository and run_id.isdigit():
        parts.append(f"[workflow run]({server}/{repository}/actions/runs/{run_id})")
    return "\n<sub>" + " · ".join(parts) + "</sub>\n"


def post_comment(inputs: Inputs, result: Result, environ: Mapping[str, str]) -> str:
    """Create or edit this manifest's pull request comment; one line for the log."""
    event_path = environ.get("GITHUB_EVENT_PATH", "")
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8")) if event_path else {}
    except (OSError, ValueError):
        event = {}
    number = pull_request_number(event) if isinstance(event, dict) else None
    if number is None:
        return workflow_command(
            Annotation.NOTICE, "kernelform: not a pull request event; no comment posted"
        )
    if not inputs.token:
        return workflow_command(
            Annotation.WARNING, "kernelform: no github-token; the plan comment was not posted"
        )
    comments = Comments(
        api_url=environ.get("GITHUB_API_URL") or "https://api.github.com",
        repository=environ.get("GITHUB_REPOSITORY", ""),
        number=number,
        token=inputs.token,
    )
    marker = comment_marker(inputs.key)
    body = comment_body(marker, result.markdown + footer(environ, event))
    try:
        outcome = comments.upsert(body, marker=marker)
    except CommentError as e:
        return workflow_command(
            Annotation.WARNING,
            f"kernelform: the plan comment on pull request #{number} was not posted: "
            f"{e}; {comment_hint(e)}",
        )
    return f"kernelform: {outcome.value} the comment on pull request #{number}"


def publish_failure(environ: Mapping[str, str], markdown: str) -> None:
    """Append a failure's Markdown to the job summary; a warning if that cannot be done."""
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        append_step_summary(Path(path), markdown)
    except SummaryError as e:
        print(workflow_command(Annotation.WARNING, f"kernelform: {e}"), flush=True)


def refuse(environ: Mapping[str, str], error: InputError, command: Command | None) -> int:
    """An input the Action cannot run: said in the log, the outputs and the job summary."""
    line = f"kernelform action: {error}"
    print(workflow_command(Annotation.ERROR, line), flush=True)
    output_file = environ.get("GITHUB_OUTPUT")
    if output_file:
        write_outputs(
            Path(output_file),
            {"exitcode": "1", "has-changes": "false", "plan-json": "", "summary": line},
        )
    what = f"kernelform {command.value}" if command is not None else "kernelform"
    publish_failure(environ, f"### {what}: not run\n\n❌ {line}\n")
    return 1


def main(environ: Mapping[str, str] | None = None) -> int:
    """The Action's step: run, publish, and return the step's exit status."""
    env = os.environ if environ is None else environ
    try:
        inputs = Inputs.read(env)
    except InputError as e:
        return refuse(env, e, None)
    try:
        result = carry_out(inputs, env)
    except InputError as e:
        return refuse(env, e, inputs.command)
    outputs = {
        "exitcode": str(result.exitcode),
        "has-changes": "true" if result.has_changes else "false",
        "plan-json": str(result.json_path) if result.json_path else "",
        "summary": result.summary,
    }
    output_file = env.get("GITHUB_OUTPUT")
    if output_file:
        write_outputs(Path(output_file), outputs)
    if result.failure:
        publish_failure(env, result.failure)
    print(f"kernelform: {result.summary}", flush=True)
    if inputs.comment:
        if inputs.command in (Command.PLAN, Command.VALIDATE):
            line = post_comment(inputs, result, env)
        else:
            line = workflow_command(
                Annotation.NOTICE,
                f"kernelform: comment is for plan and validate; {inputs.command.value} "
                "posts its report to the job summary",
            )
        print(line, flush=True)
    ok = result.exitcode == 0 or (
        result.exitcode == EXIT_CHANGES and inputs.command is Command.PLAN
    )
    return 0 if ok else result.exitcode


if __name__ == "__main__":
    sys.exit(main())
