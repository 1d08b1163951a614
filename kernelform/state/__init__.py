"""What kernelform owns, remembered between runs.

A Jupyter server cannot say which of its kernels kernelform started, so the
state records them. Losing that record leaks kernels; a wrong record makes
kernelform stop kernels that are not its own. The package holds the model
(``model``), the contract and the rules every backend keeps (``store``), the
workspaces of a backend and their rules (``backend``), what kernelform knows of
each backend without importing it (``kinds``), the registry that turns a
location and a workspace name into a store (``location``), and one module per
backend: a JSON file with a journal (``file``), PostgreSQL (``postgres``,
optional: it needs psycopg), the process's memory (``memory``).
"""

from kernelform.state.file import FileStateStore
from kernelform.state.model import (
    FORMAT_VERSION,
    LockInfo,
    Resource,
    Resources,
    State,
    format_time,
    new_state,
    parse_time,
)
from kernelform.state.store import StateStore

__all__ = [
    "FORMAT_VERSION",
    "FileStateStore",
    "LockInfo",
    "Resource",
    "Resources",
    "State",
    "StateStore",
    "format_time",
    "new_state",
    "parse_time",
]
