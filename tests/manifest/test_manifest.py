"""The manifest format: good manifests (table-style), exact error messages and positions,
variables, durations and addresses. The broken-manifest corpus is test_corpus.py."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import certifi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from kernelform.address import Address, parse_address
from kernelform.duration import (
    DURATION_EXAMPLES,
    DURATION_PATTERN,
    format_duration,
    parse_duration,
)
from kernelform.errors import ManifestError, Problem
from kernelform.manifest import (
    Desired,
    HubConfig,
    KernelDecl,
    KernelKeys,
    Manifest,
    ServerConfig,
    ServerKeys,
    load_manifest,
    parse_manifest,
)
from kernelform.manifest.keys import URL_PATTERN, Key
from kernelform.masking import Secret
from tests.support.kf import one_error

EXAMPLES = Path(__file__).parents[2] / "examples"
LAB = "servers:\n  lab:\n    url: http://127.0.0.1:8888\n"


def parse(text: str, environ: dict[str, str] | None = None) -> Manifest:
    return parse_manifest(text, filename="k.yaml", environ={} if environ is None else environ)


def flat(desired: Desired) -> dict[str, Any]:
    """A desired address as one flat mapping: its keys, with the server resolved."""
    return {
        **desired.keys.model_dump(),
        "address": desired.address,
        "kernel": desired.kernel,
        "index": desired.index,
        "server": desired.server,
    }


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse(text, environ)
    return [str(p) for p in info.value.problems]


# --- good manifests -------------------------------------------------------------------------

GOOD: list[tuple[str, str, dict[str, str], list[dict[str, Any]]]] = [
    (
        "plain kernel, all defaults",
        LAB + "kernels:\n  etl:\n    spec: python3\n",
        {},
        [
            dict(
                address="etl",
                kernel="etl",
                index=None,
                server="lab",
                spec="python3",
                cwd=None,
                revision=None,
                max_age=None,
                busy_timeout=None,
                protect=True,
            )
        ],
    ),
    (
        "count expands in order",
        LAB + "kernels:\n  w:\n    spec: ir\n    count: 3\n",
        {},
        [
            dict(address="w[0]", kernel="w", index=0),
            dict(address="w[1]", kernel="w", index=1),
            dict(address="w[2]", kernel="w", index=2),
        ],
    ),
    ("count 0 declares nothing", LAB + "kernels:\n  w: {spec: ir, count: 0}\n", {}, []),
    (
        "count 1 is still indexed",
        LAB + "kernels:\n  w: {spec: ir, count: 1}\n",
        {},
        [dict(address="w[0]", index=0)],
    ),
    (
        "declaration order across kernels",
        LAB + "kernels:\n  b: {spec: x}\n  a: {spec: x, count: 2}\n  c: {spec: x}\n",
        {},
        [dict(address="b"), dict(address="a[0]"), dict(address="a[1]"), dict(address="c")],
    ),
    (
        "every setting",
        LAB + "kernels:\n  etl:\n    spec: python3\n    server: lab\n    cwd: pipelines/etl\n"
        "    revision: 7\n    max_age: 1d12h\n    busy_timeout: 90s\n    protect: false\n",
        {},
        [
            dict(
                address="etl",
                server="lab",
                cwd="pipelines/etl",
                revision="7",
                max_age=timedelta(hours=36),
                busy_timeout=timedelta(seconds=90),
                protect=False,
            )
        ],
    ),
    (
        "revision int -> str",
        LAB + "kernels:\n  a: {spec: x, revision: 1}\n",
        {},
        [{"revision": "1"}],
    ),
    (
        "revision float kept as written",
        LAB + "kernels:\n  a: {spec: x, revision: 1.10}\n",
        {},
        [{"revision": "1.10"}],
    ),
    (
        "revision date kept as written",
        LAB + "kernels:\n  a: {spec: x, revision: 2024-01-31}\n",
        {},
        [{"revision": "2024-01-31"}],
    ),
    (
        "revision string",
        LAB + "kernels:\n  a: {spec: x, revision: 'v2 (hotfix)'}\n",
        {},
        [{"revision": "v2 (hotfix)"}],
    ),
    (
        "variables with and without defaults",
        LAB + "kernels:\n  a:\n    spec: ${SPEC}\n    cwd: ${DIR:-work}/${SUB:-x}\n",
        {"SPEC": "ir", "SUB": "y"},
        [{"spec": "ir", "cwd": "work/y"}],
    ),
    (
        "an empty variable takes the default",
        LAB + "kernels:\n  a: {spec: '${SPEC:-python3}'}\n",
        {"SPEC": ""},
        [{"spec": "python3"}],
    ),
    (
        "count, protect and durations from variables",
        LAB + "kernels:\n  a:\n    spec: x\n    count: ${N:-2}\n    protect: ${P:-no}\n"
        "    max_age: ${AGE:-1h}\n",
        {"N": "3"},
        [
            {"index": 0, "protect": False, "max_age": timedelta(hours=1)},
            {"index": 1},
            {"index": 2},
        ],
    ),
    (
        "$$ is a literal dollar",
        LAB + "kernels:\n  a: {spec: x, cwd: 'cost$$report/$${NOT_A_VAR}'}\n",
        {},
        [{"cwd": "cost$report/${NOT_A_VAR}"}],
    ),
    (
        "empty strings mean unset",
        LAB + "kernels:\n  a: {spec: x, cwd: '', revision: '${R:-}', server: ''}\n",
        {},
        [{"cwd": None, "revision": None, "server": "lab"}],
    ),
    (
        "null settings mean unset",
        LAB + "kernels:\n  a:\n    spec: x\n    cwd:\n    count: ~\n    max_age: null\n",
        {},
        [{"address": "a", "cwd": None, "max_age": None}],
    ),
    (
        "explicit server among several",
        LAB + "  gpu:\n    url: https://gpu:8443\nkernels:\n  a: {spec: x, server: gpu}\n"
        "  b: {spec: x, server: lab}\n",
        {},
        [{"server": "gpu"}, {"server": "lab"}],
    ),
    ("kernels absent", LAB, {}, []),
    ("kernels null", LAB + "kernels:\n", {}, []),
    ("kernels empty", LAB + "kernels: {}\n", {}, []),
    (
        "names with dots, dashes, underscores",
        LAB + "kernels:\n  _a.b-c_1: {spec: python3.11}\n",
        {},
        [{"address": "_a.b-c_1", "spec": "python3.11"}],
    ),
    (
        "quoted numeric count is accepted",
        LAB + "kernels:\n  a: {spec: x, count: '2'}\n",
        {},
        [{"index": 0}, {"index": 1}],
    ),
    (
        "comments, BOM, CRLF and a document marker",
        "\ufeff# manifest\r\n---\r\nservers:\r\n  lab: {url: 'http://x'}\r\nkernels:\r\n"
        "  a: {spec: x}  # trailing\r\n...\r\n",
        {},
        [{"address": "a"}],
    ),
    (
        "anchors without aliases are fine",
        LAB + "kernels:\n  a: &base {spec: x}\n",
        {},
        [{"address": "a"}],
    ),
]


@pytest.mark.parametrize(
    ("text", "environ", "expected"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD]
)
def test_good_manifest(text: str, environ: dict[str, str], expected: list[dict[str, Any]]) -> None:
    desired = parse(text, environ).desired()
    assert len(desired) == len(expected)
    for got, want in zip(desired, expected, strict=True):
        assert isinstance(got, Desired)
        view = flat(got)
        assert {key: view[key] for key in want} == want


def test_server_settings(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    shutil.copy(certifi.where(), tmp_path / "certs" / "ca.pem")
    manifest = parse_manifest(
        "servers:\n"
        "  a: {url: 'http://a:8888', token: '${TOKEN}', prune: true}\n"
        "  b: {url: 'https://b/jupyter/', insecure: true}\n"
        "  c: {url: 'https://c', ca_bundle: certs/ca.pem, prune: 'off'}\n"
        "  d: {url: 'HTTPS://D:443'}\n",
        filename=str(tmp_path / "k.yaml"),
        environ={"TOKEN": "s3cret"},
    )
    bundle = str(tmp_path / "certs" / "ca.pem")
    assert manifest.servers == {
        "a": ServerConfig(name="a", url="http://a:8888", token=Secret("s3cret"), prune=True),
        "b": ServerConfig(name="b", url="https://b/jupyter/", insecure=True),
        "c": ServerConfig(name="c", url="https://c", ca_bundle=bundle, prune=False),
        "d": ServerConfig(name="d", url="HTTPS://D:443", token=Secret(""), prune=False),
    }
    assert [s.verify for s in manifest.servers.values()] == [True, False, bundle, True]
    assert "s3cret" not in repr(manifest.servers["a"])
    assert "s3cret" not in repr(manifest)


def test_kernel_decl_and_manifest_fields() -> None:
    text = LAB + "kernels:\n  etl: {spec: python3, count: 2, revision: 3, max_age: 24h}\n"
    manifest = parse(text)
    assert manifest.path == "k.yaml"
    assert manifest.digest == hashlib.sha256(text.encode()).hexdigest()
    assert manifest.kernels == {
        "etl": KernelDecl(
            name="etl",
            server="lab",
            keys=KernelKeys(spec="python3", count=2, revision="3", max_age=timedelta(days=1)),
        )
    }


def test_results_are_frozen() -> None:
    manifest = parse(LAB + "kernels:\n  a: {spec: x}\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.path = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.kernels["b"] = manifest.kernels["a"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.desired()[0].spec = "y"  # type: ignore[misc]


def test_digest_is_of_the_bytes() -> None:
    a = parse_manifest(LAB.encode(), filename="k.yaml", environ={})
    b = parse_manifest(LAB + "# a comment\n", filename="k.yaml", environ={})
    assert a.digest == hashlib.sha256(LAB.encode()).hexdigest()
    assert a.digest != b.digest
    assert a.servers == b.servers


MEANING_BASE = (
    "servers:\n  lab: {url: 'http://lab:8888', token: t}\n"
    "hubs:\n  campus: {url: 'https://hub.example.edu/', token: t, users: [ana]}\n"
    "kernels:\n  etl: {spec: python3, server: lab}\n"
    "  tutor: {spec: python3, hub: campus, setup: 'x = 1'}\n"
)
# Values to try for a field, until one its model accepts differs from the current one.
OTHER_VALUES = ("http://other.example/", "other", True, False, 7, timedelta(minutes=7), ("bob",))


def changed(model: BaseModel, field: str) -> BaseModel:
    """*model* with *field* set to another value its model accepts."""
    written = {key: getattr(model, key) for key in model.model_fields_set}
    for value in OTHER_VALUES:
        try:
            other = type(model).model_validate({**written, field: value})
        except ValidationError:
            continue
        if getattr(other, field) != getattr(model, field):
            return other
    raise AssertionError(f"no other value for {type(model).__name__}.{field}: add one")


def entries(manifest: Manifest) -> list[tuple[str, str, BaseModel]]:
    """Every model in *manifest*: (section, name, model)."""
    return [
        *(("servers", name, server) for name, server in manifest.servers.items()),
        *(("hubs", name, hub) for name, hub in manifest.hubs.items()),
        *(("kernels", name, decl.keys) for name, decl in manifest.kernels.items()),
    ]


def with_entry(manifest: Manifest, section: str, name: str, model: BaseModel) -> Manifest:
    """*manifest* with one entry's model replaced (a kernel's keys, for a kernel)."""
    if section == "kernels":
        decl = dataclasses.replace(manifest.kernels[name], keys=model)
        return dataclasses.replace(manifest, kernels={**manifest.kernels, name: decl})
    entries = {**getattr(manifest, section), name: model}
    return dataclasses.replace(manifest, **{section: entries})


def test_meaning_covers_every_field_but_the_secret_ones() -> None:
    """No field of any model can be left out of the digest a saved plan is checked with:
    each one's change changes it, but a token's (secret) does not."""
    manifest = parse(MEANING_BASE)
    seen: set[tuple[str, str]] = set()
    for section, name, model in entries(manifest):
        for field, info in type(model).model_fields.items():
            other = with_entry(manifest, section, name, changed(model, field))
            secret = any(isinstance(meta, Key) and meta.secret for meta in info.metadata)
            assert (other.meaning == manifest.meaning) is secret, (section, name, field)
            seen.add((type(model).__name__, field))
    for name, decl in manifest.kernels.items():  # what reading a kernel resolved
        for field in dataclasses.fields(decl):
            if field.compare and field.name != "keys":
                kernels = {**manifest.kernels, name: dataclasses.replace(decl, **{field.name: "x"})}
                other = dataclasses.replace(manifest, kernels=kernels)
                assert other.meaning != manifest.meaning, (name, field.name)
    assert {model for model, _ in seen} == {"ServerConfig", "HubConfig", "KernelKeys"}
    assert ("HubConfig", "token") in seen and ("HubConfig", "start_timeout") in seen


def test_a_key_added_to_a_model_is_in_the_meaning() -> None:
    """A new hub key needs no edit of ``meaning`` to make a saved plan stale."""

    class WiderHub(HubConfig):
        future_key: Annotated[str, Key("a string")] = "a"

    manifest = parse(MEANING_BASE)
    hub = manifest.hubs["campus"]
    written = {key: getattr(hub, key) for key in hub.model_fields_set}
    one, two = (
        with_entry(
            manifest, "hubs", "campus", WiderHub.model_validate({**written, "future_key": v})
        )
        for v in ("a", "b")
    )
    assert one.meaning != two.meaning


def test_examples_validate_without_environment() -> None:
    paths = sorted(EXAMPLES.glob("*.yaml"))
    assert {p.name for p in paths} >= {"basic.yaml", "pool.yaml", "multi-server.yaml"}
    for path in paths:  # any example added later must validate too
        load_manifest(path, environ={})
    multi = load_manifest(EXAMPLES / "multi-server.yaml", environ={})
    assert multi.servers["gpu"].prune and not multi.servers["lab"].prune
    assert multi.servers["gpu"].verify is True
    assert multi.kernels["training"].keys.protect is False
    assert multi.kernels["reports"].keys.cwd == "cost$report"
    pool = load_manifest(EXAMPLES / "pool.yaml", environ={"JUPYTER_URL": "https://hub/user/me"})
    assert [d.address for d in pool.desired()] == ["workers[0]", "workers[1]", "workers[2]"]
    assert pool.servers["lab"].url == "https://hub/user/me"


def test_load_resolves_ca_bundle_next_to_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "kernelform.yaml"
    shutil.copy(certifi.where(), tmp_path / "ca.pem")
    path.write_text(
        "servers:\n  a: {url: 'https://a', ca_bundle: ca.pem}\n"
        f"  b: {{url: 'https://b', ca_bundle: '{certifi.where()}'}}\n"
    )
    manifest = load_manifest(path, environ={})
    assert manifest.servers["a"].verify == str(tmp_path / "ca.pem")
    assert manifest.servers["b"].verify == certifi.where()
    assert manifest.path == str(path)


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFTEST_SPEC", "julia-1.10")
    manifest = parse_manifest(LAB + "kernels:\n  a: {spec: '${KFTEST_SPEC}'}\n", filename="k")
    assert manifest.kernels["a"].keys.spec == "julia-1.10"


# --- errors: exact messages and positions ---------------------------------------------------

ERRORS: list[tuple[str, str, dict[str, str], list[str]]] = [
    (
        "unknown key with a suggestion",
        LAB + "kernels:\n  etl:\n    spec: python3\n    specs: ir\n",
        {},
        ["k.yaml:7:5: unknown key 'specs' in kernel 'etl'; did you mean 'spec'?"],
    ),
    (
        "a misspelt required key is not also reported missing",
        LAB + "kernels:\n  etl:\n    specs: ir\n",
        {},
        ["k.yaml:6:5: unknown key 'specs' in kernel 'etl'; did you mean 'spec'?"],
    ),
    (
        "wrong types",
        LAB + "kernels:\n  etl:\n    spec: python3\n    count: two\n    protect: maybe\n",
        {},
        [
            "k.yaml:7:12: count must be an integer, got 'two'",
            "k.yaml:8:14: protect must be true or false, got 'maybe'",
        ],
    ),
    (
        "all the problems of a file at once, sorted",
        "servers:\n  lab:\n    url: ftp://x\n    prune: 3\nkernels:\n  a:\n    count: -1\n"
        "  b:\n    spec: x\n    server: lba\n    max_age: 5x\n",
        {},
        [
            "k.yaml:3:10: url must start with http:// or https://, got 'ftp://x'",
            "k.yaml:4:12: prune must be true or false, got 3",
            "k.yaml:6:3: kernel 'a' is missing required key 'spec'",
            "k.yaml:7:12: count must not be negative, got -1",
            "k.yaml:10:13: kernel 'b' names unknown server 'lba'; did you mean 'lab'? servers: lab",
            "k.yaml:11:14: invalid duration '5x': use a whole number followed by s, m, h or d,"
            " e.g. 30m",
        ],
    ),
    (
        "count over the limit",
        LAB + "kernels:\n  a: {spec: x, count: 1000000}\n",
        {},
        ["k.yaml:5:23: count 1000000 is over the limit of 1000"],
    ),
    (
        "server omitted with two servers",
        LAB + "  gpu: {url: 'http://g'}\nkernels:\n  a: {spec: x}\n",
        {},
        [
            "k.yaml:6:3: kernel 'a' does not say which server it runs on, and there are 2 "
            "(lab, gpu); add e.g. 'server: lab'"
        ],
    ),
    (
        "undefined variable, located at the reference",
        "servers:\n  lab:\n    url: http://${HOST}:8888\n    token: ${JUPYTER_TOKEN}\n",
        {"HOST": "h"},
        [
            "k.yaml:4:12: undefined variable JUPYTER_TOKEN; set it or write "
            "${JUPYTER_TOKEN:-default}"
        ],
    ),
    (
        "undefined variable inside a quoted value",
        "servers:\n  lab:\n    url: 'http://h:${PORT}'\n",
        {},
        ["k.yaml:3:20: undefined variable PORT; set it or write ${PORT:-default}"],
    ),
    (
        "lone dollar",
        LAB + "kernels:\n  a: {spec: x, cwd: a$b}\n",
        {},
        ["k.yaml:5:22: a '$' must start ${NAME} or ${NAME:-default}; write $$ for a '$'"],
    ),
    (
        "no servers",
        "kernels:\n  a: {spec: x}\n",
        {},
        ["k.yaml:1:1: the manifest declares no servers; add a 'servers' mapping (or 'hubs')"],
    ),
    (
        "empty file",
        "",
        {},
        ["k.yaml:1:1: the manifest is empty"],
    ),
    (
        "root not a mapping",
        "- servers\n",
        {},
        ["k.yaml:1:1: the manifest must be a mapping with 'servers' and 'kernels', got a list"],
    ),
    (
        "duplicate key",
        LAB + "    url: http://other\n",
        {},
        ["k.yaml:4:5: duplicate key 'url' in server 'lab' (first at line 3)"],
    ),
    (
        "tab indentation",
        "servers:\n\tlab: {}\n",
        {},
        ["k.yaml:2:1: tab character here; YAML must be indented with spaces"],
    ),
    (
        "alias",
        LAB + "kernels:\n  a: &x {spec: p}\n  b: *x\n",
        {},
        ["k.yaml:6:6: YAML aliases are not supported (found *x); write the value out in full"],
    ),
    (
        "syntax error stops at the first",
        "servers: [\nkernels: {a: {spec: 3}}\n",
        {},
        [
            "k.yaml:3:1: YAML syntax error: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence at line 1)"
        ],
    ),
    (
        "empty value reported at its key",
        "servers:\n  lab:\n    url:\n",
        {},
        ["k.yaml:3:5: url must be a string, got null"],
    ),
    (
        "insecure and ca_bundle",
        "servers:\n  lab: {url: 'https://x', ca_bundle: c.pem, insecure: yes}\n",
        {},
        ["k.yaml:2:55: insecure: true and ca_bundle contradict each other; keep one"],
    ),
]


@pytest.mark.parametrize(
    ("text", "environ", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_error(text: str, environ: dict[str, str], expected: list[str]) -> None:
    assert problems(text, environ) == expected


def test_error_is_one_problem_per_line_in_str() -> None:
    with pytest.raises(ManifestError) as info:
        parse(LAB + "kernels:\n  a: {spec: 1, count: x}\n")
    assert str(info.value) == (
        "k.yaml:5:13: spec must be a string, got 1; put it in quotes\n"
        "k.yaml:5:23: count must be an integer, got 'x'"
    )
    assert all(isinstance(p, Problem) for p in info.value.problems)


@pytest.mark.parametrize(
    "token",
    ["12345678", "[a-secret, b-secret]", "{v: the-secret}", "'${the-secret}'", "'a$secret'"],
)
def test_token_value_never_in_a_message(token: str) -> None:
    text = f"servers:\n  lab:\n    url: http://x\n    token: {token}\n"
    messages = "\n".join(problems(text))
    assert messages.startswith("k.yaml:4:")
    for word in ("12345678", "secret"):
        assert word not in messages


# --- variables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("${A}", {"A": ""}, ""),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A:-d}", {"A": "x"}, "x"),
        ("${A:-}", {}, ""),
        ("${A:-a:b/c d}", {}, "a:b/c d"),
        ("$$", {}, "$"),
        ("$${A}", {"A": "x"}, "${A}"),
        ("$$$${A}", {"A": "x"}, "$${A}"),
        ("$$$$${A}", {"A": "x"}, "$$x"),
        ("$$${A}", {"A": "x"}, "$x"),
        ("${A}${B}-${A}", {"A": "1", "B": "2"}, "12-1"),
        ("pre ${A_1} post", {"A_1": "x"}, "pre x post"),
        ("${A}", {"A": "${B}"}, "${B}"),  # values are not expanded again
    ],
)
def test_expansion(value: str, environ: dict[str, str], expected: str) -> None:
    text = LAB + f"kernels:\n  a: {{spec: x, revision: '{value}'}}\n"
    assert parse(text, environ).kernels["a"].keys.revision == (expected or None)


# --- durations and addresses --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("24h", 86400),
        ("7d", 7 * 86400),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("2d30s", 172830),
        (" 5m ", 300),
        ("0h1m", 60),
        ("36500d", 36500 * 86400),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5x", "invalid duration '5x': use a whole number followed by s, m, h or d, e.g. 30m"),
        ("", "invalid duration '': use a whole number followed by s, m, h or d, e.g. 30m"),
        ("30", "invalid duration '30': use"),
        ("1.5h", "invalid duration '1.5h': use"),
        ("-5m", "invalid duration '-5m': use"),
        ("30m1h", "invalid duration '30m1h': use"),
        ("1h 30m", "invalid duration '1h 30m': use"),
        ("0s", "invalid duration '0s': it must be more than zero"),
        ("36501d", "invalid duration '36501d': over the limit of 36500d"),
        ("9" * 30 + "s", "invalid duration '" + "9" * 30 + "s': over the limit of 36500d"),
        ("x" * 100, "invalid duration '" + "x" * 39 + "…'"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value).startswith(message)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789dhms x\t", max_size=14) | st.sampled_from(DURATION_EXAMPLES))
def test_duration_pattern_is_what_parse_duration_accepts(text: str) -> None:
    """The schema's pattern and the parser are one grammar: they agree on every text but
    one over the upper limit (the pattern does not count)."""
    try:
        parse_duration(text)
        accepted = True
    except ValueError as e:
        accepted = "over the limit" in str(e)
    assert (re.search(DURATION_PATTERN, text) is not None) is accepted, text


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(seconds=90), "1m30s"),
        (timedelta(days=1), "1d"),
        (timedelta(days=1, hours=2), "1d2h"),
        (timedelta(seconds=93784), "1d2h3m4s"),
        (timedelta(0), "0s"),
        (timedelta(milliseconds=999), "0s"),
        (timedelta(minutes=-5), "-5m"),
        (timedelta(hours=48), "2d"),
    ],
)
def test_format_duration(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


@pytest.mark.parametrize("seconds", [1, 59, 60, 61, 3599, 3600, 86399, 86400, 90061, 10**7])
def test_format_parse_round_trip(seconds: int) -> None:
    td = timedelta(seconds=seconds)
    assert parse_duration(format_duration(td)) == td


@pytest.mark.parametrize("key", ["health_timeout", "ready_timeout", "max_age", "busy_timeout"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_zero_duration_says_more_than_zero(
    key: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "k.yaml"
    manifest.write_text(
        "servers:\n  lab: {url: 'http://127.0.0.1:8888'}\n"
        f"kernels:\n  etl:\n    spec: python3\n    {key}: {value}\n"
    )
    line = one_error(["validate", "-f", str(manifest)], capsys)
    col = len(f"    {key}: ") + 1
    assert line == f"Error: {manifest}:6:{col}: {key} must be more than zero, e.g. 30s, got {value}"


def test_addresses_of_desired_parse_back() -> None:
    manifest = parse(LAB + "kernels:\n  a: {spec: x, count: 2}\n  b: {spec: x}\n")
    assert [parse_address(d.address) for d in manifest.desired()] == [
        Address("a", 0),
        Address("a", 1),
        Address("b", None),
    ]


@pytest.mark.parametrize(
    ("count", "message"),
    [
        ("'00000000000002'", None),
        ("'+3'", None),
        ("'-99999999999'", "count must not be negative, got -99999999999"),
        ("'99999999999'", "count 99999999999 is over the limit of 1000"),
        ("-0", None),
    ],
)
def test_count_from_text(count: str, message: str | None) -> None:
    text = LAB + f"kernels:\n  a: {{spec: x, count: {count}}}\n"
    if message is None:
        assert parse(text).kernels["a"].keys.count in (0, 2, 3)
    else:
        assert problems(text) == [f"k.yaml:5:23: {message}"]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        ("2.0", 2),
        ("1e3", 1000),
        ("-0.0", 0),
        ("2.5", "count must be an integer, got 2.5"),
        (".inf", "count must be an integer, got inf"),
        ("-2.0", "count must not be negative, got -2"),
        ("1e4", "count 10000 is over the limit of 1000"),
        ("1e300", "count 1e+300 is over the limit of 1000"),
    ],
)
def test_count_as_a_whole_float(count: str, expected: int | str) -> None:
    """JSON Schema counts 2.0 as the integer 2 (an editor accepts it), and so does validate."""
    text = LAB + f"kernels:\n  a: {{spec: x, count: {count}}}\n"
    if isinstance(expected, int):
        assert parse(text).kernels["a"].keys.count == expected
    else:
        assert problems(text) == [f"k.yaml:5:23: {expected}"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_file_is_refused() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest("/dev/zero")
    assert [str(p) for p in info.value.problems] == [
        "/dev/zero:1:1: the manifest is over the 256 KiB limit"
    ]


# --- the top-level state key ------------------------------------------------------------


def test_state_key_is_expanded_and_kept_secret() -> None:
    text = LAB + "state: postgresql://kf:${PGPW}@db:5432/kernelform\n"
    manifest = parse(text, {"PGPW": "s3cret"})
    assert manifest.state is not None
    assert manifest.state.reveal() == "postgresql://kf:s3cret@db:5432/kernelform"
    assert "s3cret" not in repr(manifest) and "s3cret" not in str(manifest)
    assert parse(LAB).state is None
    assert parse(LAB + "state: ''\n").state is None


def test_state_key_problems_never_show_its_value() -> None:
    assert problems(LAB + "state: 5432\n") == [
        "k.yaml:4:8: state must be a string (a file path or a postgresql:// URL),"
        " got a number; put it in quotes"
    ]
    assert problems(LAB + "state: postgresql://kf:${PGPW@db/k\n") == [
        "k.yaml:4:24: unterminated '${': close it with '}', or write $$ for a '$'"
    ]
    assert problems(LAB + "statefile: x\n") == [
        "k.yaml:4:1: unknown key 'statefile' at the top level; did you mean 'state'?"
    ]


# --- hubs (fleets) ----------------------------------------------------------------------------

HUB = (
    "hubs:\n"
    "  campus:\n"
    "    url: https://hub.example.edu/\n"
    "    token: ${HUB_TOKEN}\n"
    "    groups: [physics-101]\n"
    "    users: [ana, 20231234]\n"
)


def test_hub_settings_and_defaults() -> None:
    manifest = parse(
        HUB + "    start_servers: yes\n    start_timeout: 90s\n    prune: true\n"
        "  lab-hub: {url: 'http://127.0.0.1:8000', insecure: true}\n"
        "kernels:\n  tutor: {spec: python3, hub: campus, count: 2}\n",
        {"HUB_TOKEN": "s3cret-hub"},
    )
    assert manifest.servers == {}
    campus = manifest.hubs["campus"]
    assert (campus.name, campus.url, campus.token) == (
        "campus",
        "https://hub.example.edu/",
        Secret("s3cret-hub"),
    )
    assert campus.groups == ("physics-101",) and campus.users == ("ana", "20231234")
    assert campus.start_servers and campus.prune and campus.verify is True
    assert campus.start_timeout == timedelta(seconds=90)
    other = manifest.hubs["lab-hub"]
    assert (other.groups, other.users, other.start_servers, other.prune) == ((), (), False, False)
    assert other.selects_everyone and not campus.selects_everyone
    assert other.start_timeout == timedelta(minutes=5) and other.verify is False
    assert "s3cret-hub" not in repr(manifest)
    decl = manifest.kernels["tutor"]
    assert (decl.server, decl.hub) == (None, "campus")


def test_hub_kernels_expand_per_selected_user() -> None:
    manifest = parse(
        LAB + HUB + "kernels:\n"
        "  tutor: {spec: python3, hub: campus, count: 2}\n  solo: {spec: python3, hub: campus}\n"
        "  etl: {spec: python3, server: lab}\n",
        {"HUB_TOKEN": "t"},
    )
    members = {"campus": ["ana", "ana@uni.edu"]}
    addresses = [(d.address, d.server, d.user) for d in manifest.desired(members)]
    assert addresses == [
        ("tutor[0]@ana", "campus@ana", "ana"),
        ("tutor[1]@ana", "campus@ana", "ana"),
        ("tutor[0]@ana@uni.edu", "campus@ana@uni.edu", "ana@uni.edu"),
        ("tutor[1]@ana@uni.edu", "campus@ana@uni.edu", "ana@uni.edu"),
        ("solo@ana", "campus@ana", "ana"),
        ("solo@ana@uni.edu", "campus@ana@uni.edu", "ana@uni.edu"),
        ("etl", "lab", None),
    ]
    # Without members (validate, no hub asked): only the servers' kernels.
    assert [d.address for d in manifest.desired()] == ["etl"]
    assert parse_address("solo[1]@ana@uni.edu") == Address("solo", 1, "ana@uni.edu")


def test_only_hub_kernel_place_may_be_left_out() -> None:
    manifest = parse(HUB + "kernels:\n  tutor: {spec: python3, count: 2}\n", {"HUB_TOKEN": "t"})
    assert manifest.kernels["tutor"].hub == "campus"
    assert [d.address for d in manifest.desired({"campus": ["bob"]})] == [
        "tutor[0]@bob",
        "tutor[1]@bob",
    ]


HUB_ERRORS: list[tuple[str, str, list[str]]] = [
    (
        "kernel names both a server and a hub",
        LAB + HUB + "kernels:\n  t: {spec: x, server: lab, hub: campus}\n",
        ["k.yaml:11:29: kernel 't' names both server 'lab' and hub 'campus'; keep one"],
    ),
    (
        "unknown hub, with a near miss",
        LAB + HUB + "kernels:\n  t: {spec: x, hub: campsu}\n",
        [
            "k.yaml:11:21: kernel 't' names unknown hub 'campsu'; did you mean 'campus'? "
            "hubs: campus"
        ],
    ),
    (
        "a hub named where only servers exist",
        LAB + "kernels:\n  t: {spec: x, hub: campus}\n",
        ["k.yaml:5:21: kernel 't' names unknown hub 'campus'; no hub is declared"],
    ),
    (
        "place left out with a server and a hub",
        LAB + HUB + "kernels:\n  t: {spec: x}\n",
        [
            "k.yaml:11:3: kernel 't' does not say where it runs, and there are 1 server(s) "
            "(lab) and 1 hub(s) (campus); add e.g. 'server: lab' or 'hub: campus'"
        ],
    ),
    (
        "place left out with two hubs",
        HUB + "  other: {url: 'http://h'}\nkernels:\n  t: {spec: x}\n",
        [
            "k.yaml:9:3: kernel 't' does not say where it runs, and there are 2 hub(s) "
            "(campus, other); add e.g. 'hub: campus'"
        ],
    ),
    (
        "list items: a mapping, a boolean, a duplicate, a space in a user name",
        "hubs:\n  h:\n    url: http://h\n    groups: [a, {b: 1}]\n    users: [ana, true]\n"
        "  g:\n    url: http://g\n    users:\n      - bob\n      - bob\n"
        "  i:\n    url: http://i\n    users: ['a b', '']\n",
        [
            "k.yaml:4:17: groups must be a list of group names, got a mapping in it",
            "k.yaml:5:18: users must be a list of user names, got 'true' in it",
            "k.yaml:9:7: users lists 'bob' twice",
            # One problem per key: the empty name after it is reported once this is fixed.
            "k.yaml:13:13: user name 'a b' cannot be part of a kernel address (no spaces or '/')",
        ],
    ),
    (
        "hub keys: wrong types, unknown key, bad name",
        "hubs:\n  'bad@name': {url: 'http://h'}\n  h:\n    url: ftp://h\n    groups: physics\n"
        "    start_servers: sometimes\n    start_timeout: 10\n    prunes: true\n",
        [
            "k.yaml:2:3: invalid hub name 'bad@name': a name starts with a letter or '_' and has "
            "only letters, digits, '_', '.' and '-'",
            "k.yaml:4:10: url must start with http:// or https://, got 'ftp://h'",
            "k.yaml:5:13: groups must be a list of group names, got 'physics'",
            "k.yaml:6:20: start_servers must be true or false, got 'sometimes'",
            "k.yaml:7:20: start_timeout must be a duration like 30m, got 10; add a unit, e.g. 10s",
            "k.yaml:8:5: unknown key 'prunes' in hub 'h'; did you mean 'prune'?",
        ],
    ),
    (
        "hubs but nothing at all declared in them, and no servers",
        "hubs: {}\nkernels:\n  t: {spec: x}\n",
        ["k.yaml:1:1: the manifest declares no servers; add a 'servers' mapping (or 'hubs')"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [e[1:] for e in HUB_ERRORS], ids=[e[0] for e in HUB_ERRORS]
)
def test_hub_error(text: str, expected: list[str]) -> None:
    assert problems(text, {"HUB_TOKEN": "t"}) == expected


URL_PARSER_ONLY = ("url has no host", "url has an invalid port", "url is not a valid URL")


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["http://", "HTTPs://", "https:/", "ftp://", "//", "http", ""]),
    st.text(alphabet="ab1:@/[]?# \t.-", max_size=12),
)
def test_url_pattern_is_what_the_url_check_accepts(scheme: str, rest: str) -> None:
    """The schema's url pattern and _check_url share their rules: every url the check
    accepts matches the pattern, and one the pattern matches is refused only for what
    needs a URL parser (host, port)."""
    url = scheme + rest
    try:
        ServerKeys.model_validate({"url": url})
        refused = ""
    except ValidationError as e:
        refused = str(e.errors()[0]["ctx"]["error"])
    matched = re.search(URL_PATTERN, url) is not None
    if not refused:
        assert matched, url
    elif matched:
        assert refused.startswith(URL_PARSER_ONLY), (url, refused)


def test_hub_token_never_in_messages() -> None:
    for value in ("[${T}]", "{a: '${T}'}", "4242424242"):
        text = f"hubs:\n  h:\n    url: http://h\n    token: {value}\n"
        with pytest.raises(ManifestError) as info:
            parse(text, {"T": "hub-secret-42"})
        assert "hub-secret-42" not in str(info.value) and "4242424242" not in str(info.value)
        assert len(info.value.problems) == 1


def test_a_server_key_naming_a_hub_says_to_write_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "k.yaml"
    manifest.write_text(
        "hubs:\n  campus:\n    url: http://127.0.0.1:8000\n    token: t\n"
        "kernels:\n  tutor:\n    spec: python3\n    server: campus\n"
    )
    assert one_error(["validate", "-f", str(manifest)], capsys) == (
        f"Error: {manifest}:8:13: kernel 'tutor' names unknown server 'campus'; campus is a hub:"
        " write hub: campus; no server is declared"
    )
