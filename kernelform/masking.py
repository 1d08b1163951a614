"""Secrets that never show themselves, and the redactor a run scrubs its output with.

Tokens and passwords must not appear in output, state, plans, logs, lock
records or exception text. Two tools, used together: a ``Secret`` holds a value
whose ``str()``/``repr()`` is ``***`` (so a stray f-string or log line cannot
leak it), and a ``Redactor`` owned by one run collects every secret the run
was given and scrubs any text before it is shown, in case a library's message
quoted one anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

MASK = "***"


class Secret:
    """A secret value: ``reveal()`` gives it; printing gives ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})" if self._value else "Secret('')"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled: it would write its value")


class Redactor:
    """Every secret one run knows of; ``redact`` replaces them in any text with ``***``."""

    def __init__(self, secrets: Iterable[str | Secret] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | Secret) -> None:
        """Remember *secrets* (empty ones are ignored)."""
        values = [s.reveal() if isinstance(s, Secret) else s for s in secrets]
        with self._lock:
            known = set(self._secrets)
            known.update(v for v in values if v)
            # Longest first, so that no part of a longer secret survives a shorter one.
            self._secrets = sorted(known, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"
