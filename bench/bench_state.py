"""Benchmark: applying N starts, with each state backend, against a plain stdlib loop.

    .venv/bin/python -m bench.bench_state [--sizes 100 1000] [--runs 3]
                                          [--backends file postgres] [--parallelism 10]

What is timed, in fresh processes, alternating within each round so that the
machine's load hits every contender alike:

* ``loop``: a plain sequential Python loop (``http.client``, stdlib only)
  doing the same N ``POST api/kernels`` to the same server;
* ``file`` / ``postgres``: ``kernelform apply --no-wait --auto-approve`` of a manifest
  declaring N kernels, from an empty state (a new working directory, or a new
  PostgreSQL schema), recording every start as pending then started.

The server is an instant loopback HTTP server (``tests.support.fakehttp``, with a
listen backlog of 128 and kept-alive HTTP/1.1 connections, as tornado has)
that answers like jupyter_server 2.21 (it honours client-chosen kernel ids) and
starts nothing. The loop opens a connection per request, as the original
functions (``urllib.request`` per call) do. PostgreSQL is a
throwaway cluster (``tests.support.pgcluster``) with ``fsync`` on, as a real
database runs. Each process's wall time includes
its interpreter start-up. Reported: the median per contender, the ratio to the
loop of the same size, and time(1000)/time(100). The goals: 1,000 starts within
3x the loop, and time(1000) at most 12x time(100).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.fakehttp import FakeHTTPServer, Recorded, Reply

ROOT = Path(__file__).resolve().parent.parent

LOOP = """
import http.client, json, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    assert response.status == 201, response.status
    conn.close()
"""


def answer(request: Recorded, number: int) -> Reply:
    """jupyter_server 2.21, instantly: every start succeeds, nothing is running."""
    json_type = {"Content-Type": "application/json"}
    if request.method == "POST" and request.path == "/api/kernels":
        body = json.loads(request.body or b"{}")
        kernel = {
            "id": body.get("kernel_id") or str(uuid.uuid4()),
            "name": body.get("name", "python3"),
            "last_activity": "2026-11-30T12:00:00.000000Z",
            "execution_state": "starting",
            "connections": 0,
        }
        return Reply(201, json.dumps(kernel), json_type)
    bodies: dict[str, Any] = {
        "/api": {"version": "2.21.1"},
        "/api/kernels": [],
        "/api/sessions": [],
        "/api/kernelspecs": {
            "default": "python3",
            "kernelspecs": {"python3": {"name": "python3", "spec": {"language": "python"}}},
        },
    }
    return Reply(200, json.dumps(bodies.get(request.path, {})), json_type)


def timed(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def write_manifest(directory: Path, url: str, n: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kernelform.yaml").write_text(
        f"servers:\n  lab: {{url: '{url}'}}\nkernels:\n  pool: {{spec: python3, count: {n}}}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["file", "postgres"])
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="run apply under pyinstrument")
    args = parser.parse_args()

    # http.server listens with a backlog of 5: ten connections at once overflow it and
    # the kernel retries the dropped SYNs a second later. A real server (tornado) has 128.
    ThreadingHTTPServer.request_queue_size = 128
    cluster = None
    if "postgres" in args.backends:
        from tests.support.pgcluster import start_cluster

        cluster = start_cluster(fsync=True, prefix="kernelform-bench-")
    times: dict[tuple[str, int], list[float]] = {}
    try:
        with (
            FakeHTTPServer(answer, keep_alive=True) as fake,
            tempfile.TemporaryDirectory() as scratch,
        ):
            work = Path(scratch)
            for n in args.sizes:
                for run in range(args.runs):
                    row = [("loop", n)] + [(b, n) for b in args.backends]
                    for name, size in row[run % len(row) :] + row[: run % len(row)]:
                        if name == "loop":
                            argv = [sys.executable, "-c", LOOP, str(fake.port), str(size)]
                            elapsed = timed(argv, cwd=work)
                        else:
                            directory = work / f"{name}-{size}-{run}"
                            write_manifest(directory, fake.url, size)
                            apply = [
                                "apply",
                                "--no-wait",  # the fake starts nothing that could answer
                                "--auto-approve",
                                "--parallelism",
                                str(args.parallelism),
                            ]
                            env = {}
                            if name == "postgres":
                                assert cluster is not None
                                schema = f"bench_{size}_{run}_{uuid.uuid4().hex[:6]}"
                                env["KERNELFORM_STATE"] = cluster.url(query=f"schema={schema}")
                            prefix = [sys.executable, "-m"]
                            if args.profile:
                                prefix += [
                                    "pyinstrument",
                                    "-o",
                                    str(directory / "profile.txt"),
                                    "-m",
                                ]
                            elapsed = timed([*prefix, "kernelform", *apply], cwd=directory, env=env)
                        times.setdefault((name, size), []).append(elapsed)
                        print(
                            f"  {name:<9} n={size:<5} run {run + 1}: {elapsed:7.3f} s", flush=True
                        )
    finally:
        if cluster is not None:
            cluster.destroy()

    print(f"\nmedian of {args.runs} runs (wall time of a fresh process, start-up included):")
    names = ["loop", *args.backends]
    for n in args.sizes:
        loop = statistics.median(times[("loop", n)])
        for name in names:
            median = statistics.median(times[(name, n)])
            ratio = "" if name == "loop" else f"   {median / loop:5.2f}x the loop"
            print(f"  n={n:<5} {name:<9} {median:7.3f} s{ratio}")
    if len(args.sizes) >= 2:
        small, large = min(args.sizes), max(args.sizes)
        for name in names:
            grow = statistics.median(times[(name, large)]) / statistics.median(times[(name, small)])
            print(f"  {name:<9} time({large}) / time({small}) = {grow:5.2f}")


if __name__ == "__main__":
    main()
