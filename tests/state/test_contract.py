"""The contract every state backend keeps, run against each of them.

A backend is a ``StateStore``; the rules (lineage, serial, recovery files,
push, force-unlock) are written once in ``kernelform.state.store`` and must
hold whatever stores the bytes; the workspace rules (listing, deleting, kernels
two workspaces record) are written once in ``kernelform.state.backend``. Each
test here runs once per kind in the registry (``kernelform.state.kinds.KINDS``),
on a store opened through it from a location in ``LOCATIONS``: a kind without an
entry there fails ``test_every_registered_kind_is_held_to_the_contract``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernelform.errors import StaleState, StateCorrupt, StateError, StateLocked
from kernelform.state import State, StateStore, new_state
from kernelform.state.kinds import KINDS
from kernelform.state.location import Backend, open_backend
from tests.support.resources import resource

Factory = Callable[[], StateStore]

# A fresh location of each kind, by the kind's name.
LOCATIONS: dict[str, Callable[[Path, pytest.FixtureRequest], str]] = {
    "file": lambda tmp_path, request: str(tmp_path / ".kernelform" / "state.json"),
    "memory": lambda tmp_path, request: f"memory://contract-{uuid.uuid4().hex}",
    "postgres": lambda tmp_path, request: str(request.getfixturevalue("pg_url")),
}


def test_every_registered_kind_is_held_to_the_contract() -> None:
    assert sorted(LOCATIONS) == sorted(kind.name for kind in KINDS)


@pytest.fixture(params=sorted(LOCATIONS))
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The backend at a fresh location of each kind, opened through the registry."""
    return open_backend(LOCATIONS[request.param](tmp_path, request), manifest_dir=tmp_path)


@pytest.fixture
def opened(place: Backend) -> Iterator[Callable[[str], StateStore]]:
    """Opens the store of a workspace of ``place``; every store made is closed after."""
    made: list[StateStore] = []

    def make(workspace: str) -> StateStore:
        store = place.store(workspace)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def backend(opened: Callable[[str], StateStore]) -> Factory:
    """A new store of the ``default`` workspace at each call, as each run has its own."""
    return lambda: opened("default")


def recovery_files(store: StateStore) -> list[Path]:
    return sorted(store.recovery_dir.glob("*.recovery-*.json"))


def test_an_empty_store_reads_as_a_new_state(backend: Factory) -> None:
    store = backend()
    first, second = store.read(), store.read()
    assert first.serial == 0 and not first.resources
    assert first.lineage != second.lineage  # nothing stored: a new state each time


def test_write_then_read(backend: Factory) -> None:
    store = backend()
    written = store.write(new_state().with_resource(resource("a")))
    assert written.serial == 1
    assert backend().read() == written


def test_record_adds_and_removes_one_action_at_a_time(backend: Factory) -> None:
    store = backend()
    state = store.write(new_state().with_resource(resource("a")).with_resource(resource("b")))
    state = store.record(state, puts=[resource("c")])
    state = store.record(state, drops=["a"], puts=[resource("b", kernel_id="kid-b2")])
    assert state.serial == 3
    read = backend().read()
    assert read == state
    assert sorted(read.resources) == ["b", "c"]
    assert read.resources["b"].kernel_id == "kid-b2"


def test_record_on_a_stale_read_is_refused_and_saved_aside(backend: Factory) -> None:
    mine, theirs = backend(), backend()
    base = mine.write(new_state().with_resource(resource("a")))
    stale_view = theirs.read()
    mine.record(base, puts=[resource("b")])
    with pytest.raises(StaleState, match="the state changed under us") as caught:
        theirs.record(stale_view, puts=[resource("c")])
    stored = backend().read()
    assert sorted(stored.resources) == ["a", "b"]
    assert "saved at" in str(caught.value)
    saved = recovery_files(theirs)
    assert saved, "the refused state was not saved aside"
    assert "c" in json.loads(saved[-1].read_text())["resources"]


def test_write_over_another_lineage_is_refused(backend: Factory) -> None:
    store = backend()
    store.write(new_state().with_resource(resource("theirs")))
    with pytest.raises(StateCorrupt, match="belongs to another state"):
        backend().write(new_state().with_resource(resource("ours")))
    assert list(backend().read().resources) == ["theirs"]


def test_write_over_a_newer_serial_is_refused(backend: Factory) -> None:
    store = backend()
    read = store.write(new_state())
    store.write(read)
    with pytest.raises(StaleState, match="is at serial 2 but this run read it at serial 1"):
        backend().write(read)


def test_push_replaces_a_state_of_the_same_lineage_and_serial_moves_on(backend: Factory) -> None:
    store = backend()
    stored = store.write(new_state().with_resource(resource("a")))
    pulled = json.loads(json.dumps(store.read().to_dict()))
    pushed_state = State.from_dict(pulled, source="pulled").with_resource(resource("b"))
    pushed = backend().push(pushed_state)
    assert pushed.serial == stored.serial + 1
    assert backend().read() == pushed


def test_push_refuses_a_lower_serial_or_another_lineage_unless_forced(backend: Factory) -> None:
    store = backend()
    old = store.write(new_state().with_resource(resource("a")))
    newer = store.write(old.with_resource(resource("b")))
    with pytest.raises(StaleState, match="newer than the pushed one"):
        backend().push(old)
    foreign = new_state().with_resource(resource("x"))
    with pytest.raises(StateCorrupt, match="they are different states"):
        backend().push(foreign)
    assert backend().read() == newer
    forced = backend().push(foreign, force=True)
    assert forced.serial == newer.serial + 1
    assert backend().read() == forced


def test_a_second_lock_is_refused_naming_the_holder(backend: Factory) -> None:
    store = backend()
    with store.lock(operation="apply") as info:
        assert backend().lock_info() == info
        held = rf"held by pid {os.getpid()} .*\(apply\)"
        with pytest.raises(StateLocked, match=held) as caught, backend().lock(operation="plan"):
            pass
        assert "force-unlock" not in str(caught.value)  # alive here: it would only do harm
    assert backend().lock_info() is None


def test_force_unlock_never_breaks_a_live_local_lock(backend: Factory) -> None:
    store = backend()
    with pytest.raises(StateError, match="not locked"):
        store.force_unlock("x")
    with store.lock(operation="apply") as info:
        with pytest.raises(StateLocked, match="alive on this host"):
            backend().force_unlock(info.id)
        with pytest.raises(StateError, match=f"is {info.id}, not nope"):
            backend().force_unlock("nope")
        assert backend().lock_info() == info


def test_failed_writes_never_lose_the_run_state(backend: Factory) -> None:
    store = backend()
    base = store.write(new_state())
    wanted = dataclasses.replace(base.with_resource(resource("a")), serial=base.serial + 1)
    error = store.write_failed(wanted, OSError(28, "No space left on device"))
    assert error.recovery is not None
    assert State.from_dict(json.loads(Path(str(error.recovery)).read_text()), source="r") == wanted


def test_a_run_keeps_one_recovery_file_holding_its_newest_state(backend: Factory) -> None:
    """Two files of one serial, the older named first, would let a user push the one
    that misses the later actions: every failure of a run rewrites the same file."""
    store = backend()
    base = store.write(new_state())
    first = dataclasses.replace(base.with_resource(resource("a")), serial=base.serial + 1)
    second = first.with_resource(resource("b"))
    named = [store.write_failed(s, OSError(28, "No space left")).recovery for s in (first, second)]
    assert named[0] is not None and named[0] == named[1]
    assert recovery_files(store) == [named[0]]
    saved = json.loads(Path(str(named[0])).read_text())
    assert sorted(saved["resources"]) == ["a", "b"] and saved["serial"] == second.serial


def test_a_record_after_a_failed_write_catches_up(backend: Factory) -> None:
    """A run whose write failed goes on from what it meant to store (serial + 1): its
    next record, based on a serial above the stored one, stores everything."""
    store = backend()
    stored = store.write(new_state().with_resource(resource("a")))
    meant = dataclasses.replace(stored.with_resource(resource("b")), serial=stored.serial + 1)
    written = store.record(meant, puts=[resource("c")])
    assert written.serial == meant.serial + 1
    read = backend().read()
    assert sorted(read.resources) == ["a", "b", "c"] and read.serial == written.serial


# --- workspaces -----------------------------------------------------------------------


def test_workspaces_are_independent_states_and_locks(
    place: Backend, opened: Callable[[str], StateStore]
) -> None:
    ci, dev = opened("ci"), opened("dev")
    ci_state = ci.write(new_state().with_resource(resource("a")))
    dev_state = dev.write(new_state().with_resource(resource("b")))
    assert opened("ci").read() == ci_state
    assert opened("dev").read() == dev_state
    assert opened("default").read().resources == {}
    with ci.lock(operation="apply"), dev.lock(operation="apply"):
        assert opened("dev").lock_info() is not None
        assert opened("default").lock_info() is None
    assert place.workspaces(current="x") == ["ci", "default", "dev", "x"]
    with pytest.raises(StateError, match="still records 1 kernel"):
        place.delete_workspace("ci")
    with pytest.raises(StateError, match="cannot be deleted"):
        place.delete_workspace("default")
    with pytest.raises(StateError, match="there is no workspace nope"):
        place.delete_workspace("nope")
    with pytest.raises(StateError, match="is not a workspace name"):
        place.store("../x")
    ci.write(ci.read().without("a"))
    place.delete_workspace("ci")
    assert place.stored_workspaces() == ["dev"]
    assert opened("ci").read().serial == 0  # nothing is left of it


def test_a_kernel_another_workspace_records_is_found(
    place: Backend, opened: Callable[[str], StateStore]
) -> None:
    opened("ci").write(new_state().with_resource(resource("a")).with_resource(resource("b")))
    mine = [resource("x", kernel_id="kid-a"), resource("y", kernel_id="kid-other")]
    assert place.shared_with_others("dev", mine) == {"ci": ["x"]}
    assert place.shared_with_others("ci", mine) == {}
