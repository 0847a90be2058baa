"""`depot doctor` on the real engine: a port a container holds, a missing console folder and a
missing crate are each reported; what the host has is reported ready.

It needs no depot up: one stand-in container publishes a port, with a name and label of this
test's own (the tier's sweep finds it if the test dies), and is removed afterwards.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from depot.config import load_settings
from depot.host.docker import DockerCli
from depot.host.doctor import diagnose, report
from depot.standins import StandinUnavailableError, ensure_standins
from depot.tools.image_budget import engine_unavailable
from tests.conftest import stack_config
from tests.engine.harness import TIER_LABEL, docker

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def rust_standin() -> str:
    reason = engine_unavailable()
    if reason:
        pytest.skip(f"engine tier: {reason}")
    try:
        tags, _ = ensure_standins()
    except StandinUnavailableError as unavailable:
        pytest.skip(f"engine tier: {unavailable}")
    return tags["rust-service"]


@pytest.fixture
def publisher(rust_standin: str) -> Iterator[tuple[str, int]]:
    """A container publishing a random port on 127.0.0.1: its name and that port."""
    name = f"depot-doctor-test-{secrets.token_hex(4)}"
    docker(
        "run", "--detach", "--name", name, "--label", f"{TIER_LABEL}={name}",
        "--env", "PORT=4860", "--publish", "127.0.0.1::4860", rust_standin,
    )  # fmt: skip
    try:
        mapped = docker("port", name, "4860/tcp").stdout.split()[0]
        yield name, int(mapped.rpartition(":")[2])
    finally:
        docker("rm", "--force", name, check=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_taken_port_a_missing_console_folder_and_a_missing_crate_are_each_reported(
    tmp_path: Path, publisher: tuple[str, int]
) -> None:
    holder, taken = publisher
    (tmp_path / "discovery").mkdir()
    (tmp_path / "discovery" / "Cargo.toml").write_text("[package]\n")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text("<h1>console</h1>\n")
    config = {
        "depot:build": {
            "contexts": {"discovery": str(tmp_path / "discovery"), "dispatch": str(tmp_path / "no")}
        },
        "depot:console": {
            "distPath": str(tmp_path / "dist"),
            "sessionsPath": str(tmp_path / "sessions"),
        },
        "depot:publish": {
            "address": "127.0.0.1",
            "ports": {"console": taken, "grafana": free_port()},
        },
    }
    settings = load_settings("dev", stack_config("dev", config))
    findings = diagnose(settings, DockerCli())
    problems = sorted(f"{f.check}: {f.message}" for f in findings if f.status == "problem")
    assert problems == [
        f"console: {tmp_path}/sessions (depot:console.sessionsPath) does not exist: create it "
        f"(`sudo mkdir -p {tmp_path}/sessions`), or point depot:console.sessionsPath at a folder",
        f"crate: dispatch: its crate {tmp_path}/no (depot:build.contexts.dispatch) is not there: "
        f"clone the dispatch repository to {tmp_path}/no, or point depot:build.contexts.dispatch "
        "at it",
        f"port: console: 127.0.0.1:{taken} is taken by container {holder}: stop it, or publish "
        "console on another port (depot:publish.ports.console)",
    ]
    ready = {f.check for f in findings if f.status == "ok"}
    assert ready == {"docker", "engine", "api", "crate", "console", "port", "disk"}
    assert report("dev", findings)[1] == 1


def test_a_port_another_process_holds_outside_docker_is_reported(
    tmp_path: Path, rust_standin: str
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = {"depot:publish": {"address": "127.0.0.1", "ports": {"grafana": port}}}
        findings = diagnose(load_settings("dev", stack_config("dev", config)), DockerCli())
    expected = (
        f"grafana: 127.0.0.1:{port} is taken by another process: stop it, or publish grafana on "
        "another port (depot:publish.ports.grafana)"
    )
    assert expected in [f.message for f in findings if f.status == "problem"]
