"""Stopping a run: no new action starts, waits for kernels end, nothing goes unrecorded.

The library side of ``watch``'s SIGTERM: ``Runtime.stop`` reaches the
executor (which starts no new action once it is set) and every wait for a
kernel to answer (which ends within ``CANCEL_POLL`` seconds, as a timeout
would, leaving a lingering handshake to close cleanly).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from kernelform.channels import CANCEL_POLL, settle, wait_ready
from kernelform.client import JupyterClient
from kernelform.errors import KernelNotReady
from kernelform.executor import execute
from kernelform.facts import read_server
from kernelform.manifest.loader import parse_manifest
from kernelform.planner import make_plan
from kernelform.state.model import new_state
from tests.support.fakeserver import FakeJupyter, MemoryStore
from tests.support.live_jupyter import JupyterServer, wait_for

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)


class StoppingFake(FakeJupyter):
    """Sets *stop* while its first start is in flight."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__("lab")
        self.stop = stop

    def start_kernel(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        self.stop.set()
        return super().start_kernel(*args, **kwargs)  # type: ignore[arg-type]


def test_a_stop_lets_the_action_in_flight_finish_and_starts_no_other() -> None:
    manifest = parse_manifest(
        "servers:\n  lab: {url: 'http://x/'}\nkernels:\n  pool: {spec: python3, count: 3}\n",
        filename="k.yaml",
    )
    stop = threading.Event()
    fake = StoppingFake(stop)
    state = new_state()
    live = {"lab": read_server("lab", fake)}  # type: ignore[arg-type]
    plan = make_plan(manifest, state, live, now=NOW)
    assert len(plan.runnable) == 3
    store = MemoryStore(state)
    report, final = execute(
        plan,
        clients={"lab": fake},  # type: ignore[dict-item]
        live=live,
        store=store,
        state=state,
        parallelism=1,
        clock=lambda: NOW,
        stop=stop,
    )
    assert [o.ok for o in report.outcomes] == [True]
    assert len(report.skipped) == 2
    assert set(report.skipped) | {report.outcomes[0].change} == set(plan.runnable)
    # The one started is recorded, confirmed; the skipped ones are not in the state.
    (resource,) = final.resources.values()
    assert resource.kernel_id in fake.kernels and not resource.pending
    assert store.read() == final


@pytest.fixture
def slow(lab: JupyterServer) -> Iterator[str]:
    """A kernel that answers only after a few seconds."""
    yield str(lab.start_kernel("slow")["id"])


def test_a_cancel_ends_a_wait_within_a_moment_and_leaves_the_count_right(
    lab: JupyterServer, slow: str
) -> None:
    jupyter = lab
    cancel = threading.Event()
    with JupyterClient(jupyter.url, jupyter.token, backoff=0) as client:
        threading.Timer(0.5, cancel.set).start()
        began = time.monotonic()
        with pytest.raises(KernelNotReady) as caught:
            client.wait_ready(slow, timeout=60, cancel=cancel)
        took = time.monotonic() - began
        assert took < 0.5 + CANCEL_POLL + 2, took  # far from the 60s timeout, even on a busy CI
        assert "the wait was cut short" in str(caught.value)
        assert caught.value.summary == "the wait was cut short (kernelform was stopping)"
        # The handshake the server held was left to finish, never cut: once it
        # closed, the server counts no connection (a cut one would read -1).
        assert settle(30) == 0
        wait_for(
            lambda: (jupyter.kernel(slow) or {}).get("connections") == 0,
            timeout=5,
            what="no connection left",
        )
        assert wait_ready(client, slow, timeout=30).kernel_id == slow
