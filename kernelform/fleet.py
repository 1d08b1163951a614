"""Fleets: the servers of a JupyterHub's selected users, seen as ordinary servers.

A kernel declared with ``hub: campus`` runs on the default server of every
user the hub ``campus`` selects (``groups:`` members and ``users:``, or every
user). Only the hub knows who they are and whose server runs, so this module
asks it (``resolve_fleets``, I/O) and hands the planner plain frozen
``Fleet`` objects (``kernelform.membership``, which the planner imports
instead of this module): for each hub, its members with their server's status and
whether they are selected. A member's server is named ``HUB@USER``; once
running, it is read and planned like any other server (a
``kernelform.hub.UserServerClient`` is a ``KernelServer``).

Members are the selected users plus the users the state still records
kernels for (they may have left the selection: their kernels are then shut
down, if their server runs). User models are read concurrently, one request
per user, or from the hub's user list (200 a page) when a big selection on a
small hub makes that cheaper and the token may list users.

``UserServerLauncher`` starts a stopped member's server for the executor
(``start_servers: true``) and returns once the server answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from kernelform.errors import MissingScope, UnknownOnHub
from kernelform.facts import in_parallel
from kernelform.hub import HubClient, HubUser, UserServerClient
from kernelform.manifest import HubConfig, Manifest, split_user_server
from kernelform.membership import Fleet, ServerStatus
from kernelform.state import State

__all__ = [
    "UserServerLauncher",
    "hubs_in_use",
    "recorded_users",
    "resolve_fleets",
]

FEW_USERS = 8
"""Up to this many selected users are read one by one; more, from the user list."""


def recorded_users(state: State) -> dict[str, list[str]]:
    """Per hub, the users whose servers hold kernels the state records (in order)."""
    users: dict[str, dict[str, None]] = {}
    for resource in state.resources.values():
        parts = split_user_server(resource.server)
        if parts is not None:
            users.setdefault(parts[0], {})[parts[1]] = None
    return {hub: list(names) for hub, names in users.items()}


def hubs_in_use(manifest: Manifest, recorded: Mapping[str, list[str]]) -> list[str]:
    """The hubs a plan must ask: those with a declared kernel or a *recorded* one."""
    used = {decl.hub for decl in manifest.kernels.values() if decl.hub is not None}
    return [name for name in manifest.hubs if name in used or name in recorded]


def resolve_fleets(
    manifest: Manifest,
    recorded: Mapping[str, list[str]],
    clients: Mapping[str, HubClient],
) -> dict[str, Fleet]:
    """Ask each hub of *clients* (the hubs in use) who its members are and whether
    their servers run; *recorded* is ``recorded_users`` of the state."""
    return {
        name: _resolve(manifest.hubs[name], client, recorded.get(name, []))
        for name, client in clients.items()
    }


def _resolve(config: HubConfig, client: HubClient, recorded_here: list[str]) -> Fleet:
    """*config*'s fleet: its selected users and, of *recorded_here* (users with
    recorded kernels), those no longer selected."""
    models: dict[str, HubUser] = {}
    if config.selects_everyone:
        for model in client.users():
            models.setdefault(model.name, model)
        selected = list(models)
    else:
        groups = in_parallel(client.group_members, config.groups)
        selected = list(dict.fromkeys([*(u for g in groups for u in g), *config.users]))
        models.update(_user_models(client, selected))
    recorded = [user for user in recorded_here if user not in models]
    departed = dict(zip(recorded, in_parallel(_lookup(client), recorded), strict=True))
    statuses = {user: _status(client, models[user]) for user in selected}
    gone = {
        user: ServerStatus.NO_USER if model is None else _status(client, model)
        for user, model in departed.items()
    }
    return Fleet.build(
        config.name,
        statuses,
        departed=gone,
        start_servers=config.start_servers,
        prune=config.prune,
    )


def _user_models(client: HubClient, names: list[str]) -> dict[str, HubUser]:
    """The models of *names*: from the user list when that takes fewer requests than
    asking for each user (and the token may list users), else one request per user."""
    found: dict[str, HubUser] = {}
    wanted = set(names)
    if len(names) > FEW_USERS:
        try:
            for number, (page, total) in enumerate(client.user_pages(), start=1):
                found.update((m.name, m) for m in page if m.name in wanted)
                pages = -(-(total or 0) // max(1, len(page)))
                if number == 1 and pages - 1 > len(wanted) - len(found):
                    break  # a big hub: asking for each of the few left is cheaper
        except MissingScope:
            found.clear()
    rest = [name for name in names if name not in found]
    found.update(zip(rest, in_parallel(client.user, rest), strict=True))
    return found


def _status(client: HubClient, model: HubUser) -> ServerStatus:
    status = model.status()
    if status is None:
        raise MissingScope(
            f"the token lacks the scope read:servers (or read:users): the hub does not say "
            f"whether {model.name}'s server runs; add it to the token's role",
            server=client.server,
            scope="read:servers",
        )
    return status


def _lookup(client: HubClient) -> Callable[[str], HubUser | None]:
    """``client.user``, but None for a user the hub no longer has."""

    def lookup(name: str) -> HubUser | None:
        try:
            return client.user(name)
        except UnknownOnHub:
            return None

    return lookup


@dataclass(frozen=True)
class UserServerLauncher:
    """Starts one member's server through the hub; a ``kernelform.server.ServerLauncher``."""

    hub: HubClient
    client: UserServerClient
    timeout: timedelta

    def launch(self) -> None:
        began = time.monotonic()
        self.hub.start_server(self.client.user, timeout=self.timeout)
        left = self.timeout.total_seconds() - (time.monotonic() - began)
        self.client.wait_until_answering(timeout=max(left, 5.0))

