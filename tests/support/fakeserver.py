"""An in-memory Jupyter server and state store, for property tests of plan → apply.

``FakeJupyter`` has the part of ``kernelform.client.JupyterClient`` that
``kernelform.facts.read_server`` and ``kernelform.executor.execute`` use
(duck-typed): ``list_kernels``, ``get_kernel``, ``list_sessions``,
``list_kernelspecs``, ``accepts_kernel_id``, ``start_kernel``,
``restart_kernel``, ``interrupt_kernel`` and ``shutdown_kernel``. It behaves
like jupyter_server 2.21 where kernelform relies on it:

* starting an unknown spec raises ``UnknownKernelSpec``;
* with ``accepts_kernel_id``, a start with a ``kernel_id`` that already runs
  returns that kernel and starts nothing (no twin); without it the id is
  ignored and a fresh one chosen, as older servers do;
* a kernel's sessions go away with it (the server drops sessions whose kernel
  is gone when it lists them);
* restart keeps the id and the sessions and revives a dead kernel; interrupt
  leaves the kernel idle;
* an unknown id raises ``KernelNotFound``.

Every write is appended to ``log`` (an ``Op`` list that several servers may
share), so a test can say exactly what was done to which kernel. It is a fake
on purpose: the property tests run thousands of cases; tests/planner/test_convergence.py
runs a few generated cases against the real server too.

``MemoryStore`` is the in-memory backend (``kernelform.state.memory``), which
keeps every backend's rules, plus ``writes``: every state it stored, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from kernelform.errors import KernelNotFound, UnknownKernelSpec
from kernelform.models import Kernel, KernelSpecs, Session
from kernelform.state import Resource, State
from kernelform.state.memory import MemoryStateStore


@dataclass
class FakeKernel:
    """One kernel as the fake server keeps it; ``path`` is the cwd it was started in."""

    id: str
    name: str
    path: str | None = None
    execution_state: str = "idle"
    last_activity: datetime | None = None
    connections: int = 0
    restarts: int = 0

    def model(self) -> Kernel:
        return Kernel(
            id=self.id,
            name=self.name,
            last_activity=self.last_activity,
            execution_state=self.execution_state,
            connections=self.connections,
        )


@dataclass(frozen=True)
class FakeSession:
    id: str
    path: str
    kernel_id: str


@dataclass(frozen=True)
class Op:
    """One write a server carried out: start, start-existing, restart, interrupt, shutdown."""

    server: str
    action: str
    kernel_id: str


class FakeJupyter:
    """One in-memory Jupyter server; thread-safe, as the executor calls it from a pool."""

    def __init__(
        self,
        name: str,
        *,
        specs: tuple[str, ...] = ("python3",),
        accepts_kernel_id: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        log: list[Op] | None = None,
        id_prefix: str = "f",
    ) -> None:
        self.name = name
        self.server = f"fake://{name}"
        self.specs = tuple(specs)
        self.kernels: dict[str, FakeKernel] = {}
        self.sessions: list[FakeSession] = []
        self.log: list[Op] = log if log is not None else []
        self._accepts_kernel_id = accepts_kernel_id
        self._clock = clock
        self._lock = threading.RLock()
        self._next_id = 0
        self._prefix = id_prefix

    def __repr__(self) -> str:
        return f"FakeJupyter({self.name!r}, kernels={sorted(self.kernels)})"

    # -- setting the scene (not logged) ----------------------------------------------

    def add_kernel(self, kernel: FakeKernel) -> FakeKernel:
        with self._lock:
            assert kernel.id not in self.kernels, kernel.id
            self.kernels[kernel.id] = kernel
            return kernel

    def add_session(self, kernel_id: str, path: str) -> FakeSession:
        with self._lock:
            assert kernel_id in self.kernels, kernel_id
            session = FakeSession(
                id=f"s{len(self.sessions)}-{kernel_id}", path=path, kernel_id=kernel_id
            )
            self.sessions.append(session)
            return session

    def in_use(self, kernel_id: str) -> bool:
        kernel = self.kernels.get(kernel_id)
        attached = any(s.kernel_id == kernel_id for s in self.sessions)
        return kernel is not None and (kernel.connections > 0 or attached)

    def ops_on(self, kernel_id: str) -> list[str]:
        return [
            op.action for op in self.log if op.server == self.name and op.kernel_id == kernel_id
        ]

    # -- the JupyterClient surface ------------------------------------------------------

    def list_kernels(self) -> list[Kernel]:
        with self._lock:
            return [k.model() for k in self.kernels.values()]

    def get_kernel(self, kernel_id: str) -> Kernel:
        with self._lock:
            return self._get(kernel_id).model()

    def list_sessions(self) -> list[Session]:
        with self._lock:
            return [
                Session(
                    id=s.id,
                    path=s.path,
                    name=s.path.rsplit("/", 1)[-1],
                    type="notebook",
                    kernel=self.kernels[s.kernel_id].model(),
                )
                for s in self.sessions
                if s.kernel_id in self.kernels
            ]

    def list_kernelspecs(self) -> KernelSpecs:
        return KernelSpecs(
            default=self.specs[0] if self.specs else None,
            kernelspecs={name: {"name": name, "spec": {}} for name in self.specs},
        )

    def accepts_kernel_id(self) -> bool:
        return self._accepts_kernel_id

    def path_kind(self, path: str) -> str | None:
        return "directory"  # every declared cwd exists here

    def start_kernel(
        self, name: str = "python3", *, path: str | None = None, kernel_id: str | None = None
    ) -> Kernel:
        with self._lock:
            if not self._accepts_kernel_id:
                kernel_id = None
            if kernel_id is not None and kernel_id in self.kernels:
                self.log.append(Op(self.name, "start-existing", kernel_id))
                return self.kernels[kernel_id].model()
            if name not in self.specs:
                raise UnknownKernelSpec(
                    f"unknown kernelspec {name!r}; the server has: {', '.join(self.specs)}",
                    server=self.server,
                    spec=name,
                    available=self.specs,
                )
            if kernel_id is None:
                self._next_id += 1
                kernel_id = f"{self._prefix}{self._next_id:07x}-0000-4000-8000-{self.name:0>12.12}"
            kernel = FakeKernel(id=kernel_id, name=name, path=path, last_activity=self._clock())
            self.kernels[kernel_id] = kernel
            self.log.append(Op(self.name, "start", kernel_id))
            return kernel.model()

    def restart_kernel(self, kernel_id: str) -> Kernel:
        with self._lock:
            kernel = self._get(kernel_id)
            kernel.execution_state = "idle"
            kernel.last_activity = self._clock()
            kernel.restarts += 1
            self.log.append(Op(self.name, "restart", kernel_id))
            return kernel.model()

    def interrupt_kernel(self, kernel_id: str) -> None:
        with self._lock:
            kernel = self._get(kernel_id)
            if kernel.execution_state == "busy":
                kernel.execution_state = "idle"
                kernel.last_activity = self._clock()
            self.log.append(Op(self.name, "interrupt", kernel_id))

    def shutdown_kernel(self, kernel_id: str) -> None:
        with self._lock:
            self._get(kernel_id)
            del self.kernels[kernel_id]
            self.sessions = [s for s in self.sessions if s.kernel_id != kernel_id]
            self.log.append(Op(self.name, "shutdown", kernel_id))

    def _get(self, kernel_id: str) -> FakeKernel:
        kernel = self.kernels.get(kernel_id)
        if kernel is None:
            raise KernelNotFound(
                f"no kernel {kernel_id} on the server", server=self.server, kernel_id=kernel_id
            )
        return kernel


class MemoryStore(MemoryStateStore):
    """The in-memory backend, with ``writes``: every state stored, in order."""

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.writes: list[State] = []

    def _replace(self, state: State, *, previous: State | None) -> None:
        super()._replace(state, previous=previous)
        self.writes.append(state)

    def _append(self, base: State, written: State, puts: list[Resource], drops: list[str]) -> None:
        super()._append(base, written, puts, drops)
        if self.state is written:  # (otherwise _replace has recorded it)
            self.writes.append(written)

    def read(self) -> State:
        assert self.state is not None
        return self.state
