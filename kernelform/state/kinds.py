"""The kinds of state location: what kernelform knows of a backend before it opens one.

Each backend declares one ``Kind`` here: its name, the URL schemes of its
locations (none: a file path), which query parameters of its URL hold secrets,
the driver it needs if that is an optional extra, the module that opens it, and
an example if users are offered it. A kind is plain data and this module
imports no driver: a location's secrets are found and masked, a mistyped one is
refused and a missing driver is named before anything is imported for it.

``location`` keys the kinds by scheme and opens the module a kind names; a
backend module imports its own kind from here (its schemes, its secrets) and
never ``location``, so nothing imports back.

A URL is read as written once (``WrittenURL``, Python's URL parser, no
driver): its user info, password and query. Every kind finds its secrets and
its masked form in that one reading; a backend with a driver may read the URL
again its own way, and must refuse one its driver cuts differently.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from kernelform.errors import StateError

# How a URL that does not even split is shown.
UNREADABLE_URL = "the state URL"


@dataclass(frozen=True)
class WrittenURL:
    """A URL as written, cut once as Python's URL parser cuts it."""

    text: str
    split: SplitResult
    # The query's name=value pairs, decoded.
    pairs: list[tuple[str, str]] = field(repr=False)

    @classmethod
    def read(cls, text: str) -> WrittenURL:
        """*text* cut into its parts; ``ValueError`` when it does not split (a bad ``[``)."""
        split = urlsplit(text)
        return cls(text, split, parse_qsl(split.query, keep_blank_values=True))

    @property
    def userinfo(self) -> str | None:
        """The ``user:password`` part: up to the last ``@`` of the part before the first
        ``/``, ``?`` or ``#``; None without one."""
        userinfo, at, _ = self.split.netloc.rpartition("@")
        return userinfo if at else None

    @property
    def user(self) -> str | None:
        """The user name in the user info, as written; None without user info."""
        userinfo = self.userinfo
        return None if userinfo is None else userinfo.partition(":")[0]

    @property
    def password(self) -> str | None:
        """The password in the user info, as written (percent-encoded); None without one."""
        userinfo = self.userinfo
        if userinfo is None or ":" not in userinfo:
            return None
        return userinfo.partition(":")[2]

    def secrets(self, params: frozenset[str]) -> list[str]:
        """The password and the values of the query parameters *params*, as written and
        decoded, longest first."""
        found: list[str] = []
        if self.password is not None:
            found += [self.password, unquote(self.password)]
        found += [value for key, value in self.pairs if key in params]
        for item in self.split.query.split("&"):
            key, _, value = item.partition("=")
            if key in params:
                found.append(value)
        return sorted({s for s in found if s}, key=len, reverse=True)

    def masked(self, params: frozenset[str]) -> str:
        """The URL with its password and the values of *params* replaced by ``***``."""
        netloc = self.split.netloc
        if self.password is not None:
            netloc = f"{self.user}:***@{netloc.rpartition('@')[2]}"
        query = [(k, "***" if k in params else v) for k, v in self.pairs]
        return urlunsplit(self.split._replace(netloc=netloc, query=urlencode(query, safe="*")))


@dataclass(frozen=True)
class Driver:
    """A library a backend needs that comes with an optional extra."""

    module: str  # what is imported: "psycopg"
    extra: str  # what installs it: kernelform[postgres]
    product: str  # what it speaks to, in messages: "PostgreSQL"

    @property
    def install_hint(self) -> str:
        return f"pip install 'kernelform[{self.extra}]'"


@dataclass(frozen=True)
class Kind:
    """One kind of state location, as the registry (``location``) needs to know it."""

    name: str
    # The module whose ``open_backend(location, *, manifest_dir, hooks)`` opens a
    # location of this kind; imported on first use, after the driver check.
    module: str
    # The URL schemes, lower case; none for file paths.
    schemes: tuple[str, ...] = ()
    # Query parameters whose values are secrets (a URL's password always is one).
    secret_params: frozenset[str] = frozenset()
    driver: Driver | None = None
    # How a user writes one (shown when a location is mistyped); None: not offered.
    example: str | None = None

    def secrets(self, location: str) -> list[str]:
        """Every secret spelled in *location*, as written and decoded, for redaction."""
        if not self.schemes:
            return []
        try:
            return WrittenURL.read(location).secrets(self.secret_params)
        except ValueError:
            return []

    def shown(self, location: str) -> str:
        """*location* for messages: its secrets replaced by ``***``."""
        if not self.schemes:
            return location
        try:
            return WrittenURL.read(location).masked(self.secret_params)
        except ValueError:
            return UNREADABLE_URL

    def require_driver(self, location: str) -> None:
        """Raise one line saying what to install when the driver cannot be imported."""
        if self.driver is None:
            return
        try:
            importlib.import_module(self.driver.module)
        except ImportError:
            product = self.driver.product
            raise StateError(
                f"the state at {self.shown(location)} is in {product}, and the {product} driver"
                f" is not installed: run {self.driver.install_hint}"
            ) from None


FILE = Kind(name="file", module="kernelform.state.file")
POSTGRES = Kind(
    name="postgres",
    module="kernelform.state.postgres",
    schemes=("postgresql", "postgres"),
    # libpq parameters whose values are secrets: never shown.
    secret_params=frozenset({"password", "sslpassword"}),
    driver=Driver(module="psycopg", extra="postgres", product="PostgreSQL"),
    example="postgresql://USER@HOST:PORT/DATABASE",
)
MEMORY = Kind(name="memory", module="kernelform.state.memory", schemes=("memory",))

# The registry's lines: one per backend.
KINDS: tuple[Kind, ...] = (FILE, POSTGRES, MEMORY)
