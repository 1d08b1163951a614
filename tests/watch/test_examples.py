"""The examples for running ``watch``: a systemd unit and a Kubernetes Deployment.

Their ``kernelform watch`` command lines must be accepted by the real option
parser, and the parts that must agree (the probes and the metrics port, the
manifest path and the git-sync checkout) must agree.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from kernelform.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "watch"


def parse_watch(args: list[str]) -> dict[str, Any]:
    """The options *args* give ``kernelform watch``, as its own parser reads them."""
    command = cli.commands["watch"]
    assert isinstance(command, click.Command)
    with command.make_context("watch", list(args)) as context:
        return dict(context.params)


def test_the_deployment_runs_watch_with_probes_on_its_metrics_port() -> None:
    documents = list(YAML(typ="safe").load_all((EXAMPLES / "deployment.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    assert set(kinds) == {"PersistentVolumeClaim", "Deployment"}
    spec = kinds["Deployment"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    watch, sync = containers["kernelform"], containers["git-sync"]
    assert watch["args"][0] == "watch"
    options = parse_watch(watch["args"][1:])
    assert options["metrics_addr"] == "0.0.0.0"  # the kubelet probes the pod's address
    (port,) = watch["ports"]
    assert port["containerPort"] == options["metrics_port"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert watch[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(options["metrics_port"])
    # The manifest is read from git-sync's atomically swapped link; the state is on the volume.
    sync_args = dict(a.removeprefix("--").split("=", 1) for a in sync["args"])
    checkout = Path(sync_args["root"]) / sync_args["link"]
    assert Path(options["manifest"]).parent == checkout
    mounts = {m["name"]: m["mountPath"] for m in watch["volumeMounts"]}
    assert Path(options["state"]).parent == Path(mounts["state"])
    assert Path(mounts["git"]) in checkout.parents
    secret = {e["name"]: e for e in watch["env"]}["JUPYTER_TOKEN"]
    assert "secretKeyRef" in secret["valueFrom"]  # never a token in the file
    assert pod["terminationGracePeriodSeconds"] >= 10


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_the_systemd_unit_runs_watch_and_stops_it_with_sigterm() -> None:
    service = unit(EXAMPLES / "kernelform-watch.service")["Service"]
    argv = shlex.split(service["ExecStart"].replace("\\\n", " ").replace("\\", ""))
    assert argv[0].endswith("/kernelform") and argv[1] == "watch"
    options = parse_watch(argv[2:])
    assert options["metrics_addr"] is None  # loopback only
    assert Path(options["state"]).parent == Path("/var/lib") / service["StateDirectory"]
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    text = (EXAMPLES / "kernelform-watch.service").read_text()
    here = Path(sys.executable).parent / "kernelform"  # an executable that exists here
    copy = tmp_path / "kernelform-watch.service"
    copy.write_text(text.replace("/opt/kernelform/bin/kernelform", str(here)))
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, ""), checked
