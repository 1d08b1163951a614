"""The raw ``kernelform kernels ...`` commands against the real server.

Each subcommand prints JSON on stdout in the shapes of the original functions;
errors are one ``Error:`` line on stderr with exit status 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kf import Result, run
from tests.support.live_jupyter import JupyterServer, free_port

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def kernels(jupyter: JupyterServer, *args: str, tmp_path: Path, **env: str) -> Result:
    return run(
        "kernels",
        *args,
        cwd=tmp_path,
        env={"JUPYTER_URL": jupyter.url, "JUPYTER_TOKEN": jupyter.token, **env},
    )


def assert_one_error_line(result: Result, *needles: str) -> None:
    assert result.code == 1, result
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_start_list_restart_interrupt_shutdown(jupyter: JupyterServer, tmp_path: Path) -> None:
    (jupyter.root / "work").mkdir(exist_ok=True)
    started = kernels(jupyter, "start", "--name", "python3", "--path", "work", tmp_path=tmp_path)
    assert started.code == 0, started
    kernel = started.json()
    assert {"id", "name", "execution_state"} <= set(kernel)
    assert kernel["name"] == "python3"
    assert jupyter.kernel_ids() == {kernel["id"]}

    listed = kernels(jupyter, "list", tmp_path=tmp_path).json()
    assert [k["id"] for k in listed] == [kernel["id"]]
    assert set(listed[0]) == {"id", "name", "execution_state", "last_activity", "connections"}

    jupyter.wait_ready(kernel["id"])
    restarted = kernels(jupyter, "restart", kernel["id"], tmp_path=tmp_path)
    assert restarted.code == 0, restarted
    assert restarted.json()["id"] == kernel["id"]

    # A one-line JSON confirmation, not `null`.
    interrupted = kernels(jupyter, "interrupt", kernel["id"], tmp_path=tmp_path)
    assert interrupted.code == 0, interrupted
    assert interrupted.out == f'{{"interrupt": "{kernel["id"]}"}}\n'

    shut = kernels(jupyter, "shutdown", kernel["id"], tmp_path=tmp_path)
    assert shut.code == 0, shut
    assert shut.out == f'{{"shutdown": "{kernel["id"]}"}}\n'
    jupyter.wait_gone(kernel["id"])


def test_sessions_and_specs(jupyter: JupyterServer, tmp_path: Path) -> None:
    session = jupyter.create_session(path="nb/report.ipynb")
    listed = kernels(jupyter, "sessions", tmp_path=tmp_path).json()
    assert listed == [
        {
            "id": session["id"],
            "notebook": "nb/report.ipynb",
            "kernel_id": session["kernel"]["id"],
            "kernel_state": listed[0]["kernel_state"],
            "type": "notebook",
            "name": "report.ipynb",
        }
    ]
    specs = kernels(jupyter, "specs", tmp_path=tmp_path).json()
    assert specs["default"] == "python3"
    assert {"python3", "broken"} <= set(specs["kernelspecs"])


def test_server_and_token_options_override_the_environment(
    jupyter: JupyterServer, tmp_path: Path
) -> None:
    result = run(
        "kernels",
        "list",
        "--server",
        jupyter.url,
        "--token",
        jupyter.token,
        cwd=tmp_path,
        env={"JUPYTER_URL": "http://127.0.0.1:9", "JUPYTER_TOKEN": "nope"},
    )
    assert (result.code, result.json()) == (0, [])


@pytest.mark.parametrize("token", ["wrong-token", ""])
def test_bad_token_is_one_clear_line(jupyter: JupyterServer, tmp_path: Path, token: str) -> None:
    for args in (["list"], ["start"]):
        result = kernels(jupyter, *args, tmp_path=tmp_path, JUPYTER_TOKEN=token)
        assert_one_error_line(result, jupyter.url, "check the token")
        assert "xsrf" not in result.err.lower()
    assert jupyter.kernel_ids() == set()


@pytest.mark.parametrize("command", ["restart", "interrupt", "shutdown"])
@pytest.mark.parametrize("kernel_id", [UNKNOWN_ID, "not-a-uuid"])
def test_unknown_kernel(
    jupyter: JupyterServer, tmp_path: Path, command: str, kernel_id: str
) -> None:
    result = kernels(jupyter, command, kernel_id, tmp_path=tmp_path)
    assert_one_error_line(result, f"no kernel {kernel_id}")


def test_unknown_spec_lists_the_specs(jupyter: JupyterServer, tmp_path: Path) -> None:
    result = kernels(jupyter, "start", "--name", "julia-9", tmp_path=tmp_path)
    assert_one_error_line(result, "unknown kernelspec 'julia-9'", "python3", "broken")


def test_server_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("kernels", "list", "--server", url, cwd=tmp_path)
    assert_one_error_line(result, url, "connection refused")


def test_usage_errors_exit_1(tmp_path: Path) -> None:
    result = run("kernels", "restart", cwd=tmp_path)
    assert result.code == 1 and "Missing argument" in result.err
