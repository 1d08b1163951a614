"""http and https mixed up: one quick line that says which scheme the server speaks.

An ``https://`` URL on a plain-http server used to wait for about 22 s of TLS
handshake timeouts (retried by urllib3) and then blame an overloaded server; an
``http://`` URL on a TLS port said "connection reset; retry". Both are checked
here against real servers (the session's plain jupyter server, and one serving
https with a self-signed certificate), for a raw ``kernels`` command and for a
manifest command. The https-on-http case takes the connect timeout (5 s) once.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kf import run
from tests.support.live_jupyter import JupyterServer
from tests.support.tls import TlsJupyterServer, launch_tls, make_certificate

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

FAST = 8.0  # seconds: the 5 s connect timeout once, plus a probe, plus start-up


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsJupyterServer]:
    cert, key = make_certificate(tmp_path_factory.mktemp("scheme-certs"))
    server = launch_tls(tmp_path_factory.mktemp("scheme-tls"), cert, key)
    try:
        yield server
    finally:
        server.stop()


def swapped(url: str) -> str:
    if url.startswith("https://"):
        return "http://" + url.removeprefix("https://")
    return "https://" + url.removeprefix("http://")


def timed_raw(url: str, token: str, cwd: Path) -> tuple[float, str, int]:
    began = time.monotonic()
    result = run("kernels", "list", "--server", url, cwd=cwd, env={"JUPYTER_TOKEN": token})
    return time.monotonic() - began, result.err, result.code


@pytest.mark.parametrize("case", ["https-on-plain", "http-on-tls"])
def test_raw_command_says_which_scheme(
    case: str, jupyter: JupyterServer, tls: TlsJupyterServer, tmp_path: Path
) -> None:
    server = jupyter if case == "https-on-plain" else tls
    wrong = swapped(server.url)
    seconds, err, code = timed_raw(wrong, server.token, tmp_path)
    assert code == 1, err
    speaks = "plain http" if case == "https-on-plain" else "https (TLS)"
    assert err.splitlines() == [
        f"Error: {wrong}: the server answers in {speaks}, not {wrong.split(':')[0]}:"
        f" use {server.url}"
    ], err
    assert seconds < FAST, seconds
    assert server.token not in err


@pytest.mark.parametrize("case", ["https-on-plain", "http-on-tls"])
def test_manifest_command_says_which_scheme(
    case: str, jupyter: JupyterServer, tls: TlsJupyterServer, tmp_path: Path
) -> None:
    server = jupyter if case == "https-on-plain" else tls
    wrong = swapped(server.url)
    (tmp_path / "kernelform.yaml").write_text(
        f"servers:\n  lab:\n    url: {wrong}\n    token: ${{KF_TOKEN}}\n"
        "kernels:\n  etl: {spec: python3}\n"
    )
    began = time.monotonic()
    result = run("plan", cwd=tmp_path, env={"KF_TOKEN": server.token})
    seconds = time.monotonic() - began
    assert result.code == 1, result
    errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"use {server.url}" in errors[0], result.err
    assert seconds < FAST, seconds
    assert server.kernel_ids() == set()
    with contextlib.suppress(FileNotFoundError):
        assert list((tmp_path / ".kernelform").iterdir()) == []
