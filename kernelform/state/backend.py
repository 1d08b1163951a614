"""A backend: the place that holds the state of every workspace, with the workspace rules.

A workspace is an independent state with its own lock in the same place. A
``Backend`` is that place without the workspace: it makes the store of a
workspace, lists the workspaces that hold a state, and removes an empty one.
The rules every backend keeps about workspaces (which names are valid, that
``default`` always exists and is never deleted, that one still recording
kernels is never deleted, which kernels two workspaces both record) are written
here once; a backend provides ``store``, ``stored_workspaces`` and ``_remove``.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable

from kernelform.errors import StateError
from kernelform.state.model import Resource
from kernelform.state.store import StateStore

DEFAULT_WORKSPACE = "default"
# Where kernelform keeps its files next to the manifest (the default state file, and
# the recovery files of a backend that has no directory of its own).
STATE_DIR = ".kernelform"

WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_workspace(name: str) -> str:
    """*name* if it can name a workspace (it becomes a directory name), else ``StateError``."""
    if not WORKSPACE_NAME.fullmatch(name):
        raise StateError(
            f"{name!r} is not a workspace name: use 1 to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


class Backend(abc.ABC):
    """Where the states of every workspace live."""

    description: str

    @abc.abstractmethod
    def store(self, workspace: str) -> StateStore:
        """The store of *workspace* (nothing is created until it is written)."""

    @abc.abstractmethod
    def stored_workspaces(self) -> list[str]:
        """The workspaces that hold a state."""

    @abc.abstractmethod
    def _remove(self, store: StateStore) -> None:
        """Remove the stored state of *store*'s workspace (checked empty, under its lock)."""

    def _tidy(self, workspace: str) -> None:  # noqa: B027  (a default, not abstract)
        """Called after a removal, once the lock is released."""

    def shared_with_others(
        self, workspace: str, resources: Iterable[Resource]
    ) -> dict[str, list[str]]:
        """Per other stored workspace, the addresses of *resources* whose kernel it
        records too (same server, same kernel id): a kernel two workspaces own would
        be shut down by one under the other."""
        wanted = {(r.server, r.kernel_id): r.address for r in resources}
        shared: dict[str, list[str]] = {}
        for name in self.stored_workspaces():
            if name == workspace:
                continue
            store = self.store(name)
            try:
                recorded = store.read().resources.values()
            finally:
                store.close()
            found = [
                wanted[key] for key in ((r.server, r.kernel_id) for r in recorded) if key in wanted
            ]
            if found:
                shared[name] = sorted(found)
        return shared

    def workspaces(self, *, current: str = DEFAULT_WORKSPACE) -> list[str]:
        """Every workspace to show: the stored ones, ``default`` and *current*."""
        return sorted({*self.stored_workspaces(), DEFAULT_WORKSPACE, current})

    def delete_workspace(self, name: str, *, lock_timeout: float = 0.0) -> None:
        """Remove workspace *name*; refuse ``default`` and one that still records kernels.

        ``default`` always exists (a project without workspaces uses it): empty
        it with ``destroy`` or ``state rm`` instead.
        """
        check_workspace(name)
        if name == DEFAULT_WORKSPACE:
            raise StateError(
                f"the workspace {DEFAULT_WORKSPACE} cannot be deleted; empty it with"
                " 'kernelform destroy' or 'kernelform state rm' instead"
            )
        if name not in self.stored_workspaces():
            raise StateError(f"there is no workspace {name} in {self.description}")
        store = self.store(name)
        try:
            with store.lock(operation="workspace delete", timeout=lock_timeout):
                recorded = store.read().resources
                if recorded:
                    shown = ", ".join(list(recorded)[:5]) + (", ..." if len(recorded) > 5 else "")
                    raise StateError(
                        f"the workspace {name} still records {len(recorded)} kernel(s) ({shown});"
                        f" shut them down with 'kernelform destroy --workspace {name}', or forget"
                        f" them with 'kernelform state rm --workspace {name} ADDRESS...', first;"
                        " nothing was deleted"
                    )
                self._remove(store)
        finally:
            store.close()
        self._tidy(name)
