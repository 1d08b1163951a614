"""Read ``kernelform.yaml``: the servers and the kernels the user wants running.

Why this module is more than ``yaml.load`` plus a model: the manifest is written
by hand and read by a tool that shuts kernels down, so a mistake must be caught
before anything happens, and reported where it is. Every problem found becomes
a ``Problem(file, line, col, message)`` (1-based), all the problems of a file
are collected and raised together as one ``ManifestError``; nothing else ever
escapes (no ruamel or pydantic exception, no traceback). The file is parsed
into ruamel.yaml *nodes*, not Python objects, so that every key and every value
keeps its position; each server and kernel is then checked by a strict pydantic
model, and pydantic's error locations are mapped back to those positions.

The format, decisions included::

    servers:                    # at least one server
      lab:                      # a name: [A-Za-z_][A-Za-z0-9_.-]*
        url: ${JUPYTER_URL:-http://127.0.0.1:8888}   # http(s) with a host, required
        token: ${JUPYTER_TOKEN:-}   # default "" (no token); never shown in a message
        prune: false            # shut down live kernels kernelform does not manage
        ca_bundle: ca.pem       # CA bundle for TLS; load_manifest makes a relative
                                # path relative to the manifest's directory
        insecure: false         # skip TLS verification; not together with ca_bundle
    kernels:                    # may be empty or left out
      etl:                      # same name rules as servers (no brackets)
        spec: python3           # kernelspec name, required
        server: lab             # required when there is more than one server
        cwd: pipelines/etl      # relative to the server root, no '..'
        count: 2                # etl[0], etl[1]; 0 declares none (replicas are removed);
                                # left out: one kernel addressed plain 'etl'; limit 1000
        revision: 1             # any scalar, kept as the text written ("1", "1.10")
        max_age: 24h            # durations: see kernelform.duration
        busy_timeout: 30m
        protect: true           # default true

Variables: ``${NAME}`` and ``${NAME:-default}`` are expanded in every string
value (not in keys), from the ``environ`` given (default ``os.environ``).
``${NAME:-default}`` uses the default when NAME is unset *or empty*, as the
shell does; the default is literal text and cannot contain ``$`` or ``}``.
``$$`` is a literal ``$``; any other ``$`` is an error, so that ``$HOME`` is
never silently kept as text. Expanded values are strings: ``count`` and the
booleans also accept strings (``"2"``, ``"true"``/``"false"``/``"yes"``/``"no"``
/``"on"``/``"off"``/``"1"``/``"0"``) so that ``count: ${N:-2}`` works; an empty
string for ``cwd``, ``server``, ``revision`` or ``ca_bundle`` means "not set".
Other types are not coerced: ``count: 2.0`` and ``protect: 1`` are errors.

Refused outright, so that any input is dealt with in a second or so: files
over ``MAX_BYTES`` (256 KiB) and documents of more than ``MAX_NODES`` YAML
values (the pure-Python parser takes 50 to 120 µs a value; a real manifest is a
few KiB and a few hundred values), bytes that are not UTF-8, control
characters, more than one YAML document, nesting deeper than ``MAX_DEPTH``,
YAML tags other than the standard scalar ones, and every YAML alias
(``*name``): aliases are what "billion laughs" bombs are made of, and a
manifest has little use for them (anchors alone are ignored). At most
``MAX_PROBLEMS`` problems are reported per file.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scanner import Scanner

from kernelform.address import Address
from kernelform.duration import format_duration, parse_duration
from kernelform.errors import ManifestError, Problem

__all__ = [
    "MAX_BYTES",
    "MAX_COUNT",
    "Desired",
    "KernelDecl",
    "Manifest",
    "ServerConfig",
    "format_duration",
    "load_manifest",
    "parse_duration",
    "parse_manifest",
]

MAX_BYTES = 256 * 1024
MAX_COUNT = 1000
MAX_DEPTH = 20
MAX_NODES = 10_000
MAX_PROBLEMS = 100

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_SPEC = re.compile(r"[A-Za-z0-9._-]+")  # what jupyter_client accepts as a kernelspec name
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NON_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_SECRET_KEYS = frozenset({"token"})
_QUOTE_HINT = frozenset({"token", "spec", "server", "cwd", "ca_bundle"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_TAG = "tag:yaml.org,2002:"


# --- the public result -------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """One Jupyter server. ``verify`` is True, False (``insecure``) or a CA bundle path."""

    name: str
    url: str
    token: str = field(repr=False)
    prune: bool
    verify: bool | str


@dataclass(frozen=True)
class KernelDecl:
    """One entry of ``kernels:``, with ``server`` resolved and defaults applied."""

    name: str
    spec: str
    server: str
    cwd: str | None
    count: int | None
    revision: str | None
    max_age: timedelta | None
    busy_timeout: timedelta | None
    protect: bool


@dataclass(frozen=True)
class Desired:
    """One kernel that should run: ``etl`` (no count) or ``etl[i]`` (replica *i*)."""

    address: str
    kernel: str
    index: int | None
    server: str
    spec: str
    cwd: str | None
    revision: str | None
    max_age: timedelta | None
    busy_timeout: timedelta | None
    protect: bool


@dataclass(frozen=True)
class Manifest:
    """A valid manifest. ``digest`` is the sha256 hex of the file's bytes."""

    path: str
    servers: Mapping[str, ServerConfig]
    kernels: Mapping[str, KernelDecl]
    digest: str

    def desired(self) -> list[Desired]:
        """Every kernel address the manifest asks for, in declaration order."""
        out: list[Desired] = []
        for decl in self.kernels.values():
            indexes: list[int | None] = [None] if decl.count is None else list(range(decl.count))
            for index in indexes:
                address = str(Address(decl.name, index))
                out.append(
                    Desired(
                        address=address,
                        kernel=decl.name,
                        index=index,
                        server=decl.server,
                        spec=decl.spec,
                        cwd=decl.cwd,
                        revision=decl.revision,
                        max_age=decl.max_age,
                        busy_timeout=decl.busy_timeout,
                        protect=decl.protect,
                    )
                )
        return out


def load_manifest(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Manifest:
    """Read and check the manifest at *path*; raise ``ManifestError`` if it is not valid.

    A relative ``ca_bundle`` is taken relative to the manifest's directory.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read(MAX_BYTES + 1)  # never more: the file may be huge, or endless
            size: int | None = len(data)
            if len(data) > MAX_BYTES:
                size = os.fstat(f.fileno()).st_size
                size = size if size > MAX_BYTES else None  # a pipe: the size is unknown
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ManifestError([Problem(name, 1, 1, f"cannot read the manifest: {reason}")]) from e
    manifest = _parse(data, filename=name, environ=environ, size=size)
    base = os.path.dirname(name)
    servers = {
        key: replace(server, verify=_resolve_path(server.verify, base))
        for key, server in manifest.servers.items()
    }
    return replace(manifest, servers=MappingProxyType(servers))


def parse_manifest(
    text: str | bytes, *, filename: str, environ: Mapping[str, str] | None = None
) -> Manifest:
    """Check manifest *text* as if read from *filename* (which is only used in messages).

    ``digest`` is the sha256 of *text*'s bytes (UTF-8 when *text* is a str). A
    relative ``ca_bundle`` is kept as written.
    """
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return _parse(data, filename=filename, environ=environ, size=len(data))


def _resolve_path(verify: bool | str, base: str) -> bool | str:
    if isinstance(verify, bool):
        return verify
    return os.path.join(base, os.path.expanduser(verify))


# --- from bytes to nodes -------------------------------------------------------


class _Stop(Exception):
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


class _StrictComposer(Composer):
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
                f"YAML aliases are not supported (found *{_show(str(event.anchor))}); "
                "write the value out in full",
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Refused(
                self.parser.peek_event().start_mark,
                f"the manifest has more than {MAX_NODES} YAML values; it is too big",
            )
        return super().compose_node(parent, index)


class _StrictScanner(Scanner):
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


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of *text[index]*, counting line breaks as ruamel does."""
    line, start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line, start = line + 1, match.end()
    return line, index - start + 1


def _decode(data: bytes, size: int | None) -> str:
    """*data* as text, or a ``_Stop``. *size* is None when only known to be too big."""
    limit = f"{MAX_BYTES // 1024} KiB"
    if size is None or size > MAX_BYTES:
        shown = "" if size is None else f" {size} bytes,"
        raise _Stop(1, 1, f"the manifest is{shown} over the {limit} limit")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise _Stop(1, 1, "the manifest is UTF-16 or UTF-32 text; save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        prefix = data[: e.start].decode("utf-8", "replace")
        line, col = _line_col(prefix, len(prefix))
        raise _Stop(
            line, col, f"the manifest is not UTF-8 text: byte 0x{data[e.start]:02x} is not valid"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        line, col = _line_col(text, bad.start())
        char = bad.group()
        if char == "\x00":
            raise _Stop(line, col, "the manifest contains a NUL byte; is it a binary file?")
        raise _Stop(
            line, col, f"the manifest contains the character U+{ord(char):04X}, not allowed in YAML"
        )
    if not text.strip():
        raise _Stop(1, 1, "the manifest is empty")
    return text


def _compose(yaml: YAML, text: str) -> Node | None:
    """Parse *text* into a node tree; every failure becomes a ``_Stop``."""
    try:
        node: Node | None = yaml.compose(text)
        return node
    except _Refused as e:
        raise _Stop(e.mark.line + 1, e.mark.column + 1, e.message) from None
    except MaxDepthExceededError as e:
        mark = e.problem_mark
        raise _Stop(
            mark.line + 1, mark.column + 1, f"the manifest is nested over {MAX_DEPTH} levels deep"
        ) from None
    except MarkedYAMLError as e:
        raise _syntax_error(e) from None
    except YAMLError as e:
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise _Stop(1, 1, f"YAML error: {_show(first_line, 80)}") from None
    except RecursionError:
        raise _Stop(1, 1, "the manifest is nested too deeply") from None
    except Exception as e:  # a ruamel bug on odd input must still not escape as one
        raise _Stop(1, 1, f"cannot parse the manifest as YAML ({type(e).__name__})") from None


def _syntax_error(e: MarkedYAMLError) -> _Stop:
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = str(e.problem or "")
    context = str(e.context or "")
    if "expected a single document" in context:
        return _Stop(
            line, col, "the manifest must be a single YAML document; a second one starts here"
        )
    if "'\\t'" in problem:
        return _Stop(line, col, "tab character here; YAML must be indented with spaces")
    message = f"YAML syntax error: {problem or context}"
    if problem and context:
        message += f" ({context}"
        if e.context_mark is not None and e.context_mark.line != (line - 1):
            message += f" at line {e.context_mark.line + 1}"
        message += ")"
    return _Stop(line, col, message)


# --- messages ----------------------------------------------------------------------


def _show(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _q(text: str) -> str:
    """*text* quoted for a message, shortened, with control characters escaped."""
    return repr(_show(text))


def _describe(value: Any, *, secret: bool = False) -> str:
    """A value as a message shows it; for a secret, only its kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean" if secret else str(value).lower()
    if isinstance(value, (int, float)):
        return "a number" if secret else str(value)
    if isinstance(value, str):
        return "a string" if secret else _q(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _node_kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _q(str(node.value))


def _suggest(word: str, valid: list[str]) -> str | None:
    close = difflib.get_close_matches(word, valid, n=1)
    if not close:  # difflib is case-sensitive: 'Spec' is not close to 'spec'
        close = [v for v in valid if v.lower() == word.lower()]
    return close[0] if close else None


def _unknown_key(key: str, where: str, valid: list[str]) -> str:
    close = _suggest(key, valid)
    if close:
        return f"unknown key {_q(key)} {where}; did you mean '{close}'?"
    return f"unknown key {_q(key)} {where}; valid keys: {', '.join(sorted(valid))}"


def _bad_name(kind: str, name: str) -> str:
    return (
        f"invalid {kind} name {_q(name)}: a name starts with a letter or '_' and has only "
        "letters, digits, '_', '.' and '-'"
    )


# --- the entry models ------------------------------------------------------------


def _bool_from_text(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return value


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


class _ServerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str
    token: str = ""
    prune: bool = False
    ca_bundle: str | None = None
    insecure: bool = False

    _bools = field_validator("prune", "insecure", mode="before")(_bool_from_text)
    _empty = field_validator("ca_bundle", mode="before")(_empty_is_none)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url:
            raise ValueError("url must not be empty")
        if any(c.isspace() for c in url):
            raise ValueError("url must not contain spaces")
        # None of these is echoed: a pasted URL may carry the token (?token=...).
        if "?" in url or "#" in url:
            raise ValueError("url must not have a query or fragment; put the token in 'token'")
        try:
            parts = urlsplit(url)
        except ValueError as e:  # e.g. "Invalid IPv6 URL"
            raise ValueError(f"url is not a valid URL ({e}): {_q(url)}") from None
        if "@" in parts.netloc:
            raise ValueError("url must not contain a user or password; put the token in 'token'")
        if parts.scheme.lower() not in ("http", "https") or not url.lower().startswith(
            parts.scheme.lower() + "://"
        ):
            raise ValueError(f"url must start with http:// or https://, got {_q(url)}")
        if not parts.hostname:
            raise ValueError(f"url has no host: {_q(url)}")
        try:
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            raise ValueError(f"url has an invalid port: {_q(url)}") from None
        return url


class _KernelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    spec: str
    server: str | None = None
    cwd: str | None = None
    count: int | None = None
    revision: str | None = None
    max_age: timedelta | None = None
    busy_timeout: timedelta | None = None
    protect: bool = True

    _bools = field_validator("protect", mode="before")(_bool_from_text)
    _empty = field_validator("server", "cwd", mode="before")(_empty_is_none)

    @field_validator("spec")
    @classmethod
    def _check_spec(cls, spec: str) -> str:
        if not spec:
            raise ValueError("spec must not be empty")
        if not _SPEC.fullmatch(spec):
            raise ValueError(
                f"spec {_q(spec)} is not a kernelspec name (letters, digits, '.', '_', '-')"
            )
        return spec

    @field_validator("cwd")
    @classmethod
    def _check_cwd(cls, cwd: str | None) -> str | None:
        if cwd is None:
            return None
        if cwd.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", cwd):
            raise ValueError(f"cwd must be relative to the server root, got {_q(cwd)}")
        if ".." in re.split(r"[\\/]", cwd):
            raise ValueError(f"cwd must stay inside the server root, got {_q(cwd)}")
        return cwd

    @field_validator("count", mode="before")
    @classmethod
    def _count_from_text(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
            text = value.strip()
            if len(text.lstrip("+-").lstrip("0")) > 9:  # int() of a huge string is slow
                if text.startswith("-"):
                    raise ValueError(f"count must not be negative, got {_show(text)}")
                raise ValueError(f"count {_show(text)} is over the limit of {MAX_COUNT}")
            return int(text)
        return value

    @field_validator("count")
    @classmethod
    def _check_count(cls, count: int | None) -> int | None:
        if count is not None and count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        if count is not None and count > MAX_COUNT:
            raise ValueError(f"count {count} is over the limit of {MAX_COUNT}")
        return count

    @field_validator("revision", mode="before")
    @classmethod
    def _revision_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return _empty_is_none(value)

    @field_validator("max_age", "busy_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(
                f"{info.field_name} must be a duration like 30m, got {value}; "
                f"add a unit, e.g. {value}s"
            )
        return value


_EXPECTED = {
    "url": "a string",
    "token": "a string",
    "prune": "true or false",
    "ca_bundle": "a string",
    "insecure": "true or false",
    "spec": "a string",
    "server": "a string",
    "cwd": "a string",
    "count": "an integer",
    "revision": "a string or a number",
    "max_age": "a duration like 30m",
    "busy_timeout": "a duration like 30m",
    "protect": "true or false",
}


# --- from nodes to a Manifest --------------------------------------------------------


class _ExpandError(Exception):
    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


def _expand(text: str, environ: Mapping[str, str], *, secret: bool) -> str:
    """Expand ``${NAME}``, ``${NAME:-default}`` and ``$$``; raise ``_ExpandError``."""
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
            raise _ExpandError(
                i, "a '$' must start ${NAME} or ${NAME:-default}; write $$ for a '$'"
            )
        end = text.find("}", i + 2)
        if end < 0:
            raise _ExpandError(i, "unterminated '${': close it with '}', or write $$ for a '$'")
        name, sep, default = text[i + 2 : end].partition(":-")
        if not _VARIABLE.fullmatch(name):
            shown = "" if secret else f" {_q(text[i : end + 1])}"
            raise _ExpandError(
                i,
                f"invalid variable reference{shown}: a name has letters, digits and '_' "
                "and does not start with a digit",
            )
        if "$" in default or "{" in default:
            raise _ExpandError(i, f"the default of ${{{name}:-...}} cannot contain '$' or '{{'")
        value = environ.get(name)
        if sep and not value:
            value = default
        if value is None:
            raise _ExpandError(
                i, f"undefined variable {name}; set it or write ${{{name}:-default}}"
            )
        out.append(value)
        i = end + 1
    return "".join(out)


class _Checker:
    """Walks the node tree, collecting problems and building the result."""

    def __init__(self, *, filename: str, text: str, environ: Mapping[str, str], yaml: YAML) -> None:
        self.filename = filename
        self.text = text
        self.environ = environ
        self.yaml = yaml
        self.problems: list[Problem] = []

    def add(self, where: Node | tuple[int, int], message: str) -> None:
        if isinstance(where, tuple):
            line, col = where
        else:
            line, col = where.start_mark.line + 1, where.start_mark.column + 1
        self.problems.append(Problem(self.filename, line, col, message))

    # -- structure

    def items(
        self, node: MappingNode, *, noun: str, where: str
    ) -> Iterator[tuple[str, Node, Node]]:
        """The (key, key node, value node) of a mapping; reports odd and duplicate keys."""
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                kind = _node_kind(key_node)
                self.add(key_node, f"a {noun}{where} must be a plain name, not {kind}")
                continue
            key = str(key_node.value)
            first = seen.get(key)
            if first is not None:
                self.add(
                    key_node,
                    f"duplicate {noun} {_q(key)}{where}"
                    f" (first at line {first.start_mark.line + 1})",
                )
                continue
            seen[key] = key_node
            yield key, key_node, value_node

    def mapping(self, node: Node, what: str, expected: str) -> MappingNode | None:
        """*node* if it is a plain mapping, else None and a problem."""
        if not isinstance(node, MappingNode):
            self.add(node, f"{what} must be {expected}, got {_node_kind(node)}")
            return None
        if node.tag != _TAG + "map":
            self.add(node, f"unsupported YAML tag {_short_tag(node.tag)} on {what}")
            return None
        return node

    def check(self, root: Node | None) -> tuple[dict[str, ServerConfig], dict[str, KernelDecl]]:
        if root is None or _is_null(root):
            raise _Stop(1, 1, "the manifest is empty")
        if not isinstance(root, MappingNode):
            raise _Stop(
                root.start_mark.line + 1,
                root.start_mark.column + 1,
                "the manifest must be a mapping with 'servers' and 'kernels', "
                f"got {_node_kind(root)}",
            )
        if root.tag != _TAG + "map":
            raise _Stop(
                root.start_mark.line + 1,
                root.start_mark.column + 1,
                f"unsupported YAML tag {_short_tag(root.tag)} on the manifest",
            )
        sections: dict[str, tuple[Node, Node]] = {}
        for key, key_node, value_node in self.items(root, noun="key", where=" at the top level"):
            if key in ("servers", "kernels"):
                sections[key] = (key_node, value_node)
            else:
                self.add(key_node, _unknown_key(key, "at the top level", ["servers", "kernels"]))

        servers: dict[str, ServerConfig] = {}
        server_names: list[str] = []
        if "servers" not in sections:
            self.add(root, "the manifest declares no servers; add a 'servers' mapping")
        else:
            key_node, value_node = sections["servers"]
            if _is_null(value_node) or (
                isinstance(value_node, MappingNode) and not value_node.value
            ):
                self.add(key_node, "servers is empty; declare at least one server")
            elif node := self.mapping(
                value_node, "servers", "a mapping of server names to settings"
            ):
                for name, name_node, entry in self.items(node, noun="server", where=""):
                    server_names.append(name)
                    if not _NAME.fullmatch(name):
                        self.add(name_node, _bad_name("server", name))
                    server = self.server(name, name_node, entry)
                    if server is not None:
                        servers[name] = server

        kernels: dict[str, KernelDecl] = {}
        if "kernels" in sections:
            _, value_node = sections["kernels"]
            if not _is_null(value_node) and (
                node := self.mapping(value_node, "kernels", "a mapping of kernel names to settings")
            ):
                for name, name_node, entry in self.items(node, noun="kernel", where=""):
                    if not _NAME.fullmatch(name):
                        self.add(name_node, _bad_name("kernel", name))
                    kernel = self.kernel(name, name_node, entry, server_names)
                    if kernel is not None:
                        kernels[name] = kernel
        return servers, kernels

    # -- entries

    def entry(
        self, kind: str, name: str, name_node: Node, node: Node, model: type[BaseModel]
    ) -> _Entry | None:
        """Validate one server or kernel with *model*; None if it is not even a mapping."""
        label = f"{kind} {_q(name)}"
        data: dict[str, Any] = {}
        nodes: dict[str, tuple[Node, Node]] = {}
        failed: set[str] = set()
        mapping = None if _is_null(node) else self.mapping(node, label, "a mapping of settings")
        if mapping is None and not _is_null(node):
            return None  # not a mapping: reported
        for key, key_node, value_node in (
            self.items(mapping, noun="key", where=f" in {label}") if mapping is not None else ()
        ):
            nodes[key] = (key_node, value_node)
            if key not in model.model_fields:
                data[key] = None  # reported by pydantic as extra_forbidden
                continue
            value = self.value(key, value_node)
            if value is _FAILED:
                failed.add(key)
            else:
                data[key] = value
        try:
            return _Entry(model.model_validate(data), nodes, data, failed)
        except ValidationError as e:
            errors = e.errors(include_url=False)
            valid = list(model.model_fields)
            # "unknown key 'specs'; did you mean 'spec'?" says it all: no "missing 'spec'" too.
            suggested = {
                _suggest(str(error["loc"][0]), valid)
                for error in errors
                if error["type"] == "extra_forbidden" and error["loc"]
            }
            reported: set[str] = set()
            for error in errors:
                key = str(error["loc"][0]) if error["loc"] else ""
                if key in failed or key in reported:
                    continue
                reported.add(key)
                kind_ = error["type"]
                if kind_ == "missing":
                    if key not in suggested:
                        self.add(name_node, f"{label} is missing required key '{key}'")
                elif kind_ == "extra_forbidden":
                    self.add(nodes[key][0], _unknown_key(key, f"in {label}", valid))
                elif kind_ == "value_error" and key in nodes:
                    self.add(_value_at(*nodes[key]), str(error["ctx"]["error"]))
                elif key in nodes:
                    value = error["input"]
                    got = _describe(value, secret=key in _SECRET_KEYS)
                    message = f"{key} must be {_EXPECTED[key]}, got {got}"
                    if key in _QUOTE_HINT and isinstance(value, (int, float)):
                        message += "; put it in quotes"  # cwd: 2024, token: 1234...
                    self.add(_value_at(*nodes[key]), message)
                else:  # not expected: a problem pydantic found outside any key
                    self.add(name_node, f"{label}: {error['msg']}")
            return _Entry(None, nodes, data, failed)

    def value(self, key: str, node: Node) -> Any:
        """The Python value of a setting: expanded if a string; ``_FAILED`` if reported."""
        if isinstance(node, SequenceNode):
            return []
        if isinstance(node, MappingNode):
            return {}
        tag = str(node.tag)
        if tag == _TAG + "str" and isinstance(node, ScalarNode):
            return self.expand(key, node)
        if tag in (_TAG + "int", _TAG + "float") and key == "revision":
            return str(node.value)  # kept as written: 1.10 stays "1.10"
        if tag == _TAG + "timestamp":
            return str(node.value)  # a date is kept as written
        if tag in (_TAG + "null", _TAG + "bool", _TAG + "int", _TAG + "float"):
            try:
                value = self.yaml.constructor.construct_object(node, deep=True)
            except Exception:
                self.add(node, f"{key} has an invalid {_short_tag(tag)} value")
                return _FAILED
            if isinstance(value, bool) or value is None:
                return value
            return int(value) if isinstance(value, int) else float(value)
        self.add(node, f"unsupported YAML tag {_short_tag(tag)} on {key}")
        return _FAILED

    def expand(self, key: str, node: ScalarNode) -> Any:
        try:
            return _expand(str(node.value), self.environ, secret=key in _SECRET_KEYS)
        except _ExpandError as e:
            self.add(self.offset(node, e.offset), e.message)
            return _FAILED

    def offset(self, node: ScalarNode, offset: int) -> tuple[int, int]:
        """The position of character *offset* of a one-line scalar's value, if knowable."""
        start = node.start_mark
        line, col = start.line + 1, start.column + 1
        if start.line != node.end_mark.line:
            return line, col
        raw = str(node.value)[:offset]
        skip = {None: 0, "'": 1, '"': 1}.get(node.style)
        if skip is None or (skip and ("'" in raw or "\\" in raw)):
            return line, col
        index = start.index + skip + offset
        if self.text[index : index + 1] != "$":
            return line, col
        return line, col + skip + offset

    def server(self, name: str, name_node: Node, node: Node) -> ServerConfig | None:
        checked = self.entry("server", name, name_node, node, _ServerIn)
        if checked is None or checked.model is None:
            return None
        model, nodes = checked.model, checked.nodes
        assert isinstance(model, _ServerIn)
        if model.insecure and model.ca_bundle is not None:
            self.add(
                nodes["insecure"][1], "insecure: true and ca_bundle contradict each other; keep one"
            )
            return None
        verify: bool | str = False if model.insecure else (model.ca_bundle or True)
        return ServerConfig(
            name=name, url=model.url, token=model.token, prune=model.prune, verify=verify
        )

    def kernel(
        self, name: str, name_node: Node, node: Node, servers: list[str]
    ) -> KernelDecl | None:
        checked = self.entry("kernel", name, name_node, node, _KernelIn)
        if checked is None:
            return None
        # The server is checked even when other settings are wrong: all problems at once.
        raw = checked.data.get("server")
        if "server" in checked.failed or (raw is not None and not isinstance(raw, str)):
            return None  # reported already
        if not servers:
            return None  # the missing servers are reported already
        server = raw or None
        listing = ", ".join(servers)
        if server is None:
            if len(servers) > 1:
                self.add(
                    name_node,
                    f"kernel {_q(name)} does not say which server it runs on, and there are "
                    f"{len(servers)} ({listing}); add e.g. 'server: {servers[0]}'",
                )
                return None
            server = servers[0]
        elif server not in servers:
            close = _suggest(server, servers)
            hint = f"did you mean '{close}'? " if close else ""
            self.add(
                checked.nodes["server"][1],
                f"kernel {_q(name)} names unknown server {_q(server)}; {hint}servers: {listing}",
            )
            return None
        model = checked.model
        if model is None:
            return None
        assert isinstance(model, _KernelIn)
        return KernelDecl(
            name=name,
            spec=model.spec,
            server=server,
            cwd=model.cwd,
            count=model.count,
            revision=model.revision,
            max_age=model.max_age,
            busy_timeout=model.busy_timeout,
            protect=model.protect,
        )


_FAILED: Any = object()


@dataclass(frozen=True)
class _Entry:
    """A server or kernel as checked: the model (None if invalid), its nodes, its input
    and the keys whose values could not even be read (reported already)."""

    model: BaseModel | None
    nodes: dict[str, tuple[Node, Node]]
    data: dict[str, Any]
    failed: set[str]


def _value_at(key_node: Node, value_node: Node) -> Node:
    """Where to report a problem with a value: the key when the value is left empty
    (ruamel places an empty value at the start of the next line)."""
    if isinstance(value_node, ScalarNode) and value_node.value == "" and _is_null(value_node):
        return key_node
    return value_node


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _TAG + "null"


def _short_tag(tag: Any) -> str:
    text = str(tag)
    return "!!" + text[len(_TAG) :] if text.startswith(_TAG) else _q(text)


def _parse(
    data: bytes, *, filename: str, environ: Mapping[str, str] | None, size: int | None
) -> Manifest:
    env = os.environ if environ is None else environ
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = _StrictComposer
    yaml.Scanner = _StrictScanner
    yaml.max_depth = MAX_DEPTH
    try:
        text = _decode(data, size)
        checker = _Checker(filename=filename, text=text, environ=env, yaml=yaml)
        servers, kernels = checker.check(_compose(yaml, text))
    except _Stop as stop:
        raise ManifestError([Problem(filename, stop.line, stop.col, stop.message)]) from None
    if checker.problems:
        problems = sorted(checker.problems, key=lambda p: (p.line, p.col))
        if len(problems) > MAX_PROBLEMS:
            extra = problems[MAX_PROBLEMS]
            problems = [
                *problems[:MAX_PROBLEMS],
                replace(extra, message=f"too many problems; {len(problems) - MAX_PROBLEMS} more"),
            ]
        raise ManifestError(problems)
    return Manifest(
        path=filename,
        servers=MappingProxyType(servers),
        kernels=MappingProxyType(kernels),
        digest=hashlib.sha256(data).hexdigest(),
    )
