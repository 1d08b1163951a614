"""Kernelspecs and small helpers the watch tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests


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
    from tests.support.kf import state_of

    return {a: r["kernel_id"] for a, r in state_of(directory)["resources"].items()}
