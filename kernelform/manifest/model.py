"""What a valid manifest is, once read: servers, hubs, kernel declarations, desired addresses.

These are the only manifest types the rest of kernelform uses. Every entry
keeps its validated model from ``keys.py`` (one declaration per key), with
what reading the file resolved added: a ``ServerConfig`` or ``HubConfig`` *is*
its ``ServerKeys`` or ``HubKeys`` plus its name, with ``ca_bundle`` made
absolute; a ``KernelDecl`` holds its ``KernelKeys`` plus the server or hub and
the setup code. ``desired()`` expands ``count`` into one ``Desired`` per
address, and ``Manifest.meaning`` is derived from these models, so that a key
declared in ``keys.py`` is in it with no other edit.

A kernel declared on a hub runs on each selected user's server: which users
those are is only known by asking the hub (``kernelform.fleet``), so
``desired()`` takes them as an argument. A user's server is named
``HUB@USER`` (a hub name has no ``@``), and its kernels ``NAME@USER`` or
``NAME[i]@USER``: the rest of kernelform sees ordinary servers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from kernelform.address import Address
from kernelform.manifest.keys import HubKeys, KernelKeys, ServerKeys, is_secret
from kernelform.masking import Secret
from kernelform.recipe import Recipe, digest


def _verify(ca_bundle: str | None, insecure: bool) -> bool | str:
    """How to verify TLS: the CA bundle, else False when insecure, else True (the system's CAs)."""
    return ca_bundle if ca_bundle is not None else not insecure


class ServerConfig(ServerKeys):
    """One Jupyter server: its keys, its name, and ``ca_bundle`` absolute (as read)."""

    name: str

    @property
    def verify(self) -> bool | str:
        """True, False (``insecure``) or the CA bundle's path."""
        return _verify(self.ca_bundle, self.insecure)


class HubConfig(HubKeys):
    """One JupyterHub (which users' servers form its fleet, and how to reach it): its
    keys, its name, and ``ca_bundle`` absolute (as read)."""

    name: str

    @property
    def verify(self) -> bool | str:
        """True, False (``insecure``) or the CA bundle's path."""
        return _verify(self.ca_bundle, self.insecure)


def user_server(hub: str, user: str) -> str:
    """The name of *user*'s server on *hub*: ``HUB@USER``."""
    return f"{hub}@{user}"


def split_user_server(name: str) -> tuple[str, str] | None:
    """``'campus@ana'`` → ``('campus', 'ana')``; None for a plain server's name."""
    hub, at, user = name.partition("@")
    return (hub, user) if at and hub and user else None


@dataclass(frozen=True)
class KernelDecl:
    """One entry of ``kernels:``: its validated keys, where they resolve to run, and
    the setup code (from ``setup``, or read from ``setup_file``).

    Exactly one of ``server`` and ``hub`` is set.
    """

    name: str
    server: str | None
    keys: KernelKeys
    setup_code: str | None = None
    hub: str | None = None
    spec_at: str = field(default="", compare=False)  # FILE:LINE:COL of spec, for messages

    @property
    def recipe(self) -> Recipe:
        """What the state will record for each of its kernels (the setup code as a digest)."""
        keys, code = self.keys, self.setup_code
        return Recipe(
            spec=keys.spec,
            cwd=keys.cwd,
            revision=keys.revision,
            setup=None if code is None else digest(code),
        )


@dataclass(frozen=True)
class Desired:
    """One kernel that should run: ``etl`` (no count) or ``etl[i]`` (replica *i*);
    on a hub, ``etl@ana`` or ``etl[i]@ana`` on server ``HUB@ana``."""

    address: str
    decl: KernelDecl
    index: int | None
    server: str
    user: str | None = None

    @property
    def kernel(self) -> str:
        """The declaration's name (``etl`` for ``etl[3]``)."""
        return self.decl.name

    @property
    def keys(self) -> KernelKeys:
        return self.decl.keys

    @property
    def recipe(self) -> Recipe:
        return self.decl.recipe


@dataclass(frozen=True)
class Manifest:
    """A valid manifest. ``digest`` is the sha256 hex of the file's bytes; ``meaning`` is
    that of what it says (see there).

    ``state`` is the top-level ``state:`` key, expanded (a path or a URL that
    may hold a password, hence a ``Secret``); None when not set.
    """

    path: str
    servers: Mapping[str, ServerConfig]
    kernels: Mapping[str, KernelDecl]
    digest: str
    state: Secret | None = None
    hubs: Mapping[str, HubConfig] = field(default_factory=dict)

    @property
    def meaning(self) -> str:
        """The sha256 hex of what the manifest says, not of how it is written.

        Every field of every server, hub and kernel (its keys, and what reading
        resolved: the server or hub, the setup code as read, a ``ca_bundle``
        made absolute), after variables are expanded: a comment, a
        reformatting or a reordering leaves it unchanged; a changed key or
        variable changes it. It is derived from the models, so no key can be
        left out. Secret keys (tokens) are: a rotated token changes nothing a
        plan does, and no value derived from a secret is saved.
        """
        said = {
            "servers": {name: _said(server) for name, server in self.servers.items()},
            "hubs": {name: _said(hub) for name, hub in self.hubs.items()},
            "kernels": {name: _said(decl) for name, decl in self.kernels.items()},
        }
        text = json.dumps(said, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def desired(self, members: Mapping[str, Sequence[str]] | None = None) -> list[Desired]:
        """Every kernel address the manifest asks for, in declaration order.

        *members* gives each hub's selected users (see ``kernelform.fleet``);
        a hub kernel has one address per selected user (none without *members*).
        """
        out: list[Desired] = []
        for decl in self.kernels.values():
            count = decl.keys.count
            indexes: list[int | None] = [None] if count is None else list(range(count))
            if decl.hub is None:
                assert decl.server is not None
                for index in indexes:
                    address = str(Address(decl.name, index))
                    out.append(Desired(address, decl, index, server=decl.server))
                continue
            for user in (members or {}).get(decl.hub, ()):
                server = user_server(decl.hub, user)
                for index in indexes:
                    address = str(Address(decl.name, index, user))
                    out.append(Desired(address, decl, index, server=server, user=user))
        return out


def _said(entry: BaseModel | KernelDecl) -> dict[str, Any]:
    """What one entry says, as JSON data: every field but the secret keys (a model's are
    dumped, a ``KernelDecl``'s compared fields taken one by one)."""
    if isinstance(entry, BaseModel):
        secret = {name for name, info in type(entry).model_fields.items() if is_secret(info)}
        data: dict[str, Any] = entry.model_dump(mode="json", exclude=secret)
        return data
    return {
        f.name: _said(value) if isinstance(value := getattr(entry, f.name), BaseModel) else value
        for f in dataclasses.fields(entry)
        if f.compare  # not spec_at: where a key is written is not what it says
    }
