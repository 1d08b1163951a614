"""Plans and apply reports as GitHub-flavoured Markdown: job summaries, PR comments.

Why a renderer of its own: a pull request comment or a job summary is read in a
browser, where a table of changes says more than the terminal's blocks, and
where every value is *rendered*. Addresses, server names, paths, reasons and
notebook names are user data: a ``|`` would break the table, ``<b>`` would be
HTML, ``*`` emphasis, and ``@name`` would notify somebody. Values therefore go
through ``code`` (an inline code span, where nothing is interpreted) or
``text`` (escaped text), never straight into the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kernelform.executor import Outcome, Report
from kernelform.plan import Action, Change, Plan, StateUpdate, UpdateKind
from kernelform.render import (
    SYMBOLS,
    VERBS,
    report_counts,
    skip_lines,
    summary_words,
)

# Characters with a meaning in Markdown text (CommonMark lets any ASCII
# punctuation be backslash-escaped); '<', '>' and '&' become entities instead.
_ESCAPED = re.compile(r"([\\`*_{}\[\]()#+!|~:-])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BREAKS = re.compile(r"[\r\n\u2028\u2029\x85]+")
# A zero-width joiner after '@': GitHub turns "@name" in text into a mention.
_MENTION = "@\u2060"

# The terminal's symbols (+, ~, -/+, -, !), as code so that Markdown leaves them alone.
ICONS: dict[Action, str] = {action: f"`{symbol}`" for action, (symbol, _) in SYMBOLS.items()}
BLOCKED_ICON = "⛔"


def text(value: object) -> str:
    """*value* as Markdown text that renders as exactly itself, on one line."""
    flat = _BREAKS.sub(" ", str(value))
    escaped = _ESCAPED.sub(r"\\\1", flat)
    escaped = "".join(_ENTITIES.get(c, c) for c in escaped)
    return escaped.replace("@", _MENTION)


def code(value: object) -> str:
    """*value* as an inline code span (safe inside a table cell), or escaped text
    when a code span cannot hold it (a backtick, a backslash or a line break)."""
    raw = str(value)
    if not raw or any(c in raw for c in "`\\\r\n\u2028\u2029\x85") or raw.strip() != raw:
        return text(raw) if raw else "—"
    return "`" + raw.replace("|", "\\|") + "`"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _users(change: Change) -> str:
    if change.sessions:
        return ", ".join(code(s) for s in change.sessions)
    if change.blocked and change.kernel_id is not None:
        return "a connected client"
    return ""


def _heading(command: str, where: str) -> str:
    return f"### kernelform {command}: {code(where)}" if where else f"### kernelform {command}"


def _update_line(update: StateUpdate) -> str:
    if update.kind is UpdateKind.MOVE:
        return f"- {code(update.address)} has moved to {code(update.new_address or '')}"
    done = "recorded" if update.kind is UpdateKind.CONFIRM else "forgotten"
    return f"- {code(update.address)}: {text(update.detail)}; {done}"


def _blocked_note(blocked: Iterable[Change], *, force_word: str) -> list[str]:
    """A GitHub alert listing the blocked changes and what lifts each block."""
    items = []
    for change in blocked:
        head = f"{code(change.address)} ({change.action.value})"
        if change.kernel_id is None:  # a decision, not a kernel in use: --force cannot lift it
            items.append(f"> - {head}: {text(change.reason)}; needs your decision")
        else:
            items.append(f"> - {head} is in use by {_users(change)}; {force_word}")
    if not items:
        return []
    return ["", "> [!WARNING]", f"> {len(items)} change(s) blocked:", *items]


def _action_cell(change: Change) -> str:
    cell = f"{ICONS[change.action]} {change.action.value}"
    return f"{BLOCKED_ICON} {change.action.value} (**blocked**)" if change.blocked else cell


def _server_cell(change: Change) -> str:
    if change.old_server:
        return f"{code(change.old_server)} → {code(change.server)}"
    return code(change.server)


def render_plan_markdown(plan: Plan, *, where: str | None = None) -> str:
    """The plan as Markdown: heading, summary line, a table of changes, blocked ones
    called out. *where* names the manifest in the heading (default: the plan's)."""
    command = "destroy plan" if plan.destroy else "plan"
    lines = [_heading(command, plan.manifest_path if where is None else where), ""]
    if not plan.has_changes:
        lines.append("**No changes.** The kernels match the manifest.")
    else:
        counts = plan.summary()
        summary = f"**Plan:** {summary_words(plan, counts)}."
        if counts["blocked"]:
            summary += f" **{counts['blocked']} blocked.**"
        lines += [summary, ""]
        rows = [
            [
                code(c.address),
                _action_cell(c),
                _server_cell(c),
                text(c.reason),
                _users(c),
            ]
            for c in plan.changes
        ]
        lines += _table(["address", "action", "server", "reason", "in use by"], rows)
        lines += _blocked_note(plan.blocked, force_word="`--force` includes it")
    if plan.updates:
        lines += ["", "State updates (kernelform's records only):", ""]
        lines += [_update_line(u) for u in plan.updates]
    if plan.skipped:
        lines += ["", "Skipped (a hub user's server is not running):", ""]
        lines += [f"- {text(skipped)}" for skipped in skip_lines(plan.skipped)]
    return "\n".join(lines) + "\n"


def _result_cell(outcome: Outcome) -> str:
    if outcome.ok:
        return f"✅ {VERBS[outcome.change.action]}"
    return f"❌ failed: {text(outcome.error or 'unknown error')}"


def render_report_markdown(report: Report, plan: Plan, *, where: str | None = None) -> str:
    """What an apply (or destroy) did, as Markdown: a summary line, one row per
    action with its result, and what stayed blocked."""
    command = "destroy" if plan.destroy else "apply"
    lines = [_heading(command, plan.manifest_path if where is None else where), ""]
    if not report.outcomes and not report.blocked:
        lines.append("**Nothing to do.** The kernels match the manifest.")
    else:
        ending, counts = report_counts(report)
        lines.append(f"**{command.capitalize()} {ending}** {counts}.")
        if report.outcomes:
            rows = [
                [
                    code(o.change.address),
                    f"{ICONS[o.change.action]} {o.change.action.value}",
                    code(o.change.server),
                    _result_cell(o),
                    code(o.kernel_id) if o.kernel_id else "—",
                    f"{o.seconds:.1f}",
                    text(o.change.reason),
                ]
                for o in report.outcomes
            ]
            lines += [""]
            lines += _table(
                ["address", "action", "server", "result", "kernel", "seconds", "reason"], rows
            )
        lines += _blocked_note(report.blocked, force_word="rerun with `--force` to include it")
    if plan.updates:
        lines += ["", "State updates (kernelform's records only):", ""]
        lines += [_update_line(u) for u in plan.updates]
    return "\n".join(lines) + "\n"


def summary_text(plan: Plan) -> str:
    """The plan's summary as one plain line (for an Action's ``summary`` output)."""
    if not plan.has_changes:
        return "No changes."
    counts = plan.summary()
    words = summary_words(plan, counts)
    blocked = f" {counts['blocked']} blocked." if counts["blocked"] else ""
    return f"Plan: {words}.{blocked}"
