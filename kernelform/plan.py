"""The plan as plain data: what apply will do, and why.

A plan is a tuple of frozen ``Change`` objects (one server action each) plus
``StateUpdate``s that only touch kernelform's own records (an address that
moved, a start that must be confirmed, a gone kernel to forget), and the
hub users' servers it ``skipped`` because they are not running. Renderers,
the executor, saved plan files and the tests all consume the same objects
through ``to_dict``/``from_dict``.

A ``server-start`` change starts a hub user's server (``start_servers:
true``); its address is the server's name (``HUB@USER``), it has no recipe,
and the executor runs it before any change on that server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from kernelform.errors import PlanError, Remedy, with_remedy
from kernelform.recipe import FIELD_NAMES as RECIPE_FIELDS
from kernelform.recipe import Recipe

FORMAT_VERSION = "1"
NO_RECIPE: dict[str, None] = {name: None for name in RECIPE_FIELDS}


class Action(str, Enum):
    """What a change does to a kernel on its server."""

    START = "start"
    RESTART = "restart"
    REPLACE = "replace"
    SHUTDOWN = "shutdown"
    INTERRUPT = "interrupt"
    SERVER_START = "server-start"


class UpdateKind(str, Enum):
    """What a state-only update does to kernelform's records."""

    MOVE = "move"
    CONFIRM = "confirm"
    FORGET = "forget"


@dataclass(frozen=True, kw_only=True)
class Change:
    """One action on one kernel, with the reason it is needed.

    ``kernel_id`` is the live kernel acted on (None for a start). ``recipe``
    describes the kernel as it will be afterwards (for a shutdown: as it is;
    None for a ``server-start``, which starts no kernel).
    ``blocked`` changes touch a kernel in use and are only carried out with
    ``--force``; ``sessions`` names what uses it.
    ``old_server`` is set when a replace moves the kernel to another server.
    """

    address: str
    server: str
    action: Action
    reason: str
    recipe: Recipe | None
    kernel_id: str | None = None
    blocked: bool = False
    sessions: tuple[str, ...] = ()
    managed: bool = True
    old_server: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "server": self.server,
            "action": self.action.value,
            "reason": self.reason,
            "kernel_id": self.kernel_id,
            **(self.recipe.to_dict() if self.recipe is not None else NO_RECIPE),
            "blocked": self.blocked,
            "sessions": list(self.sessions),
            "managed": self.managed,
            "old_server": self.old_server,
        }

    @property
    def kernel_recipe(self) -> Recipe:
        """The recipe of a change that acts on a kernel (every action but server-start)."""
        if self.recipe is None:
            raise PlanError(f"{self.address}: a {self.action.value} change has no kernel recipe")
        return self.recipe

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        action = Action(data["action"])
        return cls(
            address=data["address"],
            server=data["server"],
            action=action,
            reason=data["reason"],
            kernel_id=data.get("kernel_id"),
            recipe=None if action is Action.SERVER_START else Recipe.from_dict(data),
            blocked=bool(data.get("blocked", False)),
            sessions=tuple(data.get("sessions", ())),
            managed=bool(data.get("managed", True)),
            old_server=data.get("old_server"),
        )


@dataclass(frozen=True)
class StateUpdate:
    """A change to kernelform's state alone; nothing is sent to a server.

    A ``confirm`` with a ``kernel_id`` adopts that kernel: an interrupted apply
    started it on a server that ignores client-chosen ids, so the state had
    only a placeholder id for it.
    """

    kind: UpdateKind
    address: str
    detail: str
    new_address: str | None = None
    kernel_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "address": self.address,
            "detail": self.detail,
            "new_address": self.new_address,
            "kernel_id": self.kernel_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateUpdate:
        return cls(
            kind=UpdateKind(data["kind"]),
            address=data["address"],
            detail=data["detail"],
            new_address=data.get("new_address"),
            kernel_id=data.get("kernel_id"),
        )


@dataclass(frozen=True)
class Skip:
    """A hub user's server the plan leaves alone, and why (it is not running)."""

    server: str
    hub: str
    user: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "hub": self.hub, "user": self.user, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Skip:
        return cls(server=data["server"], hub=data["hub"], user=data["user"], reason=data["reason"])


@dataclass(frozen=True)
class KernelFact:
    """What a change relied on about a live kernel, checked again by a saved plan."""

    server: str
    kernel_id: str
    spec: str
    in_use: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "kernel_id": self.kernel_id,
            "spec": self.spec,
            "in_use": self.in_use,
        }


def is_saved_plan(data: Any) -> bool:
    """Whether *data* (a JSON document) looks like a plan saved by ``Plan.to_dict``, of
    any format: to name it when it is given where something else was expected."""
    return isinstance(data, Mapping) and "format_version" in data and "changes" in data


@dataclass(frozen=True)
class Plan:
    """Everything one apply will do, and what it was computed from."""

    changes: tuple[Change, ...] = ()
    updates: tuple[StateUpdate, ...] = ()
    created_at: datetime | None = None
    manifest_path: str = ""  # as given (-f), for people
    manifest_digest: str = ""
    manifest_absolute: str = ""  # where a saved plan finds it (see workspace.locate_manifest)
    manifest_relative: str = ""  # relative to the saved plan file, when saved to one
    state_lineage: str = ""
    state_serial: int = 0
    state_location: str = ""  # which state (never with a password); "" = not recorded
    state_workspace: str = ""
    targets: tuple[str, ...] = ()
    destroy: bool = False
    facts: tuple[KernelFact, ...] = field(default=())
    skipped: tuple[Skip, ...] = ()

    @property
    def runnable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if not c.blocked)

    @property
    def blocked(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.blocked)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for change in self.runnable:
            counts[change.action.value] += 1
        counts["blocked"] = len(self.blocked)
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "changes": [c.to_dict() for c in self.changes],
            "state_updates": [u.to_dict() for u in self.updates],
            "summary": self.summary(),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "destroy": self.destroy,
            "targets": list(self.targets),
            "manifest": {
                "path": self.manifest_path,
                "digest": self.manifest_digest,
                **({"absolute": self.manifest_absolute} if self.manifest_absolute else {}),
                **({"relative_to_plan": self.manifest_relative} if self.manifest_relative else {}),
            },
            "state": {
                "lineage": self.state_lineage,
                "serial": self.state_serial,
                "location": self.state_location,
                "workspace": self.state_workspace,
            },
            "facts": [f.to_dict() for f in self.facts],
            "skipped": [s.to_dict() for s in self.skipped],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> Plan:
        """Read a saved plan; any malformation is a ``PlanError`` naming *source*."""
        version = data.get("format_version") if isinstance(data, Mapping) else None
        if version != FORMAT_VERSION:
            raise with_remedy(
                PlanError(
                    f"{source} is not a kernelform plan of format {FORMAT_VERSION} "
                    f"(format_version: {version!r})"
                ),
                Remedy.MAKE_NEW_PLAN,
            )
        try:
            created = data.get("created_at")
            manifest = data["manifest"]
            return cls(
                changes=tuple(Change.from_dict(_checked(c)) for c in _items(data["changes"])),
                updates=tuple(
                    StateUpdate.from_dict(_checked(u))
                    for u in _items(data.get("state_updates", []))
                ),
                created_at=datetime.fromisoformat(created) if created else None,
                manifest_path=_text(manifest["path"]),
                manifest_digest=_text(manifest["digest"]),
                manifest_absolute=_text(manifest.get("absolute", "")),
                manifest_relative=_text(manifest.get("relative_to_plan", "")),
                state_lineage=_text(data["state"]["lineage"]),
                state_serial=int(data["state"]["serial"]),
                state_location=_text(data["state"].get("location") or ""),
                state_workspace=_text(data["state"].get("workspace") or ""),
                targets=tuple(_target(t) for t in _items(data.get("targets", []))),
                destroy=bool(data.get("destroy", False)),
                facts=tuple(
                    KernelFact(
                        server=_text(f["server"]),
                        kernel_id=_text(f["kernel_id"]),
                        spec=_text(f["spec"]),
                        in_use=bool(f["in_use"]),
                    )
                    for f in _items(data.get("facts", []))
                ),
                skipped=tuple(Skip.from_dict(s) for s in data.get("skipped", [])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise with_remedy(
                PlanError(f"{source} is a damaged plan file ({type(e).__name__}: {e})"),
                Remedy.MAKE_NEW_PLAN,
            ) from e


def _items(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _checked(value: Any) -> Mapping[str, Any]:
    """A saved change or update: an object whose text fields are text."""
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    for key in ("address", "server", "reason", "detail", "new_address", "kernel_id"):
        if value.get(key) is not None:
            _text(value[key])
    if not isinstance(value.get("sessions", []), list):
        raise TypeError("sessions is not a list")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _target(value: Any) -> str:
    from kernelform.address import parse_target

    parse_target(_text(value))  # raises ValueError
    return str(value)
