"""Many kernelform runs at once on one manifest and one state.

The state lock (``flock`` on ``state.json.lock``) must serialise them: with
``--lock-timeout`` the losers wait, then find nothing to do; without it they
fail at once (exit 1, naming the holder's pid) and touch nothing. Either way the
server ends up running exactly the declared kernels, all of them in the state.
Requests go through ``tests.support.faultproxy.FaultProxy`` (with no fault) so that the
tests can count the starts the server was asked for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernelform.state import FileStateStore
from tests.support.faultproxy import FaultProxy
from tests.support.kf import TRACEBACK, Result, run, state_of, write_manifest
from tests.support.live_jupyter import JupyterServer

RUNS = 8
COUNT = 4
KERNELS = f"  pool: {{spec: python3, count: {COUNT}}}\n"
ADDRESSES = {f"pool[{i}]" for i in range(COUNT)}
RUN_TIMEOUT = 180.0
HOLDER = re.compile(
    r"the state at \S+ is locked: held by pid (\d+) on host \S+ since \S+ \((\w+)\)"
)
DONE = f"Apply complete! {COUNT} started; 0 failed; 0 blocked."


@pytest.fixture
def workdir(tmp_path: Path, jupyter: JupyterServer) -> Path:
    write_manifest(tmp_path, jupyter, KERNELS)
    return tmp_path


@pytest.fixture
def proxy(jupyter: JupyterServer) -> Iterator[FaultProxy]:
    with FaultProxy(jupyter.url) as fault_proxy:
        yield fault_proxy


def env_for(jupyter: JupyterServer, proxy: FaultProxy) -> dict[str, str]:
    return {
        **os.environ,
        "NO_COLOR": "1",
        "KF_TEST_URL": proxy.url,
        "KF_TEST_TOKEN": jupyter.token,
    }


def run_together(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, n: int, *args: str
) -> list[tuple[int, Result]]:
    """Start *n* ``kernelform ARGS`` at once; return each one's (pid, result)."""
    env = env_for(jupyter, proxy)
    processes: list[subprocess.Popen[str]] = []
    try:
        for _ in range(n):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "kernelform", *args],
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        results = []
        deadline = time.monotonic() + RUN_TIMEOUT
        for process in processes:
            out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            result = Result(process.returncode, out, err)
            assert TRACEBACK not in out + err, result
            results.append((process.pid, result))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def kf(workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, *args: str) -> Result:
    return run(*args, cwd=workdir, env=env_for(jupyter, proxy))


def assert_declared_kernels_run(workdir: Path, jupyter: JupyterServer, proxy: FaultProxy) -> None:
    resources = state_of(workdir)["resources"]
    assert set(resources) == ADDRESSES, resources
    assert not any(r["pending"] for r in resources.values()), resources
    ids = {r["kernel_id"] for r in resources.values()}
    assert len(ids) == COUNT
    assert jupyter.kernel_ids() == ids, "twins, strays or lost kernels"
    plan = kf(workdir, jupyter, proxy, "plan", "--detailed-exitcode")
    assert plan.code == 0 and "No changes." in plan.out, plan


def test_concurrent_applies_wait_for_the_lock_and_converge(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    results = run_together(
        workdir, jupyter, proxy, RUNS, "apply", "--auto-approve", "--lock-timeout", "60s"
    )
    assert all(result.code == 0 for _, result in results), results
    winners = [result for _, result in results if DONE in result.out]
    assert len(winners) == 1, [r.out for _, r in results]
    others = [result for _, result in results if DONE not in result.out]
    assert all("No changes." in r.out and "Nothing to do." in r.out for r in others), others
    assert proxy.count("POST", r"/api/kernels") == COUNT, "a start was asked for twice"
    assert_declared_kernels_run(workdir, jupyter, proxy)


def test_runs_fail_fast_while_another_holds_the_lock(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    store = FileStateStore(workdir / ".kernelform" / "state.json")
    with store.lock(operation="test"):
        began = time.monotonic()
        results = run_together(workdir, jupyter, proxy, RUNS - 1, "apply", "--auto-approve")
        took = time.monotonic() - began
        # Checked while the lock is still held: none of them waited for it.
        assert jupyter.kernel_ids() == set()
    for _, result in results:
        assert result.code == 1, result
        (line,) = result.err.strip().splitlines()
        assert line.startswith("Error: "), line
        holder = HOLDER.search(line)
        assert holder is not None, line
        assert holder.groups() == (str(os.getpid()), "test"), line
        assert "--lock-timeout" in line
        assert "Apply" not in result.out
    assert took < RUN_TIMEOUT / 2
    assert not any(s.method in ("POST", "DELETE") for s in proxy.seen), proxy.seen
    assert not (workdir / ".kernelform" / "state.json").exists()
    assert jupyter.kernel_ids() == set()

    applied = kf(workdir, jupyter, proxy, "apply", "--auto-approve")
    assert applied.code == 0 and DONE in applied.out, applied
    assert_declared_kernels_run(workdir, jupyter, proxy)


def test_racing_applies_without_lock_timeout(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    results = run_together(workdir, jupyter, proxy, RUNS, "apply", "--auto-approve")
    pids = {pid for pid, _ in results}
    winners = [result for _, result in results if result.code == 0]
    losers = [(pid, result) for pid, result in results if result.code != 0]
    assert winners, [r.err for _, r in results]
    assert losers, "no run met the lock: the runs did not overlap"
    print(f"\nracing applies: {len(winners)} succeeded, {len(losers)} met the lock")
    for pid, result in losers:
        assert result.code == 1, result
        (line,) = result.err.strip().splitlines()
        holder = HOLDER.search(line)
        assert line.startswith("Error: ") and holder is not None, line
        holder_pid, operation = holder.groups()
        assert int(holder_pid) in pids - {pid}, (line, pids)
        assert operation == "apply"
        assert "Apply" not in result.out, result
    # One run started the kernels; a run that got the lock after it found no changes.
    assert sum(DONE in r.out for r in winners) == 1, [r.out for r in winners]
    assert all(DONE in r.out or "No changes." in r.out for r in winners)
    assert proxy.count("POST", r"/api/kernels") == COUNT, "a start was asked for twice"
    assert_declared_kernels_run(workdir, jupyter, proxy)
