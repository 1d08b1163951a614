"""The token never shows: the tokens, the server that knows one, and the sweep.

A dedicated real jupyter server (``secret_server``, one per module that uses it)
runs with a distinctive token (``TOKEN``), and a second distinctive token
(``WRONG``) plays the mistyped one. ``Sweep`` runs the real command line (a
subprocess each time, KERNELFORM_DEBUG unset, HOME and TMPDIR inside the test's
directory); after each run it checks stdout, stderr, and every file under the
test's directory (state, ``.backup``, saved plans, lock and recovery files,
anything else written) for both tokens. The manifests that hold a token on
purpose are the only files left out of that scan. ``BAD_MANIFESTS`` hold the
token and are wrong somewhere near it.

The secrets tests of the command line (cli/test_secrets.py), the client
(client/test_secrets.py) and the manifest (manifest/test_secrets.py) import the
fixtures from here by name (pytest finds them in the test module); the sweep's
count of invocations is kept across them, and printed as each module ends.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fakehttp import HangingServer
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
def quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
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
