"""The executor: carries out a plan's changes concurrently, recording each step.

Every action writes the state as soon as it has done something on a server,
so a crash loses nothing already done:

- start: the start is recorded as *pending* before the request. When the
  server takes a client-chosen ``kernel_id`` (jupyter_server >= 2.21), the
  record holds that id, so a rerun finds the kernel (or starts that same id
  again) instead of starting a twin. Otherwise it holds a placeholder id and
  the start time, and the planner looks for the kernel by spec and time
  (see ``kernelform.planner``);
- replace: the old kernel is first recorded as deposed (``ADDRESS~deposed``),
  then the new one is started and recorded, then the old one shut down and
  forgotten; a crash in between leaves the deposed kernel to the next plan;
- restart, shutdown: the state is written right after the server answers;
- server-start (a hub user's server, ``start_servers: true``): runs first;
  every change on that server waits for it, and fails without a request if
  the server did not start. Nothing is recorded: the state holds kernels only.

Ready means ready: with ``waits``, a started or restarted kernel's action
only succeeds once the kernel answers over its websocket (and its setup code
ran). The wait does not hold one of the ``parallelism`` slots, which bound the
requests to servers, so many kernels warm up at once. A kernel that dies or
stays silent is recorded as *tainted* (never forgotten, never unrecorded) and
its action fails; the next plan restarts or starts it again. A replace shuts
the old kernel down only once the new one is ready.

A run can be asked to stop (``stop``, an event set from another thread, e.g.
by a signal handler): no new action starts (those left are reported as
skipped), the actions in flight finish and are recorded, and a wait for a
kernel to answer ends within a fraction of a second; that kernel stays
recorded, tainted, so the next plan restarts it (its readiness, and its setup,
were never confirmed). Nothing a stop cuts short is left unrecorded.

One failing action does not stop the others. A state that cannot be written
does: no new action starts, the running ones still record what they do (each
failed write rewrites the run's one recovery file with everything so far), and
once they are done the last write's error is raised, naming that file. If a
later write went through after all, the state file holds everything and the
error says that no recovery file is needed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from kernelform.address import parse_address
from kernelform.errors import (
    ConnectError,
    KernelformError,
    KernelNotFound,
    KernelNotReady,
    PlanError,
    RequestTimeout,
    StateWriteError,
)
from kernelform.facts import read_server
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.live import LiveServer
from kernelform.plan import Action, Change, Plan, UpdateKind
from kernelform.planner import is_placeholder, placeholder_id
from kernelform.server import KernelServer, ServerLauncher
from kernelform.state import Resource, State, StateStore

Clock = Callable[[], datetime]
MAX_WAITERS = 64  # kernels waited for at once (a wait is a websocket and a REST poll)


@dataclass(frozen=True)
class WaitFor:
    """How to wait for a kernel after it is started or restarted."""

    timeout: float
    setup: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How one change went: the resulting kernel id, or why it failed.

    ``seconds`` is the whole action; ``ready_seconds`` the part spent waiting
    for the kernel to answer (None when it was not waited for).
    """

    change: Change
    ok: bool
    seconds: float
    kernel_id: str | None = None
    error: str | None = None
    ready_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.change.address,
            "server": self.change.server,
            "action": self.change.action.value,
            "ok": self.ok,
            "kernel_id": self.kernel_id,
            "seconds": round(self.seconds, 3),
            "ready_seconds": None if self.ready_seconds is None else round(self.ready_seconds, 3),
            "error": self.error,
            "reason": self.change.reason,
        }


@dataclass(frozen=True)
class _Waiting:
    """An action done on the server whose kernel must now answer; *then* runs once it does."""

    change: Change
    kernel_id: str
    began: float
    wait: WaitFor
    then: Callable[[], None] | None = None


@dataclass(frozen=True)
class Report:
    """Everything one apply did, failed to do, or left blocked.

    ``skipped`` are runnable changes never started because the run was asked
    to stop (or a state write failed) first; ``interrupted`` says the stop was
    a Ctrl-C (see ``execute``).
    """

    outcomes: tuple[Outcome, ...]
    blocked: tuple[Change, ...]
    skipped: tuple[Change, ...] = ()
    interrupted: bool = False

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.ok)

    @property
    def succeeded(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcomes": [o.to_dict() for o in self.outcomes],
            "blocked": [c.to_dict() for c in self.blocked],
            "skipped": [c.to_dict() for c in self.skipped],
            "interrupted": self.interrupted,
            "summary": {
                "succeeded": len(self.succeeded),
                "failed": len(self.failed),
                "blocked": len(self.blocked),
                "skipped": len(self.skipped),
            },
        }


@dataclass(frozen=True)
class _Edit:
    """One action's edit, waiting to be recorded: what it changed, in order."""

    ticket: int
    puts: list[Resource]
    drops: list[str]
    touched: list[str]


class _Recorder:
    """The state as it stands, each edit recorded through the store before ``update`` returns.

    Group commit: edits that concurrent actions make while a write is in flight
    are queued, and the next write records them all at once (one
    ``store.record``: one fsync, or one transaction). Each ``update`` still
    returns only once its own edit is durable, so the rules hold: a start is
    durable as pending before its request, and every result is durable before
    the next step of its action.

    ``stored`` is the last state the store acknowledged; ``state`` is what this
    run knows (``stored``, or after a failed write, with the edits the store has
    not got); edits are made on ``_latest`` (``state`` with the queued edits),
    in order. While the writes go through a batch is recorded incrementally;
    after a failed write the next one stores the whole state on top of
    ``stored``, so that a write that goes through holds everything.
    """

    def __init__(self, store: StateStore, state: State, hooks: Hooks) -> None:
        self._store = store
        self._hooks = hooks
        self._cond = threading.Condition()
        self.state = state
        self.stored = state
        self._latest = state
        self._queue: list[_Edit] = []
        self._issued = 0  # tickets handed out
        self._done = 0  # every ticket up to this one is settled (durable or failed)
        self._failed: dict[int, BaseException] = {}
        self._writing = False
        self.write_error: StateWriteError | None = None
        self.saved = True

    def update(self, edit: Callable[[State], State], *, touched: Iterable[str]) -> None:
        """Apply *edit* and record what it changed at the *touched* addresses.

        Returns once the change is durable; raises the write's error if the
        write that carried it failed. The edit itself may raise (``PlanError``):
        then nothing is queued.
        """
        addresses = list(dict.fromkeys(touched))
        with self._cond:
            before = self._latest
            edited = edit(before)
            puts, drops = _difference(before, edited, addresses)
            if not puts and not drops:
                return
            self._issued += 1
            ticket = self._issued
            self._queue.append(_Edit(ticket, puts, drops, addresses))
            self._latest = edited
        self._hooks.before_state_write()
        with self._cond:
            while self._done < ticket:
                if self._writing:
                    self._cond.wait()
                else:
                    self._write_batch()
            error = self._failed.pop(ticket, None)
        if error is not None:
            raise error
        self._hooks.after_state_write()

    def _write_batch(self) -> None:
        """Record every queued edit in one write; called with the condition held."""
        batch, self._queue = self._queue, []
        stored, target, saved = self.stored, self._latest, self.saved
        touched = list(dict.fromkeys(a for e in batch for a in e.touched))
        self._writing = True
        self._cond.release()
        error: BaseException | None = None
        written: State | None = None
        try:
            if saved:
                puts, drops = _difference(stored, target, touched)
                written = self._store.record(stored, puts=puts, drops=drops)
            else:
                written = self._store.write(target.at_serial(stored.serial))
        except BaseException as e:  # every waiter of the batch gets it, even a bug
            error = e
        finally:
            self._cond.acquire()
        self._writing = False
        if written is not None:
            # ``_latest`` already holds the edits queued meanwhile on top of these.
            self.state = self.stored = written
            self.saved = True
        elif isinstance(error, StateWriteError):
            self.state = target
            self.write_error = error
            self.saved = False
        else:
            # Refused (a stale state, another lineage): these edits are not stored;
            # the ones queued meanwhile are kept on top of what is.
            self._latest = _replayed(self.state, self._queue)
        if error is not None:
            for item in batch:
                self._failed[item.ticket] = error
        self._done = batch[-1].ticket
        self._cond.notify_all()

    def final_error(self) -> StateWriteError | None:
        """What to raise once every action is done, if a write failed."""
        if self.write_error is None or not self.saved:
            return self.write_error
        cause = self.write_error.__cause__ or self.write_error
        return StateWriteError(
            f"the state could not be written to {self._store.location} ({cause}), but a"
            " later write went through, so it holds everything this run did: the recovery"
            " file saved on the failure is out of date, do not restore it; the actions not"
            " started because of the failure were skipped: run 'kernelform apply' again"
        )


def _replayed(state: State, queue: list[_Edit]) -> State:
    """*state* with the queued edits made on it, in order."""
    for queued in queue:
        state = state.edited(puts=queued.puts, drops=queued.drops)
    return state


def _difference(
    before: State, after: State, touched: Iterable[str]
) -> tuple[list[Resource], list[str]]:
    """What changed between two states at *touched* addresses: (puts, drops)."""
    puts: list[Resource] = []
    drops: list[str] = []
    for address in dict.fromkeys(touched):
        new = after.resources.get(address)
        if new is None:
            if address in before.resources:
                drops.append(address)
        elif before.resources.get(address) != new:
            puts.append(new)
    return puts, drops


def execute(
    plan: Plan,
    *,
    clients: Mapping[str, KernelServer],
    live: Mapping[str, LiveServer],
    store: StateStore,
    state: State,
    parallelism: int = 10,
    clock: Clock,
    hooks: Hooks = NO_HOOKS,
    waits: Mapping[str, WaitFor] | None = None,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    stop: threading.Event | None = None,
    on_interrupt: Callable[[int], None] = lambda in_flight: None,
    launchers: Mapping[str, ServerLauncher] | None = None,
) -> tuple[Report, State]:
    """Carry out *plan*'s runnable changes; return the report and the final state.

    *waits* maps an address to how to wait for its kernel once started or
    restarted; an address without one is not waited for. Once *stop* is set,
    no new action starts and waits end (see the module's docstring).

    A ``KeyboardInterrupt`` (Ctrl-C) while this runs in the main thread sets
    *stop*: nothing new starts, the actions in flight finish or are abandoned
    as a stop has them (every start recorded), *on_interrupt* is told how many
    there are, and the report is the usual one, ``interrupted``, with the rest
    ``skipped``. A second one while they finish is raised.

    *launchers* start the servers of the plan's ``server-start`` changes.
    """
    stop = stop if stop is not None else threading.Event()
    recorder = _Recorder(store, state, hooks)
    recorder.update(lambda s: _apply_updates(plan, s), touched=_update_addresses(plan))
    runner = _Runner(
        clients=clients,
        live=live,
        recorder=recorder,
        clock=clock,
        hooks=hooks,
        waits=waits or {},
        stop=stop,
        launchers=launchers or {},
    )
    outcomes: list[Outcome] = []
    pending, held = _order(plan.runnable)

    def finished(outcome: Outcome) -> None:
        outcomes.append(outcome)
        on_outcome(outcome)
        done = outcome.change
        key = _after_server(done.server) if done.action is Action.SERVER_START else done.address
        queued = held.pop(key, [])
        if outcome.ok:
            pending.extend(queued)
            return
        for change in queued:
            if done.action is Action.SERVER_START:
                why = f"its server {change.server} did not start"
            else:
                why = f"{done.address} did not get ready, so this older kernel is kept"
            finished(_not_run(change, why))

    with (
        ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool,
        ThreadPoolExecutor(max_workers=MAX_WAITERS) as waiters,
    ):
        acting: set[Future[Outcome | _Waiting]] = set()
        waiting: set[Future[Outcome | _Waiting]] = set()
        interrupted = False
        while pending or acting or waiting:
            while pending and len(acting) < parallelism and recorder.write_error is None:
                if stop.is_set():
                    break
                acting.add(pool.submit(runner.run, pending.pop(0)))
            if not acting and not waiting:
                break
            try:
                done, _ = wait(acting | waiting, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                stop.set()
                on_interrupt(len(acting) + len(waiting))
                continue
            acting -= done
            waiting -= done
            for future in done:
                result = future.result()
                if isinstance(result, _Waiting):
                    waiting.add(waiters.submit(runner.finish, result))
                    continue
                finished(result)
    error = recorder.final_error()
    if error is not None:
        raise error
    store.settle(recorder.state)
    never_run = [*pending, *(change for queued in held.values() for change in queued)]
    report = Report(
        outcomes=tuple(outcomes),
        blocked=plan.blocked,
        skipped=tuple(never_run),
        interrupted=interrupted,
    )
    return report, recorder.state


def _order(changes: Iterable[Change]) -> tuple[list[Change], dict[str, list[Change]]]:
    """What can run now (server starts first), and what waits for another change:
    kernels for their server to start (held under ``_after_server(NAME)``), and the
    shutdown of a deposed kernel (``ADDRESS~deposed``) for the change that makes
    ``ADDRESS`` ready again (held under that address): were it to fail, the old
    kernel would be the only one left."""
    changes = list(changes)
    starting = {c.server for c in changes if c.action is Action.SERVER_START}
    renewed = {c.address for c in changes if c.action in _RENEWING}
    ready = [c for c in changes if c.action is Action.SERVER_START]
    held: dict[str, list[Change]] = {}
    for change in changes:
        if change.action is Action.SERVER_START:
            continue
        successor = _successor(change)
        if successor is not None and successor in renewed:
            held.setdefault(successor, []).append(change)
        elif change.server in starting:
            held.setdefault(_after_server(change.server), []).append(change)
        else:
            ready.append(change)
    return ready, held


# The changes after which the kernel at their address is ready again, and until which
# a deposed kernel may be the only working one. Not a replace: it keeps the current
# kernel until the new one is ready, and needs the ~deposed record free to do so.
_RENEWING = frozenset({Action.START, Action.RESTART})


def _successor(change: Change) -> str | None:
    """For the shutdown of a deposed kernel, the address its replacement holds."""
    if change.action is not Action.SHUTDOWN or not change.managed:
        return None  # an unmanaged kernel's "address" is SERVER/ID, not an address
    address = parse_address(change.address)
    return str(address.base) if address.deposed else None


def _after_server(server: str) -> str:
    """The key under which changes wait for *server* to start (never an address)."""
    return f"server start {server}"


def _not_run(change: Change, why: str) -> Outcome:
    return Outcome(change, ok=False, seconds=0.0, error=f"not run: {why}")


def _update_addresses(plan: Plan) -> list[str]:
    addresses = [u.address for u in plan.updates]
    return addresses + [u.new_address for u in plan.updates if u.new_address]


def _apply_updates(plan: Plan, state: State) -> State:
    for update in plan.updates:
        resource = state.resources.get(update.address)
        if resource is None:
            continue
        if update.kind is UpdateKind.MOVE and update.new_address:
            state = state.without(update.address).with_resource(
                replace(resource, address=update.new_address)
            )
        elif update.kind is UpdateKind.CONFIRM:
            kernel_id = update.kernel_id or resource.kernel_id
            state = state.with_resource(replace(resource, kernel_id=kernel_id, pending=False))
        elif update.kind is UpdateKind.FORGET:
            state = state.without(update.address)
    return state


class _Runner:
    def __init__(
        self,
        *,
        clients: Mapping[str, KernelServer],
        live: Mapping[str, LiveServer],
        recorder: _Recorder,
        clock: Clock,
        hooks: Hooks,
        waits: Mapping[str, WaitFor],
        launchers: Mapping[str, ServerLauncher],
        stop: threading.Event | None = None,
    ) -> None:
        self._clients = clients
        self._live = dict(live)  # a started server's facts are added
        self._recorder = recorder
        self._clock = clock
        self._hooks = hooks
        self._waits = waits
        self._stop = stop
        self._launchers = launchers

    def run(self, change: Change) -> Outcome | _Waiting:
        """Do *change* on its server; what remains is waiting for its kernel, if anything."""
        began = time.monotonic()
        try:
            kernel_id = self._dispatch(change)
        except KernelformError as e:
            return Outcome(change, ok=False, seconds=time.monotonic() - began, error=str(e))
        wait_for = self._waits.get(change.address)
        waited = (Action.START, Action.RESTART, Action.REPLACE)
        if kernel_id is not None and wait_for is not None and change.action in waited:
            then = None
            if change.action is Action.REPLACE:
                then = lambda: self._retire_deposed(change)  # noqa: E731
            return _Waiting(change, kernel_id, began, wait_for, then)
        if change.action is Action.REPLACE:
            try:
                self._retire_deposed(change)
            except KernelformError as e:
                return Outcome(change, ok=False, seconds=time.monotonic() - began, error=str(e))
        return Outcome(change, ok=True, seconds=time.monotonic() - began, kernel_id=kernel_id)

    def finish(self, waiting: _Waiting) -> Outcome:
        """Wait for the kernel of *waiting* to answer; taint it when it does not."""
        change, kernel_id, wait_for = waiting.change, waiting.kernel_id, waiting.wait
        try:
            readiness = self._clients[change.server].wait_ready(
                kernel_id, timeout=wait_for.timeout, setup=wait_for.setup, cancel=self._stop
            )
        except KernelNotReady as e:
            error: KernelformError = e
            summary = e.summary
            try:
                self._recorder.update(
                    lambda s: _tainted(s, change.address, kernel_id, summary),
                    touched=[change.address],
                )
            except KernelformError as failed:
                error = failed
            return Outcome(
                change,
                ok=False,
                seconds=time.monotonic() - waiting.began,
                kernel_id=kernel_id,
                error=str(error),
            )
        except KernelformError as e:
            seconds = time.monotonic() - waiting.began
            return Outcome(change, ok=False, seconds=seconds, kernel_id=kernel_id, error=str(e))
        try:
            if waiting.then is not None:
                waiting.then()
        except KernelformError as e:
            seconds = time.monotonic() - waiting.began
            return Outcome(change, ok=False, seconds=seconds, kernel_id=kernel_id, error=str(e))
        return Outcome(
            change,
            ok=True,
            seconds=time.monotonic() - waiting.began,
            kernel_id=kernel_id,
            ready_seconds=readiness.seconds,
        )

    def _dispatch(self, change: Change) -> str | None:
        if change.action is Action.SERVER_START:
            self._launch(change)
            return None
        if change.action is Action.START:
            return self._start(change)
        if change.action is Action.REPLACE:
            return self._replace(change)
        assert change.kernel_id is not None
        client = self._clients[change.server]
        if change.action is Action.RESTART:
            kernel = client.restart_kernel(change.kernel_id)
            self._recorder.update(
                lambda s: _restarted(s, change, self._clock()), touched=[change.address]
            )
            return kernel.id
        if change.action is Action.INTERRUPT:
            client.interrupt_kernel(change.kernel_id)
            return change.kernel_id
        self._shutdown(change.server, change.kernel_id)
        if change.managed:
            self._recorder.update(lambda s: s.without(change.address), touched=[change.address])
        return change.kernel_id

    def _launch(self, change: Change) -> None:
        """Start a hub user's server; what it reports is then known like any server's."""
        launcher = self._launchers.get(change.server)
        if launcher is None:
            raise PlanError(f"no way to start server {change.server}; make a new plan")
        launcher.launch()
        self._live[change.server] = read_server(change.server, self._clients[change.server])

    def _start(self, change: Change) -> str:
        client = self._clients[change.server]
        chosen = (
            self._pending_id(change) or str(uuid.uuid4())
            if self._live[change.server].accepts_kernel_id
            else None
        )
        # Recorded before the request either way; a server that picks the id
        # itself gets a placeholder, and the planner finds the kernel by spec
        # and start time if this run dies before it learns the id.
        marker = chosen or placeholder_id()
        pending = _resource(change, kernel_id=marker, now=self._clock(), pending=True)
        self._recorder.update(lambda s: s.with_resource(pending), touched=[change.address])
        try:
            self._hooks.before_start(change.address)
            recipe = change.kernel_recipe
            # No cwd: the server's root (as a notebook at the top), not the server
            # process's own working directory, where a start without a path runs.
            kernel = client.start_kernel(recipe.spec, path=recipe.cwd or "", kernel_id=chosen)
            self._hooks.after_start(change.address, kernel.id)
        except (RequestTimeout, ConnectError):
            raise  # it may have started: the pending record lets the next run find out
        except KernelformError:
            self._recorder.update(lambda s: s.without(change.address), touched=[change.address])
            raise
        started = _resource(change, kernel_id=kernel.id, now=self._clock(), pending=False)
        self._recorder.update(lambda s: s.with_resource(started), touched=[change.address])
        return kernel.id

    def _pending_id(self, change: Change) -> str | None:
        """The id a previous, interrupted start recorded for this address, if any.

        Starting that same id again (not a fresh one) matters when the earlier
        POST timed out or broke but still reaches the server later: the server
        then answers with the kernel this start made instead of starting a twin.
        """
        resource = self._recorder.state.resources.get(change.address)
        if resource is None or not resource.pending or resource.server != change.server:
            return None
        if is_placeholder(resource.kernel_id):
            return None  # recorded while the server ignored kernel ids: not a real id
        return resource.kernel_id

    def _replace(self, change: Change) -> str:
        """Depose the old kernel and start the new one (see ``_retire_deposed``)."""
        assert change.kernel_id is not None
        old = self._recorder.state.resources.get(change.address)
        deposed_address = str(parse_address(change.address).as_deposed())
        if old is not None:
            kept = replace(old, address=deposed_address)
            self._recorder.update(
                lambda s: _depose(s, change.address, kept),
                touched=[change.address, deposed_address],
            )
        try:
            new_id = self._start(replace(change, action=Action.START))
        except KernelformError:
            if old is not None:
                self._recorder.update(
                    lambda s: _reinstate(s, old, deposed_address),
                    touched=[old.address, deposed_address],
                )
            raise
        return new_id

    def _retire_deposed(self, change: Change) -> None:
        """The end of a replace: shut the old kernel down and forget it."""
        assert change.kernel_id is not None
        deposed_address = str(parse_address(change.address).as_deposed())
        self._shutdown(change.old_server or change.server, change.kernel_id)
        self._recorder.update(lambda s: s.without(deposed_address), touched=[deposed_address])

    def _shutdown(self, server: str, kernel_id: str) -> None:
        try:
            self._clients[server].shutdown_kernel(kernel_id)
        except KernelNotFound:
            return


def _restarted(state: State, change: Change, now: datetime) -> State:
    resource = state.resources.get(change.address)
    if resource is None:
        return state
    return state.with_resource(
        replace(resource, recipe=change.kernel_recipe, started_at=now, tainted=None)
    )


def _tainted(state: State, address: str, kernel_id: str, reason: str) -> State:
    """Mark the kernel at *address* tainted, if it is still the one that failed."""
    resource = state.resources.get(address)
    if resource is None or resource.kernel_id != kernel_id:
        return state
    return state.with_resource(replace(resource, tainted=reason))


def _depose(state: State, address: str, kept: Resource) -> State:
    """Move a replaced kernel's record aside, but never over another kernel's record.

    ``ADDRESS~deposed`` may still hold a kernel an interrupted replace left
    (its shutdown blocked, failed, or not run yet): overwriting it would forget
    that kernel while it runs, so the replace fails instead, and a later apply
    does it once the leftover is gone.
    """
    holder = state.resources.get(kept.address)
    if holder is not None and holder.kernel_id != kept.kernel_id:
        raise PlanError(
            f"cannot replace {address} yet: {kept.address} still records kernel "
            f"{holder.kernel_id}, left by an interrupted replace; it is shut down first "
            "(by an apply once nothing uses it, or by a forced one), then apply again"
        )
    return state.without(address).with_resource(kept)


def _reinstate(state: State, old: Resource, deposed_address: str) -> State:
    """Undo a replace whose new kernel did not start: the old one keeps its address."""
    if old.address in state.resources:
        return state
    return state.without(deposed_address).with_resource(old)


def _resource(change: Change, *, kernel_id: str, now: datetime, pending: bool) -> Resource:
    return Resource(
        address=change.address,
        server=change.server,
        kernel_id=kernel_id,
        recipe=change.kernel_recipe,
        started_at=now,
        pending=pending,
    )
