"""What one run of kernelform carries to every part, decided once at its start.

The command line (or a library user) builds a ``Runtime`` and hands it down:
the hooks to call, the redactor that owns the run's secrets, how long to wait
for servers, whether servers may be trusted with client-chosen kernel ids, the
clock, and the event that asks the run to stop. Nothing below reads the
environment or a module global for these, so that two runs in one process (a
controller, a test) never share them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum

from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.masking import Redactor

DEFAULT_READ_TIMEOUT = 30.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait: to connect, for an answer, and for a restart's answer."""

    connect: float = 5.0
    read: float = DEFAULT_READ_TIMEOUT
    restart: float = 90.0


class KernelIds(str, Enum):
    """Whether to send client-chosen kernel ids to servers that say they honour them."""

    ASK_SERVER = "ask-server"  # jupyter_server >= 2.21 reports it through GET api
    NEVER = "never"  # a gateway or proxy that misreports its version


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """Run-scoped settings, passed down instead of read from globals."""

    hooks: Hooks = NO_HOOKS
    secrets: Redactor = field(default_factory=Redactor)
    timeouts: Timeouts = field(default_factory=Timeouts)
    kernel_ids: KernelIds = KernelIds.ASK_SERVER
    clock: Callable[[], datetime] = utc_now
    # Set (from any thread) to ask the run to stop soon: no new action starts,
    # and waits for kernels end; see kernelform.executor.
    stop: threading.Event = field(default_factory=threading.Event)
