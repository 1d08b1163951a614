"""Kernelspecs and small helpers the watch tests share."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import requests

# A process that only sleeps: the server starts, lists and stops it cheaply; it
# never answers, so a watch applies it with --no-wait.
LIGHT_SPEC = {"argv": ["sleep", "infinity"], "display_name": "Light", "language": "none"}

# ipykernel after a 4 s sleep: a wait for it to answer is in flight for seconds.
SLOW_SPEC = {
    "argv": [
        sys.executable,
        "-c",
        "import runpy, sys, time; time.sleep(4); "
        "sys.argv = ['ipykernel_launcher', '-f', sys.argv[1]]; "
        "runpy.run_module('ipykernel_launcher', run_name='__main__')",
        "{connection_file}",
    ],
    "display_name": "Slow",
    "language": "python",
}


def manifest(directory: Path, kernels: str) -> Path:
    """Write ``kernelform.yaml`` (one server ``lab`` from KF_TEST_URL/TOKEN) atomically."""
    text = (
        "servers:\n"
        "  lab:\n"
        "    url: ${KF_TEST_URL}\n"
        "    token: ${KF_TEST_TOKEN}\n"
        "kernels:\n"
        f"{kernels}"
    )
    path = directory / "kernelform.yaml"
    partial = directory / "kernelform.yaml.partial"
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)  # as git-sync swaps a checkout: never seen half written
    return path


def get(url: str) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, timeout=10)


def managed_ids(directory: Path) -> dict[str, Any]:
    """address -> kernel id in the state of the project in *directory*."""
    from tests.kf import state_of

    return {a: r["kernel_id"] for a, r in state_of(directory)["resources"].items()}
