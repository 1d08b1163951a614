"""Edges of the command line a new user's probe found: usage errors, raw
servers, pushes, imports, addresses and durations.

Each error is one ``Error:`` line on stderr saying what happened and what to do,
naming only options and keys that exist. Usage errors run in-process through
``kernelform.cli.main`` (the console script's code path, exit status included);
what needs a server runs against the session's real jupyter server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelform.cli import main


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


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

