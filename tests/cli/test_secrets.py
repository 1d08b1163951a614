"""The token never shows in what the command line prints or writes.

``Sweep`` (tests/support/secrets.py) runs the real command line against a
dedicated real jupyter server with a distinctive token through every command,
in both output formats where there are two, and through every error path, and
checks every output and file for the tokens. Then the internal-error path of
``cli.main``, usage errors, and the plain-http warning.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernelform import cli
from kernelform.client import JupyterClient
from kernelform.errors import PlanError
from kernelform.state import FileStateStore
from kernelform.workspace import Workspace
from tests.support.fakehttp import HangingServer
from tests.support.kf import Result, run
from tests.support.live_jupyter import JupyterServer
from tests.support.secrets import (
    INVOCATIONS,
    NO_KERNEL,
    NOWHERE,
    TOKEN,
    WRONG,
    Sweep,
    assert_clean,
    manifest_text,
)

# The fixtures of tests/support/secrets.py: pytest finds them here by name.
from tests.support.secrets import closed_url as closed_url
from tests.support.secrets import hanging as hanging
from tests.support.secrets import jupyter as jupyter
from tests.support.secrets import quiet_env as quiet_env
from tests.support.secrets import secret_server as secret_server
from tests.support.secrets import sweep as sweep

# -- the command surface ---------------------------------------------------------------


def test_raw_commands(
    sweep: Sweep, jupyter: JupyterServer, closed_url: str, hanging: HangingServer
) -> None:
    for how in ("flag", "env"):
        auth = ["--token", TOKEN] if how == "flag" else []
        env = {} if how == "flag" else {"JUPYTER_TOKEN": TOKEN}
        server = ["--server", jupyter.url, *auth]

        def ok(*args: str, env: dict[str, str] = env, server: list[str] = server) -> Result:
            return sweep.raw(*args, *server, code=0, env=env)

        assert "python3" in ok("specs").json()["kernelspecs"]
        kernel_id = ok("start").json()["id"]
        assert kernel_id in [k["id"] for k in ok("list").json()]
        assert ok("sessions").json() == []
        assert ok("interrupt", kernel_id).json() == {"interrupt": kernel_id}
        assert ok("restart", kernel_id).json()["id"] == kernel_id
        assert ok("shutdown", kernel_id).json() == {"shutdown": kernel_id}

        def fails(
            *args: str, expect: str, env: dict[str, str] = env, server: list[str] = server
        ) -> None:
            sweep.raw(*args, *server, code=1, expect=expect, env=env)

        for command in ("restart", "interrupt", "shutdown"):
            fails(command, NO_KERNEL, expect="no kernel")
        fails("start", "--name", "kf-no-such-spec", expect="unknown kernelspec")

    url = ["--server", jupyter.url]
    for args, env in (
        (["--token", WRONG], {}),
        ([f"--token={WRONG}"], {}),
        ([], {"JUPYTER_TOKEN": WRONG}),
        ([], {}),
    ):
        for command in ("list", "start"):
            sweep.raw(command, *url, *args, code=1, env=env, expect="not authenticated")
    # A token pasted into the URL (query, or user:password) is never echoed back.
    for pasted in (f"{jupyter.url}?token={TOKEN}", jupyter.url.replace("://", f"://kf:{TOKEN}@")):
        sweep.raw("list", "--server", pasted, code=1, expect="not authenticated")
    for command in ("list", "specs", "sessions", "start"):
        sweep.raw(command, "--server", closed_url, "--token", TOKEN, code=1, expect="connection")
    for command in ("list", "start"):
        sweep.raw(
            command, "--server", hanging.url, "--token", TOKEN, "--timeout", "0.3",
            code=1, expect="within 0.3s",
        )  # fmt: skip
    assert jupyter.kernel_ids() == set()


def test_manifest_commands(sweep: Sweep, jupyter: JupyterServer) -> None:
    kf = sweep.kf
    sweep.manifest(manifest_text("  etl: {spec: python3}\n"))
    kf("validate", code=0, expect="valid")
    kf("plan", code=0, expect="etl will be started")
    assert kf("plan", "--json", code=0).json()["summary"]["start"] == 1
    kf("plan", "--out", "p.json", code=0, expect="Saved the plan")
    kf("plan", "--json", "--out", "p2.json", code=0)
    kf("plan", "--detailed-exitcode", code=2)
    kf("apply", "p.json", code=0)
    kf("apply", "p.json", code=1, expect="stale")
    kf("apply", "p2.json", code=1, expect="stale")
    kf("state", "list", code=0, expect="etl")
    assert [r["address"] for r in kf("state", "list", "--json", code=0).json()] == ["etl"]
    assert "token" not in kf("state", "show", "etl", code=0).json()

    sweep.manifest(manifest_text("  etl: {spec: python3, count: 2}\n  adopted: {spec: python3}\n"))
    kf("apply", "--auto-approve", "--target", "etl", code=0)
    assert (sweep.work / ".kernelform" / "state.json.backup").is_file()
    adopted = jupyter.start_kernel()["id"]
    kf("import", "adopted", adopted, code=0, expect="Imported")
    kf("import", "adopted", adopted, code=1, expect="already managed")
    kf("state", "rm", "adopted", code=0, expect="keeps running")
    kf("import", "adopted", NO_KERNEL, code=1, expect="no kernel")
    kf("import", "adopted", adopted, code=0)
    kf("import", "nosuch", adopted, code=1, expect="not declared")
    kf("state", "show", "nosuch", code=1, expect="not in the state")
    kf("state", "rm", "nosuch", code=1, expect="not in the state")
    sweep.manifest(manifest_text("  etl: {spec: python3, count: 3}\n  adopted: {spec: python3}\n"))
    kf("apply", code=1, expect="--auto-approve")  # no terminal to ask
    kf("destroy", code=1, expect="--auto-approve")

    # Lock held by another process (here: this one).
    store = FileStateStore(sweep.work / ".kernelform" / "state.json")
    with store.lock(operation="apply"):
        for args in (
            ("plan",),
            ("plan", "--json"),
            ("plan", "--lock-timeout", "1s"),
            ("apply", "--auto-approve"),
            ("destroy", "--auto-approve"),
            ("import", "adopted", adopted),
            ("state", "rm", "adopted"),
        ):
            kf(*args, code=1, expect="locked")

    # Killed mid-apply: the lock file it wrote stays behind, then force-unlock.
    crashed = kf("apply", "--auto-approve", code=-9, env={"KERNELFORM_CRASH_AT": "after-start:1"})
    assert crashed.err == "", crashed
    lock_file = sweep.work / ".kernelform" / "state.json.lock"
    assert json.loads(lock_file.read_text())["operation"] == "apply"
    # flock died with the process: the lock file left behind is not a lock.
    lock_id = json.loads(lock_file.read_text())["id"]
    kf("force-unlock", lock_id, code=0, expect="not locked")
    kf("apply", "--auto-approve", code=0)

    # A failed state write leaves a recovery file (the .backup cannot be replaced).
    backup = sweep.work / ".kernelform" / "state.json.backup"
    backup.unlink()
    backup.mkdir()
    kf("state", "rm", "adopted", code=1, expect="recovery")
    (recovery,) = (sweep.work / ".kernelform").glob("state.json.recovery-*")
    assert "adopted" not in json.loads(recovery.read_text())["resources"]
    backup.rmdir()
    recovery.replace(sweep.work / ".kernelform" / "state.json")
    assert "adopted" not in [r["address"] for r in kf("state", "list", "--json", code=0).json()]
    kf("import", "adopted", adopted, code=0)

    kf("destroy", "--auto-approve", code=0, expect="etl[0]")
    kf("destroy", "--auto-approve", code=0, expect="Nothing to do.")
    kf("state", "list", code=0)
    assert kf("state", "list", "--json", code=0).json() == []
    assert len(sweep.scan()) >= 4  # state, backup, two saved plans: there was something to scan


def test_manifest_error_paths(
    sweep: Sweep, jupyter: JupyterServer, closed_url: str, hanging: HangingServer
) -> None:
    kf = sweep.kf
    sweep.manifest(manifest_text("  etl: {spec: python3}\n"))
    adopted = jupyter.start_kernel()["id"]
    for env in ({"KF_TOKEN": WRONG}, {"KF_TOKEN": ""}):
        for args in (
            ("plan",),
            ("plan", "--json"),
            ("plan", "--out", "never.json"),
            ("apply", "--auto-approve"),
            ("destroy", "--auto-approve"),
            ("import", "etl", adopted),
        ):
            kf(*args, code=1, env=env, expect="not authenticated")
    assert not (sweep.work / "never.json").exists()
    kf("import", "etl", NO_KERNEL, code=1, expect="no kernel")

    sweep.manifest(manifest_text("  etl: {spec: kf-no-such-spec}\n"))
    for args in (("plan",), ("plan", "--json"), ("apply", "--auto-approve")):
        kf(*args, code=1, expect="kf-no-such-spec")

    sweep.manifest(manifest_text("  etl: {spec: python3}\n"))
    down = {"KF_URL": closed_url}
    for args in (
        ("plan",),
        ("plan", "--json"),
        ("apply", "--auto-approve"),
        ("destroy", "--auto-approve"),
        ("import", "etl", adopted),
    ):
        kf(*args, code=1, env=down, expect="connection refused")
    slow = {"KF_URL": hanging.url, "KERNELFORM_TIMEOUT": "0.3"}
    for args in (("plan",), ("plan", "--json"), ("apply", "--auto-approve")):
        kf(*args, code=1, env=slow, expect="within 0.3s")
    assert jupyter.kernel_ids() == {adopted}


def test_manifest_with_the_token_written_in_it(sweep: Sweep, jupyter: JupyterServer) -> None:
    """A token written in the manifest itself (not from the environment)."""
    kf = sweep.kf
    sweep.manifest(manifest_text("  etl: {spec: python3}\n", token=TOKEN), planted=True)
    kf("validate", code=0)
    kf("plan", "--out", "p.json", code=0)
    kf("plan", "--json", code=0)
    kf("apply", "p.json", code=0)
    kf("state", "show", "etl", code=0)
    kf("destroy", "--auto-approve", code=0)
    assert {p.name for p in sweep.scan()} >= {"p.json", "state.json", "state.json.backup"}


# -- the internal-error path of cli.main ---------------------------------------------------


def call_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def boom(error: Callable[[str], BaseException]) -> Callable[..., Any]:
    def raise_it(*args: Any, **kwargs: Any) -> Any:
        raise error(f"failed while holding {TOKEN}\nsecond line {TOKEN}")

    return raise_it


@pytest.mark.parametrize("how", ["flag", "flag=", "env"])
@pytest.mark.parametrize("error", [RuntimeError, PlanError], ids=["bug", "kernelform-error"])
def test_raw_command_error_messages_are_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closed_url: str,
    how: str,
    error: Callable[[str], BaseException],
) -> None:
    monkeypatch.setattr(JupyterClient, "list_kernels", boom(error))
    argv = ["kernels", "list", "--server", closed_url]
    if how == "flag":
        argv += ["--token", TOKEN]
    elif how == "flag=":
        argv += [f"--token={TOKEN}"]
    else:
        monkeypatch.setenv("JUPYTER_TOKEN", TOKEN)
    code, out, err = call_main(argv, capsys)
    assert code == 1 and out == ""
    assert_clean(err, "the error message")
    if error is RuntimeError:
        assert err.count("\n") == 1, err  # one line, even from a two-line exception text
        assert err.startswith("Error: internal error (RuntimeError: failed while holding ***")
        assert "KERNELFORM_DEBUG=1" in err
    else:
        assert err.splitlines() == [
            "Error: failed while holding ***",
            "Error: second line ***",
        ]


@pytest.mark.parametrize("written", [True, False], ids=["literal", "from-env"])
def test_manifest_tokens_are_scrubbed_from_internal_errors(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    closed_url: str,
    written: bool,
) -> None:
    """The token is known only from the manifest: not in argv, not in JUPYTER_TOKEN."""
    monkeypatch.setenv("KF_SOME_VAR", TOKEN)
    token = TOKEN if written else "${KF_SOME_VAR}"
    manifest = tmp_path / "kernelform.yaml"
    manifest.write_text(manifest_text("  etl: {spec: python3}\n", url=closed_url, token=token))
    monkeypatch.setattr(Workspace, "plan", boom(RuntimeError))
    code, out, err = call_main(["plan", "-f", str(manifest)], capsys)
    assert code == 1 and out == ""
    assert_clean(err, "the internal error message")
    assert err.count("\n") == 1 and "(RuntimeError: failed while holding ***" in err, err


def test_click_usage_errors_are_scrubbed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The token pasted where an argument goes (``kernels list TOKEN``) is not echoed."""
    monkeypatch.setenv("JUPYTER_TOKEN", TOKEN)
    code, out, err = call_main(["kernels", "list", TOKEN], capsys)
    assert code == 1
    assert "unexpected extra argument (***)" in err, err
    assert_clean(out + err, "a usage error")


def test_debug_mode_is_the_only_way_to_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_url: str
) -> None:
    monkeypatch.setattr(JupyterClient, "list_kernels", boom(RuntimeError))
    monkeypatch.setenv("KERNELFORM_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["kernels", "list", "--server", closed_url, "--token", TOKEN])


# -- the plain-http warning ------------------------------------------------------------------


def test_token_over_plain_http_to_another_host_warns(sweep: Sweep) -> None:
    far = f"http://{NOWHERE}:8888/"
    warning = f"Warning: the token is sent over plain http to {far}; use https"
    result = sweep.raw("list", "--server", far, "--token", TOKEN, code=1)
    lines = result.err.splitlines()
    assert lines[0] == warning, result.err
    assert len(lines) == 2 and "host not found" in lines[1], result.err

    env_token = sweep.raw("list", "--server", far, code=1, env={"JUPYTER_TOKEN": TOKEN})
    assert env_token.err.splitlines()[0] == warning, env_token.err

    no_token = sweep.raw("list", "--server", far, code=1)
    assert "Warning" not in no_token.err and "host not found" in no_token.err, no_token.err
    tls = sweep.raw("list", "--server", f"https://{NOWHERE}:8888/", "--token", TOKEN, code=1)
    assert "Warning" not in tls.err and "host not found" in tls.err, tls.err

    sweep.manifest(manifest_text("  etl: {spec: python3}\n", url=far))
    plan = sweep.kf("plan", code=1)
    lines = plan.err.splitlines()
    assert lines[0] == f"Warning: the token for {far} is sent over plain http; use https"
    assert len(lines) == 2 and "host not found" in lines[1], plan.err


def test_token_over_plain_http_to_loopback_does_not_warn(
    sweep: Sweep, jupyter: JupyterServer
) -> None:
    port = jupyter.port
    for host, code in (
        ("127.0.0.1", 0),
        ("localhost", 0),
        ("[::1]", None),  # the server listens on IPv4 only: refused, but no warning
        ("127.0.0.2", None),  # all of 127.0.0.0/8 is loopback
    ):
        url = f"http://{host}:{port}/"
        result = run(
            "kernels", "list", "--server", url, "--token", TOKEN, "--timeout", "5",
            cwd=sweep.work, env=sweep.env,
        )  # fmt: skip
        INVOCATIONS.append(("kernels", "list", "--server", url))
        assert "Warning" not in result.err, (url, result)
        assert_clean(result.out + result.err, f"kernels list on {url}")
        if code is not None:
            assert result.code == code and result.json() == [], (url, result)
        else:
            assert result.code == 1 and "cannot connect" in result.err, (url, result)

    sweep.manifest(
        "servers:\n"
        + "".join(
            f"  {name}:\n    url: http://{host}:{port}/\n    token: ${{KF_TOKEN}}\n"
            for name, host in (("v4", "127.0.0.1"), ("name", "localhost"), ("v6", "[::1]"))
        )
        + "kernels:\n  etl: {spec: python3, server: v4}\n"
    )
    plan = sweep.kf("plan", code=0, expect="etl will be started")
    assert plan.err == "", plan.err
