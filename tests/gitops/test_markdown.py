"""The Markdown of plans and reports: what a pull request comment and a job summary show.

No server: plans are built as data. Values are user data, so the escaping is
checked with hostile ones (pipes, HTML, mentions, backticks, line breaks).
"""

from __future__ import annotations

import re

import pytest

from kernelform.executor import Outcome, Report
from kernelform.markdown import code, render_plan_markdown, render_report_markdown, text
from kernelform.plan import Action, Change, Plan, StateUpdate, UpdateKind
from kernelform.recipe import Recipe

RECIPE = Recipe(spec="python3", cwd=None, revision=None)


def change(address: str, action: Action, **kwargs: object) -> Change:
    values: dict[str, object] = {
        "server": "lab",
        "reason": "new",
        "recipe": RECIPE,
        "kernel_id": None if action is Action.START else "k-" + address,
    }
    values.update(kwargs)
    return Change(address=address, action=action, **values)  # type: ignore[arg-type]


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of the table rows, split the way GFM splits them (on unescaped |)."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            rows.append([c.strip() for c in cells])
    return rows[1:]  # without the header


@pytest.mark.parametrize(
    "value",
    ["a|b", "<script>alert(1)</script>", "**bold** _x_ [link](http://x)", "@octocat", "a\nb"],
)
def test_text_renders_as_itself(value: str) -> None:
    escaped = text(value)
    assert "\n" not in escaped
    assert "<" not in escaped and re.search(r"(?<!\\)\|", escaped) is None
    assert re.search(r"(?<![\\])[*_\[\]]", escaped) is None  # every marker is escaped
    assert re.search(r"@[A-Za-z]", escaped) is None  # no mention


def test_code_spans_and_their_fallback() -> None:
    assert code("etl[0]@ana") == "`etl[0]@ana`"
    assert code("a|b") == "`a\\|b`"
    assert code("has`tick") == text("has`tick")  # a code span cannot hold it simply
    assert code("back\\slash|pipe") == "back\\\\slash\\|pipe"
    assert code("") == "—"


def test_no_changes() -> None:
    markdown = render_plan_markdown(Plan(manifest_path="infra/kernelform.yaml"))
    assert markdown.startswith("### kernelform plan: `infra/kernelform.yaml`\n")
    assert "**No changes.** The kernels match the manifest." in markdown
    assert "|" not in markdown


def test_plan_table_blocked_and_updates() -> None:
    hostile = "nb/<b>x</b>|y @someone.ipynb"
    plan = Plan(
        changes=(
            change("etl[0]", Action.START),
            change("workers[1]", Action.RESTART, reason="revision 1 → 2"),
            change(
                "workers[0]",
                Action.RESTART,
                reason="revision 'a|b' → '*c*'",
                blocked=True,
                sessions=(hostile,),
            ),
            change("old", Action.REPLACE, reason="server a → b", old_server="a"),
        ),
        updates=(StateUpdate(UpdateKind.MOVE, "etl", "moved", new_address="etl[0]"),),
        manifest_path="kernelform.yaml",
    )
    markdown = render_plan_markdown(plan)
    assert (
        "**Plan:** 1 to start, 1 to restart, 1 to replace, 0 to shut down, 0 to interrupt. "
        "**1 blocked.**" in markdown
    )
    rows = table_rows(markdown)
    assert len(rows) == 4 and all(len(row) == 5 for row in rows), rows
    by_address = {row[0]: row for row in rows}
    blocked = by_address["`workers[0]`"]
    assert "**blocked**" in blocked[1]
    assert blocked[4] == "`nb/<b>x</b>\\|y @someone.ipynb`"  # a code span: nothing rendered
    assert "\\*c\\*" in blocked[3] and "a\\|b" in blocked[3]
    assert by_address["`old`"][2] == "`a` → `lab`"
    assert "> [!WARNING]" in markdown and "`--force` includes it" in markdown
    assert "- `etl` has moved to `etl[0]`" in markdown


def test_undecided_block_says_it_needs_a_decision() -> None:
    plan = Plan(changes=(change("x", Action.START, reason="3 candidates", blocked=True),))
    assert "`x` (start): 3 candidates; needs your decision" in render_plan_markdown(plan)


def test_report() -> None:
    started = change("a", Action.START)
    failed = change("b|c", Action.RESTART, reason="dead")
    blocked = change("d", Action.SHUTDOWN, blocked=True)
    plan = Plan(changes=(started, failed, blocked), manifest_path="m.yaml", destroy=False)
    report = Report(
        outcomes=(
            Outcome(started, ok=True, seconds=1.234, kernel_id="k1"),
            Outcome(failed, ok=False, seconds=0.5, error="HTTP 500: <html>"),
        ),
        blocked=(blocked,),
    )
    markdown = render_report_markdown(report, plan)
    assert markdown.startswith("### kernelform apply: `m.yaml`")
    assert "**Apply finished with errors.** 1 started; 1 failed; 1 blocked." in markdown
    rows = table_rows(markdown)
    assert [len(r) for r in rows] == [7, 7]
    assert rows[0][3] == "✅ started" and rows[0][4] == "`k1`" and rows[0][5] == "1.2"
    assert rows[1][0] == "`b\\|c`" and rows[1][3] == "❌ failed: HTTP 500\\: &lt;html&gt;"
    assert "`d` (shutdown) is in use by a connected client" in markdown


def test_report_nothing_to_do_and_destroy() -> None:
    plan = Plan(manifest_path="m.yaml", destroy=True)
    markdown = render_report_markdown(Report(outcomes=(), blocked=()), plan)
    assert markdown.startswith("### kernelform destroy: `m.yaml`")
    assert "**Nothing to do.**" in markdown
