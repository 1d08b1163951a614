"""The log of ``kernelform watch``: its events as lines for people, or as JSON objects.

Both are watch ``Events`` writing to a text stream, one line per event,
flushed at once (a watch runs under systemd or Kubernetes, which read its
output as it comes). Every timestamp is UTC, ISO 8601 with milliseconds and a
``Z``. Messages arrive redacted from the controller; both logs scrub each line
again with the run's redactor, so no secret the run knows of is ever written.

``TextLog`` keeps quiet while nothing happens: it writes each action as
``apply`` does, a cycle line only when the cycle did or found something new
(changes, a different set of blocked ones, the first cycle, a recovery), each
failure with its usual ``Error:`` lines, and the start and the stop.
``JsonLog`` writes every event; ``event`` says which:

``watch_started``  manifest, state, interval, pid, metrics (URL or null)
``cycle_started``  cycle
``action``         cycle, address, server, action, ok, kernel_id, seconds, ready_seconds, error
``cycle_finished`` cycle, seconds, changes, blocked, succeeded, failed, skipped, managed, next_in
``cycle_failed``   the same, with error, problems (file, line, col, message) and failures
``warning``        message
``shutdown``       reason (SIGTERM, SIGINT, ...), cycles
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, TextIO

from kernelform.controller import CycleEnd, Events, WatchStart, WatchStop
from kernelform.executor import Outcome
from kernelform.masking import Redactor
from kernelform.render import outcome_line


def timestamp(moment: datetime) -> str:
    """``2026-11-28T00:10:00.123Z``."""
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


class _Log(Events):
    def __init__(self, stream: TextIO, *, redactor: Redactor, metrics_url: str | None = None):
        self.stream = stream
        self.redactor = redactor
        self.metrics_url = metrics_url

    def write(self, line: str) -> None:
        self.stream.write(self.redactor.redact(line) + "\n")
        self.stream.flush()


class TextLog(_Log):
    """Lines for people, each starting with its UTC time."""

    def __init__(self, stream: TextIO, *, redactor: Redactor, metrics_url: str | None = None):
        super().__init__(stream, redactor=redactor, metrics_url=metrics_url)
        self._blocked: frozenset[str] | None = None  # the last cycle's blocked addresses
        self._failing = False

    def say(self, at: datetime, text: str) -> None:
        self.write(f"{timestamp(at)} {text}")

    def watch_started(self, start: WatchStart) -> None:
        metrics = f"; metrics on {self.metrics_url}metrics" if self.metrics_url else ""
        self.say(
            start.at,
            f"watching {start.manifest} every {seconds(start.interval)} "
            f"(state at {start.state}{metrics}; pid {start.pid})",
        )

    def action_finished(self, number: int, outcome: Outcome, at: datetime) -> None:
        """The apply's line, and why (a watch acts unasked: its log says what it healed)."""
        line = "".join(segment.text for segment in outcome_line(outcome))
        self.say(at, f"{line} ({outcome.change.reason})" if outcome.change.reason else line)

    def cycle_finished(self, end: CycleEnd) -> None:
        assert end.plan is not None and end.report is not None
        blocked = frozenset(c.address for c in end.plan.blocked)
        news = (
            bool(end.report.outcomes or end.report.skipped)
            or blocked != self._blocked
            or self._failing
        )
        if news:
            self.say(_ended(end), f"cycle {end.number}: {_summary(end)}")
        self._blocked = blocked
        self._failing = False

    def cycle_failed(self, end: CycleEnd) -> None:
        at = _ended(end)
        for line in (end.error or "failed").splitlines():
            self.say(at, f"Error: {line}")
        if end.plan is not None:
            self._blocked = frozenset(c.address for c in end.plan.blocked)
        done = "nothing was changed" if end.changed_nothing else _summary(end)
        in_a_row = f", {end.failures} in a row" if end.failures > 1 else ""
        self.say(
            at,
            f"cycle {end.number} failed ({done}{in_a_row}); next cycle in {seconds(end.next_in)}",
        )
        self._failing = True

    def warning(self, message: str, at: datetime) -> None:
        self.say(at, f"Warning: {message}")

    def watch_stopped(self, stop: WatchStop) -> None:
        self.say(stop.at, f"stopped ({stop.reason}) after {stop.cycles} cycle(s); the lock is free")


def _ended(end: CycleEnd) -> datetime:
    from datetime import timedelta

    return end.started_at + timedelta(seconds=end.seconds)


def _summary(end: CycleEnd) -> str:
    counts = end.counts()
    if not counts["changes"]:
        return f"in sync ({seconds(end.seconds)})"
    parts = [f"{counts['changes']} change(s)", f"{counts['succeeded']} done"]
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped (stopping)")
    if counts["blocked"]:
        addresses = ", ".join(c.address for c in end.plan.blocked) if end.plan else ""
        parts.append(f"{counts['blocked']} blocked, in use ({addresses}); a watch never forces")
    return ", ".join(parts) + f" ({seconds(end.seconds)})"


class JsonLog(_Log):
    """One JSON object per line and event."""

    def emit(self, event: str, at: datetime, **fields: Any) -> None:
        self.write(json.dumps({"time": timestamp(at), "event": event, **fields}))

    def watch_started(self, start: WatchStart) -> None:
        self.emit(
            "watch_started",
            start.at,
            manifest=str(start.manifest),
            state=start.state,
            interval=start.interval,
            pid=start.pid,
            metrics=f"{self.metrics_url}metrics" if self.metrics_url else None,
        )

    def cycle_started(self, number: int, at: datetime) -> None:
        self.emit("cycle_started", at, cycle=number)

    def action_finished(self, number: int, outcome: Outcome, at: datetime) -> None:
        self.emit("action", at, cycle=number, **outcome.to_dict())

    def cycle_finished(self, end: CycleEnd) -> None:
        self.emit("cycle_finished", _ended(end), **_cycle_fields(end))

    def cycle_failed(self, end: CycleEnd) -> None:
        self.emit(
            "cycle_failed",
            _ended(end),
            **_cycle_fields(end),
            error=end.error,
            problems=[
                {"file": p.file, "line": p.line, "col": p.col, "message": p.message}
                for p in end.problems
            ],
            failures=end.failures,
        )

    def warning(self, message: str, at: datetime) -> None:
        self.emit("warning", at, message=message)

    def watch_stopped(self, stop: WatchStop) -> None:
        self.emit("shutdown", stop.at, reason=stop.reason, cycles=stop.cycles)


def _cycle_fields(end: CycleEnd) -> dict[str, Any]:
    return {
        "cycle": end.number,
        "seconds": round(end.seconds, 3),
        **end.counts(),
        "managed": dict(end.managed) if end.managed is not None else None,
        "next_in": end.next_in,
    }
