"""Shared pieces of the state tests: a resource maker and the time they start at."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kernelform.recipe import FIELD_NAMES as RECIPE_FIELDS
from kernelform.recipe import Recipe
from kernelform.state import Resource

T0 = datetime(2026, 11, 28, 0, 10, tzinfo=timezone.utc)


def resource(address: str = "etl", **changes: Any) -> Resource:
    """A resource at *address*; recipe fields (spec, cwd, revision) may be given flat."""
    fields: dict[str, Any] = {
        "address": address,
        "server": "local",
        "kernel_id": f"kid-{address}",
        "spec": "python3",
        "cwd": "/srv/etl",
        "revision": "abc123",
        "started_at": T0,
    }
    fields.update(changes)
    recipe = Recipe.from_dict({name: fields.pop(name) for name in RECIPE_FIELDS if name in fields})
    return Resource(recipe=recipe, **fields)
