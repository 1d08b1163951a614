"""The planner, table-style: each file in plan_cases/ is one rule or edge.

A case gives a manifest, a state, what the servers report, the time, targets
and force, and the changes (and state updates) the plan must contain, in order.
Only the keys a case names are compared, so each case says what it is about.

For kernels on a hub, ``fleets`` says what the hub answered: per hub, the
selected ``users`` and the ``departed`` ones (recorded, no longer selected),
each with its server's status (``running``, ``pending``, ``stopped``,
``no-user``); a running user's server is in ``live`` as ``HUB@USER``. The
hub's ``start_servers`` and ``prune`` come from the manifest. ``skipped``
in ``expect`` lists the servers the plan skipped.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kernelform.errors import PlanError
from kernelform.live import LiveServer
from kernelform.manifest import Manifest, parse_manifest
from kernelform.membership import Fleet
from kernelform.plan import Action
from kernelform.planner import make_destroy_plan, make_plan
from kernelform.recipe import Recipe
from kernelform.state import Resource, new_state

CASES = sorted((Path(__file__).parent / "plan_cases").glob("*.yaml"))
DEFAULT_NOW = "2026-11-28T12:00:00Z"


def load_case(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return data


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def build_state(entries: dict[str, dict[str, Any]]) -> Any:
    state = new_state()
    for address, fields in entries.items():
        state = state.with_resource(
            Resource(
                address=address,
                server=fields["server"],
                kernel_id=fields["kernel_id"],
                recipe=Recipe.from_dict(fields),
                started_at=moment(fields.get("started_at", DEFAULT_NOW)),
                pending=fields.get("pending", False),
                tainted=fields.get("tainted"),
            )
        )
    return state


def build_live(servers: dict[str, dict[str, Any]]) -> dict[str, LiveServer]:
    live = {}
    for name, data in servers.items():
        kernels = [
            {"execution_state": "idle", "connections": 0, **kernel}
            for kernel in data.get("kernels", [])
        ]
        sessions = [
            {**s, "kernel": {"name": "python3", **s["kernel"]}} for s in data.get("sessions", [])
        ]
        live[name] = LiveServer.from_dict(
            {
                "name": name,
                "kernels": kernels,
                "sessions": sessions,
                "specs": data["specs"],
                "unresponsive": data.get("unresponsive", []),
            }
        )
    return live


def build_fleets(manifest: Manifest, fleets: dict[str, dict[str, Any]]) -> dict[str, Fleet]:
    return {
        hub: Fleet.build(
            hub,
            data.get("users") or {},
            departed=data.get("departed") or {},
            start_servers=manifest.hubs[hub].start_servers,
            prune=manifest.hubs[hub].prune,
        )
        for hub, data in fleets.items()
    }


def subset(actual: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {key: actual[key] for key in expected}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan_case(path: Path) -> None:
    case = load_case(path)
    manifest = parse_manifest(case["manifest"], filename=path.name, environ={})
    state = build_state(case.get("state") or {})
    live = build_live(case["live"])
    make = make_destroy_plan if case.get("mode") == "destroy" else make_plan
    expect = case["expect"]
    arguments: dict[str, Any] = {
        "now": moment(case.get("now", DEFAULT_NOW)),
        "targets": tuple(case.get("targets", ())),
        "force": case.get("force", False),
        "fleets": build_fleets(manifest, case.get("fleets") or {}),
    }
    if "error" in expect:
        with pytest.raises(PlanError) as caught:
            make(manifest, state, live, **arguments)
        assert expect["error"] in str(caught.value)
        return
    plan = make(manifest, state, live, **arguments)
    changes = [change.to_dict() for change in plan.changes]
    assert len(changes) == len(expect["changes"]), changes
    pairs = zip(changes, expect["changes"], strict=True)
    assert [subset(c, e) for c, e in pairs] == expect["changes"]
    if "updates" in expect:
        updates = [update.to_dict() for update in plan.updates]
        assert len(updates) == len(expect["updates"]), updates
        pairs = zip(updates, expect["updates"], strict=True)
        assert [subset(u, e) for u, e in pairs] == expect["updates"]
    if "summary" in expect:
        assert plan.summary() == expect["summary"]
    skipped = [skip.to_dict() for skip in plan.skipped]
    assert [subset(s, e) for s, e in zip(skipped, expect.get("skipped", []), strict=False)] == (
        expect.get("skipped", [])
    ), skipped
    assert len(skipped) == len(expect.get("skipped", [])), skipped


def test_every_action_has_a_case() -> None:
    seen = {
        change["action"]
        for path in CASES
        for change in load_case(path)["expect"].get("changes", [])
        if "action" in change
    }
    assert seen == {action.value for action in Action}


def test_plan_round_trips_through_its_dict() -> None:
    from kernelform.plan import Plan

    case = load_case(Path(__file__).parent / "plan_cases" / "blocked_in_use.yaml")
    manifest = parse_manifest(case["manifest"], filename="m.yaml", environ={})
    plan = make_plan(
        manifest, build_state(case["state"]), build_live(case["live"]), now=moment(DEFAULT_NOW)
    )
    again = Plan.from_dict(plan.to_dict(), source="test")
    assert again.to_dict() == plan.to_dict()
    assert again.changes == plan.changes
