"""Where kernels run: a declared cwd must exist on the server; no cwd is the server's root.

The server here runs with its process in a directory that is not its root (as
a server started from a home directory with ``--ServerApp.root_dir`` does), so
that "the root" and "wherever the server process runs" can be told apart by
reading ``os.getcwd()`` inside the kernel. The requests kernelform makes are
counted through the fault proxy: one ``api/contents`` request per distinct cwd
per server. About 12 s, 3 of them starting the server.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultproxy import FaultProxy, Kind
from tests.support.kf import Result, run, state_of
from tests.support.live_jupyter import JupyterServer, launch


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    workdir = tmp_path_factory.mktemp("cwd-jupyter")
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    launched = launch(workdir, process_cwd=elsewhere)
    try:
        yield launched
    finally:
        with contextlib.suppress(Exception):
            launched.cleanup(timeout=10)
        launched.stop()


@pytest.fixture
def lab(server: JupyterServer) -> Iterator[JupyterServer]:
    yield server
    server.cleanup()


@pytest.fixture
def proxy(lab: JupyterServer) -> Iterator[FaultProxy]:
    with FaultProxy(lab.url) as fault_proxy:
        yield fault_proxy


def kf(workdir: Path, url: str, token: str, kernels: str, *args: str) -> Result:
    (workdir / "kernelform.yaml").write_text(
        f"servers:\n  lab:\n    url: {url}\n    token: ${{KF_TOKEN}}\nkernels:\n{kernels}"
    )
    return run(*args, cwd=workdir, env={"KF_TOKEN": token})


def contents_requests(proxy: FaultProxy) -> list[str]:
    return sorted(s.path for s in proxy.seen if s.path.startswith("/api/contents"))


def test_a_kernel_without_cwd_runs_at_the_server_root(lab: JupyterServer, tmp_path: Path) -> None:
    applied = kf(
        tmp_path, lab.url, lab.token, "  etl: {spec: python3}\n", "apply", "--auto-approve"
    )
    assert applied.code == 0, applied
    kernel_id = state_of(tmp_path)["resources"]["etl"]["kernel_id"]
    where = lab.run_code(kernel_id, "import os\nos.getcwd()")
    assert Path(where) == lab.root, f"the kernel runs in {where}, not at the root {lab.root}"


def test_a_missing_cwd_fails_the_plan_naming_server_and_path(
    lab: JupyterServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    (lab.root / "pipelines" / "etl").mkdir(parents=True, exist_ok=True)
    (lab.root / "notes.txt").write_text("not a directory")
    kernels = (
        "  etl: {spec: python3, cwd: pipelines/etl, count: 2}\n"
        "  typo: {spec: python3, cwd: pipelines/etll}\n"
        "  file: {spec: python3, cwd: notes.txt}\n"
    )
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = kf(tmp_path, proxy.url, lab.token, kernels, *command)
        assert result.code == 1, result
        assert result.err.splitlines() == [
            f"Error: kernel 'typo' has cwd 'pipelines/etll', which does not exist on server"
            f" 'lab' ({proxy.url}); create it there, or fix the cwd",
            f"Error: kernel 'file' has cwd 'notes.txt', which is a file, not a directory on"
            f" server 'lab' ({proxy.url}); create it there, or fix the cwd",
        ], result.err
    assert lab.kernel_ids() == set()
    # One request per distinct cwd per plan (etl[0] and etl[1] share one), and one
    # for the root, which tells a missing path from a server without contents API.
    assert contents_requests(proxy) == sorted(
        2 * ["/api/contents/", "/api/contents/notes.txt", "/api/contents/pipelines/etl"]
        + 2 * ["/api/contents/pipelines/etll"]
    )
    fixed = kf(
        tmp_path, proxy.url, lab.token, "  etl: {spec: python3, cwd: pipelines/etl}\n", "apply",
        "--auto-approve",
    )  # fmt: skip
    assert fixed.code == 0, fixed
    kernel_id = state_of(tmp_path)["resources"]["etl"]["kernel_id"]
    where = lab.run_code(kernel_id, "import os\nos.getcwd()")
    assert Path(where) == lab.root / "pipelines" / "etl"


def test_a_server_without_contents_api_is_planned_and_said_once(
    lab: JupyterServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.add(Kind.HTTP_404, "GET", r"/api/contents.*")
    kernels = (
        "  a: {spec: python3, cwd: somewhere}\n"
        "  b: {spec: python3, cwd: elsewhere}\n"
        "  c: {spec: python3}\n"
    )
    result = kf(tmp_path, proxy.url, lab.token, kernels, "plan", "--detailed-exitcode")
    assert result.code == 2, result
    assert "Plan: 3 to start" in result.out
    warnings = [line for line in result.err.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1, result.err
    assert re.fullmatch(
        r"Warning: server 'lab' has no contents API \(api/contents answers 404\), so the cwd of"
        r" its kernels \(elsewhere, somewhere\) could not be checked; .*",
        warnings[0],
    ), warnings
    assert contents_requests(proxy) == [
        "/api/contents/",
        "/api/contents/elsewhere",
        "/api/contents/somewhere",
    ]
