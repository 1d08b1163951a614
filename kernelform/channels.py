"""Talking to a kernel over its server's websocket: is it ready, does it answer.

REST cannot say whether a kernel answers: jupyter_server 2.x reports
``execution_state: starting`` until some client talks to the kernel, and a
frozen kernel still reads ``idle``. Only a message round trip over
``{base}api/kernels/{id}/channels`` can tell, so this module does exactly that
and nothing more:

* ``wait_ready`` sends ``kernel_info_request`` on ``shell`` (again every second
  while the kernel is still starting), waits for the reply and for the ``idle``
  status of that request on ``iopub`` (after which REST reads ``idle``), then
  optionally runs setup code. Meanwhile a watcher thread polls the kernel over
  REST, so that a kernel that dies at birth (the server drops it: 404, or
  ``dead``) ends the wait at once instead of at the timeout; it cuts the
  websocket, whose handshake the server holds open until the kernel answers.
  A wait can be cancelled from another thread (``cancel``, an event: a
  controller stopping): it then ends within ``CANCEL_POLL`` seconds with a
  ``KernelNotReady`` saying so, exactly as a timeout would (a handshake in
  progress is left to linger, never cut: see ``_Link``).
* ``probe`` sends ``kernel_info_request`` on ``control``, which ipykernel
  serves on its own thread: a kernel busy in a long cell answers, a frozen one
  does not.

Every call opens its own connection and closes it before returning (the
server counts open connections, and kernelform reads a connected kernel as in
use), so calls can run from many threads at once. The connection shares the
HTTP client's URL, token, TLS settings and connect timeout, taken through an
``Endpoint`` (``kernelform.endpoint``: this module does not import the client);
the token travels only in the handshake's ``Authorization`` header.

Both framings are spoken: the ``v1.kernel.websocket.jupyter.org`` binary
subprotocol is offered and used when the server selects it (jupyter_server
>= 1.13.5), else messages are JSON text (notebook 6, or a server configured
with ``kernel_ws_protocol=""``). v1 layout, little-endian: an 8-byte count N,
N 8-byte offsets, then the channel name and the JSON of header, parent_header,
metadata, content and any buffers, each part running from its offset to the next.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from kernelform.endpoint import Endpoint, Framing
from kernelform.errors import (
    AuthError,
    ClientError,
    ConnectError,
    KernelNotFound,
    KernelNotReady,
    RequestTimeout,
    SetupFailed,
    shorten,
)
from kernelform.liveness import Health, ProbeResult, Readiness

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "5.3"
V1_SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
POLL_INTERVAL = 0.5  # seconds between two REST looks at a kernel during a wait
RETRY_INTERVAL = 1.0  # seconds before asking kernel_info again while none came back
LINGER = 90.0  # seconds a handshake may take: past the server's kernel_info_timeout (60)
LINGER_POLL = 2.0  # seconds between REST looks at a kernel whose handshake lingers
CANCEL_POLL = 0.2  # seconds between two looks at a cancel request during a wait
TRACEBACK_LINES = 12  # lines of a failed setup's traceback kept on the error

DEAD_HINT = "check its kernelspec and the server's log"
GONE_HINT = "the server itself stopped answering: check that it runs, then apply again"
TIMEOUT_HINT = "raise its ready_timeout, or check the kernel and the server's log"
CANCELLED = "the wait was cut short (kernelform was stopping)"
CANCELLED_HINT = "it stays recorded, as tainted: the next apply restarts it"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_PARTS = ("header", "parent_header", "metadata", "content")


def wait_ready(
    client: Endpoint,
    kernel_id: str,
    *,
    timeout: float,
    setup: str | None = None,
    framing: Framing = Framing.V1,
    cancel: threading.Event | None = None,
) -> Readiness:
    """Block until the kernel answers ``kernel_info``; then run *setup* in it, if given.

    *timeout* bounds the whole call, setup included. Returns once the reply and
    the request's ``idle`` status have arrived, so REST reads ``idle`` then.
    *setup* runs silently (no output, no history, no stdin); a setup still
    running at the timeout is left running. *framing* is what to offer: V1
    offers the binary subprotocol (used only if the server selects it), JSON
    offers nothing. Setting *cancel* ends the wait early, as a timeout would.

    Raises ``KernelNotReady`` when the kernel dies, vanishes or stays silent
    until *timeout* (or *cancel* is set); ``SetupFailed`` (a ``KernelNotReady``)
    when *setup* raises; ``AuthError``/``ConnectError`` when the server itself cannot be used.
    """
    started = time.monotonic()
    deadline = started + timeout
    watch = _Watch(client, kernel_id)
    wait = _Wait(client, kernel_id, started=started, timeout=timeout, watch=watch)
    watch.start()
    try:
        with wait.failures():
            link = _Link.open(
                client, kernel_id, deadline=deadline, framing=framing, watch=watch, cancel=cancel
            )
            with link:
                info, asked = _kernel_info(link, deadline=deadline, cancel=cancel)
                setup_seconds = None
                if setup is not None:
                    began = time.monotonic()
                    _run_setup(link, setup, deadline=deadline, wait=wait, cancel=cancel)
                    setup_seconds = time.monotonic() - began
                seconds = time.monotonic() - started
    finally:
        watch.stop()
    language = info.get("language_info")
    return Readiness(
        kernel_id=kernel_id,
        seconds=seconds,
        framing=link.framing,
        requests=asked,
        language=str(language.get("name", "")) if isinstance(language, dict) else "",
        implementation=str(info.get("implementation", "")),
        protocol_version=str(info.get("protocol_version", "")),
        setup_seconds=setup_seconds,
    )


def probe(
    client: Endpoint, kernel_id: str, *, timeout: float, framing: Framing = Framing.V1
) -> ProbeResult:
    """Ask the kernel ``kernel_info`` on ``control`` and say whether it answered in *timeout*.

    A kernel busy in a long cell answers (ipykernel serves control on its own
    thread); a frozen or hung one does not. Raises only when the server itself
    cannot be used (``AuthError``, ``ConnectError``, ...).
    """
    started = time.monotonic()
    deadline = started + timeout

    def result(health: Health, state: str | None, detail: str) -> ProbeResult:
        seconds = time.monotonic() - started
        return ProbeResult(kernel_id, health, seconds, state, detail)

    try:
        state = client.get_kernel(kernel_id).execution_state
    except KernelNotFound:
        return result(Health.GONE, None, "the server does not know this kernel")
    if state == "dead":
        return result(Health.GONE, state, "the server says it is dead")
    try:
        with _Link.open(client, kernel_id, deadline=deadline, framing=framing) as link:
            msg_id = link.send("kernel_info_request", {}, channel="control")
            while True:
                message = link.receive(deadline)
                if message is None:
                    link.cut()
                    return result(Health.UNRESPONSIVE, state, f"no answer in {timeout:g}s")
                if _answers(message, msg_id, "kernel_info_reply"):
                    return result(Health.RESPONSIVE, state, "answered on control")
    except TimeoutError:
        detail = f"no answer in {timeout:g}s (the server still holds the handshake)"
        return result(Health.UNRESPONSIVE, state, detail)
    except _Closed as e:
        try:
            client.get_kernel(kernel_id)
        except KernelNotFound:
            return result(Health.GONE, None, f"the server dropped it ({e.detail})")
        return result(Health.UNRESPONSIVE, state, e.detail)


# -- one wait's bookkeeping --------------------------------------------------------


class _Cancelled(Exception):
    """The caller asked the wait to end (its ``cancel`` event is set)."""


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise _Cancelled


def _soon(until: float, cancel: threading.Event | None) -> float:
    """*until*, or sooner when a cancel request must be looked at before it."""
    return until if cancel is None else min(until, time.monotonic() + CANCEL_POLL)


def _wait_event(event: threading.Event, deadline: float, cancel: threading.Event | None) -> bool:
    """Wait for *event* until *deadline*, or until *cancel* is set; whether it is set."""
    while True:
        if event.wait(max(_soon(deadline, cancel) - time.monotonic(), 0)):
            return True
        if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
            return event.is_set()


class _Closed(Exception):
    """The websocket could not be opened or was closed before the answer came."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class _Watch(threading.Thread):
    """Polls the kernel over REST during a wait; when it is gone or dead, cuts the link."""

    def __init__(
        self, client: Endpoint, kernel_id: str, *, interval: float = POLL_INTERVAL
    ) -> None:
        super().__init__(name=f"kernelform-watch-{kernel_id[:8]}", daemon=True)
        self.client = client
        self.kernel_id = kernel_id
        self.interval = interval
        self.state: str | None = None  # the last execution_state seen
        self.reason: str | None = None  # the server's reason, when it gave one
        self.death: str | None = None  # why the kernel is known to be dead
        self.unreachable = False  # the last look found the server itself gone
        self._stopped = threading.Event()
        self._link: _Link | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stopped.is_set():
            self.look()
            if self.death is not None:
                return
            self._stopped.wait(self.interval)

    def look(self) -> None:
        """One REST look; records the state, and the death when there is one."""
        try:
            kernel = self.client.get_kernel(self.kernel_id)
        except KernelNotFound:
            self.died("the server no longer knows it (it died at start, or was shut down)")
            return
        except (ConnectError, RequestTimeout) as e:
            log.debug("watching %s: %s", self.kernel_id, e)
            self.unreachable = True
            return
        except ClientError as e:
            log.debug("watching %s: %s", self.kernel_id, e)
            return
        self.unreachable = False
        self.state = kernel.execution_state
        self.reason = kernel.reason or self.reason
        if kernel.execution_state == "dead":
            self.died("the server says it is dead")

    def died(self, why: str) -> None:
        with self._lock:
            if self.death is None:
                self.death = why
            link = self._link
        if link is not None:
            link.cut()

    def attach(self, link: _Link) -> None:
        with self._lock:
            self._link = link
            dead = self.death is not None
        if dead:
            link.cut()

    def stop(self) -> None:
        self._stopped.set()


@dataclass
class _Wait:
    """Turns what went wrong during a wait into one ``KernelNotReady``."""

    client: Endpoint
    kernel_id: str
    started: float
    timeout: float
    watch: _Watch
    phase: str = "kernel_info"

    @contextlib.contextmanager
    def failures(self) -> Iterator[None]:
        try:
            yield
        except _Closed as e:
            if self.watch.death is None:
                self.watch.look()  # the link broke: was it the kernel dying?
            if self.watch.death is not None:
                raise self.error(self.watch.death, DEAD_HINT) from None
            hint = GONE_HINT if self.watch.unreachable else DEAD_HINT
            raise self.error(f"the connection failed: {e.detail}", hint) from None
        except _Cancelled:
            raise self.error(CANCELLED, CANCELLED_HINT) from None
        except TimeoutError:
            if self.phase == "setup":
                what = f"its setup code was still running after {self.timeout:g}s"
            else:
                what = f"no answer in {self.timeout:g}s"
            raise self.error(what, TIMEOUT_HINT) from None

    def error(self, what: str, hint: str) -> KernelNotReady:
        waited = time.monotonic() - self.started
        state = self.watch.state or "unknown"
        reason = ""
        if self.watch.reason:
            reason = f"; reason: {shorten(self.client.scrub(self.watch.reason))}"
        return KernelNotReady(
            f"kernel {self.kernel_id} is not ready: {what} (waited {waited:.1f}s; "
            f"last execution_state: {state}{reason}); {hint}",
            server=self.client.server,
            kernel_id=self.kernel_id,
            waited=waited,
            execution_state=self.watch.state,
            reason=self.watch.reason,
            summary=what
            + (
                f" ({shorten(self.client.scrub(self.watch.reason), 80)})"
                if self.watch.reason
                else ""
            ),
        )


def _kernel_info(
    link: _Link, *, deadline: float, cancel: threading.Event | None = None
) -> tuple[dict[str, Any], int]:
    """Ask kernel_info until one request has both its reply and its idle status."""
    replies: dict[str, dict[str, Any]] = {}
    idle: set[str] = set()
    asked: list[str] = []
    next_ask = 0.0
    while True:
        _check(cancel)
        now = time.monotonic()
        if now >= next_ask:
            asked.append(link.send("kernel_info_request", {}, channel="shell"))
            next_ask = now + RETRY_INTERVAL
        message = link.receive(_soon(min(deadline, next_ask), cancel))
        if message is None:
            if time.monotonic() >= deadline:
                raise TimeoutError
            continue
        parent = _parent_id(message)
        if parent not in asked:
            continue
        if message.get("msg_type") == "kernel_info_reply":
            replies[parent] = message.get("content") or {}
        elif _is_idle(message):
            idle.add(parent)
        done = [msg_id for msg_id in asked if msg_id in replies and msg_id in idle]
        if done:
            return replies[done[0]], asked.index(done[0]) + 1


def _run_setup(
    link: _Link, code: str, *, deadline: float, wait: _Wait, cancel: threading.Event | None = None
) -> None:
    """Run *code*; return when its reply and idle status came, raise if it failed."""
    wait.phase = "setup"
    content = {
        "code": code,
        "silent": True,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    msg_id = link.send("execute_request", content, channel="shell")
    reply: dict[str, Any] | None = None
    published: dict[str, Any] | None = None  # an iopub "error" message, if any
    done_idle = False
    while reply is None or not done_idle:
        _check(cancel)
        message = link.receive(_soon(deadline, cancel))
        if message is None:
            if time.monotonic() >= deadline:
                raise TimeoutError
            continue
        if _parent_id(message) != msg_id:
            continue
        if message.get("msg_type") == "execute_reply":
            reply = message.get("content") or {}
        elif message.get("msg_type") == "error":
            published = message.get("content") or {}
        elif _is_idle(message):
            done_idle = True
    if reply.get("status") == "ok":
        return
    failure = reply if reply.get("status") == "error" else (published or reply)
    raise _setup_error(wait, failure, status=str(reply.get("status", "unknown")))


def _setup_error(wait: _Wait, failure: dict[str, Any], *, status: str) -> SetupFailed:
    ename = _plain(str(failure.get("ename") or status))
    evalue = wait.client.scrub(_plain(str(failure.get("evalue") or "")))
    lines = [
        line
        for frame in failure.get("traceback") or []
        for line in _plain(str(frame)).splitlines()
        if line.strip() and set(line.strip()) != {"-"}
    ]
    excerpt = wait.client.scrub("\n".join(lines[-TRACEBACK_LINES:]))
    where = next((line.strip() for line in reversed(lines) if line.startswith("Cell ")), "")
    at = f" ({where})" if where else ""
    return SetupFailed(
        f"setup code of kernel {wait.kernel_id} failed: "
        f"{shorten(f'{ename}: {evalue}' if evalue else ename)}{at}; fix the setup code",
        server=wait.client.server,
        kernel_id=wait.kernel_id,
        waited=time.monotonic() - wait.started,
        execution_state=wait.watch.state,
        reason=None,
        ename=ename,
        evalue=evalue,
        traceback=excerpt,
    )


# -- the connection ----------------------------------------------------------------


class _Link:
    """One websocket to one kernel, opened and closed within one call.

    The handshake runs in its own thread, because the server holds it open
    until the kernel answers ``kernel_info`` (up to its ``kernel_info_timeout``,
    60 s by default), and a client that drops a handshake the server still
    holds makes the server count one connection *less* for that kernel
    (``connections: -1``; seen on jupyter_server 2.21, and the 1.x and notebook
    6 handlers decrement on close the same way). So a call that gives up first
    leaves the handshake to finish in that thread, which then closes the
    websocket at once (+1, -1: the count stays right); ``settle`` waits for
    those. Only a kernel known to be dead or gone has its handshake cut.
    """

    def __init__(self, client: Endpoint, kernel_id: str, *, framing: Framing) -> None:
        self.client = client
        self.kernel_id = kernel_id
        self.offer = framing
        self.framing = framing
        self.session = uuid.uuid4().hex
        self._ws: ClientConnection | None = None
        self._handle: socket.socket | None = None  # a dup of the TCP socket, to cut it
        self._error: BaseException | None = None
        self._opened = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        self._linger_watch: _Watch | None = None
        self._cut = False
        self._closed = False
        self._exits = contextlib.ExitStack()

    @classmethod
    def open(
        cls,
        client: Endpoint,
        kernel_id: str,
        *,
        deadline: float,
        framing: Framing,
        watch: _Watch | None = None,
        cancel: threading.Event | None = None,
    ) -> _Link:
        """Connect, or raise ``TimeoutError`` at *deadline* (the handshake then lingers).

        When *cancel* is set first, ``_Cancelled`` instead (the handshake lingers too).
        """
        link = cls(client, kernel_id, framing=framing)
        try:
            context = client.ssl_context()
        except (OSError, ValueError) as e:
            raise ConnectError(
                f"cannot use the CA bundle ({type(e).__name__}); check the --ca-bundle path",
                server=client.server,
            ) from e
        thread = threading.Thread(
            target=link._handshake,
            args=(context,),
            name=f"kernelform-ws-{kernel_id[:8]}",
            daemon=True,
        )
        thread.start()
        if watch is not None:
            watch.attach(link)
        if not _wait_event(link._opened, deadline, cancel):
            with link._lock:
                if link._ws is None and link._error is None:
                    link._abandoned = True
                    # Keep an eye on the kernel meanwhile: once it is gone, cut.
                    link._linger_watch = _Watch(client, kernel_id, interval=LINGER_POLL)
                    link._linger_watch._link = link
                    _linger(thread)
            if link._abandoned:
                if link._linger_watch is not None:
                    link._linger_watch.start()
                _check(cancel)
                raise TimeoutError
        if link._error is not None:
            link._raise_open_failure(link._error)
        log.debug("websocket to kernel %s open (%s)", kernel_id, link.framing.value)
        return link

    def _handshake(self, context: ssl.SSLContext | None) -> None:
        """The thread: TCP connect, then the websocket handshake (bounded by ``LINGER``)."""
        path = f"api/kernels/{quote(self.kernel_id, safe='')}/channels?session_id={self.session}"
        url = self.client.websocket_url(path)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        sock: socket.socket | None = None
        ws: ClientConnection | None = None
        try:
            sock = socket.create_connection((host, port), timeout=self.client.timeouts.connect)
            with self._lock:
                self._handle = sock.dup()
                if self._cut:
                    self._handle.shutdown(socket.SHUT_RDWR)
            connection = connect(
                url,
                sock=sock,
                ssl=context,
                server_hostname=host if context is not None else None,
                additional_headers=self.client.auth_headers(),
                subprotocols=[Subprotocol(V1_SUBPROTOCOL)] if self.offer is Framing.V1 else None,
                compression=None,
                open_timeout=LINGER,
                ping_interval=None,
                close_timeout=self.client.timeouts.connect,
                max_size=None,
                user_agent_header="kernelform",
            )
            ws = self._exits.enter_context(connection)  # closed by close()
        except BaseException as e:
            if sock is not None:
                sock.close()
            with self._lock:
                self._error = e
                abandoned = self._abandoned
        else:
            with self._lock:
                self._ws = ws
                self.framing = Framing.V1 if ws.subprotocol == V1_SUBPROTOCOL else Framing.JSON
                abandoned = self._abandoned
        if abandoned:
            self.close()
            if self._linger_watch is not None:
                self._linger_watch.stop()
        self._opened.set()

    def __enter__(self) -> _Link:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self.cut()
        self.close()

    @property
    def ws(self) -> ClientConnection:
        assert self._ws is not None, "the link is not open"
        return self._ws

    def send(self, msg_type: str, content: dict[str, Any], *, channel: str) -> str:
        """Send one request; returns its msg_id."""
        message = _message(msg_type, content, session=self.session)
        try:
            self.ws.send(encode(message, channel=channel, framing=self.framing))
        except WebSocketException as e:
            raise _Closed(f"the server closed the websocket ({_close_detail(e)})") from e
        except OSError as e:
            raise _Closed(f"the websocket broke ({_os_cause(e)})") from e
        return str(message["header"]["msg_id"])

    def receive(self, until: float) -> dict[str, Any] | None:
        """The next message (``msg_type`` and ``channel`` at the top), or None at *until*."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return None
            try:
                data = self.ws.recv(timeout=left)
            except TimeoutError:
                return None
            except WebSocketException as e:
                raise _Closed(f"the server closed the websocket ({_close_detail(e)})") from e
            except OSError as e:
                raise _Closed(f"the websocket broke ({_os_cause(e)})") from e
            try:
                message = decode(data, framing=self.framing)
            except ValueError as e:
                log.debug("skipping an undecodable message: %s", e)
                continue
            if message.get("channel") == "iopub" and message.get("msg_type") == "status":
                state = (message.get("content") or {}).get("execution_state")
                if state == "dead":
                    raise _Closed("the server reported the kernel dead")
            return message

    def cut(self) -> None:
        """Cut the TCP connection from any thread: a blocked handshake or receive ends."""
        with self._lock:
            self._cut = True
            if self._handle is not None:
                with contextlib.suppress(OSError):
                    self._handle.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close: gracefully, unless the link was cut (after giving up: do not wait).

        (A server busy nudging a kernel does not read a close frame until the
        kernel answers or ``kernel_info_timeout`` passes: waiting for its answer
        would only add websockets' close timeout.)
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ws, handle = self._ws, self._handle
        try:
            if ws is not None:
                self._exits.close()
        finally:
            if handle is not None:
                handle.close()

    def _raise_open_failure(self, error: BaseException) -> NoReturn:
        client = self.client
        if isinstance(error, InvalidStatus):
            _raise_status(client, error)
        if isinstance(error, ssl.SSLCertVerificationError):
            raise ConnectError(
                "TLS verification failed (certificate not trusted); pass --ca-bundle with the "
                "server's CA certificate, or --insecure to skip verification",
                server=client.server,
            ) from error
        if isinstance(error, ssl.SSLError):
            raise ConnectError(
                f"TLS handshake failed ({client.scrub(error.reason or type(error).__name__)})",
                server=client.server,
            ) from error
        if isinstance(error, TimeoutError) and not self._cut:
            raise ConnectError(
                f"no connection within {client.timeouts.connect:g}s; is the server up?",
                server=client.server,
            ) from error
        if isinstance(error, ConnectionRefusedError):
            raise ConnectError(
                "cannot connect (connection refused); is the Jupyter server running at this URL?",
                server=client.server,
            ) from error
        if isinstance(error, socket.gaierror):
            raise ConnectError(
                "cannot connect (host not found); is the Jupyter server URL right?",
                server=client.server,
            ) from error
        if isinstance(error, (WebSocketException, OSError, EOFError)):
            raise _Closed(f"the websocket handshake failed ({type(error).__name__})") from error
        raise error


_LINGERING: set[threading.Thread] = set()
_LINGERING_LOCK = threading.Lock()


def _linger(thread: threading.Thread) -> None:
    with _LINGERING_LOCK:
        _LINGERING.add(thread)
        for done in [t for t in _LINGERING if not t.is_alive()]:
            _LINGERING.discard(done)


def settle(timeout: float) -> int:
    """Wait up to *timeout* for handshakes that calls gave up on; return how many remain.

    A program about to exit calls this so that each is closed cleanly (which
    keeps the server's ``connections`` count right) rather than dropped.
    """
    deadline = time.monotonic() + timeout
    with _LINGERING_LOCK:
        threads = list(_LINGERING)
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    with _LINGERING_LOCK:
        for done in [t for t in _LINGERING if not t.is_alive()]:
            _LINGERING.discard(done)
        return len(_LINGERING)


def _raise_status(client: Endpoint, error: InvalidStatus) -> NoReturn:
    status = error.response.status_code
    if status in (401, 403):
        raise AuthError(f"not authenticated (HTTP {status})", server=client.server) from error
    if status == 404:
        raise _Closed("the websocket handshake answered 404: no such kernel") from error
    body = client.scrub(bytes(error.response.body or b"").decode("utf-8", "replace"))
    raise _Closed(f"the websocket handshake answered HTTP {status}: {shorten(body)}") from error


def _close_detail(error: WebSocketException) -> str:
    return shorten(type(error).__name__ + (f": {error}" if str(error) else ""), 120)


def _os_cause(error: OSError) -> str:
    return error.strerror or type(error).__name__


# -- messages ----------------------------------------------------------------------


def _message(msg_type: str, content: dict[str, Any], *, session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "kernelform",
            "session": session,
            "date": datetime.now(timezone.utc).isoformat(),
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "buffers": [],
    }


def encode(message: dict[str, Any], *, channel: str, framing: Framing) -> str | bytes:
    """One message as the websocket frame *framing* wants (no buffers are sent)."""
    if framing is Framing.JSON:
        return json.dumps({**message, "channel": channel, "buffers": []})
    parts = [channel.encode(), *(json.dumps(message[name]).encode() for name in _PARTS)]
    count = len(parts) + 1  # every part's start, and the end
    offsets = [8 * (1 + count)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = count.to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + b"".join(parts)


def decode(data: str | bytes, *, framing: Framing) -> dict[str, Any]:
    """A received frame as a message dict, plus ``channel`` and ``msg_type`` at the top.

    Raises ValueError for a frame that is not a message.
    """
    try:
        if isinstance(data, str):
            message = json.loads(data)
        elif framing is Framing.V1:
            message = _decode_v1(data)
        else:
            message = _decode_legacy_binary(data)
        if not isinstance(message, dict) or not isinstance(message.get("header"), dict):
            raise ValueError("no header")
    except (UnicodeDecodeError, json.JSONDecodeError, IndexError, TypeError) as e:
        raise ValueError(f"not a kernel message: {type(e).__name__}") from e
    message.setdefault("parent_header", {})
    message["msg_type"] = message["header"].get("msg_type")
    return message


def _decode_v1(data: bytes) -> dict[str, Any]:
    count = int.from_bytes(data[:8], "little")
    if not 6 <= count <= len(data) // 8:
        raise ValueError(f"bad v1 offset count {count}")
    offsets = [int.from_bytes(data[8 * i : 8 * (i + 1)], "little") for i in range(1, count + 1)]
    chunks = [data[start:stop] for start, stop in itertools.pairwise(offsets)]
    message: dict[str, Any] = {
        name: json.loads(chunk) for name, chunk in zip(_PARTS, chunks[1:5], strict=False)
    }
    message["channel"] = chunks[0].decode()
    message["buffers"] = chunks[5:]
    return message


def _decode_legacy_binary(data: bytes) -> dict[str, Any]:
    """The default framing's binary frame (a message with buffers): big-endian uint32s."""
    count = int.from_bytes(data[:4], "big")
    if not 1 <= count <= len(data) // 4:
        raise ValueError(f"bad offset count {count}")
    offsets = [int.from_bytes(data[4 * i : 4 * (i + 1)], "big") for i in range(1, count + 1)]
    chunks = [data[start:stop] for start, stop in itertools.pairwise([*offsets, len(data)])]
    message: dict[str, Any] = json.loads(chunks[0])
    message["buffers"] = chunks[1:]
    return message


def _parent_id(message: dict[str, Any]) -> str | None:
    parent = message.get("parent_header")
    return parent.get("msg_id") if isinstance(parent, dict) else None


def _answers(message: dict[str, Any], msg_id: str, msg_type: str) -> bool:
    return message.get("msg_type") == msg_type and _parent_id(message) == msg_id


def _is_idle(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return (
        message.get("channel") == "iopub"
        and message.get("msg_type") == "status"
        and isinstance(content, dict)
        and content.get("execution_state") == "idle"
    )


def _plain(text: str) -> str:
    """*text* without ANSI colour codes."""
    return _ANSI.sub("", text)
