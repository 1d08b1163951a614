"""The state as data: which kernels kernelform owns, and the bookkeeping that guards it.

``State`` is frozen and cheap to edit: ``with_resource``/``without``/``edited``
copy one dict and check only what the edit touches, so that recording one
action costs the same whether the state holds 10 kernels or 1,000. Its JSON
form (``to_dict``) is the file backend's format, the format of recovery files
and of ``kernelform state pull``; ``from_dict`` refuses anything else with a
message that says what is wrong.

The state holds no token and has no field for one: credentials stay in the
environment.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kernelform.errors import StateCorrupt
from kernelform.recipe import FIELD_NAMES as RECIPE_FIELDS
from kernelform.recipe import Recipe

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1 had no setup digest and no taint; both read as None

STATE_KEYS = ("version", "serial", "lineage", "resources")
RESOURCE_KEYS = (
    "address",
    "server",
    "kernel_id",
    *RECIPE_FIELDS,
    "started_at",
    "pending",
    "tainted",
)
LOCK_KEYS = ("id", "pid", "host", "operation", "since")

_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})")


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2026-11-28T00:10:00Z``."""
    return _utc(moment, "time").replace(tzinfo=None).isoformat() + "Z"


def parse_time(text: str) -> datetime:
    """Read what ``format_time`` writes (any offset is accepted); aware UTC.

    Done by hand because ``datetime.fromisoformat`` of Python 3.10 rejects ``Z``.
    """
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time like '2026-11-28T00:10:00Z'")
    base, fraction, zone = match.groups()
    micro = f".{fraction.ljust(6, '0')}" if fraction else ""
    offset = "+00:00" if zone == "Z" else zone
    try:
        moment = datetime.fromisoformat(base + micro + offset)
    except ValueError as e:
        raise ValueError(f"{text!r} is not a valid time: {e}") from None
    return moment.astimezone(timezone.utc)


def _utc(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ValueError(f"{what} must be a datetime, not {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, not {moment!r}")
    return moment.astimezone(timezone.utc)


def check_keys(data: Mapping[str, Any], expected: tuple[str, ...], *, optional: set[str]) -> None:
    """Raise ``ValueError`` naming missing and unknown keys of *data*."""
    missing = [k for k in expected if k not in data and k not in optional]
    unknown = sorted(k for k in data if k not in expected)
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")


def kind_of(value: Any) -> str:
    """A JSON value's kind, for messages: "an object", "a string"..."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One kernel kernelform owns.

    ``pending`` marks a start that was recorded before its request and not
    yet confirmed, so that a crash between the request and the answer leaves a
    trace the next run can check. ``tainted`` (Terraform's word) says why a
    kernel that was started or restarted never became ready (it died, stayed
    silent, or its setup failed): the next plan restarts or starts it again.
    """

    address: str
    server: str
    kernel_id: str
    recipe: Recipe
    started_at: datetime
    pending: bool = False
    tainted: str | None = None

    def __post_init__(self) -> None:
        for name in ("address", "server", "kernel_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, not {value!r}")
        if not isinstance(self.recipe, Recipe):
            raise ValueError(f"recipe must be a Recipe, not {self.recipe!r}")
        if not isinstance(self.pending, bool):
            raise ValueError(f"pending must be true or false, not {self.pending!r}")
        if self.tainted is not None and not isinstance(self.tainted, str):
            raise ValueError(f"tainted must be a string or null, not {self.tainted!r}")
        object.__setattr__(self, "started_at", _utc(self.started_at, "started_at"))

    @property
    def owner_key(self) -> tuple[str, str]:
        """A kernel is one (server, id) pair; only one address may own it."""
        return self.server, self.kernel_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "server": self.server,
            "kernel_id": self.kernel_id,
            **self.recipe.to_dict(),
            # (started_at is aware UTC since __post_init__: the fast form of format_time)
            "started_at": self.started_at.replace(tzinfo=None).isoformat() + "Z",
            "pending": self.pending,
            "tainted": self.tainted,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Resource:
        """Build from ``to_dict`` output; raises ``ValueError`` saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, found {kind_of(data)}")
        check_keys(data, RESOURCE_KEYS, optional={"pending", "tainted", *RECIPE_FIELDS[1:]})
        started = data["started_at"]
        if not isinstance(started, str):
            raise ValueError(f"started_at must be a string, not {started!r}")
        return cls(
            address=data["address"],
            server=data["server"],
            kernel_id=data["kernel_id"],
            recipe=Recipe.from_dict(data),
            started_at=parse_time(started),
            pending=data.get("pending", False),
            tainted=data.get("tainted"),
        )


class Resources(Mapping[str, Resource]):
    """An immutable mapping of address to resource, iterated in address order.

    It also indexes who owns each (server, kernel id), so that an edit checks
    in constant time that no kernel gets two addresses.
    """

    __slots__ = ("_items", "_order", "_owners")

    def __init__(self, items: Mapping[str, Resource] | None = None) -> None:
        self._items: dict[str, Resource] = {}
        self._owners: dict[tuple[str, str], str] = {}
        self._order: tuple[str, ...] | None = None
        for address, resource in (items or {}).items():
            if not isinstance(resource, Resource):
                raise ValueError(f"resource {address!r} is not a Resource: {resource!r}")
            if address != resource.address:
                raise ValueError(f"resource listed as {address!r} has address {resource.address!r}")
            self._claim(resource)
            self._items[address] = resource

    def _claim(self, resource: Resource) -> None:
        owner = self._owners.get(resource.owner_key)
        if owner is not None and owner != resource.address:
            raise ValueError(
                f"kernel {resource.kernel_id} on server {resource.server} is claimed"
                f" by both {owner} and {resource.address}"
            )
        self._owners[resource.owner_key] = resource.address

    def edited(self, puts: Iterable[Resource], drops: Iterable[str]) -> Resources:
        """A copy without *drops*, then with *puts* added or replacing their address."""
        copy = Resources.__new__(Resources)
        copy._items = dict(self._items)
        copy._owners = dict(self._owners)
        copy._order = None
        for address in drops:
            old = copy._items.pop(address, None)
            if old is not None and copy._owners.get(old.owner_key) == address:
                del copy._owners[old.owner_key]
        for resource in puts:
            old = copy._items.get(resource.address)
            if old is not None and copy._owners.get(old.owner_key) == resource.address:
                del copy._owners[old.owner_key]
            copy._claim(resource)
            copy._items[resource.address] = resource
        return copy

    def owner_of(self, server: str, kernel_id: str) -> str | None:
        """The address that owns kernel *kernel_id* on *server*, if any."""
        return self._owners.get((server, kernel_id))

    def __getitem__(self, address: str) -> Resource:
        return self._items[address]

    def __iter__(self) -> Iterator[str]:
        if self._order is None:
            self._order = tuple(sorted(self._items))
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, address: object) -> bool:
        return address in self._items

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Resources):
            return self._items == other._items
        return NotImplemented if not isinstance(other, Mapping) else dict(self) == dict(other)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return Resources, (self._items,)

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {self._items[k]!r}' for k in self)}}}"


def _check_serial(serial: object) -> None:
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise ValueError(f"serial must be a whole number >= 0, not {serial!r}")


@dataclass(frozen=True, kw_only=True)
class State:
    """Every kernel kernelform owns, with the bookkeeping that guards writes.

    ``serial`` is the serial of the stored state this one was read from (or
    written as); ``lineage`` identifies the state for its whole life.
    """

    version: int = FORMAT_VERSION
    serial: int
    lineage: str
    resources: Resources = field(default_factory=Resources)

    def __post_init__(self) -> None:
        if self.version != FORMAT_VERSION:
            raise ValueError(f"version must be {FORMAT_VERSION}, not {self.version!r}")
        _check_serial(self.serial)
        if not isinstance(self.lineage, str):
            raise ValueError(f"lineage must be a UUID string, not {self.lineage!r}")
        try:
            uuid.UUID(self.lineage)
        except ValueError:
            raise ValueError(f"lineage must be a UUID, not {self.lineage!r}") from None
        if not isinstance(self.resources, Resources):
            object.__setattr__(self, "resources", Resources(self.resources))

    def edited(self, *, puts: Iterable[Resource] = (), drops: Iterable[str] = ()) -> State:
        """A copy with *drops* removed and *puts* added (each replacing its address)."""
        return self._derived(self.serial, self.resources.edited(puts, drops))

    def at_serial(self, serial: int) -> State:
        """A copy at *serial* (what a store wrote it as)."""
        _check_serial(serial)
        return self._derived(serial, self.resources)

    def _derived(self, serial: int, resources: Resources) -> State:
        """A state from this valid one, without checking version and lineage again: an
        action records twice, and a check per record would cost more than the record."""
        derived = object.__new__(State)
        for name, value in (
            ("version", self.version),
            ("serial", serial),
            ("lineage", self.lineage),
            ("resources", resources),
        ):
            object.__setattr__(derived, name, value)
        return derived

    def with_resource(self, resource: Resource) -> State:
        """A copy with *resource* added, or replacing the one at its address."""
        return self.edited(puts=[resource])

    def without(self, address: str) -> State:
        """A copy without the resource at *address* (``self`` if there is none)."""
        if address not in self.resources:
            return self
        return self.edited(drops=[address])

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "serial": self.serial,
            "lineage": self.lineage,
            "resources": {a: r.to_dict() for a, r in self.resources.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> State:
        """Validate and build; ``StateCorrupt`` names *source* (e.g. the path) and the problem."""
        if isinstance(data, dict) and "terraform_version" in data:
            raise StateCorrupt(f"{source} is a Terraform state, not a kernelform state")
        if isinstance(data, dict) and is_newer(data):
            raise StateCorrupt(
                f"{source} was written by a newer kernelform"
                f" (format {data['version']}); upgrade kernelform"
                f" (this one reads format {FORMAT_VERSION})"
            )
        try:
            return cls._parse(data)
        except ValueError as e:
            raise StateCorrupt(f"{source} is not a valid kernelform state: {e}") from None

    @classmethod
    def _parse(cls, data: Any) -> State:
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {kind_of(data)}")
        version = data.get("version")
        if "version" not in data:
            raise ValueError("it has no format version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"version must be a whole number, not {version!r}")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"unknown format version {version}")
        check_keys(data, STATE_KEYS, optional=set())
        table = data["resources"]
        if not isinstance(table, dict):
            raise ValueError(f"resources must be an object, not {kind_of(table)}")
        resources: dict[str, Resource] = {}
        for address, entry in table.items():
            try:
                resources[address] = Resource.from_dict(entry)
            except ValueError as e:
                raise ValueError(f"resources[{address!r}]: {e}") from None
        return cls(
            serial=data["serial"],
            lineage=data["lineage"],
            resources=Resources(resources),
        )


def new_state() -> State:
    """An empty state with serial 0 and a fresh lineage."""
    return State(serial=0, lineage=str(uuid.uuid4()))


def is_newer(data: Mapping[str, Any]) -> bool:
    """Whether *data* claims a format version above the one this kernelform reads."""
    version = data.get("version")
    return isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION


@dataclass(frozen=True, kw_only=True)
class LockInfo:
    """Who holds the state lock. ``pid`` 0 means the holder could not be read."""

    id: str
    pid: int
    host: str
    operation: str
    since: datetime

    def describe(self) -> str:
        since = format_time(self.since.replace(microsecond=0))
        if self.pid <= 0:
            return f"held by an unknown process since {since} (the lock names no holder)"
        return f"held by pid {self.pid} on host {self.host} since {since} ({self.operation})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "host": self.host,
            "operation": self.operation,
            "since": format_time(self.since),
        }

    @classmethod
    def from_dict(cls, data: Any) -> LockInfo:
        """Build from ``to_dict`` output; raises ``ValueError`` if it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, found {kind_of(data)}")
        check_keys(data, LOCK_KEYS, optional=set())
        pid, since = data["pid"], data["since"]
        texts = [data[k] for k in ("id", "host", "operation")]
        if not all(isinstance(t, str) for t in texts) or not isinstance(since, str):
            raise ValueError("id, host, operation and since must be strings")
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise ValueError(f"pid must be a whole number, not {pid!r}")
        return cls(
            id=data["id"],
            pid=pid,
            host=data["host"],
            operation=data["operation"],
            since=parse_time(since),
        )
