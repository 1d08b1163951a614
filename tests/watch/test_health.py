"""The controller's pure parts: the backoff, the health verdict, the logs' wording."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kernelform.controller import CycleEnd, Health, WatchConfig, WatchStart
from kernelform.errors import KernelformError
from kernelform.eventlog import JsonLog, TextLog, timestamp
from kernelform.masking import Redactor
from kernelform.workspace import Settings

AT = datetime(2026, 11, 30, 9, 0, 0, 123456, tzinfo=timezone.utc)


def test_the_pause_doubles_after_each_failure_up_to_four_intervals() -> None:
    config = WatchConfig(settings=Settings(), interval=60)
    assert [config.pause(n) for n in range(6)] == [60, 120, 240, 240, 240, 240]
    assert config.pause(10_000) == 240


@pytest.mark.parametrize("interval", [0, 0.5, -1, float("nan")])
def test_an_interval_under_a_second_is_refused(interval: float) -> None:
    with pytest.raises(KernelformError, match="the interval must be at least 1s"):
        WatchConfig(settings=Settings(), interval=interval)


def test_a_watch_never_forces_nor_targets() -> None:
    config = WatchConfig(settings=Settings(force=True, targets=("a",)))
    assert config.workspace_settings.force is False
    assert config.workspace_settings.targets == ()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def end(*, error: str | None = None) -> CycleEnd:
    return CycleEnd(number=1, started_at=AT, seconds=0.5, error=error, failures=1 if error else 0)


def test_healthy_until_three_intervals_pass_without_a_success() -> None:
    clock = Clock()
    health = Health(interval=10, now=clock)
    health.watch_started(WatchStart(AT, Path("k.yaml"), "s", 10, 1))
    assert health.verdict() == (True, "starting: no cycle has succeeded yet (0s since start)")
    clock.now += 31
    healthy, why = health.verdict()
    assert not healthy and why == (
        "no cycle has succeeded in the 31s since start, over 30s (3 intervals)"
    )
    health.cycle_finished(end())
    clock.now += 30
    assert health.verdict() == (True, "ok: the last successful cycle ended 30s ago")
    health.cycle_failed(end(error="k.yaml:3:5: unknown key 'x'\nk.yaml:4:5: another"))
    clock.now += 1
    assert health.verdict() == (
        False,
        "the last successful cycle ended 31s ago, over 30s (3 intervals); last error: "
        "k.yaml:3:5: unknown key 'x' (and 1 more)",
    )


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert timestamp(AT) == "2026-11-30T09:00:00.123Z"
    local = AT.astimezone(timezone.utc).replace(tzinfo=None)
    assert timestamp(local) == "2026-11-30T09:00:00.123Z"


def test_logs_scrub_every_secret_the_run_knows() -> None:
    secret = "s3cr3t-token-value"
    for log_class in (TextLog, JsonLog):
        stream = io.StringIO()
        log = log_class(stream, redactor=Redactor([secret]))
        log.cycle_failed(end(error=f"http://h/?token={secret}: refused"))
        log.warning(f"about {secret}", AT)
        assert secret not in stream.getvalue()
        assert "***" in stream.getvalue()
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["cycle_failed", "warning"]
