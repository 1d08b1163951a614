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

CRASH_ENV = "KERNELFORM_CRASH_AT"
FAIL_ENV = "KERNELFORM_FAIL_AT"

_passes: Counter[str] = Counter()
_failures: Counter[str] = Counter()
_lock = threading.Lock()


def checkpoint(name: str) -> None:
    """Count a pass through *name*; die here if the environment asks for it."""
    found = _count_pass(CRASH_ENV, name, _passes)
    if found is not None and str(found[0]) == found[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def fail_point(name: str, filename: str | None = None) -> None:
    """Count a pass through *name*; raise ``OSError(ENOSPC)`` if the environment asks."""
    found = _count_pass(FAIL_ENV, name, _failures)
    if found is None:
        return
    count, nth = found
    try:
        first = int(nth.removesuffix("+"))
    except ValueError:
        return
    if count == first or (nth.endswith("+") and count > first):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


def _count_pass(env: str, name: str, passes: Counter[str]) -> tuple[int, str] | None:
    """When ``$env`` is ``NAME:WHEN`` for this *name*: the pass number and WHEN."""
    target = os.environ.get(env)
    if not target:
        return None
    wanted, _, when = target.rpartition(":")
    if wanted != name:
        return None
    with _lock:
        passes[name] += 1
        return passes[name], when
