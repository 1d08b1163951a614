"""kernelform.channels against real jupyter servers: ready, setup, dead, mute, probe, TLS.

Three servers: the session's (it selects the v1 binary subprotocol), one told to
speak only the default JSON framing (``kernel_ws_protocol=""``, as notebook 6
does), and one on https with a self-signed certificate. Kernels that a test does
not change are shared within the module. About 35 s on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from kernelform.channels import decode, encode, probe, settle, wait_ready
from kernelform.client import JupyterClient
from kernelform.endpoint import Framing
from kernelform.errors import AuthError, ConnectError, KernelNotReady, SetupFailed
from kernelform.liveness import Health
from tests.support.live_jupyter import SLOW_SPEC, JupyterServer, launch, wait_for, write_kernelspec
from tests.support.tls import TlsJupyterServer, launch_tls, make_certificate

UNKNOWN_ID = "3f1e7a52-9d0c-4b6e-8a41-2c5d7e9f0b13"
# How long past its timeout a wait may end: the websocket's opening and closing, on a
# loaded 2-core CI machine. Far below what a wait that ignored its timeout would take.
SLACK = 3.0


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(jupyter_server: JupyterServer) -> Iterator[JupyterServer]:
    """The session's server; every kernel left on it is shut down after the module."""
    yield jupyter_server
    jupyter_server.cleanup()


@pytest.fixture(scope="module")
def kf(server: JupyterServer) -> Iterator[JupyterClient]:
    with JupyterClient(server.url, server.token, backoff=0) as client:
        yield client


@pytest.fixture(scope="module")
def shared(server: JupyterServer, kf: JupyterClient) -> str:
    """A python3 kernel, ready; tests may run code in it but must leave it answering."""
    kernel_id = str(server.start_kernel()["id"])
    wait_ready(kf, kernel_id, timeout=60)
    return kernel_id


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A server that selects no subprotocol: the default JSON framing only."""
    args = ["--ZMQChannelsWebsocketConnection.kernel_ws_protocol="]
    started = launch(tmp_path_factory.mktemp("legacy-jupyter"), extra_args=args)
    try:
        yield started
    finally:
        with contextlib.suppress(Exception):
            started.cleanup(timeout=10)
        started.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsJupyterServer]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    cert, key = make_certificate(tmp_path_factory.mktemp("channel-certs"))
    started = launch_tls(tmp_path_factory.mktemp("tls-channels"), cert, key)
    try:
        yield started
    finally:
        with contextlib.suppress(Exception):
            started.cleanup(timeout=10)
        started.stop()


def model(server: JupyterServer, kernel_id: str) -> dict[str, Any]:
    found = server.kernel(kernel_id)
    assert found is not None, f"kernel {kernel_id} is gone"
    return found


def assert_idle_and_unconnected(server: JupyterServer, kernel_id: str) -> None:
    """REST, looked at once right after a call returned: idle, and no connection left."""
    seen = model(server, kernel_id)
    assert (seen["execution_state"], seen["connections"]) == ("idle", 0), seen


def assert_one_clean_line(error: Exception, server: JupyterServer) -> str:
    text = str(error)
    assert text.startswith(server.url), text
    assert "\n" not in text and "Traceback" not in text, text
    assert server.token not in text
    return text


# -- ready ------------------------------------------------------------------------------


def test_ready_reads_idle_over_rest_at_once_and_leaves_no_connection(
    server: JupyterServer, kf: JupyterClient
) -> None:
    kernel_id = server.start_kernel()["id"]
    assert model(server, kernel_id)["execution_state"] == "starting"
    ready = wait_ready(kf, kernel_id, timeout=60)
    assert_idle_and_unconnected(server, kernel_id)
    assert ready.kernel_id == kernel_id
    assert ready.framing is Framing.V1  # jupyter_server 2.x selects the v1 subprotocol
    assert (ready.language, ready.implementation) == ("python", "ipython")
    assert ready.protocol_version.startswith("5.")
    assert ready.requests >= 1 and ready.setup_seconds is None
    assert 0 < ready.seconds < 60

    # A restarted kernel is waited for the same way.
    server.api_json("POST", f"api/kernels/{kernel_id}/restart")
    again = wait_ready(kf, kernel_id, timeout=60)
    assert_idle_and_unconnected(server, kernel_id)
    assert again.framing is Framing.V1
    server.shutdown_kernel(kernel_id)


def test_json_framing_when_the_subprotocol_is_not_offered(
    server: JupyterServer, kf: JupyterClient
) -> None:
    kernel_id = server.start_kernel()["id"]
    ready = wait_ready(kf, kernel_id, timeout=60, framing=Framing.JSON, setup="KF_JSON = 6 * 7")
    assert ready.framing is Framing.JSON
    assert ready.setup_seconds is not None
    assert_idle_and_unconnected(server, kernel_id)
    assert server.run_code(kernel_id, "KF_JSON") == 42
    server.shutdown_kernel(kernel_id)


def test_a_server_that_selects_no_subprotocol_gets_json(legacy: JupyterServer) -> None:
    kernel_id = legacy.start_kernel()["id"]
    with JupyterClient(legacy.url, legacy.token) as client:
        setup = "import sys\nKF = sys.version_info[0]"
        ready = wait_ready(client, kernel_id, timeout=60, setup=setup)
        assert ready.framing is Framing.JSON  # offered v1, the server chose the default
        assert_idle_and_unconnected(legacy, kernel_id)
        assert legacy.run_code(kernel_id, "KF") == sys.version_info[0]
        assert probe(client, kernel_id, timeout=10).health is Health.RESPONSIVE
    legacy.shutdown_kernel(kernel_id)


def test_many_waits_at_once_leave_no_connection(server: JupyterServer, kf: JupyterClient) -> None:
    kernel_ids = [server.start_kernel()["id"] for _ in range(4)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda k: wait_ready(kf, k, timeout=60), kernel_ids * 4))
    assert sorted(r.kernel_id for r in results) == sorted(kernel_ids * 4)
    assert {r.framing for r in results} == {Framing.V1}
    for kernel_id in kernel_ids:
        assert_idle_and_unconnected(server, kernel_id)
        server.shutdown_kernel(kernel_id)


# -- setup --------------------------------------------------------------------------------


def test_setup_runs_in_the_kernel(server: JupyterServer, kf: JupyterClient, shared: str) -> None:
    ready = wait_ready(kf, shared, timeout=60, setup="import os\nKF_SETUP_PID = os.getpid()")
    assert ready.setup_seconds is not None and 0 < ready.setup_seconds <= ready.seconds
    assert_idle_and_unconnected(server, shared)
    pid = server.run_code(shared, "import os\nos.getpid()")
    assert server.run_code(shared, "KF_SETUP_PID") == pid


def test_setup_error_carries_the_kernels_error(
    server: JupyterServer, kf: JupyterClient, shared: str
) -> None:
    code = "def load():\n    raise ValueError('no table ' + 'sales')\nload()"
    with pytest.raises(SetupFailed) as caught:
        wait_ready(kf, shared, timeout=60, setup=code)
    error = caught.value
    assert isinstance(error, KernelNotReady)
    assert (error.ename, error.evalue, error.kernel_id) == ("ValueError", "no table sales", shared)
    text = assert_one_clean_line(error, server)
    assert f"kernel {shared}" in text and "ValueError: no table sales" in text, text
    assert "line 2" in text, text  # where in the setup code it failed
    assert "raise ValueError('no table ' + 'sales')" in error.traceback, error.traceback
    assert "\x1b" not in error.traceback  # ANSI colours stripped
    assert "kernelform" not in error.traceback  # the kernel's traceback, not ours
    assert_idle_and_unconnected(server, shared)


def test_setup_still_running_at_the_timeout_is_left_running(
    server: JupyterServer, kf: JupyterClient, shared: str
) -> None:
    began = time.monotonic()
    with pytest.raises(KernelNotReady) as caught:
        wait_ready(kf, shared, timeout=2, setup="import time\ntime.sleep(30)")
    assert time.monotonic() - began < 3
    assert not isinstance(caught.value, SetupFailed)
    text = assert_one_clean_line(caught.value, server)
    assert "setup code was still running after 2s" in text, text
    assert model(server, shared)["execution_state"] == "busy"
    wait_for(lambda: model(server, shared)["connections"] == 0, timeout=5, what="no connection")
    server.api_json("POST", f"api/kernels/{shared}/interrupt", expect=204)
    wait_for(lambda: model(server, shared)["execution_state"] == "idle", timeout=10)


# -- dead, mute, slow ----------------------------------------------------------------------


def test_dead_at_birth_is_reported_within_seconds(server: JupyterServer, kf: JupyterClient) -> None:
    kernel_id = server.start_kernel("broken")["id"]
    began = time.monotonic()
    with pytest.raises(KernelNotReady) as caught:
        wait_ready(kf, kernel_id, timeout=60)
    took = time.monotonic() - began
    # The server drops it after its restarter's 5 tries (about 3 s with SERVER_ARGS).
    assert took < 15, took
    error = caught.value
    assert not isinstance(error, SetupFailed)
    assert error.kernel_id == kernel_id and error.execution_state == "starting"
    assert error.reason is None  # jupyter_server sets no reason for a crashing kernel
    text = assert_one_clean_line(error, server)
    assert f"kernel {kernel_id} is not ready" in text, text
    assert "no longer knows it" in text and "last execution_state: starting" in text, text
    assert f"waited {error.waited:.1f}s" in text, text
    assert server.kernel(kernel_id) is None


def test_a_kernel_that_never_answers_times_out(server: JupyterServer, kf: JupyterClient) -> None:
    kernel_id = server.start_kernel("mute")["id"]
    began = time.monotonic()
    with pytest.raises(KernelNotReady) as caught:
        wait_ready(kf, kernel_id, timeout=3)
    took = time.monotonic() - began
    assert 3 <= took < 3 + SLACK, took
    text = assert_one_clean_line(caught.value, server)
    assert "no answer in 3s" in text and "last execution_state: starting" in text, text
    assert model(server, kernel_id)["connections"] == 0
    server.shutdown_kernel(kernel_id)


def test_a_server_that_dies_during_a_wait_is_named_not_the_kernelspec(
    tmp_path: Path,
) -> None:
    """The server killed while a kernel warmed up: the websocket breaks and the REST
    look fails too. The hint said to check the kernelspec (a probe found it)."""
    doomed = launch(tmp_path / "doomed")
    try:
        write_kernelspec(doomed.data_dir, "slow", SLOW_SPEC)  # 4 s before it answers
        kernel_id = doomed.start_kernel("slow")["id"]
        threading.Timer(1.0, doomed.stop).start()
        with (
            JupyterClient(doomed.url, doomed.token, backoff=0, retries=0) as client,
            pytest.raises(KernelNotReady) as caught,
        ):
            wait_ready(client, kernel_id, timeout=30)
        text = str(caught.value)
        assert "the server itself stopped answering: check that it runs" in text, text
        assert "kernelspec" not in text, text
    finally:
        doomed.stop()


def test_a_handshake_given_up_is_closed_cleanly_later(
    server: JupyterServer, kf: JupyterClient
) -> None:
    """The server holds the first handshake until the kernel answers; dropping it
    would leave ``connections: -1``. The call returns at its timeout, the handshake
    finishes in the background and is closed: the count stays right."""
    write_kernelspec(server.data_dir, "slow", SLOW_SPEC)
    kernel_id = server.start_kernel("slow")["id"]
    with pytest.raises(KernelNotReady, match="no answer in 1s"):
        wait_ready(kf, kernel_id, timeout=1)
    assert model(server, kernel_id)["connections"] == 0
    assert settle(30) == 0
    wait_for(
        lambda: model(server, kernel_id)["connections"] == 0,
        timeout=5,
        what="connections back to 0 after the given-up handshake closed",
    )
    wait_ready(kf, kernel_id, timeout=30)
    assert_idle_and_unconnected(server, kernel_id)
    server.shutdown_kernel(kernel_id)


# -- probe ----------------------------------------------------------------------------------


def test_probe_tells_a_busy_kernel_from_a_frozen_one(
    server: JupyterServer, kf: JupyterClient, shared: str
) -> None:
    """Busy in a cell: answers on control. Frozen (SIGSTOP): no answer in time.

    The server holds a connection to an idle kernel until its own kernel_info
    "nudge" is answered (up to kernel_info_timeout, 60 s): so the frozen kernel
    shows ``connections: 1`` until it is thawed, then 0.
    """
    pid = server.run_code(shared, "import os\nos.getpid()")
    with server.kernel_client(shared) as zmq_client:
        zmq_client.execute("import time\ntime.sleep(60)")
        wait_for(lambda: model(server, shared)["execution_state"] == "busy", timeout=10)
        busy = probe(kf, shared, timeout=10)
        assert model(server, shared)["connections"] == 0
        server.api_json("POST", f"api/kernels/{shared}/interrupt", expect=204)
    assert busy.health is Health.RESPONSIVE and busy.responsive, busy
    assert busy.execution_state == "busy" and busy.seconds < 5, busy
    wait_for(lambda: model(server, shared)["execution_state"] == "idle", timeout=10)

    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        frozen = probe(kf, shared, timeout=3)
        took = time.monotonic() - began
    finally:
        os.kill(pid, signal.SIGCONT)
    assert frozen.health is Health.UNRESPONSIVE, frozen
    assert 3 <= frozen.seconds <= took < 3 + SLACK, (frozen, took)
    assert "no answer in 3s" in frozen.detail
    wait_for(
        lambda: model(server, shared)["connections"] == 0,
        timeout=10,
        what="the server to let go of the probe's connection once the kernel is thawed",
    )
    thawed = probe(kf, shared, timeout=30)
    assert thawed.health is Health.RESPONSIVE, thawed
    assert model(server, shared)["connections"] == 0


def test_probe_of_a_kernel_the_server_does_not_know(kf: JupyterClient) -> None:
    result = probe(kf, UNKNOWN_ID, timeout=5)
    assert result.health is Health.GONE and result.execution_state is None


# -- token, TLS -------------------------------------------------------------------------------


def test_a_wrong_token_is_an_auth_error_without_the_token(
    server: JupyterServer, shared: str
) -> None:
    wrong = "not-the-token-5f2b9c"
    with JupyterClient(server.url, wrong) as client, pytest.raises(AuthError) as caught:
        wait_ready(client, shared, timeout=10)
    text = str(caught.value)
    assert wrong not in text and server.token not in text, text


def test_the_token_travels_only_in_the_header(
    server: JupyterServer, kf: JupyterClient, shared: str
) -> None:
    url = kf.websocket_url(f"api/kernels/{shared}/channels")
    assert url.startswith("ws://") and server.token not in url
    assert kf.auth_headers() == {"Authorization": f"token {server.token}"}
    probe(kf, shared, timeout=10)
    channel_lines = [
        line for line in server.log_path.read_text().splitlines() if "/channels" in line
    ]
    assert all(server.token not in line for line in channel_lines)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verifies_with_the_ca_bundle_and_fails_clearly_without(
    tls: TlsJupyterServer,
) -> None:
    kernel_id = tls.start_kernel()["id"]
    with JupyterClient(tls.url, tls.token, verify=str(tls.ca_file)) as client:
        assert client.websocket_url("api").startswith("wss://")
        ready = wait_ready(client, kernel_id, timeout=60)
        assert ready.framing is Framing.V1
        assert_idle_and_unconnected(tls, kernel_id)
    began = time.monotonic()
    with JupyterClient(tls.url, tls.token) as client, pytest.raises(ConnectError) as caught:
        wait_ready(client, kernel_id, timeout=30)
    assert time.monotonic() - began < 10
    text = assert_one_clean_line(caught.value, tls)
    assert "TLS verification failed" in text and "--ca-bundle" in text, text
    with JupyterClient(tls.url, tls.token, verify=False) as client:
        assert probe(client, kernel_id, timeout=10).responsive
    tls.shutdown_kernel(kernel_id)


# -- the two framings, against jupyter_server's own codec -------------------------------------


def a_message(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "header": {"msg_id": "m1", "msg_type": msg_type, "session": "s", "version": "5.3"},
        "parent_header": {"msg_id": "p0"},
        "metadata": {"k": 1},
        "content": content,
        "buffers": [],
    }


def test_v1_frames_agree_with_jupyter_servers_codec() -> None:
    sent = a_message("execute_request", {"code": "1 + 1", "silent": True})
    channel, parts = deserialize_msg_from_ws_v1(encode(sent, channel="shell", framing=Framing.V1))
    assert channel == "shell"
    names = ("header", "parent_header", "metadata", "content")
    assert [json.loads(p) for p in parts] == [sent[n] for n in names]

    reply = a_message("display_data", {"data": {}})
    frame = serialize_msg_to_ws_v1(
        [json.dumps(reply[n]).encode() for n in names] + [b"\x00\x01raw"], "iopub"
    )
    got = decode(frame, framing=Framing.V1)
    assert (got["channel"], got["msg_type"]) == ("iopub", "display_data")
    assert got["buffers"] == [b"\x00\x01raw"]
    assert all(got[n] == reply[n] for n in names)


def test_json_frames_text_and_binary() -> None:
    sent = a_message("kernel_info_request", {})
    text = encode(sent, channel="control", framing=Framing.JSON)
    assert isinstance(text, str) and json.loads(text)["channel"] == "control"
    with_buffers = {**a_message("comm_msg", {"x": 1}), "channel": "iopub", "buffers": [b"abc"]}
    got = decode(serialize_binary_message(with_buffers), framing=Framing.JSON)
    assert (got["channel"], got["msg_type"], got["buffers"]) == ("iopub", "comm_msg", [b"abc"])
    assert decode(text, framing=Framing.V1)["msg_type"] == "kernel_info_request"


@pytest.mark.parametrize(
    ("frame", "framing"),
    [
        ("not json", Framing.JSON),
        ('{"no": "header"}', Framing.JSON),
        (b"\x00" * 4, Framing.V1),
        ((99).to_bytes(8, "little") + b"\x00" * 16, Framing.V1),
        (b"\xff\xff\xff\xff", Framing.JSON),
    ],
)
def test_frames_that_are_not_messages_are_refused(frame: str | bytes, framing: Framing) -> None:
    with pytest.raises(ValueError):
        decode(frame, framing=framing)
