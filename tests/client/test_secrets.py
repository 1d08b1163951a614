"""The token never shows in what the client raises, logs or sends.

``repr``/``str`` of the client, ``ServerConfig`` and ``Manifest``; every
exception the client raises, against the real server with a distinctive token
(tests/support/secrets.py), closed and hanging ports, and a loopback server that
echoes the token back; debug logs; and the wire: the token only ever travels in
the Authorization header, never in a request line, and not across a redirect to
another port.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernelform.client import JupyterClient, Timeouts
from kernelform.errors import (
    AuthError,
    BadResponse,
    ConnectError,
    KernelNotFound,
    ManifestError,
    RequestTimeout,
    ServerError,
    StateLocked,
    UnknownKernelSpec,
)
from kernelform.manifest import parse_manifest
from kernelform.state import FileStateStore
from tests.support.fakehttp import (
    FakeHTTPServer,
    HangingServer,
    Recorded,
    Reply,
    ResetServer,
    json_reply,
)
from tests.support.live_jupyter import JupyterServer
from tests.support.secrets import (
    BAD_MANIFESTS,
    NO_KERNEL,
    TOKEN,
    WRONG,
    Sweep,
    assert_clean,
    manifest_text,
)

# The fixtures of tests/support/secrets.py: pytest finds them here by name.
from tests.support.secrets import closed_url as closed_url
from tests.support.secrets import hanging as hanging
from tests.support.secrets import jupyter as jupyter
from tests.support.secrets import quiet_env as quiet_env
from tests.support.secrets import secret_server as secret_server
from tests.support.secrets import sweep as sweep

# -- python-level: reprs, exceptions, logs ---------------------------------------------------


def test_reprs_hide_the_token(tmp_path: Path) -> None:
    for url in (
        "http://127.0.0.1:8888/",
        f"http://127.0.0.1:8888/?token={TOKEN}",
        f"http://kf:{TOKEN}@127.0.0.1:8888/",
    ):
        client = JupyterClient(url, TOKEN)
        for text in (repr(client), str(client), client.server):
            assert_clean(text, f"the client for {url!r}")
    manifest = parse_manifest(
        manifest_text("  etl: {spec: python3}\n", url="http://127.0.0.1:8888", token=TOKEN),
        filename="kernelform.yaml",
    )
    assert manifest.servers["lab"].token.reveal() == TOKEN
    for obj in (manifest, manifest.servers, *manifest.servers.values()):
        assert_clean(repr(obj), f"repr of {type(obj).__name__}")
        assert_clean(str(obj), f"str of {type(obj).__name__}")


def check_exception(error: BaseException) -> None:
    where = type(error).__name__
    assert_clean(str(error), where)
    assert_clean(repr(error), where)
    assert_clean(repr(error.args), f"the args of {where}")
    assert_clean(repr(vars(error)), f"the attributes of {where}")


def raised(
    kind: type[BaseException], call: Callable[..., Any], *args: Any, **kwargs: Any
) -> BaseException:
    with pytest.raises(kind) as info:
        call(*args, **kwargs)
    check_exception(info.value)
    return info.value


def test_every_exception_hides_the_token(
    jupyter: JupyterServer, closed_url: str, hanging: HangingServer, tmp_path: Path
) -> None:
    quick = {"backoff": 0, "timeouts": Timeouts(connect=2, read=0.3, restart=0.3)}
    with JupyterClient(jupyter.url, WRONG, **quick) as wrong:
        raised(AuthError, wrong.list_kernels)
        raised(AuthError, wrong.start_kernel, "python3")
    with JupyterClient(jupyter.url, TOKEN, **quick) as client:
        raised(KernelNotFound, client.get_kernel, NO_KERNEL)
        raised(KernelNotFound, client.restart_kernel, NO_KERNEL)
        raised(KernelNotFound, client.interrupt_kernel, NO_KERNEL)
        raised(KernelNotFound, client.shutdown_kernel, NO_KERNEL)
        raised(UnknownKernelSpec, client.start_kernel, "kf-no-such-spec")
    with JupyterClient(closed_url, TOKEN, **quick) as client:
        raised(ConnectError, client.list_kernels)
    with JupyterClient(hanging.url, TOKEN, retries=0, **quick) as client:
        raised(RequestTimeout, client.list_kernels)
    with ResetServer() as reset, JupyterClient(reset.url, TOKEN, retries=0, **quick) as client:
        raised(ConnectError, client.start_kernel, "python3")

    def echo(request: Recorded, number: int) -> Reply:
        """A proxy that puts the request's Authorization header in its answers."""
        auth = request.headers.get("Authorization", "")
        if request.path == "/api/kernels" and request.method == "POST":
            return json_reply(500, {"message": f"cannot start for {auth}"})
        if request.path == "/api/kernels":
            return Reply(200, f"<html>login page for {auth}</html>")
        if request.path == "/api/sessions":
            return json_reply(200, [{"id": 1, "path": auth}])
        if request.path == "/api/kernelspecs":
            return json_reply(200, {"kernelspecs": {"python3": {}}})
        return json_reply(418, {"message": f"teapot {auth}"})

    with FakeHTTPServer(echo) as fake, JupyterClient(fake.url, TOKEN, **quick) as client:
        raised(BadResponse, client.list_kernels)
        raised(BadResponse, client.list_sessions)
        raised(ServerError, client.start_kernel, "python3")
        raised(ServerError, client.interrupt_kernel, "k")
        assert all(TOKEN in r.headers.get("Authorization", "") for r in fake.requests)

    for text in BAD_MANIFESTS.values():
        raised(ManifestError, parse_manifest, text, filename="m.yaml")
    store = FileStateStore(tmp_path / "state.json")
    with store.lock(operation="apply"):
        raised(StateLocked, lambda: store.lock(operation="plan").__enter__())


def test_debug_logs_hide_the_token(
    jupyter: JupyterServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with JupyterClient(jupyter.url, TOKEN, backoff=0) as client:
        kernel = client.start_kernel("python3")
        client.list_kernels()
        client.list_sessions()
        client.restart_kernel(kernel.id)
        client.shutdown_kernel(kernel.id)
    with JupyterClient(jupyter.url, WRONG, backoff=0) as client, pytest.raises(AuthError):
        client.list_kernels()
    assert "api/kernels" in caplog.text  # the debug log did record the requests
    assert_clean(caplog.text, "the debug log")


# -- the token on the wire -------------------------------------------------------------------


KERNEL = {
    "id": "3f1e7a52-9d0c-4b6e-8a41-2c5d7e9f0b13",
    "name": "python3",
    "last_activity": "2026-01-01T00:00:00.000000Z",
    "execution_state": "idle",
    "connections": 0,
}


def jupyter_like(request: Recorded, number: int) -> Reply:
    """Enough of the kernel API for every command, with one kernel that always exists."""
    path, method = request.path, request.method
    kernel_path = f"/api/kernels/{KERNEL['id']}"
    if path == "/api":
        return json_reply(200, {"version": "2.14.0"})
    if path == "/api/kernels":
        return json_reply(201, KERNEL) if method == "POST" else json_reply(200, [KERNEL])
    if path == "/api/sessions":
        return json_reply(200, [])
    if path == "/api/kernelspecs":
        return json_reply(200, {"default": "python3", "kernelspecs": {"python3": {}}})
    if path == kernel_path and method == "DELETE":
        return Reply(204)
    if path in (kernel_path, kernel_path + "/restart"):
        return json_reply(200, KERNEL)
    if path == kernel_path + "/interrupt":
        return Reply(204)
    return json_reply(404, {"message": "not found"})


def test_the_token_travels_only_in_the_authorization_header(sweep: Sweep) -> None:
    kernel_id = str(KERNEL["id"])
    with FakeHTTPServer(jupyter_like) as fake:
        server = ["--server", fake.url, "--token", TOKEN]
        for args in (
            ("list",),
            ("specs",),
            ("sessions",),
            ("start",),
            ("restart", kernel_id),
            ("interrupt", kernel_id),
            ("shutdown", kernel_id),
        ):
            sweep.raw(*args, *server, code=0)
        sweep.manifest(manifest_text("  etl: {spec: python3}\n", url=fake.url))
        sweep.kf("plan", "--json", code=0)
        # A fake HTTP server has no kernel websocket to wait on (test_channels checks that
        # the token travels only in the websocket handshake's header too).
        sweep.kf("apply", "--auto-approve", "--no-wait", code=0)
        sweep.kf("plan", "--out", "p.json", code=0)
        sweep.kf("destroy", "--auto-approve", code=0)
        requests_seen = list(fake.requests)
    methods = {(r.method, r.path.rsplit("/", 1)[-1]) for r in requests_seen}
    assert {("POST", "kernels"), ("POST", "restart"), ("DELETE", KERNEL["id"])} <= methods
    for request in requests_seen:
        request_line = f"{request.method} {request.target} HTTP/1.1"
        assert_clean(request_line, "a request line")
        assert_clean(request.body, f"the body of {request_line}")
        assert request.headers.get("Authorization") == f"token {TOKEN}", request_line
        for name, value in request.headers.items():
            if name.lower() != "authorization":
                assert_clean(value, f"the {name} header of {request_line}")


def test_a_redirect_to_another_port_does_not_carry_the_token() -> None:
    with FakeHTTPServer(lambda r, n: json_reply(200, [])) as other:
        target = other.url + "api/kernels"

        def redirect(request: Recorded, number: int) -> Reply:
            return Reply(302, b"", {"Location": target})

        with FakeHTTPServer(redirect) as first, JupyterClient(first.url, TOKEN) as client:
            assert client.list_kernels() == []
        assert first.requests and other.requests
        for request in other.requests:
            assert "Authorization" not in request.headers, request
            assert_clean(request.target, "the redirected request line")
