"""Benchmarks: how kernelform scales, measured, not asserted.

    .venv/bin/python -m tests.benchmark [--kernels 10000]

Times, best of several runs:
- the planner on N declared kernels, all in the state and live, with sessions;
- the same plan rendered for people and as JSON;
- reading one server that reports N kernels and N/5 sessions (a fake loopback
  HTTP server: a real one cannot hold 10,000 kernels on this machine);
- ``kernelform --help`` and ``kernelform validate`` in a fresh process (start-up).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kernelform.client import JupyterClient
from kernelform.facts import LiveServer, read_server
from kernelform.manifest import parse_manifest
from kernelform.planner import make_plan
from kernelform.recipe import Recipe
from kernelform.render import render_plan
from kernelform.state import Resource, new_state
from tests.fakehttp import FakeHTTPServer, Recorded, Reply

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
    n = parser.parse_args().kernels
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


if __name__ == "__main__":
    main()
