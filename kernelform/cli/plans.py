"""The manifest commands: validate, plan, apply, destroy, import, status, schema, completion."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kernelform.executor import Report
    from kernelform.live import LiveServer
    from kernelform.manifest import Manifest
    from kernelform.plan import Plan as KfPlan
    from kernelform.state import State
    from kernelform.workspace import Settings, Workspace

from kernelform.cli.app import (
    DEFAULT_MANIFEST,
    EXIT_BLOCKED,
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    Exit,
    cli,
    emit,
    emit_json,
    publish,
    warn,
)
from kernelform.cli.options import (
    Output,
    Printer,
    Shared,
    confirm,
    machine_output_options,
    open_workspace,
    output_of,
    warn_clear_text,
    workspace_command,
)


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
    to_stdout = out is not None and str(out) == "-"
    if output is Output.MARKDOWN and to_stdout:
        from kernelform.errors import KernelformError

        raise KernelformError(
            "--out - prints the plan as JSON on stdout, where --markdown would print too;"
            " save the plan to a file (--out plan.json) beside --markdown"
        )
    warn_clear_text(workspace)
    with workspace.locked("plan"):
        computed, live, state = workspace.plan()
    warn_new_state(workspace, computed, state)
    warn_targeting(computed.targets)
    warn_unchecked_dirs(live)
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
    report, _ = workspace.apply(
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
        warn_new_state(workspace, computed, state)
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
    with open_workspace(settings) as planned, planned.locked("apply"):
        live, state = planned.check_saved(saved)  # a stale plan is refused before a word
        made = f", made {saved.created_at:%Y-%m-%d %H:%M:%S %Z}" if saved.created_at else ""
        emit(
            f"Applying the saved plan {plan_file} (manifest {planned.manifest.path}{made}).",
            err=output is not Output.HUMAN,
        )
        warn_targeting(saved.targets)
        warn_clear_text(planned)
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


def warn_new_state(workspace: Workspace, computed: KfPlan, state: State) -> None:
    """Say when kernels would start against a state that does not exist yet, at a place
    the user named (``--state``, ``KERNELFORM_STATE``, ``state:``, ``--workspace``):
    for plan, apply and status.

    A typo there gives a fresh, empty state: every kernel plans as new, and applying
    starts twins of kernels that the intended state owns. The default place stays
    quiet: a first run there is the normal case.
    """
    from kernelform.plan import Action
    from kernelform.state.location import DEFAULT_WORKSPACE

    named = (
        workspace.state_location() is not None or workspace.settings.workspace != DEFAULT_WORKSPACE
    )
    starts = any(change.action is Action.START for change in computed.changes)
    if named and starts and state.serial == 0:
        warn(
            f"there is no state at {workspace.store.location} yet: every kernel is planned as"
            " new, and one that another state records would get a twin; if this project's state"
            " is elsewhere, name it with --state (or KERNELFORM_STATE) and --workspace"
        )


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
        resource, declared = workspace.import_kernel(address, kernel_id)
    emit(f"Imported kernel {resource.kernel_id} as {resource.address}.")
    if declared.recipe.setup is not None:
        warn(
            f"the setup code of {resource.address} has not run in this kernel: the next apply"
            " restarts it to run it"
        )
    if declared.recipe.cwd is not None:
        warn(
            f"kernelform cannot see a running kernel's working directory: it records the"
            f" declared cwd {declared.recipe.cwd!r} for {resource.address} without checking it"
        )


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
    warn_new_state(workspace, computed, state)
    warn_unchecked_dirs(live)
    rows = status_rows(workspace.desired(), state, live, computed)
    now = workspace.clock()
    if as_json:
        emit_json(status_document(rows, now=now, plan=computed))
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
