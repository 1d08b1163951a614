"""The state model: its JSON form, times, and edits that stay cheap."""

from __future__ import annotations

import dataclasses
import json
import pickle
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kernelform.state import (
    FORMAT_VERSION,
    FileStateStore,
    Resource,
    State,
    format_time,
    new_state,
    parse_time,
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


# --- model -----------------------------------------------------------------


def test_new_state_is_empty_with_fresh_lineage() -> None:
    a, b = new_state(), new_state()
    assert (a.version, a.serial, dict(a.resources)) == (FORMAT_VERSION, 0, {})
    assert uuid.UUID(a.lineage).version == 4
    assert a.lineage != b.lineage


def test_to_dict_has_exactly_the_documented_keys_and_no_token() -> None:
    state = new_state().with_resource(resource(pending=True))
    data = state.to_dict()
    assert list(data) == ["version", "serial", "lineage", "resources"]
    assert list(data["resources"]["etl"]) == [
        "address",
        "server",
        "kernel_id",
        "spec",
        "cwd",
        "revision",
        "setup",
        "started_at",
        "pending",
        "tainted",
    ]
    names = {f.name for f in dataclasses.fields(State)} | {
        f.name for f in dataclasses.fields(Resource)
    }
    assert not any("token" in n for n in names)
    assert "token" not in json.dumps(data)


def test_started_at_serialises_as_utc_with_z() -> None:
    east = timezone(timedelta(hours=2))
    r = resource(started_at=datetime(2026, 11, 28, 2, 10, tzinfo=east))
    assert r.started_at == T0 and r.started_at.tzinfo == timezone.utc
    assert r.to_dict()["started_at"] == "2026-11-28T00:10:00Z"
    with_micro = resource(started_at=T0.replace(microsecond=5))
    assert with_micro.to_dict()["started_at"] == "2026-11-28T00:10:00.000005Z"
    assert Resource.from_dict(with_micro.to_dict()) == with_micro


def test_naive_started_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        resource(started_at=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T00:10:00Z", T0),
        ("2026-11-28T00:10:00.5Z", T0.replace(microsecond=500000)),
        ("2026-11-28T01:10:00+01:00", T0),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected
    assert format_time(parse_time(text)) == format_time(expected)


@pytest.mark.parametrize(
    "text", ["2026-11-28T00:10:00", "2026-13-28T00:10:00Z", "yesterday", "2026-11-28 00:10:00Z"]
)
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_model_is_frozen_and_with_without_copy() -> None:
    empty = new_state()
    one = empty.with_resource(resource("b")).with_resource(resource("a"))
    assert dict(empty.resources) == {}
    assert list(one.resources) == ["a", "b"]
    assert one.lineage == empty.lineage and one.serial == empty.serial
    replaced = one.with_resource(resource("a", spec="ir"))
    assert replaced.resources["a"].recipe.spec == "ir"
    assert one.resources["a"].recipe.spec == "python3"
    assert list(one.without("a").resources) == ["b"]
    assert one.without("missing") is one
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.serial = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        one.resources["c"] = resource("c")  # type: ignore[index]
    assert hash(one) == hash(State.from_dict(one.to_dict(), source="x"))
    assert pickle.loads(pickle.dumps(one)) == one


def test_one_kernel_cannot_have_two_addresses() -> None:
    with pytest.raises(ValueError, match="claimed by both a and b"):
        new_state().with_resource(resource("a", kernel_id="k")).with_resource(
            resource("b", kernel_id="k")
        )


def test_round_trip_keeps_everything_and_sorts_addresses() -> None:
    state = (
        new_state()
        .with_resource(resource("etl[1]", cwd=None, revision=None))
        .with_resource(resource("etl[0]", pending=True))
        .with_resource(resource("alpha"))
    )
    data = state.to_dict()
    assert list(data["resources"]) == ["alpha", "etl[0]", "etl[1]"]
    again = State.from_dict(json.loads(json.dumps(data)), source="test")
    assert again == state
    assert again.resources["etl[0]"].pending is True


def test_pending_defaults_to_false_when_absent() -> None:
    data = new_state().with_resource(resource()).to_dict()
    del data["resources"]["etl"]["pending"]
    assert State.from_dict(data, source="test").resources["etl"].pending is False


def test_a_format_1_state_is_read_and_written_back_as_format_2() -> None:
    old = {
        "version": 1,
        "serial": 4,
        "lineage": "0b8e2c1e-59a0-4c43-9d0a-5b8b8e1f1c11",
        "resources": {
            "etl": {
                "address": "etl",
                "server": "lab",
                "kernel_id": "k1",
                "spec": "python3",
                "cwd": None,
                "revision": "1",
                "started_at": "2026-11-28T00:10:00Z",
                "pending": False,
            }
        },
    }
    state = State.from_dict(old, source="old")
    etl = state.resources["etl"]
    assert (etl.recipe.setup, etl.tainted) == (None, None)
    assert state.to_dict()["version"] == 2
    assert state.to_dict()["resources"]["etl"]["tainted"] is None
