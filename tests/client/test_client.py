"""JupyterClient against a real jupyter server: every operation, every error."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kernelform.client import JupyterClient, Timeouts
from kernelform.errors import (
    AuthError,
    BadResponse,
    ClientError,
    ConnectError,
    KernelNotFound,
    Remedy,
    RequestTimeout,
    ServerError,
    UnknownKernelSpec,
)
from kernelform.models import Kernel
from tests.support.fakehttp import FakeHTTPServer, HangingServer, Recorded, Reply, json_reply
from tests.support.live_jupyter import JupyterServer, free_port, launch, shell_reply, wait_for

UNKNOWN_ID = "3f1e7a52-9d0c-4b6e-8a41-2c5d7e9f0b13"


def _same_dir(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _check_message(err: ClientError, server_url: str, *secrets: str) -> str:
    """The common promises of every client error; returns the message."""
    text = str(err)
    assert text.startswith(server_url), text
    assert err.server == server_url
    for secret in secrets:
        assert secret, "a test secret must not be empty"
        assert secret not in text, text
    return text


# -- kernelspecs, version ---------------------------------------------------------


def test_list_kernelspecs(client: JupyterClient) -> None:
    specs = client.list_kernelspecs()
    assert {"python3", "broken"} <= set(specs.names)
    assert specs.names == sorted(specs.names)
    assert specs.default == "python3"
    assert specs.kernelspecs["broken"]["spec"]["display_name"] == "Broken"


def test_python3_spec_is_this_interpreters_ipykernel(jupyter: JupyterServer) -> None:
    spec = jupyter.kernelspecs()["kernelspecs"]["python3"]["spec"]
    assert spec["argv"][0] == sys.executable
    assert spec["argv"][1:3] == ["-m", "ipykernel_launcher"]
    kernel = jupyter.start_kernel()
    executable = jupyter.run_code(kernel["id"], "import sys\nsys.executable")
    assert _same_dir(executable, sys.executable)


def test_server_version_and_kernel_id_support(
    client: JupyterClient, jupyter: JupyterServer
) -> None:
    version = client.server_version()
    assert version is not None
    expected = tuple(int(part) for part in jupyter.version().split(".")[:3])
    assert version == expected
    assert client.accepts_kernel_id() is (version[:2] >= (2, 21))


# -- the kernel operations ------------------------------------------------------------


def test_list_kernels_empty_then_started(client: JupyterClient, jupyter: JupyterServer) -> None:
    assert client.list_kernels() == []
    started = client.start_kernel()
    assert isinstance(started, Kernel)
    assert started.name == "python3"
    assert started.execution_state in {"starting", "idle", "busy"}
    assert isinstance(started.last_activity, datetime)
    assert started.last_activity.utcoffset() is not None
    assert jupyter.kernel_ids() == {started.id}
    listed = client.list_kernels()
    assert [k.id for k in listed] == [started.id]
    assert listed[0].name == "python3"


def test_get_kernel(client: JupyterClient, jupyter: JupyterServer) -> None:
    raw = jupyter.start_kernel()
    kernel = client.get_kernel(raw["id"])
    assert kernel.id == raw["id"]
    assert kernel.name == "python3"
    assert kernel.connections == raw["connections"]


def test_start_without_path_runs_in_the_root(client: JupyterClient, jupyter: JupyterServer) -> None:
    kernel = client.start_kernel("python3")
    cwd = jupyter.run_code(kernel.id, "import os\nos.getcwd()")
    assert _same_dir(cwd, jupyter.root)


def test_start_with_path_runs_there(client: JupyterClient, jupyter: JupyterServer) -> None:
    (jupyter.root / "work" / "sub").mkdir(parents=True, exist_ok=True)
    kernel = client.start_kernel("python3", path="work/sub")
    assert kernel.id in jupyter.kernel_ids()
    cwd = jupyter.run_code(kernel.id, "import os\nos.getcwd()")
    assert _same_dir(cwd, jupyter.root / "work" / "sub")


def test_start_with_missing_path_falls_back_to_the_root(
    client: JupyterClient, jupyter: JupyterServer
) -> None:
    """A trap: the server accepts a path that does not exist and starts in the root."""
    kernel = client.start_kernel("python3", path="no/such/dir")
    cwd = jupyter.run_code(kernel.id, "import os\nos.getcwd()")
    assert _same_dir(cwd, jupyter.root)


def test_start_with_client_chosen_id_is_idempotent(
    client: JupyterClient, jupyter: JupyterServer
) -> None:
    if not client.accepts_kernel_id():
        pytest.skip(f"jupyter_server {jupyter.version()} ignores kernel_id")
    kernel_id = str(uuid.uuid4())
    first = client.start_kernel("python3", kernel_id=kernel_id)
    assert first.id == kernel_id
    pid = jupyter.run_code(kernel_id, "import os\nos.getpid()")

    again = client.start_kernel("python3", kernel_id=kernel_id)
    assert again.id == kernel_id
    assert jupyter.kernel_ids() == {kernel_id}
    assert len(client.list_kernels()) == 1
    # The very same kernel process: nothing was started or restarted.
    assert jupyter.run_code(kernel_id, "import os\nos.getpid()") == pid


def test_restart_keeps_the_id_and_replaces_the_process(
    client: JupyterClient, jupyter: JupyterServer
) -> None:
    kernel = client.start_kernel()
    before = jupyter.run_code(kernel.id, "import os\nos.getpid()")
    restarted = client.restart_kernel(kernel.id)
    assert restarted.id == kernel.id
    assert restarted.name == "python3"
    assert jupyter.kernel_ids() == {kernel.id}
    after = jupyter.run_code(kernel.id, "import os\nos.getpid()")
    assert after != before


def test_interrupt_stops_running_code(client: JupyterClient, jupyter: JupyterServer) -> None:
    kernel = client.start_kernel()
    with jupyter.kernel_client(kernel.id) as kc:
        msg_id = kc.execute("print('sleeping', flush=True)\nimport time\ntime.sleep(60)")

        def printed() -> bool:
            try:
                msg = kc.get_iopub_msg(timeout=0.5)
            except Exception:  # queue.Empty
                return False
            return bool(
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "stream"
                and "sleeping" in msg["content"]["text"]
            )

        wait_for(printed, timeout=20, interval=0, what="the cell to start sleeping")
        started = time.monotonic()
        assert client.interrupt_kernel(kernel.id) is None
        reply = shell_reply(kc, msg_id, timeout=20)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - started < 20
    # The kernel survived the interrupt.
    assert jupyter.kernel_ids() == {kernel.id}
    assert jupyter.run_code(kernel.id, "1 + 1") == 2


def test_shutdown_removes_the_kernel(client: JupyterClient, jupyter: JupyterServer) -> None:
    keep = jupyter.start_kernel()
    kernel = client.start_kernel()
    assert client.shutdown_kernel(kernel.id) is None
    assert jupyter.kernel_ids() == {keep["id"]}
    with pytest.raises(KernelNotFound):
        client.get_kernel(kernel.id)


def test_list_sessions_with_a_real_session(client: JupyterClient, jupyter: JupyterServer) -> None:
    assert client.list_sessions() == []
    kernel = client.start_kernel()
    created = jupyter.create_session(kernel.id)
    other = jupyter.create_session(path="other/console-1", type="console")

    sessions = {s.id: s for s in client.list_sessions()}
    assert set(sessions) == {created["id"], other["id"]}
    session = sessions[created["id"]]
    assert session.path == "nb/analysis.ipynb"
    assert session.name == "analysis.ipynb"
    assert session.type == "notebook"
    assert session.kernel_id == kernel.id
    assert session.kernel is not None and session.kernel.name == "python3"
    console = sessions[other["id"]]
    assert console.type == "console"
    assert console.kernel_id == other["kernel"]["id"] != kernel.id


# -- a server under a path prefix (JupyterHub style) ------------------------------------


@pytest.fixture(scope="module")
def prefixed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    server = launch(tmp_path_factory.mktemp("prefixed"), base_url="/user/ana/")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prefixed(prefixed_server: JupyterServer) -> Iterator[JupyterServer]:
    yield prefixed_server
    prefixed_server.cleanup()


@pytest.mark.parametrize("suffix", ["user/ana", "user/ana/"])
def test_base_url_prefix(prefixed: JupyterServer, suffix: str) -> None:
    url = f"http://127.0.0.1:{prefixed.port}/{suffix}"
    assert prefixed.url == f"http://127.0.0.1:{prefixed.port}/user/ana/"
    with JupyterClient(url, prefixed.token, backoff=0) as client:
        assert client.server == prefixed.url
        assert client.list_kernels() == []
        assert "python3" in client.list_kernelspecs().names
        assert client.server_version() is not None
        kernel = client.start_kernel()
        assert prefixed.kernel_ids() == {kernel.id}
        assert client.get_kernel(kernel.id).id == kernel.id
        client.interrupt_kernel(kernel.id)
        prefixed.create_session(kernel.id)
        assert [s.kernel_id for s in client.list_sessions()] == [kernel.id]
        client.shutdown_kernel(kernel.id)
        assert prefixed.kernel_ids() == set()


def test_base_url_prefix_missing_is_a_clear_error(prefixed: JupyterServer) -> None:
    url = f"http://127.0.0.1:{prefixed.port}/"
    with (
        JupyterClient(url, prefixed.token, backoff=0) as client,
        pytest.raises(ServerError) as info,
    ):
        client.list_kernels()
    assert info.value.status == 404
    text = _check_message(info.value, url, prefixed.token)
    assert "path prefix" in text


# -- errors from the real server -------------------------------------------------------


WRONG_TOKEN = "0123456789abcdef-not-the-token"


@pytest.fixture
def bad_token_client(jupyter: JupyterServer) -> Iterator[JupyterClient]:
    with JupyterClient(jupyter.url, WRONG_TOKEN, backoff=0) as c:
        yield c


def test_wrong_token_on_get(bad_token_client: JupyterClient, jupyter: JupyterServer) -> None:
    with pytest.raises(AuthError) as info:
        bad_token_client.list_kernels()
    text = _check_message(info.value, jupyter.url, WRONG_TOKEN, jupyter.token)
    assert info.value.remedy is Remedy.CHECK_TOKEN
    assert "not authenticated" in text and "--token" not in text
    assert "403" in text


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda c: c.start_kernel("python3"), id="start"),
        pytest.param(lambda c: c.shutdown_kernel(UNKNOWN_ID), id="shutdown"),
        pytest.param(lambda c: c.interrupt_kernel(UNKNOWN_ID), id="interrupt"),
        pytest.param(lambda c: c.restart_kernel(UNKNOWN_ID), id="restart"),
    ],
)
def test_wrong_token_on_writes(
    bad_token_client: JupyterClient,
    jupyter: JupyterServer,
    operation: Callable[[JupyterClient], Any],
) -> None:
    # The server's own answer to these is "'_xsrf' argument missing from POST".
    raw = jupyter.api("POST", "api/kernels", token=WRONG_TOKEN, json={"name": "python3"})
    assert raw.status_code == 403 and "_xsrf" in raw.text
    with pytest.raises(AuthError) as info:
        operation(bad_token_client)
    text = _check_message(info.value, jupyter.url, WRONG_TOKEN, jupyter.token)
    assert info.value.remedy is Remedy.CHECK_TOKEN and "not authenticated" in text
    assert "xsrf" not in text.lower()
    assert jupyter.kernel_ids() == set()


def test_empty_token(jupyter: JupyterServer) -> None:
    with JupyterClient(jupyter.url, "", backoff=0) as client:
        with pytest.raises(AuthError) as get_info:
            client.list_kernels()
        with pytest.raises(AuthError) as post_info:
            client.start_kernel()
    for info in (get_info, post_info):
        text = _check_message(info.value, jupyter.url, jupyter.token)
        assert info.value.remedy is Remedy.CHECK_TOKEN
        assert "not authenticated (HTTP 403): no token was sent (it is empty)" in text, text
        assert "xsrf" not in text.lower()
    assert jupyter.kernel_ids() == set()


KERNEL_OPERATIONS = [
    pytest.param(lambda c, k: c.shutdown_kernel(k), id="shutdown"),
    pytest.param(lambda c, k: c.interrupt_kernel(k), id="interrupt"),
    pytest.param(lambda c, k: c.restart_kernel(k), id="restart"),
    pytest.param(lambda c, k: c.get_kernel(k), id="get"),
]


@pytest.mark.parametrize("kernel_id", [UNKNOWN_ID, "nope"], ids=["uuid", "not-uuid"])
@pytest.mark.parametrize("operation", KERNEL_OPERATIONS)
def test_unknown_kernel_id(
    client: JupyterClient,
    jupyter: JupyterServer,
    kernel_id: str,
    operation: Callable[[JupyterClient, str], Any],
) -> None:
    with pytest.raises(KernelNotFound) as info:
        operation(client, kernel_id)
    assert info.value.kernel_id == kernel_id
    text = _check_message(info.value, jupyter.url, jupyter.token)
    assert kernel_id in text
    assert "<" not in text  # no HTML page in the message


def test_unknown_kernel_traps_are_what_the_client_translates(jupyter: JupyterServer) -> None:
    """The raw answers behind test_unknown_kernel_id (see the REST notes)."""
    restart = jupyter.api("POST", f"api/kernels/{UNKNOWN_ID}/restart")
    assert restart.status_code == 500
    assert restart.json()["message"] == "Exception restarting kernel"
    delete = jupyter.api("DELETE", f"api/kernels/{UNKNOWN_ID}")
    assert delete.status_code == 404
    assert delete.json()["message"] == f"Kernel does not exist: {UNKNOWN_ID}"
    html = jupyter.api("DELETE", "api/kernels/nope")
    assert html.status_code == 404
    assert html.headers["Content-Type"].startswith("text/html")


def test_unknown_kernelspec(client: JupyterClient, jupyter: JupyterServer) -> None:
    raw = jupyter.api("POST", "api/kernels", json={"name": "no-such-spec"})
    assert raw.status_code == 500 and raw.json()["message"] == "Unhandled error"

    with pytest.raises(UnknownKernelSpec) as info:
        client.start_kernel("no-such-spec")
    err = info.value
    assert err.spec == "no-such-spec"
    assert {"python3", "broken"} <= set(err.available)
    text = _check_message(err, jupyter.url, jupyter.token)
    assert "'no-such-spec'" in text
    assert "python3" in text and "broken" in text
    assert jupyter.kernel_ids() == set()


def test_broken_kernelspec_start(client: JupyterClient, jupyter: JupyterServer) -> None:
    """A spec whose process dies at once: the server still answers 201 "starting".

    The start itself cannot tell; the server's restarter retries 5 times and then
    drops the kernel, after which every operation on it is KernelNotFound.
    """
    kernel = client.start_kernel("broken")
    assert kernel.name == "broken"
    assert kernel.execution_state == "starting"
    assert kernel.id in jupyter.kernel_ids()

    def gone() -> bool:
        try:
            client.get_kernel(kernel.id)
        except KernelNotFound:
            return True
        return False

    wait_for(gone, timeout=30, interval=0.2, what="the broken kernel to be dropped")
    assert kernel.id not in {k.id for k in client.list_kernels()}
    with pytest.raises(KernelNotFound) as info:
        client.restart_kernel(kernel.id)  # the server says 500; the client checks
    _check_message(info.value, jupyter.url, jupyter.token)


def test_server_down_is_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    token = "a-secret-token-value"
    started = time.monotonic()
    with JupyterClient(url, token) as client:  # default retries and backoff
        with pytest.raises(ConnectError) as info:
            client.list_kernels()
        with pytest.raises(ConnectError) as post_info:
            client.start_kernel()
    assert time.monotonic() - started < 10
    for err in (info.value, post_info.value):
        text = _check_message(err, url, token)
        assert "connection refused" in text


@pytest.mark.parametrize("retries", [0, 2])
def test_no_answer_is_a_timeout(retries: int) -> None:
    token = "a-secret-token-value"
    timeouts = Timeouts(connect=2, read=0.3, restart=0.3)
    with (
        HangingServer() as hanging,
        JupyterClient(hanging.url, token, timeouts=timeouts, retries=retries, backoff=0) as c,
    ):
        started = time.monotonic()
        for operation in (c.list_kernels, c.start_kernel, lambda: c.restart_kernel(UNKNOWN_ID)):
            with pytest.raises(RequestTimeout) as info:
                operation()
            text = _check_message(info.value, hanging.url, token)
            assert "0.3s" in text
        assert time.monotonic() - started < 10
    assert hanging.connections == 3  # a read that timed out is not asked again


def test_html_page_instead_of_api_is_a_bad_response() -> None:
    page = "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"
    token = "a-secret-token-value"
    with (
        FakeHTTPServer(lambda request, n: Reply(200, page)) as fake,
        JupyterClient(fake.url, token, backoff=0) as client,
        pytest.raises(BadResponse) as info,
    ):
        client.list_kernels()
    assert [r.path for r in fake.requests] == ["/api/kernels"]
    text = _check_message(info.value, fake.url, token)
    assert "not JSON" in text and "text/html" in text
    assert "Jupyter server URL" in text


# -- how the token travels ---------------------------------------------------------------


def test_token_never_in_repr(jupyter: JupyterServer) -> None:
    client = JupyterClient(jupyter.url, jupyter.token)
    assert jupyter.token not in repr(client)
    assert jupyter.token not in str(client)
    assert jupyter.token not in client.server


def _kernel_api(request: Recorded, number: int) -> Reply:
    model = {
        "id": UNKNOWN_ID,
        "name": "python3",
        "last_activity": "2026-01-01T00:00:00.000000Z",
        "execution_state": "idle",
        "connections": 0,
    }
    if request.method == "GET" and request.path == "/api/kernels":
        return json_reply(200, [model])
    if request.method == "POST" and request.path == "/api/kernels":
        return json_reply(201, model)
    if request.method == "POST" and request.path.endswith("/restart"):
        return json_reply(200, model)
    if request.method == "GET" and request.path == "/api/sessions":
        return json_reply(200, [])
    if request.method in ("POST", "DELETE"):
        return Reply(204)
    return json_reply(404, {"message": "Not Found"})


def test_token_goes_only_in_the_authorization_header() -> None:
    token = "f00dbabe" * 6
    with FakeHTTPServer(_kernel_api) as fake, JupyterClient(fake.url, token) as client:
        client.list_kernels()
        client.start_kernel("python3", path="a/b")
        client.restart_kernel(UNKNOWN_ID)
        client.interrupt_kernel(UNKNOWN_ID)
        client.shutdown_kernel(UNKNOWN_ID)
        client.list_sessions()
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/api/kernels"),
        ("POST", "/api/kernels"),
        ("POST", f"/api/kernels/{UNKNOWN_ID}/restart"),
        ("POST", f"/api/kernels/{UNKNOWN_ID}/interrupt"),
        ("DELETE", f"/api/kernels/{UNKNOWN_ID}"),
        ("GET", "/api/sessions"),
    ]
    for request in fake.requests:
        assert request.headers.get("Authorization") == f"token {token}"
        assert request.query == ("no_track_activity=1" if request.method == "GET" else "")
        assert token not in request.target
        assert token not in request.body.decode()
        others = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        assert token not in repr(others)
        assert "Cookie" not in request.headers


def test_no_token_sends_no_authorization_header() -> None:
    with FakeHTTPServer(_kernel_api) as fake, JupyterClient(fake.url, "") as client:
        client.list_kernels()
        client.start_kernel()
    assert len(fake.requests) == 2
    for request in fake.requests:
        assert "Authorization" not in request.headers
        assert request.query == ("no_track_activity=1" if request.method == "GET" else "")


def test_every_read_leaves_the_server_idle() -> None:
    """Reads send no_track_activity=1 (so no culler sees kernelform as a user); writes do not."""
    with FakeHTTPServer(_kernel_api) as fake, JupyterClient(fake.url, "t") as client:
        client.list_kernels()
        client.list_sessions()
        with pytest.raises(KernelNotFound):
            client.get_kernel(UNKNOWN_ID + "0")
        client.start_kernel("python3")
        client.shutdown_kernel(UNKNOWN_ID)
    reads = [r for r in fake.requests if r.method == "GET"]
    paths = ["/api/kernels", "/api/sessions", f"/api/kernels/{UNKNOWN_ID}0"]
    assert [r.path for r in reads] == paths
    assert all(r.query == "no_track_activity=1" for r in reads)
    assert [r.query for r in fake.requests if r.method != "GET"] == ["", ""]


def test_an_unfollowed_redirect_is_an_error_not_a_get_elsewhere() -> None:
    def redirect(request: Recorded, number: int) -> Reply:
        return Reply(302, b"", {"Location": "/hub/user/ana/api/kernels?no_track_activity=1"})

    with (
        FakeHTTPServer(redirect) as fake,
        JupyterClient(fake.url, "t", follow_redirects=False, backoff=0) as client,
        pytest.raises(ServerError) as info,
    ):
        client.start_kernel("python3")
    assert info.value.status == 302
    assert str(info.value).endswith(
        "POST api/kernels was redirected (HTTP 302) to /hub/user/ana/api/kernels"
    )
    assert [r.method for r in fake.requests] == ["POST"]
