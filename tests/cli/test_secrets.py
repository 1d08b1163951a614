"""The token never shows: not in any output, file, URL, log, repr or message.

A dedicated real jupyter server runs with a distinctive token (``TOKEN``), and a
second distinctive token (``WRONG``) plays the mistyped one. ``Sweep`` runs the
real command line (a subprocess each time, KERNELFORM_DEBUG unset, HOME and
TMPDIR inside the test's directory) through every command, in both output
formats where there are two, and through every error path; after each run it
checks stdout, stderr, and every file under the test's directory (state,
``.backup``, saved plans, lock and recovery files, anything else written)
for both tokens. The manifests that hold a token on purpose are the only files
left out of that scan.

Python-level checks: ``repr``/``str`` of the client, ``ServerConfig``,
``Manifest`` and every exception raised, debug logs, a recording loopback
server (the token only ever travels in the Authorization header, never in a
request line, and not across a redirect to another port), the internal-error
path of ``cli.main``, and the plain-http warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kernelform import cli
from kernelform.client import JupyterClient, Timeouts
from kernelform.errors import (
    AuthError,
    BadResponse,
    ConnectError,
    KernelNotFound,
    ManifestError,
    PlanError,
    RequestTimeout,
    ServerError,
    StateLocked,
    UnknownKernelSpec,
)
from kernelform.manifest import load_manifest, parse_manifest
from kernelform.state import FileStateStore
from kernelform.workspace import Workspace
from tests.support.fakehttp import (
    FakeHTTPServer,
    HangingServer,
    Recorded,
    Reply,
    ResetServer,
    json_reply,
)
from tests.support.kf import Result, run
from tests.support.live_jupyter import JupyterServer, free_port, launch

TOKEN = "kf-SECRET-" + secrets.token_hex(8)
WRONG = "kf-WRONG-" + secrets.token_hex(8)
SECRETS = (TOKEN, WRONG)
NO_KERNEL = "00000000-0000-0000-0000-000000000000"
NOWHERE = "kernelform-test.invalid"  # .invalid never resolves: no traffic leaves the host

# The environment of the test process that could change what the CLI does.
_CLEARED_ENV = (
    "KERNELFORM_DEBUG",
    "KERNELFORM_FILE",
    "KERNELFORM_TIMEOUT",
    "KERNELFORM_CRASH_AT",
    "KERNELFORM_FAIL_AT",
    "JUPYTER_TOKEN",
    "JUPYTER_URL",
)

INVOCATIONS: list[tuple[str, ...]] = []


def assert_clean(text: str | bytes, where: str) -> None:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    for secret in SECRETS:
        assert secret.encode() not in data, f"a token leaked into {where}:\n{text!r}"


# -- the server and the sweep ---------------------------------------------------------


@pytest.fixture(scope="module")
def secret_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    server = launch(tmp_path_factory.mktemp("secret-jupyter"), token=TOKEN)
    try:
        yield server
    finally:
        if server.running:
            with contextlib.suppress(Exception):
                server.cleanup(timeout=10)
        server.stop()
        print(f"\nsecret sweep: {len(INVOCATIONS)} kernelform invocations checked")


@pytest.fixture
def jupyter(secret_server: JupyterServer) -> Iterator[JupyterServer]:
    assert secret_server.running, f"the server died; its log:\n{secret_server.log_tail()}"
    yield secret_server
    secret_server.cleanup()


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)


class Sweep:
    """Runs kernelform under *root* and checks every output and file for the tokens."""

    def __init__(self, root: Path, server: JupyterServer) -> None:
        self.root = root
        self.work = root / "work"
        self.planted: set[Path] = set()  # manifests holding a token on purpose
        for name in ("work", "home", "tmp"):
            (root / name).mkdir()
        self.env = {
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            "KF_URL": server.url,
            "KF_TOKEN": TOKEN,
        }

    def kf(
        self,
        *args: str,
        code: int,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        expect: str | None = None,
    ) -> Result:
        """``kernelform ARGS``: exit *code*, *expect* in stdout+stderr, no token anywhere."""
        result = run(*args, cwd=cwd or self.work, env={**self.env, **(env or {})})
        INVOCATIONS.append(args)
        assert result.code == code, (args, result)
        assert_clean(result.out, f"the stdout of {args}")
        assert_clean(result.err, f"the stderr of {args}")
        if expect is not None:
            assert expect in result.out + result.err, (args, result)
        if code == 1:
            assert "Error: " in result.err, (args, result)
        self.scan()
        return result

    def raw(self, *args: str, code: int, expect: str | None = None, **kw: Any) -> Result:
        return self.kf("kernels", *args, code=code, expect=expect, **kw)

    def scan(self) -> list[Path]:
        files = [p for p in self.root.rglob("*") if p.is_file() and p not in self.planted]
        for path in files:
            assert_clean(path.read_bytes(), str(path))
        return files

    def manifest(self, text: str, *, name: str = "kernelform.yaml", planted: bool = False) -> Path:
        path = self.work / name
        path.write_text(text, encoding="utf-8")
        if planted:
            self.planted.add(path)
        return path


@pytest.fixture
def sweep(tmp_path: Path, jupyter: JupyterServer) -> Sweep:
    return Sweep(tmp_path, jupyter)


def manifest_text(kernels: str, *, url: str = "${KF_URL}", token: str = "${KF_TOKEN}") -> str:
    return (
        "servers:\n"
        "  lab:\n"
        f"    url: {url}\n"
        f"    token: {token}\n"
        "kernels:\n"
        f"{kernels}"
    )


@pytest.fixture
def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/"


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    with HangingServer() as server:
        yield server


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


def bad(body: str, *, url: str = "${KF_URL}") -> str:
    return f"servers:\n  lab:\n    url: {url}\n{body}kernels:\n  etl: {{spec: python3}}\n"


# Manifests that hold the token and are wrong somewhere near it: a YAML error right
# after it, an unknown key next to it, the token in the wrong type, or in the url.
BAD_MANIFESTS = {
    "colon-after": bad(f"    token: {TOKEN}: oops\n"),
    "unterminated-double": bad(f'    token: "{TOKEN}\n'),
    "unterminated-single": bad(f"    token: '{TOKEN}\n"),
    "bad-indentation": bad(f"    token: {TOKEN}\n   prune: false\n"),
    "tab-after": bad(f"    token: {TOKEN}\n\tprune: false\n"),
    "unclosed-flow-list": bad(f"    token: [{TOKEN}\n"),
    "unclosed-flow-map": bad(f"    token: {{{TOKEN}: 1\n"),
    "bad-escape": bad(f'    token: "{TOKEN}\\q"\n'),
    "junk-after-quoted": bad(f'    token: "{TOKEN}" junk\n'),
    "list-item-after": bad(f"    token: {TOKEN}\n  - item\n"),
    "duplicate-key": bad(f"    token: {TOKEN}\n    token: {TOKEN}x\n"),
    "second-document": bad(f"    token: {TOKEN}\n---\nservers: {{}}\n"),
    "control-character": bad(f'    token: "{TOKEN}\x07"\n'),
    "dollar-after": bad(f"    token: {TOKEN}$\n"),
    "token-as-variable": bad(f"    token: ${{{TOKEN}}}\n"),
    "custom-tag": bad(f"    token: !kf {TOKEN}\n"),
    "binary-tag": bad(f"    token: !!binary {TOKEN}\n"),
    "alias-of-token": bad(f"    token: &tok {TOKEN}\n    prune: *tok\n"),
    "unknown-key-next": bad(f"    token: {TOKEN}\n    tokne: {TOKEN}\n"),
    "misspelt-key": bad(f"    tokn: {TOKEN}\n"),
    "list-of-token": bad(f"    token: [{TOKEN}]\n"),
    "block-list-of-token": bad(f"    token:\n      - {TOKEN}\n"),
    "mapping-key": bad(f"    token: {{{TOKEN}: x}}\n"),
    "mapping-value": bad(f"    token: {{x: {TOKEN}}}\n"),
    "url-query": bad("", url=f"http://127.0.0.1:1/lab?token={TOKEN}"),
    "url-userinfo": bad("", url=f"http://kf:{TOKEN}@127.0.0.1:1/"),
    "url-fragment": bad("", url=f"http://127.0.0.1:1/#{TOKEN}"),
}
PLANNED = {"colon-after", "unknown-key-next", "list-of-token", "url-userinfo"}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_bad_manifest_never_echoes_the_token(sweep: Sweep, case: str) -> None:
    path = sweep.manifest(BAD_MANIFESTS[case], planted=True)
    assert TOKEN in path.read_text(), "the case must hold the token"
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert_clean(str(info.value), f"the ManifestError of {case}")
    assert_clean(repr(info.value), f"the ManifestError repr of {case}")
    for problem in info.value.problems:
        assert_clean(repr(problem), f"a Problem of {case}")
    sweep.kf("validate", code=1, expect="kernelform.yaml:")
    if case in PLANNED:  # plan and apply read the manifest as validate does: a sample
        sweep.kf("plan", "--json", code=1, expect="kernelform.yaml:")
        sweep.kf("apply", "--auto-approve", code=1, expect="kernelform.yaml:")


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


# -- python-level: reprs, exceptions, logs ---------------------------------------------------


def test_reprs_hide_the_token(tmp_path: Path) -> None:
    for url in (
        "http://127.0.0.1:8888/",
        f"http://127.0.0.1:8888/?token={TOKEN}",
        f"http://kf:{TOKEN}@127.0.0.1:8888/",
    ):
        client = JupyterClient(url, TOKEN)
        for text in (repr(client), str(client), client.server):
            assert_clean(text, f"the client for {url!r}")
    manifest = parse_manifest(
        manifest_text("  etl: {spec: python3}\n", url="http://127.0.0.1:8888", token=TOKEN),
        filename="kernelform.yaml",
    )
    assert manifest.servers["lab"].token.reveal() == TOKEN
    for obj in (manifest, manifest.servers, *manifest.servers.values()):
        assert_clean(repr(obj), f"repr of {type(obj).__name__}")
        assert_clean(str(obj), f"str of {type(obj).__name__}")


def check_exception(error: BaseException) -> None:
    where = type(error).__name__
    assert_clean(str(error), where)
    assert_clean(repr(error), where)
    assert_clean(repr(error.args), f"the args of {where}")
    assert_clean(repr(vars(error)), f"the attributes of {where}")


def raised(
    kind: type[BaseException], call: Callable[..., Any], *args: Any, **kwargs: Any
) -> BaseException:
    with pytest.raises(kind) as info:
        call(*args, **kwargs)
    check_exception(info.value)
    return info.value


def test_every_exception_hides_the_token(
    jupyter: JupyterServer, closed_url: str, hanging: HangingServer, tmp_path: Path
) -> None:
    quick = {"backoff": 0, "timeouts": Timeouts(connect=2, read=0.3, restart=0.3)}
    with JupyterClient(jupyter.url, WRONG, **quick) as wrong:
        raised(AuthError, wrong.list_kernels)
        raised(AuthError, wrong.start_kernel, "python3")
    with JupyterClient(jupyter.url, TOKEN, **quick) as client:
        raised(KernelNotFound, client.get_kernel, NO_KERNEL)
        raised(KernelNotFound, client.restart_kernel, NO_KERNEL)
        raised(KernelNotFound, client.interrupt_kernel, NO_KERNEL)
        raised(KernelNotFound, client.shutdown_kernel, NO_KERNEL)
        raised(UnknownKernelSpec, client.start_kernel, "kf-no-such-spec")
    with JupyterClient(closed_url, TOKEN, **quick) as client:
        raised(ConnectError, client.list_kernels)
    with JupyterClient(hanging.url, TOKEN, retries=0, **quick) as client:
        raised(RequestTimeout, client.list_kernels)
    with ResetServer() as reset, JupyterClient(reset.url, TOKEN, retries=0, **quick) as client:
        raised(ConnectError, client.start_kernel, "python3")

    def echo(request: Recorded, number: int) -> Reply:
        """A proxy that puts the request's Authorization header in its answers."""
        auth = request.headers.get("Authorization", "")
        if request.path == "/api/kernels" and request.method == "POST":
            return json_reply(500, {"message": f"cannot start for {auth}"})
        if request.path == "/api/kernels":
            return Reply(200, f"<html>login page for {auth}</html>")
        if request.path == "/api/sessions":
            return json_reply(200, [{"id": 1, "path": auth}])
        if request.path == "/api/kernelspecs":
            return json_reply(200, {"kernelspecs": {"python3": {}}})
        return json_reply(418, {"message": f"teapot {auth}"})

    with FakeHTTPServer(echo) as fake, JupyterClient(fake.url, TOKEN, **quick) as client:
        raised(BadResponse, client.list_kernels)
        raised(BadResponse, client.list_sessions)
        raised(ServerError, client.start_kernel, "python3")
        raised(ServerError, client.interrupt_kernel, "k")
        assert all(TOKEN in r.headers.get("Authorization", "") for r in fake.requests)

    for text in BAD_MANIFESTS.values():
        raised(ManifestError, parse_manifest, text, filename="m.yaml")
    store = FileStateStore(tmp_path / "state.json")
    with store.lock(operation="apply"):
        raised(StateLocked, lambda: store.lock(operation="plan").__enter__())


def test_debug_logs_hide_the_token(
    jupyter: JupyterServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with JupyterClient(jupyter.url, TOKEN, backoff=0) as client:
        kernel = client.start_kernel("python3")
        client.list_kernels()
        client.list_sessions()
        client.restart_kernel(kernel.id)
        client.shutdown_kernel(kernel.id)
    with JupyterClient(jupyter.url, WRONG, backoff=0) as client, pytest.raises(AuthError):
        client.list_kernels()
    assert "api/kernels" in caplog.text  # the debug log did record the requests
    assert_clean(caplog.text, "the debug log")


# -- the token on the wire -------------------------------------------------------------------


KERNEL = {
    "id": "3f1e7a52-9d0c-4b6e-8a41-2c5d7e9f0b13",
    "name": "python3",
    "last_activity": "2026-01-01T00:00:00.000000Z",
    "execution_state": "idle",
    "connections": 0,
}


def jupyter_like(request: Recorded, number: int) -> Reply:
    """Enough of the kernel API for every command, with one kernel that always exists."""
    path, method = request.path, request.method
    kernel_path = f"/api/kernels/{KERNEL['id']}"
    if path == "/api":
        return json_reply(200, {"version": "2.14.0"})
    if path == "/api/kernels":
        return json_reply(201, KERNEL) if method == "POST" else json_reply(200, [KERNEL])
    if path == "/api/sessions":
        return json_reply(200, [])
    if path == "/api/kernelspecs":
        return json_reply(200, {"default": "python3", "kernelspecs": {"python3": {}}})
    if path == kernel_path and method == "DELETE":
        return Reply(204)
    if path in (kernel_path, kernel_path + "/restart"):
        return json_reply(200, KERNEL)
    if path == kernel_path + "/interrupt":
        return Reply(204)
    return json_reply(404, {"message": "not found"})


def test_the_token_travels_only_in_the_authorization_header(sweep: Sweep) -> None:
    kernel_id = str(KERNEL["id"])
    with FakeHTTPServer(jupyter_like) as fake:
        server = ["--server", fake.url, "--token", TOKEN]
        for args in (
            ("list",),
            ("specs",),
            ("sessions",),
            ("start",),
            ("restart", kernel_id),
            ("interrupt", kernel_id),
            ("shutdown", kernel_id),
        ):
            sweep.raw(*args, *server, code=0)
        sweep.manifest(manifest_text("  etl: {spec: python3}\n", url=fake.url))
        sweep.kf("plan", "--json", code=0)
        # A fake HTTP server has no kernel websocket to wait on (test_channels checks that
        # the token travels only in the websocket handshake's header too).
        sweep.kf("apply", "--auto-approve", "--no-wait", code=0)
        sweep.kf("plan", "--out", "p.json", code=0)
        sweep.kf("destroy", "--auto-approve", code=0)
        requests_seen = list(fake.requests)
    methods = {(r.method, r.path.rsplit("/", 1)[-1]) for r in requests_seen}
    assert {("POST", "kernels"), ("POST", "restart"), ("DELETE", KERNEL["id"])} <= methods
    for request in requests_seen:
        request_line = f"{request.method} {request.target} HTTP/1.1"
        assert_clean(request_line, "a request line")
        assert_clean(request.body, f"the body of {request_line}")
        assert request.headers.get("Authorization") == f"token {TOKEN}", request_line
        for name, value in request.headers.items():
            if name.lower() != "authorization":
                assert_clean(value, f"the {name} header of {request_line}")


def test_a_redirect_to_another_port_does_not_carry_the_token() -> None:
    with FakeHTTPServer(lambda r, n: json_reply(200, [])) as other:
        target = other.url + "api/kernels"

        def redirect(request: Recorded, number: int) -> Reply:
            return Reply(302, b"", {"Location": target})

        with FakeHTTPServer(redirect) as first, JupyterClient(first.url, TOKEN) as client:
            assert client.list_kernels() == []
        assert first.requests and other.requests
        for request in other.requests:
            assert "Authorization" not in request.headers, request
            assert_clean(request.target, "the redirected request line")


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
