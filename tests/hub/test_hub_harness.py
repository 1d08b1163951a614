"""The JupyterHub harness, and the hub behaviours kernelform's fleets rely on.

These tests prove ``tests.support.live_hub`` works (a real hub, proxy, single-user
servers and kernels) and pin down, against that real hub, every answer the
fleet feature will meet: pagination of the user list, group members, what each
missing scope of the manager's token gives, what a stopped or killed server
answers through the proxy, that ``no_track_activity=1`` leaves a server idle, and
that kernel websockets pass the proxy. If a JupyterHub release changes one of
these, a test here fails and says which.

Run with ``-s`` to see the timings (server starts).
"""

from __future__ import annotations

import html
import json
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psutil
import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.hub.conftest import GROUPS, USERS
from tests.support.live_hub import MANAGER_SCOPES, PAGINATION, Hub, scopes_without
from tests.support.live_jupyter import wait_for

RUNNING_USER = "ana"  # in RUNNING and in physics-101
STOPPED_USER = "bob"  # in STOPPED and in physics-101


def _refused(scopes: str) -> dict[str, Any]:
    """The hub's JSON body for a token that lacks every one of *scopes*."""
    return {
        "status": 403,
        "message": f"Action is not authorized with current scopes; requires any of [{scopes}]",
    }


# -- 0. the harness itself --------------------------------------------------------------------


def test_user_servers_see_only_the_test_setup(hub: Hub) -> None:
    specs = hub.server_json(RUNNING_USER, "GET", "api/kernelspecs")["kernelspecs"]
    assert {"python3", "broken", "light"} <= set(specs)
    assert specs["python3"]["spec"]["argv"][0] == sys.executable
    assert specs["light"]["spec"]["argv"] == ["sleep", "infinity"]
    # The server's Jupyter and home directories are the user's temporary ones.
    pid = hub.server_pid(RUNNING_USER)
    assert pid is not None
    env = psutil.Process(pid).environ()
    mine = hub.user_dir(RUNNING_USER)
    assert env["HOME"] == str(mine / "home")
    for name, kind in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data")):
        assert env[name] == str(mine / kind)
    assert "JUPYTER_PATH" not in env and "JUPYTER_CONFIG_PATH" not in env
    assert env["JUPYTER_RUNTIME_DIR"] == str(hub.runtime_dir(RUNNING_USER))
    info = json.loads(next(hub.runtime_dir(RUNNING_USER).glob(f"jpserver-{pid}.json")).read_text())
    assert info["root_dir"] == str(mine / "root")
    assert info["base_url"] == f"/user/{RUNNING_USER}/"


# -- 1. users, pagination, groups --------------------------------------------------------


def test_users_paginated_by_following_next(hub: Hub) -> None:
    seen: list[str] = []
    pages = 0
    path: str | None = "hub/api/users?limit=3"
    while path is not None:
        response = hub.request("GET", path, headers={"Accept": PAGINATION})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "_pagination"}
        page = body["_pagination"]
        assert page["limit"] == 3 and page["total"] == len(USERS), page
        assert page["offset"] == len(seen), page
        seen += [user["name"] for user in body["items"]]
        pages += 1
        following = page["next"]
        if following is None:
            path = None
        else:
            # `next` repeats offset and limit, and gives an absolute URL on the proxy.
            assert following["offset"] == len(seen) and following["limit"] == 3, following
            assert following["url"].startswith(hub.api_url + "users?"), following
            path = following["url"].removeprefix(hub.url)
    assert pages == 2
    assert sorted(seen) == sorted(USERS)  # each user once (the order is the hub's)

    # Without the Accept header: a bare list (up to the default limit of 50).
    plain = hub.hub_json("GET", "users")
    assert isinstance(plain, list) and sorted(u["name"] for u in plain) == sorted(USERS)


def test_user_model_of_a_running_and_a_stopped_server(hub: Hub) -> None:
    running = hub.user_model(RUNNING_USER)
    assert running["server"] == f"/user/{RUNNING_USER}/" and running["pending"] is None
    server = running["servers"][""]
    assert server["ready"] is True and server["stopped"] is False
    assert server["url"] == f"/user/{RUNNING_USER}/"
    assert running["groups"] == ["physics-101"]

    stopped = hub.user_model(STOPPED_USER)
    assert (stopped["server"], stopped["pending"], stopped["servers"]) == (None, None, {})


def test_group_members(hub: Hub) -> None:
    for name, members in GROUPS.items():
        group = hub.hub_json("GET", f"groups/{name}")
        assert group == {"kind": "group", "name": name, "users": list(members), "properties": {}}


def test_unknown_group_and_user_are_404(hub: Hub) -> None:
    group = hub.hub_api("GET", "groups/no-such-group")
    assert (group.status_code, group.json()) == (
        404,
        {"status": 404, "message": "No such group: no-such-group"},
    )
    # The message names nothing for a user.
    for method, path in (("GET", "users/nobody"), ("POST", "users/nobody/server")):
        user = hub.hub_api(method, path)
        assert (user.status_code, user.json()) == (404, {"status": 404, "message": None}), path
    # Through the proxy: 302 to the hub, which answers an empty HTML 404.
    direct = hub.server_api("nobody", "GET", "api/kernels")
    assert (direct.status_code, direct.headers["Location"]) == (302, "/hub/user/nobody/api/kernels")
    followed = hub.server_api("nobody", "GET", "api/kernels", allow_redirects=True)
    assert followed.status_code == 404 and followed.text == ""
    assert followed.headers["Content-Type"].startswith("text/html")


# -- the manager's scopes, one missing at a time -------------------------------------------

CALLS: dict[str, Callable[[Hub, str], requests.Response]] = {
    "list users": lambda hub, token: hub.hub_api(
        "GET", "users", token=token, headers={"Accept": PAGINATION}
    ),
    "read group": lambda hub, token: hub.hub_api("GET", "groups/physics-101", token=token),
    "read user": lambda hub, token: hub.hub_api("GET", f"users/{RUNNING_USER}", token=token),
    # On a running server, so that a token allowed to start gets 400, not a spawn.
    "start server": lambda hub, token: hub.hub_api(
        "POST", f"users/{RUNNING_USER}/server", token=token
    ),
    "list kernels": lambda hub, token: hub.server_api(
        RUNNING_USER, "GET", "api/kernels", token=token
    ),
}
ALLOWED = {
    "list users": 200,
    "read group": 200,
    "read user": 200,
    "start server": 400,
    "list kernels": 200,
}
# scope -> (the call it refuses, HTTP status, JSON body); None: nothing refused.
REFUSALS: dict[str, tuple[str, int, dict[str, Any]] | None] = {
    "list:users": ("list users", 403, _refused("list:users")),
    "read:users": None,  # user models lose fields instead (see the next test)
    "read:servers": None,  # user models lose `servers` instead
    # The single-user server's own answer, the same as for no token at all.
    "access:servers": ("list kernels", 403, {"message": "Forbidden", "reason": None}),
    "read:groups": (
        "read group",
        403,
        _refused("read:groups, read:groups:name, read:roles:groups"),
    ),
    "servers": ("start server", 403, _refused("start:servers")),
}


def test_manager_token_passes_every_call(hub: Hub) -> None:
    assert {name: call(hub, hub.token).status_code for name, call in CALLS.items()} == ALLOWED
    already = CALLS["start server"](hub, hub.token).json()
    assert already == {"status": 400, "message": f"{RUNNING_USER} is already running"}


@pytest.mark.parametrize("scope", MANAGER_SCOPES)
def test_a_missing_scope_refuses_exactly_its_call(hub: Hub, scope: str) -> None:
    token = hub.token_without(scope)
    answers = {name: call(hub, token) for name, call in CALLS.items()}
    expected = dict(ALLOWED)
    refusal = REFUSALS[scope]
    if refusal is not None:
        call, status, body = refusal
        expected[call] = status
        assert answers[call].json() == body
        assert answers[call].headers["Content-Type"].startswith("application/json")
    assert {name: r.status_code for name, r in answers.items()} == expected


def test_what_user_models_lose_without_read_users_or_read_servers(hub: Hub) -> None:
    full = hub.user_model(RUNNING_USER)
    # Without read:users (list:users and read:servers kept): name and servers only.
    bare = hub.hub_json("GET", f"users/{RUNNING_USER}", token=hub.token_without("read:users"))
    assert set(bare) == {"admin", "kind", "name", "servers", "user_info"}
    assert bare["servers"][""]["ready"] is True
    listed = hub.hub_json("GET", "users", token=hub.token_without("read:users"))
    assert all("groups" not in user and "server" not in user for user in listed)
    # Without read:servers: everything but `servers`, yet `server` still gives the URL.
    blind = hub.hub_json("GET", f"users/{RUNNING_USER}", token=hub.token_without("read:servers"))
    assert set(full) - set(blind) == {"servers"}
    assert blind["server"] == f"/user/{RUNNING_USER}/" and blind["pending"] is None
    # `servers` implies read:servers, so that token holds start:servers and delete:servers.
    assert "servers" not in scopes_without("read:servers")


def test_service_sees_its_own_scopes(hub: Hub) -> None:
    me = hub.hub_json("GET", "user")
    assert me["kind"] == "service" and me["name"] == "kf-manager"
    assert set(MANAGER_SCOPES) <= set(me["scopes"])
    assert "list:groups" not in me["scopes"]
    refused = hub.hub_api("GET", "groups")
    assert (refused.status_code, refused.json()) == (403, _refused("list:groups"))


# -- 2. a user's server through the proxy ----------------------------------------------------


def test_kernels_of_a_running_server_through_the_proxy(hub: Hub) -> None:
    assert hub.kernels(RUNNING_USER) == []
    started = hub.server_api(RUNNING_USER, "POST", "api/kernels", json={"name": "light"})
    assert started.status_code == 201, started.text
    kernel = started.json()
    assert kernel["name"] == "light"
    assert [k["id"] for k in hub.kernels(RUNNING_USER)] == [kernel["id"]]
    # Bearer works as well as `token` through the proxy.
    bearer = hub.server_api(
        RUNNING_USER,
        "GET",
        "api/kernels",
        token="",
        headers={"Authorization": f"Bearer {hub.token}"},
    )
    assert bearer.status_code == 200 and len(bearer.json()) == 1
    deleted = hub.server_api(RUNNING_USER, "DELETE", f"api/kernels/{kernel['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert hub.kernels(RUNNING_USER) == []


def test_a_stopped_server_through_the_proxy(hub: Hub) -> None:
    path = f"/user/{STOPPED_USER}/api/kernels"
    # The proxy has no route for the user: the hub answers, with a redirect...
    direct = hub.server_api(STOPPED_USER, "GET", "api/kernels")
    assert direct.status_code == 302 and direct.content == b""
    assert direct.headers["Location"] == "/hub" + path
    # ...to a page that says 424 (requests keeps the Authorization header: same host).
    followed = hub.server_api(STOPPED_USER, "GET", "api/kernels", allow_redirects=True)
    assert [r.status_code for r in followed.history] == [302]
    assert followed.status_code == 424
    assert followed.headers["Content-Type"].startswith("application/json")
    message = followed.json()["message"]
    assert message == (
        f"JupyterHub server no longer running at {path}. "
        f"Restart the server at {hub.url}hub/spawn/{STOPPED_USER}"
    )
    # A POST (or DELETE) gets no redirect at all: the hub's XSRF check refuses it in HTML.
    for method in ("POST", "DELETE"):
        refused = hub.server_api(STOPPED_USER, method, "api/kernels", json={"name": "light"})
        assert refused.status_code == 403 and refused.headers["Content-Type"].startswith(
            "text/html"
        )
        assert f"'_xsrf' argument missing from {method}" in html.unescape(refused.text)
    # None of this starts the server.
    assert hub.user_model(STOPPED_USER)["server"] is None


def test_a_server_killed_behind_the_hubs_back(hub: Hub) -> None:
    user = "carl"
    old_pid = hub.server_pid(user)
    hub.kill_server(user)
    # Until its next poll the hub believes the server runs, and routes to it: the
    # proxy cannot connect and serves the hub's error page, redirects or not.
    assert hub.user_model(user)["servers"][""]["ready"] is True
    for method, follow in (("GET", False), ("GET", True), ("POST", False)):
        dead = hub.server_api(user, method, "api/kernels", allow_redirects=follow)
        assert dead.status_code == 503, (method, follow, dead.status_code)
        assert dead.headers["Content-Type"].startswith("text/html")
    # Starting it polls first: the hub notices the death and spawns a new server.
    spawn = hub.start_server(user)
    assert spawn.status in (201, 202)
    assert hub.server_pid(user) not in (None, old_pid)
    assert hub.kernels(user) == []


# -- 3. activity ------------------------------------------------------------------------------


def test_no_track_activity_leaves_the_server_idle(hub: Hub) -> None:
    user = "carl"

    def activity() -> datetime:
        return datetime.fromisoformat(hub.last_activity(user).replace("Z", "+00:00"))

    before = activity()
    for _ in range(2):
        quiet = hub.server_api(user, "GET", "api/kernels", params={"no_track_activity": "1"})
        assert quiet.status_code == 200
    assert activity() == before
    # api/status never counts as activity, even without the argument.
    assert hub.server_api(user, "GET", "api/status").status_code == 200
    assert activity() == before
    # A plain API request does.
    assert hub.server_api(user, "GET", "api/kernels").status_code == 200
    assert activity() > before


# -- 4. kernel websocket through the proxy ----------------------------------------------------


def test_kernel_websocket_through_the_proxy(hub: Hub) -> None:
    kernel = hub.start_kernel(RUNNING_USER, "python3")
    reply = hub.kernel_info(RUNNING_USER, kernel["id"])
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["implementation"] == "ipython"
    # What the websocket did is visible over REST: the kernel left "starting".
    wait_for(
        lambda: (
            hub.server_json(RUNNING_USER, "GET", f"api/kernels/{kernel['id']}")["execution_state"]
            == "idle"
        ),
        timeout=10,
        what="execution_state idle",
    )
    # The handshake is refused with 403 without a token, and without access:servers.
    for token in ("", hub.token_without("access:servers")):
        with pytest.raises(InvalidStatus) as refused:
            hub.kernel_info(RUNNING_USER, kernel["id"], token=token, timeout=10)
        assert refused.value.response.status_code == 403


# -- 5. starting and stopping a server --------------------------------------------------------


def test_start_and_stop_a_server(hub: Hub) -> None:
    user = "dora"
    path = f"users/{user}/server"
    refused = hub.hub_api("POST", path, token=hub.token_without("servers"))
    assert (refused.status_code, refused.json()) == (403, _refused("start:servers"))
    assert hub.user_model(user)["pending"] is None

    # The first POST blocks until the server is up (201) or slow_spawn_timeout (202);
    # a second POST while it is pending answers 202 at once.
    first: dict[str, Any] = {}

    def start() -> None:
        first["response"] = hub.hub_api("POST", path)

    starter = threading.Thread(target=start)
    starter.start()
    try:
        wait_for(
            lambda: hub.user_model(user)["pending"] == "spawn",
            interval=0.02,
            what="the spawn to be pending",
        )
        again = hub.hub_api("POST", path)
        assert (again.status_code, again.content) == (202, b"")
        assert again.headers["Content-Type"].startswith("text/plain")
    finally:
        starter.join(60)
    # 202 only on a machine so loaded that the spawn took over 10 s.
    status = first["response"].status_code
    assert status in (201, 202), first["response"].text
    hub.wait_server_ready(user)
    assert hub.kernels(user) == []
    print(f"\n{user}'s server: {status} after {first['response'].elapsed.total_seconds():.2f} s")

    running = hub.hub_api("POST", path)
    assert (running.status_code, running.json()) == (
        400,
        {"status": 400, "message": f"{user} is already running"},
    )

    refused = hub.hub_api("DELETE", path, token=hub.token_without("servers"))
    assert (refused.status_code, refused.json()) == (403, _refused("delete:servers"))
    stopped = hub.hub_api("DELETE", path)
    assert (stopped.status_code, stopped.content) == (204, b"")
    assert hub.user_model(user)["server"] is None
    assert hub.hub_api("DELETE", path).status_code == 204  # stopping a stopped server
