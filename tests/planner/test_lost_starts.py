"""The planner's search for a lost start, without a server.

A start recorded as pending whose kernel id the server chose (it ignores
client-chosen ids) holds a placeholder; if the run that made it died, the plan
looks for the kernel by spec and start time (``ADOPTION_SLACK``): one candidate
is adopted, several are reported and blocked, never guessed. The same cases
against a real server, after a real kill: executor/test_crash.py.
"""

from __future__ import annotations

from datetime import timedelta

from kernelform.live import LiveServer
from kernelform.manifest import Manifest, parse_manifest
from kernelform.plan import Action, Plan, UpdateKind
from kernelform.planner import ADOPTION_SLACK, make_destroy_plan, make_plan, placeholder_id
from kernelform.recipe import Recipe
from kernelform.state import Resource, new_state
from tests.support.facts import NOW, lab


def lab_manifest(kernels: str, *, prune: bool = False) -> Manifest:
    text = (
        "servers:\n"
        f"  lab: {{url: 'http://127.0.0.1:8888', prune: {str(prune).lower()}}}\n"
        f"kernels:\n{kernels}"
    )
    return parse_manifest(text, filename="m.yaml", environ={})


def lost_start(address: str, *, kernel_id: str = "", cwd: str | None = None) -> Resource:
    return Resource(
        address=address,
        server="lab",
        kernel_id=kernel_id or placeholder_id(),
        recipe=Recipe(spec="light", cwd=cwd),
        started_at=NOW,
        pending=True,
    )


def planned(manifest: Manifest, resources: list[Resource], live: dict[str, LiveServer]) -> Plan:
    state = new_state()
    for resource in resources:
        state = state.with_resource(resource)
    return make_plan(manifest, state, live, now=NOW + timedelta(minutes=1))


def test_a_kernel_idle_since_before_the_start_is_not_adopted() -> None:
    old = ("old", -ADOPTION_SLACK - timedelta(seconds=1))
    plan = planned(lab_manifest("  etl: {spec: light}\n"), [lost_start("etl")], lab(old))
    assert [(c.action, c.reason, c.blocked) for c in plan.changes] == [
        (Action.START, "start was interrupted", False)
    ]
    assert plan.updates == ()


def test_a_kernel_active_within_the_clock_slack_is_adopted_and_survives_a_saved_plan() -> None:
    skewed = ("k1", -ADOPTION_SLACK + timedelta(seconds=1))
    plan = planned(lab_manifest("  etl: {spec: light}\n"), [lost_start("etl")], lab(skewed))
    assert plan.changes == ()
    (update,) = plan.updates
    assert (update.kind, update.address, update.kernel_id) == (UpdateKind.CONFIRM, "etl", "k1")
    assert Plan.from_dict(plan.to_dict(), source="test").updates == plan.updates


def test_different_declarations_competing_for_one_kernel_are_both_blocked() -> None:
    manifest = lab_manifest("  a: {spec: light, cwd: x}\n  b: {spec: light, cwd: y}\n")
    resources = [lost_start("a", cwd="x"), lost_start("b", cwd="y")]
    plan = planned(manifest, resources, lab(("k1", timedelta(0)), accepts=True))
    assert [(c.address, c.action, c.blocked) for c in plan.changes] == [
        ("a", Action.START, True),
        ("b", Action.START, True),
    ]
    assert all("k1" in c.reason for c in plan.changes)


def test_a_client_chosen_id_is_trusted_over_a_search() -> None:
    """The server took ids: a pending id that does not run was never started."""
    resource = lost_start("etl", kernel_id="5d1f0000-0000-4000-8000-000000000000")
    plan = planned(
        lab_manifest("  etl: {spec: light}\n"),
        [resource],
        lab(("stranger", timedelta(0)), accepts=True),
    )
    assert [(c.action, c.blocked) for c in plan.changes] == [(Action.START, False)]
    assert plan.updates == ()


def test_prune_spares_the_candidates_of_a_lost_start() -> None:
    manifest = lab_manifest("  etl: {spec: light}\n", prune=True)
    live = lab(("k1", timedelta(0)), ("k2", timedelta(0)), ("old", -timedelta(hours=1)))
    plan = planned(manifest, [lost_start("etl")], live)
    assert [(c.address, c.action, c.blocked) for c in plan.changes] == [
        ("etl", Action.START, True),
        ("lab/old", Action.SHUTDOWN, False),
    ]


def test_an_undeclared_lost_start_with_several_candidates_is_left_to_the_user() -> None:
    live = lab(("k1", timedelta(0)), ("k2", timedelta(0)))
    plan = planned(lab_manifest("  web: {spec: light}\n"), [lost_start("etl")], live)
    (etl,) = [c for c in plan.changes if c.address == "etl"]
    assert (etl.action, etl.blocked, etl.kernel_id) == (Action.SHUTDOWN, True, None)
    assert "k1, k2" in etl.reason and "kernelform state rm etl" in etl.reason
    assert "import" not in etl.reason
    assert plan.updates == ()


def test_destroy_shuts_down_the_adopted_kernel() -> None:
    state = new_state().with_resource(lost_start("etl"))
    plan = make_destroy_plan(
        lab_manifest("  etl: {spec: light}\n"), state, lab(("k1", timedelta(0))), now=NOW
    )
    assert [(c.action, c.kernel_id) for c in plan.changes] == [(Action.SHUTDOWN, "k1")]
    assert [(u.kind, u.kernel_id) for u in plan.updates] == [(UpdateKind.CONFIRM, "k1")]
