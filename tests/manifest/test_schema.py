"""The manifest's JSON Schema: generated from the checker's declarations, committed,
accepting the examples, and rejecting the broken manifests it can see.

The corpus of broken manifests (tests/manifest/manifests/broken) is split three ways,
each case accounted for: refused before there is any data (YAML-level: aliases,
tabs, duplicate keys, size, encoding: the schema never sees those), rejected
by the schema, or accepted by it because only the checker can tell
(``CHECKER_ONLY``, with the reason). A new corpus case lands in one of them or
fails this test. Takes about 2 s.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from kernelform.errors import ManifestError
from kernelform.manifest import parse_manifest
from kernelform.manifest.document import MAX_BYTES, Stop, compose, decode, new_yaml
from kernelform.manifest.keys import SECTIONS, TopKeys
from kernelform.schema import manifest_schema
from tests.manifest.manifests import broken_cases
from tests.support.kf import ROOT, run

COMMITTED = ROOT / "schema" / "kernelform.schema.json"
REGENERATE = "regenerate it with: .venv/bin/kernelform schema > schema/kernelform.schema.json"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

# Broken manifests the schema accepts, by the reason only the checker catches them.
UNKNOWN_SERVER = "a kernel's server must be one declared under servers"
WHICH_SERVER = "with several servers, a kernel must name one"
ONE_PLACE = "a kernel names a server or a hub, not both (the schema does not pair keys)"
UNDEFINED = "${VAR} without a default must be set; ${...} syntax is checked at expansion"
EXPANDED = "what a ${VAR} expands to is only known when the manifest is read"
URL_DETAIL = "url details past its scheme (host, port, user) need a URL parser"
LIMITS = "numeric limits written in ways a pattern does not follow (100 years, octal)"
YAML_TYPES = "YAML types the JSON data model has no name for"

CHECKER_ONLY: dict[str, str] = {
    "hub-and-server": ONE_PLACE,
    "hub-api-url": URL_DETAIL + " (the path of a hub's URL)",
    "state-url-typo": URL_DETAIL + " (a mistyped postgresql:// URL is not a path)",
    "kernel-name-null": YAML_TYPES + " (a null key)",
    "servers-omap-tag": YAML_TYPES + " (!!omap is a mapping to JSON)",
    "env-dash-default": UNDEFINED,
    "env-digit-name": UNDEFINED,
    "env-dollar-home": UNDEFINED,
    "env-empty-name": UNDEFINED,
    "env-lone-dollar": UNDEFINED,
    "env-nested-default": UNDEFINED,
    "env-question-form": UNDEFINED,
    "env-second-reference": UNDEFINED,
    "env-token-invalid-reference": UNDEFINED,
    "env-trailing-dollar": UNDEFINED,
    "env-undefined-after-escape": UNDEFINED,
    "env-undefined-count": UNDEFINED,
    "env-undefined-cwd": UNDEFINED,
    "env-undefined-double-quoted": UNDEFINED,
    "env-undefined-mid-url": UNDEFINED,
    "env-undefined-revision": UNDEFINED,
    "env-undefined-server": UNDEFINED,
    "env-undefined-single-quoted": UNDEFINED,
    "env-undefined-spec": UNDEFINED,
    "env-undefined-token": UNDEFINED,
    "env-undefined-url": UNDEFINED,
    "env-unterminated": UNDEFINED,
    "env-default-bad-bool": EXPANDED,
    "env-default-bad-count": EXPANDED,
    "env-default-bad-duration": EXPANDED,
    "env-default-bad-url": EXPANDED,
    "env-default-big-count": EXPANDED,
    "env-default-empty-spec": EXPANDED,
    "env-default-negative-count": EXPANDED,
    "max-age-huge-digits": LIMITS,
    "max-age-over-limit": LIMITS,
    "server-omitted-two": WHICH_SERVER,
    "server-unknown-far": UNKNOWN_SERVER,
    "server-unknown-name": UNKNOWN_SERVER,
    "url-bad-port": URL_DETAIL,
    "url-ipv6-unclosed": URL_DETAIL,
    "url-port-letters": URL_DETAIL,
}


def data_of(path: Path) -> Any:
    """The manifest as JSON data, as an editor sees it; None if YAML-level refused."""
    raw = path.read_bytes()
    yaml = new_yaml()
    try:
        root = compose(yaml, decode(raw, len(raw) if len(raw) <= MAX_BYTES else None))
    except Stop:
        return None
    if root is None:
        return None
    try:
        return _plain(yaml.constructor.construct_document(root))
    except Exception:  # duplicate keys and odd tags: ruamel refuses, so does an editor
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def validator() -> Draft202012Validator:
    return Draft202012Validator(manifest_schema())


def test_schema_is_valid_2020_12() -> None:
    schema = manifest_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_committed_copy_is_current() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == manifest_schema(), f"{COMMITTED} is out of date; {REGENERATE}"


def test_cli_prints_it(tmp_path: Path) -> None:
    result = run("schema", cwd=tmp_path)
    assert result.code == 0 and result.json() == manifest_schema()
    assert result.out == COMMITTED.read_text(encoding="utf-8"), REGENERATE


def test_keys_come_from_the_declarations() -> None:
    schema = manifest_schema()
    assert set(schema["properties"]) == {*SECTIONS, *TopKeys.model_fields}
    for name, field in TopKeys.model_fields.items():
        assert schema["properties"][name]["description"] == field.description
    for section in SECTIONS.values():
        entry = schema["$defs"][section.model.__name__]
        assert set(entry["properties"]) == set(section.model.model_fields)
        assert entry["additionalProperties"] is False
        for name, field in section.model.model_fields.items():
            assert entry["properties"][name]["description"] == field.description
    assert schema["additionalProperties"] is False


# The least entry of each section, to which one key at a time is added.
LEAST = {
    "servers": {"url": "http://127.0.0.1:8888"},
    "hubs": {"url": "http://127.0.0.1:8000"},
    "kernels": {"spec": "python3"},
}


def advertised() -> list[tuple[str, str, str, Any]]:
    """Every value the schema shows: (where, key, "default" or "examples", value)."""
    schema = manifest_schema()
    found = []
    for key, prop in schema["properties"].items():
        if key not in SECTIONS and "default" in prop:
            found.append(("", key, "default", prop["default"]))
    for name, section in SECTIONS.items():
        for key, prop in schema["$defs"][section.model.__name__]["properties"].items():
            if "default" in prop:
                found.append((name, key, "default", prop["default"]))
            found += [(name, key, "examples", value) for value in prop.get("examples", [])]
    return found


ADVERTISED = advertised()


@pytest.mark.parametrize(
    ("section", "key", "kind", "value"),
    ADVERTISED,
    ids=[f"{s or 'top'}.{k}-{kind}-{v!r}" for s, k, kind, v in ADVERTISED],
)
def test_every_default_and_example_passes_validate(
    section: str, key: str, kind: str, value: Any
) -> None:
    """What the schema shows an editor (a default, an example) is what kernelform reads."""
    data: dict[str, Any] = {"servers": {"lab": LEAST["servers"]}}
    if section:
        data.setdefault(section, {})["one"] = {**LEAST[section], key: value}
    else:
        data[key] = value
    assert validator().is_valid(data), data
    parse_manifest(json.dumps(data), filename="k.yaml", environ={})  # raises if refused


@pytest.mark.parametrize("count", [2, 2.0, 1000.0, 0.0, 2.5, -1.0, 1001.0, "2", "2.0"])
def test_schema_and_validate_agree_on_count(count: Any) -> None:
    """JSON Schema counts 2.0 as an integer (draft 2020-12); validate reads it as 2 too."""
    data = {"servers": {"lab": LEAST["servers"]}, "kernels": {"a": {"spec": "x", "count": count}}}
    try:
        parse_manifest(json.dumps(data), filename="k.yaml", environ={})
        accepted = True
    except ManifestError:
        accepted = False
    assert validator().is_valid(data) is accepted


def test_the_advertised_values_are_all_there() -> None:
    assert set(LEAST) == set(SECTIONS)
    shown = {(section, key): value for section, key, kind, value in ADVERTISED if kind == "default"}
    assert shown[("hubs", "start_timeout")] == "5m"
    assert shown[("kernels", "protect")] is True
    assert ("hubs", "groups") not in shown  # left out is not []: groups: [] is refused
    assert sum(kind == "examples" for *_, kind, _ in ADVERTISED) >= 5 * 5
    assert len(ADVERTISED) >= 40, len(ADVERTISED)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid_and_point_at_the_schema(example: Path) -> None:
    first = example.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schema/kernelform.schema.json"
    assert (example.parent / first.partition("$schema=")[2]).resolve() == COMMITTED
    errors = list(validator().iter_errors(data_of(example)))
    assert errors == [], [e.message for e in errors]


CASES = broken_cases()


def classify() -> tuple[list[str], list[str], list[str]]:
    refused, rejected, accepted = [], [], []
    check = validator()
    for case in CASES:
        data = data_of(case.path)
        if data is None:
            refused.append(case.name)
        elif check.is_valid(data):
            accepted.append(case.name)
        else:
            rejected.append(case.name)
    return refused, rejected, accepted


def test_broken_manifests_are_rejected_unless_only_the_checker_can_tell() -> None:
    refused, rejected, accepted = classify()
    assert sorted(accepted) == sorted(CHECKER_ONLY), (
        "accepted by the schema but not listed in CHECKER_ONLY: "
        f"{sorted(set(accepted) - set(CHECKER_ONLY))}; listed but rejected: "
        f"{sorted(set(CHECKER_ONLY) - set(accepted))}"
    )
    assert len(rejected) >= 100, len(rejected)
    print(f"\nschema: {len(rejected)} rejected, {len(accepted)} checker-only, {len(refused)} YAML")


@pytest.mark.parametrize(
    "name",
    [
        "kernel-unknown-specs",  # unknown keys
        "server-unknown-tokn",
        "top-unknown-version",
        "count-word",  # wrong types and values
        "count-negative",
        "count-1001",
        "protect-empty-string",
        "max-age-bare-int",  # bad durations
        "max-age-weeks",
        "busy-timeout-zero",
        "max-age-zero-combined",
        "server-name-space",  # bad names
        "kernel-name-brackets",
        "kernel-name-digit",
        "cwd-absolute",  # what the key checks say, as patterns
        "cwd-parent-middle",
        "url-query-token",
        "url-userinfo",
        "url-no-host",
        "insecure-with-ca-bundle",  # a rule across keys
        "no-servers",  # the sections
        "servers-empty-map",
        "spec-missing",
    ],
)
def test_named_classes_are_rejected(name: str) -> None:
    paths = {case.name: case.path for case in CASES}
    if name not in paths:
        pytest.fail(f"no corpus case {name}; have: {sorted(paths)}")
    data = data_of(paths[name])
    assert data is not None and not validator().is_valid(data), name


SERVER = {"lab": {"url": "http://127.0.0.1:8888"}}


@pytest.mark.parametrize(
    ("kernel", "server", "valid"),
    [
        ({"spec": "python3", "setup": "import os", "setup_file": "s.py"}, {}, False),
        ({"spec": "python3", "setup": "", "setup_file": "s.py"}, {}, True),
        ({"spec": "python3"}, {"insecure": "yes", "ca_bundle": "ca.pem"}, False),
        ({"spec": "python3"}, {"insecure": True, "ca_bundle": "${CA:-}"}, True),
        ({"spec": "python3"}, {"insecure": "${INSECURE}", "ca_bundle": "ca.pem"}, True),
        ({"spec": "${SPEC}", "count": "${N:-2}", "max_age": "${AGE}"}, {}, True),
    ],
)
def test_rules_across_keys(kernel: dict[str, Any], server: dict[str, Any], valid: bool) -> None:
    """Literal contradictions are refused; what a ${VAR} may become is left to the checker."""
    data = {"servers": {"lab": {**SERVER["lab"], **server}}, "kernels": {"etl": kernel}}
    assert validator().is_valid(data) is valid
