"""The import graph: no cycle in kernelform, and a planner that imports no I/O.

The graph is read from the source (``ast`` over ``kernelform/**/*.py``), not from
what one run happened to import: an import inside a function counts as much as one
at the top of a module (it runs as soon as the function does), while an
``if TYPE_CHECKING:`` block does not (it never runs). ``import a.b.c`` (or ``from
a.b.c import x``) also runs the packages ``a`` and ``a.b``, so those are edges too,
except a module's own packages: they are always initialised before the module,
and a package whose ``__init__`` imports its modules is no cycle.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kernelform"

# Third-party packages that do I/O (HTTP, websockets, PostgreSQL) or drive the
# command line: the planner, a pure function, reaches none of them.
NOT_FOR_THE_PLANNER = frozenset({"requests", "urllib3", "websockets", "psycopg", "click"})

# Edges the graph may hold for now, each until what its comment says is done. An entry that
# no longer matches an edge fails the test: drop it then.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()

Graph = Mapping[str, frozenset[str]]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def packages_of(name: str) -> list[str]:
    """``a.b.c`` → ``a``, ``a.b``: the packages importing *name* runs first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(tree: ast.AST, *, name: str, is_package: bool) -> Iterator[str]:
    """Every module name an import statement in *tree* names, at any depth (functions
    included), except in ``if TYPE_CHECKING:`` blocks; for ``from M import x``, both
    ``M`` and ``M.x`` (which may be a module)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        todo.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, frozenset[str]]:
    """Each kernelform module → the kernelform modules it runs and the top-level names
    of the other packages it imports."""
    paths = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    graph: dict[str, frozenset[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own = {name, *packages_of(name)}
        edges: set[str] = set()
        for target in imported(tree, name=name, is_package=path.name == "__init__.py"):
            if target.partition(".")[0] != "kernelform":
                edges.add(target.partition(".")[0])
                continue
            edges.update(m for m in [*packages_of(target), target] if m in paths)
        graph[name] = frozenset(edges - own)
    return graph


def without_exceptions(graph: Graph) -> dict[str, frozenset[str]]:
    return {
        name: frozenset(t for t in targets if (name, t) not in KNOWN_EXCEPTIONS)
        for name, targets in graph.items()
    }


def reach(graph: Graph, start: str) -> set[str]:
    """What importing *start* may run: its packages, then everything they import."""
    seen: set[str] = set()
    todo = [start, *packages_of(start)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


def path_to(graph: Graph, start: str, goal: str) -> list[str]:
    """One chain of imports from *start* to *goal* (for a failure's message)."""
    came: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        name = todo.pop(0)
        for target in sorted(graph.get(name, ())):
            if target not in came:
                came[target] = name
                todo.append(target)
    chain: list[str] = []
    step: str | None = goal
    while step is not None:
        chain.append(step)
        step = came.get(step)
    return chain[::-1]


def test_the_reader_sees_every_import_that_runs() -> None:
    source = """
import a.b
from c import d
from . import sibling
from .inner import thing
if TYPE_CHECKING:
    import only_for_mypy
else:
    import e
def later():
    from f.g import h
"""
    found = set(imported(ast.parse(source), name="kernelform.pkg", is_package=True))
    assert found == {
        "a.b",
        "c",
        "c.d",
        "kernelform.pkg",
        "kernelform.pkg.sibling",
        "kernelform.pkg.inner",
        "kernelform.pkg.inner.thing",
        "e",
        "f.g",
        "f.g.h",
    }
    graph = import_graph()
    assert "kernelform.channels" in graph["kernelform.client"]  # inside a method
    assert "kernelform.manifest" in graph["kernelform.planner"]  # a package's __init__
    assert "kernelform.cli.kernels" in graph["kernelform.cli"]  # from PACKAGE import module
    assert "kernelform.cli" not in graph["kernelform.cli.options"]  # its own package
    assert "websockets" in graph["kernelform.channels"] and "requests" in graph["kernelform.client"]


def test_no_import_cycle() -> None:
    graph = import_graph()
    try:
        tuple(graphlib.TopologicalSorter(without_exceptions(graph)).static_order())
    except graphlib.CycleError as e:
        cycle = e.args[1]
        raise AssertionError("import cycle: " + " -> ".join(reversed(cycle))) from None


def test_known_exceptions_are_still_edges() -> None:
    graph = import_graph()
    stale = sorted(edge for edge in KNOWN_EXCEPTIONS if edge[1] not in graph.get(edge[0], ()))
    assert not stale, f"no longer imported: drop {stale} from KNOWN_EXCEPTIONS"


def test_the_planner_reaches_no_io() -> None:
    graph = without_exceptions(import_graph())
    reached = reach(graph, "kernelform.planner")
    for forbidden in sorted(NOT_FOR_THE_PLANNER & reached):
        chain = path_to(graph, "kernelform.planner", forbidden)
        raise AssertionError(f"the planner reaches {forbidden}: " + " -> ".join(chain))
    # The data it plans from is among what it reaches; the code that fetches it is not.
    assert {"kernelform.live", "kernelform.membership"} <= reached
    fetchers = reached & {"kernelform.facts", "kernelform.fleet", "kernelform.hub"}
    assert not fetchers, f"the planner imports code that reads servers: {sorted(fetchers)}"


def test_importing_the_planner_loads_no_io() -> None:
    """What one real import loads, third-party imports included (the graph above only
    sees kernelform's own import statements)."""
    names = ", ".join(repr(n) for n in sorted(NOT_FOR_THE_PLANNER))
    code = (
        "import sys, kernelform.planner\n"
        f"print(sorted({{m.partition('.')[0] for m in sys.modules}} & {{{names}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
