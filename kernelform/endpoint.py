"""What a kernel's websocket needs from the HTTP side, as a protocol.

Why its own module: ``kernelform.channels`` (the websocket) shares the HTTP
client's URL, token, TLS settings and connect timeout, and looks at the kernel
over REST while it waits. It takes them through this ``Endpoint`` instead of
importing the client, so imports run one way: the client may call the channels,
the channels never import the client. ``Framing`` (how messages travel on the
websocket) lives here too: the client is configured with it, the channels speak it.
"""

from __future__ import annotations

import ssl
from enum import Enum
from typing import Protocol

from kernelform.models import Kernel
from kernelform.runtime import Timeouts


class Framing(Enum):
    """How messages travel on a kernel's websocket (see ``kernelform.channels``)."""

    V1 = "v1"  # offer the v1.kernel.websocket.jupyter.org binary subprotocol
    JSON = "json"  # offer nothing: one JSON text frame per message


class Endpoint(Protocol):
    """One server's HTTP side, as a kernel websocket uses it (a ``JupyterClient`` is one)."""

    @property
    def server(self) -> str:
        """The server's URL as shown in messages (no credentials)."""
        ...

    @property
    def timeouts(self) -> Timeouts:
        """The connect timeout bounds the websocket's TCP connect and its close."""
        ...

    def websocket_url(self, path: str) -> str:
        """``ws://`` (``wss://`` for https) URL of *path* under the base URL; never a token."""
        ...

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate the websocket handshake (the token)."""
        ...

    def ssl_context(self) -> ssl.SSLContext | None:
        """None for http; for https a context that verifies as the HTTP calls do."""
        ...

    def scrub(self, text: str) -> str:
        """*text* (from a server or a kernel) with the token replaced by ``***``."""
        ...

    def get_kernel(self, kernel_id: str) -> Kernel:
        """The kernel as REST reports it; ``KernelNotFound`` when the server does not know it."""
        ...
