"""What the commands share: their options, the run's settings, the printer, and hints.

A manifest command is a function taking a ``Workspace`` (built from the shared
options by ``workspace_command``) and a ``Printer``; its errors get a hint
worded for that command (``manifest_hint``: ``servers.NAME.token`` here, where a
raw command would say ``--token``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable
from enum import Enum, Flag, auto
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from kernelform.errors import KernelformError
    from kernelform.render import Line, Segment
    from kernelform.runtime import Runtime
    from kernelform.workspace import Settings, Workspace

from kernelform.cli.app import (
    DEFAULT_MANIFEST,
    EXIT_ERROR,
    NO_KERNEL_ID_ENV,
    STATE_ENV,
    TIMEOUT_ENV,
    Exit,
    F,
    emit,
    warn,
)


class Output(str, Enum):
    """What a plan, apply or destroy prints on stdout."""

    HUMAN = "human"
    JSON = "json"
    MARKDOWN = "markdown"


def output_of(*, as_json: bool, as_markdown: bool) -> Output:
    if as_json and as_markdown:
        raise click.UsageError("--json and --markdown are exclusive; choose one")
    return Output.JSON if as_json else Output.MARKDOWN if as_markdown else Output.HUMAN


def machine_output_options(command: F) -> F:
    """--json and --markdown for apply and destroy: the report, never a prompt."""
    command = click.option(
        "--markdown",
        "as_markdown",
        is_flag=True,
        help="Print the report as Markdown (progress on stderr). Never asks: needs "
        "--auto-approve or a saved plan.",
    )(command)
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the report as one JSON document (progress on stderr). Never asks: needs "
        "--auto-approve or a saved plan.",
    )(command)


def current_runtime(*, read_timeout: float | None = None) -> Runtime:
    """This run's ``Runtime`` (made by ``main``), completed from the environment.

    ``KERNELFORM_TIMEOUT`` and ``KERNELFORM_ASSUME_NO_KERNEL_ID`` are read here,
    when a command needs them, so that a bad value fails that command with one
    line and never ``--help``. An explicit *read_timeout* (``--timeout``) wins.
    """
    from dataclasses import replace

    from kernelform.runtime import KernelIds, Runtime, Timeouts

    found = click.get_current_context().find_object(Runtime)
    base = found if found is not None else Runtime()
    read = read_timeout if read_timeout is not None else env_seconds(TIMEOUT_ENV)
    timeouts = Timeouts() if read is None else Timeouts(read=read, restart=max(read, 90.0))
    never = os.environ.get(NO_KERNEL_ID_ENV, "").strip() not in ("", "0")
    return replace(
        base, timeouts=timeouts, kernel_ids=KernelIds.NEVER if never else KernelIds.ASK_SERVER
    )


def env_seconds(name: str) -> float | None:
    from kernelform.errors import KernelformError

    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise KernelformError(
            f"{name} must be a positive number of seconds (e.g. 30 or 2.5), not {raw!r}"
        )
    return value


def manifest_hint(error: KernelformError, workspace: Workspace) -> str:
    """What fixes *error* in a command that reads the manifest."""
    from kernelform.errors import ClientError, Remedy, StateLocked, StateWriteError

    remedy = error.remedy
    manifest = vars(workspace).get("manifest")  # only if already read: never read it here
    found = None
    if isinstance(error, ClientError) and manifest is not None:
        found = workspace.config_key(error.server)
    where = f"in {manifest.path}" if manifest is not None else "in the manifest"
    key = found or "servers.NAME"
    if remedy is Remedy.CHECK_TOKEN:
        return f"check {key}.token {where} (and the variable it comes from)"
    if remedy is Remedy.TRUST_CERTIFICATE:
        return (
            f"set {key}.ca_bundle {where} to the server's CA certificate, or "
            f"{key}.insecure: true to skip verification"
        )
    if remedy is Remedy.LIST_KERNELS:
        return "list the server's kernels with 'kernelform kernels list --server URL'"
    if remedy is Remedy.MAKE_NEW_PLAN:
        return "make a new one with 'kernelform plan --out FILE'"
    if remedy is Remedy.FORCE_PUSH:
        return (
            "see what it holds with 'kernelform state pull'; push again with --force only if"
            " the pushed state is the right one (the stored one is lost)"
        )
    if remedy is Remedy.RAISE_TIMEOUT:
        return "or wait longer for each answer with KERNELFORM_TIMEOUT=SECONDS (default 30)"
    if isinstance(error, StateWriteError) and error.recovery is not None:
        again = [f"--workspace {workspace.settings.workspace}"] * (
            workspace.settings.workspace != "default"
        )
        if workspace.settings.state:
            again.insert(0, "--state (or KERNELFORM_STATE)")
        if again:
            return f"push it with the same {' and '.join(again)} as this run"
        return ""
    if remedy is Remedy.WAIT_FOR_LOCK and isinstance(error, StateLocked):
        longer = "a longer --lock-timeout" if error.waited > 0 else "--lock-timeout 60s"
        hint = f"wait for it to finish, or retry with {longer}"
        holder = error.holder
        if error.breakable and holder is not None:
            hint += (
                "; if that process is gone (its host cannot be checked from here), run"
                f" 'kernelform force-unlock {getattr(holder, 'id', 'LOCK_ID')}'"
            )
        return hint
    return ""


SECONDS_RULE = (
    "use a number of seconds (e.g. 1.5) or whole numbers followed by s, m, h or d "
    "(e.g. 90s, 5m, 1h30m)"
)


def seconds_of(value: str, *, rule: str = SECONDS_RULE) -> float:
    """A duration option's seconds: plain seconds (``90``, ``1.5``) or ``90s``, ``5m``,
    ``1h30m``; the message of a bad one says both forms (``0.5s`` is neither)."""
    from kernelform.duration import parse_duration

    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        return seconds  # the caller says how small it may be
    try:
        return parse_duration(value, rule=rule).total_seconds()
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def parse_lock_timeout(ctx: click.Context, param: click.Parameter, value: str) -> float:
    if value.strip() in ("0", "0s"):
        return 0.0
    seconds = seconds_of(value)
    if seconds < 0:
        raise click.BadParameter(f"it must not be negative, e.g. 60s, not {value!r}")
    return seconds


class Shared(Flag):
    """Which of the options every manifest command may share a command takes.

    A command lists only the options that do something for it: ``validate``
    reads the manifest alone, ``force-unlock`` needs to find the state but
    neither waits for the lock nor prints in colour.
    """

    MANIFEST = auto()
    STATE = auto()
    LOCK = auto()
    COLOR = auto()
    ALL = MANIFEST | STATE | LOCK | COLOR


def workspace_options(command: F, shared: Shared = Shared.ALL) -> F:
    options = [
        click.option(
            "-f",
            "--file",
            "manifest",
            type=click.Path(dir_okay=False, path_type=Path),
            default=DEFAULT_MANIFEST,
            show_default=True,
            envvar="KERNELFORM_FILE",
            help="The manifest [env: KERNELFORM_FILE].",
        ),
    ]
    if Shared.STATE in shared:
        options.append(
            click.option(
                "--state",
                "state",
                default=None,
                envvar=STATE_ENV,
                metavar="PATH|URL",
                help="Where the state lives: a file, or a postgresql:// URL [env: KERNELFORM_STATE;"
                " else the manifest's 'state:', else .kernelform/state.json next to the manifest].",
            )
        )
        options.append(
            click.option(
                "-w",
                "--workspace",
                default="default",
                show_default=True,
                envvar="KERNELFORM_WORKSPACE",
                help="Which of the independent states kept there [env: KERNELFORM_WORKSPACE].",
            )
        )
    if Shared.LOCK in shared:
        options.append(
            click.option(
                "--lock-timeout",
                default="0s",
                callback=parse_lock_timeout,
                show_default=True,
                metavar="DURATION",
                help="How long to wait for the state lock (e.g. 60s, 5m).",
            )
        )
    if Shared.COLOR in shared:
        options.append(
            click.option(
                "--no-color", is_flag=True, help="No colour (also: NO_COLOR, TERM=dumb, or a pipe)."
            )
        )
    for option in reversed(options):
        command = option(command)
    return command


def complete_addresses(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Shell completion of --target: the manifest's kernels and addresses (none if unreadable)."""
    from kernelform.errors import KernelformError
    from kernelform.manifest import load_manifest

    path = ctx.params.get("manifest") or os.environ.get("KERNELFORM_FILE") or DEFAULT_MANIFEST
    try:
        manifest = load_manifest(path)
    except KernelformError:
        return []
    names = {*manifest.kernels, *(d.address for d in manifest.desired())}
    return [
        click.shell_completion.CompletionItem(name)
        for name in sorted(names)
        if name.startswith(incomplete)
    ]


def plan_options(command: F) -> F:
    options = [
        click.option(
            "-t",
            "--target",
            "targets",
            multiple=True,
            shell_complete=complete_addresses,
            help="Limit to this address (repeatable); 'etl' covers etl[0], etl[1], ... "
            "and every hub user's (etl@ana); 'etl@ana' only ana's.",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="Include restarts, replaces and shutdowns of kernels in use.",
        ),
        click.option(
            "--parallelism",
            type=click.IntRange(min=1, max=256),
            default=10,
            show_default=True,
            help="How many actions run at once.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def wait_options(command: F) -> F:
    options = [
        click.option(
            "--no-wait",
            is_flag=True,
            help="Do not wait for started or restarted kernels to answer (nor run setup).",
        ),
        click.option(
            "--wait-timeout",
            default=None,
            callback=parse_wait_timeout,
            metavar="DURATION",
            help="How long to wait for each kernel to answer, over its ready_timeout "
            "(default 60s).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def parse_wait_timeout(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> float | None:
    if value is None:
        return None
    seconds = 0.0 if value.strip() == "0s" else seconds_of(value)
    if seconds <= 0:
        raise click.BadParameter("it must be more than zero, e.g. 30s")
    return seconds


def workspace_command(
    *, planning: bool = False, waiting: bool = False, shared: Shared = Shared.ALL
) -> Callable[[Callable[..., None]], Any]:
    """Add the options every manifest command shares, and hand the command a
    ``Workspace`` built from them (and a ``Printer``) instead of the raw options.

    With *planning*, also --target, --force and --parallelism; with *waiting*,
    --no-wait and --wait-timeout.
    """

    def decorate(function: Callable[..., None]) -> Any:
        @wraps(function)
        def command(
            *,
            manifest: Path,
            state: str | None = None,
            workspace: str = "default",
            lock_timeout: float = 0.0,
            no_color: bool = False,
            targets: tuple[str, ...] = (),
            force: bool = False,
            parallelism: int = 10,
            no_wait: bool = False,
            wait_timeout: float | None = None,
            **args: Any,
        ) -> None:
            from kernelform.workspace import Settings

            settings = Settings(
                manifest_path=manifest,
                state=state or None,
                workspace=workspace,
                lock_timeout=lock_timeout,
                targets=targets,
                force=force,
                parallelism=parallelism,
                wait=not no_wait,
                wait_timeout=wait_timeout,
            )
            from kernelform.errors import KernelformError

            with open_workspace(settings) as opened:
                try:
                    function(opened, Printer(no_color=no_color), **args)
                except KernelformError as e:
                    e.hint = e.hint or manifest_hint(e, opened)
                    raise

        decorated = plan_options(command) if planning else command
        decorated = wait_options(decorated) if waiting else decorated
        return workspace_options(decorated, shared)

    return decorate


class Printer:
    """The one place that writes human output, in colour or not."""

    def __init__(self, *, no_color: bool) -> None:
        self.color = (
            not no_color and not os.environ.get("NO_COLOR") and os.environ.get("TERM", "") != "dumb"
        )
        self._terminals: dict[bool, bool] = {}

    def lines(self, lines: Iterable[Line], *, err: bool = False) -> None:
        """Write *lines* in one go (an apply of 1,000 kernels prints 1,000 of them)."""
        stream = sys.stderr if err else sys.stdout
        if err not in self._terminals:
            self._terminals[err] = stream.isatty()
        colour = self.color and self._terminals[err]
        text = "".join("".join(self._style(p, colour) for p in parts) + "\n" for parts in lines)
        if text:
            stream.write(text)
            stream.flush()

    def _style(self, segment: Segment, colour: bool) -> str:
        if not colour or segment.style is None:
            return segment.text
        style = segment.style.value
        if style == "bold":
            return click.style(segment.text, bold=True)
        if style == "dim":
            return click.style(segment.text, dim=True)
        return click.style(segment.text, fg=style)


def open_workspace(settings: Settings) -> Workspace:
    from kernelform.workspace import Workspace

    return Workspace(settings, runtime=current_runtime())


def warn_clear_text(workspace: Workspace) -> None:
    """Warn once per server or hub whose token travels in clear text or unverified TLS."""
    for line in workspace.transport_warnings():
        warn(line)


PROMPT = "  Only 'yes' will be accepted"


def confirm(
    question: str,
    *,
    auto_approve: bool,
    cancelled: str,
    flag: str = "--auto-approve",
    doing: str = "apply",
) -> None:
    """Ask *question*; go on only on ``yes``, else print *cancelled* and exit 1.

    On a terminal the answer is prompted for; otherwise it is read from stdin,
    as Terraform does (``echo yes | kernelform apply``). A stdin that is closed
    or gives nothing is refused with one line naming *flag* (which would
    *doing* without asking).
    """
    if auto_approve:
        return
    emit(question)
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            answer = click.prompt(PROMPT, default="", show_default=False)
        except click.Abort:
            emit(err=True)  # Ctrl-C or Ctrl-D left the cursor after the prompt
            raise
    else:
        answer = piped_answer(flag=flag, doing=doing)
    given = answer.strip()
    if given != "yes":
        if given.lower().startswith("y"):  # 'y' (from `yes |`), 'Yes': say why not
            shown = given if len(given) <= 20 else given[:20] + "…"
            cancelled = f"{cancelled} Only 'yes' is accepted; the answer was {shown!r}."
        emit(cancelled)
        raise Exit(EXIT_ERROR)


def piped_answer(*, flag: str, doing: str) -> str:
    """The answer on a stdin that is not a terminal: its first line."""
    from kernelform.errors import KernelformError

    refusal = (
        f"no terminal to ask for confirmation and no answer on stdin; pass {flag} to "
        f"{doing} without asking (or pipe 'yes' into it)"
    )
    try:
        line = sys.stdin.readline() if sys.stdin is not None else ""
    except (OSError, ValueError):  # closed, or not readable
        line = ""
    if not line:
        raise KernelformError(refusal)
    emit(f"{PROMPT}: (the answer was read from stdin)")
    return line
