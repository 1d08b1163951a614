"""Live facts: what one server runs, as plain frozen data read once per plan.

Why its own module: the planner, ``status`` and the executor decide from a
``LiveServer`` (its kernels, sessions and what a start there needs), but the
planner must not import the code that reads it (``kernelform.facts``, through
a ``KernelServer``). Whether a kernel is in use is decided here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kernelform.models import Kernel, Session


@dataclass(frozen=True)
class LiveServer:
    """One server's kernels (by id), sessions and kernelspec names."""

    name: str
    kernels: Mapping[str, Kernel] = field(default_factory=dict)
    sessions: tuple[Session, ...] = ()
    specs: tuple[str, ...] = ()
    accepts_kernel_id: bool = False
    unresponsive: frozenset[str] = frozenset()
    missing_dirs: Mapping[str, str] = field(default_factory=dict)  # cwd → what is wrong
    unchecked_dirs: frozenset[str] = frozenset()  # cwds not checked: no contents API
    detailed: bool = True  # specs, kernel ids and dirs read (else they are not known)

    _by_kernel: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_kernel: dict[str, list[str]] = {}
        for session in self.sessions:
            if session.kernel_id is not None:
                by_kernel.setdefault(session.kernel_id, []).append(
                    session.path or session.name or session.id
                )
        paths = {kernel_id: tuple(found) for kernel_id, found in by_kernel.items()}
        object.__setattr__(self, "_by_kernel", paths)

    def sessions_of(self, kernel_id: str) -> tuple[str, ...]:
        """The paths (notebooks) of the sessions attached to *kernel_id*."""
        return self._by_kernel.get(kernel_id, ())

    def in_use(self, kernel_id: str) -> bool:
        """A kernel is in use when a session holds it or a client is connected.

        The connection count of a kernel that did not answer a probe is not
        trusted: jupyter_server counts the probe's connection as open for as long
        as the kernel stays silent, so a frozen kernel would look in use.
        """
        kernel = self.kernels.get(kernel_id)
        counted = kernel is not None and kernel_id not in self.unresponsive
        connected = counted and kernel is not None and kernel.connections > 0
        return connected or bool(self.sessions_of(kernel_id))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kernels": [k.model_dump(mode="json") for k in self.kernels.values()],
            "sessions": [s.model_dump(mode="json") for s in self.sessions],
            "specs": list(self.specs),
            "accepts_kernel_id": self.accepts_kernel_id,
            "unresponsive": sorted(self.unresponsive),
            "missing_dirs": dict(self.missing_dirs),
            "unchecked_dirs": sorted(self.unchecked_dirs),
            "detailed": self.detailed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LiveServer:
        kernels = [Kernel.model_validate(k) for k in data.get("kernels", [])]
        return cls(
            name=data["name"],
            kernels={k.id: k for k in kernels},
            sessions=tuple(Session.model_validate(s) for s in data.get("sessions", [])),
            specs=tuple(data.get("specs", [])),
            accepts_kernel_id=bool(data.get("accepts_kernel_id", False)),
            unresponsive=frozenset(data.get("unresponsive", ())),
            missing_dirs=dict(data.get("missing_dirs", {})),
            unchecked_dirs=frozenset(data.get("unchecked_dirs", ())),
            detailed=bool(data.get("detailed", True)),
        )
