"""A kernel's recipe: what kernelform records about how it started a kernel.

The state keeps a recipe per kernel and the manifest gives the wanted one; the
planner compares the two field by field. Each field says, where it is
declared, what a change of it costs: ``REPLACE`` (a new kernel: the spec or
the working directory cannot change in a running process) or ``RESTART`` (the
same kernel id, a new process). Adding a recorded setting is one field here
plus the manifest key that feeds it; the state, saved plans and the planner's
drift check follow from these declarations.

Only what can be shown safely is recorded: setup code is kept as a digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Effect(str, Enum):
    """What a change of a recorded field does to the running kernel."""

    REPLACE = "replace"
    RESTART = "restart"


class Shown(str, Enum):
    """How a change of the field reads in a plan's reason."""

    VALUES = "values"  # "cwd a → b"
    CHANGED = "changed"  # "setup changed" (the values are digests)


def _recorded(effect: Effect, shown: Shown = Shown.VALUES) -> dict[str, Any]:
    return {"effect": effect, "shown": shown}


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """The recorded settings of one kernel; ``None`` means "not set"."""

    spec: str = field(metadata=_recorded(Effect.REPLACE))
    cwd: str | None = field(default=None, metadata=_recorded(Effect.REPLACE))
    revision: str | None = field(default=None, metadata=_recorded(Effect.RESTART))
    setup: str | None = field(default=None, metadata=_recorded(Effect.RESTART, Shown.CHANGED))

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec:
            raise ValueError(f"spec must be a non-empty string, not {self.spec!r}")
        for name in FIELD_NAMES[1:]:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or null, not {value!r}")

    def to_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in FIELD_NAMES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Build from a mapping holding (at least) the recipe's keys; absent ones are None."""
        values: dict[str, Any] = {name: data.get(name) for name in FIELD_NAMES}
        return cls(**values)

    def differences(self, wanted: Recipe, effect: Effect) -> list[str]:
        """How *wanted* differs from this recipe in the fields with *effect*, for a reason."""
        found = []
        for spec in _FIELDS:
            if spec.metadata["effect"] is not effect:
                continue
            old, new = getattr(self, spec.name), getattr(wanted, spec.name)
            if old == new:
                continue
            if spec.metadata["shown"] is Shown.CHANGED:
                found.append(f"{spec.name} changed")
            else:
                found.append(f"{spec.name} {show(old)} → {show(new)}")
        return found


_FIELDS = dataclasses.fields(Recipe)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in _FIELDS)


def fields() -> Iterator[tuple[str, Effect]]:
    """Every recorded field with what its change costs, in declaration order."""
    for spec in _FIELDS:
        yield spec.name, spec.metadata["effect"]


def digest(text: str) -> str:
    """A short, stable digest of code, kept instead of the code itself."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def show(value: str | None) -> str:
    return "(none)" if value is None else value
