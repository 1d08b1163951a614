"""A fault-injecting HTTP proxy in front of the real jupyter server, for the tests.

``FaultProxy(upstream)`` listens on ``127.0.0.1`` (a free port), forwards every
request to *upstream* (the test's jupyter server) and records it. Rules switch
matching requests (by method and a path regex; the first ``after`` matches go
through, then ``times`` of them are faulted, or all with ``times=None``) to:

``RESET_HEADERS``
    forward the request (the server acts on it), then send the first bytes of the
    answer's status line and headers and reset the connection (``SO_LINGER`` 0);
``RESET_BODY``
    the same, but the headers are sent whole and the body only half;
``HTTP_500`` / ``HTTP_503`` / ``HTTP_403`` / ``HTTP_404``
    answer that status with a JSON ``{"message": ...}`` body, without forwarding
    (404: an endpoint the server does not have, as a gateway lacks ``api/contents``);
``SLOW``
    hold the request until ``release()`` (or ``delay`` seconds, or ``close()``),
    then forward it, so the server acts late, after the client gave up.

Refusing connections is not per request (a connection is refused before any
request is read): ``refuse()`` closes the listening socket, ``accept()`` listens
on the same port again. ``DIE`` is a rule that does that from inside a request:
the proxy stops listening and resets the matching connection without forwarding.

Everything is bounded: handler sockets time out after ``IDLE_TIMEOUT`` seconds,
a held request waits at most ``delay`` seconds, the upstream request times out,
and ``close()`` (the context manager's exit) releases held requests, stops the
listener and waits (bounded) for the handlers to finish.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

IDLE_TIMEOUT = 10.0
UPSTREAM_TIMEOUT = 60.0
CLOSE_TIMEOUT = 15.0
MAX_DELAY = 120.0

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class Kind(str, Enum):
    RESET_HEADERS = "reset-headers"
    RESET_BODY = "reset-body"
    HTTP_500 = "http-500"
    HTTP_503 = "http-503"
    HTTP_403 = "http-403"
    HTTP_404 = "http-404"
    SLOW = "slow"
    DIE = "die"


STATUS_OF = {Kind.HTTP_500: 500, Kind.HTTP_503: 503, Kind.HTTP_403: 403, Kind.HTTP_404: 404}
MESSAGE_OF = {
    Kind.HTTP_500: "Injected failure by the fault proxy",
    Kind.HTTP_503: "Service Unavailable (injected)",
    Kind.HTTP_403: "Forbidden",
    Kind.HTTP_404: "Not Found",
}


@dataclass
class Rule:
    """Fault the requests matching *method* (or ``*``) and the *path* regex (full match).

    The first ``after`` matches go through untouched; then ``times`` matches are
    faulted (``None``: every one). ``delay`` bounds how long ``SLOW`` holds one.
    """

    kind: Kind
    method: str = "*"
    path: str = r"/.*"
    times: int | None = None
    after: int = 0
    delay: float = 30.0
    matched: int = 0
    applied: int = 0
    gate: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.delay <= MAX_DELAY:
            raise ValueError(f"delay must be in (0, {MAX_DELAY}] seconds")
        self._pattern = re.compile(self.path)

    def take(self, method: str, path: str) -> bool | None:
        """None: not for this rule; True: fault it; False: matched but let through."""
        if self.method not in ("*", method) or not self._pattern.fullmatch(path):
            return None
        self.matched += 1
        if self.matched <= self.after:
            return False
        if self.times is not None and self.applied >= self.times:
            return False
        self.applied += 1
        return True


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it, and what it did with it."""

    method: str
    path: str
    body: bytes
    fault: Kind | None
    status: int | None  # the upstream's status, when forwarded and answered

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FaultProxy:
    """A loopback proxy to *upstream* that injects faults by rule; a context manager."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream needs a host and a port: {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.upstream_prefix = parts.path.rstrip("/")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._listening = threading.RLock()
        self.rules: list[Rule] = []
        self._held: list[Rule] = []  # cleared SLOW rules, whose requests may be held
        self.seen: list[Seen] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}/"

    # -- control ---------------------------------------------------------------

    def add(self, kind: Kind, method: str = "*", path: str = r"/.*", **kw: Any) -> Rule:
        rule = Rule(kind, method, path, **kw)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule; requests held by ``SLOW`` stay held until ``release()``."""
        with self._lock:
            self._held += [r for r in self.rules if r.kind is Kind.SLOW]
            self.rules = []

    def release(self) -> None:
        """Let every request held by a ``SLOW`` rule (current or cleared) go on."""
        with self._lock:
            rules = self.rules + self._held
        for rule in rules:
            rule.gate.set()

    def refuse(self) -> None:
        """Stop listening: new connections are refused until ``accept()``."""
        with self._listening:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
            if httpd is None:
                return
            httpd.shutdown()
            httpd.server_close()
            if thread is not None:
                thread.join(CLOSE_TIMEOUT)

    def accept(self) -> None:
        """Listen again on the same port (retried briefly while the port is busy)."""
        deadline = time.monotonic() + 5.0
        with self._listening:
            while self._httpd is None:
                try:
                    self._listen(self.port)
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def count(self, method: str, path: str, *, fault: Kind | str | None = "any") -> int:
        """Requests seen for *method* and the *path* regex (with that fault, if given)."""
        pattern = re.compile(path)
        with self._lock:
            return sum(
                1
                for s in self.seen
                if s.method == method
                and pattern.fullmatch(s.path)
                and (fault == "any" or s.fault == fault)
            )

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no request is being handled (held, forwarded or answered)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"the fault proxy still handles {self._in_flight} request(s) "
                        f"after {timeout:g}s"
                    )
                self._idle.wait(min(remaining, 0.1))

    def close(self) -> None:
        self.release()
        self.refuse()
        with contextlib.suppress(AssertionError):
            self.wait_idle(CLOSE_TIMEOUT)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ---------------------------------------------------------------

    def _listen(self, port: int = 0) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = IDLE_TIMEOUT  # an idle keep-alive connection ends after this

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _decide(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                taken = rule.take(method, path)
                if taken is None:
                    continue
                return rule if taken else None
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._in_flight += 1
        try:
            self._serve_one(handler)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _serve_one(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = urlsplit(handler.path).path
        rule = self._decide(handler.command, path)
        kind = rule.kind if rule else None
        with self._lock:  # seen at once, even while held; the status comes later
            index = len(self.seen)
            self.seen.append(Seen(handler.command, path, body, kind, None))

        if kind in STATUS_OF:
            assert kind is not None
            payload = json.dumps({"message": MESSAGE_OF[kind], "reason": None}).encode()
            _answer(handler, STATUS_OF[kind], {"Content-Type": "application/json"}, payload)
            return
        if kind is Kind.DIE:
            self.refuse()  # from a handler thread: serve_forever's thread is not us
            _reset(handler, b"")
            return
        if kind is Kind.SLOW:
            assert rule is not None
            rule.gate.wait(rule.delay)
        if handler.headers.get("Upgrade", "").lower() == "websocket":
            self._tunnel(handler)
            return
        try:
            status, headers, payload = self._forward(handler, body)
        except OSError as e:
            message = json.dumps({"message": f"fault proxy: upstream failed: {e}"}).encode()
            _answer(handler, 502, {"Content-Type": "application/json"}, message)
            return
        with self._lock:
            self.seen[index] = replace(self.seen[index], status=status)
        if kind is Kind.RESET_HEADERS:
            head = _head(handler, status, headers, payload)
            _reset(handler, head[: max(1, min(len(head) // 2, 40))])
            return
        if kind is Kind.RESET_BODY:
            head = _head(handler, status, headers, payload)
            _reset(handler, head + payload[: len(payload) // 2])
            return
        with contextlib.suppress(OSError):  # a client that gave up (SLOW) is gone
            _answer(handler, status, headers, payload)

    def _tunnel(self, handler: BaseHTTPRequestHandler) -> None:
        """A websocket: pass the handshake on as is, then copy bytes both ways until one
        side closes (kernelform talks to kernels over it to see that they answer)."""
        lines = [f"{handler.command} {self.upstream_prefix}{handler.path} HTTP/1.1"]
        for key, value in handler.headers.items():
            if key.lower() == "host":
                value = f"{self.upstream_host}:{self.upstream_port}"
            lines.append(f"{key}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        client = handler.connection
        try:
            upstream = socket.create_connection(
                (self.upstream_host, self.upstream_port), timeout=UPSTREAM_TIMEOUT
            )
        except OSError:
            _answer(handler, 502, {"Content-Type": "text/plain"}, b"fault proxy: no upstream")
            return
        handler.close_connection = True
        with upstream:
            # (A websocket client sends nothing more until the handshake is answered, so
            # the handler's read buffer holds nothing: the raw socket is read from here.)
            upstream.sendall(request)

            def pump(source: socket.socket, sink: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while chunk := source.recv(65536):
                        sink.sendall(chunk)
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

            client.settimeout(UPSTREAM_TIMEOUT + MAX_DELAY)
            upstream.settimeout(UPSTREAM_TIMEOUT + MAX_DELAY)
            back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            back.start()
            pump(client, upstream)
            back.join(CLOSE_TIMEOUT)

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = f"{self.upstream_host}:{self.upstream_port}"
        if body or handler.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT
        )
        try:
            connection.request(
                handler.command, self.upstream_prefix + handler.path, body=body, headers=headers
            )
            response = connection.getresponse()
            payload = response.read()
            answer = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
            return response.status, answer, payload
        finally:
            connection.close()


def _head(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes
) -> bytes:
    reason = handler.responses.get(status, ("",))[0]
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _answer(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes
) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    if payload and handler.command != "HEAD":
        handler.wfile.write(payload)
    handler.wfile.flush()


def _reset(handler: BaseHTTPRequestHandler, partial: bytes) -> None:
    """Send *partial*, then drop the connection with a RST (``SO_LINGER`` on, 0 s)."""
    conn = handler.connection
    handler.close_connection = True
    with contextlib.suppress(OSError):
        if partial:
            conn.sendall(partial)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The request's file objects hold references to the socket: close them first,
    # or close() would not release the descriptor and no RST would be sent.
    with contextlib.suppress(OSError):
        handler.rfile.close()
    with contextlib.suppress(OSError):
        conn.close()
