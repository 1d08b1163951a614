"""Crash safety: ``kernelform apply`` killed at every step, then run again.

The fault hooks of ``tests/support/crashing.py`` let a test SIGKILL the real command
line at an exact step: before and after every HTTP request, every state write
and every kernel start. A sweep walks, for each point, N = 1, 2, 3, ... until a
run finishes without being killed, so every step of the apply is covered
whatever the step count is. After each kill, ``apply`` (no fault) must converge:
exit 0, exactly the declared kernels on the server (each once, all recorded),
nothing left pending, and ``plan --detailed-exitcode`` then exits 0.

The apply under test goes from manifest A to manifest B and so contains every
kind of step: a replace (cwd changes), a restart (revision bump), two shutdowns
(count lowered) and a start (a new kernel). The same sweep runs against a
server that ignores client-chosen kernel ids (``KERNELFORM_ASSUME_NO_KERNEL_ID``),
where a kernel started by a killed run must be adopted, not started twice. A
last group makes the state write fail (``KERNELFORM_FAIL_AT``, ENOSPC).

The tests run their own jupyter server (a short ``shutdown_wait_time``) with a
``light`` kernelspec, a process that only sleeps: the server starts, lists,
restarts and shuts it down like any kernel (``POST .../restart`` answers once
the process is restarted; it does not wait for ``kernel_info``), for a fraction
of an ipykernel's cost. The end-to-end tests cover real ipykernels.

Run with ``-s`` to see the summary lines (``crash points survived: N``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kernelform.runtime import KernelIds, Runtime
from kernelform.state import FileStateStore, State
from kernelform.workspace import Settings, Workspace
from tests.support.kf import Result, run, server_env, state_of, write_manifest
from tests.support.live_jupyter import JupyterServer

POINTS = (
    "before-request",
    "after-request",
    "before-state-write",
    "after-state-write",
    "before-start",
    "after-start",
)
NO_KERNEL_ID = {"KERNELFORM_ASSUME_NO_KERNEL_ID": "1"}
KILLED = -9
MAX_N = 60  # far above any step count here: a sweep that reaches it is broken

SPECS = {"light"}

MANIFEST_A = (
    "  keep: {spec: light}\n"
    "  mover: {spec: light, cwd: a}\n"
    "  rev: {spec: light, revision: '1'}\n"
    "  pool: {spec: light, count: 3}\n"
)
MANIFEST_B = (
    "  keep: {spec: light}\n"
    "  mover: {spec: light, cwd: b}\n"
    "  rev: {spec: light, revision: '2'}\n"
    "  pool: {spec: light, count: 1}\n"
    "  fresh: {spec: light}\n"
)
DECLARED_B = {"keep", "mover", "rev", "pool[0]", "fresh"}
# What A → B takes (the sweeps assert they saw at least this many kill points).
B_STARTS = 2  # mover's new kernel, fresh
B_STATE_WRITES = 9  # replace 4 (depose, pending, started, forget), restart 1, shutdowns 2, start 2
B_SERVER_REQUESTS = 6  # replace 2 (POST, DELETE), restart 1, shutdowns 2, start 1


@pytest.fixture
def jupyter(light_jupyter: JupyterServer) -> Iterator[JupyterServer]:
    assert light_jupyter.running, light_jupyter.log_tail()
    light_jupyter.cleanup()
    yield light_jupyter
    light_jupyter.cleanup()


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Sweep:
    """Kill points survived, per fault point name."""

    label: str
    survived: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def total(self) -> int:
        return sum(self.survived.values())

    def report(self) -> str:
        per_point = ", ".join(f"{p} {n}" for p, n in self.survived.items())
        seconds = time.monotonic() - self.started
        return f"crash points survived: {self.total} ({self.label}; {per_point}; {seconds:.0f}s)"


class Bench:
    """One case's working dir, manifests and checks, against the test server."""

    def __init__(self, jupyter: JupyterServer, workdir: Path, env: dict[str, str]) -> None:
        self.jupyter = jupyter
        self.workdir = workdir
        self.env = {**server_env(jupyter), **env}
        workdir.mkdir(parents=True, exist_ok=True)
        for name in ("a", "b"):
            (jupyter.root / name).mkdir(exist_ok=True)

    def kf(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run(*args, cwd=self.workdir, env={**self.env, **(env or {})})

    def manifest(self, kernels: str, **server_keys: Any) -> None:
        write_manifest(self.workdir, self.jupyter, kernels, **server_keys)

    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = state_of(self.workdir)["resources"]
        return resources

    def ids(self) -> dict[str, str]:
        return {a: r["kernel_id"] for a, r in self.resources().items()}

    def server_ids(self) -> list[str]:
        return sorted(k["id"] for k in self.jupyter.kernels())

    def apply(self, *args: str, env: dict[str, str] | None = None) -> Result:
        # The light kernels never answer: waiting for readiness is test_ready's subject.
        return self.kf("apply", "--auto-approve", "--no-wait", *args, env=env)

    def apply_in_process(self) -> None:
        """A plain apply through the library: a quicker way to set a case up."""
        settings = Settings(manifest_path=self.workdir / "kernelform.yaml", wait=False)
        never = self.env.get("KERNELFORM_ASSUME_NO_KERNEL_ID") == "1"
        runtime = Runtime(kernel_ids=KernelIds.NEVER if never else KernelIds.ASK_SERVER)
        with (
            environ(self.env),
            Workspace(settings, runtime=runtime) as workspace,
            workspace.locked("apply"),
        ):
            plan, live, state = workspace.plan()
            report, _ = workspace.apply(plan, live=live, state=state, on_outcome=lambda o: None)
        assert not report.failed and not report.blocked, report

    def assert_converged(self, declared: set[str]) -> dict[str, str]:
        """Exactly the declared kernels run, each once, all recorded; plan is clean."""
        resources = self.resources()
        assert set(resources) == declared, resources
        assert not [a for a, r in resources.items() if r["pending"]], resources
        recorded = sorted(r["kernel_id"] for r in resources.values())
        assert self.server_ids() == recorded, (self.jupyter.kernels(), resources)
        assert {k["name"] for k in self.jupyter.kernels()} <= SPECS
        plan = self.kf("plan", "--detailed-exitcode")
        assert plan.code == 0, plan
        return self.ids()


def setup_a(bench: Bench) -> dict[str, str]:
    """Manifest A applied from scratch; then manifest B written (not applied)."""
    bench.jupyter.cleanup()
    bench.manifest(MANIFEST_A)
    bench.apply_in_process()
    ids_a = bench.ids()
    assert set(ids_a) == {"keep", "mover", "rev", "pool[0]", "pool[1]", "pool[2]"}
    bench.manifest(MANIFEST_B)
    return ids_a


def check_b(bench: Bench, ids_a: dict[str, str]) -> None:
    """Manifest B reached, keeping what B keeps and ending what it ends."""
    ids_b = bench.assert_converged(DECLARED_B)
    for kept in ("keep", "rev", "pool[0]"):
        assert ids_b[kept] == ids_a[kept], (kept, ids_a, ids_b)
    assert ids_b["mover"] != ids_a["mover"]
    resources = bench.resources()
    assert resources["mover"]["cwd"] == "b"
    assert resources["rev"]["revision"] == "2"
    live = set(bench.server_ids())
    assert not live & {ids_a["mover"], ids_a["pool[1]"], ids_a["pool[2]"]}


def crash_case(
    bench: Bench, point: str, n: int, *, parallelism: int | None, no_kernel_id: bool
) -> bool:
    """Kill the A → B apply at the N-th pass through *point*; check the rerun.

    Returns whether the run was killed (False: it finished, the sweep is over).
    """
    ids_a = setup_a(bench)
    extra = ("--parallelism", str(parallelism)) if parallelism else ()
    crashed = bench.apply(*extra, env={"KERNELFORM_CRASH_AT": f"{point}:{n}"})
    where = f"{point}:{n}"
    if crashed.code != KILLED:
        assert crashed.code == 0, (where, crashed)
        check_b(bench, ids_a)
        return False
    after_crash = bench.resources()
    recorded = {r["kernel_id"] for r in after_crash.values()}
    unrecorded = set(bench.server_ids()) - recorded
    placeholders = {a: r for a, r in after_crash.items() if r["kernel_id"].startswith("unknown:")}
    if no_kernel_id:
        # The one window the server leaves open: started, id not yet recorded.
        assert len(unrecorded) <= 1, (where, unrecorded, after_crash)
        assert not unrecorded or placeholders, (where, unrecorded, after_crash)
    else:
        # Every kernel on the server is in the state at every step.
        assert not unrecorded, (where, unrecorded, after_crash)
        assert not placeholders, (where, after_crash)
    rerun = bench.apply()
    assert rerun.code == 0, (where, rerun)
    check_b(bench, ids_a)
    final = bench.ids()
    # Nothing the killed run started is orphaned: what it left unrecorded is adopted.
    assert unrecorded <= set(final.values()), (where, unrecorded, final)
    # A pending start with a client-chosen id was confirmed or started under that id.
    for address, resource in after_crash.items():
        if resource["pending"] and address in final and address not in placeholders:
            assert final[address] == resource["kernel_id"], (where, address, after_crash)
    return True


def sweep(
    bench_for: Any,
    points: tuple[str, ...],
    *,
    label: str,
    parallelism: int | None,
    no_kernel_id: bool,
) -> Sweep:
    result = Sweep(label)
    for point in points:
        for n in range(1, MAX_N + 1):
            bench = bench_for(f"{point}-{n}")
            if not crash_case(bench, point, n, parallelism=parallelism, no_kernel_id=no_kernel_id):
                break
            result.survived[point] += 1
        else:
            pytest.fail(f"{point}: still killed after {MAX_N} passes; is the count broken?")
    return result


@pytest.fixture
def bench_for(jupyter: JupyterServer, tmp_path: Path) -> Iterator[Any]:
    made: list[Bench] = []

    def make(name: str, env: dict[str, str] | None = None) -> Bench:
        bench = Bench(jupyter, tmp_path / name, env or {})
        made.append(bench)
        return bench

    yield make


def assert_covers_every_step(result: Sweep, points: tuple[str, ...]) -> None:
    """A broken enumeration (a point never hit, or hit too rarely) fails here."""
    minimum = {
        "before-start": B_STARTS,
        "after-start": B_STARTS,
        "before-state-write": B_STATE_WRITES,
        "after-state-write": B_STATE_WRITES,
        # GET api/kernels, api/sessions, api/kernelspecs for the plan, then the actions.
        "before-request": 3 + B_SERVER_REQUESTS,
        "after-request": 3 + B_SERVER_REQUESTS,
    }
    for point in points:
        assert result.survived[point] >= minimum[point], result.report()


@pytest.mark.timeout(1200)
def test_apply_killed_at_every_step_converges(bench_for: Any) -> None:
    """Parallelism 1: the step order is fixed, so every step of A → B is a kill point."""
    result = sweep(bench_for, POINTS, label="parallelism 1", parallelism=1, no_kernel_id=False)
    print(result.report())
    assert_covers_every_step(result, POINTS)


@pytest.mark.timeout(900)
def test_apply_killed_with_default_parallelism_converges(bench_for: Any) -> None:
    """Default parallelism: the steps interleave; the points where the server moved ahead."""
    points = ("after-start", "before-state-write")
    result = sweep(bench_for, points, label="parallelism 10", parallelism=None, no_kernel_id=False)
    print(result.report())
    assert_covers_every_step(result, points)


@pytest.mark.timeout(900)
def test_server_ignoring_kernel_id_adopts_instead_of_starting_twice(bench_for: Any) -> None:
    """The server picks kernel ids: a kernel started by a killed run is found and adopted."""

    def no_id_bench(name: str) -> Bench:
        bench: Bench = bench_for(name, NO_KERNEL_ID)
        return bench

    points = ("before-start", "after-start", "before-state-write")
    result = sweep(
        no_id_bench, points, label="server ignores kernel_id", parallelism=1, no_kernel_id=True
    )
    print(result.report())
    assert_covers_every_step(result, points)


# -- the server ignores kernel_id: adoption, and when it must not guess ------------


def kill_after_start(bench: Bench, kernels: str, **server_keys: Any) -> str:
    """Apply *kernels* from scratch, killed once the first kernel started; its id."""
    bench.manifest(kernels, **server_keys)
    killed = bench.apply("--parallelism", "1", env={"KERNELFORM_CRASH_AT": "after-start:1"})
    assert killed.code == KILLED, killed
    (orphan,) = bench.server_ids()
    (pending,) = bench.resources().values()
    assert pending["pending"] and pending["kernel_id"].startswith("unknown:"), pending
    return orphan


def test_several_candidates_are_reported_not_guessed(bench_for: Any) -> None:
    bench: Bench = bench_for("ambiguous", NO_KERNEL_ID)
    orphan = kill_after_start(bench, "  etl: {spec: light}\n", prune=True)
    stranger = bench.jupyter.start_kernel("light")["id"]
    plan = bench.kf("plan", "--json").json()
    (change,) = plan["changes"]  # nothing pruned: either could be etl's
    assert change["action"] == "start" and change["blocked"] is True, change
    assert orphan in change["reason"] and stranger in change["reason"], change
    assert "server ignores client-chosen kernel ids" in change["reason"]
    assert "kernelform import etl ID" in change["reason"]
    human = bench.kf("plan")
    assert orphan in human.out and stranger in human.out, human
    forced = bench.apply("--force")
    assert forced.code == 3, forced
    assert bench.server_ids() == sorted([orphan, stranger])
    assert bench.kf("state", "rm", "etl").code == 0
    assert bench.kf("import", "etl", orphan).code == 0
    bench.jupyter.shutdown_kernel(stranger)
    bench.jupyter.wait_gone(stranger)
    assert bench.assert_converged({"etl"}) == {"etl": orphan}


def test_kernels_in_use_or_of_another_spec_are_not_candidates(bench_for: Any) -> None:
    bench: Bench = bench_for("unambiguous", NO_KERNEL_ID)
    orphan = kill_after_start(bench, "  etl: {spec: light}\n")
    used = bench.jupyter.create_session(path="nb/other.ipynb", kernel_name="light")["kernel"]["id"]
    other_spec = bench.jupyter.start_kernel("python3")["id"]
    plan = bench.kf("plan")
    assert plan.code == 0 and f"etl: kernel {orphan} (light) is the one" in plan.out, plan
    applied = bench.apply()
    assert applied.code == 0, applied
    assert bench.ids() == {"etl": orphan}
    assert bench.server_ids() == sorted([orphan, used, other_spec])


def test_replicas_share_out_the_kernels_of_a_killed_parallel_start(bench_for: Any) -> None:
    """Identical replicas are interchangeable: each orphan adopted by one of them."""
    bench: Bench = bench_for("replicas", NO_KERNEL_ID)
    bench.manifest("  etl: {spec: light, count: 3}\n")
    killed = bench.apply("--parallelism", "3", env={"KERNELFORM_CRASH_AT": "after-start:2"})
    assert killed.code == KILLED, killed
    orphans = set(bench.server_ids()) - {r["kernel_id"] for r in bench.resources().values()}
    assert orphans, bench.resources()
    applied = bench.apply()
    assert applied.code == 0, applied
    final = bench.assert_converged({"etl[0]", "etl[1]", "etl[2]"})
    assert orphans <= set(final.values())


def test_unknown_id_pending_no_longer_declared_is_shut_down(bench_for: Any) -> None:
    bench: Bench = bench_for("undeclared", NO_KERNEL_ID)
    orphan = kill_after_start(bench, "  etl: {spec: light}\n")
    bench.manifest("  web: {spec: light}\n")
    plan = bench.kf("plan", "--json").json()
    actions = {(c["address"], c["action"], c["kernel_id"]) for c in plan["changes"]}
    assert ("etl", "shutdown", orphan) in actions, plan
    applied = bench.apply()
    assert applied.code == 0, applied
    bench.jupyter.wait_gone(orphan)
    bench.assert_converged({"web"})


# -- the state cannot be written -----------------------------------------------------


RECOVERY = re.compile(
    r"saved at (\S+); once the problem is fixed, run 'kernelform state push (\S+)'"
)


def fail_case(bench: Bench, n: str) -> bool:
    """A → B with the N-th state write (``N+``: and all later ones) failing with ENOSPC."""
    ids_a = setup_a(bench)
    failed = bench.apply("--parallelism", "1", env={"KERNELFORM_FAIL_AT": f"state-write:{n}"})
    if failed.code == 0:
        check_b(bench, ids_a)
        return False
    assert failed.code == 1, (n, failed)
    lines = failed.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the state could not be written"), (
        n,
        failed.err,
    )
    assert "No space left on device" in lines[0]
    live = set(bench.server_ids())
    if "holds everything this run did" in lines[0]:
        # A later write went through: the state file itself has everything.
        assert live <= set(bench.ids().values()), (n, live, bench.resources())
    else:
        found = RECOVERY.search(lines[0])
        assert found, lines[0]
        # Paths as the user gave them: relative to where kernelform ran.
        recovery, pushed = (bench.workdir / found.group(i) for i in (1, 2))
        assert recovery == pushed and recovery.parent == bench.workdir / ".kernelform", found
        saved = json.loads(recovery.read_text(encoding="utf-8"))
        assert live <= {r["kernel_id"] for r in saved["resources"].values()}, (n, live, saved)
        store = FileStateStore(bench.workdir / ".kernelform" / "state.json")
        store.push(State.from_dict(saved, source=str(recovery)))
    rerun = bench.apply()
    assert rerun.code == 0, (n, rerun)
    check_b(bench, ids_a)
    return True


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("env", "mode"),
    [({}, "+"), (NO_KERNEL_ID, "")],
    ids=["disk-full-from-write-N", "no-kernel-id-write-N-fails-once"],
)
def test_state_write_failing_mid_apply_loses_no_kernel(
    bench_for: Any, env: dict[str, str], mode: str
) -> None:
    """Every write of the apply fails in turn: from then on (disk full), or just once."""
    cases = 0
    for n in range(1, MAX_N + 1):
        if not fail_case(bench_for(f"fail-{n}", env), f"{n}{mode}"):
            break
        cases += 1
    else:
        pytest.fail(f"state-write:N{mode}: still failing after {MAX_N} writes")
    print(f"state write failures survived: {cases} (state-write:N{mode})")
    assert cases >= B_STATE_WRITES
