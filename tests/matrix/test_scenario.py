"""One end-to-end scenario through the real command line, on every server generation.

Why: the rest of the suite proves kernelform against the latest jupyter_server;
this walks what a user does, on Notebook 6, jupyter_server 1.24 and 2.14, the
latest jupyter_server (plain and under a ``base_url``), Notebook 7 and the
Kernel Gateway: validate, plan, apply, a clean re-plan, a revision restart in
place, a kernel in use blocked then forced, a kernel shut down behind
kernelform's back started again, the raw ``kernels`` commands, an apply killed
mid-run then rerun, and destroy; then the six ``jupyter_kernel_*`` functions.
Every check looks at the server itself with plain REST calls
(``tests.support.live_jupyter``), never through kernelform.

Where the generations differ (client-chosen kernel ids, the start's ``path``,
sessions on the gateway), ``generations.py`` says what to expect.

``etl`` is a real ipykernel (its restart must give a new process, its working
directory is read from inside it, and apply waits until it answers over the
server's websocket and has run its setup code: that proves readiness on every
generation, with whichever framing it speaks); the pool is the cheap ``light``
spec, which never answers, so the applies that start it pass ``--no-wait``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kernelform import jupyter_kernel as jk
from tests.matrix.generations import Generation
from tests.support.kf import Result, run, server_env, state_of, write_manifest
from tests.support.live_jupyter import JupyterServer, wait_for

KILLED = -9


class Bench:
    """The scenario's working dir, its manifest, and views of the state and server."""

    def __init__(self, server: JupyterServer, generation: Generation, workdir: Path) -> None:
        self.server = server
        self.generation = generation
        self.workdir = workdir

    def kf(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run(*args, cwd=self.workdir, env={**server_env(self.server), **(env or {})})

    def apply(self, *args: str, wait: bool, env: dict[str, str] | None = None) -> Result:
        """``apply --auto-approve ARGS``; *wait* False when light kernels are started."""
        return self.kf("apply", "--auto-approve", *args, *([] if wait else ["--no-wait"]), env=env)

    def raw(self, *args: str) -> Result:
        """``kernelform kernels ARGS`` on the server (URL and token from the environment)."""
        env = {"JUPYTER_URL": self.server.url, "JUPYTER_TOKEN": self.server.token}
        result = run("kernels", *args, cwd=self.workdir, env=env)
        assert result.code == 0, (args, result)
        return result

    def manifest(self, *, revision: int, pool: int) -> None:
        kernels = (
            f"  etl: {{spec: python3, cwd: work, revision: {revision}, setup: 'KF_WARM = 6 * 7'}}\n"
            f"  pool: {{spec: light, count: {pool}}}\n"
        )
        write_manifest(self.workdir, self.server, kernels)

    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = state_of(self.workdir)["resources"]
        return resources

    def ids(self) -> dict[str, str]:
        return {address: r["kernel_id"] for address, r in self.resources().items()}

    def server_ids(self) -> list[str]:
        return sorted(self.server.kernel_ids())

    def assert_converged(self, declared: set[str]) -> dict[str, str]:
        """Exactly the declared kernels run, each once, all recorded; the plan is clean."""
        resources = self.resources()
        assert set(resources) == declared, resources
        assert not [a for a, r in resources.items() if r["pending"]], resources
        assert self.server_ids() == sorted(r["kernel_id"] for r in resources.values()), (
            self.server.kernels(),
            resources,
        )
        plan = self.kf("plan", "--detailed-exitcode")
        assert plan.code == 0 and "No changes." in plan.out, plan
        return self.ids()

    def open_session(self, address: str, path: str) -> str:
        """A notebook session on *address*'s kernel; returns the kernel id behind it then.

        The Kernel Gateway cannot attach a session to a running kernel (it starts a
        new one, and PATCH answers 500): there the session's own kernel is
        imported for *address* and the old one shut down.
        """
        kernel_id = self.ids()[address]
        if self.generation.session_attaches:
            self.server.create_session(kernel_id, path)
            return kernel_id
        session = self.server.create_session(path=path, kernel_name="python3")
        adopted: str = session["kernel"]["id"]
        assert adopted != kernel_id, session
        assert self.kf("state", "rm", address).code == 0
        imported = self.kf("import", address, adopted)
        assert imported.code == 0, imported
        self.server.shutdown_kernel(kernel_id)
        self.server.wait_gone(kernel_id)
        return adopted


def test_scenario(any_jupyter: JupyterServer, generation: Generation, tmp_path: Path) -> None:
    server = any_jupyter
    server.cleanup()
    (server.root / "work").mkdir(exist_ok=True)
    bench = Bench(server, generation, tmp_path)
    declared = {"etl", "pool[0]", "pool[1]"}

    # validate, plan, apply, plan again
    bench.manifest(revision=1, pool=2)
    validated = bench.kf("validate")
    assert validated.code == 0, validated
    plan = bench.kf("plan", "--detailed-exitcode")
    assert plan.code == 2, plan
    assert "Plan: 3 to start, 0 to restart, 0 to replace, 0 to shut down" in plan.out, plan
    assert server.kernel_ids() == set()
    applied = bench.apply(wait=False)
    assert applied.code == 0, applied
    assert "Apply complete! 3 started; 0 failed; 0 blocked." in applied.out, applied
    ids = bench.assert_converged(declared)
    etl = ids["etl"]
    cwd = server.run_code(etl, "import os\nos.getcwd()")
    expected_cwd = server.root / "work" if generation.path_honoured else server.root
    assert Path(cwd) == expected_cwd, (cwd, generation.id)

    # a revision bump restarts etl in place: same id, new process
    pid = server.run_code(etl, "import os\nos.getpid()")
    bench.manifest(revision=2, pool=2)
    plan = bench.kf("plan")
    assert "etl will be restarted: revision 1 → 2" in plan.out, plan
    applied = bench.apply(wait=True)  # waits until etl answers, then runs its setup
    assert applied.code == 0, applied
    assert f"restarted kernel {etl}, ready in" in applied.out, applied
    assert server.kernel(etl)["execution_state"] == "idle"  # type: ignore[index]
    assert server.run_code(etl, "KF_WARM") == 42
    assert bench.assert_converged(declared) == ids
    assert server.run_code(etl, "import os\nos.getpid()") != pid

    # a session on etl blocks its restart; --force restarts it (same id)
    etl = bench.open_session("etl", "nb/q3.ipynb")
    bench.manifest(revision=3, pool=2)
    blocked = bench.apply(wait=True)
    assert blocked.code == 3, blocked
    assert "in use by nb/q3.ipynb" in blocked.out, blocked
    assert bench.resources()["etl"]["revision"] == "2"

    # the raw commands, while the session is open
    specs = bench.raw("specs").json()
    assert {"python3", "light"} <= set(specs["kernelspecs"]), specs
    sessions = bench.raw("sessions").json()
    assert [(s["notebook"], s["kernel_id"]) for s in sessions] == [("nb/q3.ipynb", etl)], sessions
    started = bench.raw("start", "--name", "light", "--path", "work").json()
    assert started["name"] == "light" and started["id"] in server.kernel_ids(), started
    listed = {k["id"] for k in bench.raw("list").json()}
    assert listed == server.kernel_ids() == {*bench.ids().values(), started["id"]}
    assert bench.raw("restart", started["id"]).json()["id"] == started["id"]
    assert bench.raw("interrupt", etl).json() == {"interrupt": etl}
    assert bench.raw("shutdown", started["id"]).json() == {"shutdown": started["id"]}
    server.wait_gone(started["id"])

    forced = bench.apply("--force", wait=True)
    assert forced.code == 0, forced
    assert bench.ids()["etl"] == etl and bench.resources()["etl"]["revision"] == "3"
    assert etl in server.kernel_ids()

    # a kernel shut down behind kernelform's back (its session goes with it) is started again
    server.shutdown_kernel(etl)
    server.wait_gone(etl)
    plan = bench.kf("plan")
    assert plan.code == 0 and "etl will be started: vanished from the server" in plan.out, plan
    applied = bench.apply(wait=True)
    assert applied.code == 0, applied
    ids = bench.assert_converged(declared)
    assert ids["etl"] != etl

    # an apply killed right after a start answered, before its id was recorded
    bench.manifest(revision=3, pool=4)
    crash = {"KERNELFORM_CRASH_AT": "after-start:1"}
    killed = bench.apply("--parallelism", "1", wait=False, env=crash)
    assert killed.code == KILLED, killed
    pending = {a: r for a, r in bench.resources().items() if r["pending"]}
    assert len(pending) == 1, pending
    ((address, record),) = pending.items()
    unrecorded = set(bench.server_ids()) - set(bench.ids().values())
    if generation.kernel_id_honoured:  # the id was recorded before the request
        assert not unrecorded and record["kernel_id"] in server.kernel_ids(), (record, unrecorded)
        orphan = record["kernel_id"]
    else:  # the server picked the id: a placeholder, and one kernel nobody recorded
        assert record["kernel_id"].startswith("unknown:"), record
        (orphan,) = unrecorded
    rerun = bench.apply(wait=False)
    assert rerun.code == 0, rerun
    final = bench.assert_converged(declared | {"pool[2]", "pool[3]"})
    assert final[address] == orphan, (final, orphan)  # adopted: no twin, none lost

    # destroy
    destroyed = bench.kf("destroy", "--auto-approve")
    assert destroyed.code == 0, destroyed
    for kernel_id in final.values():
        server.wait_gone(kernel_id)
    assert bench.resources() == {}
    wait_for(lambda: server.kernel_ids() == set(), what="no kernel left on the server")


def test_the_six_functions(any_jupyter: JupyterServer, generation: Generation) -> None:
    """The functions kernelform grew from, whose claim is Notebook 6/7 and JupyterLab 3/4."""
    server = any_jupyter
    server.cleanup()
    url, token = server.url, server.token
    assert jk.jupyter_kernel_list(url, token) == []
    kernel = jk.jupyter_kernel_start(url, token)  # python3, the default
    kernel_id = kernel["id"]
    assert kernel["name"] == "python3" and server.kernel_ids() == {kernel_id}
    pid = server.run_code(kernel_id, "import os\nos.getpid()")
    assert jk.jupyter_kernel_interrupt(url, token, kernel_id) is None
    assert server.run_code(kernel_id, "6 * 7") == 42
    restarted = jk.jupyter_kernel_restart(url, token, kernel_id)
    assert restarted["id"] == kernel_id
    assert server.run_code(kernel_id, "import os\nos.getpid()") != pid
    listed = jk.jupyter_kernel_list(url, token)
    assert [(k["id"], k["name"]) for k in listed] == [(kernel_id, "python3")], listed
    if generation.session_attaches:
        session = server.create_session(kernel_id, "nb/six.ipynb")
    else:  # the gateway starts the session's own kernel
        session = server.create_session(path="nb/six.ipynb", kernel_name="light")
    sessions = jk.jupyter_kernel_sessions(url, token)
    assert [(s["id"], s["notebook"], s["kernel_id"]) for s in sessions] == [
        (session["id"], "nb/six.ipynb", session["kernel"]["id"])
    ], sessions
    assert jk.jupyter_kernel_shutdown(url, token, kernel_id) is None
    server.wait_gone(kernel_id)
