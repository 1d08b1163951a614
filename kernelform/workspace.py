"""A workspace: one manifest, its state store and a client per server.

This is the library behind ``plan``, ``apply``, ``destroy``, ``import`` and the
``state`` commands: the CLI turns its options into ``Settings`` and calls these
methods; they raise ``KernelformError``s and return plain data. Facts are read
once per run (``refresh``), then handed to the pure planner and the executor.

The state is chosen here (``state_location``): ``Settings.state`` (the CLI's
``--state`` or ``KERNELFORM_STATE``), else the manifest's ``state:`` key (a
relative path there is relative to the manifest), else
``.kernelform/state.json`` next to the manifest; ``Settings.workspace`` picks
one of the independent states kept there. The store is opened on first use,
and any password its location holds joins the run's secrets.

Hubs: the fleets are resolved first (``fleets``: which users each hub
selects, whose server runs), then a running member's server ``HUB@USER`` is
read like any server, through a ``UserServerClient`` with the hub's token.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from kernelform.address import matches_target, parse_address, parse_target, unmatched_targets
from kernelform.client import HttpClient, JupyterClient
from kernelform.errors import KernelformError, PlanError, StalePlan, StateError
from kernelform.executor import Outcome, Report, WaitFor, execute
from kernelform.facts import add_details, gather_facts, probe_health
from kernelform.fleet import UserServerLauncher, hubs_in_use, recorded_users, resolve_fleets
from kernelform.hub import HubClient, UserServerClient
from kernelform.live import LiveServer
from kernelform.liveness import HealthCheck
from kernelform.manifest import Desired, Manifest, load_manifest, split_user_server
from kernelform.membership import Fleet, members_of
from kernelform.plan import Action, Plan
from kernelform.planner import make_destroy_plan, make_plan
from kernelform.runtime import Runtime
from kernelform.server import ServerLauncher
from kernelform.state import LockInfo, Resource, State, StateStore
from kernelform.state.location import (
    DEFAULT_WORKSPACE,
    Backend,
    anchored,
    open_backend,
    url_secrets,
)
from kernelform.wording import did_you_mean, quoted

DEFAULT_MANIFEST = "kernelform.yaml"


@dataclass(frozen=True)
class Settings:
    """What the user asked for, independent of how it was asked.

    ``state`` is a file path or a URL (``kernelform.state.location``); None lets the
    manifest's ``state:`` key, then the default file, decide.
    """

    manifest_path: Path = Path(DEFAULT_MANIFEST)
    state: str | None = None
    workspace: str = DEFAULT_WORKSPACE
    lock_timeout: float = 0.0
    parallelism: int = 10
    targets: tuple[str, ...] = ()
    force: bool = False
    wait: bool = True
    wait_timeout: float | None = None


class Workspace:
    """The manifest, state and servers one command works on."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: Runtime | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime()
        if settings.state:
            self.runtime.secrets.add(*url_secrets(settings.state))
        self._store = store
        self.clock = self.runtime.clock
        self._clients: dict[str, JupyterClient] = {}
        self._hubs: dict[str, HubClient] = {}
        self._fleets: dict[str, Fleet] = {}

    @property
    def manifest_dir(self) -> Path:
        return self.settings.manifest_path.parent

    def state_location(self) -> str | None:
        """Where the state is: the settings, else the manifest's ``state:``, else None
        (the default file). The manifest is read only if it exists: the ``state``
        commands work without one."""
        if self.settings.state:
            return self.settings.state
        if not self.settings.manifest_path.exists():
            return None
        declared = self.manifest.state
        if declared is None:
            return None
        location = declared.reveal()
        self.runtime.secrets.add(*url_secrets(location))
        return anchored(location, self.manifest_dir)

    @cached_property
    def backend(self) -> Backend:
        """Where every workspace's state lives."""
        return open_backend(
            self.state_location(), manifest_dir=self.manifest_dir, hooks=self.runtime.hooks
        )

    @property
    def store(self) -> StateStore:
        """The state of this run's workspace (opened on first use)."""
        if self._store is None:
            self._store = self.backend.store(self.settings.workspace)
        return self._store

    @cached_property
    def manifest(self) -> Manifest:
        manifest = load_manifest(self.settings.manifest_path)
        self.runtime.secrets.add(*(server.token for server in manifest.servers.values()))
        self.runtime.secrets.add(*(hub.token for hub in manifest.hubs.values()))
        return manifest

    def close(self) -> None:
        for client in [*self._clients.values(), *self._hubs.values()]:
            client.close()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def locked(self, operation: str) -> Iterator[LockInfo]:
        with self.store.lock(operation=operation, timeout=self.settings.lock_timeout) as info:
            yield info

    def client(self, server: str) -> JupyterClient:
        """The client of a declared server, or of a hub member's server ``HUB@USER``."""
        if server not in self._clients:
            config = self.manifest.servers.get(server)
            if config is not None:
                self._clients[server] = JupyterClient(
                    config.url,
                    config.token.reveal(),
                    timeouts=self.runtime.timeouts,
                    verify=config.verify,
                    pool_size=max(10, self.settings.parallelism),
                    hooks=self.runtime.hooks,
                    kernel_ids=self.runtime.kernel_ids,
                )
            else:
                hub, user = self._member(server)
                config_hub = self.manifest.hubs[hub]
                self._clients[server] = UserServerClient(
                    self.hub_client(hub),
                    user,
                    config_hub.token.reveal(),
                    timeouts=self.runtime.timeouts,
                    verify=config_hub.verify,
                    pool_size=max(10, self.settings.parallelism),
                    hooks=self.runtime.hooks,
                    kernel_ids=self.runtime.kernel_ids,
                )
        return self._clients[server]

    def transport_warnings(self) -> list[str]:
        """One line per declared server or hub whose token travels in clear text (plain
        http to a host that is not loopback) or whose TLS certificate is not checked."""
        clients: list[HttpClient] = [self.client(name) for name in self.manifest.servers]
        clients += [self.hub_client(name) for name in self.manifest.hubs]
        lines = []
        for client in clients:
            if client.sends_token_in_clear:
                lines.append(f"the token for {client.server} is sent over plain http; use https")
            if client.skips_tls_verification:
                lines.append(
                    f"the TLS certificate of {client.server} is not verified (insecure: true)"
                )
        return lines

    def hub_client(self, hub: str) -> HubClient:
        """The client of a declared hub's REST API."""
        if hub not in self._hubs:
            config = self.manifest.hubs[hub]
            self._hubs[hub] = HubClient(
                config.url,
                config.token.reveal(),
                name=hub,
                timeouts=self.runtime.timeouts,
                verify=config.verify,
                pool_size=max(16, self.settings.parallelism),
                hooks=self.runtime.hooks,
            )
        return self._hubs[hub]

    def _is_member(self, server: str) -> bool:
        parts = split_user_server(server)
        return parts is not None and parts[0] in self.manifest.hubs

    def _member(self, server: str) -> tuple[str, str]:
        parts = split_user_server(server)
        if parts is None or parts[0] not in self.manifest.hubs:
            raise PlanError(
                f"{server!r} is neither a server nor a hub user's server declared in "
                f"{self.manifest.path}"
            )
        return parts

    def config_key(self, server: str) -> str | None:
        """The manifest key (``servers.lab``, ``hubs.campus``) of the client showing *server*."""
        for name, client in self._clients.items():
            if client.server == server:
                return (
                    f"servers.{name}"
                    if name in self.manifest.servers
                    else f"hubs.{self._member(name)[0]}"
                )
        for name, hub in self._hubs.items():
            if hub.server == server:
                return f"hubs.{name}"
        return None

    def refresh(
        self,
        servers: set[str] | None = None,
        *,
        dirs: Mapping[str, set[str]] | None = None,
        detailed: Collection[str] | None = None,
    ) -> dict[str, LiveServer]:
        """Read the servers this run involves (all declared ones by default), checking
        *dirs* (server → paths) as working directories; only the *detailed* servers
        (None: all) are read in full (see ``kernelform.facts``)."""
        names = sorted(servers if servers is not None else self.manifest.servers)
        return gather_facts({name: self.client(name) for name in names}, dirs, detailed=detailed)

    def declared_dirs(self) -> dict[str, set[str]]:
        """Per server, the cwds of the targeted declared kernels: checked when planning."""
        dirs: dict[str, set[str]] = {}
        for item in self.desired():
            if item.keys.cwd is not None and matches_target(item.address, self.settings.targets):
                dirs.setdefault(item.server, set()).add(item.keys.cwd)
        return dirs

    def clients_opened(self) -> dict[str, JupyterClient]:
        """The clients made so far, by server name."""
        return dict(self._clients)

    def health_checks(self, state: State) -> list[HealthCheck]:
        """The managed kernels whose declaration asks for a health check."""
        checks = []
        for item in self.desired():
            resource = state.resources.get(item.address)
            if not item.keys.health_check or resource is None or resource.pending:
                continue
            timeout = item.keys.probe_timeout.total_seconds()
            checks.append(HealthCheck(resource.server, resource.kernel_id, timeout))
        return checks

    def waits(self, plan: Plan) -> dict[str, WaitFor]:
        """How long to wait for each kernel the plan starts to be ready, and its setup code.

        Taken from the declaration the address names, not from the addresses declared
        now: a saved plan may start a kernel for a hub user who has since left the
        selection (it is carried out as approved, and waited for like any other).
        """
        if not self.settings.wait:
            return {}
        waits: dict[str, WaitFor] = {}
        for change in plan.runnable:
            try:
                decl = self.manifest.kernels.get(parse_address(change.address).name)
            except ValueError:
                continue
            if decl is not None:
                waits[change.address] = WaitFor(
                    timeout=self.settings.wait_timeout or decl.keys.wait_timeout.total_seconds(),
                    setup=decl.setup_code,
                )
        return waits

    def desired(self) -> list[Desired]:
        """The declared addresses, hub kernels included for the fleets resolved so far."""
        return self.manifest.desired(members_of(self._fleets))

    def fleets(self, state: State) -> dict[str, Fleet]:
        """Ask the hubs this run involves who their members are, and whose server runs."""
        recorded = recorded_users(state)
        clients = {name: self.hub_client(name) for name in hubs_in_use(self.manifest, recorded)}
        self._fleets = resolve_fleets(self.manifest, recorded, clients)
        return self._fleets

    def involved_servers(self, state: State, fleets: dict[str, Fleet] | None = None) -> set[str]:
        """The running servers that declared or recorded targets live on."""
        fleets = fleets or {}
        targets = self.settings.targets
        declared = self.manifest.desired(members_of(fleets))
        servers = {d.server for d in declared if matches_target(d.address, targets)}
        servers |= {
            r.server for r in state.resources.values() if matches_target(r.address, targets)
        }
        if not targets:
            servers |= {name for name, c in self.manifest.servers.items() if c.prune}
            servers |= {
                m.server
                for fleet in fleets.values()
                if fleet.prune
                for m in fleet.members
                if m.selected
            }
        running = {m.server for fleet in fleets.values() for m in fleet.members if m.running}
        return {s for s in servers if s in self.manifest.servers or s in running}

    def plan(self, *, destroy: bool = False) -> tuple[Plan, dict[str, LiveServer], State]:
        """Read the state, the hubs and the servers, and compute the plan."""
        state = self.store.read()
        fleets = self.fleets(state)
        check_targets(
            self.settings.targets,
            declared=[d.address for d in self.desired()],
            recorded=state.resources,
        )
        plan, live = self._read_and_plan(
            state, fleets, destroy=destroy, probe=not destroy, targets=self.settings.targets
        )
        plan = replace(
            plan,
            state_location=self.store.identity,
            state_workspace=self.settings.workspace,
            manifest_absolute=str(Path(self.manifest.path).absolute()),
            manifest_digest=self.manifest.meaning,
        )
        return plan, live, state

    def _read_and_plan(
        self,
        state: State,
        fleets: dict[str, Fleet],
        *,
        destroy: bool,
        probe: bool,
        targets: Sequence[str],
    ) -> tuple[Plan, dict[str, LiveServer]]:
        """Read the servers and plan; servers where something starts are read in full.

        A first read asks each server for its kernels and sessions only (and reads in
        full the servers holding a start a killed run left pending). If the plan then
        starts kernels on a server not read in full, that server's details (specs,
        kernel ids, declared cwds) are read and the plan made again: details only add
        checks, so the second plan starts the same kernels.
        """
        dirs = None if destroy else self.declared_dirs()
        pending = {r.server for r in state.resources.values() if r.pending}
        live = self.refresh(self.involved_servers(state, fleets), dirs=dirs, detailed=pending)
        if probe:
            live = probe_health(self.clients_opened(), live, self.health_checks(state))
        make = make_destroy_plan if destroy else make_plan
        for _ in range(2):
            plan = make(
                self.manifest,
                state,
                live,
                now=self.clock(),
                targets=targets,
                force=self.settings.force,
                fleets=fleets,
            )
            starting = {
                c.server
                for c in plan.changes
                if c.action in (Action.START, Action.REPLACE) and c.server in live
            }
            if all(live[s].detailed for s in starting):
                break
            live = add_details(self.clients_opened(), live, starting, dirs)
        return plan, live

    def observe(self) -> tuple[Plan, dict[str, LiveServer], State]:
        """The plan as ``plan`` computes it, for ``status``: without the lock (it reads
        only) and without health probes (a request per kernel)."""
        state = self.store.read()
        fleets = self.fleets(state)
        plan, live = self._read_and_plan(state, fleets, destroy=False, probe=False, targets=())
        return plan, live, state

    def launchers(self, plan: Plan) -> dict[str, ServerLauncher]:
        """What starts the servers of *plan*'s server-start changes."""
        launchers: dict[str, ServerLauncher] = {}
        for change in plan.runnable:
            if change.action is not Action.SERVER_START:
                continue
            hub, _ = self._member(change.server)
            client = self.client(change.server)
            assert isinstance(client, UserServerClient)
            launchers[change.server] = UserServerLauncher(
                hub=self.hub_client(hub),
                client=client,
                timeout=self.manifest.hubs[hub].start_timeout,
            )
        return launchers

    def check_saved(self, plan: Plan) -> tuple[dict[str, LiveServer], State]:
        """Refuse a saved plan that no longer matches the state, manifest or kernels."""
        if plan.manifest_digest != self.manifest.meaning:
            raise StalePlan(
                f"the saved plan is stale: what {self.manifest.path} declares changed since it"
                " was made"
            )
        if plan.state_location and plan.state_location != self.store.identity:
            raise StalePlan(
                f"the saved plan was made against the state at {plan.state_location}, and this"
                f" run uses the state at {self.store.identity}"
            )
        state = self.store.read()
        same_lineage = plan.state_serial == 0 or plan.state_lineage == state.lineage
        if not same_lineage or plan.state_serial != state.serial:
            raise StalePlan(
                f"the saved plan is stale: the state changed since it was made (serial "
                f"{plan.state_serial} → {state.serial})"
            )
        if any(split_user_server(c.server) for c in plan.changes):
            self.fleets(state)  # whose servers the plan names, and how to reach them
        starting = {c.server for c in plan.changes if c.action is Action.SERVER_START}
        starts = [c for c in plan.runnable if c.action in (Action.START, Action.REPLACE)]
        dirs: dict[str, set[str]] = {}
        for change in starts:
            if change.kernel_recipe.cwd is not None and change.server not in starting:
                dirs.setdefault(change.server, set()).add(change.kernel_recipe.cwd)
        servers = {c.server for c in plan.changes} | {f.server for f in plan.facts}
        unknown = sorted(
            s for s in servers if s not in self.manifest.servers and not self._is_member(s)
        )
        if unknown:
            raise StalePlan(
                f"the saved plan is stale: {self.manifest.path} declares no server"
                f" {', '.join(repr(u) for u in unknown)}"
            )
        live = self.refresh(servers - starting, dirs=dirs)
        for change in starts:
            if change.server in starting:
                continue  # its server is not running yet: checked when it started
            wrong = live[change.server].missing_dirs.get(change.kernel_recipe.cwd or "")
            if wrong is not None:
                raise StalePlan(
                    f"the saved plan is stale: cwd {change.kernel_recipe.cwd!r} of {change.address}"
                    f" {wrong} on server {change.server!r} now"
                )
        for fact in plan.facts:
            server = live.get(fact.server)
            kernel = server.kernels.get(fact.kernel_id) if server else None
            if kernel is None or kernel.name != fact.spec:
                raise StalePlan(
                    f"the saved plan is stale: kernel {fact.kernel_id} on {fact.server} is gone "
                    "or changed since it was made"
                )
            assert server is not None
            if server.in_use(fact.kernel_id) and not fact.in_use:
                raise StalePlan(
                    f"the saved plan is stale: kernel {fact.kernel_id} on {fact.server} is now "
                    "in use"
                )
        return live, state

    def apply(
        self,
        plan: Plan,
        *,
        live: dict[str, LiveServer],
        state: State,
        on_outcome: Callable[[Outcome], None],
        on_interrupt: Callable[[int], None] = lambda in_flight: None,
    ) -> tuple[Report, State]:
        """Carry out the plan; the state is written after every action (see ``execute``
        for Ctrl-C). Returns the report and the state as the run left it."""
        servers = set(live) | {c.server for c in plan.runnable}
        clients = {name: self.client(name) for name in sorted(servers)}
        return execute(
            plan,
            clients=clients,
            live=live,
            store=self.store,
            state=state,
            parallelism=self.settings.parallelism,
            clock=self.clock,
            hooks=self.runtime.hooks,
            waits=self.waits(plan),
            on_outcome=on_outcome,
            stop=self.runtime.stop,
            on_interrupt=on_interrupt,
            launchers=self.launchers(plan),
        )

    def import_kernel(self, address: str, kernel_id: str) -> tuple[Resource, Desired]:
        """Adopt a running kernel for a declared address (on a hub: ``NAME@USER``);
        returns the record and the declaration it was imported for."""
        try:
            parse_target(address)
        except ValueError as e:
            raise KernelformError(str(e)) from None
        state = self.store.read()
        fleets = self.fleets(state) if "@" in address else {}
        desired = {d.address: d for d in self.manifest.desired(members_of(fleets))}
        declared = declared_address(address, desired)
        if declared is None:
            raise KernelformError(
                f"{address} is not declared in {self.manifest.path}"
                + target_hint(address, list(desired))
            )
        item = desired[declared]
        for held in (declared, *same_kernel(declared)):
            if held in state.resources:
                as_ = "" if held == declared else f" as {held}"
                raise KernelformError(
                    f"{declared} is already managed{as_} (kernel"
                    f" {state.resources[held].kernel_id}); run 'kernelform state rm {held}'"
                    " first to import another kernel"
                )
        for resource in state.resources.values():
            if resource.server == item.server and resource.kernel_id == kernel_id:
                raise KernelformError(
                    f"kernel {kernel_id} is already managed as {resource.address}"
                )
        kernel = self.client(item.server).get_kernel(kernel_id)
        if kernel.name != item.recipe.spec:
            raise PlanError(
                f"kernel {kernel_id} runs spec {kernel.name!r} but {address} declares "
                f"{item.recipe.spec!r}; import a kernel of that spec, or change the manifest"
            )
        # The setup code never ran in a kernel started elsewhere: recorded as absent,
        # the next plan restarts it with "setup changed", and the setup runs then.
        resource = Resource(
            address=declared,
            server=item.server,
            kernel_id=kernel.id,
            recipe=replace(item.recipe, setup=None),
            started_at=self.clock(),
        )
        self.store.write(state.with_resource(resource))
        return resource, item

    def forget(self, addresses: tuple[str, ...]) -> list[Resource]:
        """Remove addresses (or all a base address covers) from the state, kernels untouched."""
        state = self.store.read()
        chosen = recorded_addresses(addresses, state)
        removed = [state.resources[a] for a in chosen]
        for address in chosen:
            state = state.without(address)
        self.store.write(state)
        return removed


def check_targets(
    targets: Sequence[str], *, declared: Iterable[str], recorded: Iterable[str]
) -> None:
    """Refuse targets that are not addresses, or that select no declared or recorded kernel.

    A target that matches nothing would make a plan that reads "no changes"
    while the kernel meant has some: a typo must not look like success.
    """
    problems: list[str] = []
    for target in targets:
        try:
            parse_target(target)
        except ValueError as e:
            problems.append(str(e))
    if problems:
        raise PlanError("\n".join(problems))
    known = [*declared, *recorded]
    for target in unmatched_targets(targets, known):
        hint = target_hint(target, known)
        problems.append(f"target {quoted(target)} matches no declared or recorded kernel{hint}")
    if problems:
        raise PlanError("\n".join(problems))


def target_hint(target: str, known: Sequence[str]) -> str:
    """What a *target* (or address) that names none of the *known* addresses may have
    meant: ``"; etl has: etl[0], etl[1]"``, ``"; did you mean 'etl'?"``, or the kernels."""
    name = parse_target(target).name
    same = sorted({a for a in known if _name_of(a) == name}, key=_order)
    if same:  # the right kernel, another replica or user: say which exist
        shown = ", ".join(same[:5]) + (", …" if len(same) > 5 else "")
        return f"; {name} has: {shown}"
    names = _names(known)
    hint = did_you_mean(target, names)
    if not hint:
        bases = sorted({n for n in names if "[" not in n and "~" not in n})
        shown = ", ".join(bases[:10]) + (", …" if len(bases) > 10 else "")
        hint = f"; the kernels are: {shown}" if bases else "; no kernel is declared"
    return hint


def declared_address(given: str, declared: Iterable[str]) -> str | None:
    """The one declared address *given* names, as ``--target`` and the planner read it.

    ``etl`` names the only replica of a kernel of ``count: 1`` (``etl[0]``), and
    ``etl[0]`` a kernel declared without ``count`` (``etl``); ``tutor@ana`` the
    only one of ana's ``tutor`` kernels. ``None`` when it names none, or several.
    """
    pool = list(declared)
    if given in pool:
        return given
    named = {a for a in pool if matches_target(a, [given]) or given in same_kernel(a)}
    return named.pop() if len(named) == 1 else None


def same_kernel(address: str) -> tuple[str, ...]:
    """The other spelling of *address* the planner takes for the same kernel:
    ``etl`` and ``etl[0]`` (with the same user) are one."""
    try:
        parsed = parse_address(address)
    except ValueError:
        return ()
    if parsed.deposed or parsed.index not in (None, 0):
        return ()
    return (str(parsed.with_index(0 if parsed.index is None else None)),)


def recorded_addresses(given: Sequence[str], state: State) -> list[str]:
    """The recorded addresses *given* names, each as ``--target`` would (``etl`` → ``etl[0]``…).

    An address recorded as written (``etl[1]~deposed`` too) names itself. One
    that names nothing recorded is an error with a did-you-mean.
    """
    chosen: dict[str, None] = {}
    missing: list[str] = []
    for text in given:
        if text in state.resources:
            chosen[text] = None
            continue
        try:
            parse_target(text)
        except ValueError as e:
            raise StateError(str(e)) from None
        covered = [a for a in state.resources if matches_target(a, [text])]
        if not covered:
            missing.append(text)
        chosen.update(dict.fromkeys(covered))
    if missing:
        hints = "".join(did_you_mean(m, _names(state.resources)) for m in missing[:1])
        raise StateError(
            f"not in the state: {', '.join(missing)}{hints} (see 'kernelform state list')"
        )
    return list(chosen)


def _name_of(address: str) -> str | None:
    try:
        return parse_address(address).name
    except ValueError:
        return None


def _order(address: str) -> tuple[object, ...]:
    parsed = parse_address(address)
    return (parsed.name, parsed.user or "", parsed.index or 0, parsed.deposed)


def _names(addresses: Iterable[str]) -> set[str]:
    """Addresses and the base names they are declared under: what a user may have meant."""
    found = set(addresses)
    for address in list(found):
        try:
            found.add(parse_address(address).name)
        except ValueError:
            continue
    return found


def relocate(plan: Plan, manifest: Path) -> Plan:
    """*plan* as made next to *manifest*: a saved plan applied from another checkout (found
    through its manifest, moved) expects a file state kept beside the manifest to have
    moved with it. A state elsewhere (another path, a database) is expected where it was."""
    if not plan.manifest_absolute or not plan.state_location:
        return plan
    old, new = Path(plan.manifest_absolute).parent, manifest.absolute().parent
    if old == new:
        return plan
    try:
        inside = Path(plan.state_location).relative_to(old)
    except ValueError:
        return plan
    return replace(plan, state_location=str(new / inside))


def locate_manifest(plan: Plan, plan_file: Path) -> Path:
    """The manifest a saved plan was made from: its absolute path, or (moved together
    with the plan, another checkout) the same path relative to the plan file."""
    places = [Path(plan.manifest_absolute or plan.manifest_path)]
    if plan.manifest_relative:
        places.append(plan_file.parent / plan.manifest_relative)
    elif not plan.manifest_absolute:  # saved before plans recorded where: as given, or by it
        places.append(plan_file.parent / plan.manifest_path)
    places = list(dict.fromkeys(places))
    for place in places:
        try:
            if place.is_file():
                return place
        except OSError:  # e.g. a directory on the way that cannot be searched
            continue
    where = f"{plan_file}: {places[0]} does not exist"
    if len(places) > 1:
        where = f"{plan_file}: neither {' nor '.join(str(p) for p in places)} exists"
    raise PlanError(f"cannot find the manifest of the plan {where}")
