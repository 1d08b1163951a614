"""The command line: a thin click layer over the library.

Options become settings objects, the library does the work, output goes
through ``emit``/``emit_json`` or a ``Printer``, and exit statuses are decided
in ``main`` alone:

====  ==========================================================
 0    success (with ``--detailed-exitcode``: no changes)
 1    an error (one line on stderr, never a traceback)
 2    ``--detailed-exitcode`` only: the plan has changes
 3    ``apply``/``destroy``: done, but blocked changes remain
130   interrupted (Ctrl-C)
====  ==========================================================

Usage errors exit 1 too, so that 2 can only ever mean "changes present", and are
one line as well: click's message and the command whose ``--help`` to read.
This package is the only place that imports click: ``app`` (the group and the
entry point), ``options`` (what the commands share), and one module per family
of commands: ``kernels`` (raw operations), ``plans`` (the manifest commands),
``records`` (state, workspaces, force-unlock), ``watch``; and ``arguments``, which
reads a command line without running it (for the GitHub Action's checks).
"""

from kernelform.cli import kernels, plans, records, watch  # noqa: F401  (registers the commands)
from kernelform.cli.app import cli, main, run

__all__ = ["cli", "main", "run"]
