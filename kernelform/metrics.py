"""Prometheus metrics and a health check for ``kernelform watch``, over HTTP.

``WatchMetrics`` is a set of watch ``Events`` that counts into its own
``CollectorRegistry`` (never prometheus_client's global one: two watches in
one process, or a library user's own metrics, do not mix). ``MetricsServer``
serves it on ``/metrics`` (the Prometheus text format, or OpenMetrics when
asked) and the controller's ``Health`` on ``/healthz`` (200 or 503, one line
saying why), from a daemon thread; it binds when made, so a port in use fails
at once with one line.

The metrics, all prefixed ``kernelform_watch_``:

==========================================  =========  ===============================
name                                        type       labels
==========================================  =========  ===============================
cycles_total                                counter
failed_cycles_total                         counter
consecutive_failures                        gauge
actions_total                               counter    action, outcome (ok/failed/skipped)
planned_changes_total                       counter    action (blocked ones included)
drift                                       gauge      (changes the last plan found)
blocked_changes                             gauge
managed_kernels                             gauge      server
last_success_timestamp_seconds              gauge
cycle_duration_seconds                      histogram
==========================================  =========  ===============================
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from kernelform.controller import CycleEnd, Events, Health
from kernelform.errors import KernelformError
from kernelform.executor import Outcome
from kernelform.plan import Action

PREFIX = "kernelform_watch"
OUTCOMES = ("ok", "failed", "skipped")
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class WatchMetrics(Events):
    """The watch's counters and gauges, kept up to date from its events."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cycles = Counter(f"{PREFIX}_cycles", "Cycles run, failed ones included.", registry=r)
        self.failed_cycles = Counter(
            f"{PREFIX}_failed_cycles",
            "Cycles that failed: manifest unreadable, a server or the state unreachable, "
            "the lock held, or an action failed.",
            registry=r,
        )
        self.consecutive_failures = Gauge(
            f"{PREFIX}_consecutive_failures",
            "Cycles failed in a row (0 after a success).",
            registry=r,
        )
        self.actions = Counter(
            f"{PREFIX}_actions",
            "Actions carried out, by kind and outcome (skipped: not started because the "
            "watch was stopping).",
            ["action", "outcome"],
            registry=r,
        )
        self.planned = Counter(
            f"{PREFIX}_planned_changes",
            "Changes (drift) the cycles' plans found, blocked ones included.",
            ["action"],
            registry=r,
        )
        self.drift = Gauge(
            f"{PREFIX}_drift", "Changes the last plan found, blocked ones included.", registry=r
        )
        self.blocked = Gauge(
            f"{PREFIX}_blocked_changes",
            "Changes the last plan found blocked (kernels in use; a watch never forces).",
            registry=r,
        )
        self.managed = Gauge(
            f"{PREFIX}_managed_kernels",
            "Kernels in the state after the last cycle that read it, by server.",
            ["server"],
            registry=r,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "When the last successful cycle ended (Unix time); 0 before the first.",
            registry=r,
        )
        self.duration = Histogram(
            f"{PREFIX}_cycle_duration_seconds",
            "How long cycles take, failed ones included.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        for action in Action:
            self.planned.labels(action.value)
            for outcome in OUTCOMES:
                self.actions.labels(action.value, outcome)
        self._servers: set[str] = set()

    def action_finished(self, number: int, outcome: Outcome, at: Any) -> None:
        self.actions.labels(outcome.change.action.value, "ok" if outcome.ok else "failed").inc()

    def cycle_finished(self, end: CycleEnd) -> None:
        self._ended(end)
        self.last_success.set(end.started_at.timestamp() + end.seconds)

    def cycle_failed(self, end: CycleEnd) -> None:
        self._ended(end)
        self.failed_cycles.inc()

    def _ended(self, end: CycleEnd) -> None:
        self.cycles.inc()
        self.duration.observe(end.seconds)
        self.consecutive_failures.set(end.failures)
        if end.plan is not None:
            for change in end.plan.changes:
                self.planned.labels(change.action.value).inc()
            self.drift.set(len(end.plan.changes))
            self.blocked.set(len(end.plan.blocked))
        if end.report is not None:
            for change in end.report.skipped:
                self.actions.labels(change.action.value, "skipped").inc()
        if end.managed is not None:
            self._set_managed(end.managed.items())

    def _set_managed(self, counts: Iterable[tuple[str, int]]) -> None:
        seen = dict(counts)
        for gone in self._servers - set(seen):
            self.managed.remove(gone)
        for server, count in seen.items():
            self.managed.labels(server).set(count)
        self._servers = set(seen)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never holds the process


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the watch's own log is for what it does."""


class MetricsServer:
    """``/metrics`` and ``/healthz`` on *host*:*port*, served from a daemon thread.

    Binding happens here: an address in use, or one this host does not have,
    is a ``KernelformError`` naming it.
    """

    def __init__(self, metrics: WatchMetrics, health: Health, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        self._metrics_app = make_wsgi_app(metrics.registry)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        except socket.gaierror as e:
            raise KernelformError(
                f"cannot serve metrics on {where}: unknown address ({e.strerror})"
            ) from e
        server_class = type("_Bound", (_Server,), {"address_family": family})
        try:
            self._httpd: WSGIServer = make_server(
                host, port, self._app, server_class=server_class, handler_class=_QuietHandler
            )
        except OSError as e:
            cause = (
                "the port is already in use"
                if e.errno == errno.EADDRINUSE
                else (e.strerror or str(e))
            )
            raise KernelformError(f"cannot serve metrics on {where}: {cause}") from e
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{where.rsplit(':', 1)[0]}:{self.port}/"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="kernelform-metrics",
            daemon=True,
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            healthy, why = self.health.verdict()
            status = "200 OK" if healthy else "503 Service Unavailable"
            return _text(start_response, status, why)
        return _text(start_response, "404 Not Found", "not found: try /metrics or /healthz")


def _text(start_response: StartResponse, status: str, line: str) -> list[bytes]:
    body = (line + "\n").encode("utf-8")
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
