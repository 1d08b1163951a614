"""JupyterClient against fake loopback servers: faults a real server won't produce.

Then plan and apply through a faulty network (``tests.support.faultproxy.FaultProxy``
in front of the session's real jupyter server; the cases and checks:
``tests/support/faults.py``): what a user reads for each fault on every request,
a read repeated once where the client repeats it, a write never repeated. Run
with ``-s`` to see the number of fault cases covered (with executor/test_faults.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kernelform.client import JupyterClient
from kernelform.errors import AuthError, BadResponse, ConnectError, Remedy, ServerError
from kernelform.live import LiveServer
from tests.support.fakehttp import FakeHTTPServer, Recorded, Reply, ResetServer, json_reply
from tests.support.faultproxy import FaultProxy, Kind
from tests.support.faults import (
    CASES,
    FAILED_LINE,
    KERNELS,
    START,
    Case,
    assert_consistent,
    assert_converges,
    assert_error_lines,
    covered,
    heal,
    inject,
    kf,
    resources,
)

# The fixtures of tests/support/faults.py: pytest finds them here by name.
from tests.support.faults import fault_summary as fault_summary
from tests.support.faults import proxy as proxy
from tests.support.faults import workdir as workdir
from tests.support.kf import write_manifest
from tests.support.live_jupyter import JupyterServer

TOKEN = "s3cr3t-" + "ab" * 16
KERNEL_ID = "3f1e7a52-9d0c-4b6e-8a41-2c5d7e9f0b13"
KERNEL = {
    "id": KERNEL_ID,
    "name": "python3",
    "last_activity": "2026-01-01T00:00:00.000000Z",
    "execution_state": "idle",
    "connections": 0,
}


def _fails_then(status: int, failures: int, success: Reply) -> Callable[[Recorded, int], Reply]:
    def respond(request: Recorded, number: int) -> Reply:
        if number <= failures:
            return json_reply(status, {"message": f"temporarily unavailable ({number})"})
        return success

    return respond


E = TypeVar("E", bound=BaseException)


def _raised(kind: type[E], call: Callable[..., Any], *args: Any) -> E:
    """Call and return the *kind* exception it must raise."""
    with pytest.raises(kind) as info:
        call(*args)
    return info.value


def _client(url: str, **kwargs: Any) -> JupyterClient:
    return JupyterClient(url, TOKEN, backoff=0, **kwargs)


@contextlib.contextmanager
def served(
    responder: Callable[[Recorded, int], Reply], **kwargs: Any
) -> Iterator[tuple[FakeHTTPServer, JupyterClient]]:
    """A fake server answering through *responder*, and a client on it."""
    with FakeHTTPServer(responder) as fake, _client(fake.url, **kwargs) as client:
        yield fake, client


def _check(err: Exception, url: str) -> str:
    text = str(err)
    assert text.startswith(url), text
    assert TOKEN not in text
    return text


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_is_retried_on_gateway_errors(status: int) -> None:
    with served(_fails_then(status, 2, json_reply(200, [KERNEL])), retries=3) as (fake, client):
        kernels = client.list_kernels()
    assert [k.id for k in kernels] == [KERNEL_ID]
    assert len(fake.requests) == 3
    assert all(r.method == "GET" and r.path == "/api/kernels" for r in fake.requests)


def test_get_retries_exhausted_is_a_server_error() -> None:
    with served(_fails_then(503, 1000, json_reply(200, [])), retries=3) as (fake, client):
        err = _raised(ServerError, client.list_kernels)
    assert err.status == 503
    assert len(fake.requests) == 4  # the first try and 3 retries
    text = _check(err, fake.url)
    assert "503" in text and "temporarily unavailable (4)" in text


def test_retries_zero_means_one_request() -> None:
    with (
        served(_fails_then(503, 1000, json_reply(200, [])), retries=0) as (fake, client),
        pytest.raises(ServerError),
    ):
        client.list_kernels()
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda c: c.start_kernel("python3"), id="start"),
        pytest.param(lambda c: c.restart_kernel(KERNEL_ID), id="restart"),
        pytest.param(lambda c: c.interrupt_kernel(KERNEL_ID), id="interrupt"),
        pytest.param(lambda c: c.shutdown_kernel(KERNEL_ID), id="shutdown"),
    ],
)
def test_writes_are_not_retried(operation: Callable[[JupyterClient], Any]) -> None:
    with served(_fails_then(503, 1000, json_reply(201, KERNEL)), retries=3) as (fake, client):
        err = _raised(ServerError, operation, client)
    assert err.status == 503
    assert len(fake.requests) == 1
    assert fake.requests[0].method in {"POST", "DELETE"}
    _check(err, fake.url)


@pytest.mark.parametrize("retries", [0, 3])
def test_connection_reset_mid_response_on_get(retries: int) -> None:
    with ResetServer() as reset, _client(reset.url, retries=retries) as client:
        err = _raised(ConnectError, client.list_kernels)
        assert reset.connections == retries + 1
    text = _check(err, reset.url)
    assert "GET api/kernels" in text
    assert "connection reset by the server" in text or "the answer was cut short" in text
    assert "cannot connect" not in text


def test_connection_reset_mid_response_on_post_is_not_retried() -> None:
    with ResetServer() as reset, _client(reset.url, retries=3) as client:
        err = _raised(ConnectError, client.start_kernel, "python3")
        assert reset.connections == 1
    text = _check(err, reset.url)
    assert "POST api/kernels" in text
    assert "connection reset by the server" in text or "the answer was cut short" in text


def test_token_echoed_in_an_error_body_is_redacted() -> None:
    def echo(request: Recorded, number: int) -> Reply:
        return Reply(
            500,
            f"failure while handling {request.headers.get('Authorization')}",
            {"Content-Type": "text/plain"},
        )

    with served(echo, retries=0) as (fake, client):
        err = _raised(ServerError, client.list_kernels)
    text = _check(err, fake.url)
    assert "failure while handling token ***" in text


def test_json_error_message_is_used_and_redacted() -> None:
    body = {"message": f"quota exceeded for {TOKEN}", "reason": None}
    with (
        served(lambda r, n: json_reply(429, body)) as (fake, client),
        pytest.raises(ServerError) as info,
    ):
        client.interrupt_kernel(KERNEL_ID)
    assert info.value.status == 429
    text = _check(info.value, fake.url)
    assert "HTTP 429: quota exceeded for ***" in text


def test_long_error_bodies_are_cut_to_one_line() -> None:
    page = "<html>\n" + "x" * 5000 + "\n</html>"
    with (
        served(lambda r, n: Reply(500, page), retries=0) as (fake, client),
        pytest.raises(ServerError) as info,
    ):
        client.list_kernels()
    text = _check(info.value, fake.url)
    assert "\n" not in text
    assert len(text) < 400


@pytest.mark.parametrize(
    ("answer", "operation", "expected"),
    [
        pytest.param({"kernels": []}, lambda c: c.list_kernels(), "expected a list", id="dict"),
        pytest.param([{"name": "x"}], lambda c: c.list_kernels(), "Kernel", id="no-id"),
        pytest.param({"name": "x"}, lambda c: c.start_kernel(), "Kernel", id="start-no-id"),
        pytest.param([1, 2], lambda c: c.list_sessions(), "Session", id="sessions"),
    ],
)
def test_wrong_json_shape_is_a_bad_response(
    answer: Any, operation: Callable[[JupyterClient], Any], expected: str
) -> None:
    status = 201 if isinstance(answer, dict) and "name" in answer else 200
    with (
        served(lambda r, n: json_reply(status, answer)) as (fake, client),
        pytest.raises(BadResponse) as info,
    ):
        operation(client)
    assert expected in _check(info.value, fake.url)


def test_extra_fields_and_missing_optional_ones_are_tolerated() -> None:
    old_server_kernel = {"id": KERNEL_ID, "name": "python3", "future_field": {"a": 1}}
    with served(lambda r, n: json_reply(200, [old_server_kernel])) as (fake, client):
        (kernel,) = client.list_kernels()
    assert len(fake.requests) == 1
    assert kernel.id == KERNEL_ID
    assert kernel.connections == 0
    assert kernel.last_activity is None
    assert kernel.execution_state == "unknown"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"version": "2.21.1"}, (2, 21, 1)),
        ({"version": "3.0.0a3"}, (3, 0, 0)),
        ({"version": "2.14.2"}, (2, 14, 2)),
        ({"version": "6.5.4"}, (6, 5, 4)),
        ({}, None),
    ],
)
def test_server_version_parsing(answer: dict[str, str], expected: Any) -> None:
    with served(lambda r, n: json_reply(200, answer)) as (fake, client):
        assert client.server_version() == expected
        takes_ids = expected is not None and (2, 21) <= expected[:2] < (4, 0)
        assert client.accepts_kernel_id() is takes_ids
    assert fake.requests[0].path == "/api"


# -- the Kernel Gateway's answers ----------------------------------------------------

GATEWAY_SESSION = {
    "id": "9d1f0000-0000-4000-8000-000000000001",
    "notebook": {"path": "nb/q3.ipynb"},
    "kernel": KERNEL,
}


def test_get_answered_500_is_retried_once() -> None:
    """The gateway fails one ``GET api/sessions`` after a kernel with a session is shut down."""
    with served(_fails_then(500, 1, json_reply(200, [GATEWAY_SESSION]))) as (fake, client):
        (session,) = client.list_sessions()
    assert session.kernel_id == KERNEL_ID
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/api/sessions")] * 2


def test_get_answered_500_twice_is_one_clear_line() -> None:
    with served(_fails_then(500, 1000, json_reply(200, []))) as (fake, client):
        err = _raised(ServerError, client.list_kernels)
    assert err.status == 500
    assert len(fake.requests) == 2
    text = _check(err, fake.url)
    assert "GET api/kernels failed with HTTP 500: temporarily unavailable (2)" in text
    assert "\n" not in text


def test_retries_zero_does_not_repeat_a_500() -> None:
    with served(_fails_then(500, 1000, json_reply(200, [])), retries=0) as (fake, client):
        _raised(ServerError, client.list_kernels)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda c: c.restart_kernel(KERNEL_ID), id="restart"),
        pytest.param(lambda c: c.interrupt_kernel(KERNEL_ID), id="interrupt"),
        pytest.param(lambda c: c.shutdown_kernel(KERNEL_ID), id="shutdown"),
        pytest.param(lambda c: c.start_kernel("python3"), id="start"),
    ],
)
def test_writes_answered_500_are_not_repeated(operation: Callable[[JupyterClient], Any]) -> None:
    def respond(request: Recorded, number: int) -> Reply:
        if request.method == "GET" and request.path == "/api/kernelspecs":
            return json_reply(200, {"default": "python3", "kernelspecs": {"python3": {}}})
        if request.method == "GET":
            return json_reply(200, KERNEL)
        return json_reply(500, {"message": "Unhandled error"})

    with served(respond) as (fake, client):
        _raised(ServerError, operation, client)
    assert len([r for r in fake.requests if r.method != "GET"]) == 1


def test_gateway_sessions_give_their_notebook_paths() -> None:
    """``{id, notebook: {path}, kernel}``: no ``path``, ``name`` or ``type`` of its own."""
    with served(lambda r, n: json_reply(200, [GATEWAY_SESSION])) as (_, client):
        (session,) = client.list_sessions()
    assert (session.path, session.kernel_id) == ("nb/q3.ipynb", KERNEL_ID)
    assert session.to_dict()["notebook"] == "nb/q3.ipynb"
    assert LiveServer(name="gw", sessions=(session,)).sessions_of(KERNEL_ID) == ("nb/q3.ipynb",)


def test_a_session_path_is_preferred_to_its_deprecated_notebook_copy() -> None:
    both = {**GATEWAY_SESSION, "path": "nb/new.ipynb", "name": "new.ipynb", "type": "notebook"}
    with served(lambda r, n: json_reply(200, [both])) as (_, client):
        (session,) = client.list_sessions()
    assert (session.path, session.name) == ("nb/new.ipynb", "new.ipynb")


@pytest.mark.parametrize("path", ["api/kernels", "api/sessions"])
def test_gateway_refusing_to_list_is_not_a_token_problem(path: str) -> None:
    refusal = {"reason": "Forbidden", "message": "Forbidden"}
    with served(lambda r, n: json_reply(403, refusal)) as (fake, client):
        call = client.list_kernels if path == "api/kernels" else client.list_sessions
        err = _raised(ServerError, call)
    assert err.status == 403 and not isinstance(err, AuthError)
    text = _check(err, fake.url)
    assert f"refused to list {path.removeprefix('api/')}" in text
    assert "--JupyterWebsocketPersonality.list_kernels=True" in text
    assert "KG_LIST_KERNELS=True" in text and "token (" not in text


def test_jupyter_server_403_is_still_a_token_problem() -> None:
    denial = {"message": "Forbidden", "reason": None}
    with served(lambda r, n: json_reply(403, denial)) as (fake, client):
        err = _raised(AuthError, client.list_kernels)
    assert "not authenticated (HTTP 403)" in _check(err, fake.url)
    assert err.remedy is Remedy.CHECK_TOKEN  # the CLI words it: --token, or servers.NAME.token


# -- a fault on every request: the run fails before changing anything -------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_fault_on_every_request(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, command: str, case: Case
) -> None:
    write_manifest(workdir, jupyter, KERNELS)
    first = kf(workdir, jupyter, proxy, "apply", "--auto-approve", "--target", "etl")
    assert first.code == 0, first
    state_file = workdir / ".kernelform" / "state.json"
    before = state_file.read_bytes()
    running = jupyter.kernel_ids()
    assert len(running) == 2

    inject(proxy, case)
    args = ("plan",) if command == "plan" else ("apply", "--auto-approve")
    failed = kf(workdir, jupyter, proxy, *args)
    assert_error_lines(failed, proxy, case.cause)
    assert "Apply" not in failed.out, failed
    heal(proxy)  # a held (slow) request may still reach the server: let it, then look
    assert state_file.read_bytes() == before, "a failed read must not touch the state"
    assert jupyter.kernel_ids() == running
    assert_consistent(workdir, jupyter)

    ids = assert_converges(workdir, jupyter, proxy)
    assert {ids["etl[0]"], ids["etl[1]"]} == running
    covered(case, command)


# -- retries: a GET is repeated, a write never is -------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [Kind.HTTP_503, Kind.HTTP_500, Kind.RESET_HEADERS, Kind.RESET_BODY],
    ids=lambda k: k.value,
)
def test_a_read_that_fails_once_is_retried(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy, kind: Kind
) -> None:
    write_manifest(workdir, jupyter, KERNELS)
    proxy.add(kind, "GET", r"/api/kernels", times=1)
    plan = kf(workdir, jupyter, proxy, "plan")
    assert plan.code == 0, plan
    assert "Plan: 3 to start" in plan.out
    assert proxy.count("GET", r"/api/kernels", fault=kind) == 1
    assert proxy.count("GET", r"/api/kernels") == 2
    covered(Case(kind.value, kind, ""), "plan: one-shot read, retried")


def test_a_read_that_fails_with_500_twice_is_not_retried_again(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    """A 500 is repeated once only (the Kernel Gateway's one-off 500), unlike a 503."""
    write_manifest(workdir, jupyter, KERNELS)
    proxy.add(Kind.HTTP_500, "GET", r"/api/kernels", times=2)
    plan = kf(workdir, jupyter, proxy, "plan")
    assert_error_lines(plan, proxy, "GET api/kernels failed with HTTP 500")
    assert proxy.count("GET", r"/api/kernels") == 2


def test_a_start_that_gets_503_once_fails_and_is_not_repeated(
    workdir: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    write_manifest(workdir, jupyter, KERNELS)
    proxy.add(Kind.HTTP_503, "POST", START, times=1)
    result = kf(workdir, jupyter, proxy, "apply", "--auto-approve")
    assert result.code == 1, result
    assert "Apply finished with errors. 2 started; 1 failed; 0 blocked." in result.out
    (failed,) = FAILED_LINE.findall(result.out)
    assert "POST api/kernels failed with HTTP 503" in failed[1], failed
    posts = [s for s in proxy.seen if s.method == "POST" and s.path == START]
    assert len(posts) == 3, "exactly one POST per start: the 503 one was not retried"
    assert [s.fault for s in posts].count(Kind.HTTP_503) == 1
    chosen = [s.json()["kernel_id"] for s in posts]
    assert len(set(chosen)) == 3, chosen
    assert failed[0] not in resources(workdir)
    assert_consistent(workdir, jupyter)
    assert len(jupyter.kernel_ids()) == 2
    assert_converges(workdir, jupyter, proxy)
    covered(Case("http-503", Kind.HTTP_503, ""), "apply: one-shot write, not retried")
