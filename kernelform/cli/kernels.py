"""``kernelform kernels …``: the raw operations on one server, as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from kernelform.client import JupyterClient
    from kernelform.errors import KernelformError

from kernelform.cli.app import (
    F,
    cli,
    emit,
    emit_json,
    warn,
)
from kernelform.cli.options import (
    current_runtime,
)


def check_server_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse a --server that is not an http(s) URL rather than guess one.

    ``campus@ana`` (a hub user's address) would otherwise become ``http://ana/``.
    The value is not echoed: a URL may carry a token.
    """
    if not value.strip().lower().startswith(("http://", "https://")):
        raise click.BadParameter(
            "it is not an http:// or https:// URL; give the server's URL, e.g. "
            "http://127.0.0.1:8888/ (a hub user's: https://HUB/user/NAME/)"
        )
    return value


def server_options(command: F) -> F:
    """--server/--token and the transport options shared by every raw command."""
    options = [
        click.option(
            "--server",
            envvar="JUPYTER_URL",
            default="http://localhost:8888",
            show_default=True,
            callback=check_server_url,
            help="Jupyter server URL, with its path prefix if any [env: JUPYTER_URL].",
        ),
        click.option(
            "--token",
            envvar="JUPYTER_TOKEN",
            default="",
            show_default=False,
            help="API token [env: JUPYTER_TOKEN]. Sent only in the Authorization header.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="Seconds to wait for each answer.",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="CA certificate bundle to verify the server's TLS certificate.",
        ),
        click.option("--insecure", is_flag=True, help="Skip TLS certificate verification."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_client(
    *, server: str, token: str, timeout: float, ca_bundle: str | None, insecure: bool
) -> JupyterClient:
    from kernelform.client import JupyterClient

    runtime = current_runtime(read_timeout=timeout)
    runtime.secrets.add(token)
    if ca_bundle is not None:
        check_ca_bundle(ca_bundle)
    verify: bool | str = False if insecure else (ca_bundle or True)
    client = JupyterClient(
        server,
        token,
        timeouts=runtime.timeouts,
        verify=verify,
        hooks=runtime.hooks,
        kernel_ids=runtime.kernel_ids,
    )
    if client.sends_token_in_clear:
        warn(f"the token is sent over plain http to {client.server}; use https")
    if client.skips_tls_verification:
        warn(f"the TLS certificate of {client.server} is not verified (--insecure)")
    return client


def check_ca_bundle(path: str) -> None:
    """Refuse a --ca-bundle that holds no CA certificate now, not at the first request."""
    import ssl

    from kernelform.errors import KernelformError

    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
        raise KernelformError(
            f"--ca-bundle {path} holds no usable CA certificate ({reason}); give a PEM file"
            " with the CA that signed the server's certificate"
        ) from None


def raw_command(function: Callable[..., Any]) -> Callable[..., None]:
    """Turn ``function(client, **args) -> JSON-able`` into a ``kernels`` subcommand."""
    return _raw(function, show=emit_json)


def raw_action(function: Callable[..., Any]) -> Callable[..., None]:
    """A ``kernels`` subcommand whose answer is a one-line JSON confirmation."""
    return _raw(function, show=lambda data: emit(json.dumps(data)))


def _raw(function: Callable[..., Any], *, show: Callable[[Any], None]) -> Callable[..., None]:
    @server_options
    @wraps(function)
    def command(
        server: str, token: str, timeout: float, ca_bundle: str | None, insecure: bool, **args: Any
    ) -> None:
        from kernelform.errors import KernelformError

        try:
            with open_client(
                server=server, token=token, timeout=timeout, ca_bundle=ca_bundle, insecure=insecure
            ) as client:
                show(function(client, **args))
        except KernelformError as e:
            e.hint = raw_hint(e)
            raise

    return command


def raw_hint(error: KernelformError) -> str:
    """What fixes *error* in a raw ``kernels`` command."""
    from kernelform.errors import Remedy

    hints = {
        Remedy.CHECK_TOKEN: "check the token (--token or JUPYTER_TOKEN)",
        Remedy.TRUST_CERTIFICATE: (
            "pass --ca-bundle with the server's CA certificate, or --insecure to skip verification"
        ),
        Remedy.LIST_KERNELS: "list them with 'kernelform kernels list'",
        Remedy.RAISE_TIMEOUT: "or wait longer for each answer with --timeout SECONDS",
    }
    return hints.get(error.remedy, "") if error.remedy is not None else ""


@cli.group()
def kernels() -> None:
    """Raw kernel operations on one server; output is always JSON."""


@kernels.command("list")
@raw_command
def kernels_list(client: JupyterClient) -> Any:
    """List the running kernels."""
    return [kernel.to_dict() for kernel in client.list_kernels()]


@kernels.command("start")
@click.option("--name", default="python3", show_default=True, help="Kernelspec name.")
@click.option("--path", default=None, help="Working dir, relative to the server root.")
@raw_command
def kernels_start(client: JupyterClient, name: str, path: str | None) -> Any:
    """Start a kernel."""
    return client.start_kernel(name, path=path).to_dict()


@kernels.command("restart")
@click.argument("kernel_id")
@raw_command
def kernels_restart(client: JupyterClient, kernel_id: str) -> Any:
    """Restart a kernel in place (same id)."""
    return client.restart_kernel(kernel_id).to_dict()


@kernels.command("interrupt")
@click.argument("kernel_id")
@raw_action
def kernels_interrupt(client: JupyterClient, kernel_id: str) -> Any:
    """Interrupt what a kernel is running; prints {"interrupt": KERNEL_ID}."""
    client.interrupt_kernel(kernel_id)
    return {"interrupt": kernel_id}


@kernels.command("shutdown")
@click.argument("kernel_id")
@raw_action
def kernels_shutdown(client: JupyterClient, kernel_id: str) -> Any:
    """Shut a kernel down; prints {"shutdown": KERNEL_ID}."""
    client.shutdown_kernel(kernel_id)
    return {"shutdown": kernel_id}


@kernels.command("sessions")
@raw_command
def kernels_sessions(client: JupyterClient) -> Any:
    """List the sessions (which notebook uses which kernel)."""
    return [session.to_dict() for session in client.list_sessions()]


@kernels.command("specs")
@raw_command
def kernels_specs(client: JupyterClient) -> Any:
    """List the kernelspecs the server offers."""
    return client.list_kernelspecs().to_dict()
