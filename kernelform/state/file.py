"""The file backend: the state as a JSON snapshot plus an append-only journal.

``state.json`` is the snapshot (the format of ``kernelform state pull``);
``state.json.journal`` holds one JSON line per recorded action since it was
written: ``{"lineage", "serial", "puts": [resources], "drops": [addresses]}``.
Recording an action appends one line and fsyncs it, so its cost does not
depend on how many kernels the state holds; reading replays the lines on top
of the snapshot. The journal is folded into a new snapshot (compaction) when
a run settles and whenever it has grown past the size of the state, so the
work stays proportional to what was recorded.

Crash safety: a line is acknowledged only once fsynced; a last line without its
newline is a write that never finished and is ignored (and cut off before the
next append). A compaction writes the snapshot first (temp file, fsync,
rename, fsync of the directory; the previous snapshot is kept as
``.backup``), then empties the journal: a crash in between leaves lines whose
serial the snapshot already covers, which reading skips.

A write based on a stale read is noticed without reading the state: the store
remembers the journal's inode and size after its own last read or write, and
any other writer changes one of them.

Locking uses ``fcntl.flock`` on ``state.json.lock``, which the OS releases when
the holder dies, even by SIGKILL. The holder's ``LockInfo`` is written into the
lock file once the lock is held, so that a process that fails to lock can name
the holder. The lock is not reentrant. On release the lock file is removed; a
waiter that locked a removed file notices (inode check) and locks the new one.
The file backend needs POSIX (``fcntl``).

Workspaces (``FileBackend``): the ``default`` workspace is the file named (so a
project that never heard of workspaces is unchanged); another workspace NAME
lives in ``workspaces/NAME/`` beside it, under the same file name.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kernelform.errors import StateCorrupt, StateError
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.state.backend import DEFAULT_WORKSPACE, WORKSPACE_NAME, Backend, check_workspace
from kernelform.state.model import LockInfo, Resource, State, is_newer
from kernelform.state.store import (
    StateStore,
    dump,
    fsync_dir,
    iter_json_lines,
    new_lock_info,
    replace_file,
    write_all,
)

WORKSPACES_DIR = "workspaces"
POLL_INTERVAL = 0.1
HOLDER_WAIT = 0.2
MIN_JOURNAL_LINES = 64


@dataclass(frozen=True)
class _Mark:
    """Where snapshot and journal stood after this store's last read or write."""

    snapshot: tuple[int, int, int]  # inode, size, mtime in ns
    journal: int | None  # the journal's inode; None: there was none
    size: int  # bytes of complete journal lines
    total: int  # journal bytes on disk (more when a torn line follows)
    lines: int
    serial: int


class FileStateStore(StateStore):
    """The state as ``state.json`` (+ ``.journal``, ``.backup``, ``.lock``) in a directory."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        recovery_dir: Path | None = None,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        super().__init__(
            location=str(self.path),
            recovery_dir=recovery_dir or self.path.parent,
            recovery_name=self.path.name,
            hooks=hooks,
        )
        self._mark: _Mark | None = None

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.path)!r})"

    @property
    def identity(self) -> str:
        return str(self.path.absolute())

    # -- reading ------------------------------------------------------------------

    def _load(self) -> State | None:
        try:
            snapshot = _read_bytes(self.path)
        except IsADirectoryError as e:
            raise StateError(
                f"the state at {self.path} is a directory; name a file in it, such as"
                f" {self.path / 'state.json'}"
            ) from e
        except OSError as e:
            raise StateError(f"cannot read the state at {self.path}: {e.strerror or e}") from e
        if snapshot is None:
            self._mark = None
            return None
        identity = _identity(self.path)
        state = self._parse(snapshot)
        return self._replay(state, identity)

    def _parse(self, raw: bytes) -> State:
        where = f"the state at {self.path}"
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
            return State.from_dict(data, source=where)
        except StateCorrupt as e:
            if isinstance(data, dict) and is_newer(data):
                raise
            raise StateCorrupt(f"{e}; {self._restore_hint()}") from None

    def _replay(self, state: State, identity: tuple[int, int, int]) -> State:
        try:
            fd = os.open(self.journal_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._mark = _Mark(identity, None, 0, 0, 0, state.serial)
            return state
        except OSError as e:
            raise StateError(f"cannot read {self.journal_path}: {e.strerror or e}") from e
        try:
            stat = os.fstat(fd)
            data = _read_fd(fd)
        finally:
            os.close(fd)
        size = lines = 0
        try:
            for end, entry in iter_json_lines(data):
                state = self._apply_line(state, entry)
                size, lines = end, lines + 1
        except ValueError as e:
            raise StateCorrupt(
                f"the journal {self.journal_path} of the state at {self.path} is damaged"
                f" ({e}); {self._restore_hint()}"
            ) from None
        self._mark = _Mark(identity, stat.st_ino, size, len(data), lines, state.serial)
        return state

    def _apply_line(self, state: State, entry: Any) -> State:
        if not isinstance(entry, dict) or not isinstance(entry.get("serial"), int):
            raise ValueError("a line is not a journal entry")
        if entry.get("lineage") != state.lineage:
            raise ValueError(f"a line belongs to another state (lineage {entry.get('lineage')})")
        serial = entry["serial"]
        if serial <= state.serial:
            return state  # already in the snapshot (a compaction was interrupted)
        if serial != state.serial + 1:
            raise ValueError(f"serial {serial} follows serial {state.serial}")
        puts = [Resource.from_dict(data) for data in entry.get("puts", [])]
        drops = [str(address) for address in entry.get("drops", [])]
        return state.edited(puts=puts, drops=drops).at_serial(serial)

    def _restore_hint(self) -> str:
        if self.backup_path.is_file():
            return f"restore it from {self.backup_path} or your VCS, it was not changed"
        return "restore it from your VCS or fix it by hand, it was not changed"

    # -- writing ------------------------------------------------------------------

    def _replace(self, state: State, *, previous: State | None) -> None:
        try:
            self.hooks.before_store_io(str(self.path))
            self._ensure_dir()
            self._write_snapshot(state)
        except OSError as e:
            raise self.write_failed(state, e) from e

    def _write_snapshot(self, state: State) -> None:
        """Write *state* as the snapshot (old one to ``.backup``), then drop the journal."""
        old = _read_bytes(self.path)
        if old is not None:
            replace_file(self.backup_path, old)
        replace_file(self.path, dump(state.to_dict()))
        identity = _identity(self.path)
        mark = self._mark
        if mark is not None and mark.journal is not None:
            # Until the journal is gone its lines are all covered by the snapshot.
            self._mark = replace(mark, snapshot=identity, serial=state.serial)
        try:
            os.unlink(self.journal_path)
        except FileNotFoundError:
            pass
        else:
            fsync_dir(self.path.parent)
        self._mark = _Mark(identity, None, 0, 0, 0, state.serial)

    def _append(self, base: State, written: State, puts: list[Resource], drops: list[str]) -> None:
        mark = self._mark
        if mark is None or mark.serial != base.serial:
            # Not read through this store (or behind it): a whole write checks and stores.
            self.write(base.edited(puts=puts, drops=drops))
            return
        line = {
            "lineage": written.lineage,
            "serial": written.serial,
            "puts": [r.to_dict() for r in puts],
            "drops": drops,
        }
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            self.hooks.before_store_io(str(self.journal_path))
            unchanged = _identity(self.path) == mark.snapshot
            fd = os.open(
                self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_APPEND, 0o600
            )
        except FileNotFoundError:
            raise self.stale(None, written) from None
        except OSError as e:
            raise self.write_failed(written, e) from e
        try:
            stat = os.fstat(fd)
            if mark.journal is None:
                unchanged = unchanged and stat.st_size == 0
            else:
                unchanged = unchanged and (stat.st_ino, stat.st_size) == (mark.journal, mark.total)
            if not unchanged:
                raise self.stale(None, written)
            try:
                if stat.st_size > mark.size:  # cut off a line that never finished
                    os.ftruncate(fd, mark.size)
                write_all(fd, data)
                os.fsync(fd)
                if mark.journal is None:
                    fsync_dir(self.path.parent)
            except OSError as e:
                with suppress(OSError):
                    os.ftruncate(fd, mark.size)
                raise self.write_failed(written, e) from e
        finally:
            os.close(fd)
        size = mark.size + len(data)
        self._mark = replace(
            mark,
            journal=stat.st_ino,
            size=size,
            total=size,
            lines=mark.lines + 1,
            serial=written.serial,
        )
        if self._mark.lines > max(MIN_JOURNAL_LINES, len(written.resources)):
            self._compact(written)

    def settle(self, state: State) -> None:
        """Fold the journal into the snapshot, so that ``state.json`` alone is complete."""
        if self._mark is not None and self._mark.lines and self._mark.serial == state.serial:
            self._compact(state)

    def _compact(self, state: State) -> None:
        with suppress(OSError):  # the journal still holds everything; retried later
            self._write_snapshot(state)

    def _ensure_dir(self) -> bool:
        """Make the state's directory if needed; True when this call made it."""
        parent = self.path.parent
        try:
            parent.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            if parent.is_dir():
                return False
            raise
        os.chmod(parent, 0o700)
        return True

    # -- locking ------------------------------------------------------------------

    @contextmanager
    def lock(self, *, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        """Hold the lock; a state directory made only for it is removed again when it is
        left empty (a plan, or a failed run, on a new project leaves nothing behind)."""
        made = self._ensure_lock_dir()
        try:
            fd = self._acquire(timeout)
        except BaseException:
            self._remove_dir_if_empty(made)
            raise
        info = new_lock_info(operation, str(uuid.uuid4()))
        try:
            with suppress(OSError):
                os.ftruncate(fd, 0)
                write_all(fd, dump(info.to_dict()))
                os.fsync(fd)
            yield info
        finally:
            self._release(fd)
            self._remove_dir_if_empty(made)

    def _remove_dir_if_empty(self, made: bool) -> None:
        if made:
            with suppress(OSError):  # not empty (a state was written), or gone
                os.rmdir(self.path.parent)

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
            except OSError as e:  # e.g. ENOLCK: a filesystem without locks
                raise StateError(
                    f"cannot check the lock {self.lock_path}: flock failed: {e.strerror or e}"
                ) from e
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _break_lock(self, holder: LockInfo) -> str:
        try:
            os.unlink(self.lock_path)
        except (FileNotFoundError, NotADirectoryError):
            return f"the lock file {self.lock_path} was already gone"
        except OSError as e:
            raise StateError(f"cannot remove lock file {self.lock_path}: {e.strerror}") from e
        return f"removed the lock file {self.lock_path} ({holder.describe()})"

    def _ensure_lock_dir(self) -> bool:
        """``_ensure_dir``, its failure said as one that stops the lock."""
        try:
            return self._ensure_dir()
        except OSError as e:
            raise StateError(
                f"cannot lock the state: cannot create {self.path.parent}: {e.strerror or e}"
            ) from e

    def _acquire(self, timeout: float) -> int:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                # Another run removed the directory it had made, empty, as it let go.
                self._ensure_lock_dir()
                continue
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
                    raise self.locked_error(self._holder(), timeout) from None
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
            id="", pid=0, host="", operation="", since=datetime.fromtimestamp(mtime, timezone.utc)
        )

    def _read_info(self) -> LockInfo | None:
        try:
            raw = self.lock_path.read_bytes()
            return LockInfo.from_dict(json.loads(raw.decode("utf-8")))
        except (OSError, ValueError):
            return None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _identity(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"field {key!r} appears twice")
        data[key] = value
    return data


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
                if WORKSPACE_NAME.fullmatch(entry.name) and (entry / self.path.name).exists():
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


def open_backend(location: str, *, manifest_dir: Path, hooks: Hooks = NO_HOOKS) -> Backend:
    """The files at the path *location*, taken as given (relative to the working directory)."""
    return FileBackend(Path(location), hooks=hooks)
