"""The file backend: snapshot, journal, backup, recovery files and the flock lock.

Write failures are made by fault injection, not by a read-only directory:
the tests may run as root, and root writes through ``chmod 0o500``. So a
failure is injected by patching ``os.replace`` / ``os.write`` to raise
``OSError(ENOSPC)``, or by putting the state under a path whose parent is a
regular file (which fails for root too).

Cross-process locking runs a child Python that holds the lock until told
(a line on its stdin) or until it is killed.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from kernelform.errors import StaleState, StateCorrupt, StateError, StateLocked, StateWriteError
from kernelform.state import (
    FileStateStore,
    LockInfo,
    State,
    StateStore,
    new_state,
)
from tests.support.resources import T0, resource

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".kernelform" / "state.json"


@pytest.fixture
def store(path: Path) -> FileStateStore:
    return FileStateStore(path)


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --- file store: read and write --------------------------------------------


def test_store_satisfies_protocol(store: FileStateStore, path: Path) -> None:
    typed: StateStore = store
    assert typed.location == str(path)


def test_read_of_missing_file_creates_nothing(store: FileStateStore, path: Path) -> None:
    state = store.read()
    assert state.serial == 0 and dict(state.resources) == {}
    assert not path.parent.exists()
    assert store.lock_info() is None
    assert not path.parent.exists()


def test_a_directory_named_as_the_state_says_to_name_a_file(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)  # --state DIR: a probe got "Is a directory", no way out
    with pytest.raises(StateError) as caught:
        store.read()
    assert str(caught.value) == (
        f"the state at {tmp_path} is a directory; name a file in it, such as"
        f" {tmp_path / 'state.json'}"
    )


def test_write_then_read_round_trip(store: FileStateStore) -> None:
    state = new_state().with_resource(resource()).with_resource(resource("etl[0]", pending=True))
    written = store.write(state)
    assert written.serial == 1
    assert written == dataclasses.replace(state, serial=1)
    assert store.read() == written


def test_serial_grows_by_one_and_lineage_stays(store: FileStateStore) -> None:
    first = store.read()
    serials, lineages = [], set()
    state = first
    for i in range(4):
        state = store.write(state.with_resource(resource(f"k{i}")))
        read = store.read()
        serials.append(read.serial)
        lineages.add(read.lineage)
    assert serials == [1, 2, 3, 4]
    assert lineages == {first.lineage}


def test_file_layout_modes_and_no_temp_files(store: FileStateStore, path: Path) -> None:
    store.write(new_state())
    assert files(path.parent) == ["state.json"]
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.write(store.read())
    assert files(path.parent) == ["state.json", "state.json.backup"]
    assert stat.S_IMODE((path.parent / "state.json.backup").stat().st_mode) == 0o600
    text = path.read_text()
    assert text.endswith("\n") and json.loads(text)["serial"] == 2


def test_backup_holds_the_previous_state(store: FileStateStore, path: Path) -> None:
    one = store.write(new_state().with_resource(resource("a")))
    before = path.read_bytes()
    store.write(one.with_resource(resource("b")))
    assert (path.parent / "state.json.backup").read_bytes() == before


def test_existing_directory_mode_is_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    FileStateStore(tmp_path / "state.json").write(new_state())
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


VALID = new_state().with_resource(resource()).to_dict()


def variant(**changes: Any) -> bytes:
    data = json.loads(json.dumps(VALID))
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


def resource_variant(**changes: Any) -> bytes:
    entry = dict(VALID["resources"]["etl"])
    for key, value in changes.items():
        if value is ...:
            del entry[key]
        else:
            entry[key] = value
    return variant(resources={"etl": entry})


CORRUPT = {
    "empty": (b"", "is empty"),
    "blank": (b"  \n", "is empty"),
    "truncated": (json.dumps(VALID).encode()[:40], r"not valid JSON \(line 1 col \d+\)"),
    "brace": (b"{", r"not valid JSON \(line 1 col 2\)"),
    "binary": (b"\xff\xfe\x00", "not UTF-8"),
    "array": (b"[]", "expected a JSON object, found an array"),
    "string": (b'"state"', "found a string"),
    "duplicate key": (b'{"serial": 1, "serial": 2}', "'serial' appears twice"),
    "no version": (variant(version=...), "no format version"),
    "version text": (variant(version="1"), "version must be a whole number"),
    "version zero": (variant(version=0), "unknown format version 0"),
    "no lineage": (variant(lineage=...), "missing field.*lineage"),
    "bad lineage": (variant(lineage="nope"), "lineage must be a UUID"),
    "serial text": (variant(serial="1"), "serial must be a whole number"),
    "serial bool": (variant(serial=True), "serial must be a whole number"),
    "serial negative": (variant(serial=-1), "serial must be a whole number"),
    "unknown field": (variant(token="secret"), r"unknown field\(s\) token"),
    "resources list": (variant(resources=[]), "resources must be an object"),
    "resource not object": (variant(resources={"etl": 3}), "expected an object, found a number"),
    "no kernel id": (resource_variant(kernel_id=...), r"resources\['etl'\].*kernel_id"),
    "empty kernel id": (resource_variant(kernel_id=""), "kernel_id must be a non-empty string"),
    "server number": (resource_variant(server=7), "server must be a non-empty string"),
    "cwd number": (resource_variant(cwd=7), "cwd must be a string or null"),
    "pending text": (resource_variant(pending="yes"), "pending must be true or false"),
    "bad time": (resource_variant(started_at="noon"), "not a time like"),
    "naive time": (resource_variant(started_at="2026-11-28T00:10:00"), "not a time like"),
    "resource token": (resource_variant(token="secret"), r"unknown field\(s\) token"),
    "address mismatch": (resource_variant(address="other"), "listed as 'etl' has address"),
    "terraform": (
        json.dumps({"version": 4, "terraform_version": "1.9.0", "serial": 1}).encode(),
        "is a Terraform state",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_state_is_refused_and_never_changed(
    store: FileStateStore, path: Path, case: str
) -> None:
    content, message = CORRUPT[case]
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(StateCorrupt, match=message) as info:
        store.read()
    assert str(path) in str(info.value)
    if case != "terraform":
        assert "it was not changed" in str(info.value)
    with pytest.raises(StateCorrupt, match=message):
        store.write(new_state().with_resource(resource()))
    assert path.read_bytes() == content
    assert files(path.parent) == ["state.json"]


def test_corrupt_message_points_at_the_backup(store: FileStateStore, path: Path) -> None:
    store.write(store.write(new_state()))
    path.write_bytes(b'{"version": 1, "ser')
    with pytest.raises(StateCorrupt) as info:
        store.read()
    assert str(info.value) == (
        f"the state at {path} is not valid JSON (line 1 col 16); restore it from"
        f" {path}.backup or your VCS, it was not changed"
    )


def test_newer_format_is_refused_with_upgrade_hint(store: FileStateStore, path: Path) -> None:
    content = variant(version=3, something_new=[1, 2])
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(StateCorrupt, match=r"written by a newer kernelform \(format 3\); upgrade"):
        store.read()
    with pytest.raises(StateCorrupt, match="newer kernelform"):
        store.write(new_state())
    assert path.read_bytes() == content


def test_foreign_lineage_is_refused_on_write(store: FileStateStore, path: Path) -> None:
    store.write(new_state().with_resource(resource("theirs")))
    before = path.read_bytes()
    ours = new_state().with_resource(resource("ours"))
    with pytest.raises(StateCorrupt, match="belongs to another state") as info:
        store.write(ours)
    assert path.read_bytes() == before
    saved = re.search(r"saved at (\S+)\.$", str(info.value))
    assert saved is not None
    assert (
        json.loads(Path(saved.group(1)).read_text())
        == dataclasses.replace(ours, serial=1).to_dict()
    )


def test_state_changed_under_us_is_refused(store: FileStateStore, path: Path) -> None:
    read = store.read()
    store.write(read.with_resource(resource("a")))
    before = path.read_bytes()
    with pytest.raises(StateError, match="the state changed under us") as info:
        store.write(read.with_resource(resource("b")))
    assert not isinstance(info.value, StateCorrupt)
    assert "serial 1 but this run read it at serial 0" in str(info.value)
    assert path.read_bytes() == before


def test_write_from_a_higher_serial_is_allowed(store: FileStateStore) -> None:
    state = store.write(new_state())
    assert store.write(dataclasses.replace(state, serial=5)).serial == 6


# --- file store: write failures ----------------------------------------------


def recovery_path(message: str) -> Path:
    match = re.search(r"recovery file with the new state was saved at (\S+);", message)
    assert match is not None, message
    return Path(match.group(1))


def enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_failed_replace_saves_recovery_beside_state(
    store: FileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.write(new_state().with_resource(resource("a")))
    before = path.read_bytes()
    wanted = first.with_resource(resource("b"))
    monkeypatch.setattr(os, "replace", enospc)
    with pytest.raises(StateWriteError) as info:
        store.write(wanted)
    message = str(info.value)
    saved = recovery_path(message)
    assert saved.parent == path.parent
    assert re.fullmatch(r"state\.json\.recovery-\d{8}T\d{6}Z\.json", saved.name)
    assert "No space left on device" in message
    assert f"run 'kernelform state push {saved}'" in message
    assert info.value.recovery == saved
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    recovered = State.from_dict(json.loads(saved.read_text()), source=str(saved))
    assert recovered == dataclasses.replace(wanted, serial=2)
    assert path.read_bytes() == before
    assert not [n for n in files(path.parent) if n.endswith(".tmp")]


def test_recovery_file_can_be_moved_into_place(
    store: FileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.write(new_state())
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", enospc)
        with pytest.raises(StateWriteError) as info:
            store.write(first.with_resource(resource()))
    recovery_path(str(info.value)).replace(path)
    restored = store.read()
    assert restored.serial == 2 and list(restored.resources) == ["etl"]
    assert store.write(restored).serial == 3


def test_second_recovery_in_same_second_gets_a_new_name(
    store: FileStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = store.write(new_state())
    monkeypatch.setattr(os, "replace", enospc)
    saved = set()
    for _ in range(3):
        with pytest.raises(StateWriteError) as info:
            store.write(state)
        saved.add(recovery_path(str(info.value)))
    assert len(saved) == 3


def test_unwritable_state_dir_saves_recovery_in_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file, not a directory")
    system_tmp = tmp_path / "systmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    store = FileStateStore(blocker / "state.json")
    wanted = new_state().with_resource(resource())
    with pytest.raises(StateWriteError) as info:
        store.write(wanted)
    saved = recovery_path(str(info.value))
    assert saved.parent == system_tmp
    assert saved.name.startswith("kernelform-state.json.recovery-")
    assert json.loads(saved.read_text()) == dataclasses.replace(wanted, serial=1).to_dict()
    assert blocker.read_text() == "a regular file, not a directory"


def test_when_no_recovery_file_can_be_saved_the_message_holds_the_state(
    store: FileStateStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.write(new_state())
    before = path.read_bytes()
    wanted = first.with_resource(resource())
    monkeypatch.setattr(os, "write", enospc)
    monkeypatch.setattr(tempfile, "tempdir", str(path / "not-a-dir"))
    with pytest.raises(StateWriteError) as info:
        store.write(wanted)
    message = str(info.value)
    assert "no recovery file could be saved" in message
    assert "push it with 'kernelform state push FILE':" in message
    payload = message.split("'kernelform state push FILE':\n", 1)[1]
    assert json.loads(payload) == dataclasses.replace(wanted, serial=2).to_dict()
    assert path.read_bytes() == before
    assert files(path.parent) == ["state.json"]


# --- locking ------------------------------------------------------------------


def test_lock_writes_holder_info_and_release_cleans_up(store: FileStateStore) -> None:
    with store.lock(operation="apply") as info:
        assert (info.pid, info.operation) == (os.getpid(), "apply")
        assert uuid.UUID(info.id)
        assert info.since.tzinfo == timezone.utc
        assert store.lock_info() == info
        assert stat.S_IMODE(store.lock_path.stat().st_mode) == 0o600
        assert json.loads(store.lock_path.read_text()) == info.to_dict()
    assert store.lock_info() is None
    assert not store.lock_path.exists()


def test_lock_is_not_reentrant(store: FileStateStore) -> None:
    with store.lock(operation="apply") as info:
        assert store.lock_info() == info
        with pytest.raises(StateLocked) as err, store.lock(operation="plan"):
            pass
    message = str(err.value)
    # A live holder on this host: force-unlock would only do harm; the CLI will not
    # suggest it (err.breakable is False) and only adds how to wait.
    assert message == f"the state at {store.path} is locked: {info.describe()}, lock ID {info.id}"
    assert err.value.holder == info and not err.value.breakable
    assert f"held by pid {os.getpid()} on host " in message
    with store.lock(operation="plan"):
        pass


def test_lock_is_released_when_the_block_raises(store: FileStateStore) -> None:
    with pytest.raises(RuntimeError), store.lock(operation="apply"):
        raise RuntimeError("boom")
    with store.lock(operation="apply"):
        pass


def test_lock_info_describe() -> None:
    info = LockInfo(id="x", pid=123, host="h", operation="apply", since=T0)
    assert info.describe() == "held by pid 123 on host h since 2026-11-28T00:10:00Z (apply)"
    assert LockInfo.from_dict(info.to_dict()) == info


def test_holder_without_info_is_reported_as_unknown(store: FileStateStore) -> None:
    with store.lock(operation="apply"):
        store.lock_path.write_text("")
        held = store.lock_info()
        assert held is not None and held.pid == 0
        with (
            pytest.raises(StateLocked, match="held by an unknown process"),
            store.lock(operation="plan"),
        ):
            pass


def test_force_unlock_needs_a_lock_and_its_id(store: FileStateStore) -> None:
    with pytest.raises(StateError, match="is not locked; nothing to unlock"):
        store.force_unlock("any")
    with store.lock(operation="apply") as info:
        with pytest.raises(StateError, match=f"the lock .* is {info.id}, not wrong-id"):
            store.force_unlock("wrong-id")
        assert store.lock_info() == info


def test_force_unlock_refuses_a_live_local_holder(store: FileStateStore) -> None:
    with store.lock(operation="apply") as info:
        with pytest.raises(
            StateLocked, match=f"that process is alive on this host.*kill {os.getpid()}"
        ):
            store.force_unlock(info.id)
        assert store.lock_info() == info
        assert store.lock_path.exists()


def test_force_unlock_removes_a_lock_whose_holder_is_gone(store: FileStateStore) -> None:
    # A lock that flock cannot clear (a network filesystem): the holder record names
    # a host that is not this one, so its liveness cannot be checked from here.
    stuck = store.lock(operation="apply")
    stuck.__enter__()
    elsewhere = LockInfo(id="far-away", pid=4242, host="other-host", operation="apply", since=T0)
    store.lock_path.write_text(json.dumps(elsewhere.to_dict()))
    with pytest.raises(StateLocked) as locked, store.lock(operation="plan"):
        pass
    assert locked.value.breakable and locked.value.holder == elsewhere
    unlocked = store.force_unlock("far-away")
    assert unlocked.holder == elsewhere
    assert unlocked.done == f"removed the lock file {store.lock_path} ({elsewhere.describe()})"
    assert not store.lock_path.exists()
    with store.lock(operation="plan") as new:
        stuck.__exit__(None, None, None)
        assert store.lock_info() == new
    assert not store.lock_path.exists()


def test_lock_error_when_lock_dir_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    store = FileStateStore(tmp_path / "blocker" / "state.json")
    with pytest.raises(StateError, match="cannot lock the state"), store.lock(operation="apply"):
        pass


CHILD = """
import sys
from kernelform.state import FileStateStore
with FileStateStore(sys.argv[1]).lock(operation=sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@pytest.fixture
def holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "apply"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "locked\n"
    yield child
    child.kill()
    child.wait()


def release(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def test_other_process_gets_state_locked_naming_the_holder(
    store: FileStateStore, holder: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    pattern = rf"held by pid {holder.pid} on host \S+ since \S+Z \(apply\)"
    with pytest.raises(StateLocked, match=pattern), store.lock(operation="plan"):
        pass
    assert time.monotonic() - started < 5  # at once: no lock timeout was given
    info = store.lock_info()
    assert info is not None and (info.pid, info.operation) == (holder.pid, "apply")
    release(holder)
    assert holder.wait(timeout=10) == 0
    with store.lock(operation="plan") as mine:
        assert mine.pid == os.getpid()


def test_lock_timeout_waits_for_the_holder(
    store: FileStateStore, holder: subprocess.Popen[str]
) -> None:
    timer = threading.Timer(0.5, release, args=(holder,))
    started = time.monotonic()
    timer.start()
    try:
        with store.lock(operation="apply", timeout=30) as info:
            waited = time.monotonic() - started
            assert info.pid == os.getpid()
    finally:
        timer.cancel()
    assert 0.4 <= waited < 10


def test_lock_timeout_expires(store: FileStateStore, holder: subprocess.Popen[str]) -> None:
    started = time.monotonic()
    with (
        pytest.raises(StateLocked, match=r"still locked after 0\.3s: held by pid"),
        store.lock(operation="apply", timeout=0.3),
    ):
        pass
    assert 0.3 <= time.monotonic() - started < 5


def test_killed_holder_leaves_no_lock(store: FileStateStore, holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait()
    assert store.lock_path.exists()
    assert store.lock_info() is None
    with pytest.raises(StateError, match="is not locked; nothing to unlock"):
        store.force_unlock("anything")
    with store.lock(operation="apply") as info:
        assert info.pid == os.getpid()


def test_killed_holder_lock_is_taken_over_without_force_unlock(
    store: FileStateStore, holder: subprocess.Popen[str]
) -> None:
    holder.kill()
    holder.wait()
    with store.lock(operation="apply") as info:
        assert store.lock_info() == info


# --- the journal ----------------------------------------------------------------


def journal_lines(store: FileStateStore) -> list[dict[str, Any]]:
    if not store.journal_path.exists():
        return []
    return [json.loads(line) for line in store.journal_path.read_text().splitlines()]


def big_state(n: int) -> State:
    state = new_state()
    return state.edited(puts=[resource(f"k{i:04d}") for i in range(n)])


def test_recording_appends_one_line_and_leaves_the_snapshot_alone(
    store: FileStateStore, path: Path
) -> None:
    state = store.write(big_state(300))
    snapshot = (path.stat().st_ino, path.stat().st_mtime_ns)
    for i in range(5):
        state = store.record(state, puts=[resource(f"new{i}")], drops=[f"k{i:04d}"])
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == snapshot
    lines = journal_lines(store)
    assert [line["serial"] for line in lines] == [2, 3, 4, 5, 6]
    assert lines[0]["drops"] == ["k0000"] and lines[0]["puts"][0]["address"] == "new0"
    assert FileStateStore(path).read() == state


def test_a_line_costs_the_same_whatever_the_size_of_the_state(tmp_path: Path) -> None:
    sizes = []
    for n in (1, 1000):
        store = FileStateStore(tmp_path / str(n) / "state.json")
        state = store.write(big_state(n))
        store.record(state, puts=[resource("added")])
        sizes.append(store.journal_path.stat().st_size)
    assert sizes[0] == sizes[1]


def test_settle_folds_the_journal_into_the_snapshot(store: FileStateStore, path: Path) -> None:
    state = store.write(big_state(3))
    state = store.record(state, puts=[resource("x")])
    store.settle(state)
    assert not store.journal_path.exists()
    assert json.loads(path.read_text())["serial"] == state.serial
    assert FileStateStore(path).read() == state
    assert sorted(files(path.parent)) == ["state.json", "state.json.backup"]


def test_the_journal_is_compacted_once_it_outgrows_the_state(store: FileStateStore) -> None:
    state = store.write(big_state(2))
    for i in range(150):
        state = store.record(state, puts=[resource("moving", kernel_id=f"k{i}")])
    assert len(journal_lines(store)) < 100
    assert FileStateStore(store.path).read() == state


def test_a_line_that_never_finished_is_ignored_then_cut(store: FileStateStore, path: Path) -> None:
    state = store.write(big_state(1))
    state = store.record(state, puts=[resource("a")])
    with store.journal_path.open("ab") as journal:
        journal.write(b'{"lineage": "torn write, no newl')
    again = FileStateStore(path)
    read = again.read()
    assert read == state
    after = again.record(read, puts=[resource("b")])
    assert [line["serial"] for line in journal_lines(store)] == [2, 3]
    assert FileStateStore(path).read() == after


def test_a_damaged_journal_line_is_refused(store: FileStateStore, path: Path) -> None:
    state = store.write(big_state(1))
    store.record(state, puts=[resource("a")])
    with store.journal_path.open("ab") as journal:
        journal.write(b"not json\n")
    before = store.journal_path.read_bytes()
    with pytest.raises(StateCorrupt, match=r"the journal .* is damaged \(the line at byte \d+"):
        FileStateStore(path).read()
    assert store.journal_path.read_bytes() == before


def test_a_journal_of_another_state_is_refused(store: FileStateStore, path: Path) -> None:
    store.write(big_state(1))
    line = {"lineage": new_state().lineage, "serial": 2, "puts": [], "drops": []}
    store.journal_path.write_text(json.dumps(line) + "\n")
    with pytest.raises(StateCorrupt, match="belongs to another state"):
        FileStateStore(path).read()


def test_an_interrupted_compaction_leaves_only_covered_lines(
    store: FileStateStore, path: Path
) -> None:
    state = store.write(big_state(2))
    for name in ("a", "b", "c"):
        state = store.record(state, puts=[resource(name)])
    journal = store.journal_path.read_bytes()
    store.settle(state)
    store.journal_path.write_bytes(journal)  # as if killed before the journal was removed
    again = FileStateStore(path)
    assert again.read() == state
    state = again.record(state, puts=[resource("d")])
    assert FileStateStore(path).read() == state


def test_a_compaction_by_another_run_is_noticed(store: FileStateStore, path: Path) -> None:
    mine = store.write(big_state(1))
    mine = store.record(mine, puts=[resource("a")])
    other = FileStateStore(path)
    theirs = other.read()
    other.settle(theirs)
    other_state = other.record(theirs, puts=[resource("b")])
    with pytest.raises(StaleState):
        store.record(mine, puts=[resource("c")])
    assert FileStateStore(path).read() == other_state
