"""The corpus of broken manifests, for any test that wants to iterate it.

Each ``broken/NAME.yaml`` (the bytes of a manifest; some are deliberately not
text) has a ``broken/NAME.expect`` of one line, ``LINE:COL MESSAGE``: the
1-based position of the *first* problem reported (problems are sorted by
position) and a substring of its message. No case depends on the environment:
the variables they use are all named ``KFTEST_UNDEFINED_*``, which must not be
set. From any test module (``tests`` is a package)::

    from tests.manifest.manifests import broken_cases

    @pytest.mark.parametrize("case", broken_cases(), ids=lambda c: c.name)
    def test_something(case): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BROKEN_DIR = Path(__file__).parent / "broken"


@dataclass(frozen=True)
class BrokenCase:
    name: str
    path: Path
    line: int
    col: int
    message: str  # a substring of the first problem's message


def broken_cases() -> list[BrokenCase]:
    """Every case of ``broken/``, sorted by name; fails loudly on a malformed expect file."""
    cases = []
    for expect in sorted(BROKEN_DIR.glob("*.expect")):
        position, _, message = expect.read_text(encoding="utf-8").rstrip("\n").partition(" ")
        line, _, col = position.partition(":")
        path = expect.with_suffix(".yaml")
        if not (path.is_file() and line.isdigit() and col.isdigit() and message):
            raise ValueError(f"{expect}: expected 'LINE:COL MESSAGE' and a {path.name}")
        cases.append(BrokenCase(expect.stem, path, int(line), int(col), message))
    return cases
