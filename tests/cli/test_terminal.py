"""kernelform on a real terminal (a pty): locks held by a live run, Ctrl-C at the
prompt, colour and the state list's header.

An ``apply`` sitting at its confirmation prompt holds the state lock: a
``force-unlock`` of that lock is refused and changes nothing; Ctrl-C typed at the
prompt ends the run with its message on a line of its own. A lock that cannot be
checked from here (its holder record names another host, as on a network
filesystem where the dead holder's lock stays) is removed only after a
confirmation (``--force``, or ``yes`` on stdin). About 12 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kernelform.state import FileStateStore, LockInfo
from tests.support.kf import ROOT, TRACEBACK, Result, run, server_env, write_manifest
from tests.support.live_jupyter import JupyterServer


class Terminal:
    """A command run on a pseudo-terminal that is its controlling terminal."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.output = b""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kernelform", *args],
            cwd=cwd,
            env={k: v for k, v in {**os.environ, **env}.items() if k != "NO_COLOR"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)

    def _pump(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the other side is closed
            return False
        self.output += chunk
        return bool(chunk)

    def expect(self, text: str, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout:g}s; got {self.text!r}")
            if not self._pump(0.1) and self.process.poll() is not None:
                raise AssertionError(f"exited before {text!r}; got {self.text!r}")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self, *, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._pump(0.1) and self.process.poll() is not None:
                break
        code = self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        os.close(self.master)
        return code

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace").replace("\r\n", "\n")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    yield started
    for terminal in started:
        terminal.kill()


def on_terminal(
    terminals: list[Terminal], cwd: Path, *args: str, env: dict[str, str] | None = None
) -> Terminal:
    terminal = Terminal(list(args), cwd=cwd, env=env or {})
    terminals.append(terminal)
    return terminal


def lock_file(workdir: Path) -> Path:
    return workdir / ".kernelform" / "state.json.lock"


HOLDER = """
import json, sys
from kernelform.state import FileStateStore
store = FileStateStore(sys.argv[1])
with store.lock(operation="apply"):
    store.lock_path.write_text(sys.argv[2])  # as a run on another host would have written it
    print("locked", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def foreign_lock(workdir: Path, info: LockInfo) -> Iterator[None]:
    """The lock held (flock) with a holder record naming another host, as a lock left on a
    network filesystem by a run on another machine looks from here."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workdir / ".kernelform" / "state.json"),
         json.dumps(info.to_dict())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        yield
    finally:
        child.kill()
        child.wait()


def test_a_live_lock_is_never_broken_and_a_foreign_one_only_when_confirmed(
    tmp_path: Path, jupyter: JupyterServer, terminals: list[Terminal]
) -> None:
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3}\n")
    env = server_env(jupyter)

    def kf(*args: str, stdin: str | None = None) -> Result:
        return run(*args, cwd=tmp_path, env=env, stdin=stdin)

    apply = on_terminal(terminals, tmp_path, "apply", env=env)
    apply.expect("Only 'yes' will be accepted:")
    holder = json.loads(lock_file(tmp_path).read_text())
    assert holder["pid"] == apply.process.pid
    locked = kf("plan")
    assert locked.code == 1 and f"held by pid {apply.process.pid}" in locked.err, locked
    assert "force-unlock" not in locked.err  # alive on this host: it would only do harm
    for args in (["force-unlock", holder["id"]], ["force-unlock", "--force", holder["id"]]):
        refused = kf(*args, stdin="yes\n")
        assert refused.code == 1, refused
        assert refused.err.splitlines() == [
            "Error: refusing to unlock the state at .kernelform/state.json:"
            f" the lock is held by pid {apply.process.pid} on host {holder['host']} since"
            f" {holder['since']} (apply) and that process is alive on this host; wait for it,"
            f" or stop it (kill {apply.process.pid}) and its lock goes with it"
        ], refused.err
        assert json.loads(lock_file(tmp_path).read_text()) == holder
    assert FileStateStore(tmp_path / ".kernelform" / "state.json").lock_info() is not None

    apply.type(b"\x03")  # Ctrl-C at the prompt
    assert apply.finish() == 130
    assert "\nInterrupted.\n" in apply.text, apply.text  # on a line of its own
    assert TRACEBACK not in apply.text
    assert jupyter.kernel_ids() == set()
    assert not lock_file(tmp_path).exists()

    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    far = LockInfo(
        id="far-lock", pid=4242, host="elsewhere.example", operation="apply", since=since
    )
    with foreign_lock(tmp_path, far):
        locked = kf("plan")
        assert locked.code == 1 and "run 'kernelform force-unlock far-lock'" in locked.err, locked
        wrong = kf("force-unlock", "other-id", stdin="yes\n")
        assert wrong.code == 1 and "is far-lock, not other-id" in wrong.err, wrong
        kept = kf("force-unlock", "far-lock", stdin="no\n")
        assert kept.code == 1 and "Unlock cancelled; the lock was kept." in kept.out, kept
        assert "held by pid 4242 on host elsewhere.example" in kept.out
        assert lock_file(tmp_path).exists()
        removed = kf("force-unlock", "far-lock", stdin="yes\n")
        assert removed.code == 0 and "Removed the lock far-lock" in removed.out, removed
        assert not lock_file(tmp_path).exists()
        assert kf("plan").code == 0  # the next run takes a new lock
    with foreign_lock(tmp_path, far):
        forced = kf("force-unlock", "--force", "far-lock")
        assert forced.code == 0 and "Removed the lock far-lock" in forced.out, forced


def test_colour_header_and_term_dumb(
    tmp_path: Path, jupyter: JupyterServer, terminals: list[Terminal]
) -> None:
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3}\n")
    env = server_env(jupyter)
    coloured = on_terminal(terminals, tmp_path, "plan", env={**env, "TERM": "xterm"})
    assert coloured.finish() == 0
    assert "\x1b[" in coloured.text, coloured.text
    dumb = on_terminal(terminals, tmp_path, "plan", env={**env, "TERM": "dumb"})
    assert dumb.finish() == 0
    assert "\x1b[" not in dumb.text and "etl will be started" in dumb.text, dumb.text
    assert run("apply", "--auto-approve", "--no-wait", cwd=tmp_path, env=env).code == 0
    listed = on_terminal(terminals, tmp_path, "state", "list", env={**env, "TERM": "dumb"})
    assert listed.finish() == 0
    assert listed.text.splitlines()[0].split() == ["ADDRESS", "SERVER", "KERNEL", "ID", "SPEC"]
    assert listed.text.splitlines()[1].startswith("etl ")
