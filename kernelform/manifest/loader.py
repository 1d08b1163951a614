"""Read a manifest: file or text in, a valid ``Manifest`` or one ``ManifestError`` out.

The only entry points of the package; see its docstring for the format.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from kernelform.errors import ManifestError, Problem
from kernelform.manifest.checker import Checker
from kernelform.manifest.document import MAX_BYTES, Stop, compose, decode, new_yaml
from kernelform.manifest.model import Manifest
from kernelform.masking import Secret

MAX_PROBLEMS = 100


def load_manifest(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Manifest:
    """Read and check the manifest at *path*; raise ``ManifestError`` if it is not valid.

    Relative paths in it (``ca_bundle``) are taken relative to its directory.
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
    return _parse(data, filename=name, environ=environ, size=size)


def parse_manifest(
    text: str | bytes, *, filename: str, environ: Mapping[str, str] | None = None
) -> Manifest:
    """Check manifest *text* as if read from *filename*.

    ``digest`` is the sha256 of *text*'s bytes (UTF-8 when *text* is a str);
    relative paths are taken relative to *filename*'s directory.
    """
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return _parse(data, filename=filename, environ=environ, size=len(data))


def _parse(
    data: bytes, *, filename: str, environ: Mapping[str, str] | None, size: int | None
) -> Manifest:
    yaml = new_yaml()
    try:
        text = decode(data, size)
        checker = Checker(
            filename=filename,
            text=text,
            environ=os.environ if environ is None else environ,
            yaml=yaml,
            base_dir=os.path.dirname(filename),
        )
        servers, hubs, kernels, top = checker.check(compose(yaml, text))
    except Stop as stop:
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
        hubs=MappingProxyType(hubs),
        kernels=MappingProxyType(kernels),
        digest=hashlib.sha256(data).hexdigest(),
        state=Secret(top.state) if top.state else None,
    )
