"""The Jupyter server generations kernelform claims, and what each one does.

Why: one table, read by the fixtures (how to build and start each server) and
by the scenario (what to expect where the generations differ), so that a
difference is stated once, as a measured fact, and checked on every run.

The expectations were measured on these exact versions (see
``requirements/``); the scenario fails when a server stops behaving so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.matrix.venvs import ensure_venv
from tests.support.live_jupyter import (
    JUPYTER_SERVER,
    LIGHT_SPEC,
    JupyterServer,
    ServerApp,
    launch,
    write_kernelspec,
)

# A short wait for kernels that ignore the shutdown request (the ``light`` spec):
# jupyter_client waits this long before it kills the process (default 5 s).
COMMON_ARGS = ("--KernelManager.shutdown_wait_time=0.5",)

GATEWAY_API = "--KernelGatewayApp.api=kernel_gateway.jupyter_websocket"
GATEWAY_LISTING = "--JupyterWebsocketPersonality.list_kernels=True"


@dataclass(frozen=True)
class Generation:
    """One server generation: how to run it, and how it differs."""

    id: str
    label: str
    venv: str | None  # requirements/VENV.txt; None: the test suite's own environment
    module: str = "jupyter_server"
    config_class: str = "ServerApp"
    root_option: str | None = "root_dir"
    token_env: str = "JUPYTER_TOKEN"
    ready_path: str = "api/status"
    no_browser: bool = True
    allow_root: bool = True
    extra_args: tuple[str, ...] = ()
    base_url: str = "/"
    # What differs (measured):
    kernel_id_honoured: bool = False  # POST api/kernels starts a client-chosen kernel_id
    path_honoured: bool = True  # the kernel runs in the `path` asked for (else the server's cwd)
    session_attaches: bool = True  # POST api/sessions with kernel.id uses that kernel
    api_status: bool = True  # GET api/status exists

    def app(self) -> ServerApp:
        python = str(ensure_venv(self.venv).python) if self.venv else JUPYTER_SERVER.python
        return ServerApp(
            python=python,
            module=self.module,
            config_class=self.config_class,
            root_option=self.root_option,
            token_env=self.token_env,
            ready_path=self.ready_path,
            no_browser=self.no_browser,
            allow_root=self.allow_root,
            extra_args=self.extra_args,
        )

    def launch(self, workdir: Path, *, extra_args: tuple[str, ...] = ()) -> JupyterServer:
        return launch(
            workdir,
            base_url=self.base_url,
            extra_args=(*COMMON_ARGS, *extra_args),
            app=self.app(),
        )


def _latest_takes_kernel_id() -> bool:
    import jupyter_server

    major, minor = (int(n) for n in jupyter_server.__version__.split(".")[:2])
    return (major, minor) >= (2, 21)


NOTEBOOK_6 = Generation(
    id="notebook6",
    label="Notebook 6 (classic)",
    venv="notebook-6.5.7",
    module="notebook",
    config_class="NotebookApp",
    root_option="notebook_dir",
    path_honoured=False,
)
JUPYTER_SERVER_1 = Generation(
    id="server1",
    label="jupyter_server 1.x (JupyterLab 3)",
    venv="jupyter_server-1.24.0",
)
JUPYTER_SERVER_2_14 = Generation(
    id="server2.14",
    label="jupyter_server 2.x before 2.21",
    venv="jupyter_server-2.14.2",
)
JUPYTER_SERVER_LATEST = Generation(
    id="server-latest",
    label="jupyter_server (latest; JupyterLab 4)",
    venv=None,
    kernel_id_honoured=_latest_takes_kernel_id(),
)
NOTEBOOK_7 = Generation(
    id="notebook7",
    label="Notebook 7",
    venv="notebook-7.6.5",
    module="notebook",
    kernel_id_honoured=True,
)
BASE_URL = Generation(
    id="base-url",
    label="jupyter_server (latest) under a base_url",
    venv=None,
    base_url="/prefix/",
    kernel_id_honoured=_latest_takes_kernel_id(),
)
KERNEL_GATEWAY = Generation(
    id="gateway",
    label="Jupyter Kernel Gateway 3",
    venv="kernel_gateway-3.0.1",
    module="kernel_gateway",
    config_class="KernelGatewayApp",
    root_option=None,
    token_env="KG_AUTH_TOKEN",
    ready_path="api",
    no_browser=False,
    allow_root=False,
    extra_args=(GATEWAY_API, GATEWAY_LISTING),
    kernel_id_honoured=True,
    session_attaches=False,
    api_status=False,
)


@dataclass
class Timing:
    """Seconds spent on one generation: venv build (0 when cached), start, use."""

    build: float = 0.0
    start: float = 0.0
    use: float = 0.0


TIMINGS: dict[str, Timing] = {}


@contextlib.contextmanager
def running(
    generation: Generation, workdir: Path, *, label: str, extra_args: tuple[str, ...] = ()
) -> Iterator[JupyterServer]:
    """The generation's server, with the ``light`` spec, timed under *label*; stopped after."""
    timing = TIMINGS.setdefault(label, Timing())
    if generation.venv:
        timing.build = ensure_venv(generation.venv).build_seconds
    started = time.monotonic()
    server = generation.launch(workdir, extra_args=extra_args)
    timing.start = time.monotonic() - started
    write_kernelspec(server.data_dir, "light", LIGHT_SPEC)
    try:
        yield server
    finally:
        if server.running:
            with contextlib.suppress(Exception):
                server.cleanup(timeout=10)
        server.stop()
        timing.use = time.monotonic() - started - timing.start


GENERATIONS = (
    NOTEBOOK_6,
    JUPYTER_SERVER_1,
    JUPYTER_SERVER_2_14,
    JUPYTER_SERVER_LATEST,
    NOTEBOOK_7,
    BASE_URL,
    KERNEL_GATEWAY,
)
