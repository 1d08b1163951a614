"""Typed views of what a Jupyter server reports.

The REST API differs a little between servers and versions (older ones omit
``connections`` or ``last_activity``; newer ones add fields), so every model
tolerates unknown fields and gives missing optional ones a neutral default.
The Kernel Gateway's sessions keep the old shape (``notebook: {path}`` and no
``path``, ``name`` or ``type``); ``Session`` reads both.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Kernel(_Model):
    """One running kernel, as ``GET api/kernels`` reports it."""

    id: str
    name: str = ""
    last_activity: datetime | None = None
    execution_state: str = "unknown"
    connections: int = 0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The shape of the original ``jupyter_kernel_list`` entries."""
        return {
            "id": self.id,
            "name": self.name,
            "execution_state": self.execution_state,
            "last_activity": _iso(self.last_activity),
            "connections": self.connections,
        }


class Session(_Model):
    """A session ties a kernel to a notebook (or console, or file) path."""

    id: str
    path: str = ""
    name: str = ""
    type: str = ""
    kernel: Kernel | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_notebook_path(cls, data: Any) -> Any:
        """Take ``path`` (and ``name``) from ``notebook: {path, name}`` when absent.

        The Kernel Gateway answers ``{id, notebook: {path}, kernel}`` (the
        notebook 4 shape); jupyter_server sends ``path`` and keeps ``notebook``
        only as a deprecated copy.
        """
        if not isinstance(data, dict) or data.get("path"):
            return data
        notebook = data.get("notebook")
        if not isinstance(notebook, dict) or not isinstance(notebook.get("path"), str):
            return data
        filled = {**data, "path": notebook["path"]}
        if not data.get("name") and isinstance(notebook.get("name"), str):
            filled["name"] = notebook["name"]
        return filled

    @property
    def kernel_id(self) -> str | None:
        return self.kernel.id if self.kernel else None

    def to_dict(self) -> dict[str, Any]:
        """The flattened shape of the original ``jupyter_kernel_sessions``."""
        return {
            "id": self.id,
            "notebook": self.path,
            "kernel_id": self.kernel_id,
            "kernel_state": self.kernel.execution_state if self.kernel else None,
            "type": self.type,
            "name": self.name,
        }


class KernelSpecs(_Model):
    """``GET api/kernelspecs``: the default spec name and every spec by name."""

    default: str | None = None
    kernelspecs: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted(self.kernelspecs)

    def to_dict(self) -> dict[str, Any]:
        return {"default": self.default, "kernelspecs": self.names}


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = moment.isoformat()
    return text.replace("+00:00", "Z")


def aware(moment: datetime) -> datetime:
    """A server's time as an aware one: a naive time (old servers send them) is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
