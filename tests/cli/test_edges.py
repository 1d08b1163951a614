"""Sharp edges a new user met in the first hour (issue 9), through the real command line.

Saved plans and the options that would change them, targets that match
nothing, saved plans applied from elsewhere and stale on meaning only,
confirmations read from a pipe, and the smaller wordings. All against the
session's real jupyter server; about 40 s.

Then the edges a new user's probe found: usage errors, raw servers, pushes,
imports and addresses. Each error is one ``Error:`` line on stderr saying what
happened and what to do, naming only options and keys that exist. Usage errors
run in-process through ``kernelform.cli.main`` (the console script's code path,
exit status included); what needs a server runs against the session's real
jupyter server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.kf import (
    ROOT,
    Result,
    one_error,
    run,
    server_env,
    state_of,
    write_manifest,
)
from tests.support.live_jupyter import JupyterServer


@pytest.fixture
def project(tmp_path: Path, jupyter: JupyterServer) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


def kf(cwd: Path, jupyter: JupyterServer, *args: str, stdin: str | None = None) -> Result:
    return run(*args, cwd=cwd, env=server_env(jupyter), stdin=stdin)


def managed(directory: Path) -> dict[str, str]:
    return {a: r["kernel_id"] for a, r in state_of(directory)["resources"].items()}


def errors(result: Result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("Error:")]


# -- saved plans ---------------------------------------------------------------------


def test_saved_plan_refuses_options_that_would_change_it(
    project: Path, jupyter: JupyterServer
) -> None:
    write_manifest(
        project, jupyter, "  etl: {spec: python3, count: 2}\n  scratch: {spec: python3}\n"
    )
    assert kf(project, jupyter, "plan", "--out", "p.json").code == 0
    for given in (["--target", "scratch"], ["--force"], ["--target", "etl", "--force"]):
        refused = kf(project, jupyter, "apply", *given, "p.json")
        assert refused.code == 1, refused
        assert len(refused.err.splitlines()) == 1, refused.err
        assert "cannot be used with a saved plan" in refused.err, refused.err
        assert given[0] in refused.err
        assert "Usage:" not in refused.err
    assert jupyter.kernel_ids() == set()
    # --parallelism and the wait options are honoured (here: no waiting for readiness).
    applied = kf(project, jupyter, "apply", "--parallelism", "1", "--no-wait", "p.json")
    assert applied.code == 0, applied
    assert "ready in" not in applied.out and applied.out.count(": started kernel") == 3
    assert set(managed(project)) == {"etl[0]", "etl[1]", "scratch"}


def test_saved_plan_applies_from_anywhere_and_goes_stale_on_meaning_only(
    project: Path, jupyter: JupyterServer, tmp_path: Path
) -> None:
    manifest = write_manifest(project, jupyter, "  etl: {spec: python3, revision: 1}\n")
    saved = kf(project, jupyter, "plan", "--out", "p.json")
    assert saved.code == 0, saved
    assert f"Saved the plan to p.json (manifest {manifest}); run" in saved.out, saved.out
    # A comment and a reformatting change no meaning: the plan still applies.
    manifest.write_text("# the lab\n" + manifest.read_text().replace("kernels:", "kernels:   "))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    applied = kf(elsewhere, jupyter, "apply", str(project / "p.json"))
    assert applied.code == 0, applied
    assert f"Applying the saved plan {project / 'p.json'} (manifest {manifest}, made " in (
        applied.out
    )
    assert set(managed(project)) == {"etl"} and not (elsewhere / ".kernelform").exists()
    # A changed key makes it stale.
    manifest.write_text(manifest.read_text().replace("revision: 1", "revision: 2"))
    assert kf(project, jupyter, "plan", "--out", "p.json").code == 0
    manifest.write_text(manifest.read_text().replace("revision: 2", "revision: 3"))
    stale = kf(elsewhere, jupyter, "apply", str(project / "p.json"))
    assert stale.code == 1 and "stale" in stale.err and "declares changed" in stale.err, stale
    # Moved with its manifest (another checkout): found relative to the plan file.
    manifest.write_text(manifest.read_text().replace("revision: 3", "revision: 2"))
    moved = tmp_path / "moved"
    project.rename(moved)
    again = kf(elsewhere, jupyter, "apply", str(moved / "p.json"))
    assert again.code == 0, again
    assert f"(manifest {moved / 'kernelform.yaml'}, made" in again.out
    assert state_of(moved)["resources"]["etl"]["revision"] == "2"
    # Gone altogether: one line naming both places looked at.
    (moved / "kernelform.yaml").unlink()
    lost = kf(elsewhere, jupyter, "apply", str(moved / "p.json"))
    assert errors(lost) == [
        f"Error: cannot find the manifest of the plan {moved / 'p.json'}: neither"
        f" {manifest} nor {moved / 'kernelform.yaml'} exists; name it with -f FILE"
    ], lost.err


def test_plan_out_dash_prints_the_plan_json_on_stdout(
    project: Path, jupyter: JupyterServer
) -> None:
    write_manifest(project, jupyter, "  etl: {spec: python3}\n")
    result = kf(project, jupyter, "plan", "--out", "-")
    assert result.code == 0, result
    document = json.loads(result.out)
    assert [c["address"] for c in document["changes"]] == ["etl"]
    assert "etl will be started" in result.err  # the plan for people goes to stderr
    assert not (project / "-").exists()
    mixed = kf(project, jupyter, "plan", "--out", "-", "--markdown")  # two documents on stdout
    assert mixed.code == 1 and mixed.out == "", mixed
    assert mixed.err.splitlines() == [
        "Error: --out - prints the plan as JSON on stdout, where --markdown would print too;"
        " save the plan to a file (--out plan.json) beside --markdown"
    ], mixed.err


# -- targets -------------------------------------------------------------------------


def test_a_target_that_matches_nothing_is_an_error(project: Path, jupyter: JupyterServer) -> None:
    write_manifest(project, jupyter, "  etl: {spec: python3, count: 2}\n  web: {spec: python3}\n")
    cases = {
        "etl1": "target 'etl1' matches no declared or recorded kernel; did you mean 'etl'?",
        "etl[9]": "target 'etl[9]' matches no declared or recorded kernel; etl has: etl[0], etl[1]",
        "zzz": "target 'zzz' matches no declared or recorded kernel; the kernels are: etl, web",
        "etl[x": "invalid kernel address 'etl[x': expected NAME, NAME[INDEX], NAME@USER or"
        " NAME[INDEX]@USER, e.g. etl[0] or tutor[1]@ana",
    }
    for target, message in cases.items():
        for command in (["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"]):
            result = kf(project, jupyter, *command, "--target", target)
            assert result.code == 1, result
            assert len(errors(result)) == 1 and errors(result)[0].startswith(f"Error: {message}")
            assert "No changes" not in result.out
    assert jupyter.kernel_ids() == set()
    assert not (project / ".kernelform").exists()


def test_targeting_is_said_once_and_a_recorded_target_is_known(
    project: Path, jupyter: JupyterServer
) -> None:
    write_manifest(project, jupyter, "  etl: {spec: python3}\n  web: {spec: python3}\n")
    applied = kf(project, jupyter, "apply", "--auto-approve", "--target", "etl")
    assert applied.code == 0, applied
    warning = applied.err.splitlines()
    assert len(warning) == 1 and warning[0].startswith("Warning: targeting is in effect (etl)")
    write_manifest(project, jupyter, "  web: {spec: python3}\n")
    plan = kf(project, jupyter, "plan", "--target", "etl")  # no longer declared, but recorded
    assert plan.code == 0, plan
    assert "etl will be shut down: no longer declared" in plan.out
    assert plan.err.count("Warning: targeting is in effect") == 1
    assert "Warning" not in kf(project, jupyter, "plan").err


# -- confirmations -------------------------------------------------------------------


def test_answers_are_read_from_a_pipe(project: Path, jupyter: JupyterServer) -> None:
    write_manifest(project, jupyter, "  etl: {spec: python3}\n")
    refusal = (
        "Error: no terminal to ask for confirmation and no answer on stdin; pass"
        " --auto-approve to apply without asking (or pipe 'yes' into it)"
    )
    empty = kf(project, jupyter, "apply", stdin="")
    assert empty.code == 1 and errors(empty) == [refusal], empty
    closed = subprocess.run(  # stdin closed altogether (`<&-`)
        [sys.executable, "-m", "kernelform", "apply"],
        cwd=project,
        env={**os.environ, "NO_COLOR": "1", **server_env(jupyter)},
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.close(0),
        check=False,
    )
    assert closed.returncode == 1 and closed.stderr.splitlines() == [refusal], closed
    assert jupyter.kernel_ids() == set()
    applied = kf(project, jupyter, "apply", stdin="yes\n")
    assert applied.code == 0, applied
    kernel_id = managed(project)["etl"]
    cancelled = kf(project, jupyter, "destroy", stdin="no\n")
    assert cancelled.code == 1, cancelled
    assert "Destroy cancelled; nothing was changed." in cancelled.out
    assert "Apply cancelled" not in cancelled.out
    assert "Only 'yes' is accepted" not in cancelled.out  # 'no' means no
    almost = kf(project, jupyter, "destroy", stdin="y\n")  # what `yes | kernelform` pipes
    assert almost.code == 1, almost
    assert (
        "Destroy cancelled; nothing was changed. Only 'yes' is accepted; the answer was 'y'."
        in almost.out
    ), almost.out
    refused = kf(project, jupyter, "destroy")
    assert refused.code == 1 and refused.err.splitlines() == [
        "Error: no terminal to ask for confirmation and no answer on stdin; pass"
        " --auto-approve to destroy without asking (or pipe 'yes' into it)"
    ], refused
    assert jupyter.kernel_ids() == {kernel_id}
    destroyed = kf(project, jupyter, "destroy", stdin="yes\n")
    assert destroyed.code == 0 and managed(project) == {}, destroyed


# -- wording and smaller things ---------------------------------------------------------


def test_blocked_reads_as_what_would_happen_and_replace_shows_both_ids(
    project: Path, jupyter: JupyterServer
) -> None:
    (jupyter.root / "a").mkdir(exist_ok=True)
    write_manifest(
        project, jupyter, "  etl: {spec: python3, revision: 1}\n  web: {spec: python3}\n"
    )
    assert kf(project, jupyter, "apply", "--auto-approve", "--no-wait").code == 0
    ids = managed(project)
    jupyter.create_session(ids["etl"], "nb/q3.ipynb")
    write_manifest(
        project, jupyter, "  etl: {spec: python3, revision: 2}\n  web: {spec: python3, cwd: a}\n"
    )
    plan = kf(project, jupyter, "plan")
    assert "# etl is BLOCKED (would be restarted; --force to include): revision 1 → 2" in plan.out
    # The legend lists the symbols the plan uses, and only those.
    assert "  (~ restart, -/+ replace)" in plan.out, plan.out
    applied = kf(project, jupyter, "apply", "--auto-approve", "--no-wait")
    assert applied.code == 3, applied
    new = managed(project)["web"]
    assert f"-/+ web: replaced kernel {ids['web']} → {new} in " in applied.out, applied.out


def test_state_commands_take_a_base_address_and_say_when_empty(
    project: Path, jupyter: JupyterServer
) -> None:
    write_manifest(project, jupyter, "  etl: {spec: python3, count: 2}\n  web: {spec: python3}\n")
    empty = kf(project, jupyter, "state", "list")
    assert empty.code == 0 and empty.out == "", empty
    assert "is empty: no kernel is managed" in empty.err
    assert kf(project, jupyter, "apply", "--auto-approve", "--no-wait").code == 0
    ids = managed(project)
    shown = kf(project, jupyter, "state", "show", "etl")
    assert shown.code == 0, shown
    assert [r["kernel_id"] for r in shown.json()] == [ids["etl[0]"], ids["etl[1]"]]
    assert kf(project, jupyter, "state", "show", "etl[1]").json()["kernel_id"] == ids["etl[1]"]
    typo = kf(project, jupyter, "state", "show", "etll")
    assert errors(typo) == [
        "Error: not in the state: etll; did you mean 'etl'? (see 'kernelform state list')"
    ], typo
    removed = kf(project, jupyter, "state", "rm", "etl")
    assert removed.code == 0, removed
    assert set(managed(project)) == {"web"}
    assert jupyter.kernel_ids() == set(ids.values())  # forgotten, not shut down


def test_a_failed_plan_leaves_nothing_behind(project: Path, jupyter: JupyterServer) -> None:
    write_manifest(project, jupyter, "  etl: {spec: no-such-spec}\n")
    failed = kf(project, jupyter, "plan")
    assert failed.code == 1, failed
    assert not (project / ".kernelform").exists()
    write_manifest(project, jupyter, "  etl: {spec: python3}\n")
    assert kf(project, jupyter, "plan").code == 0
    assert not (project / ".kernelform").exists()


def test_help_lists_only_the_options_that_apply(tmp_path: Path) -> None:
    validate = run("validate", "--help", cwd=tmp_path).out
    assert "--file" in validate
    for option in ("--state", "--lock-timeout", "--no-color"):
        assert option not in validate
    unlock = run("force-unlock", "--help", cwd=tmp_path).out
    assert "--state" in unlock and "--force" in unlock
    for option in ("--lock-timeout", "--no-color", "--target"):
        assert option not in unlock


def test_the_basic_example_suggests_a_command_that_works(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "basic.yaml").read_text()
    suggested = re.findall(r"`(kernelform validate[^`]*)`", text)
    assert suggested, text
    for command in suggested:
        result = run(*shlex.split(command)[1:], cwd=ROOT)
        assert result.code == 0, (command, result)


def test_a_mistyped_spec_is_located_with_a_did_you_mean(
    project: Path, jupyter: JupyterServer
) -> None:
    """validate cannot know a server's kernelspecs; plan can, and says where the spec is."""
    manifest = write_manifest(
        project, jupyter, "  etl:\n    spec: pyhton3\n  ok: {spec: python3}\n"
    )
    for command in ("plan", "status"):
        result = kf(project, jupyter, command)
        assert result.code == 1, result
        (line,) = errors(result)
        assert line.startswith(
            f"Error: {manifest.name}:7:11: kernel 'etl' asks for kernelspec 'pyhton3', which server"
            " 'lab' does not have; did you mean 'python3'? it has: "
        ), line
    assert jupyter.kernel_ids() == set()


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
