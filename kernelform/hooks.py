"""Hooks: the steps of a run where it can be observed, as one callback object.

kernelform calls these at the points that matter for crash safety: around
every HTTP request, every state write and every kernel start, and just before
any byte of the state is stored. ``Hooks`` does nothing at each; a subclass
overrides what it needs and is handed down through the ``Runtime``. The
crash-safety tests use one that kills the process at an exact step, and one
that makes a state write fail as a full disk would; a library user can use one
to trace a run. Product code never reads the environment to decide such
things.
"""

from __future__ import annotations


class Hooks:
    """Callbacks at the steps of a run; each does nothing by default."""

    def before_request(self, method: str, url: str) -> None:
        """An HTTP request to a Jupyter server is about to be sent."""

    def after_request(self, method: str, url: str, status: int) -> None:
        """Its answer arrived (any status)."""

    def before_state_write(self) -> None:
        """The executor is about to record an action in the state."""

    def after_state_write(self) -> None:
        """The action is recorded (durable)."""

    def before_start(self, address: str) -> None:
        """A kernel start for *address* is about to be requested (it is recorded as pending)."""

    def after_start(self, address: str, kernel_id: str) -> None:
        """The server answered the start with *kernel_id* (not yet recorded)."""

    def before_store_io(self, location: str) -> None:
        """A backend is about to store bytes at *location*; may raise ``OSError``."""


NO_HOOKS = Hooks()
