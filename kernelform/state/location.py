"""Choosing the state: a registry of backends keyed by URL scheme.

A location is a file path or a URL whose scheme names a backend
(``postgresql://``, ``postgres://``, ``memory://``); the CLI takes it from
``--state``, ``KERNELFORM_STATE`` or the manifest's ``state:`` key, in that
order, and falls back to ``.kernelform/state.json`` next to the manifest. A
workspace is an independent state with its own lock in the same place (see
``backend``); the ``default`` workspace of a file keeps the file itself, so a
project that never heard of workspaces is unchanged.

Everything outside ``kernelform.state`` asks this module about a location: is
it usable (``location_problem``), which secrets it holds (``url_secrets``), how
it reads relative to a manifest (``anchored``), and its backend
(``open_backend``). The registry answers from the kinds (``kinds.KINDS``), which
are plain data: a backend's module, and its driver, are imported only when a
location of its kind is opened, and a missing driver is one line saying what to
install.

Adding a backend (S3, say):

1. one module, ``kernelform/state/s3.py``: its ``StateStore``, its ``Backend``
   and ``open_backend(location, *, manifest_dir, hooks)``; it may import its
   kind from ``kinds``, never this module;
2. one registry line: ``Kind(name="s3", module="kernelform.state.s3",
   schemes=("s3",), ...)`` in ``kinds.KINDS`` (with its secret query
   parameters, its ``Driver`` and an ``example`` if users are to be offered it);
3. an extra in ``pyproject.toml`` for its driver (``kernelform[s3]``);
4. one entry in ``BACKENDS`` of ``tests/state/test_contract.py``: a location of
   the new kind; the contract then runs on it, and a kind without an entry
   fails there.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Protocol

from kernelform.errors import StateError
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.state.backend import (
    DEFAULT_WORKSPACE,
    STATE_DIR,
    Backend,
    check_workspace,
)
from kernelform.state.kinds import FILE, KINDS, Kind
from kernelform.state.store import StateStore

__all__ = [
    "DEFAULT_WORKSPACE",
    "STATE_DIR",
    "STATE_ENV",
    "STATE_FILE",
    "WORKSPACE_ENV",
    "Backend",
    "anchored",
    "check_workspace",
    "default_state_path",
    "kind_of",
    "location_problem",
    "mask_url",
    "open_backend",
    "open_store",
    "require_driver",
    "url_secrets",
]

STATE_FILE = "state.json"
STATE_ENV = "KERNELFORM_STATE"
WORKSPACE_ENV = "KERNELFORM_WORKSPACE"

# The registry: a URL scheme, lower case, to its kind.
REGISTRY: dict[str, Kind] = {scheme: kind for kind in KINDS for scheme in kind.schemes}
# The kinds offered to users, in messages; the others are for library users and tests.
_OFFERED = [kind for kind in KINDS if kind.schemes and kind.example]
# How a location of no registered scheme (a path, a mistyped or unknown URL) is read for
# its secrets: as a URL of any kind, since it may be a mistyped one of any.
_ANY = Kind(
    name="any",
    module="",
    schemes=tuple(REGISTRY),
    secret_params=frozenset[str]().union(*(kind.secret_params for kind in KINDS)),
)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# What a URL with a typo still looks like: "postgresql:/u:pw@h/db", "postgresql//u@h/db",
# "u:pw@host/db". Taken as a file path, it would become a fresh, empty state (and a
# directory named after the password).
_URL_LIKE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]+:|[^/]*@"
    + "".join(f"|{re.escape(scheme)}/" for kind in _OFFERED for scheme in kind.schemes),
    re.IGNORECASE,
)


class Opener(Protocol):
    """What a backend module provides: its ``open_backend``."""

    def __call__(self, location: str, *, manifest_dir: Path, hooks: Hooks) -> Backend: ...


def _registered(location: str) -> Kind | None:
    """The kind whose scheme *location* starts with, or None."""
    match = _SCHEME.match(location)
    return None if match is None else REGISTRY.get(match.group(1).lower())


def location_problem(location: str) -> str | None:
    """Why *location* is neither a URL of a known kind nor a plausible file path, or None.

    The text itself is never quoted: a mistyped URL still holds its password.
    """
    if _registered(location) is not None:
        return None
    scheme = _SCHEME.match(location)
    if scheme is not None:
        urls = " or ".join(f"a {kind.schemes[0]}:// URL" for kind in _OFFERED)
        return (
            f"the state location is a {scheme.group(1)}:// URL, an unknown kind; use a file"
            f" path or {urls}"
        )
    if _URL_LIKE.match(location):
        prefixes = " or ".join(f"{kind.schemes[0]}://..." for kind in _OFFERED)
        examples = " or ".join(str(kind.example) for kind in _OFFERED)
        return (
            f"the state location looks like a mistyped URL (it is not {prefixes} and not"
            f" a plain path); write {examples}, or ./NAME for a file"
            " whose name has ':' or '@'"
        )
    return None


def kind_of(location: str) -> Kind:
    """The kind of *location*: by its scheme, else a file; ``StateError`` when it is neither."""
    problem = location_problem(location)
    if problem is not None:
        raise StateError(problem)
    return _registered(location) or FILE


def url_secrets(location: str) -> list[str]:
    """Every secret spelled in *location*, as written and decoded, for redaction.

    Known without any driver; a location of no registered scheme is read as a URL
    of any kind.
    """
    return (_registered(location) or _ANY).secrets(location)


def mask_url(location: str) -> str:
    """*location* with its secrets replaced by ``***``, for messages."""
    return (_registered(location) or _ANY).shown(location)


def require_driver(location: str) -> None:
    """Raise one line saying what to install when *location*'s driver cannot be imported."""
    kind_of(location).require_driver(location)


def anchored(location: str, directory: Path) -> str:
    """*location* as written in a file in *directory*: a relative path is taken
    relative to it, anything else as it is."""
    if _registered(location) is not None or Path(location).is_absolute():
        return location
    return str(directory / location)


def default_state_path(manifest_dir: Path) -> Path:
    return manifest_dir / STATE_DIR / STATE_FILE


def _open(kind: Kind, location: str, *, manifest_dir: Path, hooks: Hooks) -> Backend:
    kind.require_driver(location)
    opener: Opener = importlib.import_module(kind.module).open_backend
    return opener(location, manifest_dir=manifest_dir, hooks=hooks)


def open_backend(
    location: str | os.PathLike[str] | None,
    *,
    manifest_dir: Path,
    hooks: Hooks = NO_HOOKS,
) -> Backend:
    """The backend at *location*: a path, a URL of a registered kind, or None for the
    default file.

    A relative path is taken as given (relative to the working directory); the
    default file, and the recovery files of a backend without a directory of its
    own, go in ``.kernelform/`` in *manifest_dir*.
    """
    if location is None or str(location) == "":
        path = str(default_state_path(manifest_dir))
        return _open(FILE, path, manifest_dir=manifest_dir, hooks=hooks)
    text = os.fspath(location)
    return _open(kind_of(text), text, manifest_dir=manifest_dir, hooks=hooks)


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
