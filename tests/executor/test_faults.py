"""plan and apply through a faulty network: refused, reset, 500, 503, 403, too slow.

The manifest's server URL points at ``tests.support.faultproxy.FaultProxy``, which
forwards to the session's real jupyter server and injects one kind of fault.
Every case checks what a user sees (exit 1, ``Error:`` lines or a report naming
the server and the cause, never a traceback), that the state tells the truth
about the server (every kernel kernelform started is recorded; everything
recorded runs, except pending starts, which the next run confirms or starts
again), and that once the fault is gone the next apply converges with no twin.

``KERNELFORM_TIMEOUT=1`` keeps "too slow" cases short. Run with ``-s`` to see the
number of fault cases covered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy, Kind
from tests.support.kf import Result, run, state_of, write_manifest
from tests.support.live_jupyter import JupyterServer

TIMEOUT = "1"
KERNELS = "  etl: {spec: python3, count: 2}\n  solo: {spec: python3}\n"
ADDRESSES = {"etl[0]", "etl[1]", "solo"}
START = r"/api/kernels"


@dataclass(frozen=True)
class Case:
    """A kind of fault (None: the proxy refuses connections) and what a user must read."""

    name: str
    kind: Kind | None
    cause: str  # in the error, for a fault on every request
    write_cause: str = ""  # in the failed action, for a fault on POST api/kernels
    transport: bool = False  # the start may have reached the server: stays pending

    @property
    def start_cause(self) -> str:
        return self.write_cause or self.cause


CASES = [
    Case("refused", None, "cannot connect (connection refused)"),
    Case("reset-headers", Kind.RESET_HEADERS, "connection reset", transport=True),
    Case("reset-body", Kind.RESET_BODY, "connection reset", transport=True),
    Case("http-500", Kind.HTTP_500, "HTTP 500: Injected failure by the fault proxy"),
    Case("http-503", Kind.HTTP_503, "HTTP 503: Service Unavailable (injected)"),
    Case("http-403", Kind.HTTP_403, "not authenticated (HTTP 403)"),
    Case("slow", Kind.SLOW, f"no answer within {TIMEOUT}s", transport=True),
]
# Mid-apply, "refused" is the server dying at the 2nd start: that POST is reset,
# and every later connection is refused.
MID_CASES = [
    Case("server-dies", Kind.DIE, "", write_cause="connection reset", transport=True),
    *CASES[1:],
]

COVERED: set[tuple[str, str]] = set()


@pytest.fixture(scope="module", autouse=True)
def fault_summary() -> Iterator[None]:
    yield
    kinds = sorted({kind for kind, _ in COVERED})
    by_command: dict[str, int] = {}
    for _, command in COVERED:
        by_command[command] = by_command.get(command, 0) + 1
    breakdown = "; ".join(f"{command}: {n}" for command, n in sorted(by_command.items()))
    print(
        f"\nfault cases: {len(COVERED)} (fault kind x command pairs, {len(kinds)} kinds: "
        f"{', '.join(kinds)}; {breakdown})"
    )


def covered(case: Case, command: str) -> None:
    COVERED.add((case.name, command))


@pytest.fixture
def workdir(tmp_path: Path, jupyter: JupyterServer) -> Path:
    return tmp_path


@pytest.fixture
def proxy(jupyter: JupyterServer) -> Iterator[FaultProxy]:
    with FaultProxy(jupyter.url) as fault_proxy:
        yield fault_proxy


def kf(workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, *args: str) -> Result:
    env = {"KF_TEST_URL": proxy.url, "KF_TEST_TOKEN": jupyter.token, "KERNELFORM_TIMEOUT": TIMEOUT}
    return run(*args, cwd=workdir, env=env)


def resources(workdir: Path) -> dict[str, dict[str, Any]]:
    if not (workdir / ".kernelform" / "state.json").is_file():
        return {}
    return dict(state_of(workdir)["resources"])


def inject(proxy: FaultProxy, case: Case, method: str = "*", path: str = r"/.*", **kw: Any) -> None:
    if case.kind is None:
        proxy.refuse()
    else:
        proxy.add(case.kind, method, path, **kw)


def heal(proxy: FaultProxy) -> None:
    """The fault is gone: no rules, held requests go on, connections accepted."""
    proxy.clear()
    proxy.release()
    proxy.accept()
    proxy.wait_idle()


def assert_error_lines(result: Result, proxy: FaultProxy, cause: str) -> None:
    lines = result.err.strip().splitlines()
    assert result.code == 1, result
    assert lines, result
    assert all(line.startswith("Error: ") for line in lines), result.err
    assert proxy.url in result.err, result.err
    assert cause in result.err, result.err


def assert_consistent(workdir: Path, jupyter: JupyterServer) -> None:
    """The state tells the truth about the server (pending starts may or may not run)."""
    recorded = resources(workdir)
    on_server = jupyter.kernel_ids()
    ids = {r["kernel_id"] for r in recorded.values()}
    confirmed = {r["kernel_id"] for r in recorded.values() if not r["pending"]}
    assert on_server <= ids, f"running but not in the state: {on_server - ids}; {recorded}"
    assert confirmed <= on_server, f"in the state but not running: {confirmed - on_server}"


def assert_converges(workdir: Path, jupyter: JupyterServer, proxy: FaultProxy) -> dict[str, str]:
    heal(proxy)
    applied = kf(workdir, jupyter, proxy, "apply", "--auto-approve")
    assert applied.code == 0, applied
    plan = kf(workdir, jupyter, proxy, "plan", "--detailed-exitcode")
    assert plan.code == 0 and "No changes." in plan.out, plan
    recorded = resources(workdir)
    assert set(recorded) == ADDRESSES, recorded
    assert not any(r["pending"] for r in recorded.values()), recorded
    ids = {a: r["kernel_id"] for a, r in recorded.items()}
    assert set(ids.values()) == jupyter.kernel_ids(), "a twin or a lost kernel"
    return ids


# -- a fault on every request: the run fails before changing anything -------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_fault_on_every_request(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, command: str, case: Case
) -> None:
    write_manifest(workdir, jupyter, KERNELS)
    first = kf(workdir, jupyter, proxy, "apply", "--auto-approve", "--target", "etl")
    assert first.code == 0, first
    state_file = workdir / ".kernelform" / "state.json"
    before = state_file.read_bytes()
    running = jupyter.kernel_ids()
    assert len(running) == 2

    inject(proxy, case)
    args = ("plan",) if command == "plan" else ("apply", "--auto-approve")
    failed = kf(workdir, jupyter, proxy, *args)
    assert_error_lines(failed, proxy, case.cause)
    assert "Apply" not in failed.out, failed
    heal(proxy)  # a held (slow) request may still reach the server: let it, then look
    assert state_file.read_bytes() == before, "a failed read must not touch the state"
    assert jupyter.kernel_ids() == running
    assert_consistent(workdir, jupyter)

    ids = assert_converges(workdir, jupyter, proxy)
    assert {ids["etl[0]"], ids["etl[1]"]} == running
    covered(case, command)


# -- a fault on the writes only: the plan is read, then starts fail -----------------------


FAILED_LINE = re.compile(r"^  failed: (\S+) \(start\): (.*)$", re.MULTILINE)


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


# -- retries: a GET is repeated, a write never is -------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [Kind.HTTP_503, Kind.HTTP_500, Kind.RESET_HEADERS, Kind.RESET_BODY],
    ids=lambda k: k.value,
)
def test_a_read_that_fails_once_is_retried(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, kind: Kind
) -> None:
    write_manifest(workdir, jupyter, KERNELS)
    proxy.add(kind, "GET", r"/api/kernels", times=1)
    plan = kf(workdir, jupyter, proxy, "plan")
    assert plan.code == 0, plan
    assert "Plan: 3 to start" in plan.out
    assert proxy.count("GET", r"/api/kernels", fault=kind) == 1
    assert proxy.count("GET", r"/api/kernels") == 2
    covered(Case(kind.value, kind, ""), "plan: one-shot read, retried")


def test_a_read_that_fails_with_500_twice_is_not_retried_again(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    """A 500 is repeated once only (the Kernel Gateway's one-off 500), unlike a 503."""
    write_manifest(workdir, jupyter, KERNELS)
    proxy.add(Kind.HTTP_500, "GET", r"/api/kernels", times=2)
    plan = kf(workdir, jupyter, proxy, "plan")
    assert_error_lines(plan, proxy, "GET api/kernels failed with HTTP 500")
    assert proxy.count("GET", r"/api/kernels") == 2


def test_a_start_that_gets_503_once_fails_and_is_not_repeated(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    write_manifest(workdir, jupyter, KERNELS)
    proxy.add(Kind.HTTP_503, "POST", START, times=1)
    result = kf(workdir, jupyter, proxy, "apply", "--auto-approve")
    assert result.code == 1, result
    assert "Apply finished with errors. 2 started; 1 failed; 0 blocked." in result.out
    (failed,) = FAILED_LINE.findall(result.out)
    assert "POST api/kernels failed with HTTP 503" in failed[1], failed
    posts = [s for s in proxy.seen if s.method == "POST" and s.path == START]
    assert len(posts) == 3, "exactly one POST per start: the 503 one was not retried"
    assert [s.fault for s in posts].count(Kind.HTTP_503) == 1
    chosen = [s.json()["kernel_id"] for s in posts]
    assert len(set(chosen)) == 3, chosen
    assert failed[0] not in resources(workdir)
    assert_consistent(workdir, jupyter)
    assert len(jupyter.kernel_ids()) == 2
    assert_converges(workdir, jupyter, proxy)
    covered(Case("http-503", Kind.HTTP_503, ""), "apply: one-shot write, not retried")


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
