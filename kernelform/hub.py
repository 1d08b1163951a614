"""A small client for a JupyterHub's REST API, and for its users' servers behind its proxy.

Why its own client: a fleet (``hubs:`` in the manifest) is the set of servers
of a hub's selected users, and only the hub knows who those users are and
whether their servers run. ``HubClient`` asks it (``{hub}/hub/api/``): the
members of groups, user models (paginated with
``Accept: application/jupyterhub-pagination+json``), and starting a user's
default server. It shares ``kernelform.client.HttpClient``'s transport
(timeouts, TLS, retries of reads, the token only in the ``Authorization``
header, hooks), and turns the hub's answers into one clear error each:

* 403 ``Missing or invalid credentials.``: the token is wrong (``AuthError``);
* 403 ``Action is not authorized with current scopes; requires any of [...]``:
  a scope is missing; the error names the one the call needs
  (``MissingScope``);
* 404 on a group or user: ``UnknownOnHub``.

A user's server is reached through the hub's proxy at
``{hub}/user/NAME/`` with the same token (scope ``access:servers``).
``UserServerClient`` is the ``JupyterClient`` for it; it does not follow
redirects, because a stopped server answers a GET with a 302 to the hub
(then 424) and a write with the hub's HTML 403, and a killed one with the
proxy's 503: each becomes ``ServerStopped``, one line naming the user. Its
kernel websockets use JSON frames, which every proxy passes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from kernelform.client import HttpClient, JupyterClient, Query
from kernelform.endpoint import Framing
from kernelform.errors import (
    AuthError,
    BadResponse,
    ClientError,
    MissingScope,
    RequestTimeout,
    ServerError,
    ServerStopped,
    UnknownOnHub,
)
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.membership import ServerStatus
from kernelform.runtime import KernelIds, Timeouts

PAGINATION = "application/jupyterhub-pagination+json"
PAGE_SIZE = 200  # the most a hub gives in one page
POLL_INTERVAL = 0.5
_REFUSED = re.compile(r"requires any of \[([^\]]*)\]")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class HubServer(_Model):
    """One entry of a user model's ``servers`` (needs ``read:servers``)."""

    ready: bool = False
    pending: str | None = None
    stopped: bool = False


class HubUser(_Model):
    """A user model. What it holds depends on the token's scopes: ``servers``
    comes with ``read:servers``, ``server`` and ``pending`` with ``read:users``;
    with neither, nothing says whether the server runs."""

    name: str
    server: str | None = None
    pending: str | None = None
    servers: dict[str, HubServer] | None = None

    def status(self) -> ServerStatus | None:
        """The default server's status, or None when the model does not say."""
        if self.servers is not None:
            default = self.servers.get("")
            if default is None:
                return ServerStatus.STOPPED
            if default.ready and not default.pending:
                return ServerStatus.RUNNING
            return ServerStatus.STOPPED if default.stopped else ServerStatus.PENDING
        if "server" in self.model_fields_set or "pending" in self.model_fields_set:
            if self.pending:
                return ServerStatus.PENDING
            return ServerStatus.RUNNING if self.server else ServerStatus.STOPPED
        return None

    @property
    def pending_action(self) -> str | None:
        """``spawn`` or ``stop`` while the default server is pending, if the model says."""
        if self.servers is not None and "" in self.servers:
            return self.servers[""].pending
        return self.pending


class HubClient(HttpClient):
    """The REST API of one JupyterHub, at ``{url}hub/api/``.

    *name* is the hub's name in the manifest, used in messages; *page_size*
    how many users to ask for per page (the hub gives at most 200).
    """

    _wrong_url_hint = "is this a JupyterHub's public URL?"
    _service = "the JupyterHub"

    def __init__(
        self,
        url: str,
        token: str,
        *,
        name: str,
        timeouts: Timeouts | None = None,
        verify: bool | str = True,
        pool_size: int = 16,
        hooks: Hooks = NO_HOOKS,
        backoff: float = 0.2,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(
            url,
            token,
            timeouts=timeouts,
            verify=verify,
            pool_size=pool_size,
            hooks=hooks,
            backoff=backoff,
        )
        self.name = name
        self.page_size = page_size
        self.hub_url = self.base_url
        self.base_url = self.hub_url + "hub/api/"

    def user_server_url(self, user: str) -> str:
        """The URL of *user*'s default server through the hub's proxy; ends in ``/``."""
        return f"{self.hub_url}user/{quote(user, safe='@~')}/"

    # -- reading ---------------------------------------------------------------------

    def users(self) -> Iterator[HubUser]:
        """Every user of the hub, page by page (``list:users``)."""
        for page, _ in self.user_pages():
            yield from page

    def user_pages(self) -> Iterator[tuple[list[HubUser], int | None]]:
        """The hub's users, one page at a time, with the total the hub reports (if it does)."""
        offset = 0
        while True:
            body = self._hub_json(
                "GET",
                "users",
                params={"offset": offset, "limit": self.page_size},
                headers={"Accept": PAGINATION},
                scope="list:users",
                purpose="list the hub's users (no groups or users are selected: every user)",
            )
            if isinstance(body, list):  # a hub older than 2.0: no pagination
                yield self._users(body), None
                return
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise BadResponse(
                    "GET users answered without 'items'; is this JupyterHub 2 or newer?",
                    server=self.server,
                )
            pagination = body.get("_pagination") or {}
            total = pagination.get("total")
            yield self._users(body["items"]), total if isinstance(total, int) else None
            following = pagination.get("next")
            if not following or not body["items"]:
                return
            offset = int(following.get("offset", offset + len(body["items"])))

    def user(self, name: str) -> HubUser:
        """One user's model; ``UnknownOnHub`` if the hub has no such user."""
        body = self._named("user", name, scope="read:users", purpose=f"read user {name!r}")
        return self._users([body])[0]

    def group_members(self, group: str) -> list[str]:
        """The names of *group*'s members (``read:groups``)."""
        body = self._named(
            "group", group, scope="read:groups", purpose=f"read the members of group {group!r}"
        )
        members = body.get("users") if isinstance(body, dict) else None
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise BadResponse(f"group {group!r} came without a list of users", server=self.server)
        return list(members)

    # -- starting a server -----------------------------------------------------------

    def start_server(self, user: str, *, timeout: timedelta) -> None:
        """Start *user*'s default server and wait until the hub says it is ready.

        The hub answers 201 (ready), 202 (pending: polled here) or 400 when it
        already runs (then it is only waited for). Bounded by *timeout*.
        """
        seconds = timeout.total_seconds()
        deadline = time.monotonic() + seconds
        try:
            self._hub_json(
                "POST",
                f"users/{quote(user, safe='')}/server",
                read_timeout=max(self.timeouts.read, seconds),
                scope="servers",
                purpose=f"start {user}'s server (start_servers: true)",
                expect_json=False,
            )
        except ServerError as e:
            if e.status == 404:
                raise UnknownOnHub(f"the hub has no user {user!r}", server=self.server) from e
            if e.status != 400 or "already running" not in str(e):
                raise
        while True:
            model = self.user(user)
            status = model.status()
            if status is ServerStatus.RUNNING:
                return
            if status is not ServerStatus.PENDING:
                raise ServerStopped(
                    f"{user}'s server stopped while starting (status: {status and status.value});"
                    " see the hub's log",
                    server=self.server,
                )
            if time.monotonic() >= deadline:
                raise RequestTimeout(
                    f"{user}'s server was not ready within {seconds:g}s (still pending "
                    f"{model.pending_action or 'spawn'}); raise hubs.{self.name}.start_timeout",
                    server=self.server,
                )
            time.sleep(POLL_INTERVAL)

    # -- plumbing ------------------------------------------------------------------

    def _users(self, items: list[Any]) -> list[HubUser]:
        try:
            return [HubUser.model_validate(item) for item in items]
        except ValidationError as e:
            raise BadResponse(
                f"unexpected user model: {self._clean(str(e.errors()[0]['msg']))}",
                server=self.server,
            ) from e

    def _named(self, kind: str, name: str, *, scope: str, purpose: str) -> Any:
        """``GET users/NAME`` or ``groups/NAME``; a 404 is ``UnknownOnHub`` naming the
        manifest key that selected *name*."""
        try:
            return self._hub_json(
                "GET", f"{kind}s/" + quote(name, safe=""), scope=scope, purpose=purpose
            )
        except ServerError as e:
            if e.status == 404:
                raise UnknownOnHub(
                    f"the hub has no {kind} {name!r} (hubs.{self.name}.{kind}s)",
                    server=self.server,
                ) from e
            raise

    def _hub_json(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        purpose: str,
        params: Query | None = None,
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
        expect_json: bool = True,
    ) -> Any:
        """One call; a scope refusal names *scope* and what it is needed for."""
        try:
            if not expect_json:
                self._request(method, path, read_timeout=read_timeout)
                return None
            return self._json(
                method, path, params=params, headers=headers, read_timeout=read_timeout
            )
        except MissingScope as e:
            raise MissingScope(
                f"the token lacks the scope {scope} (needed to {purpose}); add it to the "
                "role of the token's service or user",
                server=self.server,
                scope=scope,
            ) from e

    def _raise_status(
        self, response: requests.Response, *, method: str, path: str, kernel_id: str | None
    ) -> NoReturn:
        status = response.status_code
        message = self._message(response)
        if status == 403 and "not authorized with current scopes" in message:
            found = _REFUSED.search(message)
            scopes = found.group(1).split(", ") if found else []
            raise MissingScope(
                f"the token lacks a scope ({message})",
                server=self.server,
                scope=scopes[0] if scopes else "",
            )
        if status in (401, 403):
            raise AuthError(
                f"the hub refused the token (HTTP {status}: {message})", server=self.server
            )
        if status == 404 and "json" not in response.headers.get("Content-Type", ""):
            # The hub API answers its own 404s (no such user, group) in JSON; a page
            # means the URL is not the hub's: often .../hub/ or a user's server.
            parts = [p for p in urlsplit(self.hub_url).path.split("/") if p]
            extra = next(
                (f" (drop the /{p}/ and what follows)" for p in parts if p in ("hub", "user")), ""
            )
            raise BadResponse(
                f"this URL does not answer as a JupyterHub: {method} {self.base_url}{path}"
                f" got HTTP 404 and a page, not the hub API; give the hub's public URL, the"
                f" one users open, in hubs.{self.name}.url{extra}",
                server=self.server,
            )
        super()._raise_status(response, method=method, path=path, kernel_id=kernel_id)


class UserServerClient(JupyterClient):
    """The ``JupyterClient`` of one hub user's default server, through the hub's proxy.

    It does not follow redirects, and tells a server that is not running (or
    stopped mid-run) from other failures: see the module docstring.
    """

    def __init__(
        self,
        hub: HubClient,
        user: str,
        token: str,
        *,
        timeouts: Timeouts | None = None,
        verify: bool | str = True,
        pool_size: int = 10,
        hooks: Hooks = NO_HOOKS,
        kernel_ids: KernelIds = KernelIds.ASK_SERVER,
    ) -> None:
        super().__init__(
            hub.user_server_url(user),
            token,
            timeouts=timeouts,
            verify=verify,
            pool_size=pool_size,
            hooks=hooks,
            kernel_ids=kernel_ids,
            follow_redirects=False,
            # PyPI configurable-http-proxy 0.4 forwards a client's binary frames as
            # text (and the server drops the connection): JSON frames pass a hub's proxy.
            framing=Framing.JSON,
        )
        self.hub = hub
        self.user = user

    def wait_until_answering(self, *, timeout: float) -> None:
        """Poll ``GET api`` until the server answers through the proxy (its route may lag)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.server_version()
                return
            except ClientError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(POLL_INTERVAL)

    def _raise_status(
        self, response: requests.Response, *, method: str, path: str, kernel_id: str | None
    ) -> NoReturn:
        status = response.status_code
        html = "html" in response.headers.get("Content-Type", "")
        where = f"{self.user}'s server on hub {self.hub.name}"
        if response.is_redirect or status == 424 or (status == 403 and html):
            # The proxy has no route for the user: the hub answers (302 to itself,
            # then 424 for a GET; its own XSRF refusal, in HTML, for a write).
            raise ServerStopped(
                f"{where} is not running ({method} {path}: HTTP {status} from the hub); it "
                "may have stopped during the run: start it, or set start_servers: true",
                server=self.server,
            )
        if status == 503 and html:
            raise ServerStopped(
                f"the hub's proxy cannot reach {where} ({method} {path}: HTTP 503); it may "
                "have died: the hub notices at its next poll, then start it again",
                server=self.server,
            )
        if status == 403 and "Forbidden" in self._message(response):
            raise MissingScope(
                f"{where} refused the token (HTTP 403): it needs the scope access:servers "
                f"(for this user's server); add it to the token's role",
                server=self.server,
                scope="access:servers",
            )
        super()._raise_status(response, method=method, path=path, kernel_id=kernel_id)
