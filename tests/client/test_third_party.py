"""What a user can type that used to surface a library's exception as "internal error".

Each case runs the command line in-process (``kernelform.cli.main``: the same
code path as the console script, exit status included) and asks for one
``Error:`` line saying what is wrong, exit 1, and never "internal error" nor
the token. None needs a server; a few reach for a closed port. About 2 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.kf import run, run_main
from tests.support.live_jupyter import free_port

SECRET = "tök€n-secret"


def one_error(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    code, out, err = run_main(argv, capsys)
    assert code == 1, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "internal error" not in err and SECRET not in err + out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("server", "needle"),
    [
        ("http://127.0.0.1:99999", "the server URL is not valid (Port out of range"),
        ("http://[::1", "the server URL is not valid (Invalid IPv6 URL)"),
        ("ftp://files.example", "it is not an http:// or https:// URL; give the server's URL"),
        ("http://:8888/", "the server URL has no host"),
        ("http://ex..ample/", "cannot be sent: the URL is not valid"),
    ],
)
def test_a_bad_server_url(server: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    one_error(["kernels", "list", "--server", server], capsys, needle)


@pytest.mark.parametrize(
    ("token", "needle"),
    [
        (SECRET, "the token has characters an HTTP header cannot carry"),
        ("abc\ndef", "the token has control characters"),
    ],
)
def test_a_token_a_header_cannot_carry(
    token: str, needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    one_error(["kernels", "list", "--server", url, "--token", token], capsys, needle)
    manifest = tmp_path / "kernelform.yaml"
    manifest.write_text(
        f"servers:\n  lab: {{url: '{url}', token: '${{T}}'}}\nkernels:\n  etl: {{spec: python3}}\n"
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("T", token)
        for command in (["validate"], ["plan"]):
            line = one_error([*command, "-f", str(manifest)], capsys, "token has")
            assert line.startswith(f"Error: {manifest}:2:"), line  # FILE:LINE:COL


def test_a_ca_bundle_that_is_no_pem(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    url = f"https://127.0.0.1:{free_port()}"
    argv = ["kernels", "list", "--server", url, "--ca-bundle", str(bundle)]
    one_error(argv, capsys, f"--ca-bundle {bundle} holds no usable CA certificate")


def test_an_import_of_an_invalid_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manifest = tmp_path / "kernelform.yaml"
    manifest.write_text("servers:\n  lab: {url: 'http://127.0.0.1:9'}\nkernels: {}\n")
    argv = ["import", "-f", str(manifest), "etl[x", "00000000-0000-4000-8000-000000000000"]
    one_error(argv, capsys, "invalid kernel address 'etl[x'")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[" * 100_000, "is not a kernelform plan (not JSON: maximum recursion depth"),
        (
            {"changes": [{"address": 5, "server": "lab", "action": "start", "reason": "x"}]},
            "is a damaged plan file (TypeError: expected a string, got int)",
        ),
        ({"changes": [], "targets": ["x["]}, "is a damaged plan file (ValueError: invalid"),
        ({"changes": {"a": 1}}, "is a damaged plan file (TypeError: expected a list"),
        ({"changes": [], "manifest": {"path": 7, "digest": "x"}}, "expected a string, got int"),
    ],
)
def test_a_damaged_plan_file(
    content: object, needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "p.json"
    if isinstance(content, str):
        plan.write_text(content)
    else:
        assert isinstance(content, dict)
        document = {
            "format_version": "1",
            "manifest": {"path": "kernelform.yaml", "digest": "x"},
            "state": {"lineage": "", "serial": 0},
            **content,
        }
        plan.write_text(json.dumps(document))
    one_error(["apply", str(plan)], capsys, needle)


def test_in_a_real_process(tmp_path: Path) -> None:
    result = run("kernels", "list", "--server", "http://[::1", cwd=tmp_path)
    assert result.code == 1 and result.err.startswith("Error: the server URL is not valid")
