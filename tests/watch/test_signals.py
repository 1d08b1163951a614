"""SIGTERM and SIGINT: the action in flight ends, the lock is released, exit 0 within seconds.

A wait for a kernel to answer is cut short (a kernel that answers only after
seconds, ``slow``, is being waited for): the kernel stays recorded, tainted,
and the next plan restarts it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.kf import run, state_of
from tests.support.live_jupyter import JupyterServer, wait_for
from tests.support.watching import manifest
from tests.watch.conftest import Bench, Watches


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_between_cycles_exits_0_at_once_with_the_lock_free(
    sig: signal.Signals, lab: JupyterServer, bench: Bench, watches: Watches, tmp_path: Path
) -> None:
    manifest(tmp_path, "  a: {spec: light}\n")
    watch = watches.start(tmp_path, "--interval", "1s", "--no-wait", "--log-format", "json")
    watch.wait_event("cycle_finished", where=lambda e: e["succeeded"] == 1)
    code, took = watch.stop(sig)
    assert code == 0, watch.err
    assert took < 3, took
    last = watch.events()[-1]
    assert (last["event"], last["reason"]) == ("shutdown", sig.name)
    assert watch.err == []
    # No --lock-timeout: a lock still held would fail this at once.
    after = run("plan", "--detailed-exitcode", cwd=tmp_path, env=bench.env())
    assert after.code == 0, after


def test_sigterm_during_a_wait_for_readiness_records_the_kernel_tainted(
    lab: JupyterServer, bench: Bench, watches: Watches, tmp_path: Path
) -> None:
    manifest(tmp_path, "  s: {spec: slow}\n")
    watch = watches.start(tmp_path, "--interval", "1s", "--log-format", "json")

    def recorded() -> str | None:
        path = tmp_path / ".kernelform" / "state.json"
        resource = state_of(tmp_path)["resources"].get("s") if path.exists() else None
        return resource["kernel_id"] if resource and not resource["pending"] else None

    kernel_id = wait_for(recorded, timeout=30, what="the start recorded")
    code, took = watch.stop(signal.SIGTERM)
    assert code == 0, watch.err
    assert took < 6, took  # the cut (0.2s), then at most 3s for the lingering handshake

    events = watch.events()
    (action,) = [e for e in events if e["event"] == "action"]
    assert (action["address"], action["ok"], action["kernel_id"]) == ("s", False, kernel_id)
    assert "the wait was cut short" in action["error"]
    assert events[-2]["event"] == "cycle_failed" and events[-1]["event"] == "shutdown"
    resource = state_of(tmp_path)["resources"]["s"]
    assert resource["kernel_id"] == kernel_id and not resource["pending"]
    assert resource["tainted"] == "the wait was cut short (kernelform was stopping)"
    assert kernel_id in lab.kernel_ids()  # recorded, so never an orphan

    after = run("plan", cwd=tmp_path, env=bench.env())
    assert after.code == 0, after
    assert "s will be restarted: tainted: the wait was cut short" in after.out, after.out
