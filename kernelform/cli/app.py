"""The command line's frame: the ``kernelform`` group, output, and the entry point.

``main`` builds the run's ``Runtime``, runs the command and decides the exit
status (the only place that does, see ``kernelform.cli``); ``run`` is the
program itself. The commands live in the sibling modules.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kernelform import __version__

if TYPE_CHECKING:
    from kernelform.errors import KernelformError
    from kernelform.github import Actions
    from kernelform.hooks import Hooks


DEFAULT_MANIFEST = "kernelform.yaml"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_BLOCKED = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])

TIMEOUT_ENV = "KERNELFORM_TIMEOUT"
STATE_ENV = "KERNELFORM_STATE"
NO_KERNEL_ID_ENV = "KERNELFORM_ASSUME_NO_KERNEL_ID"


class Exit(Exception):
    """Raised by a command to end with a given status after its output."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


def emit(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    click.echo(text, err=err, nl=nl)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def warn(text: str) -> None:
    click.echo(f"Warning: {text}", err=True)


def github_actions() -> Actions | None:
    """The GitHub Actions run this is, if any (``GITHUB_ACTIONS=true``)."""
    from kernelform.github import Actions

    return Actions.detect(os.environ)


def publish(markdown: str, blocked: Sequence[Any]) -> None:
    """In GitHub Actions: append *markdown* to the job summary and flag blocked changes.

    A summary that cannot be written is a warning: the run itself went fine.
    """
    from kernelform.github import SummaryError, append_step_summary, blocked_warning

    actions = github_actions()
    if actions is None:
        return
    if actions.step_summary is None:
        warn("GITHUB_STEP_SUMMARY is not set; no job summary written")
    else:
        try:
            append_step_summary(actions.step_summary, markdown)
        except SummaryError as e:
            warn(str(e))
    warning = blocked_warning(blocked)
    if warning is not None:
        emit(warning, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kernelform")
def cli() -> None:
    """Jupyter kernels as config: declare kernels in YAML, plan and apply them."""


# -- kernels: the raw operations ---------------------------------------------------


def given_tokens(argv: Sequence[str]) -> list[str]:
    """The secrets a run was given before any command ran: JUPYTER_TOKEN, --token, and
    the password of a state URL in --state or KERNELFORM_STATE."""
    from kernelform.state.location import url_secrets

    found = [os.environ.get("JUPYTER_TOKEN", ""), *url_secrets(os.environ.get(STATE_ENV, ""))]
    for i, arg in enumerate(argv):
        for name in ("--token", "--state"):
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg.partition("=")[2]
            else:
                continue
            found.extend([value] if name == "--token" else url_secrets(value))
    return found


SETTLE_SECONDS = 3.0


def settle_channels() -> None:
    """Let websocket handshakes a wait gave up on finish before the process ends.

    Dropping one that the server still holds makes jupyter_server count one
    connection too few for that kernel, for good; a few seconds usually spare it.
    """
    channels = sys.modules.get("kernelform.channels")
    if channels is not None:
        channels.settle(SETTLE_SECONDS)


def annotate(error: KernelformError, scrub: Callable[[str], str]) -> None:
    """In GitHub Actions, each manifest problem also becomes an ``::error`` line
    (on stderr: stdout may carry a JSON document), located in the workspace."""
    from kernelform.errors import ManifestError
    from kernelform.github import problem_commands

    actions = github_actions()
    if actions is None or not isinstance(error, ManifestError):
        return
    for command in problem_commands(error.problems, workspace=actions.workspace, cwd=Path.cwd()):
        emit(scrub(command), err=True)


def usage_error_line(error: click.UsageError) -> str:
    """One line for a usage error: click's message and where the help is.

    click itself prints three (``Usage:``, ``Try ... --help``, ``Error:``); the
    usage line says nothing the message does not, and the help is one command away.
    """
    path = error.ctx.command_path if error.ctx is not None else "kernelform"
    message = " ".join(error.format_message().split())
    return f"Error: {message} (see '{path} --help')"


def run() -> None:
    """The ``kernelform`` program: ``main``, then the process ends at once.

    Like mypy's fast exit: once the exit status is decided and the output
    flushed, nothing is left to do, and tearing the interpreter down (modules,
    validators, pools) would cost a tenth of a second of CPU for nothing.
    Everything that must be released (locks, connections, websockets) was
    released by the commands' own ``with`` blocks before ``main`` returned.
    """
    try:
        main()
        code: int = EXIT_OK
    except SystemExit as e:
        code = EXIT_OK if e.code is None else e.code if isinstance(e.code, int) else EXIT_ERROR
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None, *, hooks: Hooks | None = None) -> None:
    """Run the CLI and decide the exit status; the only place that does.

    The run's ``Runtime`` is made here and handed to the commands. Every message
    printed here goes through its redactor: no secret the run knows of is ever
    shown, even if an exception's text (a bug's, or a library's) contained one.
    """
    from kernelform.errors import KernelformError, shorten
    from kernelform.hooks import NO_HOOKS
    from kernelform.masking import Redactor
    from kernelform.runtime import Runtime

    args = sys.argv[1:] if argv is None else list(argv)
    # urllib3 warns on every unverified https request, with a source line; the
    # user asked for it (--insecure), and open_client/warn_clear_text say it once.
    warnings.filterwarnings("ignore", message="Unverified HTTPS request", module="urllib3")
    runtime = Runtime(hooks=hooks or NO_HOOKS, secrets=Redactor(given_tokens(args)))
    scrub = runtime.secrets.redact

    try:
        try:
            cli.main(args=args, prog_name="kernelform", standalone_mode=False, obj=runtime)
        finally:
            settle_channels()
    except Exit as e:
        sys.exit(e.code)
    except KernelformError as e:
        for line in scrub(str(e)).splitlines() or [type(e).__name__]:
            emit(f"Error: {line}", err=True)
        annotate(e, scrub)
        sys.exit(EXIT_ERROR)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        emit(scrub(usage_error_line(e)), err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as e:
        shown = io.StringIO()
        e.show(file=shown)
        click.echo(scrub(shown.getvalue()), err=True, nl=False)
        sys.exit(EXIT_ERROR)
    except (click.Abort, KeyboardInterrupt):
        emit("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
        if os.environ.get("KERNELFORM_DEBUG"):
            raise
        detail = shorten(scrub(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__), 300)
        emit(
            f"Error: internal error ({detail}); this is a bug in kernelform, "
            "please report it (KERNELFORM_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK)
