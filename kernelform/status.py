"""``kernelform status``: what is declared, owned and running, one row per kernel.

The live view ``kubectl get`` and ``terraform show`` give, built from the reads a
plan makes and nothing more: the state, and per server its kernels, sessions and
kernelspecs (one request each, whatever the number of kernels). The plan is
computed from them as ``plan`` would, then joined back with the facts, so that
each row says what the next plan would do with that kernel ("drift"), or "ok".
Health probes are left out (they cost a request per kernel): a kernel that
would fail its probe shows as ok here.

It takes no lock: it only reads, and a store's read is a consistent snapshot
(the file backend renames whole files and appends whole journal lines), so a
status never waits for an apply, never holds one up, and shows its progress.

Rows, in this order: every declared address (on a hub, for every selected
user); every recorded address that is no longer declared (including a
replace's ``~deposed`` kernel); every live kernel a server with ``prune: true``
would shut down. A row on a hub user's server the plan skips (not running)
says so instead of "gone" or "not started". Building them is pure; this module
does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kernelform.duration import format_duration
from kernelform.live import LiveServer
from kernelform.manifest import Desired
from kernelform.models import Kernel, aware
from kernelform.plan import Change, Plan, StateUpdate, UpdateKind
from kernelform.planner import is_placeholder
from kernelform.render import Line, Segment, Style, line
from kernelform.state import Resource, State, format_time

FORMAT_VERSION = "1"


NOT_STARTED = "not started"  # declared, never recorded
GONE = "gone"  # recorded, not on its server
PENDING = "pending"  # a start recorded before its request, kernel not seen (yet)
SKIPPED = "skipped"  # on a hub user's server that is not running: not looked at


@dataclass(frozen=True)
class Drift:
    """What the next plan would do: a server action, or a state-only update (``record``)."""

    action: str
    reason: str
    blocked: bool = False

    def __str__(self) -> str:
        if self.blocked:
            return f"{self.action} BLOCKED: {self.reason}"
        return f"{self.action}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "blocked": self.blocked}


@dataclass(frozen=True)
class StatusRow:
    """One kernel: as declared, as recorded, as its server reports it, and its drift.

    ``state`` is the live ``execution_state`` or, without a live kernel, one of
    ``not started``, ``gone``, ``pending`` and ``skipped`` (its server is not
    running; ``skipped`` says why). ``drift`` is None when the kernel is as
    declared, or skipped.
    """

    address: str
    server: str
    kernel_id: str | None
    spec: str
    state: str
    connections: int | None
    in_use_by: tuple[str, ...]
    started_at: datetime | None
    last_activity: datetime | None
    drift: Drift | None
    managed: bool
    pending: bool = False
    tainted: str | None = None
    skipped: str | None = None

    def to_dict(self, now: datetime) -> dict[str, Any]:
        age = None if self.started_at is None else (now - self.started_at).total_seconds()
        return {
            "address": self.address,
            "server": self.server,
            "kernel_id": self.kernel_id,
            "spec": self.spec,
            "state": self.state,
            "connections": self.connections,
            "in_use_by": list(self.in_use_by),
            "started_at": None if self.started_at is None else format_time(self.started_at),
            "age_seconds": None if age is None else round(age, 3),
            "last_activity": (
                None if self.last_activity is None else format_time(aware(self.last_activity))
            ),
            "drift": None if self.drift is None else self.drift.to_dict(),
            "managed": self.managed,
            "pending": self.pending,
            "tainted": self.tainted,
            "skipped": self.skipped,
        }


def status_rows(
    declared: Sequence[Desired], state: State, live: Mapping[str, LiveServer], plan: Plan
) -> list[StatusRow]:
    """The rows for *plan*, computed from the *declared* addresses (a hub's for the users
    it selects), *state* and *live* (see the module)."""
    skipped = {s.server: s.reason for s in plan.skipped}
    changes = {c.address: c for c in plan.changes}
    updates: dict[str, StateUpdate] = {}
    for each in plan.updates:
        updates[each.new_address or each.address] = each
    rows: list[StatusRow] = []
    claimed: set[str] = set()
    for item in declared:
        update = updates.get(item.address)
        resource = state.resources.get(item.address)
        if resource is None and update is not None and update.kind is UpdateKind.MOVE:
            resource = state.resources.get(update.address)
        if resource is not None:
            claimed.add(resource.address)
        change = changes.get(item.address)
        rows.append(
            _row(
                item.address,
                server=resource.server if resource is not None else item.server,
                spec=item.recipe.spec,
                resource=resource,
                change=change,
                update=update,
                live=live,
                skipped=skipped,
            )
        )
    for address, resource in state.resources.items():
        if address in claimed:
            continue
        rows.append(
            _row(
                address,
                server=resource.server,
                spec=resource.recipe.spec,
                resource=resource,
                change=changes.get(address),
                update=updates.get(address),
                live=live,
                skipped=skipped,
            )
        )
    for change in plan.changes:
        if change.managed:
            continue
        rows.append(
            _row(
                change.address,
                server=change.server,
                spec=change.kernel_recipe.spec,
                resource=None,
                change=change,
                update=None,
                live=live,
                managed=False,
            )
        )
    return rows


def _row(
    address: str,
    *,
    server: str,
    spec: str,
    resource: Resource | None,
    change: Change | None,
    update: StateUpdate | None,
    live: Mapping[str, LiveServer],
    managed: bool = True,
    skipped: Mapping[str, str] | None = None,
) -> StatusRow:
    kernel_id = resource.kernel_id if resource is not None else None
    if update is not None and update.kernel_id is not None:
        kernel_id = update.kernel_id  # a pending start found by spec and time
    if not managed and change is not None:
        kernel_id = change.kernel_id
    facts = live.get(server)
    kernel: Kernel | None = None
    if facts is not None and kernel_id is not None:
        kernel = facts.kernels.get(kernel_id)
    why_skipped = (skipped or {}).get(server)
    if kernel is not None:
        presence = kernel.execution_state
    elif why_skipped is not None:
        presence = SKIPPED
    elif resource is None:
        presence = NOT_STARTED
    elif resource.pending:
        presence = PENDING
    else:
        presence = GONE
    drift = None
    if change is not None:
        drift = Drift(change.action.value, change.reason, change.blocked)
    elif update is not None:
        drift = Drift("record", update.detail)
    shown_id = kernel_id if kernel_id is not None and not is_placeholder(kernel_id) else None
    return StatusRow(
        address=address,
        server=server,
        kernel_id=shown_id,
        spec=spec if kernel is None else kernel.name or spec,
        state=presence,
        connections=None if kernel is None else kernel.connections,
        in_use_by=() if facts is None or kernel is None else facts.sessions_of(kernel.id),
        started_at=None if resource is None else resource.started_at,
        last_activity=None if kernel is None else kernel.last_activity,
        drift=drift,
        managed=managed,
        pending=resource is not None and resource.pending,
        tainted=None if resource is None else resource.tainted,
        skipped=why_skipped,
    )


def status_document(rows: list[StatusRow], *, now: datetime, plan: Plan) -> dict[str, Any]:
    """``status --json``: the rows, when they were read, counts, and the skipped servers."""
    ok, drifting, skipped = _tally(rows)
    return {
        "format_version": FORMAT_VERSION,
        "read_at": format_time(now),
        "kernels": [r.to_dict(now) for r in rows],
        "skipped_servers": [s.to_dict() for s in plan.skipped],
        "summary": {
            "kernels": len(rows),
            "ok": ok,
            "drift": drifting,
            "skipped": skipped,
        },
    }


HEADERS = ("ADDRESS", "SERVER", "KERNEL", "SPEC", "STATE", "CONN", "IN USE BY", "AGE", "ACTIVE")


def render_status(rows: list[StatusRow], *, now: datetime) -> list[Line]:
    """A table for people: kernel ids cut to 8 characters (``--json`` has them whole), in
    the addresses of unmanaged kernels too."""
    if not rows:
        return [line("No kernel is declared, managed or prunable.")]
    cells = [
        (
            r.address if r.managed else f"{r.server}/{(r.kernel_id or '')[:8]}…",
            r.server,
            (r.kernel_id or "-")[:8],
            r.spec,
            r.state,
            "-" if r.connections is None else str(r.connections),
            ", ".join(r.in_use_by) or "-",
            "-" if r.started_at is None else _short(now - r.started_at),
            "-" if r.last_activity is None else _short(now - aware(r.last_activity)) + " ago",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADERS)]
    lines = [
        line(
            Segment(
                "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)) + "  DRIFT",
                Style.BOLD,
            )
        )
    ]
    for row, values in zip(rows, cells, strict=True):
        text = "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + "  "
        if row.skipped is not None:
            lines.append(line(text, Segment(f"skipped: {row.skipped}", Style.DIM)))
        elif row.drift is None:
            lines.append(line(text, Segment("ok", Style.GREEN)))
        else:
            style = Style.RED if row.drift.blocked else Style.YELLOW
            lines.append(line(text, Segment(str(row.drift), style)))
    ok, drifting, skipped = _tally(rows)
    counts = f" {len(rows)} kernel(s), {ok} ok, {drifting} with drift"
    if skipped:
        counts += f", {skipped} on servers not running"
    lines.append(line())
    lines.append(
        line(
            Segment("Status:", Style.BOLD),
            counts + (" (run 'kernelform plan' for details)." if drifting else "."),
        )
    )
    return lines


def _short(td: timedelta) -> str:
    """A duration in its two largest units: ``2d3h``, ``1h30m``, ``45s``."""
    if td < timedelta(0):
        td = timedelta(0)
    return "".join(re.findall(r"\d+[a-z]", format_duration(td))[:2])


def _tally(rows: list[StatusRow]) -> tuple[int, int, int]:
    """(ok, with drift, skipped): every row is one of the three."""
    drifting = sum(1 for r in rows if r.drift is not None)
    skipped = sum(1 for r in rows if r.skipped is not None)
    return len(rows) - drifting - skipped, drifting, skipped
