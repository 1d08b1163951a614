"""The six plain functions kernelform grew from, kept for code that calls them.

Same names, signatures and return shapes as the original ``jupyter_kernel``
module; each is a thin wrapper over ``JupyterClient`` and raises its errors
(``kernelform.errors.ClientError`` and subclasses).
"""

from __future__ import annotations

from typing import Any

from kernelform.client import DEFAULT_URL, JupyterClient

__all__ = [
    "jupyter_kernel_interrupt",
    "jupyter_kernel_list",
    "jupyter_kernel_restart",
    "jupyter_kernel_sessions",
    "jupyter_kernel_shutdown",
    "jupyter_kernel_start",
]


def jupyter_kernel_list(server_url: str = DEFAULT_URL, token: str = "") -> list[dict[str, Any]]:
    """Running kernels: ``[{"id", "name", "execution_state", "last_activity", "connections"}]``."""
    with JupyterClient(server_url, token) as client:
        return [kernel.to_dict() for kernel in client.list_kernels()]


def jupyter_kernel_start(
    server_url: str = DEFAULT_URL, token: str = "", name: str = "python3"
) -> dict[str, Any]:
    """Start a kernel of spec *name*: ``{"id", "name", "execution_state", ...}``."""
    with JupyterClient(server_url, token) as client:
        return client.start_kernel(name).to_dict()


def jupyter_kernel_restart(server_url: str, token: str, kernel_id: str) -> dict[str, Any]:
    """Restart a kernel in place (same id) and return its model."""
    with JupyterClient(server_url, token) as client:
        return client.restart_kernel(kernel_id).to_dict()


def jupyter_kernel_interrupt(server_url: str, token: str, kernel_id: str) -> None:
    """Interrupt what the kernel is running."""
    with JupyterClient(server_url, token) as client:
        client.interrupt_kernel(kernel_id)


def jupyter_kernel_shutdown(server_url: str, token: str, kernel_id: str) -> None:
    """Shut the kernel down and remove it from the server."""
    with JupyterClient(server_url, token) as client:
        client.shutdown_kernel(kernel_id)


def jupyter_kernel_sessions(server_url: str = DEFAULT_URL, token: str = "") -> list[dict[str, Any]]:
    """Sessions, each ``{"id", "notebook", "kernel_id", "kernel_state", "type", "name"}``."""
    with JupyterClient(server_url, token) as client:
        return [session.to_dict() for session in client.list_sessions()]
