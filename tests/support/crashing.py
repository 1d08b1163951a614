"""kernelform's command line with fault hooks: crash or fail it at an exact step.

    python -m tests.support.crashing ARGS...   (tests/support/kf.py uses it for a fault)

``KERNELFORM_CRASH_AT=NAME:N`` kills the process with SIGKILL at the N-th
(1-based) pass through hook NAME: no cleanup, no ``finally``, as a power cut or
an OOM kill would. Names: ``before-request``/``after-request`` (every HTTP
request), ``before-state-write``/``after-state-write`` (every action the
executor records), ``before-start``/``after-start`` (every kernel start).

``KERNELFORM_FAIL_AT=state-write:N`` makes the N-th pass through the store's
write (``Hooks.before_store_io``) raise ``OSError(ENOSPC)``, as a full disk
would; ``state-write:N+`` fails the N-th and every later one (the disk stays
full).

This lives in the tests, not in kernelform: the product takes a ``Hooks``
object and never reads the environment for such things.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections import Counter

from kernelform.cli import main
from kernelform.hooks import Hooks

CRASH_ENV = "KERNELFORM_CRASH_AT"
FAIL_ENV = "KERNELFORM_FAIL_AT"
FAULT_ENV = (CRASH_ENV, FAIL_ENV)


class FaultHooks(Hooks):
    """Kill or fail at the step the environment names; count every pass."""

    def __init__(self, crash_at: str = "", fail_at: str = "") -> None:
        self._crash = _parse(crash_at)
        self._fail = _parse(fail_at)
        self._passes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, name: str) -> int:
        with self._lock:
            self._passes[name] += 1
            return self._passes[name]

    def _point(self, name: str) -> None:
        if self._crash is None or self._crash[0] != name:
            return
        if str(self._count(name)) == self._crash[1]:
            os.kill(os.getpid(), signal.SIGKILL)

    def before_request(self, method: str, url: str) -> None:
        self._point("before-request")

    def after_request(self, method: str, url: str, status: int) -> None:
        self._point("after-request")

    def before_state_write(self) -> None:
        self._point("before-state-write")

    def after_state_write(self) -> None:
        self._point("after-state-write")

    def before_start(self, address: str) -> None:
        self._point("before-start")

    def after_start(self, address: str, kernel_id: str) -> None:
        self._point("after-start")

    def before_store_io(self, location: str) -> None:
        if self._fail is None or self._fail[0] != "state-write":
            return
        count, when = self._count("state-write"), self._fail[1]
        try:
            first = int(when.removesuffix("+"))
        except ValueError:
            return
        if count == first or (when.endswith("+") and count > first):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), location)


def _parse(text: str) -> tuple[str, str] | None:
    name, _, when = text.rpartition(":")
    return (name, when) if name else None


if __name__ == "__main__":
    main(
        sys.argv[1:],
        hooks=FaultHooks(os.environ.get(CRASH_ENV, ""), os.environ.get(FAIL_ENV, "")),
    )
