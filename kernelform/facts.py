"""Facts: what each Jupyter server reports, read once per plan.

Reading (I/O) is kept apart from planning: ``gather_facts`` asks every server
for its kernels and sessions, all servers in parallel, and hands the planner
plain frozen ``LiveServer`` objects (``kernelform.live``). What only a kernel *start* needs (the
kernelspecs, whether the server takes client-chosen kernel ids, whether the
declared working directories exist) is read only for the servers where
something may start (``detailed``): a plan with nothing to start makes two
requests per server, not four or more, which matters for a fleet of users'
servers behind a hub's proxy. ``probe_health`` then asks
the kernels that want a health check whether they answer, all in parallel,
and marks the silent ones. The planner never does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

from kernelform.live import LiveServer
from kernelform.liveness import Health, HealthCheck
from kernelform.server import KernelServer

MAX_READERS = 16  # servers (or hub users, groups) read at once

T = TypeVar("T")
R = TypeVar("R")


def read_server(
    name: str, client: KernelServer, dirs: Collection[str] = (), *, detailed: bool = True
) -> LiveServer:
    """Read one server: kernels and sessions; with *detailed*, also what a start needs
    (``read_details``)."""
    server = LiveServer(
        name=name,
        kernels={k.id: k for k in client.list_kernels()},
        sessions=tuple(client.list_sessions()),
        detailed=False,
    )
    return read_details(server, client, dirs) if detailed else server


def read_details(server: LiveServer, client: KernelServer, dirs: Collection[str]) -> LiveServer:
    """*server* with what a kernel start there needs: its kernelspecs, whether it takes
    client-chosen kernel ids, and whether *dirs* (declared cwds) are directories there."""
    missing, unchecked = read_dirs(client, dirs)
    return replace(
        server,
        specs=tuple(client.list_kernelspecs().names),
        accepts_kernel_id=client.accepts_kernel_id(),
        missing_dirs=missing,
        unchecked_dirs=unchecked,
        detailed=True,
    )


def read_dirs(client: KernelServer, dirs: Collection[str]) -> tuple[dict[str, str], frozenset[str]]:
    """Which of *dirs* are not directories on the server (and why), and which could
    not be checked at all.

    A kernel started in a path that does not exist runs, silently, in its nearest
    existing parent. One request per distinct path; when some answer 404, one more
    for the root tells a missing path from a server without the contents API (a
    kernel gateway), whose paths are then all left unchecked.
    """
    missing: dict[str, str] = {}
    for path in sorted(set(dirs)):
        kind = client.path_kind(path)
        if kind is None:
            missing[path] = "does not exist"
        elif kind != "directory":
            missing[path] = f"is a {kind}, not a directory"
    if "does not exist" in missing.values() and client.path_kind("") is None:
        return {}, frozenset(dirs)
    return missing, frozenset()


def gather_facts(
    clients: Mapping[str, KernelServer],
    dirs: Mapping[str, Collection[str]] | None = None,
    *,
    detailed: Collection[str] | None = None,
) -> dict[str, LiveServer]:
    """Read every server in parallel; the first error (by server name) is raised.

    *dirs* names, per server, the paths to check as working directories.
    *detailed* names the servers to read in full (``read_details``); None: all.
    """
    wanted = dirs or {}

    def read(name: str) -> LiveServer:
        full = detailed is None or name in detailed
        return read_server(name, clients[name], wanted.get(name, ()), detailed=full)

    names = sorted(clients)
    return dict(zip(names, in_parallel(read, names), strict=True))


def add_details(
    clients: Mapping[str, KernelServer],
    live: Mapping[str, LiveServer],
    servers: Collection[str],
    dirs: Mapping[str, Collection[str]] | None = None,
) -> dict[str, LiveServer]:
    """*live*, with the *servers* that were not read in full now read in full."""
    wanted = dirs or {}
    todo = sorted(s for s in servers if s in live and not live[s].detailed)
    out = dict(live)

    def read(name: str) -> LiveServer:
        return read_details(live[name], clients[name], wanted.get(name, ()))

    out.update(zip(todo, in_parallel(read, todo), strict=True))
    return out


def in_parallel(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """*function* over *items*, ``MAX_READERS`` at a time; results in order, and the
    first item's error (in that order) raised."""
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), MAX_READERS)) as pool:
        futures = [pool.submit(function, item) for item in items]
        return [future.result() for future in futures]


def probe_health(
    clients: Mapping[str, KernelServer],
    live: Mapping[str, LiveServer],
    checks: list[HealthCheck],
) -> dict[str, LiveServer]:
    """*live* with the kernels of *checks* that did not answer marked ``unresponsive``.

    Every probe runs at once, so the whole takes about the longest timeout. A
    kernel gone meanwhile is left to the next plan; a probe that fails because
    the server itself cannot be used raises.
    """
    wanted = [c for c in checks if c.server in live and c.kernel_id in live[c.server].kernels]
    if not wanted:
        return dict(live)
    silent: dict[str, set[str]] = {}
    with ThreadPoolExecutor(max_workers=min(len(wanted), 64)) as pool:
        futures = [
            (
                check,
                pool.submit(clients[check.server].probe, check.kernel_id, timeout=check.timeout),
            )
            for check in wanted
        ]
        for check, future in futures:
            if future.result().health is Health.UNRESPONSIVE:
                silent.setdefault(check.server, set()).add(check.kernel_id)
    return {
        name: replace(server, unresponsive=frozenset(silent[name])) if name in silent else server
        for name, server in live.items()
    }
