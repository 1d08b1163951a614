"""Read ``kernelform.yaml``: the servers and the kernels the user wants running.

Why this package is more than ``yaml.load`` plus a model: the manifest is written
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
    state: postgresql://kf:${KF_PG_PASSWORD}@db:5432/kernelform
                                # optional: where the state lives (a path, relative to
                                # the manifest, or a postgresql:// URL); --state and
                                # KERNELFORM_STATE override it; never shown in a message

Variables: ``${NAME}`` and ``${NAME:-default}`` are expanded in every string
value (not in keys), from the ``environ`` given (default ``os.environ``).
``${NAME:-default}`` uses the default when NAME is unset *or empty*, as the
shell does; the default is literal text and cannot contain ``$`` or ``}``.
``$$`` is a literal ``$``; any other ``$`` is an error, so that ``$HOME`` is
never silently kept as text. Expanded values are strings: ``count`` and the
booleans also accept strings (``"2"``, ``"true"``/``"false"``/``"yes"``/``"no"``
/``"on"``/``"off"``/``"1"``/``"0"``) so that ``count: ${N:-2}`` works; an empty
string for ``cwd``, ``server``, ``revision`` or ``ca_bundle`` means "not set".
A whole number written as a float is a count (``count: 2.0`` is 2, ``1e3`` is
1000: JSON Schema, and so an editor, reads them so); ``count: 2.5`` is an
error. Other types are not coerced: ``protect: 1`` is an error.

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

from kernelform.manifest.document import MAX_BYTES, MAX_DEPTH, MAX_NODES
from kernelform.manifest.keys import MAX_COUNT, HubKeys, KernelKeys, ServerKeys
from kernelform.manifest.loader import MAX_PROBLEMS, load_manifest, parse_manifest
from kernelform.manifest.model import (
    Desired,
    HubConfig,
    KernelDecl,
    Manifest,
    ServerConfig,
    split_user_server,
    user_server,
)

__all__ = [
    "MAX_BYTES",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_PROBLEMS",
    "Desired",
    "HubConfig",
    "HubKeys",
    "KernelDecl",
    "KernelKeys",
    "Manifest",
    "ServerConfig",
    "ServerKeys",
    "load_manifest",
    "parse_manifest",
    "split_user_server",
    "user_server",
]
