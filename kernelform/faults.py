"""Named fault points, so that tests can crash kernelform at an exact step.

``KERNELFORM_CRASH_AT=NAME:N`` makes the N-th (1-based) pass through
``checkpoint(NAME)`` in this process kill the process with SIGKILL: no cleanup,
no ``finally``, as a power cut or an OOM kill would. Unset, a checkpoint costs
one dictionary lookup. The crash-safety tests walk every point of an apply.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "KERNELFORM_CRASH_AT"

_passes: Counter[str] = Counter()
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
