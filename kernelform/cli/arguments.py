"""What a command line gives a kernelform command, read as the command reads it, not run.

The GitHub Action adds flags of its own to its user's ``args`` (``--json``,
``--out``); to check those args first, and to speak of its own inputs rather
than of flags the user never typed, it must know which options and arguments
they hold. Asking the command itself (click's parser, without callbacks or
prompts) keeps this exact, with no second list of which options take a value.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from kernelform.cli.app import cli


def given_parameters(command: str, args: Sequence[str]) -> dict[str, object]:
    """The parameters *args* set on the command line of ``kernelform COMMAND``, by their
    Python names (``auto_approve``, ``plan_file``, ``out``, ...).

    Lenient: an unknown option, an extra argument or a bad value is left out, for
    kernelform to refuse in its own words when it runs.
    """
    found = cli.commands.get(command)
    if found is None:
        return {}
    try:
        context = found.make_context(command, list(args), resilient_parsing=True)
    except click.ClickException:
        return {}
    return {
        name: value
        for name, value in context.params.items()
        if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        and value is not None
    }
