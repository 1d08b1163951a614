"""The command line: a thin click layer over the library.

Options become settings objects, the library does the work, output goes
through ``emit``/``emit_json``, and exit statuses are decided in ``main`` alone:

====  ==========================================================
 0    success (with ``--detailed-exitcode``: no changes)
 1    an error (one line on stderr, never a traceback)
 2    ``--detailed-exitcode`` only: the plan has changes
 3    ``apply``/``destroy``: done, but blocked changes remain
130   interrupted (Ctrl-C)
====  ==========================================================

Usage errors exit 1 too, so that 2 can only ever mean "changes present".
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum, Flag, auto
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kernelform import __version__

if TYPE_CHECKING:
    from kernelform.client import HttpClient, JupyterClient
    from kernelform.errors import KernelformError
    from kernelform.executor import Report
    from kernelform.facts import LiveServer
    from kernelform.github import Actions
    from kernelform.hooks import Hooks
    from kernelform.manifest import Manifest
    from kernelform.plan import Plan as KfPlan
    from kernelform.render import Line, Segment
    from kernelform.runtime import Runtime
    from kernelform.state import State
    from kernelform.workspace import Settings, Workspace

DEFAULT_MANIFEST = "kernelform.yaml"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_BLOCKED = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])

TIMEOUT_ENV = "KERNELFORM_TIMEOUT"
STATE_ENV = "KERNELFORM_STATE"
NO_KERNEL_ID_ENV = "KERNELFORM_ASSUME_NO_KERNEL_ID"


class Exit(Exception):
    """Raised by a command to end with a given status after its output."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


def emit(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    click.echo(text, err=err, nl=nl)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def warn(text: str) -> None:
    click.echo(f"Warning: {text}", err=True)


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


def github_actions() -> Actions | None:
    """The GitHub Actions run this is, if any (``GITHUB_ACTIONS=true``)."""
    from kernelform.github import Actions

    return Actions.detect(os.environ)


def publish(markdown: str, blocked: Sequence[Any]) -> None:
    """In GitHub Actions: append *markdown* to the job summary and flag blocked changes.

    A summary that cannot be written is a warning: the run itself went fine.
    """
    from kernelform.github import SummaryError, append_step_summary, blocked_warning

    actions = github_actions()
    if actions is None:
        return
    if actions.step_summary is None:
        warn("GITHUB_STEP_SUMMARY is not set; no job summary written")
    else:
        try:
            append_step_summary(actions.step_summary, markdown)
        except SummaryError as e:
            warn(str(e))
    warning = blocked_warning(blocked)
    if warning is not None:
        emit(warning, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kernelform")
def cli() -> None:
    """Jupyter kernels as config: declare kernels in YAML, plan and apply them."""


# -- kernels: the raw operations ---------------------------------------------------


def server_options(command: F) -> F:
    """--server/--token and the transport options shared by every raw command."""
    options = [
        click.option(
            "--server",
            envvar="JUPYTER_URL",
            default="http://localhost:8888",
            show_default=True,
            help="Jupyter server URL, with its path prefix if any [env: JUPYTER_URL].",
        ),
        click.option(
            "--token",
            envvar="JUPYTER_TOKEN",
            default="",
            show_default=False,
            help="API token [env: JUPYTER_TOKEN]. Sent only in the Authorization header.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="Seconds to wait for each answer.",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="CA certificate bundle to verify the server's TLS certificate.",
        ),
        click.option("--insecure", is_flag=True, help="Skip TLS certificate verification."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_client(
    *, server: str, token: str, timeout: float, ca_bundle: str | None, insecure: bool
) -> JupyterClient:
    from kernelform.client import JupyterClient

    runtime = current_runtime(read_timeout=timeout)
    runtime.secrets.add(token)
    if ca_bundle is not None:
        check_ca_bundle(ca_bundle)
    verify: bool | str = False if insecure else (ca_bundle or True)
    client = JupyterClient(
        server,
        token,
        timeouts=runtime.timeouts,
        verify=verify,
        hooks=runtime.hooks,
        kernel_ids=runtime.kernel_ids,
    )
    if client.sends_token_in_clear:
        warn(f"the token is sent over plain http to {client.server}; use https")
    if client.skips_tls_verification:
        warn(f"the TLS certificate of {client.server} is not verified (--insecure)")
    return client


def check_ca_bundle(path: str) -> None:
    """Refuse a --ca-bundle that holds no CA certificate now, not at the first request."""
    import ssl

    from kernelform.errors import KernelformError

    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
        raise KernelformError(
            f"--ca-bundle {path} holds no usable CA certificate ({reason}); give a PEM file"
            " with the CA that signed the server's certificate"
        ) from None


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
    read = read_timeout if read_timeout is not None else _env_seconds(TIMEOUT_ENV)
    timeouts = Timeouts() if read is None else Timeouts(read=read, restart=max(read, 90.0))
    never = os.environ.get(NO_KERNEL_ID_ENV, "").strip() not in ("", "0")
    return replace(
        base, timeouts=timeouts, kernel_ids=KernelIds.NEVER if never else KernelIds.ASK_SERVER
    )


def _env_seconds(name: str) -> float | None:
    import math

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


def raw_command(function: Callable[..., Any]) -> Callable[..., None]:
    """Turn ``function(client, **args) -> JSON-able`` into a ``kernels`` subcommand."""
    return _raw(function, show=emit_json)


def raw_action(function: Callable[..., Any]) -> Callable[..., None]:
    """A ``kernels`` subcommand whose answer is a one-line JSON confirmation."""
    return _raw(function, show=lambda data: emit(json.dumps(data)))


def _raw(function: Callable[..., Any], *, show: Callable[[Any], None]) -> Callable[..., None]:
    @server_options
    @wraps(function)
    def command(
        server: str, token: str, timeout: float, ca_bundle: str | None, insecure: bool, **args: Any
    ) -> None:
        from kernelform.errors import KernelformError

        try:
            with open_client(
                server=server, token=token, timeout=timeout, ca_bundle=ca_bundle, insecure=insecure
            ) as client:
                show(function(client, **args))
        except KernelformError as e:
            e.hint = raw_hint(e)
            raise

    return command


def raw_hint(error: KernelformError) -> str:
    """What fixes *error* in a raw ``kernels`` command."""
    from kernelform.errors import Remedy

    hints = {
        Remedy.CHECK_TOKEN: "check the token (--token or JUPYTER_TOKEN)",
        Remedy.TRUST_CERTIFICATE: (
            "pass --ca-bundle with the server's CA certificate, or --insecure to skip verification"
        ),
        Remedy.LIST_KERNELS: "list them with 'kernelform kernels list'",
    }
    return hints.get(error.remedy, "") if error.remedy is not None else ""


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
    if isinstance(error, StateWriteError) and error.recovery is not None:
        again = [f"--workspace {workspace.settings.workspace}"] * (
            workspace.settings.workspace != "default"
        )
        if workspace.settings.state:
            again.insert(0, "--state")
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


@cli.group()
def kernels() -> None:
    """Raw kernel operations on one server; output is always JSON."""


@kernels.command("list")
@raw_command
def kernels_list(client: JupyterClient) -> Any:
    """List the running kernels."""
    return [kernel.to_dict() for kernel in client.list_kernels()]


@kernels.command("start")
@click.option("--name", default="python3", show_default=True, help="Kernelspec name.")
@click.option("--path", default=None, help="Working dir, relative to the server root.")
@raw_command
def kernels_start(client: JupyterClient, name: str, path: str | None) -> Any:
    """Start a kernel."""
    return client.start_kernel(name, path=path).to_dict()


@kernels.command("restart")
@click.argument("kernel_id")
@raw_command
def kernels_restart(client: JupyterClient, kernel_id: str) -> Any:
    """Restart a kernel in place (same id)."""
    return client.restart_kernel(kernel_id).to_dict()


@kernels.command("interrupt")
@click.argument("kernel_id")
@raw_action
def kernels_interrupt(client: JupyterClient, kernel_id: str) -> Any:
    """Interrupt what a kernel is running; prints {"interrupt": KERNEL_ID}."""
    client.interrupt_kernel(kernel_id)
    return {"interrupt": kernel_id}


@kernels.command("shutdown")
@click.argument("kernel_id")
@raw_action
def kernels_shutdown(client: JupyterClient, kernel_id: str) -> Any:
    """Shut a kernel down; prints {"shutdown": KERNEL_ID}."""
    client.shutdown_kernel(kernel_id)
    return {"shutdown": kernel_id}


@kernels.command("sessions")
@raw_command
def kernels_sessions(client: JupyterClient) -> Any:
    """List the sessions (which notebook uses which kernel)."""
    return [session.to_dict() for session in client.list_sessions()]


@kernels.command("specs")
@raw_command
def kernels_specs(client: JupyterClient) -> Any:
    """List the kernelspecs the server offers."""
    return client.list_kernelspecs().to_dict()


# -- kernels as config ------------------------------------------------------------


def parse_lock_timeout(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from kernelform.duration import parse_duration

    if value in ("0", "0s"):
        return 0.0
    try:
        return (
            float(value)
            if value.replace(".", "", 1).isdigit()
            else (parse_duration(value).total_seconds())
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


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


def _workspace_options(command: F, shared: Shared = Shared.ALL) -> F:
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


def _plan_options(command: F) -> F:
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


def _wait_options(command: F) -> F:
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
    seconds = parse_lock_timeout(ctx, param, value)
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

        decorated = _plan_options(command) if planning else command
        decorated = _wait_options(decorated) if waiting else decorated
        return _workspace_options(decorated, shared)

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
    clients: list[HttpClient] = [workspace.client(name) for name in workspace.manifest.servers]
    clients += [workspace.hub_client(name) for name in workspace.manifest.hubs]
    for client in clients:
        if client.sends_token_in_clear:
            warn(f"the token for {client.server} is sent over plain http; use https")
        if client.skips_tls_verification:
            warn(f"the TLS certificate of {client.server} is not verified (insecure: true)")


@cli.command()
@workspace_command(shared=Shared.MANIFEST)
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def validate(workspace: Workspace, printer: Printer, files: tuple[Path, ...]) -> None:
    """Check the manifest (or each of FILES) without contacting any server.

    With FILES (as pre-commit passes them), each is checked as -f would, and
    every problem of every file is reported.
    """
    from dataclasses import replace

    from kernelform.errors import ManifestError, Problem

    if files and workspace.settings.manifest_path != Path(DEFAULT_MANIFEST):
        raise click.UsageError("give either -f/--file or FILES, not both")
    problems: list[Problem] = []
    for path in files or (workspace.settings.manifest_path,):
        try:
            if files:
                with open_workspace(replace(workspace.settings, manifest_path=path)) as each:
                    loaded = each.manifest
            else:
                loaded = workspace.manifest
        except ManifestError as e:
            problems.extend(e.problems)
            continue
        emit(_valid_line(loaded))
    if problems:
        raise ManifestError(problems)


def _valid_line(loaded: Manifest) -> str:
    """What validate says of a valid manifest; hub kernels have no addresses until planned."""
    if not loaded.hubs:
        return (
            f"{loaded.path}: valid ({len(loaded.servers)} server(s), {len(loaded.kernels)} "
            f"kernel(s), {len(loaded.desired())} address(es))."
        )
    per_user = sum(1 for decl in loaded.kernels.values() if decl.hub is not None)
    fleet = f"; {per_user} kernel(s) per selected hub user" if per_user else ""
    return (
        f"{loaded.path}: valid ({len(loaded.servers)} server(s), {len(loaded.hubs)} hub(s), "
        f"{len(loaded.kernels)} kernel(s), {len(loaded.desired())} address(es) on servers"
        f"{fleet})."
    )


@cli.command()
@workspace_command(planning=True)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON document.")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the plan as Markdown.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    default=None,
    help="Save the plan to this file, for 'kernelform apply FILE' ('-': print it on stdout).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 for no changes, 1 for an error, 2 when there are changes.",
)
def plan(
    workspace: Workspace,
    printer: Printer,
    as_json: bool,
    as_markdown: bool,
    out: Path | None,
    detailed_exitcode: bool,
) -> None:
    """Show what apply would change, and why."""
    from kernelform.markdown import render_plan_markdown
    from kernelform.render import render_plan

    output = output_of(as_json=as_json, as_markdown=as_markdown)
    warn_clear_text(workspace)
    with workspace.locked("plan"):
        computed, live, _ = workspace.plan()
    warn_targeting(computed.targets)
    warn_unchecked_dirs(live)
    to_stdout = out is not None and str(out) == "-"
    if out is not None and not to_stdout:
        save_plan(computed, out)
    markdown = render_plan_markdown(computed)
    if output is Output.JSON or to_stdout:
        emit_json(computed.to_dict())
    if output is Output.MARKDOWN:
        emit(markdown, nl=False)
    elif output is Output.HUMAN:
        printer.lines(render_plan(computed), err=to_stdout)  # stdout holds the JSON plan
        if out is not None and not to_stdout:
            emit(
                f"\nSaved the plan to {out} (manifest {computed.manifest_absolute}); run"
                f" 'kernelform apply {out}' to carry it out."
            )
    publish(markdown, computed.blocked)
    if detailed_exitcode and computed.has_changes:
        raise Exit(EXIT_CHANGES)


def save_plan(computed: KfPlan, out: Path) -> None:
    """Write *computed* to *out*, with the manifest's path relative to it (see
    ``locate_manifest``)."""
    from dataclasses import replace

    from kernelform.errors import PlanError

    relative = os.path.relpath(computed.manifest_absolute, out.absolute().parent)
    data = replace(computed, manifest_relative=relative).to_dict()
    try:
        out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise PlanError(f"cannot save the plan to {out}: {e.strerror or e}") from e


def load_plan(path: Path) -> KfPlan:
    from kernelform.errors import PlanError
    from kernelform.plan import Plan

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PlanError(f"cannot read the plan {path}: {e.strerror or e}") from e
    except (ValueError, RecursionError) as e:  # RecursionError: nested beyond reason
        raise PlanError(f"{path} is not a kernelform plan (not JSON: {e})") from e
    return Plan.from_dict(data, source=str(path))


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
    if answer.strip() != "yes":
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


def carry_out(
    workspace: Workspace,
    computed: KfPlan,
    *,
    live: dict[str, LiveServer],
    state: State,
    printer: Printer,
    output: Output = Output.HUMAN,
) -> None:
    """Apply *computed*, report as each action ends, and end with the right status.

    Progress lines go to stdout for people, to stderr when stdout carries a
    JSON or Markdown report.
    """
    from kernelform.executor import Report
    from kernelform.render import outcome_line

    if not computed.runnable:
        if computed.updates:
            workspace.apply(computed, live=live, state=state, on_outcome=lambda o: None)
        conclude(Report(outcomes=(), blocked=computed.blocked), computed, printer, output)
        return
    report = workspace.apply(
        computed,
        live=live,
        state=state,
        on_outcome=lambda outcome: printer.lines(
            [outcome_line(outcome)], err=output is not Output.HUMAN
        ),
        on_interrupt=lambda in_flight: emit(
            f"\nInterrupted: nothing new is started; the {in_flight} action(s) in flight finish"
            " and are recorded, a wait for a kernel to answer is cut short (that kernel is"
            " recorded as tainted). Ctrl-C again to stop at once.",
            err=True,
        ),
    )
    conclude(report, computed, printer, output)


def conclude(report: Report, computed: KfPlan, printer: Printer, output: Output) -> None:
    """Print *report* as asked, publish it to GitHub, and end with its status."""
    from kernelform.documents import report_document
    from kernelform.markdown import render_report_markdown
    from kernelform.render import render_report

    markdown = render_report_markdown(report, computed)
    if output is Output.JSON:
        emit_json(report_document(report, computed))
    elif output is Output.MARKDOWN:
        emit(markdown, nl=False)
    elif not report.outcomes and not report.blocked and not report.skipped:
        emit("Nothing to do.")
    else:
        printer.lines(render_report(report, destroy=computed.destroy))
    publish(markdown, report.blocked)
    if report.interrupted:
        raise Exit(EXIT_INTERRUPTED)
    if report.failed:
        failed = ", ".join(o.change.address for o in report.failed)
        emit(
            f"Error: {len(report.failed)} action(s) failed ({failed}); fix the cause shown "
            "above and run apply again: what succeeded is recorded",
            err=True,
        )
        raise Exit(EXIT_ERROR)
    if report.blocked:
        raise Exit(EXIT_BLOCKED)


def never_asks(command: str, output: Output, *, auto_approve: bool, saved: bool) -> None:
    """A JSON or Markdown report is for machines: there is nobody to ask."""
    if output is Output.HUMAN or auto_approve or saved:
        return
    from kernelform.errors import KernelformError

    flag = "--json" if output is Output.JSON else "--markdown"
    way = "--auto-approve, or a saved plan file" if command == "apply" else "--auto-approve"
    raise KernelformError(f"{command} {flag} never asks for confirmation; pass {way}")


@cli.command()
@workspace_command(planning=True, waiting=True)
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@machine_output_options
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def apply(
    workspace: Workspace,
    printer: Printer,
    auto_approve: bool,
    as_json: bool,
    as_markdown: bool,
    plan_file: Path | None,
) -> None:
    """Make the servers match the manifest (or carry out a saved PLAN_FILE)."""
    from kernelform.render import render_plan

    output = output_of(as_json=as_json, as_markdown=as_markdown)
    never_asks("apply", output, auto_approve=auto_approve, saved=plan_file is not None)
    if plan_file is not None:
        apply_saved(workspace, printer, plan_file, output=output)
        return
    warn_clear_text(workspace)
    with workspace.locked("apply"):
        computed, live, state = workspace.plan(destroy=False)
        warn_targeting(computed.targets)
        warn_unchecked_dirs(live)
        if output is Output.HUMAN:
            printer.lines(render_plan(computed))
        if computed.runnable and output is Output.HUMAN:
            emit()
            confirm(
                "Do you want to perform these actions?",
                auto_approve=auto_approve,
                cancelled="Apply cancelled; nothing was changed.",
            )
        carry_out(workspace, computed, live=live, state=state, printer=printer, output=output)


def apply_saved(workspace: Workspace, printer: Printer, plan_file: Path, *, output: Output) -> None:
    """Carry out the saved plan in *plan_file*, exactly: options that would change it are
    refused, never ignored; --parallelism and the wait options are honoured."""
    from kernelform.errors import PlanError

    settings = workspace.settings
    given = [
        flag for flag, on in (("--target", settings.targets), ("--force", settings.force)) if on
    ]
    if given:
        raise PlanError(
            f"{' and '.join(given)} cannot be used with a saved plan, which carries out exactly"
            f" what was planned (its own targets and --force included); make a new plan with"
            f" {'them' if len(given) > 1 else 'it'}: 'kernelform plan {given[0]} … --out FILE'"
        )
    from kernelform.workspace import relocate

    saved = load_plan(plan_file)
    settings = for_saved_plan(settings, saved, plan_file)
    saved = relocate(saved, settings.manifest_path)
    with open_workspace(settings) as planned:
        made = f", made {saved.created_at:%Y-%m-%d %H:%M:%S %Z}" if saved.created_at else ""
        emit(
            f"Applying the saved plan {plan_file} (manifest {planned.manifest.path}{made}).",
            err=output is not Output.HUMAN,
        )
        warn_targeting(saved.targets)
        warn_clear_text(planned)
        with planned.locked("apply"):
            live, state = planned.check_saved(saved)
            carry_out(planned, saved, live=live, state=state, printer=printer, output=output)


def for_saved_plan(settings: Settings, saved: KfPlan, plan_file: Path) -> Settings:
    """A saved plan brings its targets, and its manifest unless -f (or KERNELFORM_FILE)
    names one."""
    from dataclasses import replace

    from kernelform.errors import KernelformError
    from kernelform.workspace import locate_manifest

    manifest = settings.manifest_path
    source = click.get_current_context().get_parameter_source("manifest")
    if source in (None, click.core.ParameterSource.DEFAULT) and (
        saved.manifest_absolute or saved.manifest_path
    ):
        try:
            manifest = locate_manifest(saved, plan_file)
        except KernelformError as e:
            e.hint = "name it with -f FILE"
            raise
    return replace(settings, manifest_path=manifest, targets=saved.targets)


def warn_targeting(targets: Sequence[str]) -> None:
    """Terraform's "resource targeting is in effect": once, whenever targets limit a run."""
    if targets:
        warn(
            f"targeting is in effect ({', '.join(targets)}): only these kernels are planned"
            " and prune is skipped, so changes the manifest asks for elsewhere are left out"
        )


def warn_unchecked_dirs(live: Mapping[str, LiveServer]) -> None:
    """Say once per server that its kernels' cwd could not be checked (no contents API)."""
    for name, server in sorted(live.items()):
        if server.unchecked_dirs:
            warn(
                f"server {name!r} has no contents API (api/contents answers 404), so the cwd"
                f" of its kernels ({', '.join(sorted(server.unchecked_dirs))}) could not be"
                " checked; a missing one would be replaced by its nearest existing parent"
            )


@cli.command()
@workspace_command(planning=True)
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for 'yes'.")
@machine_output_options
def destroy(
    workspace: Workspace, printer: Printer, auto_approve: bool, as_json: bool, as_markdown: bool
) -> None:
    """Shut down every kernel kernelform manages, and empty the state."""
    from kernelform.render import render_plan

    output = output_of(as_json=as_json, as_markdown=as_markdown)
    never_asks("destroy", output, auto_approve=auto_approve, saved=False)
    warn_clear_text(workspace)
    with workspace.locked("destroy"):
        computed, live, state = workspace.plan(destroy=True)
        warn_targeting(computed.targets)
        if output is Output.HUMAN:
            printer.lines(render_plan(computed))
        if computed.runnable and output is Output.HUMAN:
            emit()
            confirm(
                "Do you really want to shut down these kernels?",
                auto_approve=auto_approve,
                cancelled="Destroy cancelled; nothing was changed.",
                doing="destroy",
            )
        carry_out(workspace, computed, live=live, state=state, printer=printer, output=output)


@cli.command("import")
@workspace_command()
@click.argument("address")
@click.argument("kernel_id")
def import_(workspace: Workspace, printer: Printer, address: str, kernel_id: str) -> None:
    """Adopt the running kernel KERNEL_ID for the declared ADDRESS."""
    with workspace.locked("import"):
        resource = workspace.import_kernel(address, kernel_id)
    emit(f"Imported kernel {resource.kernel_id} as {resource.address}.")


@cli.command("force-unlock")
@workspace_command(shared=Shared.MANIFEST | Shared.STATE)
@click.argument("lock_id")
@click.option("--force", "without_asking", is_flag=True, help="Do not ask for confirmation.")
def force_unlock(
    workspace: Workspace, printer: Printer, lock_id: str, without_asking: bool
) -> None:
    """Remove the state lock LOCK_ID left by a process that is gone.

    LOCK_ID is the id shown in the "locked" message. A lock held by a process
    that is still alive on this host is never removed. With PostgreSQL, the lock
    of a process on another host is removed by ending its database session (so
    it can write nothing more); a holder record left by a lock already free is
    cleared.
    """
    holder = workspace.store.lock_info()
    if holder is None and workspace.store.left_behind() is None:
        emit(f"The state at {workspace.store.location} is not locked; nothing to unlock.")
        return
    from kernelform.errors import StateLocked

    try:
        workspace.store.check_unlock(lock_id, holder)  # refuses a live holder, a wrong id
    except StateLocked as e:
        refusal: KernelformError = e
        refusal.remedy = None  # its own message says what to do; no --lock-timeout here
        raise
    if holder is not None and not without_asking:
        emit(
            f"The lock {lock_id} on the state at {workspace.store.location} is {holder.describe()}."
        )
        confirm(
            "Removing it lets another run in while that one may still be writing.\n"
            "Do you really want to remove the lock?",
            auto_approve=False,
            cancelled="Unlock cancelled; the lock was kept.",
            flag="--force",
            doing="unlock",
        )
    unlocked = workspace.store.force_unlock(lock_id)
    emit(f"Removed the lock {lock_id}: {unlocked.done}.")


@cli.command()
@workspace_command(shared=Shared.MANIFEST | Shared.STATE | Shared.COLOR)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as one JSON document.")
def status(workspace: Workspace, printer: Printer, as_json: bool) -> None:
    """Show every declared, managed and prunable kernel, live, with its drift.

    One row per kernel: address, server, kernel id, spec, execution state,
    connections, the notebooks using it, age (since kernelform started it), last
    activity, and what the next plan would do with it ("ok" when nothing). It
    reads what a plan reads, once, and takes no lock.
    """
    from kernelform.status import render_status, status_document, status_rows

    warn_clear_text(workspace)
    computed, live, state = workspace.observe()
    warn_unchecked_dirs(live)
    rows = status_rows(workspace.manifest, state, live, computed)
    now = workspace.clock()
    if as_json:
        emit_json(status_document(rows, now=now))
    else:
        printer.lines(render_status(rows, now=now))


COMPLETE_VAR = "_KERNELFORM_COMPLETE"


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (click's).

    \b
    bash:  eval "$(kernelform completion bash)"     (in ~/.bashrc; bash >= 4.4)
    zsh:   eval "$(kernelform completion zsh)"      (in ~/.zshrc)
    fish:  kernelform completion fish | source      (in ~/.config/fish/config.fish)
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None  # the three choices are click's own
    emit(complete(cli, {}, "kernelform", COMPLETE_VAR).source())


@cli.command()
def schema() -> None:
    """Print the manifest's JSON Schema (draft 2020-12), for editors and CI."""
    from kernelform.schema import manifest_schema

    emit_json(manifest_schema())


@cli.group()
def state() -> None:
    """Inspect and edit what kernelform remembers (no kernel is touched)."""


@state.command("list")
@workspace_command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def state_list(workspace: Workspace, printer: Printer, as_json: bool) -> None:
    """List the kernels kernelform manages."""
    rows = [
        {"address": r.address, "server": r.server, "kernel_id": r.kernel_id, "spec": r.recipe.spec}
        for r in workspace.store.read().resources.values()
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        emit(f"The state at {workspace.store.location} is empty: no kernel is managed.", err=True)
        return
    line = "{address:<24} {server:<12} {kernel_id:<36}  {spec}"
    if sys.stdout.isatty():
        emit(line.format(address="ADDRESS", server="SERVER", kernel_id="KERNEL ID", spec="SPEC"))
    for row in rows:
        emit(line.format(**row).rstrip())


@state.command("show")
@workspace_command()
@click.argument("address")
def state_show(workspace: Workspace, printer: Printer, address: str) -> None:
    """Show everything recorded for ADDRESS, as JSON.

    A base address (etl) covers its replicas (etl[0], etl[1], ...), as --target
    does; when it covers more than one, the records are printed as a JSON list.
    """
    from kernelform.workspace import recorded_addresses

    state = workspace.store.read()
    resources = state.resources
    chosen = recorded_addresses([address], state)
    if chosen == [address]:
        emit_json(resources[address].to_dict())
        return
    emit_json([resources[a].to_dict() for a in chosen])


@state.command("rm")
@workspace_command()
@click.argument("addresses", nargs=-1, required=True)
def state_rm(workspace: Workspace, printer: Printer, addresses: tuple[str, ...]) -> None:
    """Forget ADDRESSES without shutting their kernels down (etl covers etl[0], ...)."""
    with workspace.locked("state rm"):
        removed = workspace.forget(addresses)
    for resource in removed:
        emit(f"Removed {resource.address} (kernel {resource.kernel_id} keeps running).")


@state.command("pull")
@workspace_command()
def state_pull(workspace: Workspace, printer: Printer) -> None:
    """Print the state as JSON (the state file's format) on stdout.

    With 'state push' it moves a state between places: pull from one --state,
    push to another. Nothing stored yet prints nothing (and says so on stderr).
    """
    from kernelform.state.store import dump

    stored = workspace.store.load()
    if stored is None:
        emit(
            f"Note: nothing is stored in the state at {workspace.store.location} yet;"
            " nothing to pull.",
            err=True,
        )
        return
    click.echo(dump(stored.to_dict()).decode("utf-8"), nl=False)


@state.command("push")
@workspace_command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--force",
    "overwrite",
    is_flag=True,
    help="Replace even a state of another lineage, or a newer one (its content is lost).",
)
def state_push(workspace: Workspace, printer: Printer, file: Path, overwrite: bool) -> None:
    """Replace the state with FILE (a pulled state, or a recovery file), under the lock.

    Refused unless --force when the stored state is another state (another
    lineage) or newer (a higher serial) than FILE. FILE '-' reads stdin.
    """
    from kernelform.errors import StateError
    from kernelform.state import State

    source = "stdin" if str(file) == "-" else str(file)
    try:
        raw = sys.stdin.buffer.read() if source == "stdin" else file.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except OSError as e:
        raise StateError(f"cannot read {source}: {e.strerror or e}") from e
    except ValueError as e:
        raise StateError(f"{source} is not a kernelform state (not JSON: {e})") from e
    pushed = State.from_dict(data, source=source)
    with workspace.locked("state push"):
        written = workspace.store.push(pushed, force=overwrite)
    emit(
        f"Pushed {source} to the state at {workspace.store.location}"
        f" (serial {written.serial}, {len(written.resources)} kernel(s))."
    )


@cli.group("workspace")
def workspace_group() -> None:
    """List and delete workspaces: independent states (and locks) in one place."""


@workspace_group.command("list")
@workspace_command()
def workspace_list(workspace: Workspace, printer: Printer) -> None:
    """List the workspaces; '*' marks the one in use (--workspace)."""
    current = workspace.settings.workspace
    for name in workspace.backend.workspaces(current=current):
        emit(f"{'*' if name == current else ' '} {name}")


@workspace_group.command("delete")
@workspace_command()
@click.argument("name")
def workspace_delete(workspace: Workspace, printer: Printer, name: str) -> None:
    """Delete the workspace NAME; refused while it records kernels, and for 'default'."""
    workspace.backend.delete_workspace(name, lock_timeout=workspace.settings.lock_timeout)
    emit(f"Deleted the workspace {name} from {workspace.backend.description}.")


# -- watch: the controller -----------------------------------------------------------


class LogFormat(str, Enum):
    """How ``watch`` writes its events."""

    TEXT = "text"
    JSON = "json"


def parse_interval(ctx: click.Context, param: click.Parameter, value: str) -> float:
    import math

    from kernelform.controller import MIN_INTERVAL
    from kernelform.duration import parse_duration

    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parse_duration(value).total_seconds()
        except ValueError as e:
            raise click.BadParameter(str(e)) from e
    if not math.isfinite(seconds) or seconds < MIN_INTERVAL:
        raise click.BadParameter(
            f"it must be at least {MIN_INTERVAL:g}s (e.g. 60s or 5m), not {value!r}"
        )
    return seconds


@cli.command()
@workspace_command(waiting=True)
@click.option(
    "--interval",
    default="60s",
    callback=parse_interval,
    show_default=True,
    metavar="DURATION",
    help="Pause between two cycles (e.g. 30s, 5m); doubled after each failed cycle, up to "
    "4 intervals.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1, max=256),
    default=10,
    show_default=True,
    help="How many actions run at once.",
)
@click.option(
    "--log-format",
    type=click.Choice([f.value for f in LogFormat]),
    default=LogFormat.TEXT.value,
    show_default=True,
    help="text: a line per action and per cycle that changed something; json: one "
    "JSON object per event.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    metavar="PORT",
    help="Serve Prometheus /metrics and /healthz on this port.",
)
@click.option(
    "--metrics-addr",
    default=None,
    metavar="HOST",
    help="Address to serve metrics on (with --metrics-port) [default: 127.0.0.1].",
)
def watch(
    workspace: Workspace,
    printer: Printer,
    interval: float,
    log_format: str,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Keep the servers converged: plan and apply every --interval, until stopped.

    Each cycle re-reads the manifest, takes the lock, plans, applies what is
    runnable without asking (never forcing: blocked changes stay blocked) and
    releases the lock. A cycle that fails (a broken manifest, a server or the
    state unreachable, a failed action) is reported and the next one follows.
    SIGTERM or Ctrl-C: the actions in flight finish, the lock is released, exit 0.
    """
    from contextlib import ExitStack

    from kernelform.controller import (
        Controller,
        Events,
        Fanout,
        Health,
        WatchConfig,
        stop_on_signals,
    )
    from kernelform.errors import KernelformError
    from kernelform.eventlog import JsonLog, TextLog

    if metrics_addr is not None and metrics_port is None:
        raise click.UsageError("--metrics-addr needs --metrics-port")
    runtime = current_runtime()
    config = WatchConfig(settings=workspace.settings, interval=interval)
    health = Health(interval=interval)
    sinks: list[Events] = [health]
    with ExitStack() as stack:
        url = None
        if metrics_port is not None:
            from kernelform.metrics import MetricsServer, WatchMetrics

            metrics = WatchMetrics()
            host = metrics_addr or "127.0.0.1"
            try:
                server = MetricsServer(metrics, health, host=host, port=metrics_port)
            except KernelformError as e:
                other = " or --metrics-addr" if metrics_addr else ""
                e.hint = f"choose another --metrics-port{other}"
                raise
            stack.enter_context(server)
            sinks.append(metrics)
            url = server.url
        log_class = JsonLog if log_format == LogFormat.JSON.value else TextLog
        sinks.append(log_class(sys.stdout, redactor=runtime.secrets, metrics_url=url))
        controller = Controller(
            config,
            runtime=runtime,
            events=Fanout(*sinks),
            open_workspace=open_workspace,
            explain=manifest_hint,
        )
        with stop_on_signals(controller):
            controller.run()


# -- entry point -------------------------------------------------------------------


def given_tokens(argv: Sequence[str]) -> list[str]:
    """The secrets a run was given before any command ran: JUPYTER_TOKEN, --token, and
    the password of a state URL in --state or KERNELFORM_STATE."""
    from kernelform.state.location import url_secrets

    found = [os.environ.get("JUPYTER_TOKEN", ""), *url_secrets(os.environ.get(STATE_ENV, ""))]
    for i, arg in enumerate(argv):
        for name in ("--token", "--state"):
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg.partition("=")[2]
            else:
                continue
            found.extend([value] if name == "--token" else url_secrets(value))
    return found


SETTLE_SECONDS = 3.0


def settle_channels() -> None:
    """Let websocket handshakes a wait gave up on finish before the process ends.

    Dropping one that the server still holds makes jupyter_server count one
    connection too few for that kernel, for good; a few seconds usually spare it.
    """
    channels = sys.modules.get("kernelform.channels")
    if channels is not None:
        channels.settle(SETTLE_SECONDS)


def annotate(error: KernelformError, scrub: Callable[[str], str]) -> None:
    """In GitHub Actions, each manifest problem also becomes an ``::error`` line
    (on stderr: stdout may carry a JSON document), located in the workspace."""
    from kernelform.errors import ManifestError
    from kernelform.github import problem_commands

    actions = github_actions()
    if actions is None or not isinstance(error, ManifestError):
        return
    for command in problem_commands(error.problems, workspace=actions.workspace, cwd=Path.cwd()):
        emit(scrub(command), err=True)


def run() -> None:
    """The ``kernelform`` program: ``main``, then the process ends at once.

    Like mypy's fast exit: once the exit status is decided and the output
    flushed, nothing is left to do, and tearing the interpreter down (modules,
    validators, pools) would cost a tenth of a second of CPU for nothing.
    Everything that must be released (locks, connections, websockets) was
    released by the commands' own ``with`` blocks before ``main`` returned.
    """
    try:
        main()
        code: int = EXIT_OK
    except SystemExit as e:
        code = EXIT_OK if e.code is None else e.code if isinstance(e.code, int) else EXIT_ERROR
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None, *, hooks: Hooks | None = None) -> None:
    """Run the CLI and decide the exit status; the only place that does.

    The run's ``Runtime`` is made here and handed to the commands. Every message
    printed here goes through its redactor: no secret the run knows of is ever
    shown, even if an exception's text (a bug's, or a library's) contained one.
    """
    from kernelform.errors import KernelformError, shorten
    from kernelform.hooks import NO_HOOKS
    from kernelform.masking import Redactor
    from kernelform.runtime import Runtime

    args = sys.argv[1:] if argv is None else list(argv)
    # urllib3 warns on every unverified https request, with a source line; the
    # user asked for it (--insecure), and open_client/warn_clear_text say it once.
    warnings.filterwarnings("ignore", message="Unverified HTTPS request", module="urllib3")
    runtime = Runtime(hooks=hooks or NO_HOOKS, secrets=Redactor(given_tokens(args)))
    scrub = runtime.secrets.redact

    try:
        try:
            cli.main(args=args, prog_name="kernelform", standalone_mode=False, obj=runtime)
        finally:
            settle_channels()
    except Exit as e:
        sys.exit(e.code)
    except KernelformError as e:
        for line in scrub(str(e)).splitlines() or [type(e).__name__]:
            emit(f"Error: {line}", err=True)
        annotate(e, scrub)
        sys.exit(EXIT_ERROR)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        shown = io.StringIO()
        e.show(file=shown)
        click.echo(scrub(shown.getvalue()), err=True, nl=False)
        sys.exit(EXIT_ERROR)
    except (click.Abort, KeyboardInterrupt):
        emit("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
        if os.environ.get("KERNELFORM_DEBUG"):
            raise
        detail = shorten(scrub(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__), 300)
        emit(
            f"Error: internal error ({detail}); this is a bug in kernelform, "
            "please report it (KERNELFORM_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK)
