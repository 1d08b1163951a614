"""What kernelform remembers: ``state …``, ``workspace …`` and ``force-unlock``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kernelform.errors import KernelformError
    from kernelform.workspace import Workspace

from kernelform.cli.app import (
    cli,
    emit,
    emit_json,
)
from kernelform.cli.options import (
    Printer,
    Shared,
    confirm,
    workspace_command,
)


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
    from kernelform.plan import is_saved_plan
    from kernelform.state import State

    source = "stdin" if str(file) == "-" else str(file)
    try:
        raw = sys.stdin.buffer.read() if source == "stdin" else file.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except OSError as e:
        raise StateError(f"cannot read {source}: {e.strerror or e}") from e
    except ValueError as e:
        raise StateError(f"{source} is not a kernelform state (not JSON: {e})") from e
    if is_saved_plan(data):
        shown = "FILE" if source == "stdin" else source
        raise StateError(
            f"{source} is a saved plan, not a state: apply it with 'kernelform apply {shown}';"
            " state push takes a state file from 'kernelform state pull' or a recovery file"
        )
    pushed = State.from_dict(data, source=source)
    with workspace.locked("state push"):
        name = workspace.settings.workspace
        shared = workspace.backend.shared_with_others(name, pushed.resources.values())
        if shared and not overwrite:
            other, addresses = next(iter(shared.items()))
            raise StateError(
                f"{source} records kernels that the workspace {other} records too"
                f" ({', '.join(addresses[:3])}{', …' if len(addresses) > 3 else ''}): two"
                f" workspaces owning one kernel would shut it down under each other; push it"
                f" to the workspace it came from, or pass --force to push it to {name} anyway"
            )
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
