"""The token never shows in what a broken manifest reports.

Manifests that hold the token and are wrong somewhere near it (``BAD_MANIFESTS``
in tests/support/secrets.py): neither the ``ManifestError`` (its text, its repr,
its problems) nor ``validate`` (nor, for a sample, plan and apply) echo it.
"""

from __future__ import annotations

import pytest

from kernelform.errors import ManifestError
from kernelform.manifest import load_manifest
from tests.support.secrets import BAD_MANIFESTS, TOKEN, Sweep, assert_clean

# The fixtures of tests/support/secrets.py: pytest finds them here by name.
from tests.support.secrets import jupyter as jupyter
from tests.support.secrets import quiet_env as quiet_env
from tests.support.secrets import secret_server as secret_server
from tests.support.secrets import sweep as sweep

PLANNED = {"colon-after", "unknown-key-next", "list-of-token", "url-userinfo"}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_bad_manifest_never_echoes_the_token(sweep: Sweep, case: str) -> None:
    path = sweep.manifest(BAD_MANIFESTS[case], planted=True)
    assert TOKEN in path.read_text(), "the case must hold the token"
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert_clean(str(info.value), f"the ManifestError of {case}")
    assert_clean(repr(info.value), f"the ManifestError repr of {case}")
    for problem in info.value.problems:
        assert_clean(repr(problem), f"a Problem of {case}")
    sweep.kf("validate", code=1, expect="kernelform.yaml:")
    if case in PLANNED:  # plan and apply read the manifest as validate does: a sample
        sweep.kf("plan", "--json", code=1, expect="kernelform.yaml:")
        sweep.kf("apply", "--auto-approve", code=1, expect="kernelform.yaml:")
