"""kernelform's command line that pauses at an exact step, so a test can act meanwhile.

    KF_PAUSE_AT=after-start:2 KF_PAUSE_DIR=DIR python -m tests.support.pausing ARGS...

At the N-th pass through the named hook (``after-start``: the server answered
a start, not yet recorded; ``after-state-write``: an action is recorded) the
process creates ``DIR/paused`` and waits until ``DIR/resume`` exists (at most
120 s), then goes on. A test stops the database in between, for instance.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from kernelform.cli import main
from kernelform.hooks import Hooks

WAIT = 120.0


class PauseHooks(Hooks):
    def __init__(self, at: str, directory: Path) -> None:
        name, _, nth = at.rpartition(":")
        self.name, self.nth, self.directory = name, int(nth), directory
        self.passes: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _point(self, name: str) -> None:
        with self.lock:
            self.passes[name] += 1
            hit = name == self.name and self.passes[name] == self.nth
        if not hit:
            return
        (self.directory / "paused").touch()
        deadline = time.monotonic() + WAIT
        while not (self.directory / "resume").exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def after_start(self, address: str, kernel_id: str) -> None:
        self._point("after-start")

    def after_state_write(self) -> None:
        self._point("after-state-write")


if __name__ == "__main__":
    main(
        sys.argv[1:],
        hooks=PauseHooks(os.environ["KF_PAUSE_AT"], Path(os.environ["KF_PAUSE_DIR"])),
    )
