"""Ready means ready: apply waits for kernels to answer, runs setup code, taints the
ones that never answer, and plan's health check restarts the frozen ones.

Everything goes through the real command line against the session's real
jupyter server, and is checked from outside with plain REST calls and
jupyter_client (tests/support/live_jupyter.py), never through kernelform.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kf import Result, run, server_env, state_of, write_manifest
from tests.support.live_jupyter import JupyterServer, wait_for


@pytest.fixture
def workdir(tmp_path: Path, jupyter: JupyterServer) -> Path:
    return tmp_path


def kf(workdir: Path, jupyter: JupyterServer, *args: str) -> Result:
    return run(*args, cwd=workdir, env=server_env(jupyter))


def resources(workdir: Path) -> dict[str, dict[str, object]]:
    return dict(state_of(workdir)["resources"])


def pid_of(jupyter: JupyterServer, kernel_id: str) -> int:
    return int(jupyter.run_code(kernel_id, "import os\nos.getpid()"))


@pytest.fixture
def frozen() -> Iterator[list[int]]:
    """Pids to SIGCONT after the test, whatever happens."""
    stopped: list[int] = []
    yield stopped
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_apply_returns_when_every_kernel_answers(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  pool: {spec: python3, count: 3}\n")
    applied = kf(workdir, jupyter, "apply", "--auto-approve")
    assert applied.code == 0, applied
    assert applied.out.count(", ready in ") == 3, applied.out
    ids = [str(r["kernel_id"]) for r in resources(workdir).values()]
    # Read at once: REST says idle (it says "starting" until some client talks to it).
    states = {k["id"]: k["execution_state"] for k in jupyter.kernels()}
    assert {states[i] for i in ids} == {"idle"}, states
    assert {k["connections"] for k in jupyter.kernels()} == {0}
    for kernel_id in ids:
        assert jupyter.run_code(kernel_id, "6 * 7") == 42


def test_no_wait_still_applies(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    applied = kf(workdir, jupyter, "apply", "--auto-approve", "--no-wait")
    assert applied.code == 0, applied
    assert "ready in" not in applied.out and "started kernel" in applied.out, applied.out
    (kernel_id,) = [str(r["kernel_id"]) for r in resources(workdir).values()]
    assert jupyter.run_code(kernel_id, "1 + 1") == 2


def test_setup_runs_before_apply_returns_and_again_after_a_restart(
    workdir: Path, jupyter: JupyterServer
) -> None:
    (workdir / "warm.py").write_text("import os\nWARM = ('warm', os.getpid())\n")
    manifest = "  etl: {spec: python3, setup_file: warm.py, revision: 1}\n"
    write_manifest(workdir, jupyter, manifest)
    applied = kf(workdir, jupyter, "apply", "--auto-approve")
    assert applied.code == 0, applied
    recorded = resources(workdir)["etl"]
    kernel_id = str(recorded["kernel_id"])
    assert str(recorded["setup"]).startswith("sha256:")  # a digest, never the code
    assert "WARM" not in str(state_of(workdir))
    first = jupyter.run_code(kernel_id, "WARM")
    assert first[0] == "warm"
    write_manifest(workdir, jupyter, manifest.replace("revision: 1", "revision: 2"))
    restarted = kf(workdir, jupyter, "apply", "--auto-approve")
    assert restarted.code == 0 and "restarted kernel" in restarted.out, restarted
    second = jupyter.run_code(kernel_id, "WARM")
    assert second[0] == "warm" and second[1] != first[1]  # a new process, warmed again


def test_changed_setup_plans_a_restart(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3, setup: 'A = 1'}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    kernel_id = str(resources(workdir)["etl"]["kernel_id"])
    write_manifest(workdir, jupyter, "  etl: {spec: python3, setup: 'A = 2'}\n")
    plan = kf(workdir, jupyter, "plan", "--detailed-exitcode")
    assert plan.code == 2 and "etl will be restarted: setup changed" in plan.out, plan
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    assert jupyter.run_code(kernel_id, "A") == 2


def test_failing_setup_fails_the_action_and_taints_the_kernel(
    workdir: Path, jupyter: JupyterServer
) -> None:
    code = "import json\\nraise RuntimeError('no data warehouse today')"
    write_manifest(workdir, jupyter, f'  etl: {{spec: python3, setup: "{code}"}}\n')
    applied = kf(workdir, jupyter, "apply", "--auto-approve")
    assert applied.code == 1, applied
    assert "RuntimeError: no data warehouse today" in applied.out, applied.out
    assert "Traceback (most recent call last)" not in applied.out + applied.err
    assert "1 action(s) failed (etl)" in applied.err, applied.err
    recorded = resources(workdir)["etl"]
    assert recorded["tainted"] == "setup failed: RuntimeError: no data warehouse today"
    assert recorded["kernel_id"] in jupyter.kernel_ids()  # recorded, not forgotten
    plan = kf(workdir, jupyter, "plan")
    assert "etl will be restarted: tainted: setup failed: RuntimeError" in plan.out, plan.out


def test_the_kernel_a_failed_replace_kept_outlives_every_failed_retry(
    workdir: Path, jupyter: JupyterServer
) -> None:
    """A replace whose new kernel fails its setup keeps the old one (``etl~deposed``).
    The next apply restarts the tainted new one and shuts the old one down: only once
    the restart is ready, or the last working kernel would go (a probe saw both run
    at once, and the reason say 'interrupted' for a replace that failed)."""
    (jupyter.root / "a").mkdir(exist_ok=True)
    (jupyter.root / "b").mkdir(exist_ok=True)
    write_manifest(workdir, jupyter, "  etl: {spec: python3, cwd: a}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    old = resources(workdir)["etl"]["kernel_id"]
    broken = "  etl: {spec: python3, cwd: b, setup: \"raise RuntimeError('no warehouse')\"}\n"
    write_manifest(workdir, jupyter, broken)
    failed = kf(workdir, jupyter, "apply", "--auto-approve")
    assert failed.code == 1 and resources(workdir)["etl~deposed"]["kernel_id"] == old, failed
    plan = kf(workdir, jupyter, "plan")
    assert "etl~deposed will be shut down: left over from a replace that did not finish" in (
        plan.out
    ), plan.out

    again = kf(workdir, jupyter, "apply", "--auto-approve")  # the setup still raises
    assert again.code == 1, again
    assert "not run: etl did not get ready, so this older kernel is kept" in again.out, again
    assert resources(workdir)["etl~deposed"]["kernel_id"] == old
    assert old in jupyter.kernel_ids()

    write_manifest(workdir, jupyter, "  etl: {spec: python3, cwd: b, setup: 'x = 1'}\n")
    fixed = kf(workdir, jupyter, "apply", "--auto-approve")
    assert fixed.code == 0, fixed
    assert set(resources(workdir)) == {"etl"}
    jupyter.wait_gone(old)


def test_a_kernel_that_never_answers_fails_within_the_wait_timeout(
    workdir: Path, jupyter: JupyterServer
) -> None:
    write_manifest(workdir, jupyter, "  quiet: {spec: mute}\n")
    began = time.monotonic()
    applied = kf(workdir, jupyter, "apply", "--auto-approve", "--wait-timeout", "3s")
    took = time.monotonic() - began
    assert applied.code == 1, applied
    assert took < 3 + 20, took  # the wait, plus start-up and the settling of the socket
    kernel_id = str(resources(workdir)["quiet"]["kernel_id"])
    assert f"kernel {kernel_id} is not ready: no answer in 3s" in applied.out, applied.out
    assert "last execution_state: starting" in applied.out, applied.out
    assert resources(workdir)["quiet"]["tainted"] == "no answer in 3s"
    assert kernel_id in jupyter.kernel_ids()
    plan = kf(workdir, jupyter, "plan", "--detailed-exitcode")
    assert plan.code == 2, plan
    assert "quiet will be restarted: tainted: no answer in 3s" in plan.out, plan.out


def test_a_kernel_dead_at_birth_is_reported_and_started_again_next_time(
    workdir: Path, jupyter: JupyterServer
) -> None:
    write_manifest(workdir, jupyter, "  doomed: {spec: broken}\n")
    applied = kf(workdir, jupyter, "apply", "--auto-approve", "--wait-timeout", "30s")
    assert applied.code == 1, applied
    assert "is not ready" in applied.out, applied.out
    recorded = resources(workdir)["doomed"]
    assert recorded["tainted"], recorded
    wait_for(
        lambda: recorded["kernel_id"] not in jupyter.kernel_ids(), what="the server to drop it"
    )
    plan = kf(workdir, jupyter, "plan")
    assert "doomed will be started: vanished from the server (tainted:" in plan.out, plan.out


def test_health_check_restarts_a_frozen_kernel_with_a_new_process(
    workdir: Path, jupyter: JupyterServer, frozen: list[int]
) -> None:
    write_manifest(
        workdir, jupyter, "  etl: {spec: python3, health_check: true, health_timeout: 3s}\n"
    )
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    kernel_id = str(resources(workdir)["etl"]["kernel_id"])
    pid = pid_of(jupyter, kernel_id)
    assert kf(workdir, jupyter, "plan", "--detailed-exitcode").code == 0  # healthy: no change
    os.kill(pid, signal.SIGSTOP)
    frozen.append(pid)
    plan = kf(workdir, jupyter, "plan", "--detailed-exitcode")
    assert plan.code == 2, plan
    assert "etl will be restarted: unresponsive: no reply in 3s" in plan.out, plan.out
    assert "BLOCKED" not in plan.out, plan.out  # the probe's stuck connection is not "in use"
    applied = kf(workdir, jupyter, "apply", "--auto-approve")
    assert applied.code == 0, applied
    assert resources(workdir)["etl"]["kernel_id"] == kernel_id  # restarted in place
    assert pid_of(jupyter, kernel_id) != pid


def test_health_check_leaves_a_kernel_busy_in_a_long_cell_alone(
    workdir: Path, jupyter: JupyterServer
) -> None:
    write_manifest(
        workdir, jupyter, "  etl: {spec: python3, health_check: true, health_timeout: 5s}\n"
    )
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    kernel_id = str(resources(workdir)["etl"]["kernel_id"])
    with jupyter.kernel_client(kernel_id) as client:
        client.execute("import time; time.sleep(60)")
        wait_for(
            lambda: (jupyter.kernel(kernel_id) or {}).get("execution_state") == "busy",
            what="the kernel to be busy",
        )
        plan = kf(workdir, jupyter, "plan", "--detailed-exitcode")
        assert plan.code == 0, plan
        assert "No changes." in plan.out
        jupyter.api_json("POST", f"api/kernels/{kernel_id}/interrupt", expect=204)
