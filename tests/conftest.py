"""Shared fixtures: one real jupyter server for the whole test session.

Fixtures
--------
``jupyter_server`` (session)
    The running server (``tests.support.live_jupyter.JupyterServer``): ``.url`` (ends in
    ``/``), ``.token``, ``.root``, ``.log_path``, ``.runtime_dir``, ``.data_dir``, and
    plain-``requests`` helpers (``api``, ``kernels``, ``kernel_ids``, ``sessions``,
    ``create_session``, ``run_code``, ``wait_ready``, ``wait_gone``, ``cleanup``...).
    Kernelspecs: ``python3`` (this interpreter's ipykernel), ``broken`` (exits at
    once) and ``mute`` (runs, never answers). Do not use it directly unless you clean up yourself.
``jupyter`` (function)
    The same server; after the test every session is deleted and every kernel shut
    down, so tests never see each other's kernels.
``client`` (function)
    A ``kernelform.client.JupyterClient`` on ``jupyter`` (``backoff=0``), closed after.

When a test that used a server fails, the tail of that server's log is added to
its report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from kernelform.client import JupyterClient
from tests.support.live_jupyter import LIGHT_SPEC, JupyterServer, launch, write_kernelspec


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    server = launch(tmp_path_factory.mktemp("jupyter"))
    try:
        yield server
    finally:
        if server.running:
            with contextlib.suppress(Exception):
                server.cleanup(timeout=10)
        server.stop()


@pytest.fixture(scope="session")
def light_jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A second server for tests that start many cheap kernels (the ``light`` spec, a
    process that only sleeps) and shut them down fast (``shutdown_wait_time`` 0.5 s):
    the crash sweeps and the PostgreSQL command-line tests share it."""
    server = launch(
        tmp_path_factory.mktemp("light-jupyter"),
        extra_args=["--KernelManager.shutdown_wait_time=0.5"],
    )
    write_kernelspec(server.data_dir, "light", LIGHT_SPEC)
    try:
        yield server
    finally:
        if server.running:
            with contextlib.suppress(Exception):
                server.cleanup(timeout=10)
        server.stop()


@pytest.fixture
def jupyter(jupyter_server: JupyterServer) -> Iterator[JupyterServer]:
    assert jupyter_server.running, f"the jupyter server died; its log:\n{jupyter_server.log_tail()}"
    yield jupyter_server
    jupyter_server.cleanup()


@pytest.fixture
def client(jupyter: JupyterServer) -> Iterator[JupyterClient]:
    with JupyterClient(jupyter.url, jupyter.token, backoff=0) as c:
        yield c


def _servers_of(item: pytest.Item) -> list[JupyterServer]:
    """Every JupyterServer among the test's fixture values (dependencies included)."""
    values: Any = getattr(item, "funcargs", None) or {}
    found: list[JupyterServer] = []
    for value in values.values():
        if isinstance(value, JupyterServer) and value not in found:
            found.append(value)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    for server in _servers_of(item):
        report.sections.append(
            (f"jupyter server log, last lines ({server.url})", server.log_tail())
        )
