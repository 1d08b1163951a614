"""The PostgreSQL state through the real command line, with real kernels.

Runners are working directories that share nothing but the state URL (and the
Jupyter server their manifests name): what one CI runner would see of another.
The kernels are of the cheap ``light`` spec (a process that sleeps): the
server starts, lists and shuts them down like any kernel, and no kernel has to
answer (every apply runs with ``--no-wait``). The database is the session's
throwaway cluster; every test gets a schema of its own and uses a login role
(``kf_runner``) whose password must never appear in any output or any file a
test leaves (``Secrets.check``).

Covered: four runners applying at once; a runner SIGKILLed while it holds the
lock; the database stopped in the middle of an apply and the recovery file
pushed back; the database down, a wrong password, a role without rights, no
driver; workspaces (file and PostgreSQL); pull/push round trip and the lineage
refusal; a saved plan bound to its state.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kernelform.state import new_state
from kernelform.state.postgres import PostgresStateStore
from tests.support.kf import ROOT, TRACEBACK, Result, run, server_env, write_manifest
from tests.support.live_jupyter import JupyterServer, wait_for
from tests.support.pgcluster import Cluster, free_port, unique_name
from tests.support.resources import resource

DATABASE = "kf_cli"
ROLE = "kf_runner"
KILLED = -9


@pytest.fixture
def jupyter(light_jupyter: JupyterServer) -> Iterator[JupyterServer]:
    assert light_jupyter.running, light_jupyter.log_tail()
    light_jupyter.cleanup()
    yield light_jupyter
    light_jupyter.cleanup()


@pytest.fixture(scope="module")
def role_password(pg_cluster: Cluster) -> str:
    """A login role owning the database DATABASE, and its password."""
    password = f"Pw-{secrets.token_hex(12)}"
    pg_cluster.create_role(ROLE, password)
    pg_cluster.create_database(DATABASE, owner=ROLE)
    return password


@dataclass
class Secrets:
    """The passwords no output and no file may show; ``check`` looks everywhere."""

    values: list[str]
    seen: list[Result] = field(default_factory=list)

    def check_text(self, text: str, where: str) -> None:
        for value in self.values:
            assert value not in text, f"a password appears in {where}"

    def check(self, *directories: Path) -> None:
        for result in self.seen:
            self.check_text(result.out + result.err, f"the output of {result}")
        for directory in directories:
            for path in directory.rglob("*"):
                if path.is_file():
                    self.check_text(path.read_text(errors="replace"), str(path))


@dataclass
class Env:
    """What the tests of this module share: servers, the state URL, the secrets."""

    jupyter: JupyterServer
    cluster: Cluster
    url: str
    secrets: Secrets
    tmp: Path

    def runner(self, name: str, kernels: str) -> Path:
        directory = self.tmp / name
        directory.mkdir(parents=True, exist_ok=True)
        write_manifest(directory, self.jupyter, kernels)
        return directory

    def kf(self, *args: str, cwd: Path, env: dict[str, str] | None = None, **kw: Any) -> Result:
        """``kernelform ARGS``; an apply does not wait for ``light`` kernels to answer."""
        if args[:1] == ("apply",):
            args = ("apply", "--no-wait", *args[1:])
        full = {**server_env(self.jupyter), "KERNELFORM_STATE": self.url, **(env or {})}
        result = run(*args, cwd=cwd, env=full, **kw)
        self.secrets.seen.append(result)
        self.secrets.check_text(result.out + result.err, f"kernelform {' '.join(args)}")
        return result

    def stored(self, url: str | None = None, workspace: str = "default") -> dict[str, Any]:
        store = PostgresStateStore(
            url or self.url, workspace=workspace, recovery_dir=self.tmp / "unused"
        )
        try:
            return store.read().to_dict()
        finally:
            store.close()

    def assert_converged(self, declared: set[str], stored: dict[str, Any]) -> dict[str, str]:
        """Exactly the declared kernels run, each once, all recorded, nothing pending."""
        resources = stored["resources"]
        assert set(resources) == declared, resources
        assert not [a for a, r in resources.items() if r["pending"]], resources
        ids = {a: r["kernel_id"] for a, r in resources.items()}
        assert sorted(self.jupyter.kernel_ids()) == sorted(ids.values()), (
            self.jupyter.kernels(),
            resources,
        )
        return ids


@pytest.fixture
def env(
    jupyter: JupyterServer, pg_cluster: Cluster, role_password: str, tmp_path: Path
) -> Iterator[Env]:
    if not pg_cluster.running:
        pg_cluster.start()
    url = pg_cluster.url(
        DATABASE, user=ROLE, password=role_password, query=f"schema={unique_name('cli')}"
    )
    shared = Env(jupyter, pg_cluster, url, Secrets([role_password, pg_cluster.password]), tmp_path)
    yield shared
    shared.secrets.check(tmp_path)


POOL = "  pool: {spec: light, count: 3}\n  solo: {spec: light}\n"
DECLARED = {"pool[0]", "pool[1]", "pool[2]", "solo"}


def test_four_runners_applying_at_once_start_exactly_the_declared_kernels(env: Env) -> None:
    runners = [env.runner(f"runner{i}", POOL) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda d: env.kf("apply", "--auto-approve", "--lock-timeout", "120s", cwd=d),
                runners,
            )
        )
    assert [r.code for r in results] == [0, 0, 0, 0], results
    assert sorted("Nothing to do." in r.out for r in results) == [False, True, True, True]
    env.assert_converged(DECLARED, env.stored())
    for directory in runners:  # nothing of the state is on a runner's disk
        assert not (directory / ".kernelform").exists()
    assert env.kf("plan", "--detailed-exitcode", cwd=runners[3]).code == 0


def test_a_runner_killed_holding_the_lock_frees_it_and_the_next_converges(env: Env) -> None:
    first, second = env.runner("first", POOL), env.runner("second", POOL)
    # GET api/kernels, api/sessions, api/kernelspecs, api: then the starts. The 6th
    # answer is the second start's: that kernel runs, recorded only as pending.
    killed = env.kf(
        "apply", "--auto-approve", cwd=first, env={"KERNELFORM_CRASH_AT": "after-request:6"}
    )
    assert killed.code == KILLED, killed
    left = env.stored()
    on_server = env.jupyter.kernel_ids()
    assert on_server and [r for r in left["resources"].values() if r["pending"]]
    assert on_server <= {r["kernel_id"] for r in left["resources"].values()}
    # No --lock-timeout: the killed runner's lock must be gone already.
    rerun = env.kf("apply", "--auto-approve", cwd=second)
    assert rerun.code == 0, rerun
    final = env.assert_converged(DECLARED, env.stored())
    assert on_server <= set(final.values())  # no orphan: what it started is adopted
    assert env.kf("plan", "--detailed-exitcode", cwd=first).code == 0


def apply_with_the_database_stopped(
    env: Env, directory: Path, *, pause_at: str, args: tuple[str, ...] = ()
) -> Result:
    """``apply --no-wait --auto-approve ARGS`` paused at *pause_at* (see
    tests/support/pausing.py) while the database is stopped, then let go; the cluster is
    started again afterwards."""
    signals = directory / "signals"
    signals.mkdir()
    child = subprocess.Popen(
        [
            sys.executable,
            *("-m", "tests.support.pausing", "apply", "--no-wait", "--auto-approve", *args),
        ],
        cwd=directory,
        env={
            **os.environ,
            **server_env(env.jupyter),
            "KERNELFORM_STATE": env.url,
            "KF_PAUSE_AT": pause_at,
            "KF_PAUSE_DIR": str(signals),
            "PYTHONPATH": str(ROOT),
            "NO_COLOR": "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (signals / "paused").exists(), timeout=60, what="the apply to pause")
        env.cluster.stop(mode="immediate")
        (signals / "resume").touch()
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
        if not env.cluster.running:
            env.cluster.start()
    result = Result(child.returncode, out, err)
    env.secrets.seen.append(result)
    assert result.code == 1 and TRACEBACK not in err, result
    return result


def test_the_database_stopped_mid_apply_loses_no_kernel(env: Env) -> None:
    directory = env.runner("runner", "  pool: {spec: light, count: 4}\n")
    # Paused when the second kernel runs, not yet recorded.
    result = apply_with_the_database_stopped(
        env, directory, pause_at="after-start:2", args=("--parallelism", "1")
    )
    fresh, line = result.err.splitlines()  # a new workspace: the first run says so
    assert fresh.startswith("Warning: there is no state at postgresql://"), fresh
    assert line.startswith("Error: the state could not be written to postgresql://"), line
    assert "lost the connection to the PostgreSQL state at 127.0.0.1:" in line
    match = re.search(
        r"saved at (\S+); once the problem is fixed, run 'kernelform state push", line
    )
    assert match is not None, line
    recovery = Path(match.group(1))
    assert recovery.parent == directory / ".kernelform"
    assert len(env.jupyter.kernel_ids()) == 2  # no new action started after the failure
    pushed = env.kf("state", "push", str(recovery), cwd=directory)
    assert pushed.code == 0, pushed
    stored = env.stored()
    ids = env.assert_converged({"pool[0]", "pool[1]"}, stored)
    assert env.kf("apply", "--auto-approve", cwd=directory).code == 0
    final = env.assert_converged({f"pool[{i}]" for i in range(4)}, env.stored())
    assert {a: final[a] for a in ids} == ids


def test_the_lock_lost_after_the_last_write_is_reported(env: Env) -> None:
    """Nothing left to write, so no write fails: the run must still not say "complete"
    as if it had held the lock throughout (another run could have taken it)."""
    directory = env.runner("late", "  solo: {spec: light}\n")
    # Paused once the start is recorded: nothing more to write.
    result = apply_with_the_database_stopped(env, directory, pause_at="after-state-write:2")
    assert "+ solo: started kernel" in result.out
    fresh, line = result.err.splitlines()
    assert fresh.startswith("Warning: there is no state at postgresql://"), fresh
    assert line.startswith(
        f"Error: lost the connection to the PostgreSQL state at 127.0.0.1:{env.cluster.port}"
    ), line
    assert "during this run, and the lock with it: what this run did is done and recorded" in line
    env.assert_converged({"solo"}, env.stored())


def test_database_down_wrong_password_no_rights_no_driver(
    env: Env, pg_cluster: Cluster, role_password: str
) -> None:
    directory = env.runner("runner", POOL)
    port = free_port()
    norights, norights_password = unique_name("norights"), f"Pw-{secrets.token_hex(8)}"
    pg_cluster.create_role(norights, norights_password)
    env.secrets.values.append(norights_password)
    wrong = f"Wrong-{secrets.token_hex(8)}"
    env.secrets.values.append(wrong)
    cases = {
        f"postgresql://{ROLE}:{role_password}@127.0.0.1:{port}/{DATABASE}": (
            f"cannot connect to the PostgreSQL state at 127.0.0.1:{port} (database {DATABASE}):"
            " connection refused"
        ),
        pg_cluster.url(DATABASE, user=ROLE, password=wrong): (
            f"cannot connect to the PostgreSQL state at 127.0.0.1:{pg_cluster.port}"
            f' (database {DATABASE}): password authentication failed for user "{ROLE}"'
        ),
        pg_cluster.url(DATABASE, user=norights, password=norights_password): (
            f"permission denied for database {DATABASE}: the role {norights} needs CREATE on"
            f" database {DATABASE}"
        ),
    }
    for url, expected in cases.items():
        for args in (("plan",), ("apply", "--auto-approve")):
            result = env.kf(*args, cwd=directory, env={"KERNELFORM_STATE": url})
            assert result.code == 1, result
            (line,) = result.err.splitlines()
            assert line.startswith("Error: ") and expected in line, (line, expected)
    # The URL on the command line instead: the same, and its password is hidden too.
    flagged = env.kf("plan", "--state", next(iter(cases)), cwd=directory)
    assert flagged.code == 1 and "connection refused" in flagged.err
    assert env.jupyter.kernel_ids() == set()  # no server was written to
    no_driver = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['psycopg'] = None\n"
            "from kernelform.cli import main; main(sys.argv[1:])",
            "plan",
        ],
        cwd=directory,
        env={**os.environ, **server_env(env.jupyter), "KERNELFORM_STATE": env.url},
        capture_output=True,
        text=True,
        check=False,
    )
    env.secrets.seen.append(Result(no_driver.returncode, no_driver.stdout, no_driver.stderr))
    assert no_driver.returncode == 1, no_driver
    (line,) = no_driver.stderr.splitlines()
    assert line.startswith(
        f"Error: the state at postgresql://{ROLE}:***@127.0.0.1:{pg_cluster.port}/{DATABASE}?"
    )
    assert line.endswith(
        " is in PostgreSQL, and the PostgreSQL driver is not installed: run pip install"
        " 'kernelform[postgres]'"
    )


def test_a_mistyped_state_url_is_refused_not_taken_for_a_file(env: Env) -> None:
    """``postgresql:/…`` or ``postgresql//…`` as a path would be a fresh, empty state
    (twins of every kernel) in a directory named after the password."""
    directory = env.runner("typo", POOL)
    good = env.url
    password = env.secrets.values[0]
    typos = [
        good.replace("postgresql://", "postgresql:/", 1),
        good.replace("postgresql://", "postgresql//", 1),
        good.replace("postgresql://", "", 1),  # user:password@host:port/db
    ]
    for typo in typos:
        for args, extra in (
            (("plan",), {"KERNELFORM_STATE": typo}),
            (("apply", "--auto-approve", "--state", typo), {}),
            (("state", "list"), {"KERNELFORM_STATE": typo}),
        ):
            result = env.kf(*args, cwd=directory, env=extra)
            assert result.code == 1, result
            (line,) = result.err.splitlines()
            assert "looks like a mistyped URL" in line and "postgresql://USER@HOST" in line
    manifest = directory / "kernelform.yaml"
    manifest.write_text(f"state: '{typos[0].replace(password, '${PW}')}'\n" + manifest.read_text())
    result = env.kf("validate", cwd=directory, env={"KERNELFORM_STATE": "", "PW": password})
    assert result.code == 1 and result.err.startswith("Error: kernelform.yaml:1:8: state looks")
    assert sorted(p.name for p in directory.iterdir()) == ["kernelform.yaml"]
    assert env.jupyter.kernel_ids() == set()


def test_a_jupyter_url_at_the_database_port_says_it_is_not_a_web_server(env: Env) -> None:
    """The two URLs of a CI job mixed up: PostgreSQL closes an HTTP request without a
    word, which read as "the connection broke; retry" (a probe found it)."""
    directory = env.runner("mixed", POOL)
    for scheme in ("http", "https"):
        wrong = {"JUPYTER_URL": f"{scheme}://127.0.0.1:{env.cluster.port}/", "JUPYTER_TOKEN": "x"}
        for args in (("kernels", "list"), ("kernels", "start")):
            result = run(*args, cwd=directory, env=wrong)
            assert result.code == 1, result
            (line,) = result.err.splitlines()
            assert "this port speaks neither HTTP nor TLS" in line, line
            assert "is this the URL of the Jupyter server?" in line, line
    assert env.jupyter.kernel_ids() == set()


@pytest.mark.parametrize("backend", ["file", "postgres"])
def test_workspaces_are_isolated(env: Env, backend: str) -> None:
    directory = env.runner("runner", "  solo: {spec: light}\n")
    state = {} if backend == "postgres" else {"KERNELFORM_STATE": ""}

    def kf(*args: str) -> Result:
        return env.kf(*args, cwd=directory, env=state)

    fresh = "yet: every kernel is planned as new"
    where_b = "workspaces/b/state.json" if backend == "file" else "(workspace b)"
    if backend == "file":  # the default place, not named: a first run there is normal
        first = kf("plan")
        assert first.code == 0 and "Warning" not in first.err, first
    assert kf("apply", "--auto-approve", "--workspace", "a").code == 0
    assert kf("state", "list", "-w", "b", "--json").json() == []
    b_first = kf("apply", "--auto-approve", "-w", "b")  # b knows nothing of a's kernel
    assert b_first.code == 0, b_first
    assert b_first.err.count(fresh) == 1 and f"{where_b} {fresh}" in b_first.err, b_first
    assert fresh not in kf("plan", "-w", "b").err  # b exists now
    mistyped = kf("status", "-w", "bb")  # status says it too
    assert mistyped.code == 0 and mistyped.err.count(fresh) == 1, mistyped
    pulled = directory / "a.json"
    pulled.write_text(kf("state", "pull", "-w", "a").out)
    copied = kf("state", "push", str(pulled), "-w", "c")  # a's kernel, owned twice
    assert copied.code == 1, copied
    assert copied.err.splitlines() == [
        f"Error: {pulled} records kernels that the workspace a records too (solo): two"
        " workspaces owning one kernel would shut it down under each other; push it to the"
        " workspace it came from, or pass --force to push it to c anyway"
    ], copied.err
    assert "c" not in kf("workspace", "list").out.split()
    a_ids = [r["kernel_id"] for r in kf("state", "list", "-w", "a", "--json").json()]
    b_ids = [r["kernel_id"] for r in kf("state", "list", "-w", "b", "--json").json()]
    assert len(a_ids) == len(b_ids) == 1 and a_ids != b_ids
    assert env.jupyter.kernel_ids() == {*a_ids, *b_ids}
    listed = kf("workspace", "list", "-w", "b")
    assert listed.out.splitlines() == ["  a", "* b", "  default"], listed
    if backend == "file":
        assert (directory / ".kernelform/workspaces/a/state.json").is_file()
    refused = kf("workspace", "delete", "a")
    assert refused.code == 1 and "the workspace a still records 1 kernel(s) (solo)" in refused.err
    assert kf("workspace", "delete", "default").code == 1
    assert kf("destroy", "--auto-approve", "-w", "a").code == 0
    assert env.jupyter.kernel_ids() == set(b_ids)  # b's kernel untouched
    deleted = kf("workspace", "delete", "a")
    assert deleted.code == 0 and "Deleted the workspace a" in deleted.out, deleted
    assert kf("workspace", "list").out.splitlines() == ["  b", "* default"]
    assert kf("destroy", "--auto-approve", "-w", "b").code == 0


def test_pull_push_round_trip_moves_a_file_state_to_postgres(env: Env) -> None:
    directory = env.runner("runner", POOL)
    local = {"KERNELFORM_STATE": ""}  # the default file, next to the manifest
    assert env.kf("apply", "--auto-approve", cwd=directory, env=local).code == 0
    pulled = env.kf("state", "pull", cwd=directory, env=local)
    assert pulled.code == 0
    from_file = json.loads(pulled.out)
    assert sorted(from_file["resources"]) == sorted(DECLARED)
    (directory / "pulled.json").write_text(pulled.out)
    empty = env.kf("state", "pull", cwd=directory)
    assert empty.code == 0 and empty.out == "" and "nothing is stored" in empty.err
    pushed = env.kf("state", "push", "pulled.json", cwd=directory)
    assert pushed.code == 0 and "(serial" in pushed.out, pushed
    moved = env.stored()
    assert moved["lineage"] == from_file["lineage"]
    assert moved["resources"] == from_file["resources"]
    assert moved["serial"] == from_file["serial"] + 1
    assert env.kf("plan", "--detailed-exitcode", cwd=directory).code == 0  # nothing to do
    # A lower serial, or another state, is refused unless forced.
    older = env.kf("state", "push", "pulled.json", cwd=directory)
    assert older.code == 1 and "newer than the pushed one" in older.err, older
    other = new_state().with_resource(resource("stranger"))
    (directory / "other.json").write_text(json.dumps(other.to_dict()))
    foreign = env.kf("state", "push", "other.json", cwd=directory)
    assert foreign.code == 1 and "they are different states" in foreign.err, foreign
    assert env.stored()["resources"] == from_file["resources"]
    forced = env.kf(
        "state", "push", "--force", "-", cwd=directory, stdin=json.dumps(other.to_dict())
    )
    assert forced.code == 0, forced
    assert list(env.stored()["resources"]) == ["stranger"]
    env.kf("state", "push", "--force", "pulled.json", cwd=directory)  # back, for the cleanup


def test_a_saved_plan_is_bound_to_its_state(env: Env) -> None:
    directory = env.runner("runner", "  solo: {spec: light}\n")
    assert env.kf("plan", "--out", "plan.json", cwd=directory).code == 0
    saved = json.loads((directory / "plan.json").read_text())["state"]
    location = env.url.split("@", 1)[1].split("?")[0]
    assert saved["location"].startswith(f"postgresql://{ROLE}@{location}?schema=")
    assert saved["location"].endswith("(workspace default)") and saved["workspace"] == "default"
    elsewhere = env.kf("apply", "plan.json", "-w", "other", cwd=directory)
    assert elsewhere.code == 1 and "the saved plan was made against the state at" in elsewhere.err
    applied = env.kf("apply", "plan.json", cwd=directory)
    assert applied.code == 0, applied
    env.assert_converged({"solo"}, env.stored())
