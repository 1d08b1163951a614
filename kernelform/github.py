"""What kernelform knows about GitHub Actions, in one place.

Three things, none of which needs click or reads the environment itself (the
caller reads it and passes it in):

- workflow commands: ``::error file=F,line=L,col=C::message`` puts a manifest
  problem on the changed line of a pull request, ``::warning::`` flags a plan
  with blocked changes; values are escaped as GitHub's toolkit does;
- the job summary: Markdown appended to the file ``$GITHUB_STEP_SUMMARY`` names;
- the pull request comment: one comment per manifest, found again by a hidden
  marker and edited in place, through GitHub's REST API.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import requests

from kernelform.errors import KernelformError, Problem, shorten
from kernelform.plan import Change

COMMENT_LIMIT = 65_536  # characters GitHub accepts in an issue comment body
MAX_PAGES = 100  # pages of 100 comments read while looking for ours
API_VERSION = "2022-11-28"


class Annotation(str, Enum):
    """The level of a workflow command that annotates the run."""

    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"


@dataclass(frozen=True, kw_only=True)
class Actions:
    """The GitHub Actions run kernelform finds itself in, from its environment."""

    workspace: Path | None = None
    step_summary: Path | None = None

    @classmethod
    def detect(cls, environ: Mapping[str, str]) -> Actions | None:
        """The run described by *environ*, or None outside GitHub Actions."""
        if environ.get("GITHUB_ACTIONS") != "true":
            return None
        workspace = environ.get("GITHUB_WORKSPACE") or None
        summary = environ.get("GITHUB_STEP_SUMMARY") or None
        return cls(
            workspace=Path(workspace) if workspace else None,
            step_summary=Path(summary) if summary else None,
        )


class SummaryError(KernelformError):
    """The job summary file could not be written."""


class CommentError(KernelformError):
    """GitHub's API refused or failed to list, create or edit the comment."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


# -- workflow commands -----------------------------------------------------------------


def escape_data(value: str) -> str:
    """A command's message, escaped: ``%``, ``\\r`` and ``\\n`` are percent-encoded."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A command's property value: as a message, and ``:`` and ``,`` too."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def workflow_command(
    level: Annotation,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    """One ``::LEVEL prop=value,...::message`` line."""
    properties = [
        f"{name}={escape_property(str(value))}"
        for name, value in (("file", file), ("line", line), ("col", col), ("title", title))
        if value is not None
    ]
    head = f"::{level.value}" + (" " + ",".join(properties) if properties else "")
    return f"{head}::{escape_data(message)}"


def workspace_path(file: str, *, workspace: Path | None, cwd: Path) -> str | None:
    """*file* (as kernelform names it, relative to *cwd*) relative to the workspace,
    with ``/`` separators, as annotations need; None if it lies outside the workspace,
    where GitHub cannot attach an annotation to it."""
    if workspace is None:
        return file
    absolute = Path(os.path.normpath(cwd / file))
    try:
        relative = absolute.relative_to(Path(os.path.normpath(workspace)))
    except ValueError:
        return None
    return relative.as_posix()


def problem_commands(
    problems: Iterable[Problem], *, workspace: Path | None, cwd: Path
) -> list[str]:
    """One ``::error`` line per manifest problem, located in the workspace (a file
    outside it is named in the message instead, as ``FILE:LINE:COL:``)."""
    commands = []
    for problem in problems:
        where = workspace_path(problem.file, workspace=workspace, cwd=cwd)
        if where is None:
            message = f"{problem.file}:{problem.line}:{problem.col}: {problem.message}"
            commands.append(workflow_command(Annotation.ERROR, message))
        else:
            commands.append(
                workflow_command(
                    Annotation.ERROR,
                    problem.message,
                    file=where,
                    line=problem.line,
                    col=problem.col,
                )
            )
    return commands


def append_step_summary(path: Path, markdown: str) -> None:
    """Append *markdown* to the job summary file; a ``SummaryError`` if impossible."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(markdown if markdown.endswith("\n") else markdown + "\n")
    except OSError as e:
        raise SummaryError(
            f"cannot write the job summary to {path} ({e.strerror or type(e).__name__})"
        ) from e


# -- the pull request comment ----------------------------------------------------------


def comment_marker(key: str) -> str:
    """The hidden first line that tells our comment for *key* (a manifest) apart."""
    normal = posixpath.normpath(key.replace("\\", "/")) if key else "."
    safe = re.sub(r"[^A-Za-z0-9._/@+=~-]", lambda m: f"%{ord(m.group()):02X}", normal)
    safe = safe.replace("--", "-%2D")  # '--' cannot appear inside an HTML comment
    return f"<!-- kernelform:plan:{safe} -->"


def comment_body(marker: str, markdown: str, *, limit: int = COMMENT_LIMIT) -> str:
    """*marker* then *markdown*, cut at a line end to fit GitHub's size limit."""
    body = f"{marker}\n{markdown}"
    if len(body) <= limit:
        return body
    note = "\n\n… (cut to fit a comment: the job summary has the whole plan)\n"
    cut = body[: limit - len(note)]
    return cut[: cut.rfind("\n")] + note


def pull_request_number(event: Mapping[str, Any]) -> int | None:
    """The pull request an Actions event is about (``pull_request`` and
    ``pull_request_target`` events, or an ``issue_comment`` on a pull request)."""
    pull = event.get("pull_request")
    if isinstance(pull, Mapping) and isinstance(pull.get("number"), int):
        return int(pull["number"])
    issue = event.get("issue")
    if isinstance(issue, Mapping) and "pull_request" in issue:
        number = issue.get("number")
        return number if isinstance(number, int) else None
    return None


class CommentOutcome(str, Enum):
    CREATED = "created"
    UPDATED = "updated"


@dataclass(frozen=True)
class Comments:
    """The comments of one pull request, through the REST API.

    The token is sent only in the ``Authorization`` header; no message this
    class makes contains it.
    """

    api_url: str
    repository: str
    number: int
    token: str
    timeout: float = 30.0

    def _request(
        self, session: requests.Session, method: str, url: str, **kwargs: Any
    ) -> requests.Response:
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": API_VERSION,
        }
        what = f"{method} {url.split('?')[0]}"
        try:
            response = session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise CommentError(f"{what} failed: {type(e).__name__}") from None
        if response.status_code >= 400:
            raise CommentError(
                f"{what}: GitHub answered {response.status_code}{self._why(response)}",
                status=response.status_code,
            )
        return response

    def _why(self, response: requests.Response) -> str:
        try:
            message = response.json().get("message")
        except (ValueError, AttributeError):
            message = None
        if not isinstance(message, str) or not message:
            return ""
        if self.token:
            message = message.replace(self.token, "***")
        return f" ({shorten(message, 120)})"

    def upsert(self, body: str, *, marker: str) -> CommentOutcome:
        """Edit the comment that starts with *marker*, or create it if there is none."""
        base = self.api_url.rstrip("/")
        with requests.Session() as session:
            url: str | None = (
                f"{base}/repos/{self.repository}/issues/{self.number}/comments?per_page=100"
            )
            found: int | None = None
            pages = 0
            while url and found is None and pages < MAX_PAGES:
                response = self._request(session, "GET", url)
                pages += 1
                comments = response.json()
                if not isinstance(comments, list):
                    raise CommentError(f"GET {url.split('?')[0]}: not a list of comments")
                for comment in comments:
                    text = comment.get("body") if isinstance(comment, dict) else None
                    if isinstance(text, str) and text.startswith(marker):
                        found = int(comment["id"])
                        break
                url = response.links.get("next", {}).get("url")
            if found is not None:
                self._request(
                    session,
                    "PATCH",
                    f"{base}/repos/{self.repository}/issues/comments/{found}",
                    json={"body": body},
                )
                return CommentOutcome.UPDATED
            self._request(
                session,
                "POST",
                f"{base}/repos/{self.repository}/issues/{self.number}/comments",
                json={"body": body},
            )
            return CommentOutcome.CREATED


def comment_hint(error: CommentError) -> str:
    """What to do about a failed comment, in one clause."""
    if error.status == 403:
        return (
            "give the job 'permissions: pull-requests: write' (a pull request from a fork "
            "only gets a read-only token)"
        )
    if error.status == 401:
        return "check the github-token input"
    if error.status == 404:
        return "check that the token can see this repository and pull request"
    return "the plan is in the job summary and the log"


def blocked_warning(blocked: Iterable[Change]) -> str | None:
    """A ``::warning`` naming the blocked changes, or None if there are none."""
    names = [f"{c.address} ({c.action.value})" for c in blocked]
    if not names:
        return None
    return workflow_command(
        Annotation.WARNING,
        f"{len(names)} change(s) blocked, not carried out: {', '.join(names)}; "
        "see the plan for why (a kernel in use needs --force)",
        title="kernelform",
    )
