"""Ctrl-C in the middle of an apply of several kernels: a real SIGINT to the process.

With ``--parallelism 1`` the starts go one after the other; the fault proxy holds
the second start's request until the test lets it go, so the interruption lands
at a known point: one kernel started and ready, one start in flight, two not
started. The start in flight finishes and is recorded, but its wait for the
kernel to answer is cut short (the run is stopping), so it is recorded tainted
and reported failed; nothing new begins; the usual end report lists what was
done, what failed and what was not started; the exit status is 130. About 6 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultproxy import FaultProxy, Kind
from tests.support.kf import TRACEBACK, state_of, write_manifest
from tests.support.live_jupyter import JupyterServer, wait_for


@pytest.fixture
def proxy(jupyter: JupyterServer) -> Iterator[FaultProxy]:
    with FaultProxy(jupyter.url) as fault_proxy:
        yield fault_proxy


class Lines:
    """The merged output of a process, read line by line as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._stream = process.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, *, timeout: float = 60) -> str:
        return wait_for(
            lambda: next((line for line in self.lines if line.startswith(prefix)), None),
            timeout=timeout,
            what=f"a line starting with {prefix!r}; so far: {self.lines}",
        )

    def finish(self) -> str:
        self._thread.join(30)
        return "\n".join(self.lines)


def test_ctrl_c_mid_apply_finishes_what_runs_and_reports(
    tmp_path: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    write_manifest(tmp_path, jupyter, "  k: {spec: python3, count: 4}\n")
    held = proxy.add(Kind.SLOW, "POST", r"/api/kernels", after=1, times=1, delay=60)
    process = subprocess.Popen(
        [sys.executable, "-m", "kernelform", "apply", "--auto-approve", "--parallelism", "1"],
        cwd=tmp_path,
        env={
            **os.environ,
            "NO_COLOR": "1",
            "KF_TEST_URL": proxy.url,
            "KF_TEST_TOKEN": jupyter.token,
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = Lines(process)
        output.wait_for("  + k[0]: started kernel")
        wait_for(lambda: held.applied == 1, what="the second start to be held by the proxy")
        process.send_signal(signal.SIGINT)
        output.wait_for("Interrupted: nothing new is started")
        proxy.release()
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.finish()
    assert code == 130, text
    assert TRACEBACK not in text
    assert "  + k[1]: start FAILED: " in text and "the wait was cut short" in text, text
    assert "Apply interrupted! 1 started; 1 failed; 0 blocked; 2 not started." in text, text
    assert "  not started: k[2] (start): new" in text and "  not started: k[3] (start): new" in text
    resources = state_of(tmp_path)["resources"]
    assert set(resources) == {"k[0]", "k[1]"}, resources  # every start recorded
    assert not any(r["pending"] for r in resources.values())
    assert resources["k[0]"]["tainted"] is None and resources["k[1]"]["tainted"] is not None
    assert {r["kernel_id"] for r in resources.values()} == jupyter.kernel_ids()
    assert proxy.count("POST", r"/api/kernels") == 2
