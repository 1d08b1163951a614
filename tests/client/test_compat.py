"""The six original ``jupyter_kernel_*`` functions, against a real jupyter server."""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any

import pytest

from kernelform import jupyter_kernel as jk
from kernelform.errors import AuthError, ClientError, KernelNotFound, UnknownKernelSpec
from tests.support.live_jupyter import JupyterServer

KERNEL_KEYS = {"id", "name", "execution_state", "last_activity", "connections"}
SESSION_KEYS = {"id", "notebook", "kernel_id", "kernel_state", "type", "name"}
UNKNOWN_ID = "3f1e7a52-9d0c-4b6e-8a41-2c5d7e9f0b13"


def _parse_z(moment: str) -> datetime:
    assert moment.endswith("Z"), moment
    return datetime.fromisoformat(moment[:-1] + "+00:00")


def _check_kernel_dict(entry: dict[str, Any], raw: dict[str, Any]) -> None:
    """*entry* has exactly the original keys and agrees with the server's *raw* model."""
    assert set(entry) == KERNEL_KEYS
    assert entry["id"] == raw["id"]
    assert entry["name"] == raw["name"]
    assert isinstance(entry["execution_state"], str) and entry["execution_state"]
    assert isinstance(entry["connections"], int)
    assert _parse_z(entry["last_activity"]) == _parse_z(raw["last_activity"])


def test_signatures_are_the_originals() -> None:
    def params(function: Any) -> list[tuple[str, Any]]:
        return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]

    empty = inspect.Parameter.empty
    url = "http://localhost:8888"
    assert params(jk.jupyter_kernel_list) == [("server_url", url), ("token", "")]
    assert params(jk.jupyter_kernel_start) == [
        ("server_url", url),
        ("token", ""),
        ("name", "python3"),
    ]
    for function in (
        jk.jupyter_kernel_restart,
        jk.jupyter_kernel_interrupt,
        jk.jupyter_kernel_shutdown,
    ):
        assert params(function) == [("server_url", empty), ("token", empty), ("kernel_id", empty)]
    assert params(jk.jupyter_kernel_sessions) == [("server_url", url), ("token", "")]
    assert sorted(jk.__all__) == sorted(
        f"jupyter_kernel_{op}"
        for op in ("list", "start", "restart", "interrupt", "shutdown", "sessions")
    )


def test_list(jupyter: JupyterServer) -> None:
    assert jk.jupyter_kernel_list(jupyter.url, jupyter.token) == []
    first = jupyter.start_kernel()
    second = jupyter.start_kernel()
    listed = jk.jupyter_kernel_list(jupyter.url, jupyter.token)
    assert isinstance(listed, list)
    by_id = {entry["id"]: entry for entry in listed}
    assert set(by_id) == {first["id"], second["id"]}
    raw = {k["id"]: k for k in jupyter.kernels()}
    for kernel_id, entry in by_id.items():
        _check_kernel_dict(entry, raw[kernel_id])


def test_start_default_name(jupyter: JupyterServer) -> None:
    started = jk.jupyter_kernel_start(jupyter.url, jupyter.token)
    assert started["name"] == "python3"
    assert jupyter.kernel_ids() == {started["id"]}
    raw = jupyter.kernel(started["id"])
    assert raw is not None
    assert set(started) == KERNEL_KEYS
    assert started["execution_state"] in {"starting", "idle", "busy"}
    _parse_z(started["last_activity"])


def test_start_named(jupyter: JupyterServer) -> None:
    started = jk.jupyter_kernel_start(jupyter.url, jupyter.token, name="broken")
    assert set(started) == KERNEL_KEYS
    assert started["name"] == "broken"
    assert started["id"] in jupyter.kernel_ids()


def test_restart(jupyter: JupyterServer) -> None:
    kernel = jupyter.start_kernel()
    pid = jupyter.run_code(kernel["id"], "import os\nos.getpid()")
    restarted = jk.jupyter_kernel_restart(jupyter.url, jupyter.token, kernel["id"])
    assert jupyter.kernel_ids() == {kernel["id"]}
    raw = jupyter.kernel(kernel["id"])
    assert raw is not None
    assert set(restarted) == KERNEL_KEYS
    assert restarted["id"] == kernel["id"]
    assert restarted["name"] == "python3"
    assert jupyter.run_code(kernel["id"], "import os\nos.getpid()") != pid


def test_interrupt_returns_none(jupyter: JupyterServer) -> None:
    kernel = jupyter.start_kernel()
    jupyter.wait_ready(kernel["id"])
    assert jk.jupyter_kernel_interrupt(jupyter.url, jupyter.token, kernel["id"]) is None
    assert jupyter.kernel_ids() == {kernel["id"]}
    assert jupyter.run_code(kernel["id"], "6 * 7") == 42


def test_shutdown_returns_none(jupyter: JupyterServer) -> None:
    keep = jupyter.start_kernel()
    kernel = jupyter.start_kernel()
    assert jk.jupyter_kernel_shutdown(jupyter.url, jupyter.token, kernel["id"]) is None
    assert jupyter.kernel_ids() == {keep["id"]}


def test_sessions(jupyter: JupyterServer) -> None:
    assert jk.jupyter_kernel_sessions(jupyter.url, jupyter.token) == []
    kernel = jupyter.start_kernel()
    session = jupyter.create_session(kernel["id"])
    listed = jk.jupyter_kernel_sessions(jupyter.url, jupyter.token)
    assert len(listed) == 1
    entry = listed[0]
    assert set(entry) == SESSION_KEYS
    assert entry == {
        "id": session["id"],
        "notebook": "nb/analysis.ipynb",
        "kernel_id": kernel["id"],
        "kernel_state": jupyter.sessions()[0]["kernel"]["execution_state"],
        "type": "notebook",
        "name": "analysis.ipynb",
    }
    assert isinstance(entry["kernel_state"], str) and entry["kernel_state"]


def test_url_without_trailing_slash(jupyter: JupyterServer) -> None:
    kernel = jupyter.start_kernel()
    listed = jk.jupyter_kernel_list(jupyter.url.rstrip("/"), jupyter.token)
    assert [entry["id"] for entry in listed] == [kernel["id"]]


# -- errors ---------------------------------------------------------------------------


WRONG = "wrong-token-0123456789"

CALLS = {
    "list": lambda url, token: jk.jupyter_kernel_list(url, token),
    "start": lambda url, token: jk.jupyter_kernel_start(url, token, "python3"),
    "restart": lambda url, token: jk.jupyter_kernel_restart(url, token, UNKNOWN_ID),
    "interrupt": lambda url, token: jk.jupyter_kernel_interrupt(url, token, UNKNOWN_ID),
    "shutdown": lambda url, token: jk.jupyter_kernel_shutdown(url, token, UNKNOWN_ID),
    "sessions": lambda url, token: jk.jupyter_kernel_sessions(url, token),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_wrong_token_raises_auth_error(jupyter: JupyterServer, name: str) -> None:
    with pytest.raises(AuthError) as info:
        CALLS[name](jupyter.url, WRONG)
    assert isinstance(info.value, ClientError)
    text = str(info.value)
    assert text.startswith(jupyter.url)
    assert WRONG not in text and jupyter.token not in text
    assert jupyter.kernel_ids() == set()


@pytest.mark.parametrize("name", ["restart", "interrupt", "shutdown"])
def test_unknown_kernel_raises_kernel_not_found(jupyter: JupyterServer, name: str) -> None:
    with pytest.raises(KernelNotFound) as info:
        CALLS[name](jupyter.url, jupyter.token)
    assert info.value.kernel_id == UNKNOWN_ID
    assert str(info.value).startswith(jupyter.url)


def test_unknown_spec_raises_unknown_kernel_spec(jupyter: JupyterServer) -> None:
    with pytest.raises(UnknownKernelSpec) as info:
        jk.jupyter_kernel_start(jupyter.url, jupyter.token, name="no-such-spec")
    assert info.value.spec == "no-such-spec"
    assert "python3" in info.value.available
    assert jupyter.kernel_ids() == set()
