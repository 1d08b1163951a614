"""Fixtures for the ``watch`` tests: one dedicated Jupyter server, and watches as subprocesses.

``bench`` (package)
    A jupyter server of its own, on a fixed port with a fixed token, so that a
    test can stop it and start it again where a running watch expects it
    (``bench.stop_server()``, ``bench.relaunch()``). Kernelspecs: the usual ones
    plus ``light`` (a process that only sleeps: cheap, never answers, so apply
    it with ``--no-wait``) and ``slow`` (ipykernel after a 4 s sleep). Kernels
    shut down within half a second (``shutdown_wait_time``).
``lab`` (function)
    The bench's server, running; every kernel and session left is removed after.
``watches`` (function)
    Starts ``kernelform watch`` subprocesses (``watches.start(dir, *args)``) and
    kills whatever still runs after the test; asserts no traceback and no token
    ever reached their output.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.kf import TRACEBACK, server_env
from tests.support.live_jupyter import (
    LIGHT_SPEC,
    SLOW_SPEC,
    JupyterServer,
    free_port,
    launch,
    write_kernelspec,
)

SERVER_ARGS = ["--KernelManager.shutdown_wait_time=0.5"]


@dataclass
class Bench:
    workdir: Path
    port: int
    token: str
    server: JupyterServer = field(init=False)

    def launch(self) -> JupyterServer:
        self.server = launch(
            self.workdir, token=self.token, port=self.port, extra_args=SERVER_ARGS, attempts=1
        )
        write_kernelspec(self.server.data_dir, "light", LIGHT_SPEC)
        write_kernelspec(self.server.data_dir, "slow", SLOW_SPEC)
        return self.server

    def stop_server(self) -> None:
        self.server.stop()

    def relaunch(self) -> JupyterServer:
        assert not self.server.running
        return self.launch()

    def env(self) -> dict[str, str]:
        return server_env(self.server)


@pytest.fixture(scope="package")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    made = Bench(tmp_path_factory.mktemp("watch-jupyter"), free_port(), os.urandom(24).hex())
    made.launch()
    try:
        yield made
    finally:
        if made.server.running:
            with contextlib.suppress(Exception):
                made.server.cleanup(timeout=10)
        made.server.stop()


@pytest.fixture
def lab(bench: Bench) -> Iterator[JupyterServer]:
    if not bench.server.running:
        bench.relaunch()
    yield bench.server
    if bench.server.running:
        bench.server.cleanup()


class Watch:
    """One ``kernelform watch`` subprocess; its output is read as it comes."""

    def __init__(self, cwd: Path, args: tuple[str, ...], env: dict[str, str]) -> None:
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kernelform", "watch", *args],
            cwd=cwd,
            env={**os.environ, "NO_COLOR": "1", **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self._changed:
                into.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def json_format(self) -> bool:
        return "json" in self.args

    def events(self) -> list[dict[str, Any]]:
        with self._changed:
            return [json.loads(line) for line in self.out]

    def wait(
        self, matches: Callable[[str], bool], *, after: int = 0, timeout: float = 30, what: str = ""
    ) -> tuple[int, str]:
        """The first output line from index *after* on that *matches*, and its index."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(after, len(self.out)):
                    if matches(self.out[index]):
                        return index, self.out[index]
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._alive_readers()):
                    raise AssertionError(
                        f"no {what or 'matching line'} within {timeout:g}s; watch output:\n"
                        + "\n".join(self.out[-40:])
                        + "\nstderr:\n"
                        + "\n".join(self.err[-20:])
                    )
                self._changed.wait(min(left, 0.5))

    def wait_event(
        self,
        event: str,
        *,
        after: int = 0,
        timeout: float = 30,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
    ) -> tuple[int, dict[str, Any]]:
        """The first JSON event of kind *event* (from index *after*) for which *where* holds."""

        def matches(line: str) -> bool:
            data = json.loads(line)
            return bool(data["event"] == event and where(data))

        index, line = self.wait(matches, after=after, timeout=timeout, what=f"{event} event")
        return index, json.loads(line)

    def _alive_readers(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def stop(self, sig: signal.Signals, *, timeout: float = 15) -> tuple[int, float]:
        """Send *sig*; return the exit status and the seconds it took to exit."""
        began = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        took = time.monotonic() - began
        for reader in self._readers:
            reader.join(5)
        return code, took

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for reader in self._readers:
            reader.join(5)


class Watches:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.started: list[Watch] = []

    def start(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> Watch:
        watch = Watch(cwd, args, {**self.bench.env(), **(env or {})})
        self.started.append(watch)
        return watch


@pytest.fixture
def watches(bench: Bench) -> Iterator[Watches]:
    made = Watches(bench)
    try:
        yield made
    finally:
        for watch in made.started:
            watch.kill()
        for watch in made.started:
            text = "\n".join(watch.out + watch.err)
            assert TRACEBACK not in text, text
            assert bench.token not in text
