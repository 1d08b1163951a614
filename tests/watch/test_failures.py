"""A watch survives what fails a cycle: a broken manifest, a server that goes away.

It reports each failure with its usual clear line, changes nothing it could not
plan from a readable manifest, backs off, and converges again once the cause is
gone. The metrics and /healthz follow along.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.kf import state_of
from tests.support.live_jupyter import JupyterServer, free_port, wait_for
from tests.support.watching import get, managed_ids, manifest
from tests.watch.conftest import Bench, Watches


def sample(text: str, name: str, **labels: str) -> float:
    """The value of sample *name* with exactly *labels* in Prometheus text *text*."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_a_broken_manifest_fails_its_cycles_changes_nothing_and_heals(
    lab: JupyterServer, watches: Watches, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    manifest(tmp_path, "  a: {spec: light}\n")
    watch = watches.start(
        tmp_path,
        "--interval",
        "1s",
        "--no-wait",
        "--log-format",
        "json",
        "--metrics-port",
        str(port),
    )
    _, start = watch.wait_event("watch_started")
    assert start["metrics"] == base + "metrics" and start["interval"] == 1.0
    seen, done = watch.wait_event("cycle_finished", where=lambda e: e["succeeded"] == 1)
    assert done["managed"] == {"lab": 1} and done["next_in"] == 1.0
    health = get(base + "healthz")
    assert health.status_code == 200 and health.text.startswith("ok: "), health.text
    metrics = get(base + "metrics").text
    assert sample(metrics, "kernelform_watch_actions_total", action="start", outcome="ok") == 1
    assert sample(metrics, "kernelform_watch_planned_changes_total", action="start") == 1
    assert sample(metrics, "kernelform_watch_managed_kernels", server="lab") == 1
    assert sample(metrics, "kernelform_watch_failed_cycles_total") == 0
    assert sample(metrics, "kernelform_watch_cycles_total") >= 1
    assert sample(metrics, "kernelform_watch_last_success_timestamp_seconds") > 0
    assert sample(metrics, "kernelform_watch_cycle_duration_seconds_count") >= 1

    # A broken edit: the manifest's position is reported, nothing is changed.
    state = state_of(tmp_path)
    kernels = lab.kernel_ids()
    text = manifest(tmp_path, "  a: {spec: light, replica: 2}\n").read_text()
    line = 6
    col = text.splitlines()[line - 1].index("replica") + 1
    seen, failed = watch.wait_event("cycle_failed", after=seen)
    (problem,) = failed["problems"]
    assert (problem["file"], problem["line"], problem["col"]) == ("kernelform.yaml", line, col)
    assert failed["error"].startswith(f"kernelform.yaml:{line}:{col}: unknown key 'replica'")
    assert failed["changes"] == failed["succeeded"] == 0 and failed["managed"] is None
    seen, again = watch.wait_event("cycle_failed", after=seen + 1)
    assert again["failures"] == 2 and again["next_in"] == 4.0  # backing off: 2s, then 4s
    # Failing past three intervals since the last success: unhealthy, saying why.
    unhealthy = wait_for(
        lambda: (r := get(base + "healthz")).status_code == 503 and r.text,
        timeout=15,
        what="a 503",
    )
    assert unhealthy.startswith("the last successful cycle ended "), unhealthy
    assert "over 3s (3 intervals)" in unhealthy
    assert f"; last error: kernelform.yaml:{line}:{col}: unknown key" in unhealthy
    assert unhealthy.count("\n") == 1
    metrics = get(base + "metrics").text
    assert sample(metrics, "kernelform_watch_failed_cycles_total") >= 2
    assert sample(metrics, "kernelform_watch_consecutive_failures") >= 2
    assert state_of(tmp_path) == state and lab.kernel_ids() == kernels

    # Fixed (and grown): the next cycle converges; healthy again.
    manifest(tmp_path, "  a: {spec: light}\n  b: {spec: light}\n")
    seen, healed = watch.wait_event("cycle_finished", after=seen, where=lambda e: e["changes"])
    assert (healed["succeeded"], healed["managed"]) == (1, {"lab": 2})
    assert lab.kernel_ids() == set(managed_ids(tmp_path).values())
    assert get(base + "healthz").status_code == 200
    metrics = get(base + "metrics").text
    assert sample(metrics, "kernelform_watch_actions_total", action="start", outcome="ok") == 2
    assert sample(metrics, "kernelform_watch_managed_kernels", server="lab") == 2
    assert sample(metrics, "kernelform_watch_consecutive_failures") == 0
    assert get(base + "nothing").status_code == 404


def test_a_server_that_stops_and_comes_back_gets_its_kernels_again(
    lab: JupyterServer, bench: Bench, watches: Watches, tmp_path: Path
) -> None:
    manifest(tmp_path, "  a: {spec: light}\n  b: {spec: light}\n")
    watch = watches.start(tmp_path, "--interval", "1s", "--no-wait", "--log-format", "json")
    seen, _ = watch.wait_event("cycle_finished", where=lambda e: e["succeeded"] == 2)
    before = managed_ids(tmp_path)

    bench.stop_server()  # its kernels go with it
    seen, failed = watch.wait_event("cycle_failed", after=seen)
    assert failed["error"] == (
        f"{lab.url}: cannot connect (connection refused); is the Jupyter server running at "
        "this URL?"
    ), failed
    assert failed["changes"] == 0

    server = bench.relaunch()  # same port and token, no kernels
    seen, healed = watch.wait_event("cycle_finished", after=seen, where=lambda e: e["changes"])
    assert healed["succeeded"] == 2 and healed["failed"] == 0
    after = managed_ids(tmp_path)
    assert set(after) == {"a", "b"}
    assert server.kernel_ids() == set(after.values())
    assert not set(after.values()) & set(before.values())
    starts = [e for e in watch.events()[seen - 3 : seen] if e["event"] == "action"]
    assert {(e["address"], e["action"], e["ok"], e["reason"]) for e in starts} == {
        ("a", "start", True, "vanished from the server"),
        ("b", "start", True, "vanished from the server"),
    }
