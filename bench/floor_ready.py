"""The floor: N kernels started in parallel, each until it answers kernel_info.

    JUPYTER_TOKEN=... python bench/floor_ready.py http://127.0.0.1:8888/ [-n 16] [--json]

The least any tool can do to have N ready kernels on a Jupyter server: one
thread per kernel POSTs ``api/kernels``, then opens the kernel's websocket and
waits for the reply to one ``kernel_info_request`` (default JSON framing). It
prints the wall time from the first POST to the last reply, then shuts the
kernels down (not timed). Standard library and ``websockets`` only, so that a
benchmark can set kernelform's ``apply`` against it. The token is read from
``$JUPYTER_TOKEN`` (not argv, where ``ps`` would show it) and is sent only in
the ``Authorization`` header.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from websockets.sync.client import connect

TIMEOUT = 120.0


def request(url: str, token: str, method: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"token {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def start_and_ask(base: str, token: str) -> tuple[str, float]:
    """POST a kernel, then one kernel_info round trip; its id and when the reply came."""
    kernel_id = request(base + "api/kernels", token, "POST", {"name": "python3"})["id"]
    session = uuid.uuid4().hex
    ws_url = base.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "msg_type": "kernel_info_request",
            "username": "floor",
            "session": session,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {},
        "channel": "shell",
        "buffers": [],
    }
    with connect(
        ws_url + f"?session_id={session}",
        additional_headers={"Authorization": f"token {token}"},
        open_timeout=TIMEOUT,
        max_size=None,
        proxy=None,
    ) as ws:
        ws.send(json.dumps(message))
        deadline = time.monotonic() + TIMEOUT
        while True:
            frame = ws.recv(timeout=max(deadline - time.monotonic(), 0))
            if isinstance(frame, bytes):
                continue  # a binary frame (a message with buffers): not the reply
            reply = json.loads(frame)
            if (
                reply.get("parent_header", {}).get("msg_id") == msg_id
                and reply.get("header", {}).get("msg_type") == "kernel_info_reply"
            ):
                return kernel_id, time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8888/")
    parser.add_argument("-n", type=int, default=16, help="kernels to start (default 16)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--keep", action="store_true", help="leave the kernels running (a caller cleans up)"
    )
    args = parser.parse_args()
    token = os.environ.get("JUPYTER_TOKEN", "")
    base = args.url if args.url.endswith("/") else args.url + "/"

    began = time.perf_counter()
    with ThreadPoolExecutor(args.n) as pool:
        results = list(pool.map(lambda _: start_and_ask(base, token), range(args.n)))
    wall = max(done for _, done in results) - began
    if not args.keep:
        with ThreadPoolExecutor(args.n) as pool:
            list(
                pool.map(lambda r: request(base + f"api/kernels/{r[0]}", token, "DELETE"), results)
            )

    if args.json:
        print(json.dumps({"kernels": args.n, "wall_seconds": round(wall, 3)}))
    else:
        print(f"{args.n} kernels started and answering kernel_info in {wall:.2f} s (wall)")


if __name__ == "__main__":
    sys.exit(main())
