"""A throwaway PostgreSQL cluster for the tests and the benchmark.

``start_cluster()`` runs Debian's server binaries (``initdb``, ``pg_ctl``: not on
PATH, found through ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``) on a
free loopback port, with password (scram-sha-256) authentication for every
connection, the superuser ``postgres`` and a random password. PostgreSQL
refuses to run as root: when the tests run as root (CI does), every server
command runs as the ``postgres`` user through ``runuser``, and the data
directory (under ``/tmp``, which that user can reach, unlike pytest's 0700
temp dirs) belongs to it.

``fsync`` is off unless asked for: a cluster stopped with ``-m immediate``
(a crash of the database, not of the machine) loses nothing committed either
way, and the tests run faster. The benchmark keeps it on.

The helpers talk to the cluster with psycopg as the superuser, so that tests
can set up databases and roles and look at what kernelform stored
independently of the code under test.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

SERVER_USER = "postgres"
_RUNNING: set[Cluster] = set()


class ClusterError(RuntimeError):
    """The cluster could not be set up; the message says why and carries its log."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout
            candidates.append(Path(out.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise ClusterError(
        "the PostgreSQL server binaries (initdb, pg_ctl) are not installed; "
        "run 'apt-get install -y postgresql' (.ci/run does it)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(eq=False)
class Cluster:
    """One running cluster; ``url(...)`` builds libpq URIs to it."""

    bindir: Path
    directory: Path
    port: int
    password: str = field(repr=False)
    fsync: bool = False
    as_user: str | None = None
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def url(
        self,
        database: str = "postgres",
        *,
        user: str = "postgres",
        password: str | None = None,
        query: str = "",
    ) -> str:
        """``postgresql://user:password@127.0.0.1:port/database?query``."""
        secret = self.password if password is None and user == "postgres" else password
        auth = quote(user, safe="") + (f":{quote(secret, safe='')}" if secret else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    # -- the server process ------------------------------------------------------

    def _run(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        command = [*argv]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise ClusterError(
                f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr.strip()}"
                f"\n{self.log_tail()}"
            )
        return done.stdout

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses={self.host}"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=100"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        _RUNNING.add(self)

    def stop(self, *, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``; ``immediate`` is a crash of the database."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        status = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return "server is running" in status

    def destroy(self) -> None:
        _RUNNING.discard(self)
        with contextlib.suppress(Exception):
            if self.running:
                self.stop(mode="immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no server log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    # -- looking inside, as the superuser -------------------------------------------

    @contextlib.contextmanager
    def connect(self, database: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as conn:
            yield conn

    def execute(self, query: str | sql.Composable, *params: Any, database: str = "postgres") -> Any:
        """Run one statement as the superuser; the rows if it returns any."""
        with self.connect(database) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description is not None else None

    def create_database(self, name: str, *, owner: str = "postgres") -> None:
        self.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )

    def create_role(self, name: str, password: str, *extra: str) -> None:
        """A login role; *extra* are more role options (e.g. ``CREATEDB``)."""
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + " ".join(extra)).format(
                sql.Identifier(name), sql.Literal(password)
            )
        )


def start_cluster(*, fsync: bool = False, prefix: str = "kernelform-pg-") -> Cluster:
    """initdb and start a cluster; ``Cluster.destroy()`` removes it."""
    bindir = find_bindir()
    as_user = None
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(directory, ignore_errors=True)
            raise ClusterError(
                f"running as root, and there is no '{SERVER_USER}' user to run PostgreSQL as"
                " (apt-get install -y postgresql creates it)"
            ) from None
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        as_user = SERVER_USER
    password = secrets.token_urlsafe(18)
    pwfile = directory / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user:
        entry = pwd.getpwnam(as_user)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    pwfile.chmod(0o600)
    for _ in range(3):
        cluster = Cluster(
            bindir=bindir,
            directory=directory,
            port=free_port(),
            password=password,
            fsync=fsync,
            as_user=as_user,
        )
        if not cluster.data.exists():
            cluster._run(
                str(bindir / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "postgres",
                "-A",
                "scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            )
        try:
            cluster.start()
        except ClusterError:
            if "could not bind" in cluster.log_tail() or "in use" in cluster.log_tail():
                continue  # the port was taken between choosing and binding: another one
            cluster.destroy()
            raise
        return cluster
    cluster.destroy()
    raise ClusterError("no free port for PostgreSQL after 3 attempts")


def unique_name(prefix: str = "kf") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def run_sql(cluster: Cluster, statements: Sequence[str], *, database: str) -> None:
    with cluster.connect(database) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


@atexit.register
def _stop_all() -> None:
    """Never leave a cluster behind, even when the test run crashes."""
    for cluster in list(_RUNNING):
        with contextlib.suppress(Exception):
            cluster.destroy()


def wait_until(probe: Any, *, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or probe}")
        time.sleep(0.05)
