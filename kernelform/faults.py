"""Named fault points, so that tests can crash or fail kernelform at an exact step.

``KERNELFORM_CRASH_AT=NAME:N`` makes the N-th (1-based) pass through
``checkpoint(NAME)`` in this process kill the process with SIGKILL: no cleanup,
no ``finally``, as a power cut or an OOM kill would. The crash-safety tests walk
every point of an apply: ``before-request``/``after-request`` (every HTTP
request), ``before-state-write``/``after-state-write`` (every state write of an
apply) and ``before-start``/``after-start`` (every kernel start).

``KERNELFORM_FAIL_AT=NAME:N`` makes the N-th pass through ``fail_point(NAME)``
raise ``OSError(ENOSPC)``, as a full disk would; ``NAME:N+`` fails the N-th and
every later pass (the disk stays full). The only point is ``state-write``, at
the start of every write of the state file.

Unset, a checkpoint or a fail point costs one environment lookup.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections import Counter

ENV = "KERNELFORM_CRASH_AT"
FAIL_ENV = "KERNELFORM_FAIL_AT"

_passes: Counter[str] = Counter()
_failures: Counter[str] = Counter()
_lock = threading.Lock()


def checkpoint(name: str) -> None:
    """Count a pass through *name*; die here if the environment asks for it."""
    target = os.environ.get(ENV)
    if not target:
        return
    wanted, _, nth = target.rpartition(":")
    if wanted != name:
        return
    with _lock:
        _passes[name] += 1
        if str(_passes[name]) == nth:
            os.kill(os.getpid(), signal.SIGKILL)


def fail_point(name: str, filename: str | None = None) -> None:
    """Count a pass through *name*; raise ``OSError(ENOSPC)`` if the environment asks."""
    target = os.environ.get(FAIL_ENV)
    if not target:
        return
    wanted, _, nth = target.rpartition(":")
    if wanted != name:
        return
    from_then_on = nth.endswith("+")
    try:
        first = int(nth.removesuffix("+"))
    except ValueError:
        return
    with _lock:
        _failures[name] += 1
        count = _failures[name]
    if count == first or (from_then_on and count > first):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
