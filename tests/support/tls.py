"""A real jupyter server on https with a self-signed certificate, for the TLS tests.

The certificate (subjectAltName IP:127.0.0.1 and DNS:localhost) is made with the
``openssl`` command line; the server is started with ``--ServerApp.certfile`` and
``--ServerApp.keyfile``. ``live_jupyter.launch`` polls over plain http, so the
server is started here with its helpers, and every plain-``requests`` helper of
the server verifies against the test certificate.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import requests

from tests.support.live_jupyter import (
    START_TIMEOUT,
    JupyterServer,
    ServerStartError,
    _spawn,
    _wait_until_up,
)


@dataclass(eq=False)
class TlsJupyterServer(JupyterServer):
    """A JupyterServer on https whose plain-``requests`` helpers trust ``ca_file``."""

    ca_file: Path | None = None

    def __hash__(self) -> int:
        return id(self)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", str(self.ca_file))
        return super().api(method, path, **kwargs)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def launch_tls(workdir: Path, cert: Path, key: Path, *, attempts: int = 3) -> TlsJupyterServer:
    """Start a jupyter server on https and wait until it answers (verified) over TLS."""
    args = [f"--ServerApp.certfile={cert}", f"--ServerApp.keyfile={key}"]
    for attempt in range(1, attempts + 1):
        plain = _spawn(workdir, base_url="/", token=None, extra_args=args, attempt=attempt)
        values = {f.name: getattr(plain, f.name) for f in fields(plain)}
        values["url"] = values["url"].replace("http://", "https://", 1)
        server = TlsJupyterServer(**values, ca_file=cert)
        try:
            _wait_until_up(server, START_TIMEOUT)
        except ServerStartError:
            plain.stop()
            if attempt < attempts and "is not available" in server.log_tail(200):
                continue
            raise
        return server
    raise AssertionError("unreachable")
