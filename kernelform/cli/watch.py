"""``kernelform watch``: the controller's options (the loop is ``kernelform.controller``)."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kernelform.workspace import Workspace

from kernelform.cli.app import (
    cli,
)
from kernelform.cli.options import (
    SECONDS_RULE,
    Printer,
    current_runtime,
    manifest_hint,
    open_workspace,
    seconds_of,
    workspace_command,
)


class LogFormat(str, Enum):
    """How ``watch`` writes its events."""

    TEXT = "text"
    JSON = "json"


def parse_interval(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from kernelform.controller import MIN_INTERVAL

    seconds = seconds_of(value, rule=f"{SECONDS_RULE}, at least {MIN_INTERVAL:g}s")
    if seconds < MIN_INTERVAL:
        raise click.BadParameter(
            f"it must be at least {MIN_INTERVAL:g}s (e.g. 60s or 5m), not {value!r}"
        )
    return seconds


@cli.command()
@workspace_command(waiting=True)
@click.option(
    "--interval",
    default="60s",
    callback=parse_interval,
    show_default=True,
    metavar="DURATION",
    help="Pause between two cycles (e.g. 30s, 5m); doubled after each failed cycle, up to "
    "4 intervals.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1, max=256),
    default=10,
    show_default=True,
    help="How many actions run at once.",
)
@click.option(
    "--log-format",
    type=click.Choice([f.value for f in LogFormat]),
    default=LogFormat.TEXT.value,
    show_default=True,
    help="text: a line per action and per cycle that changed something; json: one "
    "JSON object per event.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    metavar="PORT",
    help="Serve Prometheus /metrics and /healthz on this port.",
)
@click.option(
    "--metrics-addr",
    default=None,
    metavar="HOST",
    help="Address to serve metrics on (with --metrics-port) [default: 127.0.0.1].",
)
def watch(
    workspace: Workspace,
    printer: Printer,
    interval: float,
    log_format: str,
    metrics_port: int | None,
    metrics_addr: str | None,
) -> None:
    """Keep the servers converged: plan and apply every --interval, until stopped.

    Each cycle re-reads the manifest, takes the lock, plans, applies what is
    runnable without asking (never forcing: blocked changes stay blocked) and
    releases the lock. A cycle that fails (a broken manifest, a server or the
    state unreachable, a failed action) is reported and the next one follows.
    SIGTERM or Ctrl-C: the actions in flight finish, the lock is released, exit 0.
    """
    from contextlib import ExitStack

    from kernelform.controller import (
        Controller,
        Events,
        Fanout,
        Health,
        WatchConfig,
        stop_on_signals,
    )
    from kernelform.errors import KernelformError
    from kernelform.eventlog import JsonLog, TextLog

    if metrics_addr is not None and metrics_port is None:
        raise click.UsageError("--metrics-addr needs --metrics-port")
    runtime = current_runtime()
    config = WatchConfig(settings=workspace.settings, interval=interval)
    health = Health(interval=interval)
    sinks: list[Events] = [health]
    with ExitStack() as stack:
        url = None
        if metrics_port is not None:
            from kernelform.metrics import MetricsServer, WatchMetrics

            metrics = WatchMetrics()
            host = metrics_addr or "127.0.0.1"
            try:
                server = MetricsServer(metrics, health, host=host, port=metrics_port)
            except KernelformError as e:
                other = " or --metrics-addr" if metrics_addr else ""
                e.hint = f"choose another --metrics-port{other}"
                raise
            stack.enter_context(server)
            sinks.append(metrics)
            url = server.url
        log_class = JsonLog if log_format == LogFormat.JSON.value else TextLog
        sinks.append(log_class(sys.stdout, redactor=runtime.secrets, metrics_url=url))
        controller = Controller(
            config,
            runtime=runtime,
            events=Fanout(*sinks),
            open_workspace=open_workspace,
            explain=manifest_hint,
        )
        with stop_on_signals(controller):
            controller.run()
