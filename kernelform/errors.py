"""Every error kernelform raises on purpose, in one tree.

The CLI turns any ``KernelformError`` into one line on stderr and the exit status
1; anything else is a bug. Third-party exceptions (requests, ruamel.yaml,
pydantic, OSError) are converted where they are met, with ``raise ... from e``,
so that callers only ever need to know this module.

::

    KernelformError
    ├── ClientError                 talking to one Jupyter server (names it)
    │   ├── ConnectError            refused, DNS, TLS
    │   ├── RequestTimeout          no answer within the timeout
    │   ├── AuthError               401/403: the token is wrong or missing
    │   ├── KernelNotFound          no such kernel on the server
    │   ├── UnknownKernelSpec       start asked for a spec the server lacks
    │   ├── ServerError             any other error status
    │   ├── BadResponse             an answer that is not the JSON expected
    │   ├── MissingScope            a hub token lacks a scope (named)
    │   ├── UnknownOnHub            a group or user the manifest names is not on the hub
    │   ├── ServerStopped           a hub user's server is not running (or stopped mid-run)
    │   └── KernelNotReady          a kernel died, vanished or stayed silent (channels)
    │       └── SetupFailed         its setup code raised
    ├── ManifestError               one or more FILE:LINE:COL problems
    ├── StateError                  the state cannot be used (also: a missing driver, no rights)
    │   ├── StateUnavailable        its database cannot be reached: down, refused, TLS,
    │   │                           authentication, timeout, connection lost
    │   ├── StateLocked             another run holds the lock
    │   ├── StateCorrupt            unreadable, foreign or newer state
    │   ├── StaleState              another run wrote the state since it was read
    │   └── StateWriteError         could not be saved (recovery file written)
    └── PlanError                   the plan cannot be made or carried out
        └── StalePlan               a saved plan no longer matches the world

Messages never contain a token or a password: the client sends the token only
in a header and scrubs any text built from a server's answer
(``kernelform.masking``), and the PostgreSQL backend names its database by a
URL without the password. Errors of the database driver (psycopg) are
translated where they are met, in ``kernelform.state.postgres``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

BODY_LIMIT = 200


class Remedy(str, Enum):
    """What the user can do about an error, said by the interface that shows it.

    The library names no command-line flag: the same error met by a raw
    ``kernels`` command, a manifest command or a library user is fixed in
    different places (``--token`` there, ``servers.NAME.token`` here), so the
    CLI words the remedy for the command at hand and puts it in ``hint``.
    """

    CHECK_TOKEN = "check-token"
    TRUST_CERTIFICATE = "trust-certificate"
    WAIT_FOR_LOCK = "wait-for-lock"
    MAKE_NEW_PLAN = "make-new-plan"
    LIST_KERNELS = "list-kernels"
    RAISE_TIMEOUT = "raise-timeout"
    FORCE_PUSH = "force-push"


class KernelformError(Exception):
    """Base of every error kernelform raises on purpose.

    ``remedy`` says what kind of fix applies, if any; ``hint`` is that fix in
    words, added by the interface that shows the error and shown after it.
    """

    remedy: Remedy | None = None
    hint: str = ""

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}; {self.hint}" if self.hint else text


class ClientError(KernelformError):
    """A request to a Jupyter server failed."""

    def __init__(self, message: str, *, server: str) -> None:
        self.server = server
        super().__init__(f"{server}: {message}")


class ConnectError(ClientError):
    """The server could not be reached (refused, DNS, TLS)."""


class RequestTimeout(ClientError):
    """The server did not answer in time."""


class AuthError(ClientError):
    """The server refused the token (401 or 403)."""

    remedy = Remedy.CHECK_TOKEN


class KernelNotFound(ClientError):
    """The kernel id does not exist on the server."""

    remedy = Remedy.LIST_KERNELS

    def __init__(self, message: str, *, server: str, kernel_id: str) -> None:
        self.kernel_id = kernel_id
        super().__init__(message, server=server)


class UnknownKernelSpec(ClientError):
    """A start asked for a kernelspec the server does not have."""

    def __init__(self, message: str, *, server: str, spec: str, available: Sequence[str]) -> None:
        self.spec = spec
        self.available = tuple(available)
        super().__init__(message, server=server)


class ServerError(ClientError):
    """The server answered with an error status not covered above."""

    def __init__(self, message: str, *, server: str, status: int) -> None:
        self.status = status
        super().__init__(message, server=server)


class BadResponse(ClientError):
    """The server answered, but not with the JSON the API promises."""


class MissingScope(ClientError):
    """A JupyterHub refused a call because the token lacks ``scope``."""

    def __init__(self, message: str, *, server: str, scope: str) -> None:
        self.scope = scope
        super().__init__(message, server=server)


class UnknownOnHub(ClientError):
    """A group or user the manifest selects does not exist on the hub."""


class ServerStopped(ClientError):
    """A hub user's server is not running: stopped, pending, or stopped during the run."""


class KernelNotReady(ClientError):
    """A kernel died, vanished or did not answer over its websocket in time.

    ``summary`` is what went wrong in a few words ("no answer in 60s"), fit to
    be recorded as the reason a kernel is tainted.
    """

    def __init__(
        self,
        message: str,
        *,
        server: str,
        kernel_id: str,
        waited: float,
        execution_state: str | None,
        reason: str | None,
        summary: str = "",
    ) -> None:
        self.kernel_id = kernel_id
        self.waited = waited
        self.execution_state = execution_state
        self.reason = reason
        self.summary = summary or "not ready"
        super().__init__(message, server=server)


class SetupFailed(KernelNotReady):
    """A kernel answered, but its setup code raised; ``traceback`` is a plain excerpt."""

    def __init__(
        self,
        message: str,
        *,
        server: str,
        kernel_id: str,
        waited: float,
        execution_state: str | None,
        reason: str | None,
        ename: str,
        evalue: str,
        traceback: str,
    ) -> None:
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        super().__init__(
            message,
            server=server,
            kernel_id=kernel_id,
            waited=waited,
            execution_state=execution_state,
            reason=reason,
            summary=shorten(
                f"setup failed: {ename}: {evalue}" if evalue else f"setup failed: {ename}"
            ),
        )


@dataclass(frozen=True)
class Problem:
    """One located problem in a manifest."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class ManifestError(KernelformError):
    """The manifest is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StateError(KernelformError):
    """The state cannot be read, written or locked."""


class StateUnavailable(StateError):
    """The state's database cannot be reached, or refused the connection."""


class StateLocked(StateError):
    """Another kernelform run holds the state lock.

    ``holder`` says who, when known; ``waited`` how long this run waited;
    ``breakable`` whether the holder cannot be checked from here (another host),
    so that breaking the lock (force-unlock) may be the way out.
    """

    remedy = Remedy.WAIT_FOR_LOCK

    def __init__(
        self, message: str, *, holder: object = None, waited: float = 0.0, breakable: bool = False
    ) -> None:
        self.holder = holder
        self.waited = waited
        self.breakable = breakable
        super().__init__(message)


class StateCorrupt(StateError):
    """The state is unreadable, foreign, or from a newer kernelform."""


class StaleState(StateError):
    """The stored state changed since this run read it (a serial conflict)."""


class StateWriteError(StateError):
    """The state could not be written; ``recovery`` is the file holding what is known."""

    def __init__(self, message: str, *, recovery: object = None) -> None:
        self.recovery = recovery
        super().__init__(message)


class PlanError(KernelformError):
    """The plan cannot be made or carried out."""


class StalePlan(PlanError):
    """A saved plan no longer matches the state, manifest or servers."""

    remedy = Remedy.MAKE_NEW_PLAN


E = TypeVar("E", bound=KernelformError)


def with_remedy(error: E, remedy: Remedy) -> E:
    """*error*, marked with *remedy* (for an error class that has several)."""
    error.remedy = remedy
    return error


def shorten(text: str, limit: int = BODY_LIMIT) -> str:
    """Cut *text* to one line of at most *limit* characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
