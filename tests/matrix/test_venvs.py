"""The venv cache: a venv is used only once complete, whatever happened to its build.

Why: the matrix's old servers live in venvs cached outside the clone; a build
killed halfway, or two test runs building at once, must never leave a half venv
that a later run then uses. The real build (venv + pip) is replaced here by one
that writes a marker file, can be slow, or fails halfway.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.matrix import venvs


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(venvs.CACHE_ENV, str(tmp_path / "cache"))
    requirements = tmp_path / "requirements"
    requirements.mkdir()
    (requirements / "server.txt").write_text("server==1.0\n")
    return requirements


def fake_build(path: Path, requirements: Path, *, delay: float = 0.0) -> None:
    (path / "bin").mkdir()
    time.sleep(delay)
    os.symlink(sys.executable, path / "bin" / "python")
    (path / "installed.txt").write_text(requirements.read_text())


def test_built_once_then_cached(cache: Path) -> None:
    built = venvs.ensure_venv("server", requirements_dir=cache, build=fake_build)
    assert not built.cached and built.python.is_file()
    assert (built.path / "installed.txt").read_text() == "server==1.0\n"
    again = venvs.ensure_venv("server", requirements_dir=cache, build=fake_build)
    assert again.cached and again.path == built.path
    assert [p.name for p in venvs.cache_dir().iterdir() if not p.name.endswith(".lock")] == [
        built.path.name
    ]


def test_new_pins_make_a_new_venv(cache: Path) -> None:
    first = venvs.ensure_venv("server", requirements_dir=cache, build=fake_build)
    (cache / "server.txt").write_text("server==2.0\n")
    second = venvs.ensure_venv("server", requirements_dir=cache, build=fake_build)
    assert second.path != first.path and not second.cached


def test_a_failed_build_leaves_nothing_that_is_used(cache: Path) -> None:
    def broken(path: Path, requirements: Path) -> None:
        (path / "bin").mkdir()
        os.symlink(sys.executable, path / "bin" / "python")  # looks like a venv already
        raise venvs.VenvBuildError("pip failed halfway")

    with pytest.raises(venvs.VenvBuildError):
        venvs.ensure_venv("server", requirements_dir=cache, build=broken)
    assert [p for p in venvs.cache_dir().iterdir() if not p.name.endswith(".lock")] == []
    built = venvs.ensure_venv("server", requirements_dir=cache, build=fake_build)
    assert not built.cached and (built.path / "installed.txt").is_file()


def test_a_killed_build_is_never_used_and_its_leftovers_go(cache: Path) -> None:
    """SIGKILL skips every ``finally``: what a killed build leaves behind."""
    final = venvs.cache_dir() / f"server-{venvs.venv_key(cache / 'server.txt')}"
    leftover = final.parent / f".{final.name}.tmp-killed"
    (leftover / "bin").mkdir(parents=True)
    final.mkdir()  # a half venv under the final name (not made by this module)
    (final / "bin").mkdir()
    os.symlink(sys.executable, final / "bin" / "python")
    built = venvs.ensure_venv("server", requirements_dir=cache, build=fake_build)
    assert not built.cached and built.path == final
    assert (final / "installed.txt").is_file() and (final / venvs.MARKER).is_file()
    assert not leftover.exists()


def test_concurrent_builds_build_once(cache: Path) -> None:
    builds: list[Path] = []
    results: list[venvs.Venv] = []

    def slow_build(path: Path, requirements: Path) -> None:
        builds.append(path)
        fake_build(path, requirements, delay=0.3)

    def ensure() -> None:
        results.append(venvs.ensure_venv("server", requirements_dir=cache, build=slow_build))

    threads = [threading.Thread(target=ensure) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(builds) == 1
    assert len({r.path for r in results}) == 1 and len(results) == 3
    assert sorted(r.cached for r in results) == [False, True, True]
