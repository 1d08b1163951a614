"""A state kept in memory: for library users who keep the state themselves, and for tests.

It keeps the same rules as every backend (``StateStore``). Its lock is a real
lock, within this process only; ``another()`` gives a second handle on the
same stored state, as a second run would have.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kernelform.errors import StateError
from kernelform.state.model import LockInfo, Resource, State
from kernelform.state.store import StateStore, new_lock_info


class _Cell:
    """What the handles of one memory state share."""

    def __init__(self, state: State | None) -> None:
        self.state = state
        self.guard = threading.Lock()
        self.holder: LockInfo | None = None


class MemoryStateStore(StateStore):
    """The state in a variable; ``state`` is what is stored (None: nothing yet)."""

    def __init__(
        self,
        state: State | None = None,
        *,
        recovery_dir: Path | None = None,
        cell: _Cell | None = None,
    ) -> None:
        super().__init__(
            location="memory",
            recovery_dir=recovery_dir or Path.cwd() / ".kernelform",
            recovery_name="state-memory",
        )
        self._cell = cell or _Cell(state)

    @property
    def state(self) -> State | None:
        return self._cell.state

    def another(self) -> MemoryStateStore:
        """A second store on the same stored state and lock."""
        return MemoryStateStore(recovery_dir=self.recovery_dir, cell=self._cell)

    def _load(self) -> State | None:
        return self._cell.state

    def _replace(self, state: State, *, previous: State | None) -> None:
        self._cell.state = state

    def _append(self, base: State, written: State, puts: list[Resource], drops: list[str]) -> None:
        with self._cell.guard:
            stored = self._cell.state
            if stored is not None and stored.lineage == base.lineage:
                if stored.serial > base.serial:
                    raise self.stale(stored.serial, written)
                if stored.serial == base.serial:
                    self._cell.state = written
                    return
        # Nothing stored, another lineage, or behind this run (an earlier write failed).
        self.write(base.edited(puts=puts, drops=drops))

    @contextmanager
    def lock(self, *, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        deadline = time.monotonic() + max(timeout, 0.0)
        info = new_lock_info(operation, str(uuid.uuid4()))
        while True:
            with self._cell.guard:
                holder = self._cell.holder
                if holder is None:
                    self._cell.holder = info
                    break
            if time.monotonic() >= deadline:
                raise self.locked_error(holder, timeout)
            time.sleep(0.01)
        try:
            yield info
        finally:
            with self._cell.guard:
                if self._cell.holder is info:
                    self._cell.holder = None

    def lock_info(self) -> LockInfo | None:
        return self._cell.holder

    def _break_lock(self, holder: LockInfo) -> str:
        with self._cell.guard:
            if self._cell.holder is not holder:
                raise StateError("the lock changed while it was being removed; try again")
            self._cell.holder = None
        return f"removed the lock ({holder.describe()})"
