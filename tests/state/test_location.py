"""The registry of backends (``kernelform.state.location``): a location's kind by its
scheme, its secrets and refusals without any driver, the driver imported only to open it.

The backends themselves are held to one contract in ``test_contract.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kernelform.errors import StateError
from kernelform.state.file import FileBackend
from kernelform.state.kinds import FILE, KINDS, MEMORY, POSTGRES
from kernelform.state.location import (
    REGISTRY,
    anchored,
    kind_of,
    location_problem,
    open_backend,
    url_secrets,
)
from kernelform.state.memory import MemoryBackend

ROOT = Path(__file__).resolve().parents[2]


def test_each_scheme_names_one_kind_and_a_path_is_a_file() -> None:
    assert REGISTRY == {"postgresql": POSTGRES, "postgres": POSTGRES, "memory": MEMORY}
    assert len({kind.name for kind in KINDS}) == len(KINDS)
    assert kind_of("POSTGRESQL://kf@h/db") is POSTGRES  # a scheme is read in any case
    assert kind_of("memory://ci") is MEMORY
    for path in ("state.json", "/srv/kf/state.json", "./a:b@c", "memory/state.json"):
        assert kind_of(path) is FILE, path


def test_an_unknown_or_mistyped_location_is_refused_without_quoting_it() -> None:
    assert location_problem("s3://kf:hunter2@bucket/state") == (
        "the state location is a s3:// URL, an unknown kind; use a file path or a"
        " postgresql:// URL"
    )
    typo = (
        "the state location looks like a mistyped URL (it is not postgresql://... and not a"
        " plain path); write postgresql://USER@HOST:PORT/DATABASE, or ./NAME for a file whose"
        " name has ':' or '@'"
    )
    for text in ("postgresql:/kf:hunter2@h/db", "Postgres//kf:hunter2@h/db", "kf:hunter2@h/db"):
        assert location_problem(text) == typo, text
        with pytest.raises(StateError) as caught:
            kind_of(text)
        assert str(caught.value) == typo
    assert location_problem("memory://ci") is None
    assert location_problem("memory/ci") is None  # a directory named memory


def test_secrets_are_found_in_any_location_that_may_hold_them() -> None:
    assert set(url_secrets("postgresql://kf:p%40ss@h/db?sslpassword=key&sslmode=require")) == {
        "p%40ss",
        "p@ss",
        "key",
    }
    # Not a location of any kind, but a mistyped one still hides its secrets.
    assert url_secrets("postgresql:/kf@h/db?password=hunter2") == ["hunter2"]
    assert url_secrets("s3://kf:hunter2@bucket") == ["hunter2"]
    assert url_secrets("memory://ci") == url_secrets("./state.json") == []


def test_a_relative_path_is_anchored_and_a_url_is_not(tmp_path: Path) -> None:
    assert anchored("state/s.json", tmp_path) == str(tmp_path / "state/s.json")
    assert anchored("/srv/s.json", tmp_path) == "/srv/s.json"
    for url in ("postgresql://kf@h/db", "memory://ci"):
        assert anchored(url, tmp_path) == url


def test_the_default_is_the_file_next_to_the_manifest(tmp_path: Path) -> None:
    """Even in a directory whose name would look like a mistyped URL as a location."""
    odd = tmp_path / "kf:x@y"
    backend = open_backend(None, manifest_dir=odd)
    assert isinstance(backend, FileBackend)
    assert backend.path == odd / ".kernelform" / "state.json"


def test_a_memory_place_lives_as_long_as_the_process(tmp_path: Path) -> None:
    first = open_backend("memory://test-location", manifest_dir=tmp_path)
    assert isinstance(first, MemoryBackend) and first.description == "memory://test-location"
    first.store("ci").write(first.store("ci").read())
    again = open_backend("memory://test-location", manifest_dir=tmp_path / "elsewhere")
    assert again.stored_workspaces() == ["ci"]
    assert again.store("ci").location == "memory://test-location (workspace ci)"
    assert open_backend("memory://other", manifest_dir=tmp_path).stored_workspaces() == []


def test_no_driver_is_imported_until_a_location_of_its_kind_is_opened() -> None:
    """``--state`` with a PostgreSQL URL is read for its secrets at every command's start
    (importing psycopg costs about half a second): the registry must not import it."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from kernelform.state.location import location_problem, mask_url, open_backend,"
        " url_secrets\n"
        "url = 'postgresql://kf:hunter2@db/states'\n"
        "assert url_secrets(url) == ['hunter2'] and location_problem(url) is None\n"
        "assert mask_url(url) == 'postgresql://kf:***@db/states'\n"
        "open_backend('memory://x', manifest_dir=Path('.'))\n"
        "open_backend('state.json', manifest_dir=Path('.'))\n"
        "loaded = sorted(m for m in sys.modules if 'psycopg' in m or m.endswith('.postgres'))\n"
        "assert not loaded, loaded\n"
        "open_backend(url, manifest_dir=Path('.'))\n"
        "assert 'psycopg' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
