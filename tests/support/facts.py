"""What the servers report, given to the planner and the executor in-process.

``lab()`` is server ``lab`` as ``read_server`` would have read it: ``light``
kernels last active at ``NOW`` plus an offset, and whether it takes client-chosen
kernel ids. The lost-start tests (planner/test_lost_starts.py) and the executor's
own tests plan and run against it, without a server.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kernelform.live import LiveServer
from kernelform.models import Kernel

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def lab(*kernels: tuple[str, timedelta], accepts: bool = False) -> dict[str, LiveServer]:
    """Server ``lab`` with ``light`` kernels last active at NOW + offset."""
    return {
        "lab": LiveServer(
            name="lab",
            kernels={
                kernel_id: Kernel(id=kernel_id, name="light", last_activity=NOW + offset)
                for kernel_id, offset in kernels
            },
            specs=("light",),
            accepts_kernel_id=accepts,
        )
    }
