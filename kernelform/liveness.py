"""Liveness: whether a kernel answers, as plain data.

Why its own module: only a message round trip over a kernel's websocket can
tell (``kernelform.channels`` makes it), but the server protocol, the facts and
the executor speak of its outcome: a wait that ended well (``Readiness``), a
probe's verdict (``ProbeResult``, ``Health``), and a probe to make
(``HealthCheck``). Keeping them here lets those modules name them without
importing the websocket code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kernelform.endpoint import Framing


class Health(enum.Enum):
    """What a probe found."""

    RESPONSIVE = "responsive"  # answered kernel_info on control
    UNRESPONSIVE = "unresponsive"  # known to the server, but no answer in time
    GONE = "gone"  # the server does not know it (any more), or says it is dead


@dataclass(frozen=True)
class Readiness:
    """A kernel that answered: how long it took and what was seen on the way."""

    kernel_id: str
    seconds: float  # from the call to the last message needed (setup included, close not)
    framing: Framing
    requests: int  # kernel_info requests sent before one was answered
    language: str  # language_info.name from the kernel_info reply
    implementation: str  # e.g. "ipython"
    protocol_version: str  # of the messaging protocol, from the kernel
    setup_seconds: float | None = None  # None when no setup code was given


@dataclass(frozen=True)
class ProbeResult:
    """One health probe: the verdict, how long it took, and why."""

    kernel_id: str
    health: Health
    seconds: float
    execution_state: str | None  # REST's view when the probe began (None when gone)
    detail: str = ""  # one line: what was seen, for a report

    @property
    def responsive(self) -> bool:
        return self.health is Health.RESPONSIVE


@dataclass(frozen=True)
class HealthCheck:
    """One kernel to probe: where, which, and how long to wait for its answer."""

    server: str
    kernel_id: str
    timeout: float
