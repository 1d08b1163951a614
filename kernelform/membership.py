"""Membership: who a hub's fleet is and whether their servers run, as plain data.

Why its own module: the planner decides from these (``Fleet``, ``Member``,
``ServerStatus``) but must not import what fetches them. ``kernelform.fleet``
asks the hub (I/O, through ``kernelform.hub``) and builds them; the planner and
the workspace only read them. A member's server is named ``HUB@USER``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kernelform.manifest import user_server


class ServerStatus(str, Enum):
    """A user's default server, as the hub reports it."""

    RUNNING = "running"  # ready: its API answers through the proxy
    PENDING = "pending"  # being started or stopped
    STOPPED = "stopped"
    NO_USER = "no-user"  # the user is not (or no longer) on the hub


@dataclass(frozen=True)
class Member:
    """One user of a hub's fleet: their server's name and status, and whether selected."""

    user: str
    server: str
    status: ServerStatus
    selected: bool = True

    @property
    def running(self) -> bool:
        return self.status is ServerStatus.RUNNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "server": self.server,
            "status": self.status.value,
            "selected": self.selected,
        }


@dataclass(frozen=True)
class Fleet:
    """One hub's members, and the hub settings the planner needs."""

    hub: str
    members: tuple[Member, ...] = ()
    start_servers: bool = False
    prune: bool = False

    def selected_users(self) -> list[str]:
        return [m.user for m in self.members if m.selected]

    @classmethod
    def build(
        cls,
        hub: str,
        statuses: Mapping[str, ServerStatus | str],
        *,
        departed: Mapping[str, ServerStatus | str] | None = None,
        start_servers: bool = False,
        prune: bool = False,
    ) -> Fleet:
        """A fleet from user → status (selected) and *departed* user → status (not)."""
        members = [
            Member(user, user_server(hub, user), ServerStatus(status), selected)
            for selected, group in ((True, statuses), (False, departed or {}))
            for user, status in group.items()
        ]
        return cls(hub, tuple(members), start_servers=start_servers, prune=prune)


def members_of(fleets: Mapping[str, Fleet]) -> dict[str, list[str]]:
    """Each hub's selected users, for ``Manifest.desired``."""
    return {hub: fleet.selected_users() for hub, fleet in fleets.items()}


def fleet_servers(fleets: Iterable[Fleet]) -> dict[str, Member]:
    """Every member by server name, across fleets."""
    return {m.server: m for fleet in fleets for m in fleet.members}
