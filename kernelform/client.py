"""One HTTP client per Jupyter server, for the six kernel operations.

It is the only module that speaks HTTP. ``HttpClient`` holds the transport
every client shares (``JupyterClient`` here, ``kernelform.hub.HubClient`` for a
JupyterHub's API): one ``requests.Session`` (and so its connection pool) for
every call, reads retried through urllib3's ``Retry`` (GET only: a write is
never repeated blindly; a GET answered 500 is repeated once, as the Kernel
Gateway fails one read after a kernel with a session is shut down), the token
only in the ``Authorization`` header, timeouts and TLS settings, and every
failure turned into an error from ``kernelform.errors`` that names the server
and says what to do. The Jupyter API's traps (see the REST notes: 500 for an
unknown spec, HTML 404 pages, ``_xsrf`` answers to a bad token) are translated
in ``JupyterClient``, so that nothing above knows about them.

Every GET carries ``no_track_activity=1``: jupyter_server (and through it
JupyterHub's idle culler) counts any other authenticated API request as user
activity, and kernelform reading a server (a plan, a ``watch`` every minute)
must not keep an idle server awake. Servers that predate the argument ignore
it: it is just a query argument.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from enum import Enum
from types import TracebackType
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from pydantic import BaseModel, ValidationError
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    MaxRetryError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from kernelform.endpoint import Framing
from kernelform.errors import (
    AuthError,
    BadResponse,
    ClientError,
    ConnectError,
    KernelformError,
    KernelNotFound,
    Remedy,
    RequestTimeout,
    ServerError,
    ServerStopped,
    UnknownKernelSpec,
    shorten,
    with_remedy,
)
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.liveness import ProbeResult, Readiness
from kernelform.masking import Redactor
from kernelform.models import Kernel, KernelSpecs, Session
from kernelform.runtime import KernelIds, Timeouts

log = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:8888"
RETRY_STATUSES = (502, 503, 504)
KERNEL_ID_START_VERSION = (2, 21)
# GET api on the classic notebook (4.x to 6.x) answers the notebook's own version,
# and it ignores kernel_id: only jupyter_server 2.21+ (and a 3.x) count as taking it.
KERNEL_ID_END_VERSION = (4, 0)
GATEWAY_LIST_OPTION = "--JupyterWebsocketPersonality.list_kernels=True"
M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound="HttpClient")
Query = Mapping[str, str | int]
NO_TRACK_ACTIVITY = {"no_track_activity": "1"}


class HttpClient:
    """JSON over HTTP to one service, with the conventions every client shares.

    ``url`` may carry a path prefix (``https://hub/user/ana/``); every request
    goes under it. ``verify`` is True (the system CA store), a CA bundle path,
    or False to skip TLS verification. With ``follow_redirects=False`` a 3xx
    answer is an error (``_raise_status`` decides which) instead of being
    followed: a redirect may turn a POST into a GET elsewhere.
    """

    _wrong_url_hint = "is this the right URL?"
    _service = "the service"

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        timeouts: Timeouts | None = None,
        verify: bool | str = True,
        retries: int = 3,
        backoff: float = 0.2,
        pool_size: int = 10,
        hooks: Hooks = NO_HOOKS,
        adapter: BaseAdapter | None = None,
        follow_redirects: bool = True,
    ) -> None:
        self.base_url = _normalise(url)
        self.server = display_url(self.base_url)
        _check_token(token)
        self.timeouts = timeouts or Timeouts()
        self._token = token
        self._retries = retries
        self._backoff = backoff
        self._hooks = hooks
        self._follow_redirects = follow_redirects
        self._redactor = Redactor([token])
        self._session = requests.Session()
        self._session.verify = verify
        self._session.trust_env = False
        if token:
            self._session.headers["Authorization"] = f"token {token}"
        self._probe_lock = threading.Lock()
        self._probed = False
        retry = _ProbingRetry(
            probe=self._probe_scheme,
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff,
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        if adapter is None:
            adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.server!r})"

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @property
    def sends_token_in_clear(self) -> bool:
        """True when a token would travel over plain http to a non-loopback host."""
        parts = urlsplit(self.base_url)
        return bool(self._token) and parts.scheme == "http" and not _is_loopback(parts.hostname)

    @property
    def skips_tls_verification(self) -> bool:
        """True for an https server whose certificate is not checked (``verify=False``)."""
        return self._session.verify is False and urlsplit(self.base_url).scheme == "https"

    # -- what a kernel websocket shares with the HTTP calls ------------------------

    def websocket_url(self, path: str) -> str:
        """``ws://`` (``wss://`` for https) URL of *path* under the base URL; never a token."""
        parts = urlsplit(self.base_url + path)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate a request (the token), for a websocket handshake."""
        return {"Authorization": f"token {self._token}"} if self._token else {}

    def ssl_context(self) -> ssl.SSLContext | None:
        """None for http; for https a context that verifies as the HTTP calls do.

        ``verify=True`` trusts the CA bundle requests uses, a path trusts that
        CA file (or directory), ``False`` checks nothing.
        """
        if urlsplit(self.base_url).scheme != "https":
            return None
        verify = self._session.verify
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if isinstance(verify, str):
            if os.path.isdir(verify):
                return ssl.create_default_context(capath=verify)
            return ssl.create_default_context(cafile=verify)
        return ssl.create_default_context(cafile=requests.utils.DEFAULT_CA_BUNDLE_PATH)

    def scrub(self, text: str) -> str:
        """*text* (from a server or a kernel) with the token replaced by ``***``."""
        return self._redactor.redact(text)

    # -- plumbing ----------------------------------------------------------------

    def _probe_scheme(self, error: Exception) -> Speaks | None:
        """On this client's first transport failure: what the port speaks, if it is not
        the URL's scheme (``HTTP`` for an https URL; ``HTTPS`` or ``NOT_HTTP`` for an
        http one), else None (no verdict: the failure is the server's, retry it).

        An https URL on a plain-http server fails its TLS handshake by timeout (the
        server waits for a request line that never comes), an http URL on a TLS port
        by a reset, and one on another service's port (a database, SSH) by a close:
        none says why. One quick look at the port does.
        """
        parts = urlsplit(self.base_url)
        suspicious = _HTTPS_SYMPTOMS if parts.scheme == "https" else _HTTP_SYMPTOMS
        if not isinstance(error, suspicious) or _is_certificate_error(error):
            return None
        with self._probe_lock:
            if self._probed:
                return None
            self._probed = True
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        timeout = min(self.timeouts.connect, PROBE_TIMEOUT)
        https = parts.scheme == "https"
        plain = _speaks_plain_http(host, port, timeout=timeout)
        if plain:  # on an http URL, a passing fault: an http server answers at once
            return Speaks.HTTP if https else None
        if _speaks_tls(host, port, timeout=timeout):
            return None if https else Speaks.HTTPS
        # Only a port seen to answer without HTTP (a close, other bytes) and to refuse
        # a TLS handshake is called so; one that gave no verdict (a reset, a timeout)
        # is retried.
        return Speaks.NOT_HTTP if plain is False else None

    def _json(
        self,
        method: str,
        path: str,
        *,
        kernel_id: str | None = None,
        json: dict[str, Any] | None = None,
        read_timeout: float | None = None,
        params: Query | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        response = self._request(
            method,
            path,
            kernel_id=kernel_id,
            json=json,
            read_timeout=read_timeout,
            params=params,
            headers=headers,
        )
        try:
            return response.json()
        except ValueError as e:
            raise BadResponse(
                f"{method} {path} answered {_content_type(response)}, not JSON: "
                f"{self._body(response)!r}; {self._wrong_url_hint}",
                server=self.server,
            ) from e

    def _request(
        self,
        method: str,
        path: str,
        *,
        kernel_id: str | None = None,
        json: dict[str, Any] | None = None,
        read_timeout: float | None = None,
        params: Query | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = self.base_url + path
        timeout = (self.timeouts.connect, read_timeout or self.timeouts.read)
        query = {**self._default_query(method), **(params or {})}
        log.debug("%s %s", method, url)
        self._hooks.before_request(method, url)
        response = self._send(
            method, url, json=json, timeout=timeout, path=path, params=query, headers=headers
        )
        self._hooks.after_request(method, url, response.status_code)
        if response.status_code >= 400 or response.is_redirect:
            self._raise_status(response, method=method, path=path, kernel_id=kernel_id)
        return response

    def _default_query(self, method: str) -> Query:
        """Query arguments every *method* request carries (none by default)."""
        return {}

    def _send(
        self,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None,
        timeout: tuple[float, float],
        path: str,
        params: Query,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        """One request; a GET whose answer broke off mid-body, or was a 500, is repeated too.

        urllib3's ``Retry`` repeats a GET whose connection fails before the answer's
        headers arrive, but not one whose body is cut short (the body is read after
        urllib3 returns): that one is repeated here, with the same count and backoff.
        A GET answered 500 is repeated once (when retries are on): the Kernel Gateway
        answers ``GET api/sessions`` with 500 once after a kernel that had a session
        is shut down (it drops the stale session while failing), then 200.
        """
        attempts = 1 + (self._retries if method == "GET" else 0)
        attempt = 1
        repeat_500 = method == "GET" and self._retries > 0
        while True:
            try:
                response = self._session.request(
                    method,
                    url,
                    json=json,
                    timeout=timeout,
                    params=params or None,
                    headers=headers,
                    allow_redirects=self._follow_redirects,
                )
            except requests.exceptions.ChunkedEncodingError as e:
                if attempt >= attempts:
                    self._raise_transport(e, method=method, path=path, timeout=timeout)
                log.debug("%s %s: the answer broke off (%s); retrying", method, url, e)
                time.sleep(self._backoff * 2 ** (attempt - 1))
                attempt += 1
                continue
            except requests.RequestException as e:
                self._raise_transport(e, method=method, path=path, timeout=timeout)
            except LocationParseError as e:  # a host requests lets through, urllib3 does not
                raise ConnectError(
                    f"{method} {path} cannot be sent: the URL is not valid ({self._clean(str(e))})",
                    server=self.server,
                ) from e
            if response.status_code != 500 or not repeat_500:
                return response
            log.debug("%s %s: HTTP 500; retrying once", method, url)
            repeat_500 = False
            response.close()
            time.sleep(self._backoff)

    def _raise_transport(
        self,
        error: requests.RequestException,
        *,
        method: str,
        path: str,
        timeout: tuple[float, float],
    ) -> NoReturn:
        what = f"{method} {path}"
        detail = self._clean(_root_cause(error))
        reason = _retry_reason(error)  # what urllib3's retries gave up on, if they did
        if isinstance(reason, SchemeMismatch) and reason.speaks is Speaks.NOT_HTTP:
            raise ConnectError(
                f"{what} failed: this port speaks neither HTTP nor TLS (it closed the"
                f" connection without an answer, to a probe too); is this the URL of"
                f" {self._service}?",
                server=self.server,
            ) from error
        if isinstance(reason, SchemeMismatch):
            other = _with_scheme(self.server, reason.speaks.value)
            spoken = "plain http" if reason.speaks is Speaks.HTTP else "https (TLS)"
            raise ConnectError(
                f"the server answers in {spoken}, not {urlsplit(self.server).scheme}: use {other}",
                server=self.server,
            ) from error
        if isinstance(error, _UNUSABLE_REQUEST):
            raise ConnectError(
                f"{what} cannot be sent: the URL or a header is not valid ({detail})",
                server=self.server,
            ) from error
        if isinstance(error, requests.exceptions.SSLError):
            raise with_remedy(
                ConnectError(f"TLS verification failed ({detail})", server=self.server),
                Remedy.TRUST_CERTIFICATE,
            ) from error
        if isinstance(error, requests.exceptions.ConnectTimeout):
            raise RequestTimeout(
                f"no connection within {timeout[0]:g}s; is the server up and reachable?",
                server=self.server,
            ) from error
        if isinstance(error, requests.exceptions.Timeout) or isinstance(reason, ReadTimeoutError):
            raise with_remedy(
                RequestTimeout(
                    f"{what} got no answer within {timeout[1]:g}s; the server is overloaded "
                    "or stuck: retry",
                    server=self.server,
                ),
                Remedy.RAISE_TIMEOUT,
            ) from error
        if isinstance(error, requests.exceptions.ConnectionError) and not _broke_midway(error):
            raise ConnectError(
                f"cannot connect ({detail}); is {self._service} running at this URL?",
                server=self.server,
            ) from error
        raise ConnectError(
            f"{what} failed: the connection broke ({detail}); retry",
            server=self.server,
        ) from error

    def _raise_status(
        self, response: requests.Response, *, method: str, path: str, kernel_id: str | None
    ) -> NoReturn:
        """Turn an error (or unfollowed redirect) answer into a ``ClientError``."""
        status = response.status_code
        if status in (401, 403):
            sent = "" if self._token else ": no token was sent (it is empty)"
            raise AuthError(f"not authenticated (HTTP {status}){sent}", server=self.server)
        if response.is_redirect:
            where = self._clean(urlsplit(response.headers.get("Location", "")).path)
            raise ServerError(
                f"{method} {path} was redirected (HTTP {status}) to {where or 'nowhere'}",
                server=self.server,
                status=status,
            )
        raise ServerError(
            f"{method} {path} failed with HTTP {status}: {self._message(response)}",
            server=self.server,
            status=status,
        )

    def _message(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return self._body(response) or response.reason or "no message"
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return self._clean(body["message"])
        return self._body(response)

    def _body(self, response: requests.Response) -> str:
        return self._clean(response.text)

    def _clean(self, text: str) -> str:
        return shorten(self._redactor.redact(text))

    def _model(self, model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as e:
            raise BadResponse(
                f"unexpected answer shape for {model.__name__}: "
                f"{self._clean(str(e.errors()[0]['msg']))}",
                server=self.server,
            ) from e

    def _models(self, model: type[M], data: Any) -> list[M]:
        if not isinstance(data, list):
            raise BadResponse(
                f"expected a list of {model.__name__} objects, got {type(data).__name__}",
                server=self.server,
            )
        return [self._model(model, item) for item in data]


class JupyterClient(HttpClient):
    """A client for one Jupyter server's kernel API (see ``HttpClient`` for the transport).

    It is a ``kernelform.server.KernelServer``.
    """

    _wrong_url_hint = "is this a Jupyter server URL?"
    _service = "the Jupyter server"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str = "",
        *,
        timeouts: Timeouts | None = None,
        verify: bool | str = True,
        retries: int = 3,
        backoff: float = 0.2,
        pool_size: int = 10,
        hooks: Hooks = NO_HOOKS,
        kernel_ids: KernelIds = KernelIds.ASK_SERVER,
        adapter: BaseAdapter | None = None,
        follow_redirects: bool = True,
        framing: Framing = Framing.V1,
    ) -> None:
        super().__init__(
            url,
            token,
            timeouts=timeouts,
            verify=verify,
            retries=retries,
            backoff=backoff,
            pool_size=pool_size,
            hooks=hooks,
            adapter=adapter,
            follow_redirects=follow_redirects,
        )
        self._kernel_ids = kernel_ids
        self.framing = framing

    # -- the read operations ---------------------------------------------------

    def list_kernels(self) -> list[Kernel]:
        return self._models(Kernel, self._json("GET", "api/kernels"))

    def get_kernel(self, kernel_id: str) -> Kernel:
        return self._model(Kernel, self._json("GET", _kernel_path(kernel_id), kernel_id=kernel_id))

    def list_sessions(self) -> list[Session]:
        return self._models(Session, self._json("GET", "api/sessions"))

    def list_kernelspecs(self) -> KernelSpecs:
        return self._model(KernelSpecs, self._json("GET", "api/kernelspecs"))

    def path_kind(self, path: str) -> str | None:
        """What the contents API says *path* (under the root) is: ``directory``, ``file``
        or ``notebook``; None when it answers 404 (nothing there, or no contents API:
        ask for ``""``, the root, to tell which)."""
        quoted = quote(path.strip("/"))
        try:
            body = self._json("GET", f"api/contents/{quoted}?content=0")
        except ServerError as e:
            if e.status == 404:
                return None
            raise
        kind = body.get("type") if isinstance(body, dict) else None
        if not isinstance(kind, str):
            raise BadResponse(
                f"GET api/contents/{quoted} did not say what the path is", server=self.server
            )
        return kind

    def server_version(self) -> tuple[int, ...] | None:
        """The jupyter_server version from ``GET api``, or None when it does not say."""
        body = self._json("GET", "api")
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str):
            return None
        numbers = re.findall(r"\d+", version)[:3]
        return tuple(int(n) for n in numbers) or None

    def accepts_kernel_id(self) -> bool:
        """Whether ``POST api/kernels`` honours a client-chosen ``kernel_id``.

        True for jupyter_server >= 2.21 (read from ``GET api``), but not for
        the classic notebook, whose 4.x-6.x version ``GET api`` reports. With
        ``kernel_ids=KernelIds.NEVER`` it is False without asking: for a gateway
        or proxy that reports a jupyter_server version but drops the field.
        """
        if self._kernel_ids is KernelIds.NEVER:
            return False
        version = self.server_version()
        if version is None:
            return False
        return KERNEL_ID_START_VERSION <= version[:2] < KERNEL_ID_END_VERSION

    # -- the write operations --------------------------------------------------

    def start_kernel(
        self, name: str = "python3", *, path: str | None = None, kernel_id: str | None = None
    ) -> Kernel:
        """Start a kernel of spec *name*, in *path* (relative to the server root).

        With *kernel_id* (jupyter_server >= 2.21), starting an id that already
        runs returns that kernel and starts nothing, so the call is safe to repeat.
        """
        body: dict[str, Any] = {"name": name}
        if path is not None:
            body["path"] = path
        if kernel_id is not None:
            body["kernel_id"] = kernel_id
        try:
            data = self._json("POST", "api/kernels", json=body)
        except ServerError as e:
            if e.status == 500:
                self._raise_if_unknown_spec(name, e)
            raise
        return self._model(Kernel, data)

    def restart_kernel(self, kernel_id: str) -> Kernel:
        path = _kernel_path(kernel_id) + "/restart"
        try:
            data = self._json("POST", path, kernel_id=kernel_id, read_timeout=self.timeouts.restart)
        except ServerError as e:
            if e.status == 500:
                self.get_kernel(kernel_id)  # raises KernelNotFound when it is gone
            raise
        return self._model(Kernel, data)

    def interrupt_kernel(self, kernel_id: str) -> None:
        self._request("POST", _kernel_path(kernel_id) + "/interrupt", kernel_id=kernel_id)

    def shutdown_kernel(self, kernel_id: str) -> None:
        self._request("DELETE", _kernel_path(kernel_id), kernel_id=kernel_id)

    # -- talking to a kernel (over its websocket: see kernelform.channels) ----------

    def wait_ready(
        self,
        kernel_id: str,
        *,
        timeout: float,
        setup: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Readiness:
        """Block until the kernel answers ``kernel_info``, then run *setup* in it.

        Setting *cancel* (from another thread) ends the wait as a timeout would.
        """
        from kernelform.channels import wait_ready

        return wait_ready(
            self, kernel_id, timeout=timeout, setup=setup, framing=self.framing, cancel=cancel
        )

    def probe(self, kernel_id: str, *, timeout: float) -> ProbeResult:
        """Whether the kernel answers on its control channel (busy kernels do)."""
        from kernelform.channels import probe

        return probe(self, kernel_id, timeout=timeout, framing=self.framing)

    # -- Jupyter's own answers -----------------------------------------------------

    def _default_query(self, method: str) -> Query:
        return NO_TRACK_ACTIVITY if method == "GET" else {}

    def _raise_if_unknown_spec(self, name: str, cause: ServerError) -> None:
        try:
            specs = self.list_kernelspecs().names
        except ClientError:
            return
        if name not in specs:
            raise UnknownKernelSpec(
                f"unknown kernelspec {name!r}; the server has: {', '.join(specs) or 'none'}",
                server=self.server,
                spec=name,
                available=specs,
            ) from cause

    def _raise_status(
        self, response: requests.Response, *, method: str, path: str, kernel_id: str | None
    ) -> NoReturn:
        status = response.status_code
        message = self._message(response)
        if status in (401, 403) and _is_hub_page(response):
            # /user/NAME/ of a server that is not running is routed to the hub, whose
            # XSRF check refuses any write: not a token problem.
            raise ServerStopped(
                f"{method} {path} reached JupyterHub itself (HTTP {status}), not a running"
                " server: the user's server at this URL is not running; start it from the"
                " hub, then retry",
                server=self.server,
            )
        if status == 403 and _token_accepted(response):
            if method == "GET" and path in ("api/kernels", "api/sessions"):
                refusal = (
                    f"the server refused to list {path.removeprefix('api/')} (HTTP 403) though "
                    "it took the token; a Kernel Gateway lists them only when started with "
                    f"{GATEWAY_LIST_OPTION} (or KG_LIST_KERNELS=True)"
                )
            else:
                refusal = f"{method} {path} refused (HTTP 403): {message}"
            raise ServerError(refusal, server=self.server, status=status)
        if status == 404 and kernel_id is not None:
            raise KernelNotFound(
                f"no kernel {kernel_id} on the server", server=self.server, kernel_id=kernel_id
            )
        if status == 404:
            raise ServerError(
                f"{method} {path} not found (HTTP 404); is the URL (and its path prefix) "
                "that of a Jupyter server?",
                server=self.server,
                status=status,
            )
        super()._raise_status(response, method=method, path=path, kernel_id=kernel_id)


_UNUSABLE_REQUEST = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)
PROBE_TIMEOUT = 2.0
_HTTPS_SYMPTOMS = (ReadTimeoutError, ConnectTimeoutError, SSLError, ProtocolError)
_HTTP_SYMPTOMS = (ProtocolError,)


class Speaks(Enum):
    """What a port was found to speak by the scheme probe."""

    HTTP = "http"
    HTTPS = "https"
    NOT_HTTP = "not http"  # it answered, but not in HTTP (or closed without a word)


class SchemeMismatch(Exception):
    """The server speaks *speaks*, not the URL's scheme.

    Raised from inside urllib3's retries (as the reason of a ``MaxRetryError``),
    so that nothing is retried once the cause is known.
    """

    def __init__(self, speaks: Speaks) -> None:
        self.speaks = speaks
        super().__init__(f"the server speaks {speaks.value}")


def _is_hub_page(response: requests.Response) -> bool:
    """An HTML page of JupyterHub's own (its pages carry ``window.jhdata``)."""
    return "html" in response.headers.get("Content-Type", "") and "jhdata" in response.text


class _ProbingRetry(Retry):
    """urllib3's ``Retry`` that asks *probe* about the first failure before retrying it."""

    def __init__(
        self, *args: Any, probe: Callable[[Exception], Speaks | None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.probe = probe

    def new(self, **kw: Any) -> _ProbingRetry:
        new = super().new(**kw)
        new.probe = self.probe
        return new

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> _ProbingRetry:
        if error is not None and response is None and self.probe is not None:
            speaks = self.probe(error)
            if speaks is not None:
                raise MaxRetryError(_pool, url or "", SchemeMismatch(speaks)) from error
        if isinstance(error, ReadTimeoutError):
            # A server silent for a whole read timeout is stuck or overloaded: asking it
            # three more times only delays the one line that says so (by minutes).
            raise MaxRetryError(_pool, url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _is_certificate_error(error: Exception) -> bool:
    """A TLS server whose certificate is not trusted: the scheme is right."""
    text = str(error)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text


def _speaks_plain_http(host: str, port: int, *, timeout: float) -> bool | None:
    """Whether the port answers a plain-text request with an HTTP status line: True;
    False when it answered something else or closed without a word; None when there
    is no verdict (no connection, a reset, no answer within *timeout*)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode("idna") + b"\r\n\r\n")
            head = b""
            while len(head) < 5:
                chunk = sock.recv(5 - len(head))
                if not chunk:
                    break
                head += chunk
    except (OSError, UnicodeError):
        return None
    return head == b"HTTP/"


def _speaks_tls(host: str, port: int, *, timeout: float) -> bool:
    """Whether the port completes a TLS handshake (any certificate)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host or None),
        ):
            return True
    except (OSError, ValueError):
        return False


def _with_scheme(url: str, scheme: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


def display_url(url: str) -> str:
    """The URL without credentials, query or fragment: safe to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _normalise(url: str) -> str:
    """*url* with a trailing slash, no query or fragment; ``KernelformError`` if it is not
    an http(s) URL with a host (the URL is not echoed: it may carry a token)."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError as e:
        raise KernelformError(
            f"the server URL is not valid ({e}); expected http(s)://HOST[:PORT][/PREFIX/]"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        what = "has no host" if parts.scheme.lower() in ("http", "https") else "is not http(s)"
        raise KernelformError(f"the server URL {what}; expected http(s)://HOST[:PORT][/PREFIX/]")
    if any(c.isspace() for c in url):
        raise KernelformError("the server URL contains spaces")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _check_token(token: str) -> None:
    """A token an HTTP header can carry: Latin-1, no control characters (never echoed)."""
    try:
        token.encode("latin-1")
    except UnicodeEncodeError:
        raise KernelformError(
            "the token has characters an HTTP header cannot carry (beyond Latin-1);"
            " check it (was it pasted with something else?)"
        ) from None
    if any(not c.isprintable() for c in token):
        raise KernelformError(
            "the token has control characters (a line break?) an HTTP header cannot carry; check it"
        )


def _kernel_path(kernel_id: str) -> str:
    return "api/kernels/" + quote(kernel_id, safe="")


def _token_accepted(response: requests.Response) -> bool:
    """A 403 that the Kernel Gateway gives to a valid token.

    Its refusals carry ``"reason": "Forbidden"``: ``GET api/kernels`` and
    ``GET api/sessions`` unless listing is allowed, ``POST api/kernels`` past
    ``max_kernels`` ("Resource Limit"); a wrong token gets 401 there.
    jupyter_server's 403 for a bad token carries ``"reason": null``. (``GET api``
    cannot tell a gateway apart: it reports the jupyter_server version.)
    """
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("reason") == "Forbidden"


def _content_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "no content type").split(";")[0]


def _retry_reason(error: BaseException) -> BaseException | None:
    """What made urllib3 give up, when *error* wraps its ``MaxRetryError``.

    A GET that keeps timing out ends as ``requests.ConnectionError(MaxRetryError(
    reason=ReadTimeoutError))``, not as ``requests.ReadTimeout``.
    """
    inner = error.args[0] if error.args else None
    return inner.reason if isinstance(inner, MaxRetryError) else None


def _broke_midway(error: BaseException) -> bool:
    """True when the connection was made and then broke (reset, closed) mid-exchange."""
    cause = _retry_reason(error) or (error.args[0] if error.args else None)
    return isinstance(cause, ProtocolError)


def _root_cause(error: BaseException) -> str:
    text = str(error)
    for needles, plain in _CAUSES:
        if any(needle in text for needle in needles):
            return plain
    return type(error).__name__


_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("Connection refused",), "connection refused"),
    (("Name or service not known", "NameResolution", "nodename nor servname"), "host not found"),
    (("CERTIFICATE_VERIFY_FAILED", "certificate verify failed"), "certificate not trusted"),
    (("Connection reset", "ConnectionResetError"), "connection reset by the server"),
    (("RemoteDisconnected", "Connection aborted"), "the server closed the connection"),
    (("IncompleteRead", "InvalidChunkLength"), "the answer was cut short"),
)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
