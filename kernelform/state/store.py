"""The contract of a state backend, and the rules every backend keeps, written once.

A backend (``FileStateStore``, ``PostgresStateStore``) provides storage
primitives: load the state, replace it whole, append one recorded action, and
a lock. ``StateStore`` turns them into the contract the rest of kernelform
uses, and keeps the rules that make a shared state safe:

* a stored state of another lineage is never overwritten (``StateCorrupt``);
* a write based on a stale read is refused (``StaleState``): the stored serial
  must be the one this run read or last wrote;
* every refused or failed write saves what the run knows to a recovery file
  (the file backend's JSON format, restorable with ``kernelform state push``),
  or at worst puts it in the message, so a kernel just started is never
  forgotten;
* recording one action (``record``) costs the same whatever the number of
  kernels: backends append it (a journal line, a row) instead of rewriting;
* messages speak of "the state at LOCATION", whatever the backend;
* a lock held by a live process on this host is never broken.
"""

from __future__ import annotations

import abc
import errno
import json
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kernelform.errors import (
    Remedy,
    StaleState,
    StateCorrupt,
    StateError,
    StateLocked,
    StateWriteError,
    with_remedy,
)
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.state.model import LockInfo, Resource, State, new_state

# Where a directory cannot be fsynced (some filesystems), its entries are as durable as it gets.
_DIR_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EBADF})


@dataclass(frozen=True)
class Unlocked:
    """What ``force_unlock`` did: whose lock it was, and one sentence saying what was done."""

    holder: LockInfo
    done: str


class StateStore(abc.ABC):
    """Where the state lives. Subclasses implement the ``_``-prefixed primitives and the lock."""

    def __init__(
        self, *, location: str, recovery_dir: Path, recovery_name: str, hooks: Hooks = NO_HOOKS
    ) -> None:
        self.location = location
        self.recovery_dir = recovery_dir
        self.recovery_name = recovery_name
        self.hooks = hooks
        self._recovery: Path | None = None  # this run's recovery file, once one is saved

    @property
    def identity(self) -> str:
        """Which state this is, comparable across runs (a saved plan records it);
        never holds a secret."""
        return self.location

    # -- what a backend provides ---------------------------------------------------

    @abc.abstractmethod
    def _load(self) -> State | None:
        """The stored state, or None when nothing is stored; raises ``StateError``s."""

    @abc.abstractmethod
    def _replace(self, state: State, *, previous: State | None) -> None:
        """Store *state* whole, in place of *previous* (what ``_load`` returned)."""

    @abc.abstractmethod
    def _append(self, base: State, written: State, puts: list[Resource], drops: list[str]) -> None:
        """Store *written* (= *base* with the edits, serial + 1) by adding only the edits.

        Must raise ``StaleState`` (via ``self.stale``) when the stored state is no
        longer *base*, and do so without reading the whole state.
        """

    @abc.abstractmethod
    def lock(self, *, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]:
        """Hold the lock for the block; ``StateLocked`` if still held after *timeout* s."""

    @abc.abstractmethod
    def lock_info(self) -> LockInfo | None:
        """Who holds the lock, or ``None`` if nobody does."""

    @abc.abstractmethod
    def _break_lock(self, holder: LockInfo) -> str:
        """Remove the lock (or holder record) of *holder*; say what was done, one sentence."""

    def left_behind(self) -> LockInfo | None:
        """A holder record left behind by a lock that is free (a backend that keeps
        one apart from the lock itself); ``None`` by default."""
        return None

    def _clear_left_behind(self, record: LockInfo) -> None:  # noqa: B027
        """Remove the record ``left_behind`` returned."""

    def close(self) -> None:  # noqa: B027  (a default, not an abstract method)
        """Release connections; the default holds none."""

    def settle(self, state: State) -> None:  # noqa: B027
        """Called once a run is done recording: a backend may compact here."""

    # -- the contract ----------------------------------------------------------------

    def load(self) -> State | None:
        """The stored state, or ``None`` when nothing is stored yet."""
        return self._load()

    def read(self) -> State:
        """The stored state, or ``new_state()`` if none; never creates anything."""
        stored = self._load()
        return new_state() if stored is None else stored

    def write(self, state: State) -> State:
        """Store *state* whole as serial ``state.serial + 1``; return what was stored.

        Refuses a stored state of another lineage, and one whose serial is above
        ``state.serial`` (another run wrote it since *state* was read). A stored
        serial below it (a restored backup, a pushed recovery file) is accepted.
        """
        written = state.at_serial(state.serial + 1)
        try:
            previous = self._load()
        except StateCorrupt:
            raise
        except StateError as e:
            raise self.write_failed(written, e) from e
        if previous is not None:
            self.check_replaceable(previous, written)
        self._replace(written, previous=previous)
        return written

    def record(
        self, base: State, *, puts: Iterable[Resource] = (), drops: Iterable[str] = ()
    ) -> State:
        """Store the edit of one action on top of *base* (the state last read or written)."""
        put_list, drop_list = list(puts), list(drops)
        written = base.edited(puts=put_list, drops=drop_list).at_serial(base.serial + 1)
        self._append(base, written, put_list, drop_list)
        return written

    def push(self, state: State, *, force: bool = False) -> State:
        """Replace the stored state with *state* (``kernelform state push``).

        Refused, unless *force*, when the stored state has another lineage or a
        higher serial than *state*: pushing would lose what is recorded there.
        The state is stored with its own serial + 1 (or the stored one + 1 when
        forced over a higher one), so that a run that read the old state fails
        its next write instead of overwriting the pushed one.
        """
        previous = self._load()
        if previous is not None and not force:
            if previous.lineage != state.lineage:
                raise with_remedy(
                    StateCorrupt(
                        f"the state at {self.location} has lineage {previous.lineage}, the"
                        f" pushed one {state.lineage}: they are different states; nothing was"
                        " changed"
                    ),
                    Remedy.FORCE_PUSH,
                )
            if previous.serial > state.serial:
                raise with_remedy(
                    StaleState(
                        f"the state at {self.location} is at serial {previous.serial}, newer"
                        f" than the pushed one ({state.serial}); nothing was changed"
                    ),
                    Remedy.FORCE_PUSH,
                )
        serial = max(state.serial, previous.serial if previous is not None else 0)
        written = state.at_serial(serial + 1)
        self._replace(written, previous=previous)
        return written

    def force_unlock(self, lock_id: str) -> Unlocked:
        """Break the lock whose id is *lock_id*; never one a live local process holds.

        A lock that is already free but left its holder record behind (the
        PostgreSQL backend keeps one beside its advisory lock) only has that
        record removed.
        """
        holder = self.lock_info()
        if holder is None:
            left = self.left_behind()
            if left is None:
                raise StateError(f"the state at {self.location} is not locked; nothing to unlock")
            if left.id != lock_id:
                raise StateError(
                    f"the state at {self.location} is not locked; the holder record left by"
                    f" its last lock is {left.id}, not {lock_id}; nothing was changed"
                )
            self._clear_left_behind(left)
            return Unlocked(
                holder=left,
                done=(
                    "the lock was already free (its holder is gone); removed the holder"
                    f" record it left ({left.describe()})"
                ),
            )
        self.check_unlock(lock_id, holder)
        return Unlocked(holder=holder, done=self._break_lock(holder))

    def check_unlock(self, lock_id: str, holder: LockInfo | None = None) -> None:
        """Refuse, as ``force_unlock`` would, to break the lock held now: another id, or a
        holder alive on this host. Lets an interface ask for a confirmation only about a
        lock it may break."""
        holder = holder if holder is not None else self.lock_info()
        if holder is None:
            return
        if holder.id and holder.id != lock_id:
            raise StateError(
                f"the lock on the state at {self.location} is {holder.id}, not {lock_id}"
                f" ({holder.describe()}); nothing was changed"
            )
        if holder_is_alive(holder):
            raise StateLocked(
                f"refusing to unlock the state at {self.location}: the lock is {holder.describe()}"
                f" and that process is alive on this host; wait for it, or stop it"
                f" (kill {holder.pid}) and its lock goes with it"
            )

    # -- shared rules, for backends ------------------------------------------------------

    def check_replaceable(self, stored: State, written: State) -> None:
        """Refuse to store *written* over *stored* from another lineage or a newer write."""
        if stored.lineage != written.lineage:
            raise StateCorrupt(
                f"the state at {self.location} belongs to another state (lineage"
                f" {stored.lineage}, this run's is {written.lineage}); it was not"
                f" changed. Is the right state in use? {self.recovery_note(written)}"
            )
        if stored.serial >= written.serial:
            raise self.stale(stored.serial, written)

    def stale(self, stored_serial: int | None, written: State) -> StaleState:
        """The error for a write whose base is no longer what is stored."""
        now = f"is at serial {stored_serial}" if stored_serial is not None else "was rewritten"
        return StaleState(
            f"the state changed under us: the state at {self.location} {now}"
            f" but this run read it at serial {written.serial - 1}; another run"
            f" wrote it, and it was not changed. {self.recovery_note(written)}"
        )

    def write_failed(self, written: State, error: BaseException) -> StateWriteError:
        """The error for a write that failed (disk, network): the state is saved aside."""
        text = dump(written.to_dict()).decode("utf-8")
        cause = describe_error(error)
        saved, problems = self.save_recovery(text)
        if saved is not None:
            return StateWriteError(
                f"the state could not be written to {self.location}: {cause}. A recovery"
                f" file with the new state was saved at {saved}; once the problem is"
                f" fixed, run 'kernelform state push {saved}' (or kernelform will forget"
                " what this run changed)",
                recovery=saved,
            )
        return StateWriteError(
            f"the state could not be written to {self.location}: {cause}, and no recovery"
            f" file could be saved either ({'; '.join(problems)}). Once the problem is"
            f" fixed, save this JSON to a file and push it with 'kernelform state push"
            f" FILE':\n{text}"
        )

    def recovery_note(self, written: State) -> str:
        text = dump(written.to_dict()).decode("utf-8")
        saved, problems = self.save_recovery(text)
        if saved is not None:
            return f"This run's state was saved at {saved}."
        return f"This run's state could not be saved ({'; '.join(problems)}); here it is:\n{text}"

    def save_recovery(self, text: str) -> tuple[Path | None, list[str]]:
        """Save *text* in this run's recovery file: in the recovery dir, else in the system
        temp dir. A run has one: a later failure replaces its content with the newer state,
        so every message of the run names the same file, and it holds the newest."""
        problems: list[str] = []
        data = text.encode("utf-8")
        if self._recovery is not None:
            try:
                replace_file(self._recovery, data)
                return self._recovery, problems
            except OSError as e:
                problems.append(f"{e.filename or self._recovery}: {e.strerror or e}")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        places = (
            self.recovery_dir / f"{self.recovery_name}.recovery-{stamp}",
            Path(tempfile.gettempdir(), f"kernelform-{self.recovery_name}.recovery-{stamp}"),
        )
        for stem in places:
            try:
                self._recovery = write_new(stem, data)
                return self._recovery, problems
            except OSError as e:
                problems.append(f"{e.filename or stem.parent}: {e.strerror or e}")
        return None, problems

    def locked_error(self, holder: LockInfo, timeout: float) -> StateLocked:
        """ "the state is locked: held by …"; breakable when the holder cannot be checked."""
        waited = (
            f"the state at {self.location} is still locked after {timeout:g}s"
            if timeout > 0
            else f"the state at {self.location} is locked"
        )
        breakable = bool(holder.id) and not holder_is_local(holder)
        lock_id = f", lock ID {holder.id}" if holder.id else ""
        return StateLocked(
            f"{waited}: {holder.describe()}{lock_id}",
            holder=holder,
            waited=timeout,
            breakable=breakable,
        )


def new_lock_info(operation: str, lock_id: str) -> LockInfo:
    """The holder record of a lock this process takes now."""
    return LockInfo(
        id=lock_id,
        pid=os.getpid(),
        host=socket.gethostname(),
        operation=operation,
        since=datetime.now(timezone.utc).replace(microsecond=0),
    )


def holder_is_local(holder: LockInfo) -> bool:
    return bool(holder.host) and holder.host == socket.gethostname()


def holder_is_alive(holder: LockInfo) -> bool:
    """True when the holder is a process alive on this host (it can be checked)."""
    if not holder_is_local(holder) or holder.pid <= 0:
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def describe_error(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}" + (f": {error.filename}" if error.filename else "")
    return str(error) or type(error).__name__


def dump(data: Mapping[str, Any]) -> bytes:
    """The state's JSON form, as every backend, recovery file and ``state pull`` writes it.

    One line per top-level key, and one per entry of a mapping under one (one per
    kernel under ``resources``): readable, greppable and diff-friendly, and written
    by json's C encoder (with ``indent`` it falls back to pure Python, which took
    most of the time of folding a journal into a state of 1,000 kernels).
    """

    def encode(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            entries = [f"    {encode(k)}: {encode(v)}" for k, v in value.items()]
            lines.append(f"  {encode(key)}: {{\n" + ",\n".join(entries) + "\n  }")
        else:
            lines.append(f"  {encode(key)}: {encode(value)}")
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_new(stem: Path, data: bytes) -> Path:
    """Write *data* to ``<stem>.json`` (or ``<stem>-N.json``), never replacing a file."""
    stem.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for n in range(100):
        path = stem.with_name(stem.name + (f"-{n}" if n else "") + ".json")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        _fill(fd, path, data)
        return path
    raise FileExistsError(errno.EEXIST, "too many recovery files", str(stem))


def _fill(fd: int, path: Path, data: bytes) -> None:
    """Write *data* to the new file *fd* (at *path*), fsync and close it; on any failure
    the file is removed, so that no half-written file is ever left."""
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(path)
        raise


def iter_json_lines(data: bytes) -> Iterator[tuple[int, Any]]:
    """``(end offset, value)`` for each complete line of *data*.

    A last line without its newline is a write that never finished (it was
    never acknowledged) and is skipped; a complete line that is not JSON raises
    ``ValueError``.
    """
    offset = 0
    while True:
        end = data.find(b"\n", offset)
        if end < 0:
            return
        try:
            value = json.loads(data[offset:end])
        except ValueError:
            raise ValueError(f"the line at byte {offset} is not valid JSON") from None
        offset = end + 1
        yield offset, value


def replace_file(path: Path, data: bytes) -> None:
    """Replace *path* with *data* so that a crash leaves the old or the new file."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    _fill(fd, Path(temp), data)
    try:
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)
