"""A real JupyterHub for the tests, and plain-HTTP helpers around it.

kernelform manages the kernels of a hub's users through the hub's proxy
(``{hub}/user/NAME/api/...``) with a service token; these tests need a hub that
behaves exactly like a real one, because what its API answers to a token without
some scope, to a stopped server, or to a websocket through the proxy is the
contract the feature is built on.

``launch_hub(workdir, users=..., groups=...)`` starts ``python -m jupyterhub``
with:

* PyPI ``configurable-http-proxy`` (the Python implementation; JupyterHub
  drives it exactly as the Node one) as the proxy;
* ``SimpleLocalProcessSpawner`` running ``python -m jupyterhub.singleuser`` from
  this interpreter (``--allow-root`` as root, as in CI), one home, root and set
  of ``JUPYTER_*`` directories per user under *workdir* (the runtime one, which
  holds the kernels' IPC sockets, under a short ``socket_dir``; the developer's own
  Jupyter config and kernelspecs are never read), with the kernelspecs
  ``python3`` (this interpreter's ipykernel), ``broken`` (exits at once) and
  ``light`` (``sleep infinity``: a "kernel" the server manages like any other
  for no cost);
* ``DummyAuthenticator`` with the given users allowed, groups from
  ``load_groups``, sqlite db, cookie secret and pid files in *workdir*, every
  port a free loopback one;
* one service per entry of ``SERVICES``: ``MANAGER`` with exactly the scopes a
  kernel manager needs (``MANAGER_SCOPES``), for each of those scopes a
  crippled service that lacks it (``Hub.token_without(scope)``), and ``BLIND``,
  which sees users but not their servers' status (``hub.tokens[BLIND]``).

Every helper talks to the hub with plain ``requests`` (never through
kernelform). Helpers that only look (``kernels``, ``last_activity``) send
``no_track_activity=1`` so that they do not count as user activity.

Processes: the hub, its proxy, each single-user server and each kernel run in
sessions of their own. ``Hub.stop()`` collects the whole process tree first,
sends SIGTERM to the hub (which stops the servers and the proxy), then kills
whatever of that tree is left and any process still working under *workdir*.
``Hub.kill_server(name)`` kills one user's server and its kernels behind the
hub's back. Hubs still running at exit or on SIGTERM are stopped like servers of
``tests.support.live_jupyter``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from websockets.sync.client import connect as ws_connect

from tests.support.live_jupyter import (
    BROKEN_SPEC,
    LIGHT_SPEC,
    PYTHON3_SPEC,
    REQUEST_TIMEOUT,
    clean_env,
    forget_at_exit,
    free_port,
    redact,
    signal_group,
    socket_dir,
    stop_at_exit,
    wait_for,
    write_kernelspec,
)

HUB_START_TIMEOUT = 60.0
SPAWN_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

KERNELSPECS: Mapping[str, Mapping[str, Any]] = {
    "python3": PYTHON3_SPEC,
    "broken": BROKEN_SPEC,
    "light": LIGHT_SPEC,
}

PAGINATION = "application/jupyterhub-pagination+json"
"""The ``Accept`` value that makes list endpoints answer ``{items, _pagination}``."""

MANAGER = "kf-manager"
MANAGER_SCOPES = (
    "list:users",  # GET /hub/api/users
    "read:users",  # user models (groups, activity)
    "read:servers",  # the servers in user models
    "access:servers",  # {hub}/user/NAME/... through the proxy
    "read:groups",  # GET /hub/api/groups/NAME (members)
    "servers",  # POST/DELETE /hub/api/users/NAME/server
)

# A crippled role must not get its missing scope back through a broader one it
# keeps: "servers" includes "read:servers", so without read:servers it keeps the
# other parts of "servers" instead.
_BROADER = {"read:servers": {"servers": ("start:servers", "delete:servers")}}


def scopes_without(missing: str) -> tuple[str, ...]:
    """The manager's scopes less *missing* (and less any scope that includes it)."""
    replaced = _BROADER.get(missing, {})
    scopes: list[str] = []
    for scope in MANAGER_SCOPES:
        if scope != missing:
            scopes.extend(replaced.get(scope, (scope,)))
    return tuple(scopes)


def crippled_service(missing: str) -> str:
    """The name of the service whose token has every manager scope but *missing*."""
    return "kf-without-" + missing.replace(":", "-")


GROUPS_ADMIN = "kf-groups-admin"
"""Changes groups' members, as a hub admin would between a plan and its apply."""

BLIND = "kf-blind"
"""A service that may list and reach servers but not see whether they run: neither
``read:servers`` nor ``read:users`` (so user models carry no server status)."""

SERVICES: Mapping[str, tuple[str, ...]] = {
    MANAGER: MANAGER_SCOPES,
    **{crippled_service(scope): scopes_without(scope) for scope in MANAGER_SCOPES},
    BLIND: ("list:users", "access:servers", "read:groups"),
    GROUPS_ADMIN: ("groups",),
}

# Passed to every single-user server: a crashing kernel is dropped after ~3 s
# instead of 18 s, and a `light` kernel (which ignores shutdown_request) is killed
# 0.5 s after it was asked to stop instead of 5 s.
SINGLEUSER_ARGS = (
    "--KernelRestarter.time_to_dead=0.5",
    "--KernelManager.shutdown_wait_time=0.5",
    "--KernelManager.transport=ipc",  # see live_jupyter.SERVER_ARGS
)

# Variables that would make the hub, its proxy or a server part of another hub
# (when the suite runs inside a JupyterHub single-user server, for instance).
_FOREIGN_PREFIXES = ("JUPYTERHUB_", "JPY_", "CONFIGPROXY_")

_CONFIG = '''\
"""Written by tests/support/live_hub.py: a throw-away JupyterHub for kernelform's tests."""
import json
import os
from pathlib import Path

from traitlets.config import Config

settings = json.loads(Path({settings!r}).read_text())
c = get_config()  # noqa: F821
c.merge(Config(settings["config"]))


def _user_dir(template):
    return lambda spawner: template.replace(settings["user_placeholder"], spawner.user.name)


c.Spawner.environment = {{
    **settings["environment"],
    **{{name: _user_dir(template) for name, template in settings["user_dirs"].items()}},
}}
'''

# Environment variable of a single-user server -> its per-user directory (the
# runtime directory, where kernel sockets live, is elsewhere: see ``socket_dir``).
_USER_DIRS = {
    "JUPYTER_CONFIG_DIR": "config",
    "JUPYTER_DATA_DIR": "data",
    "IPYTHONDIR": "ipython",
}


# Stands for the user's name in the directories of ``settings.json``.
_USER = "{user}"


class HubStartError(RuntimeError):
    """The hub did not come up; the message carries its log."""


@dataclass(frozen=True)
class Spawn:
    """How a server start went: the hub's status (201 or 202) and the time until ready."""

    status: int
    seconds: float


@dataclass(eq=False)
class Hub:
    """One running JupyterHub (with its proxy) and what is needed to talk to it.

    ``url`` is the proxy's public URL and ends in ``/``; ``tokens`` maps every
    service of ``SERVICES`` to its token.
    """

    url: str
    tokens: Mapping[str, str] = field(repr=False)
    users: tuple[str, ...] = field(repr=False)
    groups: Mapping[str, tuple[str, ...]] = field(repr=False)
    workdir: Path = field(repr=False)
    runtime_base: Path = field(repr=False)
    log_path: Path = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    http: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.http.trust_env = False  # no proxy from the environment for loopback

    @property
    def token(self) -> str:
        """The manager service's token (every scope of ``MANAGER_SCOPES``)."""
        return self.tokens[MANAGER]

    def token_without(self, scope: str) -> str:
        """A token with every manager scope except *scope*."""
        return self.tokens[crippled_service(scope)]

    @property
    def api_url(self) -> str:
        return self.url + "hub/api/"

    # -- plain HTTP ------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
        **kwargs: Any,
    ) -> requests.Response:
        """A raw request to ``{url}{path}`` with ``Authorization: token ...``.

        *token* overrides the manager's token (``""`` sends no header). Redirects
        are not followed unless ``allow_redirects=True`` is passed. The response is
        returned whatever its status.
        """
        headers = dict(kwargs.pop("headers", None) or {})
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"token {token}"
        kwargs.setdefault("allow_redirects", False)
        return self.http.request(
            method, self.url + path.lstrip("/"), headers=headers, timeout=timeout, **kwargs
        )

    def hub_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A raw request to ``{url}hub/api/{path}`` (see ``request``)."""
        return self.request(method, "hub/api/" + path.lstrip("/"), **kwargs)

    def hub_json(
        self, method: str, path: str, *, expect: int | Sequence[int] = 200, **kwargs: Any
    ) -> Any:
        """Like ``hub_api`` but asserts the status and returns the decoded JSON (or None)."""
        return _json_of(self.hub_api(method, path, **kwargs), expect, f"{method} hub/api/{path}")

    def server_url(self, user: str) -> str:
        """The user's (default) server through the proxy; ends in ``/``."""
        return f"{self.url}user/{user}/"

    def server_api(self, user: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A raw request to the user's server through the proxy (see ``request``)."""
        return self.request(method, f"user/{user}/{path.lstrip('/')}", **kwargs)

    def server_json(
        self,
        user: str,
        method: str,
        path: str,
        *,
        expect: int | Sequence[int] = 200,
        **kwargs: Any,
    ) -> Any:
        """Like ``server_api`` but asserts the status and returns the decoded JSON (or None)."""
        what = f"{method} user/{user}/{path}"
        return _json_of(self.server_api(user, method, path, **kwargs), expect, what)

    # -- users and their servers ------------------------------------------------------

    def user_model(self, user: str) -> dict[str, Any]:
        return dict(self.hub_json("GET", f"users/{user}"))

    def is_running(self, user: str) -> bool:
        """Whether the hub says the user's default server is running and ready."""
        server = self.user_model(user)["servers"].get("")
        return bool(server and server["ready"])

    def start_server(self, user: str, *, timeout: float = SPAWN_TIMEOUT) -> Spawn:
        """Start the user's server with the manager's token and wait until it answers.

        The hub answers 201 when the server came up within its ``slow_spawn_timeout``
        and 202 while it is still pending; then the user model is polled until the
        server is ready. Either way this returns once ``api/status`` answers through
        the proxy.
        """
        begin = time.monotonic()
        response = self.hub_api("POST", f"users/{user}/server", timeout=timeout)
        assert response.status_code in (201, 202), (
            f"POST hub/api/users/{user}/server: HTTP {response.status_code} {response.text[:300]}"
        )
        self.wait_server_ready(user, timeout=timeout - (time.monotonic() - begin))
        return Spawn(status=response.status_code, seconds=time.monotonic() - begin)

    def wait_server_ready(self, user: str, *, timeout: float = SPAWN_TIMEOUT) -> None:
        """Wait until the hub says ready and the server answers through the proxy."""

        def ready() -> bool:
            model = self.user_model(user)
            server = model["servers"].get("")
            if server is None and model["pending"] is None:
                raise AssertionError(f"{user}'s server stopped while starting:\n{self.log_tail()}")
            if not (server and server["ready"]):
                return False
            status = self.server_api(user, "GET", "api/status", params=_NO_TRACK, timeout=5)
            return status.status_code == 200

        wait_for(ready, timeout=timeout, what=f"{user}'s server to be ready")

    def stop_server(self, user: str, *, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the user's server through the hub (204, or 202 then poll) until stopped."""
        response = self.hub_api("DELETE", f"users/{user}/server", timeout=timeout)
        assert response.status_code in (202, 204), (
            f"DELETE hub/api/users/{user}/server: HTTP {response.status_code} {response.text[:300]}"
        )
        self.wait_stopped(user, timeout=timeout)

    def wait_stopped(self, user: str, *, timeout: float = STOP_TIMEOUT) -> None:
        """Wait until the hub says the user's server is stopped (and nothing is pending)."""

        def stopped() -> bool:
            model = self.user_model(user)
            return model["server"] is None and model["pending"] is None

        wait_for(stopped, timeout=timeout, what=f"the hub to see {user}'s server stopped")

    def server_pid(self, user: str) -> int | None:
        """The pid of the user's single-user server, from its ``jpserver-PID.json``."""
        runtime = self.runtime_dir(user)
        for info in sorted(runtime.glob("jpserver-*.json")):
            with contextlib.suppress(OSError, ValueError, KeyError):
                pid = int(json.loads(info.read_text())["pid"])
                if psutil.pid_exists(pid):
                    return pid
        return None

    def kill_server(self, user: str) -> None:
        """SIGKILL the user's server and its kernels behind the hub's back.

        The hub still believes the server runs until its next poll of the process.
        """
        pid = self.server_pid(user)
        assert pid is not None, f"{user} has no running server to kill"
        server = psutil.Process(pid)
        _kill_all([server, *server.children(recursive=True)])
        for info in self.runtime_dir(user).glob("jpserver-*"):
            info.unlink(missing_ok=True)

    def user_dir(self, user: str) -> Path:
        """The user's directory: ``home``, ``root`` (the server's root), ``data``..."""
        return self.workdir / "users" / user

    def runtime_dir(self, user: str) -> Path:
        """The user's Jupyter runtime directory (its server's and kernels' files)."""
        return self.runtime_base / user

    # -- kernels on a user's server (through the proxy) ---------------------------------

    def kernels(self, user: str) -> list[dict[str, Any]]:
        return list(self.server_json(user, "GET", "api/kernels", params=_NO_TRACK))

    def start_kernel(self, user: str, name: str = "light") -> dict[str, Any]:
        """Start a kernel with a plain POST; returns its model (asserts 201)."""
        body = {"name": name}
        return dict(self.server_json(user, "POST", "api/kernels", json=body, expect=201))

    def shutdown_kernel(self, user: str, kernel_id: str) -> None:
        self.server_json(user, "DELETE", f"api/kernels/{kernel_id}", expect=(204, 404))

    def cleanup_kernels(self, user: str) -> None:
        """Shut down every kernel on the user's (running) server."""
        for kernel in self.kernels(user):
            self.shutdown_kernel(user, kernel["id"])

    def websocket_url(self, user: str, kernel_id: str) -> str:
        """The kernel's channels websocket on the user's server, through the proxy."""
        base = "ws" + self.server_url(user).removeprefix("http")
        return f"{base}api/kernels/{kernel_id}/channels"

    def kernel_info(
        self, user: str, kernel_id: str, *, token: str | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """One ``kernel_info`` round trip over the kernel's websocket through the proxy.

        The token goes in the handshake's ``Authorization`` header; no subprotocol is
        asked for, so messages are JSON text frames. Returns the ``kernel_info_reply``.
        Raises ``websockets.exceptions.InvalidStatus`` when the handshake is refused.
        """
        token = self.token if token is None else token
        headers = {"Authorization": f"token {token}"} if token else {}
        msg_id = uuid.uuid4().hex
        request = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "kernel_info_request",
                "session": uuid.uuid4().hex,
                "username": "kernelform-tests",
                "date": "",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {},
            "channel": "shell",
            "buffers": [],
        }
        deadline = time.monotonic() + timeout
        with ws_connect(
            self.websocket_url(user, kernel_id),
            additional_headers=headers,
            proxy=None,  # loopback: no proxy from the environment
            open_timeout=timeout,
        ) as socket:
            socket.send(json.dumps(request))
            while True:
                message: dict[str, Any] = json.loads(
                    socket.recv(timeout=max(0.0, deadline - time.monotonic()))
                )
                reply_to = message["parent_header"].get("msg_id")
                if message["channel"] == "shell" and reply_to == msg_id:
                    return message

    def last_activity(self, user: str) -> str:
        """The server's own ``last_activity`` (``GET api/status``, which does not move it)."""
        status = self.server_json(user, "GET", "api/status", params=_NO_TRACK)
        return str(status["last_activity"])

    # -- the processes ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no hub log: {e})"
        for token in self.tokens.values():
            text = redact(text, token)
        return "\n".join(text.splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        """The hub and everything it started (proxy, servers, their kernels)."""
        try:
            hub = psutil.Process(self.process.pid)
            return [hub, *hub.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def leftovers(self) -> list[psutil.Process]:
        """Processes working under the hub's directory: the hub, proxy, servers, kernels.

        Unlike ``processes`` this also finds a kernel whose server died and left it
        behind (it is then no longer in the hub's process tree).
        """
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if Path(process.cwd()).is_relative_to(self.workdir) and _alive(process):
                    found.append(process)
        return found

    def stop(self) -> list[str]:
        """Stop the hub (it stops servers and proxy), then kill whatever is left.

        First what is left of the hub's process tree, then any process still
        working under the hub's directory: a stray, such as a kernel orphaned by a
        server killed without ``kill_server``. Returns the strays it had to kill
        (``pid command``), which a test can assert to be none.
        """
        forget_at_exit(self)
        tree = self.processes()
        if self.process.poll() is None:
            signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                signal_group(self.process, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        signal_group(self.process, signal.SIGKILL)
        _kill_all(tree)
        strays = self.leftovers()
        described = [f"{p.pid} {' '.join(_cmdline(p)[:3])}" for p in strays]
        _kill_all(strays)
        self.http.close()
        shutil.rmtree(self.runtime_base, ignore_errors=True)
        return described


_NO_TRACK = {"no_track_activity": "1"}


def _json_of(response: requests.Response, expect: int | Sequence[int], what: str) -> Any:
    expected = (expect,) if isinstance(expect, int) else tuple(expect)
    assert response.status_code in expected, (
        f"{what}: expected HTTP {expected}, got {response.status_code}: {response.text[:500]}"
    )
    return response.json() if response.content else None


def _kill_all(processes: Iterable[psutil.Process]) -> None:
    """SIGKILL each process still alive (psutil checks a pid was not reused); wait until dead.

    A process that is not our child stays a zombie until its parent reaps it (the
    hub reaps a server only at its next poll): a zombie counts as dead here.
    """
    killed = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
            killed.append(process)
    wait_for(
        lambda: not any(_alive(process) for process in killed),
        timeout=STOP_TIMEOUT,
        interval=0.02,
        what=f"processes {[p.pid for p in killed]} to die",
    )


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return list(process.cmdline())
    except psutil.Error:
        return ["?"]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def launch_hub(
    workdir: Path,
    *,
    users: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
    services: Mapping[str, Sequence[str]] = SERVICES,
    slow_spawn_timeout: float | None = None,
    poll_interval: int = 1,
    timeout: float = HUB_START_TIMEOUT,
    attempts: int = 3,
) -> Hub:
    """Start a JupyterHub under *workdir* and wait until its API answers through the proxy.

    *services* maps service names to their scopes (each gets a random token and a
    role). *slow_spawn_timeout* (the hub's default is 10 s) is how long
    ``POST .../server`` waits for a spawn before answering 202. *poll_interval*
    (the hub's default is 30 s) is how often the hub checks that each server's
    process is alive, so how long a killed server is still routed to. A start that fails
    because a chosen port was taken meanwhile is retried on new ports.
    """
    groups = dict(groups or {})
    for attempt in range(1, attempts + 1):
        hub = _spawn_hub(
            workdir.resolve() / f"hub-{attempt}",
            users=tuple(users),
            groups={name: tuple(members) for name, members in groups.items()},
            services=services,
            slow_spawn_timeout=slow_spawn_timeout,
            poll_interval=poll_interval,
        )
        try:
            _wait_until_up(hub, timeout)
        except HubStartError:
            hub.stop()
            if attempt < attempts and "address already in use" in hub.log_tail(200).lower():
                continue
            raise
        return hub
    raise AssertionError("unreachable")


def _spawn_hub(
    workdir: Path,
    *,
    users: tuple[str, ...],
    groups: dict[str, tuple[str, ...]],
    services: Mapping[str, Sequence[str]],
    slow_spawn_timeout: float | None,
    poll_interval: int,
) -> Hub:
    users_dir = workdir / "users"
    runtime_base = socket_dir(workdir)
    for user in users:
        for kind in ("home", "root", *_USER_DIRS.values()):
            (users_dir / user / kind).mkdir(parents=True, exist_ok=True)
        (runtime_base / user).mkdir(mode=0o700, exist_ok=True)
        for name, spec in KERNELSPECS.items():
            write_kernelspec(users_dir / user / "data", name, dict(spec))

    tokens = {name: secrets.token_hex(24) for name in services}
    public_port, hub_port, proxy_api_port = free_port(), free_port(), free_port()
    singleuser_args = list(SINGLEUSER_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        singleuser_args.append("--allow-root")
    tornado_settings = {}
    if slow_spawn_timeout is not None:
        tornado_settings["slow_spawn_timeout"] = slow_spawn_timeout
    config = {
        "JupyterHub": {
            "bind_url": f"http://127.0.0.1:{public_port}/",
            "hub_bind_url": f"http://127.0.0.1:{hub_port}",
            "db_url": f"sqlite:///{workdir / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(workdir / "jupyterhub_cookie_secret"),
            "pid_file": str(workdir / "jupyterhub.pid"),
            "authenticator_class": "dummy",
            "spawner_class": "jupyterhub.spawner.SimpleLocalProcessSpawner",
            "load_groups": {name: {"users": list(members)} for name, members in groups.items()},
            "services": [{"name": name, "api_token": tokens[name]} for name in services],
            "load_roles": [
                {"name": f"{name}-role", "scopes": list(scopes), "services": [name]}
                for name, scopes in services.items()
            ],
            "tornado_settings": tornado_settings,
        },
        "Authenticator": {"allowed_users": list(users)},
        "ConfigurableHTTPProxy": {
            "command": [str(Path(sys.executable).parent / "configurable-http-proxy")],
            "api_url": f"http://127.0.0.1:{proxy_api_port}",
            "pid_file": str(workdir / "proxy.pid"),
        },
        "Spawner": {
            "cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
            "args": singleuser_args,
            "ip": "127.0.0.1",
            "notebook_dir": str(users_dir / "{username}" / "root"),
            # What the server inherits from the hub; no JUPYTER_* variable is listed.
            "env_keep": ["PATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "PYTHONPATH"],
            "poll_interval": poll_interval,
        },
        "SimpleLocalProcessSpawner": {"home_dir_template": str(users_dir / "{username}" / "home")},
    }
    settings = {
        "config": config,
        "user_placeholder": _USER,
        "user_dirs": {
            "JUPYTER_RUNTIME_DIR": str(runtime_base / _USER),
            **{name: str(users_dir / _USER / kind) for name, kind in _USER_DIRS.items()},
        },
        # Search the user's data dir before the venv's share/jupyter (see live_jupyter).
        "environment": {"JUPYTER_PREFER_ENV_PATH": "0", "PYTHONUNBUFFERED": "1"},
    }
    settings_path = workdir / "settings.json"
    settings_path.touch(mode=0o600)  # it holds the service tokens
    settings_path.write_text(json.dumps(settings, indent=1))
    config_path = workdir / "jupyterhub_config.py"
    config_path.write_text(_CONFIG.format(settings=str(settings_path)))

    env = {k: v for k, v in clean_env().items() if not k.startswith(_FOREIGN_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    log_path = workdir / "hub.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config_path)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = Hub(
        url=f"http://127.0.0.1:{public_port}/",
        tokens=tokens,
        users=users,
        groups=groups,
        workdir=workdir,
        runtime_base=runtime_base,
        log_path=log_path,
        process=process,
    )
    stop_at_exit(hub)
    return hub


def _wait_until_up(hub: Hub, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not hub.running:
            raise HubStartError(
                f"jupyterhub exited with status {hub.process.returncode} before answering; "
                f"its log:\n{hub.log_tail(200)}"
            )
        try:
            response = hub.hub_api("GET", "", timeout=2)
        except requests.RequestException as e:
            last = type(e).__name__
        else:
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        time.sleep(0.1)
    raise HubStartError(
        f"jupyterhub did not answer GET {hub.api_url} within {timeout:g}s (last: {last}); "
        f"its log:\n{hub.log_tail(200)}"
    )
