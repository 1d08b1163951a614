"""Shared fixtures for the JupyterHub tests: one real hub for the whole session.

Fixtures
--------
``hub_session`` (session)
    A running ``tests.support.live_hub.Hub`` with users ``USERS`` and groups ``GROUPS``;
    the servers of ``RUNNING`` are up, those of ``STOPPED`` are not. Services:
    ``Hub.token`` (the manager: ``MANAGER_SCOPES``) and ``Hub.token_without(scope)``
    for each of those scopes. Do not use it directly unless you restore what you
    change.
``hub`` (function)
    The same hub, put back after the test: every kernel on the running servers
    shut down, servers of ``RUNNING`` running (restarted if killed or stopped),
    those of ``STOPPED`` stopped.

The hub polls its servers only every ``POLL_INTERVAL`` seconds (JupyterHub's
default is 30): a server killed behind its back (``Hub.kill_server``) is still
believed running, and still routed to, until a test restarts it, as on a real hub
until its next poll. ``POST .../server`` polls at once, so ``Hub.start_server``
restarts a killed server without waiting.

When a test that used the hub fails, the tail of the hub's log (tokens redacted)
is added to its report. ``Hub.stop`` leaves no process working under the hub's
directory; the teardown fails if one had escaped the hub's process tree (a kernel
orphaned by a server killed without ``Hub.kill_server``).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.live_hub import Hub, launch_hub

USERS = ("ana", "bob", "carl", "dora")
GROUPS = {"physics-101": ("ana", "bob"), "staff": ("carl",)}
RUNNING = ("ana", "carl")
STOPPED = ("bob", "dora")
POLL_INTERVAL = 300


@pytest.fixture(scope="session")
def hub_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = launch_hub(
        tmp_path_factory.mktemp("hub"), users=USERS, groups=GROUPS, poll_interval=POLL_INTERVAL
    )
    try:
        with ThreadPoolExecutor(len(RUNNING)) as pool:
            list(pool.map(hub.start_server, RUNNING))
        yield hub
    finally:
        strays = hub.stop()
    assert not strays, f"processes that escaped the hub's process tree: {strays}"


@pytest.fixture
def hub(hub_session: Hub) -> Iterator[Hub]:
    assert hub_session.running, f"the hub died; its log:\n{hub_session.log_tail()}"
    yield hub_session
    restore(hub_session)


def restore(hub: Hub) -> None:
    """Put the hub back as ``hub_session`` made it (see the module docstring)."""
    for user in STOPPED:
        if hub.user_model(user)["server"] is not None:
            # A server stopped through the hub leaves a kernel that ignores
            # shutdown_request (`light`) running, orphaned: shut them down first.
            if hub.is_running(user) and hub.server_pid(user) is not None:
                hub.cleanup_kernels(user)
            hub.stop_server(user)
    for user in RUNNING:
        if hub.server_pid(user) is None:  # stopped, or killed behind the hub's back
            hub.start_server(user)
        hub.cleanup_kernels(user)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    values: Any = getattr(item, "funcargs", None) or {}
    for value in {id(v): v for v in values.values() if isinstance(v, Hub)}.values():
        report.sections.append((f"hub log, last lines ({value.url})", value.log_tail()))
