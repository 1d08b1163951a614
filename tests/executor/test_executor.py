"""The executor's own rules, driving ``execute()`` directly (see kernelform/executor.py).

In process, with a ``MemoryStateStore`` (or one that fails on purpose) and the
servers' facts as the planner would give them.
"""

from __future__ import annotations

import threading

import pytest

from kernelform.errors import StateWriteError
from kernelform.executor import execute
from kernelform.models import Kernel
from kernelform.plan import Action, Change, Plan
from kernelform.recipe import Recipe
from kernelform.state import Resource, State, new_state
from kernelform.state.memory import MemoryStateStore
from tests.support.facts import NOW, lab

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
