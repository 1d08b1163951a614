"""The manifest's keys, declared once.

Each section entry (a server, a hub, a kernel) is a strict pydantic model; each key is
one annotated field that carries everything said about it: its type and
default, how a value is read (``"yes"`` is true, ``""`` is "not set", ``30m``
is a duration), what a valid value looks like in a message (``Key.expected``),
whether it is a secret, its description, and its JSON Schema. The checker
validates with these models, ``kernelform schema`` prints their schema, the
results are these models (a server or hub is its keys' model plus its name,
see ``model.py``), and the saved plan's digest dumps them, so that a key
declared here exists everywhere and cannot be described in two different ways.

Values reach the models after ``${VAR}`` expansion, so a string may stand for
any scalar (``count: ${N:-2}``); the schema therefore also accepts a string
holding ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.fields import FieldInfo

from kernelform.address import NAME_PATTERN
from kernelform.duration import (
    DURATION_EXAMPLES,
    DURATION_PATTERN,
    format_duration,
    parse_duration,
)
from kernelform.masking import Secret
from kernelform.wording import clip, quoted

MAX_COUNT = 1000
DEFAULT_READY_TIMEOUT = timedelta(seconds=60)
DEFAULT_HEALTH_TIMEOUT = timedelta(seconds=10)
SPEC_PATTERN = r"[A-Za-z0-9._-]+"  # what jupyter_client accepts as a kernelspec name
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
_SPEC = re.compile(SPEC_PATTERN)


@dataclass(frozen=True)
class Key:
    """What a message says about a key: a valid value, and whether to hide the value."""

    expected: str
    secret: bool = False
    quote_hint: bool = False  # a number where text is meant: suggest quotes (cwd: 2024)
    verbatim_numbers: bool = False  # a number is kept as written: 1.10 stays "1.10"
    sequence: bool = False  # a YAML list of scalars (names), each kept as its text


def key_of(field: FieldInfo) -> Key:
    """The ``Key`` annotation of a model field."""
    for meta in field.metadata:
        if isinstance(meta, Key):
            return meta
    raise LookupError(f"field {field!r} has no Key annotation")


def is_secret(field: FieldInfo) -> bool:
    """Whether a field is a secret key (one without a ``Key``, a name, is not)."""
    return any(isinstance(meta, Key) and meta.secret for meta in field.metadata)


# --- how values are read ------------------------------------------------------------


def _bool_from_text(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return value


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _duration(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
        # not "add a unit, e.g. 0s": 0s is refused too
        raise ValueError(f"{info.field_name} must be more than zero, e.g. 30s, got {value}")
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"{info.field_name} must be a duration like 30m, got {value}; add a unit, e.g. {value}s"
        )
    return value


def _duration_or(default: timedelta) -> Callable[[Any, ValidationInfo], Any]:
    """A duration where null stands for *default* (a key that always has a value)."""

    def read(value: Any, info: ValidationInfo) -> Any:
        return default if value is None else _duration(value, info)

    return read


def _number_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _empty_is_none(value)


def _count_as_integer(value: Any) -> Any:
    """A count written as text (``${N:-2}``), or as a whole float (``2.0``, ``1e3``: JSON
    Schema, and so an editor, sees the integer 2 there), is that integer; 2.5 is not."""
    if isinstance(value, float) and value.is_integer():
        if abs(value) < 2**53:  # an exact integer
            return int(value)
        if value < 0:  # far past the limit, and shown as written (1e300), not in 300 digits
            raise ValueError(f"count must not be negative, got {value:g}")
        raise ValueError(f"count {value:g} is over the limit of {MAX_COUNT}")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
        text = value.strip()
        if len(text.lstrip("+-").lstrip("0")) > 9:  # int() of a huge string is slow
            if text.startswith("-"):
                raise ValueError(f"count must not be negative, got {clip(text)}")
            raise ValueError(f"count {clip(text)} is over the limit of {MAX_COUNT}")
        return int(text)
    return value


def _check_count(count: int | None) -> int | None:
    if count is not None and count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if count is not None and count > MAX_COUNT:
        raise ValueError(f"count {count} is over the limit of {MAX_COUNT}")
    return count


def _check_spec(spec: str) -> str:
    if not spec:
        raise ValueError("spec must not be empty")
    if not _SPEC.fullmatch(spec):
        raise ValueError(
            f"spec {quoted(spec)} is not a kernelspec name (letters, digits, '.', '_', '-')"
        )
    return spec


def _token(value: Any) -> Any:
    """A token as a ``Secret``, if it is text the Authorization header can carry; never
    echoed. Anything but text is left for the type check to report (by its kind only)."""
    return Secret(_check_token(value)) if isinstance(value, str) else value


def _check_token(token: str) -> str:
    """A token the Authorization header can carry; never echoed."""
    try:
        token.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            "token has characters an HTTP header cannot carry (beyond Latin-1)"
        ) from None
    if any(not c.isprintable() for c in token):
        raise ValueError("token has control characters (a line break?) a header cannot carry")
    return token


def _check_cwd(cwd: str | None) -> str | None:
    if cwd is None:
        return None
    if cwd.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", cwd):
        raise ValueError(f"cwd must be relative to the server root, got {quoted(cwd)}")
    if ".." in re.split(r"[\\/]", cwd):
        raise ValueError(f"cwd must stay inside the server root, got {quoted(cwd)}")
    return cwd


def _any_case(word: str) -> str:
    """A pattern matching *word* in any case (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# What a url must be, as patterns: _check_url checks each (with its own message), and
# URL_PATTERN, the schema's, joins them. What needs a URL parser (the user:password,
# the host, the port) only _check_url can tell; URL_PATTERN's parts for the first two
# are its nearest approximation.
_URL_SCHEME = _any_case("http") + "[sS]?://"  # http:// or https://, in any case
_URL_BLANK = r"\s"
_URL_QUERY = "?#"  # a pasted ?token=... or #fragment is never part of the server's URL
URL_PATTERN = (
    rf"^(?!.*[{_URL_BLANK}{_URL_QUERY}])(?!{_URL_SCHEME}[^/]*@)"
    rf"({_URL_SCHEME}[^/:]|.*\$\{{)"  # or a ${VAR}, which may stand for any of it
)


def _check_url(url: str) -> str:
    if not url:
        raise ValueError("url must not be empty")
    if re.search(_URL_BLANK, url):
        raise ValueError("url must not contain spaces")
    # None of these is echoed: a pasted URL may carry the token (?token=...).
    if re.search(f"[{_URL_QUERY}]", url):
        raise ValueError("url must not have a query or fragment; put the token in 'token'")
    try:
        parts = urlsplit(url)
    except ValueError as e:  # e.g. "Invalid IPv6 URL"
        raise ValueError(f"url is not a valid URL ({e}): {quoted(url)}") from None
    if "@" in parts.netloc:
        raise ValueError("url must not contain a user or password; put the token in 'token'")
    if not re.match(_URL_SCHEME, url):
        raise ValueError(f"url must start with http:// or https://, got {quoted(url)}")
    if not parts.hostname:
        raise ValueError(f"url has no host: {quoted(url)}")
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValueError(f"url has an invalid port: {quoted(url)}") from None
    return url


def _check_state(location: str | None) -> str | None:
    from kernelform.state.location import location_problem

    problem = None if location is None else location_problem(location)
    if problem is not None:
        raise ValueError(problem.replace("the state location", "state", 1))
    return location


# --- the JSON Schema of raw values (before ${VAR} expansion) ----------------------------

_VARIABLE_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"\$\{"}


def _words(words: tuple[str, ...]) -> str:
    return r"^\s*(" + "|".join(_any_case(w) for w in words) + r")\s*$"


_FLAG_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "boolean"},
        {"type": "string", "pattern": _words(TRUE_WORDS + FALSE_WORDS)},
        _VARIABLE_SCHEMA,
    ]
}
_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": DURATION_PATTERN},
        _VARIABLE_SCHEMA,
        {"type": "null"},
    ],
    "examples": list(DURATION_EXAMPLES),
}
_TEXT_SCHEMA: dict[str, Any] = {"type": ["string", "null"]}
# _check_cwd's rules: relative (no leading / or \, no drive letter), no '..' segment.
_CWD_SCHEMA: dict[str, Any] = {
    "type": ["string", "null"],
    "pattern": r"^(?![/\\]|[A-Za-z]:[/\\])(?!(.*[/\\])?\.\.([/\\]|$))",
}
# What a true flag looks like before expansion (for the rule on insecure and ca_bundle).
_TRUE_SCHEMA: dict[str, Any] = {
    "anyOf": [{"const": True}, {"type": "string", "pattern": _words(TRUE_WORDS)}]
}


def _described(schema: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema(schema)


# --- reusable key types ---------------------------------------------------------------

Flag = Annotated[bool, BeforeValidator(_bool_from_text), _described(_FLAG_SCHEMA)]
Text = Annotated[str | None, BeforeValidator(_empty_is_none), _described(_TEXT_SCHEMA)]
Duration = Annotated[timedelta | None, BeforeValidator(_duration), _described(_DURATION_SCHEMA)]


class _Section(BaseModel):
    # arbitrary types: a token is held as a Secret (checked with isinstance)
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )


class _Endpoint(_Section):
    """What reaching an HTTP service takes: a server's or a hub's keys alike."""

    # The checker refuses insecure: true with a ca_bundle; the schema says it too
    # (for literal values: a ${VAR} may expand to anything).
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["insecure", "ca_bundle"],
                "properties": {
                    "insecure": _TRUE_SCHEMA,
                    "ca_bundle": {"type": "string", "minLength": 1, "not": _VARIABLE_SCHEMA},
                },
            }
        }
    )

    url: Annotated[
        str,
        AfterValidator(_check_url),
        Key("a string"),
        _described({"type": "string", "pattern": URL_PATTERN}),
        Field(
            description="http(s) URL of the Jupyter server, with its path prefix if any "
            "(/user/ana/); for a hub, its public URL. Required."
        ),
    ]
    token: Annotated[
        Secret,
        BeforeValidator(_token),
        Key("a string", secret=True, quote_hint=True),
        _described({"type": "string"}),
        Field(
            description="API token, sent only in the Authorization header. Default: none.",
            repr=False,
        ),
    ] = Secret("")
    prune: Annotated[
        Flag,
        Key("true or false"),
        Field(
            description="true: live kernels not in the state are shut down, unless in use "
            "(on a hub: on each selected user's server). Default false."
        ),
    ] = False
    ca_bundle: Annotated[
        Text,
        Key("a string", quote_hint=True),
        Field(
            description="CA bundle (PEM) to verify the server's TLS certificate, relative to "
            "the manifest. It must exist and hold certificates."
        ),
    ] = None
    insecure: Annotated[
        Flag,
        Key("true or false"),
        Field(description="true skips TLS verification. Default false."),
    ] = False


class ServerKeys(_Endpoint):
    """One entry of ``servers:``: a Jupyter server reached over its REST API."""


def _check_names(names: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    if not names:  # a ${VAR} that expanded to nothing, say: never "everyone"
        raise ValueError(
            f"{info.field_name} is empty, which would select nobody; list names, or remove"
            " the key (with neither groups nor users, every user is selected)"
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{info.field_name} lists {quoted(name)} twice")
        seen.add(name)
    return names


def _check_name_item(name: str) -> str:
    if not name.strip():
        raise ValueError("a group or user name must not be empty")
    return name


def _check_user(name: str) -> str:
    if any(c.isspace() for c in name) or "/" in name:
        raise ValueError(
            f"user name {quoted(name)} cannot be part of a kernel address (no spaces or '/')"
        )
    return name


def _no_default_shown(schema: dict[str, Any]) -> None:
    """For a key that, left out, means what no written value does (``groups: []`` is
    refused, never "nobody"): the schema shows no default an editor would offer."""
    schema.pop("default", None)


_NAMES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "integer"}]},
}
GroupNames = Annotated[
    tuple[Annotated[str, AfterValidator(_check_name_item)], ...],
    AfterValidator(_check_names),
    _described(_NAMES_SCHEMA),
]
UserNames = Annotated[
    tuple[Annotated[str, AfterValidator(_check_name_item), AfterValidator(_check_user)], ...],
    AfterValidator(_check_names),
    _described(_NAMES_SCHEMA),
]

DEFAULT_START_TIMEOUT = timedelta(minutes=5)


class HubKeys(_Endpoint):
    """One entry of ``hubs:``: a JupyterHub whose users' servers hold kernels (a fleet)."""

    @field_validator("url")
    @classmethod
    def _public_url(cls, url: str) -> str:
        """The API's URL (…/hub/api/) answers JSON 404s that read as "no such group"."""
        if re.search(r"/hub/api(/|$)", urlsplit(url).path):
            raise ValueError(
                "url is the hub's API URL; give its public URL, the one users open, without"
                " /hub/api/ (kernelform adds it)"
            )
        return url

    groups: Annotated[
        GroupNames,
        Key("a list of group names", sequence=True),
        Field(
            description="select the members of these groups. Default: none.",
            json_schema_extra=_no_default_shown,
        ),
    ] = ()
    users: Annotated[
        UserNames,
        Key("a list of user names", sequence=True),
        Field(
            description="select these users (besides the groups' members). With neither "
            "groups nor users: every user of the hub.",
            json_schema_extra=_no_default_shown,
        ),
    ] = ()
    start_servers: Annotated[
        Flag,
        Key("true or false"),
        Field(
            description="true: start a selected user's stopped default server (and wait "
            "until it is ready) before starting its kernels. Default false: skip it."
        ),
    ] = False
    start_timeout: Annotated[
        timedelta,
        BeforeValidator(_duration_or(DEFAULT_START_TIMEOUT)),
        _described(_DURATION_SCHEMA),
        Key("a duration like 30m"),
        Field(
            description="how long to wait for a started server to be ready. "
            f"Default {format_duration(DEFAULT_START_TIMEOUT)}."
        ),
    ] = DEFAULT_START_TIMEOUT

    @property
    def selects_everyone(self) -> bool:
        """With neither groups nor users, every user of the hub is selected."""
        return not self.groups and not self.users


class KernelKeys(_Section):
    """One entry of ``kernels:``: a kernel (or ``count`` replicas) that must run."""

    # The checker refuses setup together with setup_file; the schema says it too.
    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["setup", "setup_file"],
                "properties": {
                    "setup": {"type": "string", "minLength": 1},
                    "setup_file": {"type": "string", "minLength": 1},
                },
            }
        }
    )

    spec: Annotated[
        str,
        AfterValidator(_check_spec),
        Key("a string", quote_hint=True),
        _described({"type": "string", "pattern": rf"^({SPEC_PATTERN}|.*\$\{{.*)$"}),
        Field(
            description="kernelspec name; checked against the server's api/kernelspecs at "
            "plan time. Required."
        ),
    ]
    server: Annotated[
        Text,
        Key("a string", quote_hint=True),
        Field(
            description="which server; may be left out when exactly one server and no hub "
            "is declared."
        ),
    ] = None
    hub: Annotated[
        Text,
        Key("a string", quote_hint=True),
        Field(
            description="which hub, instead of server: the kernel(s) run on every selected "
            "user's server, addressed NAME@USER. May be left out when exactly one hub and "
            "no server is declared."
        ),
    ] = None
    cwd: Annotated[
        str | None,
        BeforeValidator(_empty_is_none),
        AfterValidator(_check_cwd),
        _described(_CWD_SCHEMA),
        Key("a string", quote_hint=True),
        Field(
            description="working dir relative to the server root (no '..'). A change "
            "replaces the kernel."
        ),
    ] = None
    count: Annotated[
        int | None,
        BeforeValidator(_count_as_integer),
        AfterValidator(_check_count),
        Key("an integer"),
        _described(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
                    {"type": "string", "pattern": rf"^\s*\+?0*([0-9]{{1,3}}|{MAX_COUNT})\s*$"},
                    _VARIABLE_SCHEMA,
                    {"type": "null"},
                ]
            }
        ),
        Field(
            description=f"replicas NAME[0]…NAME[count-1]; 0 declares none; at most "
            f"{MAX_COUNT}. Without count the address is plain NAME."
        ),
    ] = None
    revision: Annotated[
        str | None,
        BeforeValidator(_number_as_text),
        Key("a string or a number", verbatim_numbers=True),
        _described({"type": ["string", "number", "null"]}),
        Field(description="any scalar; a change restarts the kernel(s) in place."),
    ] = None
    max_age: Annotated[
        Duration,
        Key("a duration like 30m"),
        Field(description="restart a kernel older than this (since kernelform started it)."),
    ] = None
    busy_timeout: Annotated[
        Duration,
        Key("a duration like 30m"),
        Field(description="interrupt a kernel busy for longer than this."),
    ] = None
    protect: Annotated[
        Flag,
        Key("true or false"),
        Field(
            description="default true: a restart, replace or shutdown of a kernel in use is "
            "blocked (carried out only with --force)."
        ),
    ] = True
    setup: Annotated[
        Text,
        Key("a string"),
        Field(
            description="code run in the kernel after every start and restart, before it "
            "counts as ready; an exception fails the action and taints the kernel. A change "
            "restarts the kernel."
        ),
    ] = None
    setup_file: Annotated[
        Text,
        Key("a string", quote_hint=True),
        Field(
            description="a file holding the setup code, relative to the manifest (instead "
            "of setup)."
        ),
    ] = None
    ready_timeout: Annotated[
        Duration,
        Key("a duration like 30s"),
        Field(
            description="how long apply waits for a started or restarted kernel to answer "
            f"(default {format_duration(DEFAULT_READY_TIMEOUT)}); --wait-timeout overrides it."
        ),
    ] = None
    health_check: Annotated[
        Flag,
        Key("true or false"),
        Field(
            description="true: plan probes the kernel, and restarts it when it does not "
            "answer within health_timeout (a kernel busy in a cell still answers)."
        ),
    ] = False
    health_timeout: Annotated[
        Duration,
        Key("a duration like 10s"),
        Field(
            description="how long a health probe waits for an answer "
            f"(default {format_duration(DEFAULT_HEALTH_TIMEOUT)})."
        ),
    ] = None

    @property
    def wait_timeout(self) -> timedelta:
        """How long to wait for this kernel to be ready."""
        return self.ready_timeout or DEFAULT_READY_TIMEOUT

    @property
    def probe_timeout(self) -> timedelta:
        """How long a health probe waits."""
        return self.health_timeout or DEFAULT_HEALTH_TIMEOUT


class TopKeys(_Section):
    """The manifest's settings at the top level, beside the ``servers`` and ``kernels`` sections."""

    state: Annotated[
        Text,
        AfterValidator(_check_state),
        Key("a string (a file path or a postgresql:// URL)", secret=True, quote_hint=True),
        Field(
            description="where the state lives: a file path (relative to the manifest) or a "
            "postgresql:// URL; write the password as ${VAR} so it stays in the environment. "
            "--state and KERNELFORM_STATE override it. Default: .kernelform/state.json next "
            "to the manifest.",
            repr=False,
        ),
    ] = None


NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Section:
    """A top-level key of the manifest: a mapping of names to entries of *model*."""

    model: type[BaseModel]
    required: bool
    may_be_empty: bool
    description: str
    hosts_kernels: bool = False  # servers, hubs: a manifest needs at least one of these


SECTIONS: dict[str, Section] = {
    "servers": Section(
        ServerKeys,
        required=False,
        may_be_empty=False,
        description="The Jupyter servers, by name (a manifest declares servers, hubs, or both).",
        hosts_kernels=True,
    ),
    "hubs": Section(
        HubKeys,
        required=False,
        may_be_empty=True,
        description="JupyterHubs, by name: a kernel declared on a hub runs on the server of "
        "each user the hub selects (NAME@USER).",
        hosts_kernels=True,
    ),
    "kernels": Section(
        KernelKeys,
        required=False,
        may_be_empty=True,
        description="The kernels that must run, by name (may be empty or left out).",
    ),
}
