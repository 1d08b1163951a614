"""What kernelform owns, remembered between runs.

A Jupyter server cannot say which of its kernels kernelform started, so the
state records them. Losing that record leaks kernels; a wrong record makes
kernelform stop kernels that are not its own. The file store is therefore
careful:

* writes are atomic (temp file, fsync, rename, fsync of the directory) and keep
  the previous state as ``<state>.backup``;
* a file it cannot understand (truncated, foreign, from a newer kernelform) is
  refused and never overwritten;
* ``lineage`` (fixed when a state is created) and ``serial`` (one more on every
  write) let a write notice that the file belongs to another project, or that
  another run wrote it since it was read;
* a failed write saves a recovery file, or at worst puts the state itself in
  the error message, so the kernels a run just started are never forgotten;
* an advisory ``flock`` on ``<state>.lock`` serialises whole plan/apply runs.

The state holds no token and has no field for one: credentials stay in the
environment. ``StateStore`` is kept small so that a shared backend (for CI
runners) can implement it later. The file store needs POSIX (``fcntl``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from kernelform.errors import StateCorrupt, StateError, StateLocked, StateWriteError
from kernelform.faults import fail_point
from kernelform.recipe import FIELD_NAMES as RECIPE_FIELDS
from kernelform.recipe import Recipe

FORMAT_VERSION = 1
POLL_INTERVAL = 0.1
HOLDER_WAIT = 0.2

STATE_KEYS = ("version", "serial", "lineage", "resources")
RESOURCE_KEYS = ("address", "server", "kernel_id", *RECIPE_FIELDS, "started_at", "pending")
LOCK_KEYS = ("id", "pid", "host", "operation", "since")

_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})")
_DIR_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EBADF})


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2026-11-28T00:10:00Z``."""
    return _utc(moment, "time").replace(tzinfo=None).isoformat() + "Z"


def parse_time(text: str) -> datetime:
    """Read what ``format_time`` writes (any offset is accepted); aware UTC.

    Done by hand because ``datetime.fromisoformat`` of Python 3.10 rejects ``Z``.
    """
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time like '2026-11-28T00:10:00Z'")
    base, fraction, zone = match.groups()
    micro = f".{fraction.ljust(6, '0')}" if fraction else ""
    offset = "+00:00" if zone == "Z" else zone
    try:
        moment = datetime.fromisoformat(base + micro + offset)
    except ValueError as e:
        raise ValueError(f"{text!r} is not a valid time: {e}") from None
    return moment.astimezone(timezone.utc)


def _utc(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ValueError(f"{what} must be a datetime, not {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, not {moment!r}")
    return moment.astimezone(timezone.utc)


def _check_keys(data: Mapping[str, Any], expected: tuple[str, ...], *, optional: set[str]) -> None:
    missing = [k for k in expected if k not in data and k not in optional]
    unknown = sorted(k for k in data if k not in expected)
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One kernel kernelform owns.

    ``pending`` marks a start that was requested with a client-chosen
    ``kernel_id`` but not yet confirmed, so that a crash between the request
    and the answer leaves a trace the next run can check.
    """

    address: str
    server: str
    kernel_id: str
    recipe: Recipe
    started_at: datetime
    pending: bool = False

    def __post_init__(self) -> None:
        for name in ("address", "server", "kernel_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, not {value!r}")
        if not isinstance(self.recipe, Recipe):
            raise ValueError(f"recipe must be a Recipe, not {self.recipe!r}")
        if not isinstance(self.pending, bool):
            raise ValueError(f"pending must be true or false, not {self.pending!r}")
        object.__setattr__(self, "started_at", _utc(self.started_at, "started_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "server": self.server,
            "kernel_id": self.kernel_id,
            **self.recipe.to_dict(),
            "started_at": format_time(self.started_at),
            "pending": self.pending,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Resource:
        """Build from ``to_dict`` output; raises ``ValueError`` saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, found {_kind(data)}")
        _check_keys(data, RESOURCE_KEYS, optional={"pending"})
        started = data["started_at"]
        if not isinstance(started, str):
            raise ValueError(f"started_at must be a string, not {started!r}")
        return cls(
            address=data["address"],
            server=data["server"],
            kernel_id=data["kernel_id"],
            recipe=Recipe.from_dict(data),
            started_at=parse_time(started),
            pending=data.get("pending", False),
        )


class _Resources(Mapping[str, Resource]):
    """An immutable, address-sorted mapping (hashable and picklable)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Resource] | None = None) -> None:
        self._items = dict(sorted((items or {}).items()))

    def __getitem__(self, address: str) -> Resource:
        return self._items[address]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._items.items())}}}"


@dataclass(frozen=True, kw_only=True)
class State:
    """Every kernel kernelform owns, with the bookkeeping that guards writes.

    ``serial`` is the serial of the stored state this one was read from (or
    written as); ``lineage`` identifies the state for its whole life.
    """

    version: int = FORMAT_VERSION
    serial: int
    lineage: str
    resources: Mapping[str, Resource] = field(default_factory=_Resources)

    def __post_init__(self) -> None:
        if self.version != FORMAT_VERSION:
            raise ValueError(f"version must be {FORMAT_VERSION}, not {self.version!r}")
        if not isinstance(self.serial, int) or isinstance(self.serial, bool) or self.serial < 0:
            raise ValueError(f"serial must be a whole number >= 0, not {self.serial!r}")
        if not isinstance(self.lineage, str):
            raise ValueError(f"lineage must be a UUID string, not {self.lineage!r}")
        try:
            uuid.UUID(self.lineage)
        except ValueError:
            raise ValueError(f"lineage must be a UUID, not {self.lineage!r}") from None
        owners: dict[tuple[str, str], str] = {}
        for address, resource in self.resources.items():
            if not isinstance(resource, Resource):
                raise ValueError(f"resource {address!r} is not a Resource: {resource!r}")
            if address != resource.address:
                raise ValueError(f"resource listed as {address!r} has address {resource.address!r}")
            key = (resource.server, resource.kernel_id)
            if key in owners:
                raise ValueError(
                    f"kernel {resource.kernel_id} on server {resource.server} is claimed"
                    f" by both {owners[key]} and {address}"
                )
            owners[key] = address
        object.__setattr__(self, "resources", _Resources(self.resources))

    def with_resource(self, resource: Resource) -> State:
        """A copy with *resource* added, or replacing the one at its address."""
        return replace(self, resources={**self.resources, resource.address: resource})

    def without(self, address: str) -> State:
        """A copy without the resource at *address* (``self`` if there is none)."""
        if address not in self.resources:
            return self
        return replace(self, resources={a: r for a, r in self.resources.items() if a != address})

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "serial": self.serial,
            "lineage": self.lineage,
            "resources": {a: r.to_dict() for a, r in sorted(self.resources.items())},
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> State:
        """Validate and build; ``StateCorrupt`` names *source* (e.g. the path) and the problem."""
        if isinstance(data, dict) and "terraform_version" in data:
            raise StateCorrupt(f"state file {source} is a Terraform state, not a kernelform state")
        if isinstance(data, dict) and _newer_version(data):
            raise StateCorrupt(
                f"state file {source} was written by a newer kernelform"
                f" (format {data['version']}); upgrade kernelform"
                f" (this one reads format {FORMAT_VERSION})"
            )
        try:
            return cls._parse(data)
        except ValueError as e:
            raise StateCorrupt(
                f"state file {source} is not a valid kernelform state: {e}"
            ) from None

    @classmethod
    def _parse(cls, data: Any) -> State:
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {_kind(data)}")
        version = data.get("version")
        if "version" not in data:
            raise ValueError("it has no format version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"version must be a whole number, not {version!r}")
        if version != FORMAT_VERSION:
            raise ValueError(f"unknown format version {version}")
        _check_keys(data, STATE_KEYS, optional=set())
        table = data["resources"]
        if not isinstance(table, dict):
            raise ValueError(f"resources must be an object, not {_kind(table)}")
        resources: dict[str, Resource] = {}
        for address, entry in table.items():
            try:
                resources[address] = Resource.from_dict(entry)
            except ValueError as e:
                raise ValueError(f"resources[{address!r}]: {e}") from None
        return cls(
            version=version,
            serial=data["serial"],
            lineage=data["lineage"],
            resources=resources,
        )


def new_state() -> State:
    """An empty state with serial 0 and a fresh lineage."""
    return State(serial=0, lineage=str(uuid.uuid4()))


def _newer_version(data: Mapping[str, Any]) -> bool:
    version = data.get("version")
    return isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION


@dataclass(frozen=True, kw_only=True)
class LockInfo:
    """Who holds the state lock. ``pid`` 0 means the holder could not be read."""

    id: str
    pid: int
    host: str
    operation: str
    since: datetime

    def describe(self) -> str:
        since = format_time(self.since.replace(microsecond=0))
        if self.pid <= 0:
            return f"held by an unknown process since {since} (the lock names no holder)"
        return f"held by pid {self.pid} on host {self.host} since {since} ({self.operation})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "host": self.host,
            "operation": self.operation,
            "since": format_time(self.since),
        }

    @classmethod
    def from_dict(cls, data: Any) -> LockInfo:
        """Build from ``to_dict`` output; raises ``ValueError`` if it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, found {_kind(data)}")
        _check_keys(data, LOCK_KEYS, optional=set())
        pid, since = data["pid"], data["since"]
        texts = [data[k] for k in ("id", "host", "operation")]
        if not all(isinstance(t, str) for t in texts) or not isinstance(since, str):
            raise ValueError("id, host, operation and since must be strings")
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise ValueError(f"pid must be a whole number, not {pid!r}")
        return cls(
            id=data["id"],
            pid=pid,
            host=data["host"],
            operation=data["operation"],
            since=parse_time(since),
        )


class StateStore(Protocol):
    """Where the state lives. Backends must keep these semantics."""

    @property
    def location(self) -> str:
        """Where the state is, for messages (a path, a URL)."""
        ...

    def read(self) -> State:
        """The stored state, or ``new_state()`` if none; never creates anything."""
        ...

    def write(self, state: State) -> State:
        """Store *state* with serial ``state.serial + 1``; return what was stored.

        Refuses (``StateCorrupt``) if the stored state has another lineage and
        (``StateError``) if its serial is above ``state.serial``.
        """
        ...

    def lock(self, *, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]:
        """Hold the lock for the block; ``StateLocked`` if still held after *timeout* s."""
        ...

    def lock_info(self) -> LockInfo | None:
        """Who holds the lock, or ``None`` if nobody does."""
        ...

    def force_unlock(self) -> LockInfo | None:
        """Remove a lock whatever its holder; return who held it, if known."""
        ...


class FileStateStore:
    """The state as a JSON file, with ``.backup`` and ``.lock`` files beside it.

    Locking uses ``fcntl.flock`` on ``<state>.lock``, which the OS releases when
    the holder dies, even by SIGKILL. The holder's ``LockInfo`` is written into
    the lock file once the lock is held, so that a process that fails to lock
    can name the holder. The lock is not reentrant: a second ``lock()`` in the
    same process fails like one in another process. On release the lock file is
    removed; a waiter that locked a removed file notices (inode check) and
    locks the new one, so removal never lets two runs in.

    ``force_unlock()`` is for locks that flock cannot clear: a network
    filesystem whose lock outlived its client, or a lock file left by a dead
    process that ``lock_info()`` still reports.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @property
    def location(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.path)!r})"

    def read(self) -> State:
        try:
            raw = self._read_bytes()
        except OSError as e:
            raise StateError(f"cannot read state file {self.path}: {e.strerror or e}") from e
        return new_state() if raw is None else self._parse(raw)

    def write(self, state: State) -> State:
        """Store *state* as serial ``state.serial + 1``, keeping the old file as backup.

        The lineage and serial checks catch a foreign or concurrently written
        file, but do not replace the lock: hold ``lock()`` across read and write.
        A stored serial below ``state.serial`` (a restored backup) is accepted.
        """
        written = replace(state, serial=state.serial + 1)
        try:
            previous = self._read_bytes()
        except OSError as e:
            raise self._write_failed(written, e) from e
        if previous is not None:
            self._check_replaceable(self._parse(previous), written)
        try:
            fail_point("state-write", str(self.path))
            self._ensure_dir()
            if previous is not None:
                _atomic_write(self.backup_path, previous)
            _atomic_write(self.path, _dump(written.to_dict()))
        except OSError as e:
            raise self._write_failed(written, e) from e
        return written

    @contextmanager
    def lock(self, *, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        fd = self._acquire(timeout)
        info = LockInfo(
            id=str(uuid.uuid4()),
            pid=os.getpid(),
            host=socket.gethostname(),
            operation=operation,
            since=datetime.now(timezone.utc).replace(microsecond=0),
        )
        try:
            with suppress(OSError):
                os.ftruncate(fd, 0)
                _write_all(fd, _dump(info.to_dict()))
                os.fsync(fd)
            yield info
        finally:
            self._release(fd)

    def lock_info(self) -> LockInfo | None:
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise StateError(f"cannot read lock file {self.lock_path}: {e.strerror}") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return self._holder(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def force_unlock(self) -> LockInfo | None:
        info = self._read_info()
        try:
            os.unlink(self.lock_path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise StateError(f"cannot remove lock file {self.lock_path}: {e.strerror}") from e
        return info

    def _read_bytes(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def _restore_hint(self) -> str:
        if self.backup_path.is_file():
            return f"restore it from {self.backup_path} or your VCS, it was not changed"
        return "restore it from your VCS or fix it by hand, it was not changed"

    def _parse(self, raw: bytes) -> State:
        where = f"state file {self.path}"
        if not raw.strip():
            raise StateCorrupt(f"{where} is empty; {self._restore_hint()}")
        try:
            data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
        except UnicodeDecodeError as e:
            raise StateCorrupt(
                f"{where} is not UTF-8 text (byte {e.start}); {self._restore_hint()}"
            ) from None
        except json.JSONDecodeError as e:
            raise StateCorrupt(
                f"{where} is not valid JSON (line {e.lineno} col {e.colno}); {self._restore_hint()}"
            ) from None
        except ValueError as e:
            raise StateCorrupt(f"{where} is not valid: {e}; {self._restore_hint()}") from None
        try:
            return State.from_dict(data, source=str(self.path))
        except StateCorrupt as e:
            if isinstance(data, dict) and _newer_version(data):
                raise
            raise StateCorrupt(f"{e}; {self._restore_hint()}") from None

    def _check_replaceable(self, stored: State, written: State) -> None:
        if stored.lineage != written.lineage:
            raise StateCorrupt(
                f"state file {self.path} belongs to another state (lineage"
                f" {stored.lineage}, this run's is {written.lineage}); it was not"
                f" changed. Is the right state file in use? {self._recovery_note(written)}"
            )
        if stored.serial >= written.serial:
            raise StateError(
                f"the state changed under us: {self.path} is at serial {stored.serial}"
                f" but this run read it at serial {written.serial - 1}; another run"
                f" wrote it, and it was not changed. {self._recovery_note(written)}"
            )

    def _recovery_note(self, written: State) -> str:
        text = _dump(written.to_dict()).decode("utf-8")
        saved, problems = self._save_recovery(text)
        if saved is not None:
            return f"This run's state was saved at {saved}."
        return f"This run's state could not be saved ({'; '.join(problems)}); here it is:\n{text}"

    def _write_failed(self, written: State, error: OSError) -> StateWriteError:
        text = _dump(written.to_dict()).decode("utf-8")
        saved, problems = self._save_recovery(text)
        if saved is not None:
            return StateWriteError(
                f"the state could not be written to {self.path}: {error}. A recovery"
                f" file with the new state was saved at {saved}; once the problem is"
                f" fixed, move it to {self.path} (mv {saved} {self.path}), or"
                " kernelform will forget what this run changed"
            )
        return StateWriteError(
            f"the state could not be written to {self.path}: {error}, and no recovery"
            f" file could be saved either ({'; '.join(problems)}). Once the problem is"
            f" fixed, save this JSON as {self.path}:\n{text}"
        )

    def _save_recovery(self, text: str) -> tuple[Path | None, list[str]]:
        """Save *text* beside the state, else in the system temp dir."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        problems: list[str] = []
        for place in ("beside", "temp"):
            try:
                if place == "beside":
                    stem = self.path.with_name(f"{self.path.name}.recovery-{stamp}")
                else:
                    name = f"kernelform-{self.path.name}.recovery-{stamp}"
                    stem = Path(tempfile.gettempdir(), name)
                return _write_new(stem, text.encode("utf-8")), problems
            except OSError as e:
                problems.append(f"{e.filename or place}: {e.strerror or e}")
        return None, problems

    def _ensure_dir(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            if parent.is_dir():
                return
            raise
        os.chmod(parent, 0o700)

    def _acquire(self, timeout: float) -> int:
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            self._ensure_dir()
        except OSError as e:
            raise StateError(
                f"cannot lock the state: cannot create {self.path.parent}: {e.strerror or e}"
            ) from e
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as e:
                raise StateError(
                    f"cannot lock the state: cannot open {self.lock_path}: {e.strerror or e}"
                ) from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._locked(timeout) from None
                time.sleep(min(POLL_INTERVAL, remaining))
                continue
            except OSError as e:
                os.close(fd)
                raise StateError(
                    f"cannot lock the state: flock on {self.lock_path} failed: {e.strerror or e}"
                ) from e
            if self._is_current(fd):
                return fd
            os.close(fd)

    def _release(self, fd: int) -> None:
        try:
            with suppress(OSError):
                os.ftruncate(fd, 0)
            with suppress(OSError):
                if self._is_current(fd):
                    os.unlink(self.lock_path)
            with suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _is_current(self, fd: int) -> bool:
        """Whether *fd* is still the file at ``lock_path`` (not removed or replaced)."""
        try:
            on_disk = os.stat(self.lock_path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def _locked(self, timeout: float) -> StateLocked:
        holder = self._holder()
        if timeout > 0:
            return StateLocked(
                f"the state is still locked after {timeout:g}s: {holder.describe()};"
                " wait for it to finish, retry with a longer --lock-timeout, or if that"
                " process is dead run 'kernelform force-unlock'"
            )
        return StateLocked(
            f"the state is locked: {holder.describe()}; wait for it to finish, retry"
            " with --lock-timeout 60s, or if that process is dead run"
            " 'kernelform force-unlock'"
        )

    def _holder(self, fd: int | None = None) -> LockInfo:
        """The holder's info, waiting briefly for a holder that has just locked."""
        deadline = time.monotonic() + HOLDER_WAIT
        while True:
            info = self._read_info()
            if info is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if info is not None:
            return info
        try:
            mtime = os.fstat(fd).st_mtime if fd is not None else os.stat(self.lock_path).st_mtime
        except OSError:
            mtime = time.time()
        return LockInfo(
            id="",
            pid=0,
            host="",
            operation="",
            since=datetime.fromtimestamp(mtime, timezone.utc),
        )

    def _read_info(self) -> LockInfo | None:
        try:
            raw = self.lock_path.read_bytes()
            return LockInfo.from_dict(json.loads(raw.decode("utf-8")))
        except (OSError, ValueError):
            return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"field {key!r} appears twice")
        data[key] = value
    return data


def _dump(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace *path* with *data* so that a crash leaves the old or the new file."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _write_new(stem: Path, data: bytes) -> Path:
    """Write *data* to ``<stem>.json`` (or ``<stem>-N.json``), never replacing a file."""
    for n in range(100):
        path = stem.with_name(stem.name + (f"-{n}" if n else "") + ".json")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(path)
            raise
        return path
    raise FileExistsError(errno.EEXIST, "too many recovery files", str(stem))
