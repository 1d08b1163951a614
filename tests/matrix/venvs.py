"""Old Jupyter servers in their own virtual environments, built once and cached.

Why: the matrix runs kernelform against servers whose dependencies cannot share
the test suite's environment (the classic notebook 6 needs jupyter_client 7;
jupyter_server 1.24 needs anyio 3). Each server gets a venv built from a file
of exact pins (``requirements/NAME.txt``, the whole ``pip freeze``), kept
outside the clone under ``$KERNELFORM_TEST_CACHE`` (default
``~/.cache/kernelform-tests``) as ``venvs/NAME-HASH``, where HASH covers the
pins and the interpreter. A change to either makes a new venv; old ones are
left for the user to delete.

A venv appears under its final name only once it is complete: it is built in a
temporary directory beside it and renamed in one step, under a lock file so
that two test runs do not build the same venv twice. An interrupted build
leaves only a temporary directory, removed by the next build of that name. A
venv renamed this way has console scripts whose ``#!`` line names the
temporary path: nothing here runs them (servers start as ``python -m ...``).

Kernels never run in these venvs: the kernelspecs the tests install point at
the test suite's own interpreter, so the venvs hold only the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "KERNELFORM_TEST_CACHE"
DEFAULT_CACHE = "~/.cache/kernelform-tests"
REQUIREMENTS_DIR = Path(__file__).parent / "requirements"
MARKER = "kernelform-venv.json"
BUILD_TIMEOUT = 900.0


class VenvBuildError(RuntimeError):
    """pip could not build a server's venv; the message carries pip's output."""


@dataclass(frozen=True)
class Venv:
    """A complete venv: its interpreter, and how long it took to build (0 if cached)."""

    name: str
    path: Path
    build_seconds: float

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def cached(self) -> bool:
        return self.build_seconds == 0


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser() / "venvs"


def venv_key(requirements: Path) -> str:
    """The hash naming a venv: its pins and the interpreter that builds it."""
    digest = hashlib.sha256()
    digest.update(requirements.read_bytes())
    digest.update(platform.python_version().encode())
    digest.update(sys.implementation.cache_tag.encode())
    digest.update(os.path.realpath(getattr(sys, "_base_executable", sys.executable)).encode())
    return digest.hexdigest()[:16]


Builder = Callable[[Path, Path], None]
"""Fills a new venv directory (first argument) from a requirements file (second)."""


def ensure_venv(
    name: str, *, requirements_dir: Path = REQUIREMENTS_DIR, build: Builder | None = None
) -> Venv:
    """The venv of ``requirements/NAME.txt``: from the cache, or built now.

    *build* replaces the real build (``venv`` + ``pip install``) in the tests
    of the cache itself.
    """
    requirements = requirements_dir / f"{name}.txt"
    root = cache_dir()
    final = root / f"{name}-{venv_key(requirements)}"
    if _complete(final):
        return Venv(name, final, 0.0)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{final.name}.lock"):
        if _complete(final):  # another run built it while we waited
            return Venv(name, final, 0.0)
        for leftover in root.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # an interrupted build's
        started = time.monotonic()
        building = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
        building.chmod(0o755)
        try:
            (build or _build)(building, requirements)
            seconds = time.monotonic() - started
            marker = {"requirements": requirements.name, "build_seconds": round(seconds, 1)}
            (building / MARKER).write_text(json.dumps(marker))
            if final.exists():  # not complete (checked above): a foreign leftover
                shutil.rmtree(final)
            os.rename(building, final)
        finally:
            shutil.rmtree(building, ignore_errors=True)  # gone once renamed
    return Venv(name, final, seconds)


def _complete(path: Path) -> bool:
    python = path / "bin" / "python"
    return (path / MARKER).is_file() and python.resolve().is_file()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(path: Path, requirements: Path) -> None:
    """A venv without pip of its own, filled by this interpreter's pip (``--python``)."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(path / "bin" / "python"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(requirements),
        ]
    )


def _run(argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise VenvBuildError(f"{' '.join(argv)} failed ({done.returncode}):\n{output}")
