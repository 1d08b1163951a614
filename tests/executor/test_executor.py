"""The executor's own rules, driving ``execute()`` directly (see kernelform/executor.py).

Each test hands ``execute`` a plan of its own making, a ``MemoryStateStore`` and a
real ``JupyterClient`` on the session's real jupyter server (a subclass where the
test must see or steer the moment of a request), then checks the report, the
state and the server itself (with plain REST calls). Kernelspecs: ``python3``,
``mute`` (runs, never answers) and names the server lacks. The end-to-end
versions of these rules, through the command line and with kills, faults and
signals: test_crash, test_faults, test_interrupt, test_ready.

- a start is recorded as pending before its request: under the id it asks for,
  or a placeholder when the server picks ids; a pending id is asked for again;
- a replace records the old kernel as ``ADDRESS~deposed`` before it starts the
  new one, and shuts it down only once the new one answers; a new kernel the
  server refuses gives the old one its address back; the shutdown of a deposed
  kernel waits for the change that makes its address ready again;
- a failed action does not stop the others; a failed state write does (no new
  action starts; the error is raised once the running ones are done);
- waits do not hold the parallelism slots;
- a stop cuts a wait short and leaves the kernel recorded, tainted; Ctrl-C stops
  new actions and reports the run as interrupted;
- restarts and shutdowns are recorded as the server answers;
- a hub user's server is started before its kernels, which fail unrun if it
  does not start.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kernelform.client import JupyterClient
from kernelform.errors import PlanError, StateWriteError
from kernelform.executor import Report, WaitFor, execute
from kernelform.facts import read_server
from kernelform.liveness import Readiness
from kernelform.models import Kernel
from kernelform.plan import Action, Change, Plan
from kernelform.planner import is_placeholder
from kernelform.recipe import Recipe
from kernelform.state import Resource, State, StateStore, new_state
from kernelform.state.memory import MemoryStateStore
from tests.support.facts import NOW, lab
from tests.support.live_jupyter import JupyterServer

LAB = "lab"
EARLIER = NOW - timedelta(hours=1)


def change(
    address: str, action: Action, *, kernel_id: str | None = None, **recipe: str | None
) -> Change:
    """A change on server ``lab``; the recipe is ``python3`` unless *recipe* says otherwise."""
    return Change(
        address=address,
        server=LAB,
        action=action,
        reason="test",
        recipe=Recipe(**{"spec": "python3", **recipe}),  # type: ignore[arg-type]
        kernel_id=kernel_id,
    )


def recorded(address: str, kernel_id: str, **fields: Any) -> Resource:
    """A resource on ``lab``, started an hour before NOW (``python3`` unless *recipe*)."""
    values: dict[str, Any] = {"recipe": Recipe(spec="python3"), "started_at": EARLIER, **fields}
    return Resource(address=address, server=LAB, kernel_id=kernel_id, **values)


def state_of(*resources: Resource) -> State:
    state = new_state()
    for resource in resources:
        state = state.with_resource(resource)
    return state


def carry_out(
    client: JupyterClient,
    changes: Iterable[Change],
    *,
    state: State | None = None,
    store: MemoryStateStore | None = None,
    accepts_kernel_id: bool | None = None,
    **options: Any,
) -> tuple[Report, State]:
    """``execute`` the *changes* on the real server, from *state* as stored in *store*."""
    store = store if store is not None else MemoryStateStore()
    stored = store.write(state if state is not None else new_state())
    live = read_server(LAB, client)
    if accepts_kernel_id is not None:
        live = replace(live, accepts_kernel_id=accepts_kernel_id)
    return execute(
        Plan(changes=tuple(changes)),
        clients={LAB: client},
        live={LAB: live},
        store=store,
        state=stored,
        clock=lambda: NOW,
        **options,
    )


def ids(state: State) -> dict[str, str]:
    return {address: r.kernel_id for address, r in state.resources.items()}


class Recording(JupyterClient):
    """A real client that notes, at each kernel start, the id it asks for and the stored state."""

    def __init__(self, jupyter: JupyterServer, store: StateStore) -> None:
        super().__init__(jupyter.url, jupyter.token, backoff=0)
        self.store = store
        self.starts: list[tuple[str | None, State]] = []

    def start_kernel(
        self, name: str = "python3", *, path: str | None = None, kernel_id: str | None = None
    ) -> Kernel:
        self.starts.append((kernel_id, self.store.read()))
        return super().start_kernel(name, path=path, kernel_id=kernel_id)


# -- a start is recorded before its request ------------------------------------------------


def test_a_start_is_recorded_pending_under_its_id_before_the_request(
    jupyter: JupyterServer,
) -> None:
    store = MemoryStateStore()
    with Recording(jupyter, store) as client:
        if not client.accepts_kernel_id():
            pytest.skip(f"jupyter_server {jupyter.version()} ignores kernel_id")
        report, final = carry_out(client, [change("etl", Action.START)], store=store)
    ((asked, before),) = client.starts
    assert asked is not None
    assert before.resources["etl"].kernel_id == asked and before.resources["etl"].pending
    assert [o.ok for o in report.outcomes] == [True]
    assert ids(final) == {"etl": asked} and not final.resources["etl"].pending
    assert jupyter.kernel_ids() == {asked}
    assert store.read() == final


def test_a_server_that_picks_ids_gets_a_placeholder_recorded_before_the_request(
    jupyter: JupyterServer,
) -> None:
    store = MemoryStateStore()
    with Recording(jupyter, store) as client:
        report, final = carry_out(
            client, [change("etl", Action.START)], store=store, accepts_kernel_id=False
        )
    assert [o.ok for o in report.outcomes] == [True]
    ((asked, before),) = client.starts
    assert asked is None  # the server picks the id
    pending = before.resources["etl"]
    assert pending.pending and is_placeholder(pending.kernel_id), pending
    assert pending.started_at == NOW  # the planner looks for the kernel by spec and time
    (kernel_id,) = jupyter.kernel_ids()
    assert ids(final) == {"etl": kernel_id} and not final.resources["etl"].pending


def test_a_pending_start_asks_for_its_recorded_id_again(jupyter: JupyterServer) -> None:
    """The earlier request may still reach the server: the same id makes no twin."""
    lost = str(uuid.uuid4())
    store = MemoryStateStore()
    with Recording(jupyter, store) as client:
        if not client.accepts_kernel_id():
            pytest.skip(f"jupyter_server {jupyter.version()} ignores kernel_id")
        _, final = carry_out(
            client,
            [change("etl", Action.START)],
            state=state_of(recorded("etl", lost, pending=True)),
            store=store,
        )
    assert [asked for asked, _ in client.starts] == [lost]
    assert ids(final) == {"etl": lost} and jupyter.kernel_ids() == {lost}


# -- replace -------------------------------------------------------------------------------


def test_a_replace_deposes_the_old_kernel_before_starting_the_new_one(
    jupyter: JupyterServer,
) -> None:
    (jupyter.root / "b").mkdir(exist_ok=True)
    old = jupyter.start_kernel()["id"]
    store = MemoryStateStore()
    with Recording(jupyter, store) as client:
        report, final = carry_out(
            client,
            [change("etl", Action.REPLACE, kernel_id=old, cwd="b")],
            state=state_of(recorded("etl", old)),
            store=store,
        )
    ((asked, before),) = client.starts
    assert before.resources["etl~deposed"].kernel_id == old, before.resources
    assert before.resources["etl"].kernel_id == asked and before.resources["etl"].pending
    assert [o.ok for o in report.outcomes] == [True], report
    assert ids(final) == {"etl": asked} and final.resources["etl"].recipe.cwd == "b"
    jupyter.wait_gone(old)
    assert jupyter.kernel_ids() == {asked}


def test_a_replace_keeps_the_old_kernel_until_the_new_one_answers(
    jupyter: JupyterServer, client: JupyterClient
) -> None:
    old = jupyter.start_kernel()["id"]
    report, final = carry_out(
        client,
        [change("etl", Action.REPLACE, kernel_id=old, spec="mute")],
        state=state_of(recorded("etl", old)),
        waits={"etl": WaitFor(timeout=3)},
    )
    (outcome,) = report.outcomes
    assert not outcome.ok and outcome.kernel_id is not None, outcome
    new = outcome.kernel_id
    assert ids(final) == {"etl": new, "etl~deposed": old}
    assert final.resources["etl"].tainted, final.resources["etl"]
    assert jupyter.kernel_ids() == {old, new}  # the old one still serves


def test_a_new_kernel_the_server_refuses_gives_the_old_one_its_address_back(
    jupyter: JupyterServer, client: JupyterClient
) -> None:
    old = jupyter.start_kernel()["id"]
    report, final = carry_out(
        client,
        [change("etl", Action.REPLACE, kernel_id=old, spec="kf-no-such-spec")],
        state=state_of(recorded("etl", old)),
    )
    (outcome,) = report.outcomes
    assert not outcome.ok and "kf-no-such-spec" in (outcome.error or ""), outcome
    assert final.resources == state_of(recorded("etl", old)).resources
    assert jupyter.kernel_ids() == {old}


def test_the_shutdown_of_a_deposed_kernel_waits_for_its_address_to_answer(
    jupyter: JupyterServer, client: JupyterClient
) -> None:
    """Were the new kernel never to answer, the deposed one would be the only one left."""
    old = jupyter.start_kernel()["id"]
    report, final = carry_out(
        client,
        [
            change("etl~deposed", Action.SHUTDOWN, kernel_id=old),
            change("etl", Action.START, spec="mute"),
        ],
        state=state_of(recorded("etl~deposed", old)),
        waits={"etl": WaitFor(timeout=3)},
    )
    outcomes = {o.change.address: o for o in report.outcomes}
    assert not outcomes["etl"].ok
    assert outcomes["etl~deposed"].error == (
        "not run: etl did not get ready, so this older kernel is kept"
    )
    assert final.resources["etl~deposed"].kernel_id == old
    assert old in jupyter.kernel_ids()


# -- failures ------------------------------------------------------------------------------


def test_a_failed_action_does_not_stop_the_others(
    jupyter: JupyterServer, client: JupyterClient
) -> None:
    report, final = carry_out(
        client,
        [
            change("a", Action.START),
            change("b", Action.START, spec="kf-no-such-spec"),
            change("c", Action.START),
        ],
        parallelism=1,
    )
    assert [(o.change.address, o.ok) for o in report.outcomes] == [
        ("a", True),
        ("b", False),
        ("c", True),
    ]
    assert "kf-no-such-spec" in (report.outcomes[1].error or "")
    # The server refused b: nothing started, so nothing is recorded.
    assert set(final.resources) == {"a", "c"}
    assert set(ids(final).values()) == jupyter.kernel_ids()


class FullDisk(MemoryStateStore):
    """Every write from the *failing*-th on fails, as on a full disk (counted once armed)."""

    def __init__(self, recovery_dir: Path, failing: int) -> None:
        super().__init__(recovery_dir=recovery_dir)
        self.failing = failing
        self.writes = 0
        self.armed = False

    def _count(self, written: State) -> None:
        if not self.armed:
            return
        self.writes += 1
        if self.writes >= self.failing:
            raise self.write_failed(written, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    def _append(self, base: State, written: State, puts: list[Resource], drops: list[str]) -> None:
        self._count(written)
        super()._append(base, written, puts, drops)

    def _replace(self, state: State, *, previous: State | None) -> None:
        self._count(state)
        super()._replace(state, previous=previous)


def test_a_failed_state_write_starts_no_new_action(
    jupyter: JupyterServer, client: JupyterClient, tmp_path: Path
) -> None:
    """The second write (a's start, done) fails: the shutdowns after it never reach the server."""
    b, c = (jupyter.start_kernel()["id"] for _ in range(2))
    store = FullDisk(tmp_path, failing=2)
    base = state_of(recorded("b", b), recorded("c", c))
    stored = store.write(base)
    store.armed = True
    with pytest.raises(StateWriteError) as caught:
        execute(
            Plan(
                changes=(
                    change("a", Action.START),
                    change("b", Action.SHUTDOWN, kernel_id=b),
                    change("c", Action.SHUTDOWN, kernel_id=c),
                )
            ),
            clients={LAB: client},
            live={LAB: read_server(LAB, client)},
            store=store,
            state=stored,
            clock=lambda: NOW,
            parallelism=1,
        )
    (a,) = jupyter.kernel_ids() - {b, c}
    assert jupyter.kernel_ids() == {a, b, c}  # b and c were not shut down
    recovery = caught.value.recovery
    assert isinstance(recovery, Path) and recovery.parent == tmp_path, caught.value
    saved = State.from_dict(json.loads(recovery.read_text()), source=str(recovery))
    assert ids(saved) == {"a": a, "b": b, "c": c} and not saved.resources["a"].pending


# -- waits -----------------------------------------------------------------------------------


class WaitsForTheSecondStart(JupyterClient):
    """Each wait for a kernel first waits (up to 20 s) until a second start was asked for."""

    def __init__(self, jupyter: JupyterServer) -> None:
        super().__init__(jupyter.url, jupyter.token, backoff=0)
        self.second_start = threading.Event()
        self.started = 0
        self.waited: list[bool] = []
        self._lock = threading.Lock()

    def start_kernel(
        self, name: str = "python3", *, path: str | None = None, kernel_id: str | None = None
    ) -> Kernel:
        with self._lock:
            self.started += 1
            if self.started == 2:
                self.second_start.set()
        return super().start_kernel(name, path=path, kernel_id=kernel_id)

    def wait_ready(self, kernel_id: str, **kwargs: Any) -> Readiness:
        self.waited.append(self.second_start.wait(20))
        return super().wait_ready(kernel_id, **kwargs)


def test_waits_do_not_hold_the_parallelism_slots(jupyter: JupyterServer) -> None:
    """With one slot, the second kernel is asked for while the first one is waited for."""
    with WaitsForTheSecondStart(jupyter) as client:
        report, final = carry_out(
            client,
            [change("a", Action.START), change("b", Action.START)],
            parallelism=1,
            waits={"a": WaitFor(timeout=60), "b": WaitFor(timeout=60)},
        )
    assert client.waited == [True, True], "a wait held the only slot"
    assert all(o.ok and o.ready_seconds is not None for o in report.outcomes), report
    assert set(ids(final).values()) == jupyter.kernel_ids()


# -- stop and Ctrl-C -------------------------------------------------------------------------


def test_a_stop_cuts_a_wait_short_and_leaves_the_kernel_recorded_tainted(
    jupyter: JupyterServer, client: JupyterClient
) -> None:
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    began = time.monotonic()
    try:
        report, final = carry_out(
            client,
            [change("etl", Action.START, spec="mute")],
            waits={"etl": WaitFor(timeout=60)},
            stop=stop,
        )
    finally:
        timer.cancel()
    assert time.monotonic() - began < 20  # far from the 60 s the wait was given
    (outcome,) = report.outcomes
    assert not outcome.ok and "cut short" in (outcome.error or ""), outcome
    resource = final.resources["etl"]
    assert resource.kernel_id == outcome.kernel_id and not resource.pending
    assert resource.tainted == "the wait was cut short (kernelform was stopping)"
    assert jupyter.kernel_ids() == {resource.kernel_id}


class Interrupting(JupyterClient):
    """Its first start sends SIGINT to the main thread (waiting on the actions) first."""

    def __init__(self, jupyter: JupyterServer) -> None:
        super().__init__(jupyter.url, jupyter.token, backoff=0)
        self.interrupted = False

    def start_kernel(
        self, name: str = "python3", *, path: str | None = None, kernel_id: str | None = None
    ) -> Kernel:
        if not self.interrupted:
            self.interrupted = True
            time.sleep(0.5)  # the main thread is waiting on this action by now
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            time.sleep(0.5)  # and has taken the interrupt before this start ends
        return super().start_kernel(name, path=path, kernel_id=kernel_id)


def test_ctrl_c_lets_the_action_in_flight_finish_and_starts_no_other(
    jupyter: JupyterServer,
) -> None:
    in_flight: list[int] = []
    with Interrupting(jupyter) as client:
        try:
            report, final = carry_out(
                client,
                [change(name, Action.START) for name in ("a", "b", "c")],
                parallelism=1,
                on_interrupt=in_flight.append,
            )
        except KeyboardInterrupt:
            pytest.fail("the Ctrl-C escaped execute()")
    assert report.interrupted and in_flight == [1]
    assert [(o.change.address, o.ok) for o in report.outcomes] == [("a", True)]
    assert [c.address for c in report.skipped] == ["b", "c"]
    assert jupyter.kernel_ids() == {final.resources["a"].kernel_id} and set(final.resources) == {
        "a"
    }


# -- restarts and shutdowns ------------------------------------------------------------------


def test_a_restart_is_recorded_as_the_server_answers(
    jupyter: JupyterServer, client: JupyterClient
) -> None:
    kernel_id = jupyter.start_kernel()["id"]
    before = recorded(
        "etl", kernel_id, recipe=Recipe(spec="python3", revision="1"), tainted="no answer in 60s"
    )
    report, final = carry_out(
        client,
        [change("etl", Action.RESTART, kernel_id=kernel_id, revision="2")],
        state=state_of(before),
    )
    assert [o.ok for o in report.outcomes] == [True]
    assert final.resources["etl"] == replace(
        before, recipe=Recipe(spec="python3", revision="2"), started_at=NOW, tainted=None
    )
    assert jupyter.kernel_ids() == {kernel_id}


def test_the_shutdown_of_a_kernel_already_gone_forgets_it(client: JupyterClient) -> None:
    gone = str(uuid.uuid4())
    report, final = carry_out(
        client,
        [change("etl", Action.SHUTDOWN, kernel_id=gone)],
        state=state_of(recorded("etl", gone), recorded("web", "kept")),
    )
    assert [o.ok for o in report.outcomes] == [True], report
    assert ids(final) == {"web": "kept"}


# -- server starts ---------------------------------------------------------------------------


class Launcher:
    """Starts server ``lab`` (already running), or fails to; notes when it was asked."""

    def __init__(self, client: Recording, *, fails: bool = False) -> None:
        self.client = client
        self.fails = fails
        self.starts_before: int | None = None

    def launch(self) -> None:
        time.sleep(0.5)  # long enough for a start that did not wait to be asked for
        self.starts_before = len(self.client.starts)
        if self.fails:
            raise PlanError("the server did not start (on purpose)")


def test_a_servers_kernels_wait_for_its_start(jupyter: JupyterServer) -> None:
    server_start = Change(
        address=LAB, server=LAB, action=Action.SERVER_START, reason="test", recipe=None
    )
    kernels = [change("a", Action.START), change("b", Action.START)]
    store = MemoryStateStore()
    with Recording(jupyter, store) as client:
        launcher = Launcher(client)
        report, final = carry_out(
            client, [*kernels, server_start], store=store, launchers={LAB: launcher}
        )
        assert launcher.starts_before == 0 and len(client.starts) == 2
        assert all(o.ok for o in report.outcomes) and set(final.resources) == {"a", "b"}
        jupyter.cleanup()

        failing = Launcher(client, fails=True)
        report, final = carry_out(
            client, [*kernels, server_start], store=MemoryStateStore(), launchers={LAB: failing}
        )
    outcomes = {o.change.address: o for o in report.outcomes}
    assert "did not start (on purpose)" in (outcomes[LAB].error or "")
    for name in ("a", "b"):
        assert outcomes[name].error == f"not run: its server {LAB} did not start"
    assert len(client.starts) == 2 and jupyter.kernel_ids() == set()
    assert final.resources == new_state().resources


# -- a failed state write followed by one that goes through, in process -------------


class FlakyStore(MemoryStateStore):
    """Fails the write that confirms kernel *a*, once; notes when *b* is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.b_recorded = threading.Event()
        self.failed = threading.Event()
        self.written: list[State] = []

    def _append(self, base: State, written: State, puts: list[Resource], drops: list[str]) -> None:
        confirmed_a = "a" in written.resources and not written.resources["a"].pending
        if confirmed_a and not self.failed.is_set():
            self.failed.set()
            raise StateWriteError("the state could not be written to memory: ENOSPC")
        super()._append(base, written, puts, drops)
        self._note(written)

    def _replace(self, state: State, *, previous: State | None) -> None:
        super()._replace(state, previous=previous)
        self._note(state)

    def _note(self, stored: State) -> None:
        if not self.written or self.written[-1] != stored:
            self.written.append(stored)
        if "b" in stored.resources:
            self.b_recorded.set()


class SteppedClient:
    """Orders the two starts: *b* is under way, then *a*'s write fails, then *b* ends."""

    def __init__(self, store: FlakyStore) -> None:
        self.store = store
        self.started: dict[str, str] = {}

    def start_kernel(
        self, name: str, *, path: str | None = None, kernel_id: str | None = None
    ) -> Kernel:
        assert kernel_id is not None
        step = self.store.failed if name == "slow" else self.store.b_recorded
        assert step.wait(10), name
        self.started[name] = kernel_id
        return Kernel(id=kernel_id, name=name)


def test_a_later_write_that_goes_through_says_no_recovery_is_needed() -> None:
    store = FlakyStore()
    client = SteppedClient(store)
    changes = tuple(
        Change(
            address=address,
            server="lab",
            action=Action.START,
            reason="new",
            recipe=Recipe(spec=spec),
        )
        for address, spec in (("a", "light"), ("b", "slow"))
    )
    with pytest.raises(StateWriteError) as caught:
        execute(
            Plan(changes=changes),
            clients={"lab": client},  # type: ignore[dict-item]
            live=lab(accepts=True),
            store=store,
            state=new_state(),
            parallelism=2,
            clock=lambda: NOW,
        )
    assert "a later write went through" in str(caught.value)
    assert "do not restore it" in str(caught.value)
    final = store.written[-1].resources
    assert {a: (r.kernel_id, r.pending) for a, r in final.items()} == {
        "a": (client.started["light"], False),
        "b": (client.started["slow"], False),
    }
