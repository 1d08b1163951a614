"""The planner: a pure function of manifest, state, live facts and the time.

It compares what the manifest declares with what kernelform owns (the state)
and what the servers report, and returns a ``Plan``. It does no I/O, so it is
tested table-style from case files. The rules, first match wins per address:

=============================================  =========  ==========================
situation                                      action     reason
=============================================  =========  ==========================
declared, not in state                         start      new
pending start, its kernel id is running        (confirm)  (state update only)
pending start, kernel found by spec and time   (confirm)  (adopts it; see below)
pending start, several kernels could be it     start      blocked: names them
in state, kernel gone from the server          start      vanished from the server
declared on another server                     replace    server old → new
spec or cwd differs                            replace    spec/cwd old → new
tainted (never became ready)                   restart    tainted: why
revision or setup code differs                 restart    revision old → new / setup changed
execution_state is dead                        restart    dead
health_check, did not answer the probe         restart    unresponsive: no reply in …
older than max_age                             restart    age … exceeds max_age …
busy for longer than busy_timeout              interrupt  busy for …
in state, no longer declared                   shutdown   no longer declared
live, unmanaged, server prunes, not in use     shutdown   unmanaged
=============================================  =========  ==========================

A restart, replace or shutdown of a kernel in use is ``blocked`` when its
declaration protects it (the default) and ``force`` is off.

Fleets (kernels declared on a hub). ``fleets`` says, per hub, which users
are selected and whether their server runs; a running member's server is
in ``live`` like any other, named ``HUB@USER``. Then:

=============================================  ============  ====================
a member's server                              its kernels   its records
=============================================  ============  ====================
running, selected                              as above      as above
running, no longer selected                    --            shut down (protect)
not running, selected, start_servers false     skipped       kept
not running, selected, start_servers true      server-start  replaced by starts
                                               then start
stopped, or user gone, not selected            --            forgotten
pending (spawn or stop), not selected          --            kept, skipped
=============================================  ============  ====================

kernelform never stops a user's server. Prune applies to the servers of
selected members whose hub prunes.

Pending starts. The executor records every start as *pending* before it asks
the server. On a server that takes a client-chosen ``kernel_id``, the record
holds that id: if it runs, the start is confirmed; if not, it is started again
(with the same id). A server that ignores ``kernel_id`` picks the id itself, so
the record holds a placeholder (``unknown:<uuid>``) and its start time; the
kernel it may have started is then searched for among the server's kernels
that no state entry owns, that run the same spec, are not in use, and were
active since the start (``last_activity``, less ``ADOPTION_SLACK`` for clock
skew). Identical declarations (same server, spec, cwd and revision) are
interchangeable, so up to as many candidates as they have pending starts are
adopted (a ``confirm`` update carrying the kernel id) and the rest started
again. When more kernels could be theirs than they have pending starts, or two
different declarations compete for the same kernels, nothing is guessed: the
start is blocked (``--force`` does not lift it) and its reason names the
candidates, which prune leaves alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from kernelform.address import Address, matches_target, parse_address
from kernelform.duration import format_duration
from kernelform.errors import PlanError
from kernelform.live import LiveServer
from kernelform.manifest import Desired, Manifest, split_user_server
from kernelform.membership import Fleet, Member, ServerStatus, fleet_servers, members_of
from kernelform.models import Kernel, aware
from kernelform.plan import (
    Action,
    Change,
    KernelFact,
    Plan,
    Skip,
    StateUpdate,
    UpdateKind,
)
from kernelform.recipe import Effect, Recipe
from kernelform.state import Resource, State
from kernelform.wording import did_you_mean

PROTECTED_ACTIONS = frozenset({Action.RESTART, Action.REPLACE, Action.SHUTDOWN})
PLACEHOLDER_PREFIX = "unknown:"
ADOPTION_SLACK = timedelta(minutes=2)


def placeholder_id() -> str:
    """A kernel id for a pending start on a server that will choose the real one."""
    return PLACEHOLDER_PREFIX + str(uuid.uuid4())


def is_placeholder(kernel_id: str) -> bool:
    return kernel_id.startswith(PLACEHOLDER_PREFIX)


@dataclass(frozen=True)
class _Search:
    """Where a pending start's kernel may be: one to adopt, or several to choose from."""

    server: str
    adopt: Kernel | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Context:
    live: Mapping[str, LiveServer]
    now: datetime
    force: bool
    searches: Mapping[str, _Search] = field(default_factory=dict)
    fleets: Mapping[str, Fleet] = field(default_factory=dict)
    members: Mapping[str, Member] = field(default_factory=dict)

    def down(self, server: str) -> Member | None:
        """The fleet member whose server *server* is, if it is not running."""
        member = self.members.get(server)
        return member if member is not None and not member.running else None

    def starts_servers(self, member: Member) -> bool:
        return self.fleets[_hub_of(member)].start_servers

    def reserved(self, server: str) -> set[str]:
        """Kernel ids on *server* that a pending start may own: never pruned."""
        ids: set[str] = set()
        for search in self.searches.values():
            if search.server == server:
                ids.update(search.candidates)
                ids.update([search.adopt.id] if search.adopt is not None else [])
        return ids


def make_plan(
    manifest: Manifest,
    state: State,
    live: Mapping[str, LiveServer],
    *,
    now: datetime,
    targets: Sequence[str] = (),
    force: bool = False,
    fleets: Mapping[str, Fleet] | None = None,
) -> Plan:
    """Compute what it takes to make the servers match the manifest."""
    ctx = _context(state, live, now=now, force=force, fleets=fleets)
    declared = manifest.desired(members_of(ctx.fleets))
    desired = [d for d in declared if matches_target(d.address, targets)]
    _check_specs(desired, live)
    _check_dirs(manifest, desired, live)
    claimed = _claim_resources(declared, state)
    changes: list[Change] = _server_starts(desired, ctx)
    updates: list[StateUpdate] = []
    skipped: dict[str, Skip] = {}
    for item in desired:
        resource = claimed.get(item.address)
        member = ctx.down(item.server)
        if member is not None:
            change = _on_down_server(item, resource, member, ctx, skipped)
            changes.extend([change] if change else [])
            continue
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
        member = ctx.members.get(resource.server)
        if member is not None and not member.running:
            update = _left_on_down_server(resource, member, ctx, skipped, destroy=False)
            updates.extend([update] if update else [])
            continue
        reason = (
            "left over from a replace that did not finish"
            if parse_address(resource.address).deposed
            else "no longer declared"
        )
        if member is not None and not member.selected:
            reason = f"{member.user} is no longer selected on hub {_hub_of(member)}"
        change, update = _retire(resource, manifest, ctx, reason=reason)
        changes.extend([change] if change else [])
        updates.extend([update] if update else [])
    if not targets:
        changes.extend(_prune(manifest, state, ctx))
    plan = _finish(manifest, state, changes, updates, live, now=now, targets=targets)
    return replace(plan, skipped=tuple(skipped.values()))


def make_destroy_plan(
    manifest: Manifest,
    state: State,
    live: Mapping[str, LiveServer],
    *,
    now: datetime,
    targets: Sequence[str] = (),
    force: bool = False,
    fleets: Mapping[str, Fleet] | None = None,
) -> Plan:
    """Shut down every kernel kernelform manages (within *targets*)."""
    ctx = _context(state, live, now=now, force=force, fleets=fleets)
    changes: list[Change] = []
    updates: list[StateUpdate] = []
    skipped: dict[str, Skip] = {}
    chosen = [r for r in state.resources.values() if matches_target(r.address, targets)]
    for resource in sorted(chosen, key=_removal_order):
        member = ctx.down(resource.server)
        if member is not None:
            update = _left_on_down_server(resource, member, ctx, skipped, destroy=True)
            updates.extend([update] if update else [])
            continue
        change, update = _retire(resource, manifest, ctx, reason="destroy")
        changes.extend([change] if change else [])
        updates.extend([update] if update else [])
    plan = _finish(manifest, state, changes, updates, live, now=now, targets=targets)
    return replace(plan, destroy=True, skipped=tuple(skipped.values()))


def _context(
    state: State,
    live: Mapping[str, LiveServer],
    *,
    now: datetime,
    force: bool,
    fleets: Mapping[str, Fleet] | None,
) -> _Context:
    fleets = fleets or {}
    return _Context(
        live=live,
        now=now,
        force=force,
        searches=_search_lost_starts(state, live),
        fleets=fleets,
        members=fleet_servers(fleets.values()),
    )


# -- fleets: members whose server is not running -----------------------------------


def _hub_of(member: Member) -> str:
    parts = split_user_server(member.server)
    assert parts is not None
    return parts[0]


def _not_running(member: Member) -> str:
    if member.status is ServerStatus.PENDING:
        return f"{member.user}'s server is pending (being started or stopped)"
    if member.status is ServerStatus.NO_USER:
        return f"user {member.user} is no longer on hub {_hub_of(member)}"
    return f"{member.user}'s server is not running"


def _server_starts(desired: Sequence[Desired], ctx: _Context) -> list[Change]:
    """A server-start for each selected member whose server is down, if its hub starts them."""
    changes: dict[str, Change] = {}
    for item in desired:
        member = ctx.down(item.server)
        if member is None or item.server in changes or not ctx.starts_servers(member):
            continue
        changes[item.server] = Change(
            address=item.server,
            server=item.server,
            action=Action.SERVER_START,
            reason=f"{_not_running(member)} (start_servers: true)",
            recipe=None,
        )
    return list(changes.values())


def _on_down_server(
    item: Desired,
    resource: Resource | None,
    member: Member,
    ctx: _Context,
    skipped: dict[str, Skip],
) -> Change | None:
    """A declared kernel on a member's server that is not running: started after the
    server (start_servers), or skipped with its record kept."""
    if not ctx.starts_servers(member):
        _skip(skipped, member, f"{_not_running(member)} (start_servers: false)")
        return None
    reason = "new" if resource is None else "its server was not running"
    return Change(
        address=item.address,
        server=item.server,
        action=Action.START,
        reason=reason,
        recipe=item.recipe,
    )


def _skip(skipped: dict[str, Skip], member: Member, why: str) -> None:
    """Note that the plan leaves *member*'s server alone (once per server), records kept."""
    skipped.setdefault(
        member.server,
        Skip(
            server=member.server,
            hub=_hub_of(member),
            user=member.user,
            reason=f"{why}; its records are kept",
        ),
    )


def _left_on_down_server(
    resource: Resource,
    member: Member,
    ctx: _Context,
    skipped: dict[str, Skip],
    *,
    destroy: bool,
) -> StateUpdate | None:
    """A recorded kernel that is not declared (or destroyed) on a server that is not running.

    A stopped server has no kernels left: the record is forgotten, unless the
    member is selected and its hub does not start servers (then it waits for
    the server, as declared kernels do), or the server is pending.
    """
    keep = member.status is ServerStatus.PENDING or (
        member.selected and not destroy and not ctx.starts_servers(member)
    )
    if keep:
        _skip(skipped, member, _not_running(member))
        return None
    return StateUpdate(
        kind=UpdateKind.FORGET,
        address=resource.address,
        detail=f"{_not_running(member)}: kernel {resource.kernel_id} stopped with it",
    )


def _read_in_full(
    desired: Sequence[Desired], live: Mapping[str, LiveServer]
) -> Iterator[tuple[Desired, LiveServer]]:
    """Each targeted kernel with its server's facts, where the server was read in full (a
    server not read in full starts nothing: see kernelform.facts)."""
    for item in desired:
        server = live.get(item.server)
        if server is not None and server.detailed:
            yield item, server


def _refuse(problems: Iterable[str]) -> None:
    """Fail the plan with each distinct problem on a line of its own, if there is any."""
    distinct = list(dict.fromkeys(problems))
    if distinct:
        raise PlanError("\n".join(distinct))


def _check_specs(desired: Sequence[Desired], live: Mapping[str, LiveServer]) -> None:
    problems: list[str] = []
    for item, server in _read_in_full(desired, live):
        spec = item.keys.spec
        if spec not in server.specs:
            where = f"{item.decl.spec_at}: " if item.decl.spec_at else ""
            message = (
                f"{where}kernel {item.kernel!r} asks for kernelspec {spec!r}, which server "
                f"{item.server!r} does not have{did_you_mean(spec, server.specs) or ';'}"
                f" it has: {', '.join(server.specs) or 'none'}"
            )
            problems.append(message)
    _refuse(problems)


def _check_dirs(
    manifest: Manifest, desired: Sequence[Desired], live: Mapping[str, LiveServer]
) -> None:
    """A declared cwd that is not a directory on its server fails the plan: the server
    would start the kernel in the nearest existing parent instead, silently."""
    problems: list[str] = []
    for item, server in _read_in_full(desired, live):
        cwd = item.keys.cwd
        wrong = None if cwd is None else server.missing_dirs.get(cwd)
        if wrong is not None:
            config = manifest.servers.get(item.server)
            where = f" ({config.url})" if config is not None else ""  # else a hub user's
            message = (
                f"kernel {item.kernel!r} has cwd {cwd!r}, which {wrong} on server"
                f" {item.server!r}{where}; create it there, or fix the cwd"
            )
            problems.append(message)
    _refuse(problems)


def _claim_resources(declared: Sequence[Desired], state: State) -> dict[str, Resource]:
    """Match state entries to declared addresses; ``etl`` and ``etl[0]`` are one kernel."""
    addresses = {d.address for d in declared}
    claimed: dict[str, Resource] = {}
    for item in declared:
        resource = state.resources.get(item.address)
        if resource is None:
            alias = _alias(item)
            alias_resource = state.resources.get(alias) if alias else None
            if alias_resource is not None and alias not in addresses:
                resource = alias_resource
        if resource is not None:
            claimed[item.address] = resource
    return claimed


def _alias(item: Desired) -> str | None:
    """The other spelling of a single kernel's address: ``etl`` ↔ ``etl[0]``, and on a
    hub ``tutor@ana`` ↔ ``tutor[0]@ana`` (the user kept)."""
    if item.index not in (None, 0):
        return None
    return str(Address(item.kernel, 0 if item.index is None else None, item.user))


def _reconcile(
    item: Desired, resource: Resource | None, ctx: _Context
) -> tuple[Change | None, StateUpdate | None]:
    start = Change(
        address=item.address,
        server=item.server,
        action=Action.START,
        reason="new",
        recipe=item.recipe,
    )
    if resource is None:
        return start, None
    if resource.server not in ctx.live and resource.server not in ctx.members:
        # Its server was renamed or dropped: starting anew would leave the recorded
        # kernel running with nothing tracking it.
        raise _undeclared(resource, now_on=item.server)
    old_server = ctx.live.get(resource.server)
    kernel = old_server.kernels.get(resource.kernel_id) if old_server else None
    search = ctx.searches.get(resource.address)
    confirm: StateUpdate | None = None
    if kernel is None and search is not None and search.adopt is not None:
        kernel = search.adopt
        resource = replace(resource, kernel_id=kernel.id)
        confirm = _adoption(item.address, kernel)
    elif kernel is None and search is not None:
        reason = _ambiguity(resource, search, item.address, declared=True)
        return replace(start, reason=reason, blocked=True), None
    elif kernel is None:
        reason = "start was interrupted" if resource.pending else "vanished from the server"
        if resource.tainted is not None:
            reason = f"{reason} (tainted: {resource.tainted})"
        return replace(start, reason=reason), None
    elif resource.pending:
        confirm = StateUpdate(
            kind=UpdateKind.CONFIRM,
            address=item.address,
            detail=f"kernel {kernel.id} started by an interrupted apply is running",
        )
    found = _drift(item, resource, kernel, ctx)
    if found is None:
        return None, confirm
    action, reason = found
    change = replace(start, action=action, reason=reason, kernel_id=kernel.id)
    if resource.server != item.server:
        change = replace(change, old_server=resource.server)
    return _guarded(change, ctx, server=resource.server, protect=item.keys.protect), confirm


def _drift(
    item: Desired, resource: Resource, kernel: Kernel, ctx: _Context
) -> tuple[Action, str] | None:
    """The first rule that says the live kernel differs from its declaration."""
    moved = [f"server {resource.server} → {item.server}"] if resource.server != item.server else []
    differences = moved + resource.recipe.differences(item.recipe, Effect.REPLACE)
    if differences:
        return Action.REPLACE, ", ".join(differences)
    differences = resource.recipe.differences(item.recipe, Effect.RESTART)
    if resource.tainted is not None:  # with what else the restart brings (revision 4 → 5)
        return Action.RESTART, ", ".join([f"tainted: {resource.tainted}", *differences])
    if differences:
        return Action.RESTART, ", ".join(differences)
    if kernel.execution_state == "dead":
        return Action.RESTART, "dead"
    server = ctx.live.get(resource.server)
    if item.keys.health_check and server is not None and kernel.id in server.unresponsive:
        return (
            Action.RESTART,
            f"unresponsive: no reply in {format_duration(item.keys.probe_timeout)}",
        )
    age = ctx.now - resource.started_at
    max_age = item.keys.max_age
    if max_age is not None and age > max_age:
        return (
            Action.RESTART,
            f"age {format_duration(age)} exceeds max_age {format_duration(max_age)}",
        )
    busy_timeout = item.keys.busy_timeout
    if (
        busy_timeout is not None
        and kernel.execution_state == "busy"
        and kernel.last_activity is not None
        and ctx.now - kernel.last_activity > busy_timeout
    ):
        busy = format_duration(ctx.now - kernel.last_activity)
        return (
            Action.INTERRUPT,
            f"busy for {busy} (busy_timeout {format_duration(busy_timeout)})",
        )
    return None


def _undeclared(resource: Resource, *, now_on: str | None = None) -> PlanError:
    """A recorded kernel on a server the manifest no longer declares: nothing can reach
    it, so nothing is planned until the user says what to do."""
    hub = split_user_server(resource.server)
    where = f"server {resource.server!r}"
    if hub is not None:
        where = f"{where} of hub {hub[0]!r}"
    again = "server" if hub is None else "hub"
    if now_on is None:
        return PlanError(
            f"{resource.address} runs on {where}, which the manifest no longer declares; "
            f"declare the {again} again to shut the kernel down, or run "
            f"'kernelform state rm {resource.address}' to forget it"
        )
    return PlanError(
        f"{resource.address} runs on {where}, which the manifest no longer declares (it now"
        f" puts the kernel on {now_on!r}); declare the {again} again for one apply, which"
        f" moves the kernel, or run 'kernelform state rm {resource.address}' to forget it"
        " (it keeps running)"
    )


def _retire(
    resource: Resource, manifest: Manifest, ctx: _Context, *, reason: str
) -> tuple[Change | None, StateUpdate | None]:
    server = ctx.live.get(resource.server)
    if server is None:
        raise _undeclared(resource)
    declaration = manifest.kernels.get(parse_address(resource.address).name)
    protect = declaration.keys.protect if declaration is not None else True
    change = Change(
        address=resource.address,
        server=resource.server,
        action=Action.SHUTDOWN,
        reason=reason,
        kernel_id=resource.kernel_id,
        recipe=resource.recipe,
    )
    update: StateUpdate | None = None
    search = ctx.searches.get(resource.address)
    if resource.kernel_id not in server.kernels and search is not None:
        if search.adopt is None:
            reason = _ambiguity(resource, search, resource.address, declared=False)
            return replace(change, kernel_id=None, reason=reason, blocked=True), None
        change = replace(change, kernel_id=search.adopt.id)
        update = _adoption(resource.address, search.adopt)
    elif resource.kernel_id not in server.kernels:
        return None, StateUpdate(
            kind=UpdateKind.FORGET,
            address=resource.address,
            detail=f"kernel {resource.kernel_id} is already gone from the server",
        )
    return _guarded(change, ctx, server=resource.server, protect=protect), update


def _prune(manifest: Manifest, state: State, ctx: _Context) -> list[Change]:
    owned = {(r.server, r.kernel_id) for r in state.resources.values()}
    changes: list[Change] = []
    for name, server in ctx.live.items():
        if not _prunes(name, manifest, ctx):
            continue
        reserved = ctx.reserved(name)
        for kernel in server.kernels.values():
            if (name, kernel.id) in owned or kernel.id in reserved or server.in_use(kernel.id):
                continue
            changes.append(
                Change(
                    address=f"{name}/{kernel.id}",
                    server=name,
                    action=Action.SHUTDOWN,
                    reason="unmanaged (the server prunes)",
                    kernel_id=kernel.id,
                    recipe=Recipe(spec=kernel.name),
                    managed=False,
                )
            )
    return changes


def _prunes(server: str, manifest: Manifest, ctx: _Context) -> bool:
    """Whether *server* prunes: its own setting, or for a hub member's, the hub's
    (only for selected members: a user who left keeps their own kernels)."""
    config = manifest.servers.get(server)
    if config is not None:
        return config.prune
    member = ctx.members.get(server)
    return member is not None and member.selected and ctx.fleets[_hub_of(member)].prune


def _search_lost_starts(state: State, live: Mapping[str, LiveServer]) -> dict[str, _Search]:
    """Look for the kernels of pending starts whose id the server could not be told.

    See the module docstring: candidates are unowned, same spec, not in use and
    active since the start; identical declarations share them out, anything
    else with candidates is left for the user to decide.
    """
    owned = {(r.server, r.kernel_id) for r in state.resources.values()}
    lost: dict[tuple[str, str], list[Resource]] = {}
    for resource in state.resources.values():
        server = live.get(resource.server)
        if server is None or not resource.pending or resource.kernel_id in server.kernels:
            continue
        if server.accepts_kernel_id and not is_placeholder(resource.kernel_id):
            continue
        lost.setdefault((resource.server, resource.recipe.spec), []).append(resource)
    searches: dict[str, _Search] = {}
    for (name, spec), resources in lost.items():
        server = live[name]
        since = min(r.started_at for r in resources) - ADOPTION_SLACK
        candidates = sorted(
            (
                k
                for k in server.kernels.values()
                if (name, k.id) not in owned
                and k.name == spec
                and not server.in_use(k.id)
                and (k.last_activity is None or aware(k.last_activity) >= since)
            ),
            key=lambda k: (aware(k.last_activity) if k.last_activity else since, k.id),
        )
        if not candidates:
            continue
        alike = len({r.recipe for r in resources}) == 1
        if alike and len(candidates) <= len(resources):
            ordered = sorted(resources, key=lambda r: (r.started_at, r.address))
            for resource, kernel in zip(ordered, candidates, strict=False):
                searches[resource.address] = _Search(server=name, adopt=kernel)
            continue
        ids = tuple(k.id for k in candidates)
        for resource in resources:
            searches[resource.address] = _Search(server=name, candidates=ids)
    return searches


def _adoption(address: str, kernel: Kernel) -> StateUpdate:
    return StateUpdate(
        kind=UpdateKind.CONFIRM,
        address=address,
        kernel_id=kernel.id,
        detail=(
            f"kernel {kernel.id} ({kernel.name}) is the one an interrupted apply started"
            " (found by spec and start time: the server ignores client-chosen kernel ids)"
        ),
    )


def _ambiguity(resource: Resource, search: _Search, address: str, *, declared: bool) -> str:
    n = len(search.candidates)
    kernels = f"{n} unmanaged {resource.recipe.spec} kernel{'' if n == 1 else 's'}"
    then = (
        f"then 'kernelform import {address} ID' with the right one, or apply to start a new one"
        if declared
        else "then shut down the one that is its kernel, if any"
    )
    return (
        "an interrupted apply may have started it, but the server ignores client-chosen"
        f" kernel ids and {kernels} could be it: {', '.join(search.candidates)};"
        f" nothing is guessed: run 'kernelform state rm {resource.address}', {then}"
    )


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


def _removal_order(resource: Resource) -> tuple[str, str, int]:
    return parse_address(resource.address).removal_key()
