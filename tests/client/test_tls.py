"""kernelform against a real jupyter server serving https with a self-signed certificate.

The certificate (subjectAltName IP:127.0.0.1 and DNS:localhost) is made with the
``openssl`` command line and the server started with it by ``tests/support/tls.py``;
every plain-``requests`` helper of the server verifies against the test certificate.

Checked through the real command line: without a CA the certificate is refused
with one clear line; ``--ca-bundle``/``ca_bundle:`` and ``--insecure``/``insecure:
true`` both work, for the raw commands and for plan/apply/destroy.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.kf import Result, run, state_of
from tests.support.tls import TlsJupyterServer, launch_tls, make_certificate

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsJupyterServer]:
    certs = tmp_path_factory.mktemp("certs")
    cert, key = make_certificate(certs)
    server = launch_tls(tmp_path_factory.mktemp("tls-jupyter"), cert, key)
    try:
        yield server
    finally:
        if server.running:
            with contextlib.suppress(Exception):
                server.cleanup(timeout=10)
        server.stop()


@pytest.fixture
def https(tls: TlsJupyterServer) -> Iterator[TlsJupyterServer]:
    assert tls.running, f"the TLS jupyter server died; its log:\n{tls.log_tail()}"
    assert tls.url.startswith("https://127.0.0.1:")
    yield tls
    tls.cleanup()


def raw(server: TlsJupyterServer, cwd: Path, *args: str, url: str | None = None) -> Result:
    return run(
        "kernels", *args, "--server", url or server.url, "--timeout", "10",
        cwd=cwd, env={"JUPYTER_TOKEN": server.token},
    )  # fmt: skip


def test_the_server_really_speaks_tls_only(https: TlsJupyterServer) -> None:
    """The fixture is what it claims: plain http is refused, unverified https too."""
    plain = https.url.replace("https://", "http://", 1)
    with pytest.raises(requests.RequestException):
        requests.get(plain + "api/status", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https.url + "api/status", timeout=5, verify=True)
    assert https.api("GET", "api/status").status_code == 200


def test_untrusted_certificate_is_one_clear_line(https: TlsJupyterServer, tmp_path: Path) -> None:
    result = raw(https, tmp_path, "list")
    assert result.code == 1, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    (line,) = lines
    assert line.startswith(f"Error: {https.url.rstrip('/')}"), line
    assert "TLS" in line and "certificate" in line, line
    assert "--ca-bundle" in line and "--insecure" in line, line
    assert https.token not in result.out + result.err


def test_ca_bundle_makes_raw_commands_work(https: TlsJupyterServer, tmp_path: Path) -> None:
    cert = str(https.ca_file)
    listed = raw(https, tmp_path, "list", "--ca-bundle", cert)
    assert listed.code == 0, listed
    assert listed.json() == []
    started = raw(https, tmp_path, "start", "--ca-bundle", cert)
    assert started.code == 0, started
    kernel_id = started.json()["id"]
    assert https.kernel_ids() == {kernel_id}
    again = raw(https, tmp_path, "list", "--ca-bundle", cert)
    assert [k["id"] for k in again.json()] == [kernel_id]
    # The certificate's DNS name works as well as its IP address.
    by_name = https.url.replace("127.0.0.1", "localhost")
    specs = raw(https, tmp_path, "specs", "--ca-bundle", cert, url=by_name)
    assert specs.code == 0, specs
    assert "python3" in specs.json()["kernelspecs"]
    shut = raw(https, tmp_path, "shutdown", kernel_id, "--ca-bundle", cert)
    assert shut.code == 0, shut
    https.wait_gone(kernel_id)
    for result in (listed, started, again, specs, shut):
        assert "Warning" not in result.err, result.err


def test_insecure_skips_verification_with_one_warning(
    https: TlsJupyterServer, tmp_path: Path
) -> None:
    server = https.url
    warning = f"Warning: the TLS certificate of {server} is not verified (--insecure)"
    listed = raw(https, tmp_path, "list", "--insecure")
    assert listed.code == 0, listed
    assert listed.json() == []
    # One line of kernelform's own, not urllib3's warning (two lines) per request.
    assert listed.err.splitlines() == [warning], listed.err
    sessions = raw(https, tmp_path, "sessions", "--insecure")
    assert sessions.code == 0 and sessions.json() == [], sessions
    assert sessions.err.splitlines() == [warning], sessions.err


def test_a_ca_bundle_that_is_not_the_issuer_is_refused(
    https: TlsJupyterServer, tmp_path: Path
) -> None:
    other, _ = make_certificate(tmp_path)
    result = raw(https, tmp_path, "list", "--ca-bundle", str(other))
    assert result.code == 1, result
    assert len(result.err.splitlines()) == 1 and "TLS" in result.err, result.err


def write_tls_manifest(directory: Path, server: TlsJupyterServer, tls_keys: str) -> Path:
    path = directory / "kernelform.yaml"
    path.write_text(
        "servers:\n"
        "  secure:\n"
        f"    url: {server.url}\n"
        "    token: ${KF_TEST_TOKEN}\n"
        f"{tls_keys}"
        "kernels:\n"
        "  etl: {spec: python3}\n",
        encoding="utf-8",
    )
    return path


def kf(directory: Path, server: TlsJupyterServer, *args: str) -> Result:
    return run(*args, cwd=directory, env={"KF_TEST_TOKEN": server.token})


def test_manifest_without_ca_fails_plan_clearly(https: TlsJupyterServer, tmp_path: Path) -> None:
    write_tls_manifest(tmp_path, https, "")
    plan = kf(tmp_path, https, "plan")
    assert plan.code == 1, plan
    assert "TLS" in plan.err and "certificate" in plan.err, plan.err
    # The fix lives in the manifest for this command, not in flags it does not have.
    assert "servers.secure.ca_bundle in" in plan.err and "insecure: true" in plan.err, plan.err
    assert "--ca-bundle" not in plan.err and "--insecure" not in plan.err, plan.err
    assert len(plan.err.splitlines()) == 1, plan.err
    assert https.kernel_ids() == set()


@pytest.mark.parametrize(
    "tls_keys",
    [
        pytest.param("    ca_bundle: certs/cert.pem\n", id="ca_bundle-relative"),
        pytest.param("    insecure: true\n", id="insecure"),
    ],
)
def test_manifest_plan_apply_destroy_over_tls(
    https: TlsJupyterServer, tmp_path: Path, tls_keys: str
) -> None:
    assert https.ca_file is not None
    (tmp_path / "certs").mkdir()
    shutil.copy(https.ca_file, tmp_path / "certs" / "cert.pem")
    write_tls_manifest(tmp_path, https, tls_keys)
    # Run from elsewhere: a relative ca_bundle is relative to the manifest, not the cwd.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = str(tmp_path / "kernelform.yaml")

    plan = kf(elsewhere, https, "plan", "-f", manifest, "--detailed-exitcode")
    assert plan.code == 2, plan
    assert "etl will be started" in plan.out, plan.out
    applied = kf(elsewhere, https, "apply", "-f", manifest, "--auto-approve")
    assert applied.code == 0, applied
    kernel_id = state_of(tmp_path)["resources"]["etl"]["kernel_id"]
    assert https.kernel_ids() == {kernel_id}
    again = kf(elsewhere, https, "plan", "-f", manifest, "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out, again
    destroyed = kf(elsewhere, https, "destroy", "-f", manifest, "--auto-approve")
    assert destroyed.code == 0, destroyed
    https.wait_gone(kernel_id)
    assert state_of(tmp_path)["resources"] == {}
    insecure = f"Warning: the TLS certificate of {https.url} is not verified"
    expected = [f"{insecure} (insecure: true)"] if "insecure" in tls_keys else []
    for result in (plan, applied, again, destroyed):
        assert result.err.splitlines() == expected, result.err
        assert https.token not in result.out + result.err
