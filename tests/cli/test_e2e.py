"""plan / apply / destroy / import / state, end to end against the real server.

Every test drives the real command line (a subprocess) against the session's
real jupyter_server with real ipykernel kernels, and checks the server itself
with plain REST calls, never through kernelform.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kernelform.state import FileStateStore
from tests.support.kf import Result, run, server_env, state_of, write_manifest
from tests.support.live_jupyter import (
    PYTHON3_SPEC,
    JupyterServer,
    shell_reply,
    wait_for,
    write_kernelspec,
)


@pytest.fixture
def workdir(tmp_path: Path, jupyter: JupyterServer) -> Path:
    return tmp_path


@pytest.fixture
def second_spec(jupyter: JupyterServer) -> str:
    """A second working kernelspec, for spec changes."""
    write_kernelspec(jupyter.data_dir, "python-alt", {**PYTHON3_SPEC, "display_name": "Alt"})
    return "python-alt"


def kf(workdir: Path, jupyter: JupyterServer, *args: str, **kw: str) -> Result:
    return run(*args, cwd=workdir, env=server_env(jupyter), **kw)


def managed_ids(workdir: Path) -> dict[str, str]:
    return {a: r["kernel_id"] for a, r in state_of(workdir)["resources"].items()}


def test_apply_then_plan_has_no_changes(workdir: Path, jupyter: JupyterServer) -> None:
    (jupyter.root / "work").mkdir(exist_ok=True)
    write_manifest(
        workdir, jupyter, "  etl: {spec: python3, cwd: work, count: 2}\n  solo: {spec: python3}\n"
    )
    first = kf(workdir, jupyter, "plan", "--detailed-exitcode")
    assert first.code == 2, first
    assert (
        "Plan: 3 to start, 0 to restart, 0 to replace, 0 to shut down, 0 to interrupt." in first.out
    )
    applied = kf(workdir, jupyter, "apply", "--auto-approve")
    assert applied.code == 0, applied
    assert "Apply complete! 3 started; 0 failed; 0 blocked." in applied.out
    ids = managed_ids(workdir)
    assert set(ids) == {"etl[0]", "etl[1]", "solo"}
    assert set(ids.values()) == jupyter.kernel_ids()
    again = kf(workdir, jupyter, "plan", "--detailed-exitcode")
    assert again.code == 0, again
    assert "No changes." in again.out


def test_kernel_deleted_on_server_is_started_again(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    old = managed_ids(workdir)["etl"]
    jupyter.shutdown_kernel(old)
    jupyter.wait_gone(old)
    plan = kf(workdir, jupyter, "plan")
    assert "etl will be started: vanished from the server" in plan.out
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    new = managed_ids(workdir)["etl"]
    assert new != old and jupyter.kernel_ids() == {new}


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        ("{spec: python3, cwd: a}", "{spec: python3, cwd: b}", "cwd a → b"),
        ("{spec: python3, cwd: b}", "{spec: python-alt, cwd: b}", "spec python3 → python-alt"),
    ],
)
def test_spec_or_cwd_change_replaces(
    workdir: Path, jupyter: JupyterServer, second_spec: str, before: str, after: str, reason: str
) -> None:
    for name in ("a", "b"):
        (jupyter.root / name).mkdir(exist_ok=True)
    write_manifest(workdir, jupyter, f"  etl: {before}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    old = managed_ids(workdir)["etl"]
    write_manifest(workdir, jupyter, f"  etl: {after}\n")
    plan = kf(workdir, jupyter, "plan")
    assert f"etl will be replaced: {reason}" in plan.out
    applied = kf(workdir, jupyter, "apply", "--auto-approve")
    assert applied.code == 0, applied
    new = managed_ids(workdir)["etl"]
    assert new != old
    jupyter.wait_gone(old)
    assert jupyter.kernel_ids() == {new}
    assert jupyter.kernel(new)["name"] == state_of(workdir)["resources"]["etl"]["spec"]
    assert state_of(workdir)["resources"]["etl"]["cwd"] == "b"
    assert "No changes." in kf(workdir, jupyter, "plan").out


def test_revision_bump_restarts_same_id_with_new_process(
    workdir: Path, jupyter: JupyterServer
) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3, revision: 1}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    kernel_id = managed_ids(workdir)["etl"]
    pid_before = jupyter.run_code(kernel_id, "import os\nos.getpid()")
    write_manifest(workdir, jupyter, "  etl: {spec: python3, revision: 2}\n")
    plan = kf(workdir, jupyter, "plan")
    assert "etl will be restarted: revision 1 → 2" in plan.out
    applied = kf(workdir, jupyter, "apply", "--auto-approve")
    assert applied.code == 0, applied
    assert managed_ids(workdir)["etl"] == kernel_id
    assert state_of(workdir)["resources"]["etl"]["revision"] == "2"
    pid_after = jupyter.run_code(kernel_id, "import os\nos.getpid()")
    assert pid_after != pid_before
    assert "No changes." in kf(workdir, jupyter, "plan").out


def test_lowering_count_shuts_down_highest_indexes(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3, count: 4}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    ids = managed_ids(workdir)
    write_manifest(workdir, jupyter, "  etl: {spec: python3, count: 2}\n")
    plan = kf(workdir, jupyter, "plan", "--json").json()
    assert [(c["address"], c["action"]) for c in plan["changes"]] == [
        ("etl[3]", "shutdown"),
        ("etl[2]", "shutdown"),
    ]
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    assert set(managed_ids(workdir)) == {"etl[0]", "etl[1]"}
    for gone in ("etl[2]", "etl[3]"):
        jupyter.wait_gone(ids[gone])
    assert jupyter.kernel_ids() == {ids["etl[0]"], ids["etl[1]"]}


def test_plain_address_and_count_one_are_the_same_kernel(
    workdir: Path, jupyter: JupyterServer
) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    kernel_id = managed_ids(workdir)["etl"]
    write_manifest(workdir, jupyter, "  etl: {spec: python3, count: 1}\n")
    plan = kf(workdir, jupyter, "plan", "--detailed-exitcode")
    assert plan.code == 0 and "etl has moved to etl[0]" in plan.out, plan
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    assert managed_ids(workdir) == {"etl[0]": kernel_id}
    assert jupyter.kernel_ids() == {kernel_id}


def test_kernel_in_use_is_blocked_and_force_goes_through(
    workdir: Path, jupyter: JupyterServer
) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3, revision: 1}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    kernel_id = managed_ids(workdir)["etl"]
    jupyter.create_session(kernel_id, "reports/q3.ipynb")
    write_manifest(workdir, jupyter, "  etl: {spec: python3, revision: 2}\n")
    plan = kf(workdir, jupyter, "plan", "--json").json()
    assert plan["changes"][0]["blocked"] is True
    assert plan["changes"][0]["sessions"] == ["reports/q3.ipynb"]
    assert plan["summary"]["blocked"] == 1 and plan["summary"]["restart"] == 0
    blocked = kf(workdir, jupyter, "apply", "--auto-approve")
    assert blocked.code == 3, blocked
    assert "in use by reports/q3.ipynb" in blocked.out
    assert state_of(workdir)["resources"]["etl"]["revision"] == "1"
    destroy = kf(workdir, jupyter, "destroy", "--auto-approve")
    assert destroy.code == 3 and jupyter.kernel_ids() == {kernel_id}, destroy
    forced = kf(workdir, jupyter, "apply", "--auto-approve", "--force")
    assert forced.code == 0, forced
    assert state_of(workdir)["resources"]["etl"]["revision"] == "2"
    assert jupyter.kernel_ids() == {kernel_id}


def test_prune_spares_kernels_in_use(workdir: Path, jupyter: JupyterServer) -> None:
    used = jupyter.create_session(path="nb/used.ipynb")["kernel"]["id"]
    idle = jupyter.start_kernel()["id"]
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n", prune=True)
    plan = kf(workdir, jupyter, "plan", "--json").json()
    pruned = [c for c in plan["changes"] if not c["managed"]]
    assert [(c["kernel_id"], c["action"]) for c in pruned] == [(idle, "shutdown")]
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    jupyter.wait_gone(idle)
    assert jupyter.kernel_ids() == {used, managed_ids(workdir)["etl"]}


def test_unmanaged_kernels_are_never_touched_without_prune(
    workdir: Path, jupyter: JupyterServer
) -> None:
    stranger = jupyter.start_kernel()["id"]
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    assert kf(workdir, jupyter, "destroy", "--auto-approve").code == 0
    assert jupyter.kernel_ids() == {stranger}


def test_unknown_spec_fails_the_plan_with_the_list(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: julia-1.10}\n")
    plan = kf(workdir, jupyter, "plan")
    assert plan.code == 1
    assert "kernelspec 'julia-1.10'" in plan.err
    specs = ", ".join(sorted(jupyter.kernelspecs()["kernelspecs"]))
    assert f"it has: {specs}" in plan.err
    assert jupyter.kernel_ids() == set()


def test_busy_kernel_past_busy_timeout_is_interrupted(
    workdir: Path, jupyter: JupyterServer
) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3, busy_timeout: 1s}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    kernel_id = managed_ids(workdir)["etl"]
    with jupyter.kernel_client(kernel_id) as client:
        msg_id = client.execute("import time\ntime.sleep(120)")
        wait_for(
            lambda: (jupyter.kernel(kernel_id) or {}).get("execution_state") == "busy",
            timeout=30,
            what="the kernel to be busy",
        )
        time.sleep(1.5)
        plan = kf(workdir, jupyter, "plan")
        assert "etl will be interrupted: busy for" in plan.out, plan
        applied = kf(workdir, jupyter, "apply", "--auto-approve")
        assert applied.code == 0, applied
        reply = shell_reply(client, msg_id)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert managed_ids(workdir)["etl"] == kernel_id


def test_saved_plan_applies_exactly_and_goes_stale(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    saved = kf(workdir, jupyter, "plan", "--out", "tfplan.json")
    assert saved.code == 0 and (workdir / "tfplan.json").is_file()
    applied = kf(workdir, jupyter, "apply", "tfplan.json")
    assert applied.code == 0, applied
    assert len(jupyter.kernel_ids()) == 1
    again = kf(workdir, jupyter, "apply", "tfplan.json")
    assert again.code == 1 and "stale" in again.err, again
    write_manifest(workdir, jupyter, "  etl: {spec: python3, count: 2}\n")
    assert kf(workdir, jupyter, "plan", "--out", "next.json").code == 0
    write_manifest(workdir, jupyter, "  etl: {spec: python3, count: 3}\n")
    edited = kf(workdir, jupyter, "apply", "next.json")
    assert edited.code == 1 and "stale" in edited.err, edited
    assert len(jupyter.kernel_ids()) == 1


def test_saved_plan_is_stale_when_its_kernel_changed(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3, revision: 1}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    kernel_id = managed_ids(workdir)["etl"]
    write_manifest(workdir, jupyter, "  etl: {spec: python3, revision: 2}\n")
    assert kf(workdir, jupyter, "plan", "--out", "p.json").code == 0
    jupyter.create_session(kernel_id, "nb/late.ipynb")
    stale = kf(workdir, jupyter, "apply", "p.json")
    assert stale.code == 1 and "stale" in stale.err and "in use" in stale.err, stale


def test_a_second_apply_meets_the_lock(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    store = FileStateStore(workdir / ".kernelform" / "state.json")
    with store.lock(operation="apply"):
        locked = kf(workdir, jupyter, "apply", "--auto-approve")
        waited = kf(workdir, jupyter, "plan", "--lock-timeout", "1s")
    assert locked.code == 1 and f"pid {os.getpid()}" in locked.err, locked
    assert "--lock-timeout" in locked.err
    assert waited.code == 1 and "locked" in waited.err
    assert jupyter.kernel_ids() == set()
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0


def test_import_and_state_rm(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    adopted = jupyter.start_kernel()["id"]
    imported = kf(workdir, jupyter, "import", "etl", adopted)
    assert imported.code == 0, imported
    assert managed_ids(workdir) == {"etl": adopted}
    assert "No changes." in kf(workdir, jupyter, "plan").out
    listed = kf(workdir, jupyter, "state", "list", "--json").json()
    assert listed == [{"address": "etl", "server": "lab", "kernel_id": adopted, "spec": "python3"}]
    shown = kf(workdir, jupyter, "state", "show", "etl").json()
    assert shown["kernel_id"] == adopted and "token" not in shown
    twice = kf(workdir, jupyter, "import", "etl", adopted)
    assert twice.code == 1 and "already managed" in twice.err
    removed = kf(workdir, jupyter, "state", "rm", "etl")
    assert removed.code == 0 and managed_ids(workdir) == {}
    assert jupyter.kernel_ids() == {adopted}
    missing = kf(workdir, jupyter, "import", "etl", "00000000-0000-0000-0000-000000000000")
    assert missing.code == 1 and "no kernel" in missing.err


def test_destroy_shuts_down_everything_managed(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3, count: 3}\n")
    assert kf(workdir, jupyter, "apply", "--auto-approve").code == 0
    ids = set(managed_ids(workdir).values())
    destroyed = kf(workdir, jupyter, "destroy", "--auto-approve")
    assert destroyed.code == 0, destroyed
    assert managed_ids(workdir) == {}
    for kernel_id in ids:
        jupyter.wait_gone(kernel_id)


def test_apply_without_terminal_needs_auto_approve(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    refused = kf(workdir, jupyter, "apply")  # stdin empty: no answer to read
    assert refused.code == 1 and "--auto-approve" in refused.err
    assert jupyter.kernel_ids() == set()
    nothing = kf(workdir, jupyter, "destroy")
    assert nothing.code == 0 and "Nothing to do." in nothing.out


def test_targets_limit_plan_and_apply(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3, count: 2}\n  web: {spec: python3}\n")
    applied = kf(workdir, jupyter, "apply", "--auto-approve", "--target", "etl")
    assert applied.code == 0, applied
    assert set(managed_ids(workdir)) == {"etl[0]", "etl[1]"}
    plan = kf(workdir, jupyter, "plan", "--json").json()
    assert [c["address"] for c in plan["changes"]] == ["web"]


def test_plan_json_document(workdir: Path, jupyter: JupyterServer) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    document = kf(workdir, jupyter, "plan", "--json").json()
    assert document["format_version"] == "1"
    assert document["summary"] == {
        "start": 1,
        "restart": 0,
        "replace": 0,
        "shutdown": 0,
        "interrupt": 0,
        "server-start": 0,
        "blocked": 0,
    }
    assert document["skipped"] == []
    (change,) = document["changes"]
    assert {
        k: change[k]
        for k in ("address", "server", "action", "reason", "kernel_id", "spec", "blocked")
    } == {
        "address": "etl",
        "server": "lab",
        "action": "start",
        "reason": "new",
        "kernel_id": None,
        "spec": "python3",
        "blocked": False,
    }


def test_a_wrong_token_names_the_manifest_key_not_a_flag(
    workdir: Path, jupyter: JupyterServer
) -> None:
    write_manifest(workdir, jupyter, "  etl: {spec: python3}\n")
    env = {**server_env(jupyter), "KF_TEST_TOKEN": "not-the-token"}
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = run(*command, cwd=workdir, env=env)
        assert result.code == 1, result
        assert "not authenticated (HTTP 403); check servers.lab.token in" in result.err, result
        assert "--token" not in result.err and "JUPYTER_TOKEN" not in result.err, result
        assert "not-the-token" not in result.out + result.err
    assert jupyter.kernel_ids() == set()
