"""Addresses: the one grammar for naming kernels in plans, the state and --target."""

from __future__ import annotations

import pytest

from kernelform.address import (
    Address,
    matches_target,
    parse_address,
    parse_target,
    unmatched_targets,
)
from kernelform.wording import closest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("etl", Address("etl")),
        ("etl[0]", Address("etl", 0)),
        ("etl[3]", Address("etl", 3)),
        ("a.b-c_d[12]", Address("a.b-c_d", 12)),
        ("_x", Address("_x")),
        ("tutor@ana", Address("tutor", None, "ana")),
        ("tutor[1]@ana", Address("tutor", 1, "ana")),
        ("tutor@ana@uni.edu", Address("tutor", None, "ana@uni.edu")),
        ("etl[1]~deposed", Address("etl", 1, deposed=True)),
        ("tutor[2]@ana~deposed", Address("tutor", 2, "ana", deposed=True)),
    ],
)
def test_parse_and_format_round_trip(text: str, expected: Address) -> None:
    assert parse_address(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "etl[",
        "etl[]",
        "etl[-1]",
        "etl[01]",
        "etl[1]x",
        "1etl",
        "[0]",
        "e tl",
        "a[1][2]",
        "etl@",
        "etl@a b",
        "etl@a/b",
        "lab/4d1c",
        "etl~deposed~deposed",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid kernel address"):
        parse_address(text)


def test_deposed_and_base() -> None:
    address = parse_address("etl[1]@ana")
    assert str(address.as_deposed()) == "etl[1]@ana~deposed"
    assert address.as_deposed().base == address


def test_target_may_not_be_deposed() -> None:
    with pytest.raises(ValueError, match="target the address itself"):
        parse_target("etl~deposed")


@pytest.mark.parametrize(
    ("address", "target", "selected"),
    [
        ("etl", "etl", True),
        ("etl[3]", "etl", True),
        ("etl[3]", "etl[3]", True),
        ("etl[3]", "etl[2]", False),
        ("etl", "etl[0]", False),
        ("etl2", "etl", False),
        ("etl[1]~deposed", "etl[1]", True),
        ("tutor@ana", "tutor", True),
        ("tutor[1]@ana", "tutor", True),
        ("tutor[1]@ana", "tutor@ana", True),
        ("tutor[1]@ana", "tutor[1]", True),
        ("tutor[1]@ana", "tutor@bob", False),
        ("tutor@ana", "tutor[0]@ana", False),
        ("lab/4d1c7e", "lab", False),
    ],
)
def test_matches_target(address: str, target: str, selected: bool) -> None:
    assert matches_target(address, [target]) is selected


def test_no_targets_select_everything() -> None:
    assert matches_target("lab/4d1c7e", [])
    assert matches_target("etl[9]", [])


def test_unmatched_targets() -> None:
    addresses = ["etl[0]", "etl[1]", "solo", "tutor@ana"]
    assert unmatched_targets(["etl", "etl[9]", "etl1", "tutor@ana", "tutor@bob"], addresses) == [
        "etl[9]",
        "etl1",
        "tutor@bob",
    ]


def test_closest() -> None:
    assert closest("etl1", ["etl", "solo"]) == "etl"
    assert closest("SOLO", ["etl", "solo"]) == "solo"
    assert closest("zzz", ["etl", "solo"]) is None
