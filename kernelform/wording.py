"""How messages word things: did-you-mean suggestions and quoted values.

Every message a user reads should quote values the same way and suggest the
same near miss, whether it comes from the manifest checker, a ``--target`` or
a state command; so the helpers live here once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a mistyped *word* most likely meant, if one is close.

    difflib is case-sensitive ('Spec' is not close to 'spec'), so a
    case-insensitive exact match is the fallback.
    """
    pool = sorted(set(candidates))
    found = difflib.get_close_matches(word, pool, n=1)
    if not found:
        found = [c for c in pool if c.lower() == word.lower()]
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'etl'?"`` when a candidate is close, else ``""``."""
    close = closest(word, candidates)
    return f"; did you mean '{close}'?" if close else ""


def clip(text: str, limit: int = 40) -> str:
    """*text* cut to *limit* characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(text: str, limit: int = 40) -> str:
    """*text* quoted for a message, shortened, with control characters escaped."""
    return repr(clip(text, limit))
