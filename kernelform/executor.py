"""The executor: carries out a plan's changes concurrently, recording each step.

Every action writes the state as soon as it has done something on a server,
so a crash loses nothing already done:

- start: when the server takes a client-chosen ``kernel_id`` (jupyter_server
  >= 2.21), the id is recorded as *pending* before the request, so a rerun
  finds the kernel (or starts that same id again) instead of starting a twin;
- replace: the old kernel is first recorded as deposed (``ADDRESS~deposed``),
  then the new one is started and recorded, then the old one shut down and
  forgotten; a crash in between leaves the deposed kernel to the next plan;
- restart, shutdown: the state is written right after the server answers.

One failing action does not stop the others. A state that cannot be written
does: no new action starts, and the error (with its recovery file) is raised
once the running ones are done.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from kernelform import faults
from kernelform.client import JupyterClient
from kernelform.errors import (
    ConnectError,
    KernelformError,
    KernelNotFound,
    RequestTimeout,
    StateWriteError,
)
from kernelform.facts import LiveServer
from kernelform.plan import Action, Change, Plan, UpdateKind, deposed
from kernelform.state import Resource, State, StateStore

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    """How one change went: the resulting kernel id, or why it failed."""

    change: Change
    ok: bool
    seconds: float
    kernel_id: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.change.address,
            "server": self.change.server,
            "action": self.change.action.value,
            "ok": self.ok,
            "kernel_id": self.kernel_id,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class Report:
    """Everything one apply did, failed to do, or left blocked."""

    outcomes: tuple[Outcome, ...]
    blocked: tuple[Change, ...]

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
            "summary": {
                "succeeded": len(self.succeeded),
                "failed": len(self.failed),
                "blocked": len(self.blocked),
            },
        }


class _Recorder:
    """The state as it stands, written through the store after every step."""

    def __init__(self, store: StateStore, state: State) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.state = state
        self.write_error: StateWriteError | None = None

    def update(self, edit: Callable[[State], State]) -> None:
        with self._lock:
            edited = edit(self.state)
            if edited == self.state:
                return
            faults.checkpoint("before-state-write")
            try:
                self.state = self._store.write(edited)
            except StateWriteError as e:
                self.state = edited
                self.write_error = e
                raise
            faults.checkpoint("after-state-write")


def execute(
    plan: Plan,
    *,
    clients: Mapping[str, JupyterClient],
    live: Mapping[str, LiveServer],
    store: StateStore,
    state: State,
    parallelism: int = 10,
    clock: Clock,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
) -> tuple[Report, State]:
    """Carry out *plan*'s runnable changes; return the report and the final state."""
    recorder = _Recorder(store, state)
    recorder.update(lambda s: _apply_updates(plan, s))
    runner = _Runner(clients=clients, live=live, recorder=recorder, clock=clock)
    outcomes: list[Outcome] = []
    pending = list(plan.runnable)
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        running: set[Future[Outcome]] = set()
        while pending or running:
            while pending and len(running) < parallelism and recorder.write_error is None:
                running.add(pool.submit(runner.run, pending.pop(0)))
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                outcomes.append(outcome)
                on_outcome(outcome)
    if recorder.write_error is not None:
        raise recorder.write_error
    return Report(outcomes=tuple(outcomes), blocked=plan.blocked), recorder.state


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
            state = state.with_resource(replace(resource, pending=False))
        elif update.kind is UpdateKind.FORGET:
            state = state.without(update.address)
    return state


class _Runner:
    def __init__(
        self,
        *,
        clients: Mapping[str, JupyterClient],
        live: Mapping[str, LiveServer],
        recorder: _Recorder,
        clock: Clock,
    ) -> None:
        self._clients = clients
        self._live = live
        self._recorder = recorder
        self._clock = clock

    def run(self, change: Change) -> Outcome:
        began = time.monotonic()
        try:
            kernel_id = self._dispatch(change)
        except KernelformError as e:
            return Outcome(change, ok=False, seconds=time.monotonic() - began, error=str(e))
        return Outcome(change, ok=True, seconds=time.monotonic() - began, kernel_id=kernel_id)

    def _dispatch(self, change: Change) -> str | None:
        if change.action is Action.START:
            return self._start(change)
        if change.action is Action.REPLACE:
            return self._replace(change)
        assert change.kernel_id is not None
        client = self._clients[change.server]
        if change.action is Action.RESTART:
            kernel = client.restart_kernel(change.kernel_id)
            self._recorder.update(lambda s: _restarted(s, change, self._clock()))
            return kernel.id
        if change.action is Action.INTERRUPT:
            client.interrupt_kernel(change.kernel_id)
            return change.kernel_id
        self._shutdown(change.server, change.kernel_id)
        if change.managed:
            self._recorder.update(lambda s: s.without(change.address))
        return change.kernel_id

    def _start(self, change: Change) -> str:
        assert change.spec is not None
        client = self._clients[change.server]
        chosen = str(uuid.uuid4()) if self._live[change.server].accepts_kernel_id else None
        if chosen:
            pending = _resource(change, kernel_id=chosen, now=self._clock(), pending=True)
            self._recorder.update(lambda s: s.with_resource(pending))
        try:
            faults.checkpoint("before-start")
            kernel = client.start_kernel(change.spec, path=change.cwd, kernel_id=chosen)
            faults.checkpoint("after-start")
        except (RequestTimeout, ConnectError):
            raise
        except KernelformError:
            if chosen:
                self._recorder.update(lambda s: s.without(change.address))
            raise
        started = _resource(change, kernel_id=kernel.id, now=self._clock(), pending=False)
        self._recorder.update(lambda s: s.with_resource(started))
        return kernel.id

    def _replace(self, change: Change) -> str:
        assert change.kernel_id is not None
        old = self._recorder.state.resources.get(change.address)
        deposed_address = deposed(change.address)
        if old is not None:
            kept = replace(old, address=deposed_address)
            self._recorder.update(lambda s: s.without(change.address).with_resource(kept))
        try:
            new_id = self._start(replace(change, action=Action.START))
        except KernelformError:
            if old is not None:
                self._recorder.update(lambda s: _reinstate(s, old, deposed_address))
            raise
        self._shutdown(change.old_server or change.server, change.kernel_id)
        self._recorder.update(lambda s: s.without(deposed_address))
        return new_id

    def _shutdown(self, server: str, kernel_id: str) -> None:
        try:
            self._clients[server].shutdown_kernel(kernel_id)
        except KernelNotFound:
            return


def _restarted(state: State, change: Change, now: datetime) -> State:
    resource = state.resources.get(change.address)
    if resource is None:
        return state
    return state.with_resource(replace(resource, revision=change.revision, started_at=now))


def _reinstate(state: State, old: Resource, deposed_address: str) -> State:
    """Undo a replace whose new kernel did not start: the old one keeps its address."""
    if old.address in state.resources:
        return state
    return state.without(deposed_address).with_resource(old)


def _resource(change: Change, *, kernel_id: str, now: datetime, pending: bool) -> Resource:
    assert change.spec is not None
    return Resource(
        address=change.address,
        server=change.server,
        kernel_id=kernel_id,
        spec=change.spec,
        cwd=change.cwd,
        revision=change.revision,
        started_at=now,
        pending=pending,
    )
