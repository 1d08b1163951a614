"""Durations as people write them in a manifest: ``90s``, ``30m``, ``24h``, ``7d``, ``1h30m``.

Why not ISO 8601 (``PT30M``) or bare seconds? ``max_age: 24h`` reads at a
glance and cannot be mistaken for minutes. Units are whole seconds, minutes,
hours and days, largest first, each at most once; there are no months or years
(their length varies) and no fractions. ``format_duration`` is the inverse, for
messages such as "age 1d2h".
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = [
    "DURATION_EXAMPLES",
    "DURATION_PATTERN",
    "MAX_DURATION",
    "format_duration",
    "parse_duration",
]

MAX_DURATION = timedelta(days=36500)
"""The longest duration accepted (100 years): anything longer is surely a typo,
and would overflow ``datetime`` arithmetic."""

DURATION_EXAMPLES = ("90s", "30m", "24h", "7d", "1h30m")

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
# The grammar: an amount of each unit, largest first, each at most once ("1h30m").
_AMOUNTS = "".join(rf"(\d+{unit})?" for unit, _ in _UNITS)
_DURATION = re.compile(_AMOUNTS)

_LETTERS = "".join(unit for unit, _ in _UNITS)

DURATION_PATTERN = rf"^\s*(?=\d)(?!(0+[{_LETTERS}])+\s*$){_AMOUNTS}\s*$"
"""What ``parse_duration`` accepts, as one regular expression that JSON Schema
(ECMA-262) reads too: the grammar, blanks around it, at least one amount, not
all of them zero. Only the upper limit, ``MAX_DURATION``, is left to
``parse_duration``."""

_MAX_DIGITS = 12  # more digits than this is over MAX_DURATION in any unit
_HELP = "use a whole number followed by s, m, h or d, e.g. 30m"


def _show(text: str) -> str:
    return text if len(text) <= 40 else text[:39] + "…"


def parse_duration(text: str, *, rule: str = _HELP) -> timedelta:
    """Parse ``30m``, ``24h``, ``1h30m``... into a positive ``timedelta``.

    Surrounding whitespace is ignored. Raises ``ValueError`` with a message fit
    for a user (it quotes *text*) when *text* is not such a duration, is zero,
    or is longer than ``MAX_DURATION``. *rule* is what the message says a
    duration looks like, for a caller that also takes other forms (plain seconds).
    """
    stripped = text.strip()
    match = _DURATION.fullmatch(stripped)
    if not stripped or match is None:
        raise ValueError(f"invalid duration '{_show(text)}': {rule}")
    seconds = 0
    for amount, (_, size) in zip(match.groups(), _UNITS, strict=True):
        if amount is None:
            continue
        digits = amount[:-1]  # "30m" -> "30"
        if len(digits) > _MAX_DIGITS:
            seconds = MAX_DURATION.days * 86400 + 1
            break
        seconds += int(digits) * size
    if seconds == 0:
        raise ValueError(f"invalid duration '{_show(text)}': it must be more than zero")
    if seconds > MAX_DURATION.days * 86400:
        raise ValueError(
            f"invalid duration '{_show(text)}': over the limit of {format_duration(MAX_DURATION)}"
        )
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    """Write *td* the way ``parse_duration`` reads it: 90s -> ``1m30s``, 1 day -> ``1d``.

    Fractions of a second are dropped; zero is ``0s``; a negative duration gets
    a leading ``-``.
    """
    if td < timedelta(0):
        positive = format_duration(-td)
        return positive if positive == "0s" else "-" + positive
    seconds = td.days * 86400 + td.seconds
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
