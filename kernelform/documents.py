"""What an apply or a destroy did, as one JSON document for machines.

``apply --json`` and ``destroy --json`` print it, and the GitHub Action keeps it
as a file: a CI job reads which address got which kernel, what failed and why,
and what stayed blocked, without parsing the lines meant for people. Its
``format_version`` is the plan's: both change together.
"""

from __future__ import annotations

from typing import Any

from kernelform.executor import Report
from kernelform.plan import FORMAT_VERSION, Action, Plan


def report_document(report: Report, plan: Plan) -> dict[str, Any]:
    """The apply (or destroy) *report* of *plan*, as plain JSON-able data.

    ``summary`` counts what succeeded per action (the plan's ``summary`` keys),
    then what failed, what stayed blocked, and what was never started (a stop
    asked for: Ctrl-C, a SIGTERM, a state write that failed).
    """
    summary: dict[str, int] = {action.value: 0 for action in Action}
    for outcome in report.succeeded:
        summary[outcome.change.action.value] += 1
    summary["succeeded"] = len(report.succeeded)
    summary["failed"] = len(report.failed)
    summary["blocked"] = len(report.blocked)
    summary["skipped"] = len(report.skipped)
    return {
        "format_version": FORMAT_VERSION,
        "destroy": plan.destroy,
        "manifest": {"path": plan.manifest_path, "digest": plan.manifest_digest},
        "actions": [outcome.to_dict() for outcome in report.outcomes],
        "blocked": [change.to_dict() for change in report.blocked],
        "state_updates": [update.to_dict() for update in plan.updates],
        "summary": summary,
    }
