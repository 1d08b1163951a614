"""The Kernel Gateway as it starts by default: kernel listing off, a kernel limit.

Why: by default the gateway answers ``GET api/kernels`` and ``GET api/sessions``
with 403 ``{"reason": "Forbidden"}`` to a valid token (a wrong one gets 401).
kernelform must say that the server refused to list, and which setting allows
it, not "check the token". Its 403 "Resource Limit" past ``max_kernels`` is not
a token problem either. The scenario (``test_scenario.py``) covers the gateway
with listing on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.matrix.generations import GATEWAY_API, KERNEL_GATEWAY, running
from tests.support.kf import Result, run, server_env, write_manifest
from tests.support.live_jupyter import JupyterServer

LISTING_OPTION = "--JupyterWebsocketPersonality.list_kernels=True"


@pytest.fixture(scope="module")
def closed_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A gateway with its default listing (off) and room for one kernel."""
    generation = dataclasses.replace(KERNEL_GATEWAY, extra_args=(GATEWAY_API,))
    with running(
        generation,
        tmp_path_factory.mktemp("closed-gateway"),
        label="gateway-closed",
        extra_args=("--KernelGatewayApp.max_kernels=1",),
    ) as server:
        yield server


def raw(server: JupyterServer, tmp_path: Path, *args: str, token: str | None = None) -> Result:
    env = {"JUPYTER_URL": server.url, "JUPYTER_TOKEN": server.token if token is None else token}
    return run("kernels", *args, cwd=tmp_path, env=env)


def one_error_line(result: Result) -> str:
    assert result.code == 1 and result.out == "", result
    (line,) = result.err.strip().splitlines()
    assert line.startswith("Error: "), line
    return line


@pytest.mark.parametrize("what", ["kernels", "sessions"])
def test_refused_listing_names_the_gateway_setting(
    closed_gateway: JupyterServer, tmp_path: Path, what: str
) -> None:
    answer = closed_gateway.api("GET", f"api/{what}")
    assert (answer.status_code, answer.json()["reason"]) == (403, "Forbidden")  # the premise
    line = one_error_line(raw(closed_gateway, tmp_path, "list" if what == "kernels" else what))
    assert f"refused to list {what} (HTTP 403)" in line, line
    assert LISTING_OPTION in line and "KG_LIST_KERNELS=True" in line, line
    assert "check the token" not in line and closed_gateway.token not in line


def test_plan_fails_with_the_same_line(closed_gateway: JupyterServer, tmp_path: Path) -> None:
    write_manifest(tmp_path, closed_gateway, "  etl: {spec: light}\n")
    plan = run("plan", cwd=tmp_path, env=server_env(closed_gateway))
    line = one_error_line(plan)
    assert "refused to list kernels" in line and LISTING_OPTION in line, line


def test_a_wrong_token_is_still_a_token_problem(
    closed_gateway: JupyterServer, tmp_path: Path
) -> None:
    line = one_error_line(raw(closed_gateway, tmp_path, "list", token="wrong-token"))
    assert "not authenticated (HTTP 401); check the token" in line, line


def test_the_kernel_limit_is_not_a_token_problem(
    closed_gateway: JupyterServer, tmp_path: Path
) -> None:
    first = raw(closed_gateway, tmp_path, "start", "--name", "light")
    assert first.code == 0, first
    try:
        line = one_error_line(raw(closed_gateway, tmp_path, "start", "--name", "light"))
        assert "POST api/kernels refused (HTTP 403): Resource Limit" in line, line
    finally:
        closed_gateway.shutdown_kernel(first.json()["id"])
