"""Choosing the state: a location string and a workspace name become a store.

A location is a file path or a ``postgresql://`` (``postgres://``) URL; the
CLI takes it from ``--state``, ``KERNELFORM_STATE`` or the manifest's
``state:`` key, in that order, and falls back to ``.kernelform/state.json``
next to the manifest. A workspace is an independent state with its own lock
in the same place: a row of the PostgreSQL tables, or for files a directory of
its own (the ``default`` workspace keeps ``.kernelform/state.json``, so a
project that never heard of workspaces is unchanged; another workspace NAME
lives in ``.kernelform/workspaces/NAME/state.json``).

A ``Backend`` is the place without the workspace: it makes the store of a
workspace, lists the workspaces and removes an empty one. PostgreSQL support is
optional (``pip install 'kernelform[postgres]'``): the driver is imported only
for a URL, and its absence is one line saying what to install.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from kernelform.errors import StateError
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.state.file import FileStateStore
from kernelform.state.model import Resource
from kernelform.state.store import StateStore

DEFAULT_WORKSPACE = "default"
STATE_DIR = ".kernelform"
STATE_FILE = "state.json"
WORKSPACES_DIR = "workspaces"
STATE_ENV = "KERNELFORM_STATE"
WORKSPACE_ENV = "KERNELFORM_WORKSPACE"
POSTGRES_SCHEMES = ("postgresql", "postgres")
INSTALL_HINT = "pip install 'kernelform[postgres]'"
# libpq parameters whose values are secrets: never shown.
SECRET_PARAMS = frozenset({"password", "sslpassword"})

_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# What a URL with a typo still looks like: "postgresql:/u:pw@h/db", "postgresql//u@h/db",
# "u:pw@host/db". Taken as a file path, it would become a fresh, empty state (and a
# directory named after the password).
_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:|[^/]*@|postgres(ql)?/", re.IGNORECASE)


def check_workspace(name: str) -> str:
    """*name* if it can name a workspace (it becomes a directory name), else ``StateError``."""
    if not _WORKSPACE_NAME.fullmatch(name):
        raise StateError(
            f"{name!r} is not a workspace name: use 1 to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def is_postgres(location: str) -> bool:
    match = _SCHEME.match(location)
    return match is not None and match.group(1).lower() in POSTGRES_SCHEMES


def location_problem(location: str) -> str | None:
    """Why *location* is neither a PostgreSQL URL nor a plausible file path, or None.

    The text itself is never quoted: a mistyped URL still holds its password.
    """
    if is_postgres(location):
        return None
    scheme = _SCHEME.match(location)
    if scheme is not None:
        return (
            f"the state location is a {scheme.group(1)}:// URL, an unknown kind; use a file"
            " path or a postgresql:// URL"
        )
    if _URL_LIKE.match(location):
        return (
            "the state location looks like a mistyped URL (it is not postgresql://... and not"
            " a plain path); write postgresql://USER@HOST:PORT/DATABASE, or ./NAME for a file"
            " whose name has ':' or '@'"
        )
    return None


def default_state_path(manifest_dir: Path) -> Path:
    return manifest_dir / STATE_DIR / STATE_FILE


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


class FileBackend(Backend):
    """State files: *path* for ``default``, ``workspaces/NAME/`` beside it for the others."""

    def __init__(self, path: Path, *, hooks: Hooks = NO_HOOKS) -> None:
        self.path = path
        self.hooks = hooks
        self.description = f"{path.parent}"

    def path_for(self, workspace: str) -> Path:
        if workspace == DEFAULT_WORKSPACE:
            return self.path
        return self.path.parent / WORKSPACES_DIR / workspace / self.path.name

    def store(self, workspace: str) -> StateStore:
        return FileStateStore(self.path_for(check_workspace(workspace)), hooks=self.hooks)

    def stored_workspaces(self) -> list[str]:
        found = [DEFAULT_WORKSPACE] if self.path.exists() else []
        with suppress(OSError):
            for entry in (self.path.parent / WORKSPACES_DIR).iterdir():
                if _WORKSPACE_NAME.fullmatch(entry.name) and (entry / self.path.name).exists():
                    found.append(entry.name)
        return sorted(found)

    def _remove(self, store: StateStore) -> None:
        assert isinstance(store, FileStateStore)
        for path in (store.path, store.journal_path, store.backup_path):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise StateError(f"cannot remove {path}: {e.strerror or e}") from e

    def _tidy(self, workspace: str) -> None:
        directory = self.path_for(workspace).parent
        with suppress(OSError):  # the lock file goes on release; recovery files stay
            directory.rmdir()


class PostgresBackend(Backend):
    """Every workspace in the tables of one schema of one database."""

    def __init__(
        self,
        url: str,
        *,
        recovery_dir: Path,
        schema: str | None = None,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        from kernelform.state.postgres import parse_url

        self.url = url
        self.schema = schema
        self.recovery_dir = recovery_dir
        self.hooks = hooks
        self.description = parse_url(url, schema=schema).display

    def store(self, workspace: str) -> StateStore:
        from kernelform.state.postgres import PostgresStateStore

        return PostgresStateStore(
            self.url,
            workspace=check_workspace(workspace),
            recovery_dir=self.recovery_dir,
            schema=self.schema,
            hooks=self.hooks,
        )

    def stored_workspaces(self) -> list[str]:
        from kernelform.state.postgres import PostgresStateStore

        store = self.store(DEFAULT_WORKSPACE)
        assert isinstance(store, PostgresStateStore)
        try:
            return store.stored_workspaces()
        finally:
            store.close()

    def _remove(self, store: StateStore) -> None:
        from kernelform.state.postgres import PostgresStateStore

        assert isinstance(store, PostgresStateStore)
        store.drop_workspace()


def open_backend(
    location: str | os.PathLike[str] | None,
    *,
    manifest_dir: Path,
    hooks: Hooks = NO_HOOKS,
) -> Backend:
    """The backend at *location*: a path, a PostgreSQL URL, or None for the default file.

    A relative path is taken as given (relative to the working directory); the
    default file and PostgreSQL's recovery files go in ``.kernelform/`` in
    *manifest_dir*.
    """
    if location is None or str(location) == "":
        return FileBackend(default_state_path(manifest_dir), hooks=hooks)
    text = os.fspath(location)
    if is_postgres(text):
        require_driver(text)
        recovery_dir = manifest_dir.absolute() / STATE_DIR
        return PostgresBackend(text, recovery_dir=recovery_dir, hooks=hooks)
    problem = location_problem(text)
    if problem is not None:
        raise StateError(problem)
    return FileBackend(Path(text), hooks=hooks)


def open_store(
    location: str | os.PathLike[str] | None,
    *,
    workspace: str = DEFAULT_WORKSPACE,
    manifest_dir: Path,
    hooks: Hooks = NO_HOOKS,
) -> StateStore:
    """The store of *workspace* at *location* (see ``open_backend``)."""
    backend = open_backend(location, manifest_dir=manifest_dir, hooks=hooks)
    return backend.store(check_workspace(workspace))


def require_driver(location: str) -> None:
    """Raise one line saying what to install when psycopg cannot be imported."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StateError(
            f"the state at {mask_url(location)} is in PostgreSQL, and the PostgreSQL driver is"
            f" not installed: run {INSTALL_HINT}"
        ) from None


def mask_url(url: str) -> str:
    """*url* with its password and secret query values replaced by ``***``."""
    try:
        split = urlsplit(url)
        auth, at, hostport = split.netloc.rpartition("@")
        netloc = split.netloc
        if at and ":" in auth:
            netloc = f"{auth.partition(':')[0]}:***@{hostport}"
        query = [
            (k, "***" if k in SECRET_PARAMS else v)
            for k, v in parse_qsl(split.query, keep_blank_values=True)
        ]
        return urlunsplit(split._replace(netloc=netloc, query=urlencode(query, safe="*")))
    except ValueError:
        return "the state URL"


def written_userinfo(split: SplitResult) -> str | None:
    """The ``user:password`` part of a URL as Python's parser cuts it: up to the last
    ``@`` of the part before the first ``/``, ``?`` or ``#``; None without one."""
    userinfo, at, _ = split.netloc.rpartition("@")
    return userinfo if at else None


def url_secrets(location: str) -> list[str]:
    """Every secret spelled in *location* (a URL), as written and decoded, for redaction."""
    found: list[str] = []
    try:
        split = urlsplit(location)
    except ValueError:
        return []
    auth = written_userinfo(split)
    if auth is not None and ":" in auth:
        raw = auth.partition(":")[2]
        found += [raw, unquote(raw)]
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        if key in SECRET_PARAMS:
            found.append(value)
    raw_query = split.query.split("&")
    for item in raw_query:
        key, _, value = item.partition("=")
        if key in SECRET_PARAMS:
            found.append(value)
    return sorted({s for s in found if s}, key=len, reverse=True)
