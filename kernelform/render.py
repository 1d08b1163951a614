"""Renderers: plans, apply progress and reports as lines for people, or JSON.

Human output is Terraform-like: one block per change under a symbol, then a
summary line. Lines are returned as styled segments, not strings, so that this
module stays free of terminal concerns: the CLI decides whether to colour them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from kernelform.executor import Outcome, Report
from kernelform.plan import Action, Change, Plan, Skip, StateUpdate, UpdateKind


class Style(str, Enum):
    GREEN = "green"
    RED = "red"
    YELLOW = "yellow"
    CYAN = "cyan"
    MAGENTA = "magenta"
    BOLD = "bold"
    DIM = "dim"


@dataclass(frozen=True)
class Segment:
    text: str
    style: Style | None = None


Line = tuple[Segment, ...]

SYMBOLS: dict[Action, tuple[str, Style]] = {
    Action.START: ("+", Style.GREEN),
    Action.SHUTDOWN: ("-", Style.RED),
    Action.RESTART: ("~", Style.YELLOW),
    Action.REPLACE: ("-/+", Style.MAGENTA),
    Action.INTERRUPT: ("!", Style.CYAN),
    Action.SERVER_START: ("^", Style.GREEN),
}

VERBS: dict[Action, str] = {
    Action.START: "started",
    Action.SHUTDOWN: "shut down",
    Action.RESTART: "restarted",
    Action.REPLACE: "replaced",
    Action.INTERRUPT: "interrupted",
    Action.SERVER_START: "started",
}

SUMMARY_WORDS: dict[Action, str] = {
    Action.START: "to start",
    Action.RESTART: "to restart",
    Action.REPLACE: "to replace",
    Action.SHUTDOWN: "to shut down",
    Action.INTERRUPT: "to interrupt",
    Action.SERVER_START: "user server(s) to start",
}

KERNEL_ACTIONS = tuple(a for a in Action if a is not Action.SERVER_START)
"""Always in the summary; a server start only when a plan has one (the legend names only
the actions a plan uses)."""


def line(*parts: str | Segment) -> Line:
    return tuple(p if isinstance(p, Segment) else Segment(p) for p in parts)


def render_plan(plan: Plan) -> list[Line]:
    """The plan for people: updates, one block per change, and a summary."""
    lines: list[Line] = []
    for update in plan.updates:
        lines.append(_update_line(update))
    lines.extend(line(Segment(f"# {text}", Style.DIM)) for text in skip_lines(plan.skipped))
    if not plan.has_changes:
        if lines:
            lines.append(line())
        lines.append(line(Segment("No changes.", Style.BOLD), " The kernels match the manifest."))
        return lines
    if lines:
        lines.append(line())
    lines.append(line("kernelform will perform the following actions:"))
    used = {change.action for change in plan.changes}
    legend = [f"{SYMBOLS[a][0]} {a.value}" for a in Action if a in used]
    lines.append(line(Segment("  (" + ", ".join(legend) + ")", Style.DIM)))
    for change in plan.changes:
        lines.append(line())
        lines.extend(_change_block(change))
    lines.append(line())
    lines.append(summary_line(plan))
    return lines


def summary_actions(plan: Plan) -> tuple[Action, ...]:
    """The actions a plan's legend and summary name: a server start only when it has one."""
    if any(c.action is Action.SERVER_START for c in plan.changes):
        return (*KERNEL_ACTIONS, Action.SERVER_START)
    return KERNEL_ACTIONS


def summary_words(plan: Plan, counts: dict[str, int]) -> str:
    """``"1 to start, 0 to restart, ..."``: the summary's counts, in every rendering."""
    return ", ".join(f"{counts[a.value]} {SUMMARY_WORDS[a]}" for a in summary_actions(plan))


def skip_lines(skipped: tuple[Skip, ...]) -> list[str]:
    """One line per hub and reason (a big fleet may have many stopped servers)."""
    by_reason: dict[tuple[str, str], list[str]] = {}
    for skip in skipped:
        reason = skip.reason.removeprefix(f"{skip.user}'s ").removeprefix(f"user {skip.user} ")
        by_reason.setdefault((skip.hub, reason), []).append(skip.user)
    return [
        f"hub {hub}: skipped the server(s) of {', '.join(users)}: {reason}"
        for (hub, reason), users in by_reason.items()
    ]


def _update_line(update: StateUpdate) -> Line:
    if update.kind is UpdateKind.MOVE:
        return line(Segment(f"# {update.address} has moved to {update.new_address}", Style.DIM))
    if update.kind is UpdateKind.CONFIRM:
        return line(Segment(f"# {update.address}: {update.detail}; recorded", Style.DIM))
    return line(Segment(f"# {update.address}: {update.detail}; forgotten", Style.DIM))


def _change_block(change: Change) -> list[Line]:
    symbol, style = SYMBOLS[change.action]
    if change.recipe is None:  # a server start
        return [
            line(
                Segment(f"  # server {change.address} will be started", Style.BOLD),
                Segment(f": {change.reason}", Style.DIM),
            ),
            line(Segment(f"  {symbol:>3} ", style), Segment(change.address, Style.BOLD)),
        ]
    title = f"  # {change.address} will be {VERBS[change.action]}"
    if change.blocked and not _forceable(change):
        title = f"  # {change.address} is BLOCKED (needs your decision)"
    elif change.blocked:
        title = (
            f"  # {change.address} is BLOCKED (would be {VERBS[change.action]}; --force to include)"
        )
    block = [
        line(Segment(title, Style.BOLD), Segment(f": {change.reason}", Style.DIM)),
        line(Segment(f"  {symbol:>3} ", style), Segment(change.address, Style.BOLD)),
    ]
    fields: list[tuple[str, str | None]] = [
        (
            "server",
            change.server if not change.old_server else f"{change.old_server} → {change.server}",
        ),
        ("kernel", change.kernel_id),
        *change.recipe.to_dict().items(),
    ]
    for name, value in fields:
        if value is not None:
            block.append(line(f"        {name + ':':<10}{value}"))
    if change.sessions:
        block.append(line(Segment(f"        in use by {', '.join(change.sessions)}", Style.YELLOW)))
    elif change.blocked and _forceable(change):
        block.append(line(Segment("        in use by a connected client", Style.YELLOW)))
    return block


def summary_line(plan: Plan) -> Line:
    counts = plan.summary()
    words = summary_words(plan, counts)
    parts: list[str | Segment] = [Segment("Plan:", Style.BOLD), f" {words}."]
    if counts["blocked"]:
        undecided = any(not _forceable(c) for c in plan.blocked)
        why = "see above" if undecided else "in use; --force to include"
        parts.append(Segment(f" {counts['blocked']} blocked ({why}).", Style.YELLOW))
    return line(*parts)


def outcome_line(outcome: Outcome) -> Line:
    change = outcome.change
    symbol, style = SYMBOLS[change.action]
    head = (Segment(f"{symbol:>3} ", style), Segment(change.address, Style.BOLD))
    if outcome.ok and change.action is Action.SERVER_START:
        return (*head, Segment(f": server started in {outcome.seconds:.1f}s"))
    if outcome.ok:
        done = f": {VERBS[change.action]} kernel {outcome.kernel_id}"
        if change.action is Action.REPLACE and change.kernel_id is not None:
            done = f": replaced kernel {change.kernel_id} → {outcome.kernel_id}"
        if outcome.ready_seconds is not None:  # seconds from the request until it answered
            return (*head, Segment(f"{done}, ready in {outcome.seconds:.1f}s"))
        return (*head, Segment(f"{done} in {outcome.seconds:.1f}s"))
    return (*head, Segment(f": {change.action.value} FAILED: {outcome.error}", Style.RED))


def report_counts(report: Report) -> tuple[str, str]:
    """How an apply ended ("complete!") and what it did ("2 started; 0 failed; 0 blocked"),
    for every rendering of its report."""
    done: dict[Action, int] = {a: 0 for a in Action}
    for outcome in report.succeeded:
        done[outcome.change.action] += 1
    return tally_counts(
        done,
        failed=len(report.failed),
        blocked=len(report.blocked),
        skipped=len(report.skipped),
        interrupted=report.interrupted,
    )


def tally_counts(
    done: Mapping[Action, int], *, failed: int, blocked: int, skipped: int, interrupted: bool
) -> tuple[str, str]:
    """``report_counts`` from the counts alone: what the Action has, reading the JSON report."""
    words = (
        ", ".join(
            f"{n} {'server(s) ' if a is Action.SERVER_START else ''}{VERBS[a]}"
            for a, n in done.items()
            if n
        )
        or "nothing done"
    )
    ending = "complete!" if not failed else "finished with errors."
    counts = f"{words}; {failed} failed; {blocked} blocked"
    if interrupted or skipped:  # asked to stop: Ctrl-C, or a SIGTERM
        ending = "interrupted!" if interrupted else "stopped before the end."
        counts += f"; {skipped} not started"
    return ending, counts


def render_report(report: Report, *, destroy: bool = False) -> list[Line]:
    """The closing summary of an apply: what was done, what failed and why."""
    lines = [line()]
    style = Style.RED if report.failed or report.interrupted else Style.GREEN
    ending, counts = report_counts(report)
    lines.append(
        line(Segment(f"{'Destroy' if destroy else 'Apply'} {ending}", style), f" {counts}.")
    )
    for outcome in report.failed:
        lines.append(
            line(
                Segment(
                    f"  failed: {outcome.change.address} "
                    f"({outcome.change.action.value}): {outcome.error}",
                    Style.RED,
                )
            )
        )
    for change in report.skipped:
        lines.append(
            line(
                Segment(
                    f"  not started: {change.address} ({change.action.value}): {change.reason}",
                    Style.YELLOW,
                )
            )
        )
    for change in report.blocked:
        if not _forceable(change):
            lines.append(
                line(
                    Segment(
                        f"  blocked: {change.address} ({change.action.value}): {change.reason}",
                        Style.YELLOW,
                    )
                )
            )
            continue
        users = ", ".join(change.sessions) or "a connected client"
        lines.append(
            line(
                Segment(
                    f"  blocked: {change.address} ({change.action.value}) is in use by {users}; "
                    "rerun with --force to include it",
                    Style.YELLOW,
                )
            )
        )
    return lines


def _forceable(change: Change) -> bool:
    """Blocked because the kernel is in use (``--force`` lifts it), not for a decision.

    The planner also blocks the start (or forget) of a pending kernel that it
    cannot tell apart from other kernels; those carry no kernel id.
    """
    return change.kernel_id is not None
