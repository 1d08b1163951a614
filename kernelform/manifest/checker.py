"""From a YAML node tree to servers and kernel declarations, with every problem located.

The checker walks the nodes (so that each key and value keeps its line and
column), expands ``${VAR}`` in string values, validates each server and kernel
with its model from ``keys.py``, maps pydantic's errors back to positions, and
adds the checks that span entries (a kernel's server exists) or touch the disk
(a ``ca_bundle`` that can be read). Problems are collected, not raised: the
loader reports them all at once.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kernelform.errors import Problem
from kernelform.manifest.document import Stop
from kernelform.manifest.keys import (
    NAME,
    SECTIONS,
    HubKeys,
    KernelKeys,
    Key,
    ServerKeys,
    TopKeys,
    key_of,
)
from kernelform.manifest.model import HubConfig, KernelDecl, ServerConfig
from kernelform.manifest.variables import ExpandError, expand
from kernelform.wording import closest, quoted

TAG = "tag:yaml.org,2002:"
MAX_SETUP_BYTES = 256 * 1024
TOP_LEVEL_KEYS = (*SECTIONS, *TopKeys.model_fields)


class Checker:
    """Walks the node tree, collecting problems and building the result."""

    def __init__(
        self,
        *,
        filename: str,
        text: str,
        environ: Mapping[str, str],
        yaml: YAML,
        base_dir: str,
    ) -> None:
        self.filename = filename
        self.base_dir = base_dir
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
                    f"duplicate {noun} {quoted(key)}{where}"
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
        if node.tag != TAG + "map":
            self.add(node, f"unsupported YAML tag {_short_tag(node.tag)} on {what}")
            return None
        return node

    def check(
        self, root: Node | None
    ) -> tuple[dict[str, ServerConfig], dict[str, HubConfig], dict[str, KernelDecl], TopKeys]:
        if root is None or _is_null(root):
            raise Stop(1, 1, "the manifest is empty")
        if not isinstance(root, MappingNode):
            raise Stop(
                root.start_mark.line + 1,
                root.start_mark.column + 1,
                "the manifest must be a mapping with 'servers' and 'kernels', "
                f"got {_node_kind(root)}",
            )
        if root.tag != TAG + "map":
            raise Stop(
                root.start_mark.line + 1,
                root.start_mark.column + 1,
                f"unsupported YAML tag {_short_tag(root.tag)} on the manifest",
            )
        sections: dict[str, tuple[Node, Node]] = {}
        settings: dict[str, tuple[Node, Node]] = {}
        for key, key_node, value_node in self.items(root, noun="key", where=" at the top level"):
            if key in SECTIONS:
                sections[key] = (key_node, value_node)
            elif key in TopKeys.model_fields:
                settings[key] = (key_node, value_node)
            else:
                self.add(key_node, _unknown_key(key, "at the top level", list(TOP_LEVEL_KEYS)))
        top = self.top_level(root, settings)

        hubs: dict[str, HubConfig] = {}
        hub_names: list[str] = []
        if "hubs" in sections:
            key_node, value_node = sections["hubs"]
            if not _is_null(value_node) and (
                node := self.mapping(value_node, "hubs", "a mapping of hub names to settings")
            ):
                for name, name_node, entry in self.items(node, noun="hub", where=""):
                    hub_names.append(name)
                    if not NAME.fullmatch(name):
                        self.add(name_node, _bad_name("hub", name))
                    hub = self.hub(name, name_node, entry)
                    if hub is not None:
                        hubs[name] = hub

        servers: dict[str, ServerConfig] = {}
        server_names: list[str] = []
        if "servers" not in sections:
            if not hub_names:
                self.add(
                    root,
                    "the manifest declares no servers; add a 'servers' mapping (or 'hubs')",
                )
        else:
            key_node, value_node = sections["servers"]
            if _is_null(value_node) or (
                isinstance(value_node, MappingNode) and not value_node.value
            ):
                if not hub_names:
                    self.add(key_node, "servers is empty; declare at least one server")
            elif node := self.mapping(
                value_node, "servers", "a mapping of server names to settings"
            ):
                for name, name_node, entry in self.items(node, noun="server", where=""):
                    server_names.append(name)
                    if not NAME.fullmatch(name):
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
                    if not NAME.fullmatch(name):
                        self.add(name_node, _bad_name("kernel", name))
                    kernel = self.kernel(
                        name, name_node, entry, servers=server_names, hubs=hub_names
                    )
                    if kernel is not None:
                        kernels[name] = kernel
        return servers, hubs, kernels, top

    def top_level(self, root: Node, nodes: dict[str, tuple[Node, Node]]) -> TopKeys:
        """The top-level settings (``state``); the defaults when any is invalid (reported)."""
        data: dict[str, Any] = {}
        failed: set[str] = set()
        for key, (_, value_node) in nodes.items():
            value = self.value(key, value_node, key_of(TopKeys.model_fields[key]))
            if value is _FAILED:
                failed.add(key)
            else:
                data[key] = value
        checked = self.validated("the top level", root, TopKeys, _Entry(None, nodes, data, failed))
        return checked.model if isinstance(checked.model, TopKeys) else TopKeys()

    # -- entries

    def entry(
        self, kind: str, name: str, name_node: Node, node: Node, model: type[BaseModel]
    ) -> _Entry | None:
        """Validate one server or kernel with *model*; None if it is not even a mapping."""
        label = f"{kind} {quoted(name)}"
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
            field = model.model_fields.get(key)
            if field is None:
                data[key] = None  # reported by pydantic as extra_forbidden
                continue
            value = self.value(key, value_node, key_of(field))
            if value is _FAILED:
                failed.add(key)
            else:
                data[key] = value
        return self.validated(label, name_node, model, _Entry(None, nodes, data, failed))

    def validated(self, label: str, name_node: Node, model: type[BaseModel], raw: _Entry) -> _Entry:
        """*raw* with its model built from its data, or with its problems reported."""
        nodes, data, failed = raw.nodes, raw.data, raw.failed
        try:
            return _Entry(model.model_validate(data), nodes, data, failed)
        except ValidationError as e:
            errors = e.errors(include_url=False)
            valid = list(model.model_fields)
            # "unknown key 'specs'; did you mean 'spec'?" says it all: no "missing 'spec'" too.
            suggested = {
                closest(str(error["loc"][0]), valid)
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
                    self.add(_item_at(nodes[key], error["loc"]), str(error["ctx"]["error"]))
                elif key in nodes:
                    value = error["input"]
                    meta = key_of(model.model_fields[key])
                    got = _describe(value, secret=meta.secret)
                    message = f"{key} must be {meta.expected}, got {got}"
                    if meta.quote_hint and isinstance(value, (int, float)):
                        message += "; put it in quotes"  # cwd: 2024, token: 1234...
                    self.add(_value_at(*nodes[key]), message)
                else:  # not expected: a problem pydantic found outside any key
                    self.add(name_node, f"{label}: {error['msg']}")
            return _Entry(None, nodes, data, failed)

    def value(self, key: str, node: Node, meta: Key) -> Any:
        """The Python value of a setting: expanded if a string; ``_FAILED`` if reported."""
        if isinstance(node, SequenceNode) and meta.sequence:
            return self.sequence(key, node)
        if isinstance(node, SequenceNode):
            return []
        if isinstance(node, MappingNode):
            return {}
        tag = str(node.tag)
        if tag == TAG + "str" and isinstance(node, ScalarNode):
            return self.expand(node, secret=meta.secret)
        if tag in (TAG + "int", TAG + "float") and meta.verbatim_numbers:
            return str(node.value)  # kept as written: 1.10 stays "1.10"
        if tag == TAG + "timestamp":
            return str(node.value)  # a date is kept as written
        if tag in (TAG + "null", TAG + "bool", TAG + "int", TAG + "float"):
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

    def sequence(self, key: str, node: SequenceNode) -> Any:
        """A list of names: each item's text (``${VAR}`` expanded; a number as written)."""
        if node.tag != TAG + "seq":
            self.add(node, f"unsupported YAML tag {_short_tag(node.tag)} on {key}")
            return _FAILED
        items: list[Any] = []
        failed = False
        for item in node.value:
            tag = str(item.tag)
            if isinstance(item, ScalarNode) and tag == TAG + "str":
                items.append(self.expand(item, secret=False))
            elif isinstance(item, ScalarNode) and tag == TAG + "int":
                items.append(str(item.value))  # a user name may be a number: 20231234
            else:
                self.add(item, f"{key} must be {_LIST_OF[key]}, got {_node_kind(item)} in it")
                items.append(_FAILED)
            failed = failed or items[-1] is _FAILED
        return _FAILED if failed else tuple(items)

    def expand(self, node: ScalarNode, *, secret: bool) -> Any:
        try:
            return expand(str(node.value), self.environ, secret=secret)
        except ExpandError as e:
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
        return self.endpoint("server", name, name_node, node, keys=ServerKeys, config=ServerConfig)

    def hub(self, name: str, name_node: Node, node: Node) -> HubConfig | None:
        return self.endpoint("hub", name, name_node, node, keys=HubKeys, config=HubConfig)

    def endpoint(
        self,
        kind: str,
        name: str,
        name_node: Node,
        node: Node,
        *,
        keys: type[ServerKeys | HubKeys],
        config: type[_Config],
    ) -> _Config | None:
        """A server or hub: validated with *keys*, then made its *config*: named, and with
        its ``ca_bundle`` made absolute (it must hold certificates); None if reported."""
        checked = self.entry(kind, name, name_node, node, keys)
        if checked is None or checked.model is None:
            return None
        model = checked.model
        assert isinstance(model, ServerKeys | HubKeys)
        nodes = checked.nodes
        if model.insecure and model.ca_bundle is not None:
            self.add(
                nodes["insecure"][1], "insecure: true and ca_bundle contradict each other; keep one"
            )
            return None
        bundle = None
        if model.ca_bundle is not None:
            bundle = self.ca_bundle(model.ca_bundle, _value_at(*nodes["ca_bundle"]))
            if not bundle:
                return None
        written = {key: getattr(model, key) for key in model.model_fields_set}
        return config.model_validate({**written, "name": name, "ca_bundle": bundle})

    def ca_bundle(self, written: str, node: Node) -> str:
        """The bundle's absolute path (*written* is relative to the manifest), if it holds
        certificates; else "" and a problem (a missing bundle would otherwise surface at
        the first request)."""
        path = os.path.join(self.base_dir, os.path.expanduser(written))
        try:
            ssl.create_default_context(cafile=path)
        except FileNotFoundError:
            self.add(node, f"ca_bundle {quoted(written)} does not exist (looked for {path})")
        except IsADirectoryError:
            self.add(node, f"ca_bundle {quoted(written)} is a directory, not a PEM file")
        except PermissionError:
            self.add(node, f"ca_bundle {quoted(written)} cannot be read: permission denied")
        except (ssl.SSLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
            self.add(
                node,
                f"ca_bundle {quoted(written)} holds no usable CA certificate ({reason}); "
                "give a PEM file with the CA that signed the server's certificate",
            )
        else:
            return os.path.abspath(path)
        return ""

    def kernel(
        self, name: str, name_node: Node, node: Node, *, servers: list[str], hubs: list[str]
    ) -> KernelDecl | None:
        checked = self.entry("kernel", name, name_node, node, KernelKeys)
        if checked is None:
            return None
        # Where it runs is checked even when other settings are wrong: all problems at once.
        places: dict[str, str | None] = {}
        for key in ("server", "hub"):
            raw = checked.data.get(key)
            if key in checked.failed or (raw is not None and not isinstance(raw, str)):
                return None  # reported already
            places[key] = raw or None
        if not servers and not hubs:
            return None  # the missing servers are reported already
        server, hub = places["server"], places["hub"]
        if server is not None and hub is not None:
            self.add(
                checked.nodes["hub"][0],
                f"kernel {quoted(name)} names both server {quoted(server)} and hub "
                f"{quoted(hub)}; keep one",
            )
            return None
        if server is None and hub is None:
            if len(servers) == 1 and not hubs:
                server = servers[0]
            elif len(hubs) == 1 and not servers:
                hub = hubs[0]
            else:
                self.add(name_node, _where_missing(name, servers, hubs))
                return None
        else:
            kind, named, declared = ("hub", hub, hubs) if hub else ("server", server, servers)
            assert named is not None
            other = ("server", servers) if hub else ("hub", hubs)
            if not self.known(name, kind, named, declared, checked.nodes, other=other):
                return None
        model = checked.model
        if model is None:
            return None
        assert isinstance(model, KernelKeys)
        setup_code = model.setup
        if model.setup_file is not None:
            if model.setup is not None:
                self.add(
                    checked.nodes["setup_file"][0], "setup and setup_file are both given; keep one"
                )
                return None
            setup_code = self.setup_file(model.setup_file, _value_at(*checked.nodes["setup_file"]))
            if setup_code is None:
                return None
        spec_at = ""
        if "spec" in checked.nodes:
            mark = _value_at(*checked.nodes["spec"]).start_mark
            spec_at = f"{self.filename}:{mark.line + 1}:{mark.column + 1}"
        return KernelDecl(
            name=name,
            server=server,
            hub=hub,
            keys=model,
            setup_code=setup_code,
            spec_at=spec_at,
        )

    def setup_file(self, written: str, node: Node) -> str | None:
        """The code in *written* (relative to the manifest), or None and a problem."""
        path = os.path.join(self.base_dir, os.path.expanduser(written))
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_SETUP_BYTES + 1)
        except FileNotFoundError:
            self.add(node, f"setup_file {quoted(written)} does not exist (looked for {path})")
        except IsADirectoryError:
            self.add(node, f"setup_file {quoted(written)} is a directory, not a file")
        except OSError as e:
            self.add(node, f"setup_file {quoted(written)} cannot be read: {e.strerror or e}")
        else:
            if len(data) > MAX_SETUP_BYTES:
                self.add(
                    node,
                    f"setup_file {quoted(written)} is over {MAX_SETUP_BYTES // 1024} KiB; "
                    "import a module from it instead",
                )
                return None
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as e:
                self.add(node, f"setup_file {quoted(written)} is not UTF-8 text (byte {e.start})")
        return None

    def known(
        self,
        kernel: str,
        kind: str,
        name: str,
        declared: list[str],
        nodes: dict[str, tuple[Node, Node]],
        *,
        other: tuple[str, list[str]],
    ) -> bool:
        """Whether the server or hub a kernel names is declared; if not, a problem.

        *other* is the other kind and its names: ``server: campus`` for the hub
        ``campus`` says to write ``hub: campus``.
        """
        if name in declared:
            return True
        other_kind, others = other
        close = closest(name, declared)
        hint = f"did you mean '{close}'? " if close else ""
        if name in others:
            hint = f"{name} is a {other_kind}: write {other_kind}: {name}; "
        listing = f"{kind}s: {', '.join(declared)}" if declared else f"no {kind} is declared"
        self.add(
            nodes[kind][1],
            f"kernel {quoted(kernel)} names unknown {kind} {quoted(name)}; {hint}{listing}",
        )
        return False


_FAILED: Any = object()
_Config = TypeVar("_Config", ServerConfig, HubConfig)


@dataclass(frozen=True)
class _Entry:
    """A server or kernel as checked: the model (None if invalid), its nodes, its input
    and the keys whose values could not even be read (reported already)."""

    model: BaseModel | None
    nodes: dict[str, tuple[Node, Node]]
    data: dict[str, Any]
    failed: set[str]


_LIST_OF = {"groups": "a list of group names", "users": "a list of user names"}


def _where_missing(kernel: str, servers: list[str], hubs: list[str]) -> str:
    """The problem of a kernel that does not say where it runs, among several places."""
    if not hubs:
        return (
            f"kernel {quoted(kernel)} does not say which server it runs on, and there are "
            f"{len(servers)} ({', '.join(servers)}); add e.g. 'server: {servers[0]}'"
        )
    places = [f"{len(servers)} server(s) ({', '.join(servers)})"] if servers else []
    places.append(f"{len(hubs)} hub(s) ({', '.join(hubs)})")
    example = f"'server: {servers[0]}' or 'hub: {hubs[0]}'" if servers else f"'hub: {hubs[0]}'"
    return (
        f"kernel {quoted(kernel)} does not say where it runs, and there are "
        f"{' and '.join(places)}; add e.g. {example}"
    )


def _item_at(nodes: tuple[Node, Node], loc: tuple[int | str, ...]) -> Node:
    """Where a problem with a value is: the list item pydantic's *loc* points at, if any."""
    key_node, value_node = nodes
    index = loc[1] if len(loc) > 1 else None
    if isinstance(index, int) and isinstance(value_node, SequenceNode):
        items: list[Node] = value_node.value
        if 0 <= index < len(items):
            return items[index]
    return _value_at(key_node, value_node)


def _value_at(key_node: Node, value_node: Node) -> Node:
    """Where to report a problem with a value: the key when the value is left empty
    (ruamel places an empty value at the start of the next line)."""
    if isinstance(value_node, ScalarNode) and value_node.value == "" and _is_null(value_node):
        return key_node
    return value_node


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == TAG + "null"


def _short_tag(tag: Any) -> str:
    text = str(tag)
    return "!!" + text[len(TAG) :] if text.startswith(TAG) else quoted(text)


def _describe(value: Any, *, secret: bool = False) -> str:
    """A value as a message shows it; for a secret, only its kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean" if secret else str(value).lower()
    if isinstance(value, (int, float)):
        return "a number" if secret else str(value)
    if isinstance(value, str):
        return "a string" if secret else quoted(value)
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
    return quoted(str(node.value))


def _unknown_key(key: str, where: str, valid: list[str]) -> str:
    close = closest(key, valid)
    if close:
        return f"unknown key {quoted(key)} {where}; did you mean '{close}'?"
    return f"unknown key {quoted(key)} {where}; valid keys: {', '.join(sorted(valid))}"


def _bad_name(kind: str, name: str) -> str:
    return (
        f"invalid {kind} name {quoted(name)}: a name starts with a letter or '_' and has only "
        "letters, digits, '_', '.' and '-'"
    )
