"""The token-transport warnings of a watch: servers and hubs alike, once per watch.

Why: a watch runs for days; the warning that a token crosses the network in clear
text (or that a certificate goes unchecked) must reach its log once, not every
cycle, and must cover the hubs of a ``hubs:`` fleet as the command line does.
Nothing here needs a live server: the warnings are given before any request,
and the hosts are reserved names that never resolve (RFC 6761).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from kernelform.controller import Controller, Events, WatchConfig
from kernelform.runtime import Runtime
from kernelform.workspace import Settings, Workspace

FAR = "http://kernels.invalid:8888/"
FAR_HUB = "http://hub.invalid/"
UNCHECKED = "https://tls.invalid/"
MANIFEST = f"""\
servers:
  far: {{url: '{FAR}', token: tok-far}}
  near: {{url: 'http://127.0.0.1:9/', token: tok-near}}
  unchecked: {{url: '{UNCHECKED}', token: tok-tls, insecure: true}}
hubs:
  campus: {{url: '{FAR_HUB}', token: tok-hub, groups: [g]}}
kernels:
  etl: {{spec: python3, server: far}}
"""
EXPECTED = [
    f"the token for {FAR} is sent over plain http; use https",
    f"the TLS certificate of {UNCHECKED} is not verified (insecure: true)",
    f"the token for {FAR_HUB} is sent over plain http; use https",
]


class Warnings(Events):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def warning(self, message: str, at: datetime) -> None:
        self.seen.append(message)


def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "kernelform.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    return Settings(manifest_path=path, state=str(tmp_path / "state.json"))


def test_every_server_and_hub_that_exposes_its_token_is_named(tmp_path: Path) -> None:
    with Workspace(settings(tmp_path)) as workspace:
        assert workspace.transport_warnings() == EXPECTED


def test_a_watch_gives_each_warning_once_however_many_cycles(tmp_path: Path) -> None:
    events = Warnings()
    controller = Controller(
        WatchConfig(settings=settings(tmp_path)), runtime=Runtime(), events=events
    )
    for number in (1, 2, 3):
        end = controller.cycle(number)
        assert end.error is not None and "kernels.invalid" in end.error  # nothing resolves
    assert events.seen == EXPECTED
