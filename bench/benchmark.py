"""Benchmarks: how kernelform scales, measured, not asserted.

    .venv/bin/python -m bench.benchmark [--kernels 10000]

Times, best of several runs:
- the planner on N declared kernels, all in the state and live, with sessions;
- the same plan rendered for people and as JSON;
- reading one server that reports N kernels and N/5 sessions (a fake loopback
  HTTP server: a real one cannot hold 10,000 kernels on this machine);
- ``kernelform --help`` and ``kernelform validate`` in a fresh process (start-up);
- a whole plan (``Workspace.plan()``: state, hubs, servers over loopback HTTP, the
  planner) of the same N kernels held by one server, by 50 servers, and by the
  servers of a hub's 50 users (issue 11's goal: at most 2x the one server).
  ``--fleet-only`` runs just this.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from kernelform.client import JupyterClient
from kernelform.facts import read_server
from kernelform.live import LiveServer
from kernelform.manifest import parse_manifest
from kernelform.planner import make_plan
from kernelform.recipe import Recipe
from kernelform.render import render_plan
from kernelform.state import Resource, new_state
from tests.support.fakehttp import FakeHTTPServer, Recorded, Reply

NOW = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
PER_DECLARATION = 1000


def best(function: Callable[[], Any], *, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return min(times)


def world(n: int) -> tuple[Any, Any, dict[str, LiveServer]]:
    declarations = max(1, n // PER_DECLARATION)
    kernels = "".join(
        f"  pool{i}: {{spec: python3, count: {min(PER_DECLARATION, n)}, revision: 1, "
        "max_age: 1d, busy_timeout: 1h}\n"
        for i in range(declarations)
    )
    manifest = parse_manifest(
        "servers:\n  lab: {url: 'http://127.0.0.1:8888', prune: true}\nkernels:\n" + kernels,
        filename="bench.yaml",
        environ={},
    )
    resources: dict[str, Resource] = {}
    live_kernels: dict[str, Any] = {}
    sessions = []
    for number, item in enumerate(manifest.desired()):
        kernel_id = str(uuid.uuid4())
        revision = "0" if number % 10 == 0 else "1"
        resources[item.address] = Resource(
            address=item.address,
            server="lab",
            kernel_id=kernel_id,
            recipe=Recipe(spec="python3", revision=revision),
            started_at=NOW - timedelta(hours=1),
        )
        live_kernels[kernel_id] = {"id": kernel_id, "name": "python3", "execution_state": "idle"}
        if number % 5 == 0:
            sessions.append(
                {
                    "id": f"s{number}",
                    "path": f"nb/{number}.ipynb",
                    "kernel": {"id": kernel_id, "name": "python3"},
                }
            )
    state = replace(new_state(), resources=resources)
    live = {
        "lab": LiveServer.from_dict(
            {
                "name": "lab",
                "kernels": list(live_kernels.values()),
                "sessions": sessions,
                "specs": ["python3"],
            }
        )
    }
    return manifest, state, live


def bench_http(n: int) -> float:
    kernels = [
        {
            "id": str(uuid.uuid4()),
            "name": "python3",
            "execution_state": "idle",
            "last_activity": "2026-11-28T12:00:00Z",
            "connections": 0,
        }
        for _ in range(n)
    ]
    sessions = [
        {
            "id": f"s{i}",
            "path": f"nb/{i}.ipynb",
            "name": "x",
            "type": "notebook",
            "kernel": kernels[i],
        }
        for i in range(0, n, 5)
    ]
    bodies = {
        "/api/kernels": json.dumps(kernels),
        "/api/sessions": json.dumps(sessions),
        "/api/kernelspecs": json.dumps({"default": "python3", "kernelspecs": {"python3": {}}}),
        "/api": json.dumps({"version": "2.21.1"}),
    }

    def answer(request: Recorded, number: int) -> Reply:
        return Reply(200, bodies.get(request.path, "{}"), {"Content-Type": "application/json"})

    with FakeHTTPServer(answer) as fake, JupyterClient(fake.url) as client:
        return best(lambda: read_server("lab", client), runs=3)


def bench_process(*args: str) -> float:
    return best(
        lambda: subprocess.run(
            [sys.executable, "-m", "kernelform", *args], capture_output=True, check=False
        ),
        runs=5,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=10_000)
    parser.add_argument("--fleet-only", action="store_true")
    arguments = parser.parse_args()
    n = arguments.kernels
    for total in (1_000, n):
        one, servers, hub = bench_fleet(total)
        print(
            f"whole plan, {total} kernels: 1 server {one:.3f} s; {FLEET_SERVERS} servers "
            f"{servers:.3f} s ({servers / one:.1f}x); hub of {FLEET_SERVERS} users "
            f"{hub:.3f} s ({hub / one:.1f}x)"
        )
    if arguments.fleet_only:
        return
    manifest, state, live = world(n)
    plan = make_plan(manifest, state, live, now=NOW)
    print(f"{n} kernels, {len(plan.changes)} changes planned")
    print(f"plan:              {best(lambda: make_plan(manifest, state, live, now=NOW)):8.3f} s")
    empty = new_state()
    print(f"plan (no state):   {best(lambda: make_plan(manifest, empty, live, now=NOW)):8.3f} s")
    print(f"render (people):   {best(lambda: render_plan(plan)):8.3f} s")
    print(f"render (JSON):     {best(lambda: json.dumps(plan.to_dict())):8.3f} s")
    print(f"read one server:   {bench_http(n):8.3f} s")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "kernelform.yaml"
        path.write_text("servers:\n  lab: {url: 'http://127.0.0.1:8888'}\nkernels: {}\n")
        print(f"start-up (--help): {bench_process('--help'):8.3f} s")
        print(f"validate:          {bench_process('validate', '-f', str(path)):8.3f} s")



# -- fleets: many servers against one ---------------------------------------------------------

FLEET_SERVERS = 50


def _jupyter_bodies(kernels: list[dict[str, Any]]) -> dict[str, bytes]:
    return {
        "api/kernels": json.dumps(kernels).encode(),
        "api/sessions": b"[]",
        "api/kernelspecs": json.dumps({"default": "python3", "kernelspecs": {"python3": {}}})
        .encode(),
        "api": json.dumps({"version": "2.21.1"}).encode(),
    }


def _kernel(kernel_id: str) -> dict[str, Any]:
    return {
        "id": kernel_id,
        "name": "python3",
        "execution_state": "idle",
        "last_activity": "2026-11-28T12:00:00Z",
        "connections": 0,
    }


def _workspace_plan(directory: Path, manifest: str, resources: dict[str, Resource]) -> float:
    """Best time of ``Workspace.plan()`` (state read, hubs, servers, planner): a real plan."""
    from kernelform.workspace import Settings, Workspace

    path = directory / "kernelform.yaml"
    path.write_text(manifest, encoding="utf-8")
    settings = Settings(manifest_path=path)
    with Workspace(settings) as workspace:
        workspace.store.write(replace(new_state(), resources=resources))

    def plan() -> None:
        with Workspace(settings) as workspace, workspace.locked("plan"):
            computed, _, _ = workspace.plan()
            assert not computed.changes, computed.changes[:3]

    return best(plan, runs=3)


def _serve_fleet(
    users: list[str], ids: dict[tuple[str, int], str], per: int, ports: Connection
) -> None:
    """In a child process (as a real server is): one server with every kernel, and one
    "proxy" answering a hub's API and its users' servers under /user/NAME/."""
    one_body = _jupyter_bodies([_kernel(k) for k in ids.values()])
    per_user = {u: _jupyter_bodies([_kernel(ids[u, i]) for i in range(per)]) for u in users}
    user_models = [{"name": u, "servers": {"": {"ready": True, "pending": None}}} for u in users]
    models = {m["name"]: json.dumps(m).encode() for m in user_models}
    page = {"offset": 0, "limit": 200, "total": len(users), "next": None}
    listing = json.dumps({"items": user_models, "_pagination": page}).encode()
    group = json.dumps({"name": "g", "users": users}).encode()

    def one(request: Recorded, number: int) -> Reply:
        return Reply(200, one_body[request.path.strip("/")], {"Content-Type": "application/json"})

    def many(request: Recorded, number: int) -> Reply:
        path = request.path.strip("/")
        if path == "hub/api/users":
            body = listing
        elif path == "hub/api/groups/g":
            body = group
        elif path.startswith("hub/api/users/"):
            body = models[path.removeprefix("hub/api/users/")]
        else:
            _, user, rest = path.split("/", 2)
            body = per_user[user][rest]
        return Reply(200, body, {"Content-Type": "application/json"})

    with (
        FakeHTTPServer(one, keep_alive=True) as single,
        FakeHTTPServer(many, keep_alive=True) as proxy,
    ):
        ports.send((single.url, proxy.url))
        ports.recv()  # until told to stop


def bench_fleet(total: int) -> tuple[float, float, float]:
    """Plan *total* kernels on one server, on 50 servers, and on a hub's 50 users' servers."""
    per = total // FLEET_SERVERS
    users = [f"user{i:02d}" for i in range(FLEET_SERVERS)]
    ids = {(u, i): str(uuid.uuid4()) for u in users for i in range(per)}
    started = NOW - timedelta(hours=1)

    def resource(address: str, server: str, kernel_id: str) -> Resource:
        recipe = Recipe(spec="python3")
        return Resource(
            address=address, server=server, kernel_id=kernel_id, recipe=recipe, started_at=started
        )

    here, there = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_serve_fleet, args=(users, ids, per, there), daemon=True
    )
    child.start()
    try:
        single_url, proxy_url = here.recv()
        with tempfile.TemporaryDirectory() as directory:
            base = Path(directory)
            for name in ("one", "servers", "hub"):
                (base / name).mkdir()
            count = f"{{spec: python3, count: {per}}}"
            one_time = _workspace_plan(
                base / "one",
                f"servers:\n  lab: {{url: '{single_url}'}}\nkernels:\n"
                + "".join(f"  {u}: {count}\n" for u in users),
                {
                    f"{u}[{i}]": resource(f"{u}[{i}]", "lab", ids[u, i])
                    for u in users
                    for i in range(per)
                },
            )
            servers_time = _workspace_plan(
                base / "servers",
                "servers:\n"
                + "".join(f"  s{u}: {{url: '{proxy_url}user/{u}/'}}\n" for u in users)
                + "kernels:\n"
                + "".join(f"  {u}: {{spec: python3, server: s{u}, count: {per}}}\n" for u in users),
                {
                    f"{u}[{i}]": resource(f"{u}[{i}]", f"s{u}", ids[u, i])
                    for u in users
                    for i in range(per)
                },
            )
            hub_time = _workspace_plan(
                base / "hub",
                f"hubs:\n  campus: {{url: '{proxy_url}', groups: [g]}}\n"
                f"kernels:\n  pool: {count}\n",
                {
                    f"pool[{i}]@{u}": resource(f"pool[{i}]@{u}", f"campus@{u}", ids[u, i])
                    for u in users
                    for i in range(per)
                },
            )
    finally:
        here.send("stop")
        child.join(10)
    return one_time, servers_time, hub_time

if __name__ == "__main__":
    main()
