"""A real ``jupyter server`` for the tests, and plain-HTTP helpers around it.

``launch(workdir)`` starts ``python -m jupyter_server`` from the running
interpreter on a free loopback port, with a random token, a temporary root
directory and temporary Jupyter runtime/config/data directories (so that the
user's own Jupyter configuration and kernelspecs are never read). With
``app=`` it starts another kind of server the same way (the classic notebook,
Notebook 7, the Kernel Gateway, from another interpreter: see ``ServerApp``).
Two kernelspecs are installed into the temporary data directory:

* ``python3``: this interpreter's ipykernel (``sys.executable -m ipykernel_launcher``);
* ``broken``: a kernel whose process exits at once. The server still answers the
  start with 201 "starting"; its restarter then retries 5 times and drops the
  kernel (after about 3 s here, see ``SERVER_ARGS``).
* ``mute``: a kernel whose process runs (sleeps an hour) but never opens its
  sockets: it stays "starting" and answers nothing.

Every helper here talks to the server with plain ``requests`` (never through
kernelform), so tests can set up and check the world independently of the
code under test.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import requests

T = TypeVar("T")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0
NOTEBOOK_PATH = "nb/analysis.ipynb"

# Added to every server's command line. The server's restarter polls a kernel's
# process every `time_to_dead` seconds (default 3) and, when it died, restarts it up
# to 5 times before dropping it; 0.5 s makes a crashing kernel (the `broken` spec)
# vanish after about 3 s instead of 18 s, without changing what happens.
#
# Kernels talk to their server over IPC sockets, not TCP. Over TCP, jupyter_client
# picks a kernel's five ports by binding port 0 and closing it again; a connection
# opened anywhere on the machine before the kernel binds can take one of them
# (jupyter_client#487), and the kernel dies at birth ("Address already in use"):
# seen in CI, where the suite opens connections all the time. kernelform cannot
# tell the difference: it talks to the server over HTTP and websockets only.
SERVER_ARGS = ("--KernelRestarter.time_to_dead=0.5", "--KernelManager.transport=ipc")

# Environment variables that would point the child at the user's own Jupyter setup.
_SCRUBBED_ENV = (
    "JUPYTER_PATH",
    "JUPYTER_CONFIG_PATH",
    "JUPYTER_TOKEN",
    "JUPYTER_PREFER_ENV_PATH",
    "JUPYTER_PLATFORM_DIRS",
    "JUPYTER_PORT",
    "JUPYTER_PORT_RETRIES",
    "JPY_SESSION_NAME",
    "PYTHONSTARTUP",
)


class Stoppable(Protocol):
    """Anything the suite starts that must not outlive it (a server, a hub)."""

    def stop(self) -> object: ...


_RUNNING: set[Stoppable] = set()


@dataclass(frozen=True)
class ServerApp:
    """How to start one kind of Jupyter server: ``PYTHON -m MODULE`` and its options.

    The defaults are ``jupyter_server`` from this interpreter. Servers of other
    generations differ in their configurable class (``NotebookApp`` for the
    classic notebook 6, ``KernelGatewayApp``), in the option naming the root
    directory (none on the gateway, which runs kernels in its working dir), in
    where they read the token from, and in which URL answers once they are up.
    """

    python: str = sys.executable
    module: str = "jupyter_server"
    config_class: str = "ServerApp"
    root_option: str | None = "root_dir"
    token_env: str = "JUPYTER_TOKEN"
    ready_path: str = "api/status"
    no_browser: bool = True
    allow_root: bool = True
    extra_args: tuple[str, ...] = ()


JUPYTER_SERVER = ServerApp()


class ServerStartError(RuntimeError):
    """The jupyter server did not come up; the message carries its log."""


def socket_dir(workdir: Path) -> Path:
    """A short directory of its own for *workdir*'s Jupyter runtime files.

    With the IPC transport a kernel's sockets are named after its connection
    file (``RUNTIME/kernel-UUID-ipc-N``), and a Unix socket's path may not exceed
    107 bytes: under pytest's temporary directories it would. The same *workdir*
    always gets the same directory, so a server started again finds its files.
    """
    digest = hashlib.sha1(str(workdir.resolve()).encode()).hexdigest()[:12]
    directory = Path(tempfile.gettempdir()) / f"kf-{digest}"
    directory.mkdir(mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    return directory


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_at_exit(thing: Stoppable) -> None:
    """Stop *thing* when the test process exits or gets SIGTERM, unless stopped before."""
    _install_sigterm_handler()
    _RUNNING.add(thing)


def forget_at_exit(thing: Stoppable) -> None:
    """*thing* was stopped: nothing left to do at exit."""
    _RUNNING.discard(thing)


def clean_env() -> dict[str, str]:
    """This process's environment less what points a child at the user's own Jupyter setup."""
    return {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call *probe* until it returns something other than None (or falsy); return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or probe}")
        time.sleep(interval)


@dataclass(eq=False)
class JupyterServer:
    """One running jupyter server process and what is needed to talk to it.

    ``url`` always ends in ``/`` and includes the ``base_url`` prefix.
    """

    url: str
    token: str = field(repr=False)
    port: int = field(repr=False)
    base_url: str = field(repr=False)
    root: Path = field(repr=False)
    log_path: Path = field(repr=False)
    runtime_dir: Path = field(repr=False)
    data_dir: Path = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    http: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.http.trust_env = False  # no proxy from the environment for loopback

    # -- plain REST access -------------------------------------------------------

    def api(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
        **kwargs: Any,
    ) -> requests.Response:
        """A raw request to ``{url}{path}`` with ``Authorization: token ...``.

        *token* overrides the server's token (``""`` sends no header at all).
        The response is returned whatever its status.
        """
        headers = dict(kwargs.pop("headers", None) or {})
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"token {token}"
        return self.http.request(
            method, self.url + path.lstrip("/"), headers=headers, timeout=timeout, **kwargs
        )

    def api_json(
        self, method: str, path: str, *, expect: int | Sequence[int] = 200, **kwargs: Any
    ) -> Any:
        """Like ``api`` but asserts the status and returns the decoded JSON (or None)."""
        expected = (expect,) if isinstance(expect, int) else tuple(expect)
        response = self.api(method, path, **kwargs)
        if method == "GET" and response.status_code == 500 and 500 not in expected:
            # jupyter_server answers a list read 500 when it meets a kernel whose start has
            # not set last_activity yet ("'last_activity' trait ... expected a datetime");
            # a read a moment later is fine. kernelform's client repeats such a GET too.
            time.sleep(0.2)
            response = self.api(method, path, **kwargs)
        assert response.status_code in expected, (
            f"{method} {path}: expected HTTP {expected}, got {response.status_code}: "
            f"{response.text[:500]}"
        )
        return response.json() if response.content else None

    def kernels(self) -> list[dict[str, Any]]:
        return list(self.api_json("GET", "api/kernels"))

    def kernel_ids(self) -> set[str]:
        return {k["id"] for k in self.kernels()}

    def kernel(self, kernel_id: str) -> dict[str, Any] | None:
        """The kernel's model, or None when the server does not know it."""
        response = self.api("GET", f"api/kernels/{kernel_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text[:500]
        return dict(response.json())

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.api_json("GET", "api/sessions"))

    def kernelspecs(self) -> dict[str, Any]:
        return dict(self.api_json("GET", "api/kernelspecs"))

    def version(self) -> str:
        return str(self.api_json("GET", "api")["version"])

    def start_kernel(self, name: str = "python3", path: str | None = None) -> dict[str, Any]:
        """Start a kernel with a plain POST; returns its model (asserts 201)."""
        body: dict[str, Any] = {"name": name}
        if path is not None:
            body["path"] = path
        return dict(self.api_json("POST", "api/kernels", json=body, expect=201))

    def shutdown_kernel(self, kernel_id: str) -> None:
        """Shut the kernel down with a plain DELETE (a kernel already gone is fine)."""
        self.api_json("DELETE", f"api/kernels/{kernel_id}", expect=(204, 404))

    def create_session(
        self,
        kernel_id: str | None = None,
        path: str = NOTEBOOK_PATH,
        *,
        kernel_name: str = "python3",
        type: str = "notebook",
    ) -> dict[str, Any]:
        """Open a real session on *path*, attached to *kernel_id*.

        Without *kernel_id* the server starts a new kernel of *kernel_name* for
        it. The directory of *path* is created under the root first (the
        notebook file itself need not exist). Returns the session model, whose
        ``kernel.id`` is the attached kernel.
        """
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        kernel: dict[str, str] = {"id": kernel_id} if kernel_id else {"name": kernel_name}
        body = {"path": path, "type": type, "name": Path(path).name, "kernel": kernel}
        session = dict(self.api_json("POST", "api/sessions", json=body, expect=201))
        if kernel_id is not None:
            assert session["kernel"]["id"] == kernel_id, session
        return session

    def delete_session(self, session_id: str) -> None:
        self.api_json("DELETE", f"api/sessions/{session_id}", expect=(204, 404))

    def wait_gone(self, kernel_id: str, *, timeout: float = 30.0) -> None:
        """Wait until the server no longer knows the kernel (GET answers 404)."""
        wait_for(
            lambda: self.kernel(kernel_id) is None,
            timeout=timeout,
            what=f"kernel {kernel_id} to disappear from the server",
        )

    def cleanup(self, *, timeout: float = 30.0) -> None:
        """Delete every session and shut down every kernel still on the server.

        A DELETE can answer 500 "Unhandled error" while the server's restarter is
        restarting a crashing kernel (the ``broken`` spec); those are retried
        until *timeout*.
        """
        deadline = time.monotonic() + timeout
        while True:
            sessions = self.sessions()
            kernel_ids = self.kernel_ids()
            if not sessions and not kernel_ids:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"cleanup left sessions {[s['id'] for s in sessions]} and "
                    f"kernels {sorted(kernel_ids)} on {self.url}"
                )
            for session in sessions:
                self.api_json("DELETE", f"api/sessions/{session['id']}", expect=(204, 404, 500))
            for kernel_id in kernel_ids:
                self.api_json("DELETE", f"api/kernels/{kernel_id}", expect=(204, 404, 500))
            time.sleep(0.05)

    # -- looking at kernels from outside the REST API ------------------------------

    def connection_file(self, kernel_id: str) -> Path:
        """The kernel's connection file, written by the server into its runtime dir."""
        return self.runtime_dir / f"kernel-{kernel_id}.json"

    @contextlib.contextmanager
    def kernel_client(self, kernel_id: str, *, timeout: float = 60.0) -> Iterator[Any]:
        """A ``jupyter_client`` blocking client on the kernel's ZMQ channels, ready.

        Waits (up to *timeout*) for the kernel to answer ``kernel_info``: use it
        to wait until a kernel is really up, or to run code in it.
        """
        from jupyter_client.blocking.client import BlockingKernelClient

        path = wait_for(
            lambda: self.connection_file(kernel_id).is_file() and self.connection_file(kernel_id),
            timeout=timeout,
            what=f"the connection file of kernel {kernel_id}",
        )
        client = BlockingKernelClient(connection_file=str(path))
        client.load_connection_file()
        # No heartbeat channel: it reports "beating" at once, then "dead" when the
        # first ping goes unanswered while a slow kernel is still importing, and
        # wait_for_ready would give up ("Kernel died before replying to kernel_info").
        # Without it, wait_for_ready keeps asking kernel_info until the timeout.
        client.start_channels(hb=False)
        try:
            client.wait_for_ready(timeout=timeout)
            yield client
        finally:
            client.stop_channels()

    def wait_ready(self, kernel_id: str, *, timeout: float = 60.0) -> None:
        """Block until the kernel answers ``kernel_info`` over ZMQ."""
        with self.kernel_client(kernel_id, timeout=timeout):
            pass

    def run_code(self, kernel_id: str, code: str, *, timeout: float = 60.0) -> Any:
        """Run *code* in the kernel and return the value of its last line.

        The last line must be an expression whose ``repr`` is a Python literal
        (a str, number, tuple, ...); the lines before it are run first.
        """
        import ast

        *body, expr = code.strip().splitlines() or ["None"]
        with self.kernel_client(kernel_id, timeout=timeout) as client:
            reply = client.execute_interactive(
                "\n".join(body),
                user_expressions={"value": expr},
                timeout=timeout,
                output_hook=_ignore,
            )
            assert reply["content"]["status"] == "ok", reply["content"]
            result = reply["content"]["user_expressions"]["value"]
            assert result["status"] == "ok", result
            return ast.literal_eval(result["data"]["text/plain"])

    # -- the process ---------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no server log: {e})"
        return "\n".join(redact(text, self.token).splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the server and everything in its process group (TERM, then KILL)."""
        forget_at_exit(self)
        if self.process.poll() is None:
            signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                signal_group(self.process, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        # Anything the server left in its group (not the kernels: they get their own
        # sessions and are shut down by the server on SIGTERM, or exit when it dies).
        signal_group(self.process, signal.SIGKILL)
        self.http.close()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


def shell_reply(kernel_client: Any, msg_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """The shell reply to request *msg_id*, skipping stale replies to earlier requests.

    (``wait_for_ready`` may leave extra ``kernel_info_reply`` messages queued.)
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no shell reply to {msg_id} within {timeout:g}s")
        reply: dict[str, Any] = kernel_client.get_shell_msg(timeout=left)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def _ignore(_msg: Any) -> None:
    return None


def redact(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def write_kernelspec(data_dir: Path, name: str, spec: dict[str, Any]) -> Path:
    """Install a kernelspec ``name`` into a Jupyter data directory."""
    directory = data_dir / "kernels" / name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kernel.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


PYTHON3_SPEC = {
    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "metadata": {"debugger": False},
}

# A kernel that only sleeps: the server starts, lists, restarts and shuts it down
# like any kernel, for a fraction of an ipykernel's cost (it never answers on ZMQ).
LIGHT_SPEC = {"argv": ["sleep", "infinity"], "display_name": "Light", "language": "none"}

# ipykernel after a 4 s sleep: a wait for it to answer is in flight for seconds.
SLOW_SPEC = {
    "argv": [
        sys.executable,
        "-c",
        "import runpy, sys, time; time.sleep(4); "
        "sys.argv = ['ipykernel_launcher', '-f', sys.argv[1]]; "
        "runpy.run_module('ipykernel_launcher', run_name='__main__')",
        "{connection_file}",
    ],
    "display_name": "Slow",
    "language": "python",
}

BROKEN_SPEC = {
    "argv": [sys.executable, "-c", "import sys; sys.exit(1)", "-f", "{connection_file}"],
    "display_name": "Broken",
    "language": "python",
}


MUTE_SPEC = {
    "argv": [sys.executable, "-c", "import time; time.sleep(3600)", "-f", "{connection_file}"],
    "display_name": "Mute",
    "language": "python",
}


def launch(
    workdir: Path,
    *,
    base_url: str = "/",
    token: str | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = START_TIMEOUT,
    attempts: int = 3,
    app: ServerApp = JUPYTER_SERVER,
    port: int | None = None,
    process_cwd: Path | None = None,
) -> JupyterServer:
    """Start a jupyter server (of kind *app*) under *workdir* and wait until it answers.

    The server process runs in its root directory, or in *process_cwd* (to tell
    where a kernel started without a path runs).

    A port taken between choosing it and the server binding it makes the start
    fail fast (``port_retries=0``); it is retried on a new port up to *attempts* times.
    With *port* (and the same *workdir* and *token*), a server stopped before is
    started again where its clients expect it; that port is not exchanged.
    """
    _install_sigterm_handler()
    for attempt in range(1, attempts + 1):
        server = _spawn(
            workdir,
            base_url=base_url,
            token=token,
            extra_args=extra_args,
            attempt=attempt,
            app=app,
            port=port,
            process_cwd=process_cwd,
        )
        try:
            _wait_until_up(server, timeout, ready_path=app.ready_path)
        except ServerStartError:
            server.stop()
            if port is None and attempt < attempts and _port_taken(server.log_tail(200)):
                continue
            raise
        return server
    raise AssertionError("unreachable")


def _port_taken(log: str) -> bool:
    # jupyter_server and notebook 6 say "is not available"; the gateway "already in use".
    return "is not available" in log or "is already in use" in log


def _spawn(
    workdir: Path,
    *,
    base_url: str,
    token: str | None,
    extra_args: Sequence[str],
    attempt: int,
    app: ServerApp = JUPYTER_SERVER,
    port: int | None = None,
    process_cwd: Path | None = None,
) -> JupyterServer:
    workdir = workdir.resolve()
    root = workdir / "root"
    runtime_dir = socket_dir(workdir)
    config_dir = workdir / "config"
    data_dir = workdir / "data"
    ipython_dir = workdir / "ipython"
    for directory in (root, config_dir, data_dir, ipython_dir):
        directory.mkdir(parents=True, exist_ok=True)
    write_kernelspec(data_dir, "python3", PYTHON3_SPEC)
    write_kernelspec(data_dir, "broken", BROKEN_SPEC)
    write_kernelspec(data_dir, "mute", MUTE_SPEC)

    token = token if token is not None else secrets.token_hex(24)
    port = port or free_port()
    if not base_url.startswith("/"):
        base_url = "/" + base_url
    if not base_url.endswith("/"):
        base_url += "/"

    env = clean_env()
    env.update(
        JUPYTER_RUNTIME_DIR=str(runtime_dir),
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_DATA_DIR=str(data_dir),
        IPYTHONDIR=str(ipython_dir),
        # The token goes through the environment, not argv, so `ps` does not show it.
        **{app.token_env: token},
        # Search the temporary data dir before the venv's share/jupyter, so that the
        # python3 spec written there (this interpreter, by absolute path) wins.
        JUPYTER_PREFER_ENV_PATH="0",
        PYTHONUNBUFFERED="1",
    )
    option = f"--{app.config_class}."
    argv = [
        app.python,
        "-m",
        app.module,
        *(["--no-browser"] if app.no_browser else []),
        f"{option}ip=127.0.0.1",
        f"{option}port={port}",
        f"{option}port_retries=0",
        *([f"{option}{app.root_option}={root}"] if app.root_option else []),
        f"{option}base_url={base_url}",
        *SERVER_ARGS,
        *app.extra_args,
        *extra_args,
    ]
    if app.allow_root and hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")

    log_path = workdir / f"server-{attempt}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=process_cwd or root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = JupyterServer(
        url=f"http://127.0.0.1:{port}{base_url}",
        token=token,
        port=port,
        base_url=base_url,
        root=root,
        log_path=log_path,
        runtime_dir=runtime_dir,
        data_dir=data_dir,
        process=process,
    )
    stop_at_exit(server)
    return server


def _wait_until_up(
    server: JupyterServer, timeout: float, *, ready_path: str = "api/status"
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not server.running:
            raise ServerStartError(
                f"jupyter server exited with status {server.process.returncode} "
                f"before answering; its log:\n{server.log_tail(200)}"
            )
        try:
            response = server.api("GET", ready_path, timeout=2)
        except requests.RequestException as e:
            last = type(e).__name__
        else:
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        time.sleep(0.1)
    raise ServerStartError(
        f"jupyter server did not answer GET {server.url}{ready_path} within {timeout:g}s "
        f"(last: {last}); its log:\n{server.log_tail(200)}"
    )


@atexit.register
def _stop_all() -> None:
    """Fallback: never leave a server behind, even when the test run crashes."""
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (a CI job cancelled) skips atexit: stop the servers, then die as asked."""
    _stop_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm_handler() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
