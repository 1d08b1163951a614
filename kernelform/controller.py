"""The controller behind ``kernelform watch``: plan and apply on a schedule, until stopped.

Argo CD's and Flux's self-heal, for kernels. Each *cycle* re-reads the
manifest (a git-sync sidecar or a cron ``git pull`` keeps the file current),
takes the state lock, plans, applies the runnable changes without asking, and
releases the lock; between cycles nothing is held, so a ``kernelform plan`` by
hand works then. A watch never forces: blocked changes (kernels in use) stay
blocked, and are reported every cycle.

A cycle fails, and the loop goes on, when the manifest cannot be read (its
``FILE:LINE:COL`` problems are reported and no server is even contacted), a
server or the state cannot be reached, the lock is held, or an action fails.
After a failure the pause before the next cycle doubles, up to
``max_backoff`` intervals, and is back to one interval after a success.

``stop()`` (from any thread; ``stop_on_signals`` calls it on SIGTERM/SIGINT)
ends the loop soon: no new action starts, the actions in flight finish and
are recorded, a wait for a kernel to answer is cut short (that kernel stays
recorded, tainted, so the next run restarts it and runs its setup: its
readiness was never confirmed), the lock is released and ``run`` returns.

Everything the loop has to say goes through ``Events``, a callback object
(the command line's text and JSON logs, the Prometheus metrics and the health
check are ``Events``); the loop itself prints nothing. It takes one
``WatchConfig`` and the run's ``Runtime`` (hooks, the redactor owning the
run's secrets, timeouts, clock, stop event), and holds no module state.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from kernelform.errors import (
    KernelformError,
    ManifestError,
    Problem,
    StateLocked,
    StateWriteError,
)
from kernelform.executor import Outcome, Report
from kernelform.live import LiveServer
from kernelform.plan import Plan
from kernelform.runtime import Runtime
from kernelform.state import LockInfo, State
from kernelform.workspace import Settings, Workspace

DEFAULT_INTERVAL = 60.0
MIN_INTERVAL = 1.0  # faster than once a second only loads the servers
DEFAULT_MAX_BACKOFF = 4.0  # the longest pause after failures, in intervals
STALE_INTERVALS = 3.0  # /healthz fails once the last success is older than this many intervals
LOCK_POLL = 0.2  # seconds between two tries of a held lock (with --lock-timeout)
READ_ATTEMPTS = 3  # reads of a manifest that keeps changing while it is read


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    """What a watch does: which workspace, how often, and how patiently.

    ``settings`` is the workspace (manifest, state, lock timeout, parallelism,
    waits); its ``force`` and ``targets`` are ignored: a watch never forces
    and always covers the whole manifest.
    """

    settings: Settings
    interval: float = DEFAULT_INTERVAL
    max_backoff: float = DEFAULT_MAX_BACKOFF

    def __post_init__(self) -> None:
        if not self.interval >= MIN_INTERVAL:
            raise KernelformError(
                f"the interval must be at least {MIN_INTERVAL:g}s, not {self.interval:g}s"
            )
        if not self.max_backoff >= 1:
            raise KernelformError(
                f"max_backoff must be at least 1 interval, not {self.max_backoff:g}"
            )

    @property
    def workspace_settings(self) -> Settings:
        return replace(self.settings, force=False, targets=())

    def pause(self, failures: int) -> float:
        """Seconds to wait before the next cycle after *failures* failed cycles in a row."""
        if failures <= 0:
            return self.interval
        return self.interval * min(2.0 ** min(failures, 32), self.max_backoff)


@dataclass(frozen=True)
class WatchStart:
    at: datetime
    manifest: Path
    state: str  # where the state lives, as messages name it
    interval: float
    pid: int


@dataclass(frozen=True, kw_only=True)
class CycleEnd:
    """How one cycle went.

    ``plan`` is None when the cycle failed before planning (``report`` then too:
    nothing was changed). ``error`` is the failure as the user sees it (secrets
    redacted; one line per problem), ``problems`` the manifest's located ones.
    ``failures`` counts failed cycles in a row, this one included (0 on success);
    ``next_in`` is the pause before the next cycle.
    """

    number: int
    started_at: datetime
    seconds: float
    plan: Plan | None = None
    report: Report | None = None
    managed: Mapping[str, int] | None = None  # kernels in the state per server, after the cycle
    error: str | None = None
    problems: tuple[Problem, ...] = ()
    failures: int = 0
    next_in: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def changed_nothing(self) -> bool:
        """Whether the cycle ended before doing anything (a failure before the apply)."""
        return self.report is None or not self.report.outcomes

    def counts(self) -> dict[str, int]:
        """Changes planned (blocked included), blocked, and how the actions went."""
        plan, report = self.plan, self.report
        return {
            "changes": len(plan.changes) if plan else 0,
            "blocked": len(plan.blocked) if plan else 0,
            "succeeded": len(report.succeeded) if report else 0,
            "failed": len(report.failed) if report else 0,
            "skipped": len(report.skipped) if report else 0,
        }


@dataclass(frozen=True)
class WatchStop:
    at: datetime
    reason: str
    cycles: int


class Events:
    """What a watch reports, as callbacks; each does nothing by default.

    All are called from the thread that runs the loop, in order.
    """

    def watch_started(self, start: WatchStart) -> None:
        """The loop begins (before the first cycle)."""

    def cycle_started(self, number: int, at: datetime) -> None:
        """Cycle *number* begins: the manifest is about to be read."""

    def action_finished(self, number: int, outcome: Outcome, at: datetime) -> None:
        """One action of cycle *number* ended (well or not)."""

    def cycle_finished(self, end: CycleEnd) -> None:
        """A cycle succeeded: everything runnable is done (blocked changes may remain)."""

    def cycle_failed(self, end: CycleEnd) -> None:
        """A cycle failed; ``end.error`` says why."""

    def warning(self, message: str, at: datetime) -> None:
        """Something the operator should know that fails nothing."""

    def watch_stopped(self, stop: WatchStop) -> None:
        """The loop ended; the lock is free."""


NO_EVENTS = Events()


class Fanout(Events):
    """Hands every event to each of several ``Events``, in order."""

    def __init__(self, *targets: Events) -> None:
        self.targets = targets

    def watch_started(self, start: WatchStart) -> None:
        for target in self.targets:
            target.watch_started(start)

    def cycle_started(self, number: int, at: datetime) -> None:
        for target in self.targets:
            target.cycle_started(number, at)

    def action_finished(self, number: int, outcome: Outcome, at: datetime) -> None:
        for target in self.targets:
            target.action_finished(number, outcome, at)

    def cycle_finished(self, end: CycleEnd) -> None:
        for target in self.targets:
            target.cycle_finished(end)

    def cycle_failed(self, end: CycleEnd) -> None:
        for target in self.targets:
            target.cycle_failed(end)

    def warning(self, message: str, at: datetime) -> None:
        for target in self.targets:
            target.warning(message, at)

    def watch_stopped(self, stop: WatchStop) -> None:
        for target in self.targets:
            target.watch_stopped(stop)


class Health(Events):
    """Whether the watch keeps converging, for ``/healthz``; safe to read from any thread.

    Healthy while the last successful cycle ended at most ``stale_after``
    intervals ago; before any success, while the watch started at most that
    long ago (the first cycle's deadline).
    """

    def __init__(
        self,
        *,
        interval: float,
        stale_after: float = STALE_INTERVALS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = interval * stale_after
        self._now = now
        self._lock = threading.Lock()
        self._started = now()
        self._last_success: float | None = None
        self._last_error: str | None = None

    def watch_started(self, start: WatchStart) -> None:
        with self._lock:
            self._started = self._now()

    def cycle_finished(self, end: CycleEnd) -> None:
        with self._lock:
            self._last_success = self._now()
            self._last_error = None

    def cycle_failed(self, end: CycleEnd) -> None:
        with self._lock:
            self._last_error = _first_line(end.error or "failed")

    def verdict(self) -> tuple[bool, str]:
        """(healthy, one line saying why)."""
        with self._lock:
            now, started = self._now(), self._started
            last, error = self._last_success, self._last_error
        limit = f"{self.limit:g}s ({STALE_INTERVALS:g} intervals)"
        why = f"; last error: {error}" if error else ""
        if last is None:
            age = now - started
            if age <= self.limit:
                return True, f"starting: no cycle has succeeded yet ({age:.0f}s since start){why}"
            return False, f"no cycle has succeeded in the {age:.0f}s since start, over {limit}{why}"
        age = now - last
        if age <= self.limit:
            return True, f"ok: the last successful cycle ended {age:.0f}s ago{why}"
        return False, f"the last successful cycle ended {age:.0f}s ago, over {limit}{why}"


def _first_line(text: str) -> str:
    lines = text.splitlines() or [""]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return lines[0] + more


Explain = Callable[[KernelformError, Workspace], str]


class Controller:
    """Runs cycles every ``config.interval`` until ``stop()``; see the module's docstring."""

    def __init__(
        self,
        config: WatchConfig,
        *,
        runtime: Runtime,
        events: Events = NO_EVENTS,
        open_workspace: Callable[[Settings], Workspace] | None = None,
        explain: Explain | None = None,
    ) -> None:
        """*open_workspace* makes each cycle's workspace (default: ``Workspace(settings,
        runtime=runtime)``); *explain* words the fix for an error met in one (the command
        line's hints), added to the message unless the error has one already."""
        self.config = config
        self.runtime = runtime
        self.events = events
        self._open = open_workspace or (lambda s: Workspace(s, runtime=runtime))
        self._explain = explain
        self._reason = "stopped"
        self._warned: set[str] = set()  # transport warnings given
        self._unsaved: str | None = None  # a failed state write's message, until a write works

    @property
    def stopping(self) -> bool:
        return self.runtime.stop.is_set()

    def stop(self, reason: str = "stopped") -> None:
        """Ask the loop to end soon (any thread); the first reason given is kept."""
        if not self.stopping:
            self._reason = reason
        self.runtime.stop.set()

    def run(self) -> int:
        """Run cycles until stopped; return how many ran."""
        settings = self.config.workspace_settings
        with self._open(settings) as workspace:
            location = workspace.store.location
        self.events.watch_started(
            WatchStart(
                at=self.runtime.clock(),
                manifest=settings.manifest_path,
                state=location,
                interval=self.config.interval,
                pid=os.getpid(),
            )
        )
        number = failures = 0
        while not self.stopping:
            number += 1
            end = self.cycle(number, failures=failures)
            failures = end.failures
            self.runtime.stop.wait(end.next_in)
        self.events.watch_stopped(WatchStop(self.runtime.clock(), self._reason, number))
        return number

    def cycle(self, number: int, *, failures: int = 0) -> CycleEnd:
        """Read, plan and apply once; report it through the events, and return it.

        *failures* is how many cycles failed in a row before this one.
        """
        began, at = time.monotonic(), self.runtime.clock()
        self.events.cycle_started(number, at)
        plan: Plan | None = None
        report: Report | None = None
        managed: dict[str, int] | None = None
        error: KernelformError | None = None
        try:
            with self._read() as workspace:
                try:
                    self._warn_transport(workspace)
                    with ExitStack() as held:
                        self._lock(workspace, held)
                        plan, live, state = workspace.plan()
                        report, final = self._apply(
                            workspace, plan, live=live, state=state, number=number
                        )
                        managed = dict(Counter(r.server for r in final.resources.values()))
                except KernelformError as e:
                    if self._explain is not None and not e.hint:
                        e.hint = self._explain(e, workspace)
                    raise
        except KernelformError as e:
            error = e
        text = self._describe(error, report)
        failed = text is not None
        end = CycleEnd(
            number=number,
            started_at=at,
            seconds=time.monotonic() - began,
            plan=plan,
            report=report,
            managed=managed,
            error=text,
            problems=error.problems if isinstance(error, ManifestError) else (),
            failures=failures + 1 if failed else 0,
            next_in=self.config.pause(failures + 1 if failed else 0),
        )
        self._note_state_write(error, end)
        (self.events.cycle_failed if failed else self.events.cycle_finished)(end)
        return end

    # -- the steps of a cycle -------------------------------------------------------

    def _read(self) -> Workspace:
        """A workspace for this cycle, its manifest read and unchanged while it was read.

        A file rewritten in place (``git pull``, an editor) can be caught half
        written; one swapped whole (git-sync's symlink, a rename) cannot. A
        read during which the file changed is thrown away and done again.
        """
        settings = self.config.workspace_settings
        path = settings.manifest_path
        for _ in range(READ_ATTEMPTS):
            before = _signature(path)
            workspace = self._open(settings)
            try:
                workspace.manifest  # noqa: B018 (read it now)
            except BaseException:
                workspace.close()
                raise
            if _signature(path) == before:
                return workspace
            workspace.close()
        raise KernelformError(
            f"{path} kept changing while it was read; the next cycle reads it again"
        )

    def _warn_transport(self, workspace: Workspace) -> None:
        """Warn once per watch (not every cycle) for each server or hub whose token
        travels in clear text or without TLS checks."""
        for line in workspace.transport_warnings():
            if line not in self._warned:
                self._warned.add(line)
                self._warn(line)

    def _warn(self, message: str) -> None:
        self.events.warning(self.runtime.secrets.redact(message), self.runtime.clock())

    def _lock(self, workspace: Workspace, held: ExitStack) -> None:
        """Take the state lock for the cycle, trying again until the lock timeout.

        Tried in short steps rather than in one blocking wait, so that a stop
        does not wait for the lock.
        """
        timeout = workspace.settings.lock_timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                held.enter_context(workspace.store.lock(operation="watch", timeout=0))
                return
            except StateLocked as e:
                if time.monotonic() >= deadline or self.stopping:
                    if timeout > 0 and isinstance(e.holder, LockInfo):
                        raise workspace.store.locked_error(e.holder, timeout) from None
                    raise
            self.runtime.stop.wait(LOCK_POLL)

    def _apply(
        self,
        workspace: Workspace,
        plan: Plan,
        *,
        live: dict[str, LiveServer],
        state: State,
        number: int,
    ) -> tuple[Report, State]:
        """Apply *plan* unless stopping or idle; the report and the state left behind."""
        if self.stopping:
            return Report(outcomes=(), blocked=plan.blocked, skipped=plan.runnable), state
        if not plan.runnable and not plan.updates:
            return Report(outcomes=(), blocked=plan.blocked), state
        return workspace.apply(
            plan,
            live=live,
            state=state,
            on_outcome=lambda outcome: self.events.action_finished(
                number, outcome, self.runtime.clock()
            ),
        )

    def _describe(self, error: KernelformError | None, report: Report | None) -> str | None:
        """The failure as the user sees it (secrets redacted), or None for a success."""
        if error is not None:
            return self.runtime.secrets.redact(str(error)) or type(error).__name__
        if report is not None and report.failed:
            failed = ", ".join(o.change.address for o in report.failed)
            return (
                f"{len(report.failed)} action(s) failed ({failed}); the next cycle tries again "
                "(what succeeded is recorded)"
            )
        return None

    def _note_state_write(self, error: KernelformError | None, end: CycleEnd) -> None:
        """After a failed state write, say when a later cycle wrote the state again."""

        if isinstance(error, StateWriteError):
            self._unsaved = str(error)
        elif end.ok and self._unsaved is not None and end.report is not None:
            self._unsaved = None
            self._warn(
                "the state is written again and complete: a recovery file saved by an "
                "earlier cycle is out of date; do not restore it"
            )


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


@contextmanager
def stop_on_signals(
    controller: Controller, signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[None]:
    """While inside, the first of *signals* asks *controller* to stop; a second one
    gets the handler that was there before (SIGINT: ``KeyboardInterrupt``; SIGTERM:
    the default, which ends the process at once).

    The handler sets the stop event from a new thread: setting it right in the
    handler could deadlock when the signal lands while the main thread holds
    that event's internal lock.
    """
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handle(signum: int, frame: object) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        name = signal.Signals(signum).name
        threading.Thread(target=controller.stop, args=(name,), daemon=True).start()

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = [
    "Controller",
    "CycleEnd",
    "Events",
    "Fanout",
    "Health",
    "WatchConfig",
    "WatchStart",
    "WatchStop",
    "stop_on_signals",
]
