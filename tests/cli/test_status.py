"""``kernelform status`` against kernels in every state it can show, on the real server.

One project is brought into every state at once: ok, new (never started),
vanished, a restart pending (revision bumped), a restart blocked (in use by a
notebook), tainted, a pending start whose kernel never came, a recorded kernel
no longer declared, and an unmanaged kernel the server would prune. The
manifest points at the fault proxy, which counts what status asks: the same
per-server reads as a plan, once each, and no request per kernel. It takes no
lock. About 8 s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kernelform.recipe import Recipe
from kernelform.state import FileStateStore, Resource
from tests.support.faultproxy import FaultProxy
from tests.support.kf import Result, run, state_of, write_manifest
from tests.support.live_jupyter import JupyterServer

DECLARED = (
    "  fine: {spec: python3}\n"
    "  fresh: {spec: python3}\n"
    "  gone: {spec: python3}\n"
    "  bumped: {spec: python3, revision: REV}\n"
    "  used: {spec: python3, revision: REV}\n"
    "  sick: {spec: python3}\n"
    "  half: {spec: python3}\n"
)


@pytest.fixture
def proxy(jupyter: JupyterServer) -> Iterator[FaultProxy]:
    with FaultProxy(jupyter.url) as fault_proxy:
        yield fault_proxy


def kf(tmp_path: Path, proxy: FaultProxy, jupyter: JupyterServer, *args: str) -> Result:
    return run(*args, cwd=tmp_path, env={"KF_TEST_URL": proxy.url, "KF_TEST_TOKEN": jupyter.token})


def test_status_shows_every_state_from_one_read(
    tmp_path: Path, jupyter: JupyterServer, proxy: FaultProxy
) -> None:
    write_manifest(tmp_path, jupyter, DECLARED.replace("REV", "1") + "  old: {spec: python3}\n",
                   prune=True)  # fmt: skip
    targets = [a for name in ("fine", "gone", "bumped", "used", "sick", "old")
               for a in ("--target", name)]  # fmt: skip
    applied = kf(tmp_path, proxy, jupyter, "apply", "--auto-approve", "--no-wait", *targets)
    assert applied.code == 0, applied
    ids = {a: r["kernel_id"] for a, r in state_of(tmp_path)["resources"].items()}
    jupyter.shutdown_kernel(ids["gone"])
    jupyter.wait_gone(ids["gone"])
    jupyter.create_session(ids["used"], "nb/used.ipynb")
    stranger = jupyter.start_kernel()["id"]
    store = FileStateStore(tmp_path / ".kernelform" / "state.json")
    state = store.read()
    sick = replace(state.resources["sick"], tainted="setup failed: RuntimeError: boom")
    never = str(uuid.uuid4())  # a start recorded before its request, which never arrived
    half = Resource(address="half", server="lab", kernel_id=never, recipe=Recipe(spec="python3"),
                    started_at=state.resources["fine"].started_at, pending=True)  # fmt: skip
    store.write(state.edited(puts=[sick, half]))
    write_manifest(tmp_path, jupyter, DECLARED.replace("REV", "2"), prune=True)

    proxy.seen.clear()
    with store.lock(operation="apply"):  # status takes no lock: an apply never holds it up
        result = kf(tmp_path, proxy, jupyter, "status", "--json")
    assert result.code == 0, result
    asked = sorted(f"{s.method} {s.path}" for s in proxy.seen)
    assert asked == [
        "GET /api",
        "GET /api/kernels",
        "GET /api/kernelspecs",
        "GET /api/sessions",
    ], asked  # one read of each, whatever the number of kernels
    document = result.json()
    rows: dict[str, dict[str, Any]] = {row["address"]: row for row in document["kernels"]}
    drift = {a: r["drift"] and (r["drift"]["action"], r["drift"]["reason"], r["drift"]["blocked"])
             for a, r in rows.items()}  # fmt: skip
    assert drift == {
        "fine": None,
        "fresh": ("start", "new", False),
        "gone": ("start", "vanished from the server", False),
        "bumped": ("restart", "revision 1 → 2", False),
        "used": ("restart", "revision 1 → 2", True),
        "sick": ("restart", "tainted: setup failed: RuntimeError: boom", False),
        "half": ("start", "start was interrupted", False),
        "old": ("shutdown", "no longer declared", False),
        f"lab/{stranger}": ("shutdown", "unmanaged (the server prunes)", False),
    }
    assert list(rows)[:7] == ["fine", "fresh", "gone", "bumped", "used", "sick", "half"]
    assert [rows[a]["state"] for a in ("fresh", "gone", "half")] == [
        "not started",
        "gone",
        "pending",
    ]
    fine = rows["fine"]
    assert fine["kernel_id"] == ids["fine"] and fine["spec"] == "python3" and fine["managed"]
    assert fine["state"] not in ("not started", "gone", "pending")
    assert fine["connections"] == 0 and fine["in_use_by"] == []
    assert fine["age_seconds"] >= 0 and fine["last_activity"] is not None
    assert rows["fresh"]["kernel_id"] is None and rows["fresh"]["started_at"] is None
    assert rows["gone"]["kernel_id"] == ids["gone"]
    assert rows["used"]["in_use_by"] == ["nb/used.ipynb"]
    assert rows["sick"]["tainted"] == "setup failed: RuntimeError: boom"
    assert rows["half"]["pending"] and rows["half"]["kernel_id"] == never
    unmanaged = rows[f"lab/{stranger}"]
    assert not unmanaged["managed"] and unmanaged["kernel_id"] == stranger
    assert document["summary"] == {"kernels": 9, "ok": 1, "drift": 8, "skipped": 0}

    table = kf(tmp_path, proxy, jupyter, "status")
    assert table.code == 0, table
    lines = table.out.splitlines()
    assert lines[0].split()[:3] == ["ADDRESS", "SERVER", "KERNEL"] and lines[0].endswith("DRIFT")
    assert lines[1].startswith("fine ") and lines[1].endswith("  ok")
    assert any(line.startswith("used ") and "restart BLOCKED: revision 1 → 2" in line
               and "nb/used.ipynb" in line for line in lines), table.out  # fmt: skip
    assert lines[-1] == (
        "Status: 9 kernel(s), 1 ok, 8 with drift (run 'kernelform plan' for details)."
    )
    assert jupyter.kernel_ids() == {ids[a] for a in ("fine", "bumped", "used", "sick", "old")} | {
        stranger
    }  # nothing was touched
