"""A state kept in memory: for library users who keep the state themselves, and for tests.

It keeps the same rules as every backend (``StateStore``). Its lock is a real
lock, within this process only; ``another()`` gives a second handle on the
same stored state, as a second run would have.

As a location, ``memory://NAME`` names a place that lives as long as the
process: every store opened there for a workspace shares one stored state and
one lock, as the stores of one database do.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kernelform.errors import StateError
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.state.backend import STATE_DIR, Backend, check_workspace
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
        location: str = "memory",
        recovery_name: str = "state-memory",
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        super().__init__(
            location=location,
            recovery_dir=recovery_dir or Path.cwd() / STATE_DIR,
            recovery_name=recovery_name,
            hooks=hooks,
        )
        self._cell = cell or _Cell(state)

    @property
    def state(self) -> State | None:
        return self._cell.state

    def another(self) -> MemoryStateStore:
        """A second store on the same stored state and lock."""
        return MemoryStateStore(
            recovery_dir=self.recovery_dir,
            cell=self._cell,
            location=self.location,
            recovery_name=self.recovery_name,
            hooks=self.hooks,
        )

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


# The places named by memory:// locations: per name, the cell of each workspace.
_PLACES: dict[str, dict[str, _Cell]] = {}
_PLACES_GUARD = threading.Lock()


class MemoryBackend(Backend):
    """The workspaces of ``memory://NAME``, kept for the life of the process."""

    def __init__(self, name: str, *, recovery_dir: Path, hooks: Hooks = NO_HOOKS) -> None:
        self.description = f"memory://{name}"
        self.recovery_dir = recovery_dir
        self.hooks = hooks
        with _PLACES_GUARD:
            self._cells = _PLACES.setdefault(name, {})

    def store(self, workspace: str) -> MemoryStateStore:
        check_workspace(workspace)
        with _PLACES_GUARD:
            cell = self._cells.setdefault(workspace, _Cell(None))
        return MemoryStateStore(
            recovery_dir=self.recovery_dir,
            cell=cell,
            location=f"{self.description} (workspace {workspace})",
            recovery_name=f"memory-{workspace}",
            hooks=self.hooks,
        )

    def stored_workspaces(self) -> list[str]:
        with _PLACES_GUARD:
            return sorted(name for name, cell in self._cells.items() if cell.state is not None)

    def _remove(self, store: StateStore) -> None:
        assert isinstance(store, MemoryStateStore)
        store._cell.state = None


def open_backend(location: str, *, manifest_dir: Path, hooks: Hooks = NO_HOOKS) -> Backend:
    """The place ``memory://NAME``; recovery files go in ``.kernelform/`` in *manifest_dir*."""
    name = location.partition("://")[2]
    return MemoryBackend(name, recovery_dir=manifest_dir.absolute() / STATE_DIR, hooks=hooks)
