"""Fixtures of the compatibility matrix: one real server of each generation.

Why: kernelform claims Notebook 6 and 7, JupyterLab 3 and 4 (jupyter_server 1.x
and 2.x), servers under a ``base_url`` and the Kernel Gateway; the rest of the
suite runs against one jupyter_server. These fixtures start each generation in
turn (``generations.GENERATIONS``), old ones from their cached venvs
(``venvs.py``), the same way ``tests.support.live_jupyter.launch`` starts the suite's
own server, and hand tests the same ``JupyterServer`` object.

Fixtures
--------
``generation`` (module, parametrised over ``GENERATIONS``)
    The ``Generation`` under test: how it was started and how it differs.
``any_jupyter`` (module)
    Its running server, with the ``light`` kernelspec (a process that only
    sleeps) beside ``python3`` and ``broken``. pytest groups the tests by
    generation, so one server runs at a time: started when the first test of
    its generation needs it, stopped after the last one.

The terminal summary has a table of how long each generation took: venv build
(0 when cached), server start, and its tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.matrix.generations import GENERATIONS, TIMINGS, Generation, running
from tests.support.live_jupyter import JupyterServer


@pytest.fixture(scope="module", params=GENERATIONS, ids=[g.id for g in GENERATIONS])
def generation(request: pytest.FixtureRequest) -> Generation:
    generation: Generation = request.param
    return generation


@pytest.fixture(scope="module")
def any_jupyter(
    generation: Generation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    workdir = tmp_path_factory.mktemp(generation.id)
    with running(generation, workdir, label=generation.id) as server:
        yield server


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("Jupyter generations: seconds (venv build, server start, use)")
    for name, timing in TIMINGS.items():
        terminalreporter.write_line(
            f"{name:<16} build {timing.build:6.1f}  start {timing.start:5.1f}  "
            f"use {timing.use:6.1f}"
        )
    total = sum(t.build + t.start + t.use for t in TIMINGS.values())
    terminalreporter.write_line(f"{'total':<16} {total:.1f}")
