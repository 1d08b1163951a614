"""Facts: what each Jupyter server reports, read once per plan.

Reading (I/O) is kept apart from planning: ``gather_facts`` asks every server
for its kernels, sessions and kernelspecs, all servers in parallel, and hands
the planner plain frozen ``LiveServer`` objects. The planner never does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kernelform.models import Kernel, Session
from kernelform.server import KernelServer


@dataclass(frozen=True)
class LiveServer:
    """One server's kernels (by id), sessions and kernelspec names."""

    name: str
    kernels: Mapping[str, Kernel] = field(default_factory=dict)
    sessions: tuple[Session, ...] = ()
    specs: tuple[str, ...] = ()
    accepts_kernel_id: bool = False

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
        """A kernel is in use when a session holds it or a client is connected."""
        kernel = self.kernels.get(kernel_id)
        connected = kernel is not None and kernel.connections > 0
        return connected or bool(self.sessions_of(kernel_id))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kernels": [k.model_dump(mode="json") for k in self.kernels.values()],
            "sessions": [s.model_dump(mode="json") for s in self.sessions],
            "specs": list(self.specs),
            "accepts_kernel_id": self.accepts_kernel_id,
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
        )


def read_server(name: str, client: KernelServer) -> LiveServer:
    """Read one server: kernels, sessions, kernelspecs and its version."""
    kernels = client.list_kernels()
    return LiveServer(
        name=name,
        kernels={k.id: k for k in kernels},
        sessions=tuple(client.list_sessions()),
        specs=tuple(client.list_kernelspecs().names),
        accepts_kernel_id=client.accepts_kernel_id(),
    )


def gather_facts(clients: Mapping[str, KernelServer]) -> dict[str, LiveServer]:
    """Read every server in parallel; the first error (by server name) is raised."""
    if not clients:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(clients), 16)) as pool:
        futures = {name: pool.submit(read_server, name, c) for name, c in clients.items()}
        return {name: futures[name].result() for name in sorted(futures)}
