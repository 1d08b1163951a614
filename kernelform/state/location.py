"""Choosing the state: a location string and a workspace name become a store.

A location is a file path or a ``postgresql://`` (``postgres://``) URL; the
CLI takes it from ``--state``, ``KERNELFORM_STATE`` or the manifest's
``state:`` key, in that order, and falls back to ``.kernelform/state.json``
next to the manifest. A workspace is an independent state with its own lock
in the same place: a row of the PostgreSQL tables, or for files a directory of
its own (the ``default`` workspace keeps ``.kernelform/state.json``, so a
project that never heard of workspaces is unchanged; another workspace NAME
lives in ``.kernelform/workspaces/NAME/state.json``).

A ``Backend`` (``backend``) is the place without the workspace: it makes the store
of a workspace, lists the workspaces and removes an empty one. PostgreSQL support is
optional (``pip install 'kernelform[postgres]'``): the driver is imported only
for a URL, and its absence is one line saying what to install.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from kernelform.errors import StateError
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.state.backend import (
    DEFAULT_WORKSPACE,
    STATE_DIR,
    Backend,
    check_workspace,
)
from kernelform.state.file import FileBackend
from kernelform.state.store import StateStore

__all__ = [
    "DEFAULT_WORKSPACE",
    "STATE_DIR",
    "Backend",
    "check_workspace",
    "default_state_path",
    "is_postgres",
    "location_problem",
    "mask_url",
    "open_backend",
    "open_store",
    "require_driver",
    "url_secrets",
    "written_userinfo",
]

STATE_FILE = "state.json"
STATE_ENV = "KERNELFORM_STATE"
WORKSPACE_ENV = "KERNELFORM_WORKSPACE"
POSTGRES_SCHEMES = ("postgresql", "postgres")
INSTALL_HINT = "pip install 'kernelform[postgres]'"
# libpq parameters whose values are secrets: never shown.
SECRET_PARAMS = frozenset({"password", "sslpassword"})

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# What a URL with a typo still looks like: "postgresql:/u:pw@h/db", "postgresql//u@h/db",
# "u:pw@host/db". Taken as a file path, it would become a fresh, empty state (and a
# directory named after the password).
_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:|[^/]*@|postgres(ql)?/", re.IGNORECASE)


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
        from kernelform.state.postgres import PostgresBackend

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
