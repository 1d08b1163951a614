"""The planner: a pure function of manifest, state, live facts and the time.

It compares what the manifest declares with what kernelform owns (the state)
and what the servers report, and returns a ``Plan``. It does no I/O, so it is
tested table-style from case files. The rules, first match wins per address:

=============================================  =========  ==========================
situation                                      action     reason
=============================================  =========  ==========================
declared, not in state                         start      new
in state, kernel gone from the server          start      vanished from the server
declared on another server                     replace    server old → new
spec or cwd differs                            replace    spec/cwd old → new
revision differs                               restart    revision old → new
execution_state is dead                        restart    dead
older than max_age                             restart    age … exceeds max_age …
busy for longer than busy_timeout              interrupt  busy for …
in state, no longer declared                   shutdown   no longer declared
live, unmanaged, server prunes, not in use     shutdown   unmanaged
=============================================  =========  ==========================

A restart, replace or shutdown of a kernel in use is ``blocked`` when its
declaration protects it (the default) and ``force`` is off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from kernelform.errors import PlanError
from kernelform.facts import LiveServer
from kernelform.manifest import Desired, Manifest, format_duration, split_address
from kernelform.models import Kernel
from kernelform.plan import (
    Action,
    Change,
    KernelFact,
    Plan,
    StateUpdate,
    UpdateKind,
    base_address,
    is_deposed,
    matches_target,
)
from kernelform.state import Resource, State

PROTECTED_ACTIONS = frozenset({Action.RESTART, Action.REPLACE, Action.SHUTDOWN})


@dataclass(frozen=True)
class _Context:
    live: Mapping[str, LiveServer]
    now: datetime
    force: bool


def make_plan(
    manifest: Manifest,
    state: State,
    live: Mapping[str, LiveServer],
    *,
    now: datetime,
    targets: Sequence[str] = (),
    force: bool = False,
) -> Plan:
    """Compute what it takes to make the servers match the manifest."""
    ctx = _Context(live=live, now=now, force=force)
    _check_specs(manifest, live, targets)
    desired = [d for d in manifest.desired() if matches_target(d.address, targets)]
    claimed = _claim_resources(manifest, state)
    changes: list[Change] = []
    updates: list[StateUpdate] = []
    for item in desired:
        resource = claimed.get(item.address)
        if resource is not None and resource.address != item.address:
            updates.append(
                StateUpdate(
                    kind=UpdateKind.MOVE,
                    address=resource.address,
                    new_address=item.address,
                    detail=f"{resource.address} is now {item.address} (same kernel)",
                )
            )
        change, update = _reconcile(item, resource, ctx)
        changes.extend([change] if change else [])
        updates.extend([update] if update else [])
    kept = {r.address for r in claimed.values()}
    leftovers = [r for a, r in state.resources.items() if a not in kept]
    leftovers = [r for r in leftovers if matches_target(r.address, targets)]
    for resource in sorted(leftovers, key=_removal_order):
        reason = (
            "left over from an interrupted replace"
            if is_deposed(resource.address)
            else "no longer declared"
        )
        change, update = _retire(resource, manifest, ctx, reason=reason)
        changes.extend([change] if change else [])
        updates.extend([update] if update else [])
    if not targets:
        changes.extend(_prune(manifest, state, ctx))
    return _finish(manifest, state, changes, updates, live, now=now, targets=targets)


def make_destroy_plan(
    manifest: Manifest,
    state: State,
    live: Mapping[str, LiveServer],
    *,
    now: datetime,
    targets: Sequence[str] = (),
    force: bool = False,
) -> Plan:
    """Shut down every kernel kernelform manages (within *targets*)."""
    ctx = _Context(live=live, now=now, force=force)
    changes: list[Change] = []
    updates: list[StateUpdate] = []
    chosen = [r for r in state.resources.values() if matches_target(r.address, targets)]
    for resource in sorted(chosen, key=_removal_order):
        change, update = _retire(resource, manifest, ctx, reason="destroy")
        changes.extend([change] if change else [])
        updates.extend([update] if update else [])
    plan = _finish(manifest, state, changes, updates, live, now=now, targets=targets)
    return replace(plan, destroy=True)


def _check_specs(
    manifest: Manifest, live: Mapping[str, LiveServer], targets: Sequence[str]
) -> None:
    problems: list[str] = []
    for item in manifest.desired():
        server = live.get(item.server)
        if server is None or not matches_target(item.address, targets):
            continue
        if item.spec not in server.specs:
            message = (
                f"kernel {item.kernel!r} asks for kernelspec {item.spec!r}, which server "
                f"{item.server!r} does not have; it has: {', '.join(server.specs) or 'none'}"
            )
            if message not in problems:
                problems.append(message)
    if problems:
        raise PlanError("\n".join(problems))


def _claim_resources(manifest: Manifest, state: State) -> dict[str, Resource]:
    """Match state entries to declared addresses; ``etl`` and ``etl[0]`` are one kernel."""
    claimed: dict[str, Resource] = {}
    for item in manifest.desired():
        resource = state.resources.get(item.address)
        if resource is None:
            alias = _alias(item)
            alias_resource = state.resources.get(alias) if alias else None
            if alias_resource is not None and alias not in _declared(manifest):
                resource = alias_resource
        if resource is not None:
            claimed[item.address] = resource
    return claimed


def _declared(manifest: Manifest) -> set[str]:
    return {d.address for d in manifest.desired()}


def _alias(item: Desired) -> str | None:
    if item.index is None:
        return f"{item.kernel}[0]"
    if item.index == 0:
        return item.kernel
    return None


def _reconcile(
    item: Desired, resource: Resource | None, ctx: _Context
) -> tuple[Change | None, StateUpdate | None]:
    start = Change(
        address=item.address,
        server=item.server,
        action=Action.START,
        reason="new",
        spec=item.spec,
        cwd=item.cwd,
        revision=item.revision,
    )
    if resource is None:
        return start, None
    old_server = ctx.live.get(resource.server)
    kernel = old_server.kernels.get(resource.kernel_id) if old_server else None
    if kernel is None:
        reason = "start was interrupted" if resource.pending else "vanished from the server"
        return replace(start, reason=reason), None
    confirm = (
        StateUpdate(
            kind=UpdateKind.CONFIRM,
            address=item.address,
            detail=f"kernel {kernel.id} started by an interrupted apply is running",
        )
        if resource.pending
        else None
    )
    found = _drift(item, resource, kernel, ctx)
    if found is None:
        return None, confirm
    action, reason = found
    change = replace(start, action=action, reason=reason, kernel_id=kernel.id)
    if resource.server != item.server:
        change = replace(change, old_server=resource.server)
    return _guarded(change, ctx, server=resource.server, protect=item.protect), confirm


def _drift(
    item: Desired, resource: Resource, kernel: Kernel, ctx: _Context
) -> tuple[Action, str] | None:
    """The first rule that says the live kernel differs from its declaration."""
    differences = [
        f"{label} {_show(old)} → {_show(new)}"
        for label, old, new in (
            ("server", resource.server, item.server),
            ("spec", resource.spec, item.spec),
            ("cwd", resource.cwd, item.cwd),
        )
        if old != new
    ]
    if differences:
        return Action.REPLACE, ", ".join(differences)
    if resource.revision != item.revision:
        return Action.RESTART, f"revision {_show(resource.revision)} → {_show(item.revision)}"
    if kernel.execution_state == "dead":
        return Action.RESTART, "dead"
    age = ctx.now - resource.started_at
    if item.max_age is not None and age > item.max_age:
        return (
            Action.RESTART,
            f"age {format_duration(age)} exceeds max_age {format_duration(item.max_age)}",
        )
    if (
        item.busy_timeout is not None
        and kernel.execution_state == "busy"
        and kernel.last_activity is not None
        and ctx.now - kernel.last_activity > item.busy_timeout
    ):
        busy = format_duration(ctx.now - kernel.last_activity)
        return (
            Action.INTERRUPT,
            f"busy for {busy} (busy_timeout {format_duration(item.busy_timeout)})",
        )
    return None


def _retire(
    resource: Resource, manifest: Manifest, ctx: _Context, *, reason: str
) -> tuple[Change | None, StateUpdate | None]:
    server = ctx.live.get(resource.server)
    if server is None:
        raise PlanError(
            f"{resource.address} runs on server {resource.server!r}, which the manifest no "
            f"longer declares; declare the server again to shut the kernel down, or run "
            f"'kernelform state rm {resource.address}' to forget it"
        )
    if resource.kernel_id not in server.kernels:
        return None, StateUpdate(
            kind=UpdateKind.FORGET,
            address=resource.address,
            detail=f"kernel {resource.kernel_id} is already gone from the server",
        )
    name, _ = split_address(base_address(resource.address))
    declaration = manifest.kernels.get(name)
    protect = declaration.protect if declaration is not None else True
    change = Change(
        address=resource.address,
        server=resource.server,
        action=Action.SHUTDOWN,
        reason=reason,
        kernel_id=resource.kernel_id,
        spec=resource.spec,
        cwd=resource.cwd,
        revision=resource.revision,
    )
    return _guarded(change, ctx, server=resource.server, protect=protect), None


def _prune(manifest: Manifest, state: State, ctx: _Context) -> list[Change]:
    owned = {(r.server, r.kernel_id) for r in state.resources.values()}
    changes: list[Change] = []
    for name, config in manifest.servers.items():
        server = ctx.live.get(name)
        if not config.prune or server is None:
            continue
        for kernel in server.kernels.values():
            if (name, kernel.id) in owned or server.in_use(kernel.id):
                continue
            changes.append(
                Change(
                    address=f"{name}/{kernel.id}",
                    server=name,
                    action=Action.SHUTDOWN,
                    reason="unmanaged (the server prunes)",
                    kernel_id=kernel.id,
                    spec=kernel.name,
                    managed=False,
                )
            )
    return changes


def _guarded(change: Change, ctx: _Context, *, server: str, protect: bool) -> Change:
    """Attach the kernel's sessions; block it when it is in use and protected."""
    live = ctx.live[server]
    if change.kernel_id is None:
        return change
    sessions = live.sessions_of(change.kernel_id)
    blocked = (
        protect
        and not ctx.force
        and change.action in PROTECTED_ACTIONS
        and live.in_use(change.kernel_id)
    )
    return replace(change, sessions=sessions, blocked=blocked)


def _finish(
    manifest: Manifest,
    state: State,
    changes: list[Change],
    updates: list[StateUpdate],
    live: Mapping[str, LiveServer],
    *,
    now: datetime,
    targets: Sequence[str],
) -> Plan:
    facts = []
    for change in changes:
        server_name = change.old_server or change.server
        server = live.get(server_name)
        if change.kernel_id is None or server is None:
            continue
        kernel = server.kernels[change.kernel_id]
        facts.append(
            KernelFact(
                server=server_name,
                kernel_id=kernel.id,
                spec=kernel.name,
                in_use=server.in_use(kernel.id),
            )
        )
    return Plan(
        changes=tuple(changes),
        updates=tuple(updates),
        created_at=now,
        manifest_path=str(manifest.path),
        manifest_digest=manifest.digest,
        state_lineage=state.lineage,
        state_serial=state.serial,
        targets=tuple(targets),
        facts=tuple(facts),
    )


def _removal_order(resource: Resource) -> tuple[str, int]:
    name, index = split_address(base_address(resource.address))
    return name, -(index or 0)


def _show(value: str | None) -> str:
    return "(none)" if value is None else value
