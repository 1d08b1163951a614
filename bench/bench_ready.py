"""Benchmark: starting N kernels with kernelform against the plainest ways to do it.

    .venv/bin/python -m bench.bench_ready [-n 16] [--rounds 5]

Against one real jupyter server (started here, on loopback), four commands
are timed as whole processes (interpreter start-up included), alternating
round by round so that the machine's load falls on all of them alike:

* ``loop``: the original functions' approach, a sequential stdlib loop of N
  ``POST api/kernels`` (no waiting: the kernels are only launched);
* ``apply --no-wait``: ``kernelform apply --auto-approve --no-wait`` of N kernels;
* ``floor``: ``bench/floor_ready.py``, N threads each POSTing a kernel and
  waiting for one ``kernel_info`` reply over its websocket: the least any tool
  can do to have N *ready* kernels;
* ``apply``: ``kernelform apply --auto-approve``, which waits until every
  kernel answers.

Between runs every kernel is shut down and the state removed. It prints the
median of each and the ratios apply --no-wait / loop and apply / floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.live_jupyter import JupyterServer, launch

ROOT = Path(__file__).resolve().parent.parent

LOOP = """
import json, os, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
token = os.environ["JUPYTER_TOKEN"]
for _ in range(n):
    req = urllib.request.Request(url + "api/kernels", data=json.dumps({"name": "python3"}).encode(),
                                 method="POST")
    req.add_header("Authorization", "token " + token)
    req.add_header("Content-Type", "application/json")
    urllib.request.urlopen(req, timeout=120).read()
"""


def timed(command: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return took


def reset(server: JupyterServer, work: Path) -> None:
    server.cleanup(timeout=60)
    shutil.rmtree(work / ".kernelform", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=16, help="kernels per run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kf-bench-") as tmp:
        server = launch(Path(tmp) / "server")
        try:
            run_rounds(server, Path(tmp), n=args.n, rounds=args.rounds)
        finally:
            server.stop()


def run_rounds(server: JupyterServer, tmp: Path, *, n: int, rounds: int) -> None:
    work = tmp / "work"
    work.mkdir()
    (work / "kernelform.yaml").write_text(
        "servers:\n  lab: {url: '${KF_URL}', token: '${KF_TOKEN}'}\n"
        f"kernels:\n  pool: {{spec: python3, count: {n}}}\n"
    )
    env = {
        **os.environ,
        "KF_URL": server.url,
        "KF_TOKEN": server.token,
        "JUPYTER_TOKEN": server.token,
        "NO_COLOR": "1",
        "PYTHONPATH": str(ROOT),
    }
    python = sys.executable
    commands: dict[str, list[str]] = {
        "loop": [python, "-c", LOOP, server.url, str(n)],
        "apply --no-wait": [python, "-m", "kernelform", "apply", "--auto-approve", "--no-wait"],
        "floor": [
            python,
            str(ROOT / "bench" / "floor_ready.py"),
            server.url,
            "-n",
            str(n),
            "--keep",
        ],
        "apply": [python, "-m", "kernelform", "apply", "--auto-approve"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(rounds):
        for name, command in commands.items():
            reset(server, work)
            times[name].append(timed(command, cwd=work, env=env))
        line = ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
        print(f"round {round_ + 1}: {line}", flush=True)
    reset(server, work)
    median: Callable[[str], float] = lambda name: statistics.median(times[name])  # noqa: E731
    result = {name: round(median(name), 3) for name in commands}
    result["apply --no-wait / loop"] = round(median("apply --no-wait") / median("loop"), 3)
    result["apply / floor"] = round(median("apply") / median("floor"), 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
