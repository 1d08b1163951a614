"""What kernelform needs from a Jupyter server, as a protocol.

The facts reader and the executor depend on this, not on ``JupyterClient``:
a plain server, a hub user's server reached through the hub's proxy, or a test
double are all just a ``KernelServer``. ``JupyterClient`` is the HTTP one.
"""

from __future__ import annotations

import threading
from typing import Protocol

from kernelform.liveness import ProbeResult, Readiness
from kernelform.models import Kernel, KernelSpecs, Session


class KernelServer(Protocol):
    """The kernel operations of one server; errors are ``kernelform.errors.ClientError``s."""

    @property
    def server(self) -> str:
        """The server's URL as shown in messages (no credentials)."""
        ...

    def list_kernels(self) -> list[Kernel]: ...

    def get_kernel(self, kernel_id: str) -> Kernel: ...

    def list_sessions(self) -> list[Session]: ...

    def list_kernelspecs(self) -> KernelSpecs: ...

    def path_kind(self, path: str) -> str | None:
        """``directory``, ``file``, ``notebook`` (contents API), or None for a 404."""
        ...

    def accepts_kernel_id(self) -> bool:
        """Whether a start may choose the kernel's id (so that a rerun starts no twin)."""
        ...

    def start_kernel(
        self, name: str = "python3", *, path: str | None = None, kernel_id: str | None = None
    ) -> Kernel: ...

    def restart_kernel(self, kernel_id: str) -> Kernel: ...

    def interrupt_kernel(self, kernel_id: str) -> None: ...

    def shutdown_kernel(self, kernel_id: str) -> None: ...

    def wait_ready(
        self,
        kernel_id: str,
        *,
        timeout: float,
        setup: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Readiness:
        """Block until the kernel answers (then run *setup*); ``KernelNotReady`` if not,
        or when *cancel* is set first."""
        ...

    def probe(self, kernel_id: str, *, timeout: float) -> ProbeResult:
        """Whether the kernel answers on its control channel within *timeout*."""
        ...


class ServerLauncher(Protocol):
    """Starts a server that is not running (a hub user's); errors are ``ClientError``s."""

    def launch(self) -> None:
        """Start the server unless it runs, and return once its API answers."""
        ...
