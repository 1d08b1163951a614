"""What kernelform owns, remembered between runs.

A Jupyter server cannot say which of its kernels kernelform started, so the
state records them. Losing that record leaks kernels; a wrong record makes
kernelform stop kernels that are not its own. The package holds the model
(``model``), the contract and the rules every backend keeps (``store``), the
backends: a JSON file with a journal (``file``), PostgreSQL (``postgres``,
optional: it needs psycopg), a variable (``memory``), and how a location and a
workspace name become a store (``location``).
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
