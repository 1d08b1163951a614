"""Group commit in the executor's recorder: concurrent actions share state writes.

Each ``_Recorder.update`` must return only once its own edit is durable (a
start is recorded as pending before its request), while edits made during a
write in flight go together into the next one. A store that is slow to write
(``SlowStore``) makes the batching visible and deterministic enough: 20
threads, one write at a time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kernelform.errors import PlanError, StateWriteError
from kernelform.executor import _Recorder
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.state import Resource, State, new_state
from kernelform.state.memory import MemoryStateStore
from tests.support.resources import resource


class SlowStore(MemoryStateStore):
    """A memory store whose appends take *delay* s, and fail while ``failing``."""

    def __init__(self, tmp: Any, delay: float = 0.05) -> None:
        super().__init__(recovery_dir=tmp)
        self.delay = delay
        self.appends: list[int] = []  # the number of edits in each append
        self.failing = False

    def _append(self, base: State, written: State, puts: list[Resource], drops: list[str]) -> None:
        time.sleep(self.delay)
        self.appends.append(len(puts) + len(drops))
        if self.failing:
            raise self.write_failed(written, OSError(28, "No space left on device"))
        super()._append(base, written, puts, drops)

    def _replace(self, state: State, *, previous: State | None) -> None:
        self.appends.append(-1)  # a whole write
        if self.failing:
            raise self.write_failed(state, OSError(28, "No space left on device"))
        super()._replace(state, previous=previous)


class CountingHooks(Hooks):
    def __init__(self) -> None:
        self.before = 0
        self.after = 0
        self.lock = threading.Lock()

    def before_state_write(self) -> None:
        with self.lock:
            self.before += 1

    def after_state_write(self) -> None:
        with self.lock:
            self.after += 1


def run_threads(count: int, work: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_concurrent_edits_share_writes_and_each_returns_durable(tmp_path: Any) -> None:
    store = SlowStore(tmp_path)
    hooks = CountingHooks()
    recorder = _Recorder(store, store.write(new_state()), hooks)
    store.appends.clear()

    def work(i: int) -> None:
        name = f"k{i:02d}"
        recorder.update(lambda s: s.with_resource(resource(name)), touched=[name])
        stored = store.state
        assert stored is not None and name in stored.resources  # durable on return

    assert run_threads(20, work) == []
    assert store.state is not None and len(store.state.resources) == 20
    assert sum(store.appends) == 20 and -1 not in store.appends
    assert len(store.appends) < 20, store.appends  # some writes carried several edits
    assert recorder.state == store.state
    assert (hooks.before, hooks.after) == (20, 20)  # one pass per action, as before


def test_a_failed_write_fails_its_whole_batch_and_a_later_one_catches_up(tmp_path: Any) -> None:
    store = SlowStore(tmp_path)
    recorder = _Recorder(store, store.write(new_state()), NO_HOOKS)
    store.appends.clear()
    store.failing = True
    errors = run_threads(
        5,
        lambda i: recorder.update(lambda s: s.with_resource(resource(f"f{i}")), touched=[f"f{i}"]),
    )
    assert len(errors) == 5 and all(isinstance(e, StateWriteError) for e in errors)
    assert recorder.write_error is not None and not recorder.saved
    store.failing = False
    recorder.update(lambda s: s.with_resource(resource("later")), touched=["later"])
    assert store.appends[-1] == -1  # after a failure, the next write is a whole one
    assert store.state is not None
    assert sorted(store.state.resources) == ["f0", "f1", "f2", "f3", "f4", "later"]
    assert recorder.saved and "a later write went through" in str(recorder.final_error())


def test_an_edit_that_raises_queues_nothing(tmp_path: Any) -> None:
    store = SlowStore(tmp_path, delay=0)
    recorder = _Recorder(store, store.write(new_state()), NO_HOOKS)
    store.appends.clear()

    def refuse(state: State) -> State:
        raise PlanError("cannot replace etl yet")

    with pytest.raises(PlanError):
        recorder.update(refuse, touched=["etl"])
    recorder.update(lambda s: s.with_resource(resource("etl")), touched=["etl"])
    assert store.appends == [1]
