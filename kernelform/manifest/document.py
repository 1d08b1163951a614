"""From bytes to a YAML node tree, refusing what a hand-written manifest never needs.

Everything that can make parsing slow or unsafe is stopped here, before the
checker sees a node: size (``MAX_BYTES``), encoding, control characters, more
than one document, nesting (``MAX_DEPTH``), node count (``MAX_NODES``) and
every alias (the stuff of "billion laughs" bombs). Each refusal is a ``Stop``
at a line and column. Nodes, not Python objects, come out, so that every key
and value keeps its position for the messages.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import Node
from ruamel.yaml.scanner import Scanner

from kernelform.wording import clip

MAX_BYTES = 256 * 1024
MAX_DEPTH = 20
MAX_NODES = 10_000

_NON_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


class Stop(Exception):
    """A problem after which the file cannot be read any further."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.col = col
        self.message = message


class _Refused(Exception):
    """Raised by the composer on an alias or on too many nodes, at *mark*."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class StrictComposer(Composer):
    """ruamel's composer, refusing every alias before it is resolved, and stopping
    after ``MAX_NODES`` nodes (parsing time grows with them, not with bytes)."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False
        self.nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.get_event()
            raise _Refused(
                event.start_mark,
                f"YAML aliases are not supported (found *{clip(str(event.anchor))}); "
                "write the value out in full",
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused(
                self.parser.peek_event().start_mark,
                f"the manifest has more than {MAX_NODES} YAML values; it is too big",
            )
        return super().compose_node(parent, index)


class StrictScanner(Scanner):
    """ruamel's scanner, stopping at ``MAX_DEPTH`` nested flow collections (``[[[...``).

    The composer's depth limit alone is not enough: the scanner looks up to 1024
    characters ahead for a possible key, at a cost quadratic in the flow depth
    (seconds for ``{{{{...``), before the composer sees the first node.
    """

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(
                self.reader.get_mark(), f"the manifest is nested over {MAX_DEPTH} levels deep"
            )
        super().fetch_flow_collection_start(TokenClass, to_push)


def line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of *text[index]*, counting line breaks as ruamel does."""
    line, start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line, start = line + 1, match.end()
    return line, index - start + 1


def decode(data: bytes, size: int | None) -> str:
    """*data* as text, or a ``Stop``. *size* is None when only known to be too big."""
    limit = f"{MAX_BYTES // 1024} KiB"
    if size is None or size > MAX_BYTES:
        shown = "" if size is None else f" {size} bytes,"
        raise Stop(1, 1, f"the manifest is{shown} over the {limit} limit")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise Stop(1, 1, "the manifest is UTF-16 or UTF-32 text; save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        prefix = data[: e.start].decode("utf-8", "replace")
        line, col = line_col(prefix, len(prefix))
        raise Stop(
            line, col, f"the manifest is not UTF-8 text: byte 0x{data[e.start]:02x} is not valid"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        line, col = line_col(text, bad.start())
        char = bad.group()
        if char == "\x00":
            raise Stop(line, col, "the manifest contains a NUL byte; is it a binary file?")
        raise Stop(
            line, col, f"the manifest contains the character U+{ord(char):04X}, not allowed in YAML"
        )
    if not text.strip():
        raise Stop(1, 1, "the manifest is empty")
    return text


def compose(yaml: YAML, text: str) -> Node | None:
    """Parse *text* into a node tree; every failure becomes a ``Stop``."""
    try:
        node: Node | None = yaml.compose(text)
        return node
    except _Refused as e:
        raise Stop(e.mark.line + 1, e.mark.column + 1, e.message) from None
    except MaxDepthExceededError as e:
        mark = e.problem_mark
        raise Stop(
            mark.line + 1, mark.column + 1, f"the manifest is nested over {MAX_DEPTH} levels deep"
        ) from None
    except MarkedYAMLError as e:
        raise _syntax_error(e) from None
    except YAMLError as e:
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise Stop(1, 1, f"YAML error: {clip(first_line, 80)}") from None
    except RecursionError:
        raise Stop(1, 1, "the manifest is nested too deeply") from None
    except Exception as e:  # a ruamel bug on odd input must still not escape as one
        raise Stop(1, 1, f"cannot parse the manifest as YAML ({type(e).__name__})") from None


def _syntax_error(e: MarkedYAMLError) -> Stop:
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = str(e.problem or "")
    context = str(e.context or "")
    if "expected a single document" in context:
        return Stop(
            line, col, "the manifest must be a single YAML document; a second one starts here"
        )
    if "'\\t'" in problem:
        return Stop(line, col, "tab character here; YAML must be indented with spaces")
    message = f"YAML syntax error: {problem or context}"
    if problem and context:
        message += f" ({context}"
        if e.context_mark is not None and e.context_mark.line != (line - 1):
            message += f" at line {e.context_mark.line + 1}"
        message += ")"
    return Stop(line, col, message)


def new_yaml() -> YAML:
    """A safe, pure-Python loader with the strict composer and scanner."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = StrictComposer
    yaml.Scanner = StrictScanner
    yaml.max_depth = MAX_DEPTH
    return yaml
