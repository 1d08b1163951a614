"""Bad ``watch`` options are clear errors: exit 1, one ``Error:`` line, no cycle run."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.kf import run
from tests.support.live_jupyter import free_port


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--interval", "0"], "Invalid value for '--interval': it must be at least 1s"),
        (["--interval", "-1"], "Invalid value for '--interval': it must be at least 1s"),
        (["--interval", "0.5"], "Invalid value for '--interval': it must be at least 1s"),
        (["--interval", "0s"], "invalid duration '0s': it must be more than zero"),
        (["--interval", "soon"], "invalid duration 'soon'"),
        (["--metrics-port", "0"], "Invalid value for '--metrics-port': 0 is not in the range"),
        (["--metrics-port", "65536"], "Invalid value for '--metrics-port': 65536 is not in"),
        (["--metrics-addr", "0.0.0.0"], "Error: --metrics-addr needs --metrics-port"),
        (["--log-format", "xml"], "Invalid value for '--log-format': 'xml' is not one of"),
        (["--wait-timeout", "0s"], "Invalid value for '--wait-timeout'"),
        (["--force"], "No such option '--force'"),  # a watch never forces
        (["--target", "a"], "No such option '--target'"),  # a watch covers the whole manifest
    ],
)
def test_a_bad_option_is_one_clear_error(args: list[str], expected: str, tmp_path: Path) -> None:
    result = run("watch", *args, cwd=tmp_path, timeout=20)
    assert result.code == 1, result
    assert expected in result.err, result
    assert result.out == "", result


def test_a_metrics_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("watch", "--metrics-port", str(port), cwd=tmp_path, timeout=20)
    assert result.code == 1, result
    assert result.err.strip() == (
        f"Error: cannot serve metrics on 127.0.0.1:{port}: the port is already in use; "
        "choose another --metrics-port"
    ), result
    assert result.out == ""


def test_an_address_this_host_does_not_have_is_named(tmp_path: Path) -> None:
    port = free_port()
    result = run(
        "watch",
        "--metrics-port",
        str(port),
        "--metrics-addr",
        "192.0.2.1",
        cwd=tmp_path,
        timeout=20,
    )
    assert result.code == 1, result
    assert result.err.startswith(f"Error: cannot serve metrics on 192.0.2.1:{port}: "), result
    assert result.err.rstrip().endswith("choose another --metrics-port or --metrics-addr"), result
    assert len(result.err.strip().splitlines()) == 1, result
