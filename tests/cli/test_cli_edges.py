"""Edges of the command line a new user's probe found: usage errors, raw
servers, pushes, imports, addresses and durations.

Each error is one ``Error:`` line on stderr saying what happened and what to do,
naming only options and keys that exist. Usage errors run in-process through
``kernelform.cli.main`` (the console script's code path, exit status included);
what needs a server runs against the session's real jupyter server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.kf import Result, run, run_main, server_env, state_of, write_manifest
from tests.support.live_jupyter import JupyterServer


def one_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``Error:`` line *argv* ends with (exit 1, nothing on stdout)."""
    code, out, err = run_main(argv, capsys)
    assert code == 1, (out, err)
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


# -- usage errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message", "command"),
    [
        (
            ["apply", "--parallelism", "0"],
            "Invalid value for '--parallelism': 0 is not in the range 1<=x<=256.",
            "kernelform apply",
        ),
        (
            ["apply", "--wait-timeout", "0"],
            "Invalid value for '--wait-timeout': it must be more than zero, e.g. 30s",
            "kernelform apply",
        ),
        (
            ["status", "--target", "x"],
            "No such option '--target'. Did you mean '--state'?",
            "kernelform status",
        ),
        (["kernels", "list", "--bogus"], "No such option '--bogus'.", "kernelform kernels list"),
        (["bogus"], "No such command 'bogus'.", "kernelform"),
        (["import"], "Missing argument 'ADDRESS'.", "kernelform import"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_help(
    argv: list[str], message: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert one_error(argv, capsys) == f"Error: {message} (see '{command} --help')"


# -- durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["watch", "--interval", "0.5s"],
            "invalid duration '0.5s': use a number of seconds (e.g. 1.5) or whole numbers"
            " followed by s, m, h or d (e.g. 90s, 5m, 1h30m), at least 1s",
        ),
        (["watch", "--interval", "0.5"], "it must be at least 1s (e.g. 60s or 5m), not '0.5'"),
        (
            ["plan", "--lock-timeout", "1.5m"],
            "invalid duration '1.5m': use a number of seconds (e.g. 1.5) or whole numbers"
            " followed by s, m, h or d (e.g. 90s, 5m, 1h30m) (see",
        ),
    ],
)
def test_a_bad_duration_option_says_the_forms_it_takes(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected in one_error(argv, capsys)


@pytest.mark.parametrize("key", ["health_timeout", "ready_timeout", "max_age", "busy_timeout"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_zero_duration_says_more_than_zero(
    key: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "k.yaml"
    manifest.write_text(
        "servers:\n  lab: {url: 'http://127.0.0.1:8888'}\n"
        f"kernels:\n  etl:\n    spec: python3\n    {key}: {value}\n"
    )
    line = one_error(["validate", "-f", str(manifest)], capsys)
    col = len(f"    {key}: ") + 1
    assert line == f"Error: {manifest}:6:{col}: {key} must be more than zero, e.g. 30s, got {value}"


# -- raw commands ------------------------------------------------------------------


@pytest.mark.parametrize("server", ["campus@ana", "localhost:8888", "ftp://host/"])
def test_a_raw_server_that_is_not_a_url_is_refused_not_guessed(
    server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("kernelform guessed a URL and contacted it")

    monkeypatch.setattr(requests.Session, "request", refuse)
    line = one_error(["kernels", "list", "--server", server], capsys)
    assert line == (
        "Error: Invalid value for '--server': it is not an http:// or https:// URL; give the"
        " server's URL, e.g. http://127.0.0.1:8888/ (a hub user's: https://HUB/user/NAME/)"
        " (see 'kernelform kernels list --help')"
    )


# -- against the real server: state push, import, targets --------------------------


def kf(cwd: Path, jupyter: JupyterServer, *args: str) -> Result:
    return run(*args, cwd=cwd, env=server_env(jupyter))


def only_error(result: Result) -> str:
    assert result.code == 1, result
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    return lines[0]


def test_state_push_names_a_saved_plan_and_the_force_option(
    tmp_path: Path, jupyter: JupyterServer
) -> None:
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3, count: 1}\n  web: {spec: python3}\n")
    assert kf(tmp_path, jupyter, "plan", "--out", "p.json").code == 0
    assert only_error(kf(tmp_path, jupyter, "state", "push", "p.json")) == (
        "Error: p.json is a saved plan, not a state: apply it with 'kernelform apply p.json';"
        " state push takes a state file from 'kernelform state pull' or a recovery file"
    )
    etl, web = (jupyter.start_kernel()["id"] for _ in range(2))
    assert kf(tmp_path, jupyter, "import", "etl", etl).out == f"Imported kernel {etl} as etl[0].\n"
    (tmp_path / "old.json").write_text(kf(tmp_path, jupyter, "state", "pull").out)
    assert kf(tmp_path, jupyter, "import", "web[0]", web).out == (
        f"Imported kernel {web} as web.\n"
    )
    refused = only_error(kf(tmp_path, jupyter, "state", "push", "old.json"))
    assert "newer than the pushed one" in refused and "nothing was changed" in refused
    assert refused.endswith(
        "; see what it holds with 'kernelform state pull'; push again with --force only if"
        " the pushed state is the right one (the stored one is lost)"
    ), refused
    assert "force it" not in refused
    assert kf(tmp_path, jupyter, "state", "push", "--force", "old.json").code == 0
    assert set(state_of(tmp_path)["resources"]) == {"etl[0]"}


def test_an_imported_kernel_gets_its_setup_code_at_the_next_apply(
    tmp_path: Path, jupyter: JupyterServer
) -> None:
    """The setup code never ran in a kernel started elsewhere: import recorded it as
    run, and the next plan said 'No changes' (a probe found it)."""
    (jupyter.root / "work").mkdir(exist_ok=True)
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3, cwd: work, setup: 'KF_SET = 7'}\n")
    kernel = jupyter.start_kernel()["id"]
    imported = kf(tmp_path, jupyter, "import", "etl", kernel)
    assert imported.code == 0 and imported.out == f"Imported kernel {kernel} as etl.\n"
    assert imported.err.splitlines() == [
        "Warning: the setup code of etl has not run in this kernel: the next apply restarts"
        " it to run it",
        "Warning: kernelform cannot see a running kernel's working directory: it records the"
        " declared cwd 'work' for etl without checking it",
    ], imported.err
    plan = kf(tmp_path, jupyter, "plan")
    assert "etl will be restarted: setup changed" in plan.out, plan.out
    assert kf(tmp_path, jupyter, "apply", "--auto-approve").code == 0
    assert jupyter.run_code(kernel, "KF_SET") == 7
    assert "No changes" in kf(tmp_path, jupyter, "plan").out


def test_import_reads_an_address_as_a_target_does(tmp_path: Path, jupyter: JupyterServer) -> None:
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3, count: 2}\n  web: {spec: python3}\n")
    kernel = jupyter.start_kernel()["id"]
    cases = {
        "etll": "etll is not declared in kernelform.yaml; did you mean 'etl'?",
        "etl": "etl is not declared in kernelform.yaml; etl has: etl[0], etl[1]",
        "zzz": "zzz is not declared in kernelform.yaml; the kernels are: etl, web",
        "tutor@ana[1]": "invalid kernel address 'tutor@ana[1]': the index goes before the user;"
        " did you mean 'tutor[1]@ana'?",
    }
    for address, message in cases.items():
        assert only_error(kf(tmp_path, jupyter, "import", address, kernel)) == f"Error: {message}"
    assert kf(tmp_path, jupyter, "import", "web", kernel).code == 0
    # Recorded as web: its other spelling is the same kernel.
    again = only_error(kf(tmp_path, jupyter, "import", "web[0]", kernel))
    assert again.startswith(f"Error: web is already managed (kernel {kernel}); run"), again


def test_an_index_after_the_user_is_pointed_out(tmp_path: Path, jupyter: JupyterServer) -> None:
    write_manifest(tmp_path, jupyter, "  etl: {spec: python3}\n")
    line = only_error(kf(tmp_path, jupyter, "plan", "--target", "tutor@ana[1]"))
    assert line == (
        "Error: invalid kernel address 'tutor@ana[1]': the index goes before the user;"
        " did you mean 'tutor[1]@ana'?"
    )


# -- the manifest ------------------------------------------------------------------


def test_a_server_key_naming_a_hub_says_to_write_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "k.yaml"
    manifest.write_text(
        "hubs:\n  campus:\n    url: http://127.0.0.1:8000\n    token: t\n"
        "kernels:\n  tutor:\n    spec: python3\n    server: campus\n"
    )
    assert one_error(["validate", "-f", str(manifest)], capsys) == (
        f"Error: {manifest}:8:13: kernel 'tutor' names unknown server 'campus'; campus is a hub:"
        " write hub: campus; no server is declared"
    )
