"""Kernel addresses: how one declared kernel is named in plans, the state and ``--target``.

Every module that names a kernel goes through here, so that the grammar lives
in one place::

    etl                 a kernel declared without ``count``
    etl[3]              replica 3 of a kernel declared with ``count``
    tutor@ana           kernel ``tutor`` in hub user ana's server
    tutor[1]@ana        replica 1 of it
    etl[1]~deposed      the old kernel of a replace that has not finished

A user name is everything after the first ``@`` (hub user names may contain
``@`` themselves: ``tutor@ana@uni.edu`` is user ``ana@uni.edu``), but one ending
in ``[INDEX]`` is taken for an index misplaced (``tutor@ana[1]``: ``tutor[1]@ana``). Addresses
stay plain strings in the state and in plans, as Terraform's do; this module
parses, formats, orders and matches them.

A target (``--target``) is an address without ``~deposed``; a less specific
target covers the more specific addresses: ``etl`` covers ``etl``, every
``etl[i]`` and every ``etl…@user``; ``etl@ana`` covers ana's ``etl`` kernels;
``etl[1]`` covers replica 1 for every user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kernelform.wording import quoted

__all__ = [
    "DEPOSED_SUFFIX",
    "Address",
    "matches_target",
    "parse_address",
    "parse_target",
    "unmatched_targets",
]

DEPOSED_SUFFIX = "~deposed"
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]*"
_ADDRESS = re.compile(rf"({NAME_PATTERN})(?:\[(0|[1-9][0-9]{{0,8}})\])?(?:@([^\s/]+))?")
_HELP = "expected NAME, NAME[INDEX], NAME@USER or NAME[INDEX]@USER, e.g. etl[0] or tutor[1]@ana"
_INDEX_AFTER_USER = re.compile(r"(.*)\[(0|[1-9][0-9]{0,8})\]")


@dataclass(frozen=True, order=True)
class Address:
    """A parsed address; ``str()`` gives it back in its canonical form."""

    name: str
    index: int | None = None
    user: str | None = None
    deposed: bool = False

    def __str__(self) -> str:
        text = self.name if self.index is None else f"{self.name}[{self.index}]"
        if self.user is not None:
            text += f"@{self.user}"
        return text + (DEPOSED_SUFFIX if self.deposed else "")

    @property
    def base(self) -> Address:
        """The address without ``~deposed``."""
        return Address(self.name, self.index, self.user)

    def as_deposed(self) -> Address:
        return Address(self.name, self.index, self.user, deposed=True)

    def with_index(self, index: int | None) -> Address:
        return Address(self.name, index, self.user, self.deposed)

    def covered_by(self, target: Address) -> bool:
        """Whether *target* (a parsed ``--target``) selects this address."""
        return (
            self.name == target.name
            and (target.index is None or self.index == target.index)
            and (target.user is None or self.user == target.user)
        )

    def removal_key(self) -> tuple[str, str, int]:
        """Order in which leftovers are shut down: highest replica first."""
        return self.name, self.user or "", -(self.index or 0)


def parse_address(text: str) -> Address:
    """``'etl[3]@ana~deposed'`` → ``Address('etl', 3, 'ana', deposed=True)``.

    Raises ``ValueError`` with a message fit for a user.
    """
    body = text.removesuffix(DEPOSED_SUFFIX)
    match = _ADDRESS.fullmatch(body)
    if match is None:
        raise ValueError(f"invalid kernel address {quoted(text)}: {_HELP}")
    name, index, user = match.groups()
    late = _INDEX_AFTER_USER.fullmatch(user or "")
    if late is not None and index is None:
        # 'tutor@ana[1]': hub user names have no brackets; the index goes before the '@'
        meant = Address(name, int(late.group(2)), late.group(1), deposed=body != text)
        raise ValueError(
            f"invalid kernel address {quoted(text)}: the index goes before the user;"
            f" did you mean '{meant}'?"
        )
    return Address(name, None if index is None else int(index), user, deposed=body != text)


def parse_target(text: str) -> Address:
    """A ``--target``: an address that is not ``~deposed``."""
    target = parse_address(text)
    if target.deposed:
        raise ValueError(
            f"invalid target {quoted(text)}: target the address itself ({target.base}); "
            "its deposed kernel goes with it"
        )
    return target


def matches_target(address: str, targets: Sequence[str]) -> bool:
    """Whether *address* is selected by any of *targets* (all of them when there are none).

    Addresses that are not kernel addresses (a prune's ``SERVER/KERNEL_ID``)
    are never selected by a target.
    """
    if not targets:
        return True
    try:
        parsed = parse_address(address).base
    except ValueError:
        return False
    return any(parsed.covered_by(_target(t)) for t in targets)


def unmatched_targets(targets: Sequence[str], addresses: Iterable[str]) -> list[str]:
    """The targets that select none of *addresses*, in the order given."""
    known = [a for a in (_parsed(x) for x in addresses) if a is not None]
    return [t for t in targets if not any(a.covered_by(_target(t)) for a in known)]


def _target(text: str) -> Address:
    return parse_address(text).base


def _parsed(text: str) -> Address | None:
    try:
        return parse_address(text).base
    except ValueError:
        return None
