"""``${NAME}`` and ``${NAME:-default}`` in manifest strings, so that secrets and
per-environment values stay out of the file.

``${NAME:-default}`` uses the default when NAME is unset *or empty*, as the
shell does; the default is literal text and cannot contain ``$`` or ``}``.
``$$`` is a literal ``$``; any other ``$`` is an error, so that ``$HOME`` is
never silently kept as text. A secret's text is never quoted in a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kernelform.wording import quoted

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExpandError(Exception):
    """A bad ``$`` at character *offset* of the value."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


def expand(text: str, environ: Mapping[str, str], *, secret: bool) -> str:
    """Expand ``${NAME}``, ``${NAME:-default}`` and ``$$``; raise ``ExpandError``."""
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        i = dollar
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if not text.startswith("${", i):
            raise ExpandError(i, "a '$' must start ${NAME} or ${NAME:-default}; write $$ for a '$'")
        end = text.find("}", i + 2)
        if end < 0:
            raise ExpandError(i, "unterminated '${': close it with '}', or write $$ for a '$'")
        name, sep, default = text[i + 2 : end].partition(":-")
        if not _VARIABLE.fullmatch(name):
            shown = "" if secret else f" {quoted(text[i : end + 1])}"
            raise ExpandError(
                i,
                f"invalid variable reference{shown}: a name has letters, digits and '_' "
                "and does not start with a digit",
            )
        if "$" in default or "{" in default:
            raise ExpandError(i, f"the default of ${{{name}:-...}} cannot contain '$' or '{{'")
        value = environ.get(name)
        if sep and not value:
            value = default
        if value is None:
            raise ExpandError(i, f"undefined variable {name}; set it or write ${{{name}:-default}}")
        out.append(value)
        i = end + 1
    return "".join(out)
