"""plan and apply through a faulty network: the cases, and the checks every case makes.

The manifest's server URL points at ``tests.support.faultproxy.FaultProxy``, which
forwards to the session's real jupyter server and injects one kind of fault.
Every case checks what a user sees (exit 1, ``Error:`` lines or a report naming
the server and the cause, never a traceback), that the state tells the truth
about the server (every kernel kernelform started is recorded; everything
recorded runs, except pending starts, which the next run confirms or starts
again), and that once the fault is gone the next apply converges with no twin.

``KERNELFORM_TIMEOUT=1`` keeps "too slow" cases short. The cases run in
client/test_faults.py (what the client makes of each fault, retries) and
executor/test_faults.py (starts failing mid-apply); each module prints the number
of fault cases covered so far when it ends (``fault_summary``; run with ``-s``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultproxy import FaultProxy, Kind
from tests.support.kf import Result, run, state_of
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


# The fixtures: a module imports them by name (pytest finds them there).


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


@pytest.fixture
def workdir(tmp_path: Path, jupyter: JupyterServer) -> Path:
    return tmp_path


@pytest.fixture
def proxy(jupyter: JupyterServer) -> Iterator[FaultProxy]:
    with FaultProxy(jupyter.url) as fault_proxy:
        yield fault_proxy


def covered(case: Case, command: str) -> None:
    COVERED.add((case.name, command))


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


FAILED_LINE = re.compile(r"^  failed: (\S+) \(start\): (.*)$", re.MULTILINE)
