"""The PostgreSQL backend: one state per workspace, shared by every runner that has the URL.

A CI runner's disk is thrown away after each job; a state in a database
outlives it, and every runner sees the same state and the same lock.

Tables, in a schema of their own (``kernelform`` unless the URL's ``schema``
query parameter or the ``schema`` option says otherwise), created on first
use under a transaction-scoped advisory lock so that two first runs do not
race:

* ``meta``: ``schema_version``, the version of these tables. A newer one is
  refused (upgrade kernelform), as a newer state file is.
* ``workspaces``: a row per workspace with its lineage, serial and format
  version.
* ``resources``: a row per kernel (the ``Resource`` JSON of the file format).
* ``locks``: the holder record of a workspace's lock (id, pid, host,
  operation, since, and the database session holding the lock).

Recording one action is ONE statement, so one transaction and one round
trip: it bumps the workspace's serial only where it still is the serial this
run read (``UPDATE ... WHERE serial = %s AND lineage = %s``; the database does
the stale check, under its row lock) and adds or removes only the rows the
action touched. Its cost does not depend on the number of kernels.

Locking: ``pg_try_advisory_lock`` on a key derived from schema and workspace,
on the store's one connection, held from the read to the last write. The
database releases it when that connection ends: the holder killed, its
runner lost, its network cut (kernelform asks the server for TCP keepalives
of 15 s x 3 so that a cut is noticed within a minute). The holder record is
written beside it, so a second run names the holder at once; a record whose
advisory lock is free is stale and simply overwritten by the next locker.
``force-unlock`` refuses a holder alive on this host; a session held by a
process elsewhere is ended (``pg_terminate_backend``) once the user confirmed,
which is safe: that run can write nothing more without its connection.

A connection lost while the lock is held is never silently reopened: the lock
went with it, so every later write fails (saving the run's recovery file) and
the executor starts no new action; a run that needed no write after the loss
still ends with an error at release, since another run may have held the lock
meanwhile.

The password is kept in a ``Secret`` and given to libpq only when
connecting: the store's ``location``, its ``repr``, and every message name the
database by a URL without it. Every psycopg exception is translated here into
the ``kernelform.errors`` tree.

What kernelform knows of a PostgreSQL location without psycopg (its schemes,
which query parameters hold secrets, the extra that installs the driver) is its
kind, ``kinds.POSTGRES``: redaction and refusals never import this module, which
the registry (``location``) imports only to open a location.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from kernelform.errors import StaleState, StateCorrupt, StateError, StateUnavailable
from kernelform.hooks import NO_HOOKS, Hooks
from kernelform.masking import Redactor, Secret
from kernelform.state.backend import DEFAULT_WORKSPACE, STATE_DIR, Backend, check_workspace
from kernelform.state.kinds import POSTGRES, UNREADABLE_URL, WrittenURL
from kernelform.state.model import LockInfo, Resource, State
from kernelform.state.store import StateStore, new_lock_info

SCHEMA_VERSION = 1
DEFAULT_SCHEMA = "kernelform"
SCHEMA_PARAM = "schema"
POLL_INTERVAL = 0.25
HOLDER_WAIT = 0.5
TERMINATE_WAIT_MS = 5000

# libpq parameters kernelform sets unless the URL does.
CONNECT_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "kernelform",
    "keepalives": "1",
    "keepalives_idle": "15",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
# Asked of the server for this session: notice a vanished client (and free its
# advisory lock) within about a minute instead of the system's two hours.
SERVER_KEEPALIVES = (
    "-c tcp_keepalives_idle=15 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class PostgresURL:
    """A parsed ``postgresql://`` URL: libpq parameters, secrets apart, and the schema."""

    params: dict[str, str]
    secrets: dict[str, Secret] = field(repr=False)
    schema: str = DEFAULT_SCHEMA

    @property
    def display(self) -> str:
        """The URL without any secret, in one canonical form (for messages and plans)."""
        params = dict(self.params)
        user = params.pop("user", "")
        host = params.pop("host", "")
        port = params.pop("port", "")
        database = params.pop("dbname", "")
        if ":" in host and "," not in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        netloc = (quote(user, safe="") + "@" if user else "") + quote(host, safe="[]:,")
        netloc += f":{port}" if port else ""
        query = sorted(params.items())
        if self.schema != DEFAULT_SCHEMA:
            query.append((SCHEMA_PARAM, self.schema))
        tail = f"?{urlencode(query)}" if query else ""
        return f"postgresql://{netloc}/{quote(database, safe='')}{tail}"

    @property
    def server(self) -> str:
        """``host:port (database NAME)``, for messages."""
        host = self.params.get("host") or self.params.get("hostaddr") or "localhost"
        port = self.params.get("port") or "5432"
        where = f"socket {host}" if host.startswith("/") else f"{host}:{port}"
        database = self.params.get("dbname") or self.params.get("user") or "(default)"
        return f"{where} (database {database})"

    @property
    def secret_values(self) -> list[str]:
        return [s.reveal() for s in self.secrets.values() if s.reveal()]

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``, the secrets included."""
        args: dict[str, Any] = {**CONNECT_DEFAULTS, **self.params}
        args["options"] = f"{SERVER_KEEPALIVES} {self.params.get('options', '')}".strip()
        for name, secret in self.secrets.items():
            args[name] = secret.reveal()
        return args


def parse_url(url: str, *, schema: str | None = None) -> PostgresURL:
    """Parse a libpq URI; ``schema`` (a query parameter, or the argument) is kernelform's.

    The URL is read as written once (``WrittenURL``: its masked form for messages,
    its secrets), then by libpq (``conninfo_to_dict``: the parameters), and refused
    unless both readings agree on its user and password.
    """
    try:
        written = WrittenURL.read(url)
    except ValueError as e:
        raise StateError(f"{UNREADABLE_URL} is not a valid PostgreSQL URL: {e}") from None
    if _userinfo_as_libpq_reads(url) != written.userinfo:
        raise _unencoded()
    shown = written.masked(POSTGRES.secret_params)
    if written.split.scheme not in POSTGRES.schemes:
        raise StateError(f"{shown} is not a PostgreSQL URL (it must start with postgresql://)")
    chosen = schema or DEFAULT_SCHEMA
    rest = []
    for key, value in written.pairs:
        if key == SCHEMA_PARAM:
            chosen = schema or value
        else:
            rest.append((key, value))
    if not _IDENTIFIER.fullmatch(chosen):
        raise StateError(
            f"{shown}: schema {chosen!r} is not a plain PostgreSQL name"
            " (letters, digits and _, not starting with a digit)"
        )
    split = written.split
    # Built by hand: urlunsplit drops an empty host's "//" (postgresql:///db?host=/run).
    cleaned = f"{split.scheme}://{split.netloc}{split.path}" + (
        f"?{urlencode(rest)}" if rest else ""
    )
    try:
        parsed = conninfo_to_dict(cleaned)
    except psycopg.Error as e:
        reason = " ".join(redact(str(e), written.secrets(POSTGRES.secret_params)).split())
        raise StateError(f"{shown} is not a valid PostgreSQL URL: {reason}") from None
    _check_read_alike(written, parsed)
    secret = POSTGRES.secret_params
    params = {k: str(v) for k, v in parsed.items() if k not in secret}
    secrets = {k: Secret(str(v)) for k, v in parsed.items() if k in secret}
    return PostgresURL(params=params, secrets=secrets, schema=chosen)


def _userinfo_as_libpq_reads(url: str) -> str | None:
    """The ``user:password`` part as libpq cuts it: up to the first ``@``, if that
    comes before the first ``/``."""
    rest = url.partition("://")[2]
    at, slash = rest.find("@"), rest.find("/")
    return rest[:at] if at != -1 and (slash == -1 or at < slash) else None


def _unencoded() -> StateError:
    return StateError(
        "the PostgreSQL state URL does not read as one URL: a user name or password in it"
        " holds an unencoded '@', '/', '?', '#' or ':'; percent-encode them (@ as %40, / as"
        " %2F, ? as %3F, # as %23, : as %3A), in the variable it comes from too"
    )


def _check_read_alike(written: WrittenURL, parsed: dict[str, Any]) -> None:
    """Refuse a URL that libpq reads otherwise than a URL parser does.

    An unencoded ``@ / ? #`` in the password (``kf:ab@cd@db``) makes libpq take
    part of it for the host or the database, and Python's parser another part:
    the secrets kernelform hides would not be the ones that show in libpq's
    messages. So the user and password must read the same both ways (checked on
    the text before anything quotes the URL, then on libpq's own reading), and no
    host, port or database may hold an ``@``. The URL is not quoted: it may hold
    a secret.
    """
    query = dict(written.pairs)
    user = unquote(written.user) if written.user is not None else query.get("user")
    password = (
        unquote(written.password) if written.password is not None else query.get("password")
    )
    seen = (parsed.get("user"), parsed.get("password"))
    odd = any("@" in str(parsed.get(key, "")) for key in ("host", "hostaddr", "port", "dbname"))
    if (user, password) != seen or odd:
        raise _unencoded()


def redact(text: str, secrets: list[str]) -> str:
    return Redactor(secrets).redact(text)


def advisory_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for *parts* (stable across processes)."""
    digest = hashlib.blake2b("\0".join(("kernelform", *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _primary(error: psycopg.Error) -> str:
    message = getattr(error.diag, "message_primary", None)
    return str(message or error or type(error).__name__)


def libpq_reason(error: BaseException, secrets: list[str]) -> str:
    """libpq's reason for a failed connection or query, as one short clause."""
    lines = [line.strip() for line in redact(str(error), secrets).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    if " failed: " in text:
        text = text.rsplit(" failed: ", 1)[1]
    text = re.sub(r"^(FATAL|ERROR):\s+", "", text)
    lowered = text.lower()
    if "timeout expired" in lowered:
        return "no answer within the connect timeout (connect_timeout in the URL; default 10 s)"
    if "connection refused" in lowered:
        return "connection refused; is the database running, on that port?"
    if "password authentication failed" in lowered:
        return f"{text}; check the password (in the URL, PGPASSWORD or ~/.pgpass)"
    if "no password supplied" in lowered:
        return "the server wants a password and none was given (URL, PGPASSWORD or ~/.pgpass)"
    if "ssl was required" in lowered or "does not support ssl" in lowered:
        return f"{text} (sslmode in the URL asks for TLS and the server does not offer it)"
    return text


class PostgresStateStore(StateStore):
    """The state of one workspace in a PostgreSQL database."""

    def __init__(
        self,
        url: str,
        *,
        workspace: str = "default",
        recovery_dir: Path,
        schema: str | None = None,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self.target = parse_url(url, schema=schema)
        self.workspace = workspace
        self.schema = self.target.schema
        super().__init__(
            location=f"{self.target.display} (workspace {workspace})",
            recovery_dir=recovery_dir,
            recovery_name=f"postgres-{workspace}",
            hooks=hooks,
        )
        self._key = advisory_key(self.schema, workspace)
        self._setup_key = advisory_key("setup", self.schema)
        self._conn: psycopg.Connection[Any] | None = None
        self._guard = threading.RLock()
        self._held: LockInfo | None = None
        self._ready = False
        self._sql = _Statements(self.schema)

    def __repr__(self) -> str:
        return f"PostgresStateStore({self.location!r})"

    @property
    def secrets(self) -> list[str]:
        """The secrets this store was given, for the run's redaction."""
        return self.target.secret_values

    # -- the connection ---------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._held is not None:
            raise StateUnavailable(
                f"lost the connection to the PostgreSQL state at {self.target.server} while"
                " this run held its lock, which went with it: nothing more is written"
            )
        try:
            conn = psycopg.connect(autocommit=True, **self.target.connect_args())
        except psycopg.Error as e:
            reason = libpq_reason(e, self.secrets)
            raise StateUnavailable(
                f"cannot connect to the PostgreSQL state at {self.target.server}: {reason}"
            ) from None
        self._conn = conn
        self._ready = False
        return conn

    @contextmanager
    def _talking(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection, for one exchange; psycopg errors come out translated."""
        with self._guard:
            conn = self._connection()
            try:
                yield conn
            except psycopg.Error as e:
                raise self._translate(e, conn) from None

    def _translate(self, error: psycopg.Error, conn: psycopg.Connection[Any]) -> StateError:
        if isinstance(error, pgerrors.InsufficientPrivilege):
            return StateError(f"the state at {self.location}: {self._privilege(error, conn)}")
        if conn.closed or isinstance(error, psycopg.OperationalError):
            reason = libpq_reason(error, self.secrets)
            return StateUnavailable(
                f"lost the connection to the PostgreSQL state at {self.target.server}: {reason}"
            )
        detail = redact(_primary(error), self.secrets)
        return StateError(f"the state at {self.location}: the database refused: {detail}")

    def _privilege(self, error: psycopg.Error, conn: psycopg.Connection[Any]) -> str:
        """What is denied, and the grant that would allow it."""
        primary = redact(_primary(error), self.secrets)
        user = conn.info.user
        match = re.match(r"permission denied for (\w+) (.+)", primary)
        kind, name = match.groups() if match else ("", "")
        if kind == "database":
            return (
                f"{primary}: the role {user} needs CREATE on database {name} to create the"
                f" schema {self.schema} (GRANT CREATE ON DATABASE {name} TO {user}), or an"
                f" administrator creates it for the role (CREATE SCHEMA {self.schema}"
                f" AUTHORIZATION {user})"
            )
        if kind == "schema":
            return (
                f"{primary}: the role {user} needs USAGE and CREATE on schema {name}"
                f" (GRANT USAGE, CREATE ON SCHEMA {name} TO {user})"
            )
        if kind in ("table", "relation"):
            return (
                f"{primary}: the role {user} needs SELECT, INSERT, UPDATE and DELETE on the"
                f" tables of schema {self.schema} (GRANT SELECT, INSERT, UPDATE, DELETE ON ALL"
                f" TABLES IN SCHEMA {self.schema} TO {user})"
            )
        return f"{primary} (role {user})"

    def close(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
            if conn is not None:
                with suppress(psycopg.Error):
                    conn.close()

    # -- the schema ---------------------------------------------------------------------

    def _ensure_schema(self, conn: psycopg.Connection[Any], *, create: bool) -> bool:
        """Whether the tables exist (creating them if *create*); refuse a newer schema."""
        if self._ready:
            return True
        version = self._schema_version(conn)
        if version is None:
            if not create:
                return False
            self._create_schema(conn)
            version = self._schema_version(conn)
        if version is None or version > SCHEMA_VERSION:
            raise StateCorrupt(
                f"the state at {self.location} uses the database schema version {version} "
                f"({self.schema}.meta), newer than this kernelform's ({SCHEMA_VERSION});"
                " upgrade kernelform"
            )
        self._ready = True
        return True

    def _schema_version(self, conn: psycopg.Connection[Any]) -> int | None:
        meta = sql.Identifier(self.schema, "meta").as_string(conn)
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [meta]).fetchone()
        if row is None or not row[0]:
            return None
        found = conn.execute(self._sql.version).fetchone()
        if found is None:
            return None
        try:
            return int(found[0])
        except ValueError:
            return SCHEMA_VERSION + 1  # not a version this kernelform wrote

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [self._setup_key])
            if self._schema_version(conn) is not None:
                return  # another run made it meanwhile
            exists = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema]
            ).fetchone()
            if exists is None:
                conn.execute(self._sql.create_schema)
            for statement in self._sql.create_tables:
                conn.execute(statement)
            conn.execute(self._sql.set_version, [str(SCHEMA_VERSION)])

    # -- reading --------------------------------------------------------------------------

    def _load(self) -> State | None:
        with self._talking() as conn:
            if not self._ensure_schema(conn, create=False):
                return None
            row = conn.execute(self._sql.load, {"ws": self.workspace}).fetchone()
        if row is None:
            return None
        version, lineage, serial, resources = row
        data = {"version": version, "serial": serial, "lineage": lineage, "resources": resources}
        return State.from_dict(data, source=f"the state at {self.location}")

    # -- writing -------------------------------------------------------------------------

    def _replace(self, state: State, *, previous: State | None) -> None:
        try:
            self.hooks.before_store_io(self.location)
            self._store_whole(state, previous)
        except (StaleState, StateCorrupt):
            raise
        except (StateError, OSError) as e:
            raise self.write_failed(state, e) from e

    def _store_whole(self, state: State, previous: State | None) -> None:
        expected = None if previous is None else (previous.lineage, previous.serial)
        addresses, datas = _rows(state.resources.values())
        with self._talking() as conn:
            self._ensure_schema(conn, create=True)
            try:
                with conn.transaction():
                    row = conn.execute(self._sql.lock_row, [self.workspace]).fetchone()
                    if (None if row is None else (row[0], row[1])) != expected:
                        raise self.stale(None if row is None else row[1], state)
                    conn.execute(
                        self._sql.upsert_workspace,
                        {
                            "ws": self.workspace,
                            "version": state.version,
                            "lineage": state.lineage,
                            "serial": state.serial,
                        },
                    )
                    conn.execute(self._sql.clear, [self.workspace])
                    conn.execute(
                        self._sql.insert,
                        {"ws": self.workspace, "addresses": addresses, "datas": datas},
                    )
            except pgerrors.UniqueViolation:
                raise self.stale(None, state) from None  # another run created it meanwhile

    def _append(self, base: State, written: State, puts: list[Resource], drops: list[str]) -> None:
        put_by_address = {r.address: r for r in puts}
        addresses, datas = _rows(put_by_address.values())
        dropped = [a for a in dict.fromkeys(drops) if a not in put_by_address]
        try:
            self.hooks.before_store_io(self.location)
            with self._talking() as conn:
                self._ensure_schema(conn, create=True)
                row = conn.execute(
                    self._sql.append,
                    {
                        "ws": self.workspace,
                        "serial": base.serial,
                        "lineage": base.lineage,
                        "drops": dropped,
                        "addresses": addresses,
                        "datas": datas,
                    },
                ).fetchone()
                if row is not None and row[0] == 1:
                    return
                stored = conn.execute(self._sql.head, [self.workspace]).fetchone()
        except (StateError, OSError) as e:
            raise self.write_failed(written, e) from e
        if stored is not None and stored[0] == base.lineage and stored[1] > base.serial:
            raise self.stale(stored[1], written)
        # Nothing stored yet for this workspace, another lineage, or a stored serial
        # behind this run's (an earlier write of this run failed): a whole write
        # creates it, catches up, or refuses (another lineage is never overwritten).
        self.write(base.edited(puts=puts, drops=drops))

    # -- locking ---------------------------------------------------------------------------

    @contextmanager
    def lock(self, *, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        info = self._acquire(operation, timeout)
        try:
            yield info
        except BaseException:
            self._release(info)
            raise
        if not self._release(info):
            raise StateUnavailable(
                f"lost the connection to the PostgreSQL state at {self.target.server} during"
                " this run, and the lock with it: what this run did is done and recorded, but"
                " another run may have acted meanwhile; run 'kernelform plan' to check"
            )

    def _acquire(self, operation: str, timeout: float) -> LockInfo:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            with self._guard:
                if self._held is not None:
                    raise self.locked_error(self._held, timeout)
                with self._talking() as conn:
                    self._ensure_schema(conn, create=True)
                    got = conn.execute("SELECT pg_try_advisory_lock(%s)", [self._key]).fetchone()
                    if got is not None and got[0]:
                        info = new_lock_info(operation, str(uuid.uuid4()))
                        try:
                            conn.execute(self._sql.set_holder, _holder_params(self.workspace, info))
                        except BaseException:
                            with suppress(psycopg.Error):
                                conn.execute("SELECT pg_advisory_unlock(%s)", [self._key])
                            raise
                        self._held = info
                        return info
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holder = self.lock_info()
                raise self.locked_error(holder or _unknown_holder(), timeout)
            time.sleep(min(POLL_INTERVAL, remaining))

    def _release(self, info: LockInfo) -> bool:
        """Give the lock back; False if it was already gone (its connection lost)."""
        with self._guard:
            self._held = None
            conn = self._conn
            if conn is None or conn.closed:
                self.close()
                return False
            try:
                conn.execute(self._sql.clear_holder, [self.workspace, info.id])
                row = conn.execute("SELECT pg_advisory_unlock(%s)", [self._key]).fetchone()
            except psycopg.Error:
                self.close()  # the lock goes with the connection
                return False
            return row is not None and bool(row[0])

    def _lock_state(self) -> tuple[int | None, LockInfo | None, int | None]:
        """(backend pid holding the advisory lock, holder record, its backend pid)."""
        unsigned = self._key & 0xFFFFFFFFFFFFFFFF
        with self._talking() as conn:
            holder_row = conn.execute(
                self._sql.advisory_holder, [unsigned >> 32, unsigned & 0xFFFFFFFF]
            ).fetchone()
            backend = None if holder_row is None else int(holder_row[0])
            if not self._ensure_schema(conn, create=False):
                return backend, None, None
            row = conn.execute(self._sql.get_holder, [self.workspace]).fetchone()
        if row is None:
            return backend, None, None
        lock_id, pid, host, operation, since, record_backend = row
        record = LockInfo(id=lock_id, pid=pid, host=host, operation=operation, since=since)
        return backend, record, record_backend

    def lock_info(self) -> LockInfo | None:
        deadline = time.monotonic() + HOLDER_WAIT
        while True:
            backend, record, record_backend = self._lock_state()
            if backend is None:
                return None
            if record is not None and record_backend == backend:
                return record
            if time.monotonic() >= deadline:
                return _unknown_holder()
            time.sleep(0.02)  # the holder has just locked: its record follows

    def left_behind(self) -> LockInfo | None:
        backend, record, _ = self._lock_state()
        return record if backend is None else None

    def _clear_left_behind(self, record: LockInfo) -> None:
        with self._talking() as conn:
            conn.execute(self._sql.clear_holder, [self.workspace, record.id])

    def _break_lock(self, holder: LockInfo) -> str:
        backend, record, record_backend = self._lock_state()
        if backend is None:
            if record is not None:
                self._clear_left_behind(record)
            return f"the lock was released meanwhile ({holder.describe()})"
        if record is None or record.id != holder.id or record_backend != backend:
            raise StateError(
                f"the lock on the state at {self.location} changed hands while it was being"
                " removed; nothing was changed, look again"
            )
        with self._talking() as conn:
            try:
                ended = conn.execute(
                    "SELECT pg_terminate_backend(%s, %s)", [backend, TERMINATE_WAIT_MS]
                ).fetchone()
            except pgerrors.InsufficientPrivilege:
                raise StateError(
                    f"cannot end the database session (backend pid {backend}) that holds the"
                    f" lock on the state at {self.location}: the role {conn.info.user} may not"
                    " end another role's session; stop that process, or ask a database"
                    f" administrator to run SELECT pg_terminate_backend({backend})"
                ) from None
            if ended is None or not ended[0]:
                raise StateError(
                    f"the database session (backend pid {backend}) holding the lock on the"
                    f" state at {self.location} did not end within"
                    f" {TERMINATE_WAIT_MS // 1000}s; try again"
                )
            conn.execute(self._sql.clear_holder, [self.workspace, holder.id])
        return (
            f"ended the database session that held it (backend pid {backend}), which released"
            f" the lock, and removed its holder record ({holder.describe()})"
        )

    # -- workspaces ---------------------------------------------------------------------

    def stored_workspaces(self) -> list[str]:
        """The workspaces that hold a state in this schema."""
        with self._talking() as conn:
            if not self._ensure_schema(conn, create=False):
                return []
            return [str(row[0]) for row in conn.execute(self._sql.workspaces).fetchall()]

    def drop_workspace(self) -> None:
        """Remove this workspace's rows (the caller checked it is empty, under the lock)."""
        with self._talking() as conn:
            if self._ensure_schema(conn, create=False):
                conn.execute(self._sql.drop, [self.workspace])


class PostgresBackend(Backend):
    """Every workspace in the tables of one schema of one database."""

    def __init__(
        self,
        url: str,
        *,
        recovery_dir: Path,
        schema: str | None = None,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self.url = url
        self.schema = schema
        self.recovery_dir = recovery_dir
        self.hooks = hooks
        self.description = parse_url(url, schema=schema).display

    def store(self, workspace: str) -> PostgresStateStore:
        return PostgresStateStore(
            self.url,
            workspace=check_workspace(workspace),
            recovery_dir=self.recovery_dir,
            schema=self.schema,
            hooks=self.hooks,
        )

    def stored_workspaces(self) -> list[str]:
        store = self.store(DEFAULT_WORKSPACE)
        try:
            return store.stored_workspaces()
        finally:
            store.close()

    def _remove(self, store: StateStore) -> None:
        assert isinstance(store, PostgresStateStore)
        store.drop_workspace()


def open_backend(location: str, *, manifest_dir: Path, hooks: Hooks = NO_HOOKS) -> Backend:
    """The database at the URL *location*; recovery files go in ``.kernelform/`` in
    *manifest_dir*."""
    recovery_dir = manifest_dir.absolute() / STATE_DIR
    return PostgresBackend(location, recovery_dir=recovery_dir, hooks=hooks)

def _unknown_holder() -> LockInfo:
    return LockInfo(
        id="",
        pid=0,
        host="",
        operation="",
        since=datetime.now(timezone.utc).replace(microsecond=0),
    )


def _holder_params(workspace: str, info: LockInfo) -> dict[str, Any]:
    return {
        "ws": workspace,
        "id": info.id,
        "pid": info.pid,
        "host": info.host,
        "operation": info.operation,
        "since": info.since,
    }


def _rows(resources: Any) -> tuple[list[str], list[Jsonb]]:
    addresses: list[str] = []
    datas: list[Jsonb] = []
    for resource in resources:
        addresses.append(resource.address)
        datas.append(Jsonb(resource.to_dict()))
    return addresses, datas


class _Statements:
    """The SQL, with the schema name quoted once."""

    def __init__(self, schema: str) -> None:
        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=sql.Identifier(schema))

        self.create_schema = q("CREATE SCHEMA {s}")
        self.create_tables = [
            q("CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL)"),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.workspaces ("
                " name text PRIMARY KEY,"
                " version integer NOT NULL,"
                " lineage text NOT NULL,"
                " serial bigint NOT NULL,"
                " updated_at timestamptz NOT NULL DEFAULT now())"
            ),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.resources ("
                " workspace text NOT NULL REFERENCES {s}.workspaces (name) ON DELETE CASCADE,"
                " address text NOT NULL,"
                " data jsonb NOT NULL,"
                " PRIMARY KEY (workspace, address))"
            ),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.locks ("
                " workspace text PRIMARY KEY,"
                " id text NOT NULL,"
                " pid integer NOT NULL,"
                " host text NOT NULL,"
                " operation text NOT NULL,"
                " since timestamptz NOT NULL,"
                " backend_pid integer NOT NULL)"
            ),
        ]
        self.set_version = q(
            "INSERT INTO {s}.meta (key, value) VALUES ('schema_version', %s)"
            " ON CONFLICT (key) DO NOTHING"
        )
        self.version = q("SELECT value FROM {s}.meta WHERE key = 'schema_version'")
        self.load = q(
            "SELECT w.version, w.lineage, w.serial,"
            " (SELECT coalesce(jsonb_object_agg(r.address, r.data), '{{}}'::jsonb)"
            "  FROM {s}.resources r WHERE r.workspace = w.name)"
            " FROM {s}.workspaces w WHERE w.name = %(ws)s"
        )
        self.head = q("SELECT lineage, serial FROM {s}.workspaces WHERE name = %s")
        self.lock_row = q("SELECT lineage, serial FROM {s}.workspaces WHERE name = %s FOR UPDATE")
        self.upsert_workspace = q(
            "INSERT INTO {s}.workspaces (name, version, lineage, serial)"
            " VALUES (%(ws)s, %(version)s, %(lineage)s, %(serial)s)"
            " ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version,"
            " lineage = EXCLUDED.lineage, serial = EXCLUDED.serial, updated_at = now()"
        )
        self.clear = q("DELETE FROM {s}.resources WHERE workspace = %s")
        self.insert = q(
            "INSERT INTO {s}.resources (workspace, address, data)"
            " SELECT %(ws)s, x.address, x.data"
            " FROM unnest(%(addresses)s::text[], %(datas)s::jsonb[]) AS x(address, data)"
        )
        # One statement, so one transaction and one round trip; the serial check
        # is the database's, under the row lock the UPDATE takes.
        self.append = q(
            "WITH bump AS ("
            "  UPDATE {s}.workspaces SET serial = serial + 1, updated_at = now()"
            "  WHERE name = %(ws)s AND serial = %(serial)s AND lineage = %(lineage)s"
            "  RETURNING name"
            "), dropped AS ("
            "  DELETE FROM {s}.resources r USING bump"
            "  WHERE r.workspace = bump.name AND r.address = ANY(%(drops)s::text[])"
            "), put AS ("
            "  INSERT INTO {s}.resources (workspace, address, data)"
            "  SELECT bump.name, x.address, x.data"
            "  FROM bump, unnest(%(addresses)s::text[], %(datas)s::jsonb[]) AS x(address, data)"
            "  ON CONFLICT (workspace, address) DO UPDATE SET data = EXCLUDED.data"
            ") SELECT count(*) FROM bump"
        )
        self.set_holder = q(
            "INSERT INTO {s}.locks (workspace, id, pid, host, operation, since, backend_pid)"
            " VALUES (%(ws)s, %(id)s, %(pid)s, %(host)s, %(operation)s, %(since)s,"
            " pg_backend_pid())"
            " ON CONFLICT (workspace) DO UPDATE SET id = EXCLUDED.id, pid = EXCLUDED.pid,"
            " host = EXCLUDED.host, operation = EXCLUDED.operation, since = EXCLUDED.since,"
            " backend_pid = EXCLUDED.backend_pid"
        )
        self.get_holder = q(
            "SELECT id, pid, host, operation, since, backend_pid FROM {s}.locks"
            " WHERE workspace = %s"
        )
        self.clear_holder = q("DELETE FROM {s}.locks WHERE workspace = %s AND id = %s")
        self.advisory_holder = sql.SQL(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1"
        )
        self.workspaces = q("SELECT name FROM {s}.workspaces ORDER BY name")
        self.drop = q("DELETE FROM {s}.workspaces WHERE name = %s")
