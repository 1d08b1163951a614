"""Fleets against a real JupyterHub: kernels declared once for a hub's selected users.

Every command runs as a user would run it (``python -m kernelform``, see
tests/support/kf.py) on the session's hub (tests/hub/conftest.py: ana and carl
running, bob and dora stopped; physics-101 = ana, bob). Kernels use the cheap
``light`` spec. Each ``Fleet`` bench checks every output of every command for
every hub token, and at teardown every file it left (state, backups, plans).

About 60-90 s on the 2-core machine (server starts are 2-8 s each).
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import kernelform.fleet
from kernelform.fleet import resolve_fleets
from kernelform.hooks import Hooks
from kernelform.hub import HubClient
from kernelform.manifest import parse_manifest
from kernelform.membership import ServerStatus
from kernelform.runtime import Runtime
from kernelform.workspace import Settings, Workspace
from tests.hub.conftest import RUNNING, STOPPED, USERS
from tests.support.kf import Result, run
from tests.support.live_hub import BLIND, GROUPS_ADMIN, Hub
from tests.support.live_jupyter import free_port, wait_for

HUB_KEYS = ("groups", "users", "start_servers", "prune", "start_timeout")
WRONG_TOKEN = "0badc0ffee" * 4


class Fleet:
    """One working directory with a manifest on the hub, and the commands run in it."""

    def __init__(self, hub: Hub, workdir: Path) -> None:
        self.hub = hub
        self.workdir = workdir
        self.token = hub.token
        self.url = hub.url
        self.results: list[Result] = []

    def manifest(self, kernels: str = "  tutor: {spec: light}\n", **keys: Any) -> None:
        extra = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in keys.items() if k in HUB_KEYS)
        (self.workdir / "kernelform.yaml").write_text(
            "hubs:\n  campus:\n    url: ${KF_HUB_URL}\n    token: ${KF_HUB_TOKEN}\n"
            f"{extra}kernels:\n{kernels}",
            encoding="utf-8",
        )

    def kf(self, *args: str, code: int | None = 0, env: dict[str, str] | None = None) -> Result:
        environ = {"KF_HUB_URL": self.url, "KF_HUB_TOKEN": self.token, **(env or {})}
        result = run(*args, cwd=self.workdir, env=environ)
        self.results.append(result)
        for secret in (*self.hub.tokens.values(), WRONG_TOKEN):
            assert secret not in result.out + result.err, result
        if code is not None:
            assert result.code == code, result
        return result

    def apply(self, *args: str, code: int | None = 0, **kw: Any) -> Result:
        """``apply --auto-approve --no-wait``: a `light` kernel never answers its websocket."""
        return self.kf("apply", "--auto-approve", "--no-wait", *args, code=code, **kw)

    def error(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run a command that must fail with exactly one ``Error:`` line; return it."""
        result = self.kf(*args, code=1, env=env)
        errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result
        return errors[0]

    def resources(self) -> dict[str, Any]:
        path = self.workdir / ".kernelform" / "state.json"
        if not path.exists():
            return {}
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["resources"]
        return data

    def recorded(self, user: str) -> list[str]:
        return sorted(
            r["kernel_id"] for r in self.resources().values() if r["server"] == f"campus@{user}"
        )

    def live(self, user: str) -> list[str]:
        return sorted(k["id"] for k in self.hub.kernels(user))

    def files_hold_no_token(self) -> None:
        for path in self.workdir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in (*self.hub.tokens.values(), WRONG_TOKEN):
                    assert secret.encode() not in data, path


@pytest.fixture
def fleet(hub: Hub, tmp_path: Path) -> Iterator[Fleet]:
    bench = Fleet(hub, tmp_path)
    yield bench
    bench.files_hold_no_token()


def settled_kernels(hub: Hub, user: str) -> list[str]:
    """The user's kernels once starts that a killed run left in flight are over.

    While the server is still starting a kernel, ``GET api/kernels`` answers 500 (the
    kernel's model has no ``last_activity`` yet): wait for two equal answers in a row.
    """
    seen: list[list[str] | None] = [None]

    def stable() -> bool:
        answer = hub.server_api(user, "GET", "api/kernels", params={"no_track_activity": "1"})
        ids = sorted(k["id"] for k in answer.json()) if answer.status_code == 200 else None
        same = ids is not None and ids == seen[0]
        seen[0] = ids
        return same

    wait_for(stable, timeout=30, interval=0.5, what=f"{user}'s kernels to settle")
    assert seen[0] is not None
    return seen[0]


def activity(hub: Hub, user: str) -> datetime:
    return datetime.fromisoformat(hub.last_activity(user).replace("Z", "+00:00"))


# -- selection -------------------------------------------------------------------------------


def test_group_members_get_kernels(fleet: Fleet) -> None:
    fleet.manifest(groups=["physics-101"])
    plan = fleet.kf("plan")
    assert "+ tutor@ana" in plan.out and "tutor@bob" not in plan.out.replace("of bob", "")
    assert (
        "# hub campus: skipped the server(s) of bob: server is not running "
        "(start_servers: false); its records are kept" in plan.out
    )
    assert "Plan: 1 to start, 0 to restart" in plan.out and "user server" not in plan.out
    fleet.apply()
    state = fleet.resources()
    assert list(state) == ["tutor@ana"] and state["tutor@ana"]["server"] == "campus@ana"
    assert fleet.live("ana") == fleet.recorded("ana") and len(fleet.live("ana")) == 1
    assert fleet.hub.kernels("carl") == []  # not in the group
    assert fleet.hub.user_model("bob")["server"] is None  # never started
    again = fleet.kf("plan", "--detailed-exitcode")
    assert "No changes." in again.out and "skipped the server(s) of bob" in again.out
    status = fleet.kf("status", env={"COLUMNS": "200"}).out.splitlines()
    (bob,) = [row for row in status if row.startswith("tutor@bob ")]
    assert " skipped " in bob and bob.endswith(
        "skipped: bob's server is not running (start_servers: false); its records are kept"
    ), status
    assert any(row.startswith("tutor@ana ") and row.endswith("  ok") for row in status), status
    assert status[-1] == "Status: 2 kernel(s), 1 ok, 0 with drift, 1 on servers not running."
    document = fleet.kf("status", "--json").json()
    assert document["summary"] == {"kernels": 2, "ok": 1, "drift": 0, "skipped": 1}
    assert [s["user"] for s in document["skipped_servers"]] == ["bob"]
    # bob's tutor is declared (his server is down); carl is not in the group.
    assert fleet.error("plan", "--target", "tutor@carl") == (
        "Error: target 'tutor@carl' matches no declared or recorded kernel; tutor has: "
        "tutor@ana, tutor@bob"
    )
    document = fleet.kf("plan", "--json").json()
    assert document["changes"] == []
    assert document["skipped"] == [
        {
            "server": "campus@bob",
            "hub": "campus",
            "user": "bob",
            "reason": "bob's server is not running (start_servers: false); its records are kept",
        }
    ]
    destroyed = fleet.kf("destroy", "--auto-approve")
    assert "- tutor@ana: shut down kernel" in destroyed.out
    assert fleet.resources() == {} and fleet.hub.kernels("ana") == []
    assert fleet.hub.is_running("ana")


def test_validate_asks_no_hub_and_import_takes_a_users_kernel(fleet: Fleet) -> None:
    fleet.manifest(users=["carl"], kernels="  tutor: {spec: light}\n  solo: {spec: light}\n")
    fleet.url = f"http://127.0.0.1:{free_port()}/"  # nothing listens: validate must not ask
    assert fleet.kf("validate").out == (
        "kernelform.yaml: valid (0 server(s), 1 hub(s), 2 kernel(s), 0 address(es) on servers; "
        "2 kernel(s) per selected hub user).\n"
    )
    fleet.url = fleet.hub.url
    kernel = fleet.hub.start_kernel("carl")["id"]
    imported = fleet.kf("import", "tutor@carl", kernel)
    assert imported.out == f"Imported kernel {kernel} as tutor@carl.\n"
    assert fleet.resources()["tutor@carl"]["server"] == "campus@carl"
    plan = fleet.kf("plan")
    assert "+ solo@carl" in plan.out and "tutor@carl" not in plan.out, plan.out


def test_stopped_server_is_started_only_with_start_servers(fleet: Fleet) -> None:
    fleet.manifest(users=["bob"], kernels="  tutor: {spec: light, count: 2}\n")
    skipped = fleet.apply()
    assert "Nothing to do." in skipped.out and "skipped the server(s) of bob" in skipped.out
    assert fleet.hub.user_model("bob")["server"] is None and fleet.resources() == {}

    fleet.manifest(users=["bob"], start_servers=True, kernels="  tutor: {spec: light, count: 2}\n")
    plan = fleet.kf("plan")
    assert "  # server campus@bob will be started: bob's server is not running" in plan.out
    assert "  ^ campus@bob" in plan.out and "+ tutor[1]@bob" in plan.out
    assert "2 to start, 0 to restart, 0 to replace, 0 to shut down, 0 to interrupt, " in plan.out
    assert "1 user server(s) to start." in plan.out
    fleet.kf("plan", "--out", "start.json")
    applied = fleet.kf("apply", "--no-wait", "start.json")
    lines = [line for line in applied.out.splitlines() if "@bob" in line and ": " in line]
    started = [n for n, line in enumerate(lines) if "campus@bob: server started" in line]
    kernels = [n for n, line in enumerate(lines) if "tutor[" in line and "started kernel" in line]
    assert started and len(kernels) == 2 and started[0] < min(kernels), applied.out
    assert fleet.hub.is_running("bob")
    assert fleet.live("bob") == fleet.recorded("bob") and len(fleet.live("bob")) == 2
    fleet.kf("plan", "--detailed-exitcode")


def test_a_user_leaving_the_selection_loses_the_kernel_but_keeps_the_server(
    fleet: Fleet,
) -> None:
    fleet.manifest(users=["ana", "carl"])
    fleet.apply()
    ana = fleet.recorded("ana")
    carls_own = fleet.hub.start_kernel("carl")["id"]  # carl's own kernel, not managed
    fleet.manifest(users=["ana"])
    plan = fleet.kf("plan")
    assert "# tutor@carl will be shut down: carl is no longer selected on hub campus" in plan.out
    fleet.apply()
    assert fleet.live("carl") == [carls_own]
    assert fleet.hub.is_running("carl")
    assert fleet.recorded("ana") == ana == fleet.live("ana")
    assert list(fleet.resources()) == ["tutor@ana"]


def test_apply_waits_for_a_users_kernel_through_the_hubs_proxy(fleet: Fleet) -> None:
    """Readiness and setup go over the kernel's websocket, through the proxy, with the hub
    token."""
    marker = fleet.workdir / "setup-ran"
    fleet.manifest(
        users=["ana"],
        kernels=f"  tutor: {{spec: python3, setup: \"open({str(marker)!r}, 'w').close()\"}}\n",
    )
    applied = fleet.kf("apply", "--auto-approve")
    assert "+ tutor@ana: started kernel" in applied.out and ", ready in " in applied.out
    assert marker.is_file()
    fleet.kf("plan", "--detailed-exitcode")


def test_a_saved_plan_for_a_user_who_left_since_is_carried_out_and_waited_for(
    fleet: Fleet,
) -> None:
    """As approved (a saved plan is what was reviewed), and ready means ready there too:
    the wait came from the users selected now, so the start was reported "in 0.0s"."""
    fleet.manifest(groups=["physics-101"], kernels="  tutor: {spec: python3}\n")
    members, admin = "groups/physics-101/users", fleet.hub.tokens[GROUPS_ADMIN]
    fleet.hub.hub_api("POST", members, json={"users": ["carl"]}, token=admin).raise_for_status()
    try:
        fleet.kf("plan", "--out", "plan.json")
    finally:
        fleet.hub.hub_api(
            "DELETE", members, json={"users": ["carl"]}, token=admin
        ).raise_for_status()
    applied = fleet.kf("apply", "plan.json")
    assert re.search(r"\+ tutor@carl: started kernel \S+, ready in ", applied.out), applied
    fleet.kf("apply", "--auto-approve")  # carl is no longer selected: his kernel goes
    assert fleet.live("carl") == [] and fleet.recorded("carl") == []


def test_two_plans_leave_the_servers_idle(fleet: Fleet) -> None:
    fleet.manifest(users=["ana", "carl", "bob"], prune=True)
    fleet.apply()
    before = {user: activity(fleet.hub, user) for user in ("ana", "carl")}
    fleet.kf("plan", "--detailed-exitcode")
    fleet.kf("plan", "--json")
    assert {user: activity(fleet.hub, user) for user in ("ana", "carl")} == before


def test_every_user_page_by_page(hub: Hub) -> None:
    """With neither groups nor users, the selection is every user, read page by page."""
    with HubClient(hub.url, hub.token, name="campus", page_size=3) as client:
        assert sorted(user.name for user in client.users()) == sorted(USERS)
        statuses = {user.name: user.status() for user in client.users()}
    assert statuses == {
        **{user: ServerStatus.RUNNING for user in RUNNING},
        **{user: ServerStatus.STOPPED for user in STOPPED},
    }


class _Requests(Hooks):
    def __init__(self) -> None:
        self.urls: list[str] = []

    def before_request(self, method: str, url: str) -> None:
        self.urls.append(url)


@pytest.mark.parametrize("listing", [True, False], ids=["listed", "without-list-users"])
def test_a_big_selection_is_read_from_the_user_list(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, listing: bool
) -> None:
    """Over FEW_USERS selected users, one page of the user list replaces a request per user;
    a token that may not list users falls back to one request per user."""
    monkeypatch.setattr(kernelform.fleet, "FEW_USERS", 1)
    manifest = parse_manifest(
        "hubs:\n  campus: {url: 'http://hub/', groups: [physics-101], users: [carl]}\n"
        "kernels:\n  tutor: {spec: light}\n",
        filename="k.yaml",
        environ={},
    )
    token = hub.token if listing else hub.token_without("list:users")
    requests = _Requests()
    with HubClient(hub.url, token, name="campus", hooks=requests) as client:
        (fleet,) = resolve_fleets(manifest, {}, {"campus": client}).values()
    assert {m.user: m.status for m in fleet.members} == {
        "ana": ServerStatus.RUNNING,
        "bob": ServerStatus.STOPPED,
        "carl": ServerStatus.RUNNING,
    }
    paths = sorted(url.removeprefix(hub.api_url) for url in requests.urls)
    per_user = ["users/ana", "users/bob", "users/carl"]
    assert paths == ["groups/physics-101", "users", *([] if listing else per_user)]


# -- errors: one line, exit 1, no token ---------------------------------------------------


def test_hub_down_and_wrong_token(fleet: Fleet) -> None:
    fleet.manifest(users=["ana"])
    fleet.url = f"http://127.0.0.1:{free_port()}/"
    down = fleet.error("plan")
    assert down == (
        f"Error: {fleet.url}: cannot connect (connection refused); is the JupyterHub running "
        "at this URL?"
    )
    fleet.url = fleet.hub.url
    fleet.token = WRONG_TOKEN
    wrong = fleet.error("plan")
    assert wrong == (
        f"Error: {fleet.hub.url}: the hub refused the token (HTTP 403: Missing or invalid "
        "credentials.); check hubs.campus.token in kernelform.yaml (and the variable it "
        "comes from)"
    )


def test_raw_commands_on_a_users_server_tell_a_stopped_server_from_a_bad_token(
    fleet: Fleet,
) -> None:
    """A stopped server's /user/NAME/ is routed to the hub, whose XSRF check refuses a
    write with 403: that is no token problem."""
    bob, ana = fleet.hub.server_url("bob"), fleet.hub.server_url("ana")
    stopped = fleet.error("kernels", "start", "--server", bob, "--token", fleet.token)
    assert stopped == (
        f"Error: {bob}: POST api/kernels reached JupyterHub itself (HTTP 403), not a running"
        " server: the user's server at this URL is not running; start it from the hub, then"
        " retry"
    )
    wrong = fleet.error("kernels", "start", "--server", ana, "--token", WRONG_TOKEN)
    assert "not running" not in wrong and "check the token (--token or JUPYTER_TOKEN)" in wrong
    assert fleet.hub.kernels("ana") == []


MISSING_SCOPES: dict[str, tuple[dict[str, Any], str]] = {
    "list:users": (
        {},
        "hub: the token lacks the scope list:users (needed to list the hub's users (no groups "
        "or users are selected: every user)); add it to the role of the token's service or user",
    ),
    "read:groups": (
        {"groups": ["staff"]},
        "hub: the token lacks the scope read:groups (needed to read the members of group "
        "'staff'); add it to the role of the token's service or user",
    ),
    "access:servers": (
        {"users": ["ana"]},
        "user/ana/: ana's server on hub campus refused the token (HTTP 403): it needs the scope "
        "access:servers (for this user's server); add it to the token's role",
    ),
    # Without read:servers, read:users still says whether a server runs: a token without
    # both is what fails (BLIND).
    "read:servers": (
        {"users": ["ana"]},
        "hub: the token lacks the scope read:servers (or read:users): the hub does not say "
        "whether ana's server runs; add it to the token's role",
    ),
}


@pytest.mark.parametrize("scope", list(MISSING_SCOPES))
def test_a_missing_scope_is_named(fleet: Fleet, scope: str) -> None:
    keys, message = MISSING_SCOPES[scope]
    fleet.manifest(**keys)
    fleet.token = (
        fleet.hub.tokens[BLIND] if scope == "read:servers" else fleet.hub.token_without(scope)
    )
    where, _, text = message.partition(": ")
    url = fleet.hub.url + ("user/ana/" if where == "user/ana/" else "")
    assert fleet.error("plan") == f"Error: {url}: {text}"


def test_read_users_says_whether_a_server_runs_without_read_servers(fleet: Fleet) -> None:
    fleet.manifest(users=["ana", "bob"])
    fleet.token = fleet.hub.token_without("read:servers")
    plan = fleet.kf("plan")
    assert "+ tutor@ana" in plan.out and "skipped the server(s) of bob" in plan.out


def test_starting_servers_needs_the_servers_scope(fleet: Fleet) -> None:
    fleet.manifest(users=["dora"], start_servers=True)
    fleet.token = fleet.hub.token_without("servers")
    assert "^ campus@dora" in fleet.kf("plan").out  # planning needs no more than reading
    result = fleet.apply(code=1)
    assert (
        f"  ^ campus@dora: server-start FAILED: {fleet.hub.url}: the token lacks the scope "
        "servers (needed to start dora's server (start_servers: true)); add it to the role of "
        "the token's service or user"
    ) in result.out.splitlines()
    assert (
        "  + tutor@dora: start FAILED: not run: its server campus@dora did not start"
        in result.out.splitlines()
    ), result.out
    assert fleet.hub.user_model("dora")["server"] is None
    assert fleet.resources() == {}


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"groups": ["physics-102"]}, "the hub has no group 'physics-102' (hubs.campus.groups)"),
        ({"users": ["ana", "nobody"]}, "the hub has no user 'nobody' (hubs.campus.users)"),
    ],
)
def test_unknown_group_or_user(fleet: Fleet, keys: dict[str, Any], message: str) -> None:
    fleet.manifest(**keys)
    assert fleet.error("plan") == f"Error: {fleet.hub.url}: {message}"


def test_a_missing_cwd_on_a_users_server_is_named(fleet: Fleet) -> None:
    fleet.manifest("  tutor: {spec: light, cwd: nowhere}\n", users=["ana"])
    assert fleet.error("plan") == (
        "Error: kernel 'tutor' has cwd 'nowhere', which does not exist on server"
        " 'campus@ana'; create it there, or fix the cwd"
    )
    assert fleet.live("ana") == []


@pytest.mark.parametrize("suffix", ["hub/", "user/ana/"])
@pytest.mark.parametrize("keys", [{"groups": ["physics-101"]}, {"users": ["ana"]}, {}])
def test_a_url_that_is_not_the_hubs_public_one(
    fleet: Fleet, suffix: str, keys: dict[str, Any]
) -> None:
    """The usual mistake, .../hub/: each answer is the hub's HTML 404 page, which must not
    read as "no such group/user" or show as HTML. The API's own URL is refused unasked."""
    fleet.manifest(**keys)
    line = fleet.error("plan", env={"KF_HUB_URL": fleet.url + suffix})
    assert "this URL does not answer as a JupyterHub" in line, line
    dropped = suffix.split("/")[0]
    assert f"in hubs.campus.url (drop the /{dropped}/ and what follows)" in line, line
    assert "<" not in line
    line = fleet.error("validate", env={"KF_HUB_URL": fleet.url + "hub/api/"})
    assert line.endswith(
        ":3:10: url is the hub's API URL; give its public URL, the one users open, without"
        " /hub/api/ (kernelform adds it)"
    ), line


def test_a_server_stopped_after_the_plan(fleet: Fleet) -> None:
    """A saved plan's server stopped since: its GET is redirected to the hub (302, then 424)."""
    fleet.manifest(users=["carl"])
    fleet.kf("plan", "--out", "plan.json")
    fleet.hub.stop_server("carl")
    line = fleet.error("apply", "--no-wait", "plan.json")
    assert line == (
        f"Error: {fleet.hub.url}user/carl/: carl's server on hub campus is not running "
        "(GET api/kernels: HTTP 302 from the hub); it may have stopped during the run: start "
        "it, or set start_servers: true"
    )
    assert fleet.resources() == {}


def test_a_server_killed_behind_the_hubs_back(fleet: Fleet) -> None:
    fleet.manifest(users=["carl"])
    fleet.hub.kill_server("carl")  # the hub still believes it runs: its proxy answers 503
    line = fleet.error("plan")
    assert "the hub's proxy cannot reach carl's server on hub campus" in line, line
    assert "(GET api/kernels: HTTP 503)" in line, line


class _StopBeforeStart(Hooks):
    """Stops the user's server just before kernelform asks it for a kernel."""

    def __init__(self, hub: Hub, user: str) -> None:
        self.hub = hub
        self.user = user

    def before_start(self, address: str) -> None:
        self.hub.stop_server(self.user)


def test_a_server_stopping_mid_apply_fails_the_action_cleanly(fleet: Fleet) -> None:
    fleet.manifest(users=["carl"])
    settings = Settings(manifest_path=fleet.workdir / "kernelform.yaml")
    runtime = Runtime(hooks=_StopBeforeStart(fleet.hub, "carl"))
    with (
        pytest.MonkeyPatch.context() as patch,
        Workspace(settings, runtime=runtime) as workspace,
    ):
        patch.setenv("KF_HUB_URL", fleet.url)
        patch.setenv("KF_HUB_TOKEN", fleet.token)
        plan, live, state = workspace.plan()
        report, _ = workspace.apply(plan, live=live, state=state, on_outcome=lambda o: None)
    (failed,) = report.failed
    assert failed.change.address == "tutor@carl"
    assert failed.error == (
        f"{fleet.hub.url}user/carl/: carl's server on hub campus is not running (POST "
        "api/kernels: HTTP 403 from the hub); it may have stopped during the run: start it, "
        "or set start_servers: true"
    )
    assert fleet.resources() == {}  # the pending start was withdrawn: nothing started
    fleet.hub.start_server("carl")
    fleet.apply()
    assert fleet.live("carl") == fleet.recorded("carl") and len(fleet.live("carl")) == 1


# -- crash safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", [4, 11, 13])
def test_sigkill_during_a_fleet_apply_then_rerun(fleet: Fleet, step: int) -> None:
    """Killed after its STEP-th HTTP answer (2 user models, 8 reads of 2 servers, 4 starts)."""
    fleet.manifest(users=["ana", "carl"], kernels="  tutor: {spec: light, count: 2}\n")
    crashed = fleet.apply(code=None, env={"KERNELFORM_CRASH_AT": f"after-request:{step}"})
    assert crashed.code == -signal.SIGKILL, crashed
    left = len(settled_kernels(fleet.hub, "ana")) + len(settled_kernels(fleet.hub, "carl"))
    # Starts run concurrently: more may have reached the servers than had answered.
    assert left == 0 if step < 11 else left >= step - 10, left
    fleet.apply()
    declared = {f"tutor[{i}]@{user}" for i in (0, 1) for user in ("ana", "carl")}
    assert set(fleet.resources()) == declared
    assert not any(r["pending"] for r in fleet.resources().values())
    for user in ("ana", "carl"):
        assert fleet.live(user) == fleet.recorded(user) and len(fleet.live(user)) == 2
    fleet.kf("plan", "--detailed-exitcode")


def test_sigkill_while_a_server_starts_then_rerun(fleet: Fleet) -> None:
    fleet.manifest(users=["dora"], start_servers=True)
    # Answer 1: dora's user model; answer 2: the POST that starts her server.
    crashed = fleet.apply(code=None, env={"KERNELFORM_CRASH_AT": "after-request:2"})
    assert crashed.code == -signal.SIGKILL, crashed
    fleet.apply()
    assert fleet.hub.is_running("dora")
    assert fleet.live("dora") == fleet.recorded("dora") and len(fleet.live("dora")) == 1
    fleet.kf("plan", "--detailed-exitcode")
