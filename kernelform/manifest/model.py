"""What a valid manifest is, once read: servers, kernel declarations, desired addresses.

These are the only manifest types the rest of kernelform uses. A kernel's
settings stay in its validated ``KernelKeys`` (one declaration per key); a
``KernelDecl`` adds what reading the file resolved (the server, the setup
code), and ``desired()`` expands ``count`` into one ``Desired`` per address.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from kernelform.address import Address
from kernelform.manifest.keys import KernelKeys
from kernelform.masking import Secret
from kernelform.recipe import Recipe, digest


@dataclass(frozen=True)
class ServerConfig:
    """One Jupyter server. ``verify`` is True, False (``insecure``) or a CA bundle path."""

    name: str
    url: str
    token: Secret
    prune: bool
    verify: bool | str


@dataclass(frozen=True)
class KernelDecl:
    """One entry of ``kernels:``: its validated keys, the server they resolve to, and the
    setup code (from ``setup``, or read from ``setup_file``)."""

    name: str
    server: str
    keys: KernelKeys
    setup_code: str | None = None

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
    """One kernel that should run: ``etl`` (no count) or ``etl[i]`` (replica *i*)."""

    address: str
    decl: KernelDecl
    index: int | None

    @property
    def kernel(self) -> str:
        """The declaration's name (``etl`` for ``etl[3]``)."""
        return self.decl.name

    @property
    def server(self) -> str:
        return self.decl.server

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

    @property
    def meaning(self) -> str:
        """The sha256 hex of what the manifest says, not of how it is written.

        Servers (url, prune, TLS verification) and kernels (server, every key,
        the setup code as read), after variables are expanded: a comment, a
        reformatting or a reordering leaves it unchanged; a changed key or
        variable changes it. Tokens are left out: a rotated token changes
        nothing a plan does, and no value derived from a secret is saved.
        """
        servers = {
            name: {
                "url": server.url,
                "prune": server.prune,
                "verify": (
                    os.path.abspath(server.verify)
                    if isinstance(server.verify, str)
                    else server.verify
                ),
            }
            for name, server in self.servers.items()
        }
        kernels = {
            name: {
                "server": decl.server,
                "keys": decl.keys.model_dump(mode="json"),
                "setup_code": decl.setup_code,
            }
            for name, decl in self.kernels.items()
        }
        text = json.dumps({"servers": servers, "kernels": kernels}, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def desired(self) -> list[Desired]:
        """Every kernel address the manifest asks for, in declaration order."""
        out: list[Desired] = []
        for decl in self.kernels.values():
            count = decl.keys.count
            indexes: list[int | None] = [None] if count is None else list(range(count))
            for index in indexes:
                out.append(Desired(address=str(Address(decl.name, index)), decl=decl, index=index))
        return out
