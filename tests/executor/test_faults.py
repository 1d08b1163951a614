"""apply through a faulty network: starts that fail mid-apply, and one that lands late.

The manifest's server URL points at ``tests.support.faultproxy.FaultProxy``, which
forwards to the session's real jupyter server and injects one kind of fault on
``POST api/kernels`` (the cases and checks: ``tests/support/faults.py``). A failed
start does not stop the others; a start that may have reached the server stays
recorded as pending, one the server refused is not recorded; the next apply
converges with no twin, a late start included.

Run with ``-s`` to see the number of fault cases covered (with client/test_faults.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.faultproxy import FaultProxy, Kind
from tests.support.faults import (
    ADDRESSES,
    CASES,
    FAILED_LINE,
    KERNELS,
    MID_CASES,
    START,
    Case,
    assert_consistent,
    assert_converges,
    covered,
    heal,
    inject,
    kf,
    resources,
)

# The fixtures of tests/support/faults.py: pytest finds them here by name.
from tests.support.faults import fault_summary as fault_summary
from tests.support.faults import proxy as proxy
from tests.support.faults import workdir as workdir
from tests.support.kf import write_manifest
from tests.support.live_jupyter import JupyterServer

# -- a fault on the writes only: the plan is read, then starts fail -----------------------


@pytest.mark.parametrize("case", MID_CASES, ids=lambda c: c.name)
def test_fault_on_the_second_start(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, case: Case
) -> None:
    write_manifest(workdir, jupyter, KERNELS)
    inject(proxy, case, "POST", START, after=1, times=1)
    # Once the server dies every later start fails too: one at a time keeps it exact. (It
    # also takes the first kernel's readiness wait with it, which would then fail and taint
    # that kernel: this test is about the starts, so it does not wait.)
    serial = ("--parallelism", "1", "--no-wait") if case.kind is Kind.DIE else ()
    result = kf(workdir, jupyter, proxy, "apply", "--auto-approve", *serial)

    assert result.code == 1, result
    assert all(line.startswith(("Error: ", "Warning: ")) for line in result.err.splitlines())
    failures = dict(FAILED_LINE.findall(result.out))
    started = 1 if case.kind is Kind.DIE else 2
    assert len(failures) == 3 - started, result.out
    assert (
        f"Apply finished with errors. {started} started; {3 - started} failed; 0 blocked."
        in result.out
    ), result.out
    for address, reason in failures.items():
        assert address in ADDRESSES
        assert reason.startswith(proxy.url), reason
        assert f"{address}: start FAILED: {reason}" in result.out
    first_failure = FAILED_LINE.search(result.out)
    assert first_failure is not None and case.start_cause in first_failure.group(2), result.out
    if case.kind is Kind.DIE:
        assert "connection refused" in result.out, result.out
    else:
        assert proxy.count("POST", START) == 3, "a start was repeated (or never sent)"
        assert proxy.count("POST", START, fault=case.kind) == 1

    heal(proxy)
    recorded = resources(workdir)
    ok = ADDRESSES - set(failures)
    assert all(not recorded[a]["pending"] for a in ok), recorded
    pending = {a: recorded[a]["kernel_id"] for a in failures if a in recorded}
    if case.transport:
        # The start may have reached the server: it is kept as pending, never forgotten.
        assert set(pending) == set(failures), recorded
        assert all(recorded[a]["pending"] for a in pending), recorded
    else:
        # The server refused it: nothing started, nothing recorded.
        assert not pending, recorded
    assert_consistent(workdir, jupyter)

    ids = assert_converges(workdir, jupyter, proxy)
    for address in ok:
        assert ids[address] == recorded[address]["kernel_id"]
    for address, kernel_id in pending.items():
        # Confirmed when it runs, else started again under the same id: never a twin.
        assert ids[address] == kernel_id
    covered(case, "apply: 2nd start")


@pytest.mark.parametrize("case", [c for c in CASES if c.kind], ids=lambda c: c.name)
def test_fault_on_every_start(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, case: Case
) -> None:
    write_manifest(workdir, jupyter, KERNELS)
    inject(proxy, case, "POST", START)
    result = kf(workdir, jupyter, proxy, "apply", "--auto-approve")
    assert result.code == 1, result
    assert "Apply finished with errors. nothing done; 3 failed; 0 blocked." in result.out
    failures = dict(FAILED_LINE.findall(result.out))
    assert set(failures) == ADDRESSES, result.out
    assert all(r.startswith(proxy.url) and case.start_cause in r for r in failures.values())
    assert proxy.count("POST", START) == 3
    heal(proxy)
    assert_consistent(workdir, jupyter)
    assert_converges(workdir, jupyter, proxy)
    covered(case, "apply: every start")


# -- a start that times out but lands later ------------------------------------------------


def test_a_timed_out_start_that_lands_late_makes_no_twin(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    """apply times out on a start; the next apply runs while that POST is still on
    its way; then it reaches the server. The rerun must reuse the pending id, so
    the late POST finds its kernel running and starts nothing."""
    write_manifest(workdir, jupyter, KERNELS)
    proxy.add(Kind.SLOW, "POST", START, after=1, times=1, delay=60)
    first = kf(workdir, jupyter, proxy, "apply", "--auto-approve")
    assert first.code == 1, first
    (failed,) = FAILED_LINE.findall(first.out)
    assert "no answer within 1s" in failed[1]
    pending = resources(workdir)[failed[0]]
    assert pending["pending"], pending

    proxy.clear()  # the held POST stays held
    second = kf(workdir, jupyter, proxy, "apply", "--auto-approve")
    assert second.code == 0, second
    assert f"{failed[0]} will be started: start was interrupted" in second.out

    proxy.release()
    proxy.wait_idle()
    (late,) = [s for s in proxy.seen if s.fault is Kind.SLOW]
    assert late.json()["kernel_id"] == pending["kernel_id"]
    assert late.status == 201, late  # the server took it
    recorded = {r["kernel_id"] for r in resources(workdir).values()}
    assert jupyter.kernel_ids() == recorded, "the late start made a twin kernelform forgot"
    assert resources(workdir)[failed[0]]["kernel_id"] == pending["kernel_id"]
    ids = assert_converges(workdir, jupyter, proxy)
    assert ids[failed[0]] == pending["kernel_id"]
    covered(Case("slow", Kind.SLOW, ""), "apply: late start, rerun")
