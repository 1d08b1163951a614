"""``kernelform watch`` keeps a real server converged: self-heal, edits, hand-made plans.

Each test runs a watch subprocess (interval 1s) on the bench's own Jupyter server
with ``light`` kernels (``--no-wait``: readiness is not the subject here).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.kf import run
from tests.support.live_jupyter import JupyterServer
from tests.support.watching import managed_ids, manifest
from tests.watch.conftest import Bench, Watches

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def started(address: str) -> object:
    return lambda line: f"+ {address}: started kernel " in line


def test_restores_a_kernel_shut_down_behind_its_back_and_follows_edits(
    lab: JupyterServer, bench: Bench, watches: Watches, tmp_path: Path
) -> None:
    manifest(tmp_path, "  a: {spec: light}\n")
    watch = watches.start(tmp_path, "--interval", "1s", "--no-wait", "--lock-timeout", "10s")
    seen, _ = watch.wait(started("a"), what="a started")
    first = managed_ids(tmp_path)["a"]
    assert lab.kernel_ids() == {first}

    lab.shutdown_kernel(first)  # behind its back
    seen, line = watch.wait(started("a"), after=seen + 1, what="a started again")
    second = managed_ids(tmp_path)["a"]
    assert second != first and second in line
    assert lab.kernel_ids() == {second}

    # The lock is held only during a cycle: a plan by hand gets it (waiting for a
    # cycle at most) and finds nothing to do.
    by_hand = run(
        "plan", "--detailed-exitcode", "--lock-timeout", "10s", cwd=tmp_path, env=bench.env()
    )
    assert by_hand.code == 0, by_hand

    manifest(tmp_path, "  b: {spec: light, count: 2}\n")
    seen, line = watch.wait(
        lambda line: "3 change(s), 3 done" in line, after=seen + 1, what="the edit followed"
    )
    ids = managed_ids(tmp_path)
    assert set(ids) == {"b[0]", "b[1]"}
    assert lab.kernel_ids() == set(ids.values())
    text = "\n".join(watch.out)
    assert f"- a: shut down kernel {second}" in text
    assert f"+ b[0]: started kernel {ids['b[0]']}" in text
    assert "(no longer declared)" in text and "(new)" in text  # why the watch acted
    assert all(STAMP.match(line) for line in watch.out), watch.out
    # Quiet while in sync: no line for the cycles that found nothing to do.
    assert not any("in sync" in line for line in watch.out[1:]), watch.out
    assert watch.err == []
