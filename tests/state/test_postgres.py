"""The PostgreSQL backend against a real PostgreSQL: schema, rows, lock, errors, secrets.

The contract every backend keeps runs in ``test_contract.py``; here is what
only this backend has: the tables and their version, one statement per
recorded action, the advisory lock that dies with its holder's connection,
the holder record and force-unlock, the connection errors (down, wrong
password, TLS refused, timeout, lost mid-run), the missing privileges, and
the password that appears nowhere.

A second process holding the lock is a child Python (``CHILD``) that locks and
waits for a line on stdin, or for its death.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from kernelform.errors import StateCorrupt, StateError, StateLocked, StateUnavailable
from kernelform.state import FORMAT_VERSION, State, new_state
from kernelform.state.location import (
    check_workspace,
    mask_url,
    open_backend,
    open_store,
    require_driver,
    url_secrets,
)
from kernelform.state.postgres import (
    SCHEMA_VERSION,
    PostgresStateStore,
    parse_url,
)
from tests.support.fakehttp import HangingServer
from tests.support.pgcluster import Cluster, free_port, unique_name
from tests.support.resources import resource

ROOT = Path(__file__).resolve().parents[2]


def schema_of(url: str) -> str:
    match = re.search(r"schema=(\w+)", url)
    assert match is not None
    return match.group(1)


@pytest.fixture
def make(pg_url: str, tmp_path: Path) -> Iterator[Any]:
    made: list[PostgresStateStore] = []

    def factory(url: str = pg_url, **options: Any) -> PostgresStateStore:
        options.setdefault("recovery_dir", tmp_path / ".kernelform")
        store = PostgresStateStore(url, **options)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


def rows(cluster: Cluster, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return list(cluster.execute(query, *params))


# --- the URL and the secret -------------------------------------------------------


def test_the_location_is_canonical_and_never_holds_a_secret() -> None:
    url = (
        "postgres://kf:p%40ss%2Fw0rd@db.example:6543/states?sslmode=require"
        "&sslpassword=keypass&application_name=ci&schema=team_a"
    )
    parsed = parse_url(url)
    assert parsed.display == (
        "postgresql://kf@db.example:6543/states?application_name=ci&sslmode=require&schema=team_a"
    )
    assert parsed.schema == "team_a"
    assert parsed.server == "db.example:6543 (database states)"
    assert sorted(parsed.secret_values) == ["keypass", "p@ss/w0rd"]
    assert set(url_secrets(url)) == {"keypass", "p@ss/w0rd", "p%40ss%2Fw0rd"}
    assert mask_url(url) == (
        "postgres://kf:***@db.example:6543/states?sslmode=require&sslpassword=***"
        "&application_name=ci&schema=team_a"
    )
    store = PostgresStateStore(url, workspace="ci", recovery_dir=Path("/nonexistent"))
    shown = " ".join([store.location, repr(store), repr(parsed), str(vars(parsed))])
    for secret in ("p@ss/w0rd", "p%40ss%2Fw0rd", "keypass"):
        assert secret not in shown
    assert store.location.endswith("(workspace ci)")
    assert parse_url(url.replace("postgres://", "postgresql://")).display == parsed.display


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://kf:hunter2@h/db?schema=no-dash", "is not a plain PostgreSQL name"),
        ("postgresql://kf:hunter2@h/db?bogus=1", "is not a valid PostgreSQL URL"),
        ("postgresql://kf:hunter2@h/db?sslmode=required&x=%zz", "is not a valid PostgreSQL URL"),
    ],
)
def test_a_bad_url_is_one_line_without_the_password(url: str, message: str) -> None:
    with pytest.raises(StateError, match=message) as caught:
        parse_url(url)
    assert "hunter2" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("mark", ["@", "/", "?", "#"])
def test_a_password_with_an_unencoded_delimiter_is_refused_and_never_shown(mark: str) -> None:
    """libpq cuts ``kf:Zq7X<mark>Wv9R@h`` elsewhere than a URL parser does: part of the
    password became libpq's host or database, shown in its errors (a probe found
    ``… at Wv9R@127.0.0.1:15432``). Refused before anything quotes the URL."""
    password = f"Zq7X{mark}Wv9R"
    for url in (
        f"postgresql://kf:{password}@127.0.0.1:15432/kernelform",
        f"postgresql://kf:{password}@127.0.0.1:15432/kernelform?schema=team&sslmode=disable",
    ):
        with pytest.raises(StateError, match="percent-encode them") as caught:
            parse_url(url)
        text = str(caught.value)
        assert "Zq7X" not in text and "Wv9R" not in text and "\n" not in text, text
    encoded = parse_url(f"postgresql://kf:Zq7X{quote(mark, safe='')}Wv9R@127.0.0.1/kernelform")
    assert encoded.connect_args()["password"] == password


def test_a_socket_url_keeps_its_empty_host() -> None:
    parsed = parse_url("postgresql:///kernelform?host=/var/run/postgresql&schema=team")
    assert parsed.params["host"] == "/var/run/postgresql" and parsed.schema == "team"


def test_without_the_driver_a_url_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    url = "postgresql://kf:hunter2@db:5432/states"
    with pytest.raises(StateError) as caught:
        open_store(url, manifest_dir=Path.cwd())
    assert str(caught.value) == (
        "the state at postgresql://kf:***@db:5432/states is in PostgreSQL, and the PostgreSQL"
        " driver is not installed: run pip install 'kernelform[postgres]'"
    )
    with pytest.raises(StateError, match="kernelform\\[postgres\\]"):
        require_driver(url)


def test_workspace_names_are_checked() -> None:
    assert check_workspace("ci-2.staging_x") == "ci-2.staging_x"
    for bad in ("", "..", "a/b", "-x", "x" * 65, "é"):
        with pytest.raises(StateError, match="is not a workspace name"):
            check_workspace(bad)


# --- tables ------------------------------------------------------------------------


def test_reading_creates_nothing_and_the_first_lock_creates_the_tables(
    make: Any, pg_url: str, pg_cluster: Cluster
) -> None:
    schema = schema_of(pg_url)
    store = make()
    assert store.read().serial == 0
    assert store.lock_info() is None
    assert rows(pg_cluster, "SELECT 1 FROM pg_namespace WHERE nspname = %s", schema) == []
    with store.lock(operation="apply"):
        pass
    tables = rows(
        pg_cluster,
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
        schema,
    )
    assert [t for (t,) in tables] == ["locks", "meta", "resources", "workspaces"]
    assert rows(pg_cluster, f"SELECT value FROM {schema}.meta") == [(str(SCHEMA_VERSION),)]


def test_a_newer_schema_is_refused(make: Any, pg_url: str, pg_cluster: Cluster) -> None:
    store = make()
    store.write(new_state())
    schema = schema_of(pg_url)
    pg_cluster.execute(f"UPDATE {schema}.meta SET value = '{SCHEMA_VERSION + 1}'")
    for action in (make().read, lambda: make().lock(operation="plan").__enter__()):
        with pytest.raises(StateCorrupt, match=r"database schema version 2 .* upgrade kernelform"):
            action()


def test_a_newer_state_format_is_refused(make: Any, pg_url: str, pg_cluster: Cluster) -> None:
    make().write(new_state())
    pg_cluster.execute(f"UPDATE {schema_of(pg_url)}.workspaces SET version = {FORMAT_VERSION + 1}")
    with pytest.raises(StateCorrupt, match="newer kernelform"):
        make().read()


def test_a_resource_is_a_row_and_recording_touches_only_its_rows(
    make: Any, pg_url: str, pg_cluster: Cluster
) -> None:
    store = make()
    state = store.write(new_state().edited(puts=[resource(f"k{i:03d}") for i in range(300)]))
    schema = schema_of(pg_url)
    before = dict(rows(pg_cluster, f"SELECT address, xmin::text FROM {schema}.resources"))
    statements: list[str] = []
    real_execute = psycopg.Connection.execute

    def spy(conn: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return real_execute(conn, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.Connection, "execute", spy)
        state = store.record(state, puts=[resource("new")], drops=["k000"])
    assert len(statements) == 1, statements  # one statement: one transaction, one round trip
    after = dict(rows(pg_cluster, f"SELECT address, xmin::text FROM {schema}.resources"))
    changed = {a for a in after if before.get(a) != after[a]}
    assert changed == {"new"} and "k000" not in after and len(after) == 300
    assert rows(pg_cluster, f"SELECT serial FROM {schema}.workspaces") == [(state.serial,)]
    assert make().read() == state


def test_the_stale_check_is_the_databases(make: Any) -> None:
    """Two runs that read the same serial: exactly one of their records goes in."""
    first = make().write(new_state())
    stores = [make(), make()]
    bases = [s.read() for s in stores]
    results: list[str] = []

    def record(index: int) -> None:
        try:
            stores[index].record(bases[index], puts=[resource(f"r{index}")])
            results.append("ok")
        except StateError as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["StaleState", "ok"]
    assert make().read().serial == first.serial + 1


# --- workspaces ------------------------------------------------------------------------


def test_file_workspaces_live_in_directories(tmp_path: Path) -> None:
    backend = open_backend(None, manifest_dir=tmp_path)
    default = backend.store("default")
    staging = backend.store("staging")
    assert Path(default.location) == tmp_path / ".kernelform" / "state.json"
    assert Path(staging.location) == tmp_path / ".kernelform/workspaces/staging/state.json"
    staging.write(new_state().with_resource(resource("a")))
    assert default.read().resources == {}
    assert backend.workspaces() == ["default", "staging"]
    with staging.lock(operation="apply"), default.lock(operation="apply"):
        pass
    with pytest.raises(StateError, match="still records 1 kernel"):
        backend.delete_workspace("staging")
    staging.write(staging.read().without("a"))
    backend.delete_workspace("staging")
    assert not (tmp_path / ".kernelform/workspaces/staging").exists()
    assert backend.workspaces() == ["default"]


# --- the lock ---------------------------------------------------------------------------

CHILD = """
import sys
from pathlib import Path
from kernelform.errors import StateUnavailable
from kernelform.state.postgres import PostgresStateStore
store = PostgresStateStore(sys.stdin.readline().strip(), recovery_dir=Path(sys.argv[1]))
try:
    with store.lock(operation=sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.readline()
except StateUnavailable as e:
    print(e, flush=True)
    sys.exit(3)
print("released", flush=True)
"""


@pytest.fixture
def holder(pg_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), "apply"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(pg_url + "\n")  # the URL with its password never goes on a command line
    child.stdin.flush()
    assert child.stdout.readline() == "locked\n"
    yield child
    child.kill()
    child.wait()


def release(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def test_a_second_run_fails_at_once_naming_the_holder(
    make: Any, holder: subprocess.Popen[str], pg_url: str, pg_cluster: Cluster
) -> None:
    began = time.monotonic()
    store = make()
    with (
        pytest.raises(StateLocked, match=rf"locked: held by pid {holder.pid} on host .*\(apply\)"),
        store.lock(operation="plan"),
    ):
        pass
    assert time.monotonic() - began < 5  # at once: no lock timeout was given
    record = rows(pg_cluster, f"SELECT id, pid, operation FROM {schema_of(pg_url)}.locks")
    assert [(pid, op) for _, pid, op in record] == [(holder.pid, "apply")]
    release(holder)
    assert holder.wait(timeout=10) == 0
    assert rows(pg_cluster, f"SELECT id FROM {schema_of(pg_url)}.locks") == []
    with store.lock(operation="plan") as info:
        assert make().lock_info() == info


def test_lock_timeout_waits_for_the_holder(make: Any, holder: subprocess.Popen[str]) -> None:
    timer = threading.Timer(0.5, release, args=(holder,))
    began = time.monotonic()
    timer.start()
    try:
        with make().lock(operation="apply", timeout=30):
            waited = time.monotonic() - began
    finally:
        timer.cancel()
    assert 0.4 <= waited < 10
    with pytest.raises(StateLocked, match=r"still locked after 0\.3s"):
        other = make()
        with make().lock(operation="apply"), other.lock(operation="plan", timeout=0.3):
            pass


def test_a_killed_holder_frees_the_lock_at_once_and_its_record_is_overwritten(
    make: Any, holder: subprocess.Popen[str], pg_url: str, pg_cluster: Cluster
) -> None:
    holder.kill()
    holder.wait()
    store = make()
    # The server notices the closed connection at once: the lock is free, with no
    # force-unlock; the record left behind is stale and does not count.
    assert store.lock_info() is None
    left = rows(pg_cluster, f"SELECT pid FROM {schema_of(pg_url)}.locks")
    assert left == [(holder.pid,)]
    with store.lock(operation="apply") as info:
        assert make().lock_info() == info
        assert rows(pg_cluster, f"SELECT pid FROM {schema_of(pg_url)}.locks") == [(os.getpid(),)]


def test_force_unlock_clears_a_record_left_behind(
    make: Any, holder: subprocess.Popen[str], pg_url: str, pg_cluster: Cluster
) -> None:
    lock_id = rows(pg_cluster, f"SELECT id FROM {schema_of(pg_url)}.locks")[0][0]
    holder.kill()
    holder.wait()
    store = make()
    with pytest.raises(StateError, match=f"left by its last lock is {lock_id}, not other"):
        store.force_unlock("other")
    unlocked = store.force_unlock(lock_id)
    assert unlocked.holder.pid == holder.pid
    assert unlocked.done.startswith("the lock was already free (its holder is gone); removed")
    assert rows(pg_cluster, f"SELECT id FROM {schema_of(pg_url)}.locks") == []
    with pytest.raises(StateError, match="is not locked; nothing to unlock"):
        store.force_unlock(lock_id)


def test_force_unlock_refuses_a_live_local_holder_and_ends_a_remote_ones_session(
    make: Any, holder: subprocess.Popen[str], pg_url: str, pg_cluster: Cluster
) -> None:
    schema = schema_of(pg_url)
    lock_id, backend = rows(pg_cluster, f"SELECT id, backend_pid FROM {schema}.locks")[0]
    store = make()
    with pytest.raises(StateLocked, match=f"alive on this host.*kill {holder.pid}"):
        store.force_unlock(lock_id)
    # The same holder as seen from another machine: its liveness cannot be checked
    # from here, and the lock error says force-unlock may help (breakable).
    pg_cluster.execute(f"UPDATE {schema}.locks SET host = 'runner-7'")
    with pytest.raises(StateLocked, match=r"held by pid .* on host runner-7") as caught:
        store.lock(operation="plan").__enter__()
    assert caught.value.breakable
    unlocked = store.force_unlock(lock_id)
    assert unlocked.done.startswith(
        f"ended the database session that held it (backend pid {backend})"
    )
    assert store.lock_info() is None
    with store.lock(operation="apply"):
        pass
    release(holder)  # the holder's connection is gone: it learns that its lock went
    assert holder.stdout is not None
    assert "lost the connection" in holder.stdout.read() and holder.wait(timeout=10) == 3


# --- errors ----------------------------------------------------------------------------


def assert_one_line_without(error: BaseException, *secrets: str) -> str:
    text = str(error)
    assert "\n" not in text, text
    for secret in secrets:
        assert secret not in text, text
    return text


def test_unreachable_database(tmp_path: Path) -> None:
    port = free_port()
    store = PostgresStateStore(
        f"postgresql://kf:hunter2@127.0.0.1:{port}/states", recovery_dir=tmp_path
    )
    for action in (store.read, lambda: store.lock(operation="apply").__enter__()):
        with pytest.raises(StateUnavailable) as caught:
            action()
        assert assert_one_line_without(caught.value, "hunter2") == (
            f"cannot connect to the PostgreSQL state at 127.0.0.1:{port} (database states):"
            " connection refused; is the database running, on that port?"
        )


def test_wrong_password_tls_refused_missing_database(pg_cluster: Cluster, tmp_path: Path) -> None:
    where = f"127.0.0.1:{pg_cluster.port}"
    cases = {
        pg_cluster.url(password="hunter2"): (
            f"{where} (database postgres): password authentication failed for user"
            ' "postgres"; check the password'
        ),
        pg_cluster.url(query="sslmode=require"): (
            f"{where} (database postgres): server does not support SSL, but SSL was required"
        ),
        pg_cluster.url("nowhere"): f'{where} (database nowhere): database "nowhere" does not exist',
    }
    for url, expected in cases.items():
        with pytest.raises(StateUnavailable) as caught:
            PostgresStateStore(url, recovery_dir=tmp_path).read()
        text = assert_one_line_without(caught.value, "hunter2", pg_cluster.password)
        assert text.startswith("cannot connect to the PostgreSQL state at ")
        assert expected in text


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with HangingServer() as hanging:
        url = f"postgresql://kf:hunter2@127.0.0.1:{hanging.port}/db?connect_timeout=1"
        began = time.monotonic()
        with pytest.raises(StateUnavailable, match="no answer within the connect timeout"):
            PostgresStateStore(url, recovery_dir=tmp_path).read()
        assert time.monotonic() - began < 5


def test_a_role_without_rights_is_told_which_grant_it_needs(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    role, database = unique_name("role"), unique_name("db")
    pg_cluster.create_role(role, "rolepw")
    pg_cluster.create_database(database)
    pg_cluster.execute(f"REVOKE CREATE ON SCHEMA public FROM {role}", database=database)
    url = pg_cluster.url(database, user=role, password="rolepw")
    store = PostgresStateStore(url, recovery_dir=tmp_path)
    with pytest.raises(StateError) as caught:
        store.lock(operation="apply").__enter__()
    assert assert_one_line_without(caught.value, "rolepw").endswith(
        f"permission denied for database {database}: the role {role} needs CREATE on database"
        f" {database} to create the schema kernelform (GRANT CREATE ON DATABASE {database} TO"
        f" {role}), or an administrator creates it for the role (CREATE SCHEMA kernelform"
        f" AUTHORIZATION {role})"
    )
    store.close()
    # The schema made by someone else, for someone else: the tables need rights too.
    pg_cluster.execute("CREATE SCHEMA kernelform", database=database)
    with pytest.raises(StateError, match="needs USAGE and CREATE on schema kernelform"):
        PostgresStateStore(url, recovery_dir=tmp_path).write(new_state())
    # An administrator made the tables; the role may use the schema but not the tables.
    admin = pg_cluster.url(database)
    PostgresStateStore(admin, recovery_dir=tmp_path).write(new_state())
    pg_cluster.execute(f"GRANT USAGE ON SCHEMA kernelform TO {role}", database=database)
    with pytest.raises(StateError, match="GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES"):
        PostgresStateStore(url, recovery_dir=tmp_path).read()
    # The documented minimal grant: CREATE on the database, and the role makes its own.
    other = unique_name("db")
    pg_cluster.create_database(other)
    pg_cluster.execute(f"GRANT CREATE ON DATABASE {other} TO {role}")
    mine = PostgresStateStore(
        pg_cluster.url(other, user=role, password="rolepw"), recovery_dir=tmp_path
    )
    with mine.lock(operation="apply"):
        mine.write(new_state().with_resource(resource("a")))
    assert list(mine.read().resources) == ["a"]
    mine.close()


def test_the_connection_lost_under_the_lock_saves_every_write_aside(
    make: Any, pg_cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    store = make()
    state = store.write(new_state().with_resource(resource("a")))
    lost = pytest.raises(StateError, match="during this run, and the lock with it")
    with lost, store.lock(operation="apply") as info:
        state = store.record(state, puts=[resource("b")])
        [(backend,)] = rows(pg_cluster, f"SELECT backend_pid FROM {schema_of(pg_url)}.locks")
        assert rows(pg_cluster, "SELECT pg_terminate_backend(%s, 5000)", backend) == [(True,)]
        saved = []
        for name in ("c", "d"):
            with pytest.raises(StateError) as caught:
                state = store.record(state, puts=[resource(name)])
            text = assert_one_line_without(caught.value, pg_cluster.password)
            assert "lost the connection to the PostgreSQL state" in text
            match = re.search(r"saved at (\S+);", text)
            assert match is not None, text
            saved.append(Path(match.group(1)))
            state = State.from_dict(json.loads(saved[-1].read_text()), source="recovery")
        assert saved[0].parent == tmp_path / ".kernelform" and saved[0] == saved[1]
        assert sorted(state.resources) == ["a", "b", "c", "d"]
        assert make().lock_info() is None  # the lock went with the connection
        assert info.id
    # Pushing the newest recovery file back restores everything the run knew.
    assert sorted(make().read().resources) == ["a", "b"]
    pushed = make().push(state)
    assert sorted(make().read().resources) == ["a", "b", "c", "d"]
    assert pushed.serial == state.serial + 1
    with store.lock(operation="apply"):  # a new lock reconnects
        pass
