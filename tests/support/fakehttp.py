"""Tiny loopback servers for the cases a real Jupyter server cannot produce.

* ``FakeHTTPServer``: an ``http.server`` in a thread that records every request
  and answers through a function you give it (count-based 503s, HTML pages, ...).
* ``HangingServer``: accepts TCP connections and never answers.
* ``ResetServer``: reads a request, sends half a status line and headers, then
  resets the connection (``SO_LINGER`` 0 makes ``close`` send a RST).

All are context managers that stop their thread on exit.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request as the fake server saw it."""

    method: str
    target: str  # the raw request target: path and query
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/html; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


def json_reply(status: int, body: Any) -> Reply:
    return Reply(status, body, {"Content-Type": "application/json"})


Responder = Callable[[Recorded, int], Reply]
"""Gets the request and its 1-based number; returns what to answer."""


class FakeHTTPServer:
    """A recording HTTP server on 127.0.0.1 answering through *responder*.

    With *keep_alive* it speaks HTTP/1.1 and keeps connections open, as Jupyter
    servers do (for benchmarks); by default each answer closes its connection.
    """

    def __init__(self, responder: Responder, *, keep_alive: bool = False) -> None:
        self.responder = responder
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
            # algorithm and the client's delayed ACK stall each kept-alive answer ~40 ms.
            disable_nagle_algorithm = keep_alive

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with outer._lock:
                    outer.requests.append(recorded)
                    number = len(outer.requests)
                reply = outer.responder(recorded, number)
                payload, headers = reply.encoded()
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # tornado (Jupyter's server) listens with a backlog of 128; socketserver's 5
            # would make 50 clients connecting at once wait on SYN retries.
            request_queue_size = 128

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> FakeHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


class _SocketServer:
    """A raw TCP listener on 127.0.0.1 whose connections are handled by ``serve``."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self.connections = 0
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def __enter__(self) -> _SocketServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()


class HangingServer(_SocketServer):
    """Accepts connections, reads nothing back, answers nothing."""

    def serve(self, conn: socket.socket) -> None:
        self._stop.wait()


class ResetServer(_SocketServer):
    """Reads the request head, sends part of an answer, then resets the connection."""

    PARTIAL = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'[{"id": "'
    )

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            conn.sendall(self.PARTIAL)
        except OSError:
            pass
        # SO_LINGER on with a zero timeout: close() drops the connection with a RST.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
