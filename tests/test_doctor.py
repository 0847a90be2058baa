"""`depot doctor`: each check finds what it is for on a host, says how to fix it, and the verdict.

The engine is a stand-in that answers ``docker info`` and ``docker ps`` as a real one does; paths
and ports are real ones on this machine (a folder in tmp_path, a socket the test binds).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from depot.cli import main
from depot.config import DepotSettings, load_settings
from depot.host.docker import DockerCli
from depot.host.doctor import Finding, diagnose, report
from tests.conftest import stack_config

INFO = {"ServerVersion": "24.0.7", "Runtimes": {"runc": {}}, "DockerRootDir": "/var/lib/docker"}
# `docker version`'s server part, as Engine 26.1.5 (Debian trixie's) writes it.
SERVER = {"Version": "26.1.5+dfsg1", "ApiVersion": "1.45", "MinAPIVersion": "1.24", "Os": "linux"}


@dataclass(frozen=True)
class FakeEngine(DockerCli):
    """``docker info`` answers ``info`` (None: no engine); ``docker ps`` ``publishers``."""

    info: Mapping[str, Any] | None = field(default_factory=lambda: dict(INFO))
    publishers: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    server: Mapping[str, Any] | None = field(default_factory=lambda: dict(SERVER))
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[0] == "info":
            if self.info is None:
                error = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
                return subprocess.CompletedProcess(args, 1, "", error)
            return subprocess.CompletedProcess(args, 0, json.dumps(self.info), "")
        if args[0] == "version":
            if self.server is None:
                return subprocess.CompletedProcess(args, 1, "", "Cannot connect")
            return subprocess.CompletedProcess(args, 0, json.dumps(self.server), "")
        if args[0] == "ps":
            port = int(args[args.index("--filter") + 1].removeprefix("publish="))
            return subprocess.CompletedProcess(
                args, 0, "\n".join(self.publishers.get(port, ())), ""
            )
        raise AssertionError(f"the doctor ran docker {args}")


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A dev host with everything the stack needs: crates, the console build, sessions."""
    for crate in ("discovery", "dispatch"):
        (tmp_path / crate).mkdir()
        (tmp_path / crate / "Cargo.toml").write_text("[package]\n")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text("<h1>console</h1>\n")
    (tmp_path / "sessions").mkdir()
    return tmp_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def settings_on(host: Path, **overrides: Any) -> DepotSettings:
    """The dev stack with its crates and console on ``host``, each published port free."""
    config: dict[str, Any] = {
        "depot:build": {"contexts": {c: str(host / c) for c in ("discovery", "dispatch")}},
        "depot:console": {"distPath": str(host / "dist"), "sessionsPath": str(host / "sessions")},
        "depot:publish": {
            "address": "127.0.0.1",
            "ports": {s: free_port() for s in ("discovery", "dispatch", "grafana", "console")},
        },
    }
    config.update(overrides)
    return load_settings("dev", stack_config("dev", config))


def problems(findings: list[Finding]) -> list[str]:
    return [f"{f.check}: {f.message}" for f in findings if f.status == "problem"]


def test_a_host_with_everything_is_ready(host: Path) -> None:
    findings = diagnose(settings_on(host), FakeEngine())
    assert problems(findings) == []
    output, status = report("dev", findings)
    assert status == 0
    assert output.endswith("depot doctor: stack dev is ready\n")
    assert "ok        docker: Docker Engine 24.0.7 answers at unix:///var/run/docker.sock" in output


def test_a_missing_crate_and_a_folder_without_cargo_toml_are_each_named(host: Path) -> None:
    (host / "dispatch" / "Cargo.toml").unlink()
    contexts = {"discovery": str(host / "gone"), "dispatch": str(host / "dispatch")}
    settings = settings_on(host, **{"depot:build": {"contexts": contexts}})
    found = problems(diagnose(settings, FakeEngine()))
    assert found == [
        f"crate: discovery: its crate {host}/gone (depot:build.contexts.discovery) is not there: "
        f"clone the discovery repository to {host}/gone, or point depot:build.contexts.discovery "
        "at it",
        f"crate: dispatch: {host}/dispatch (depot:build.contexts.dispatch) has no Cargo.toml: it "
        "is not the dispatch crate; point depot:build.contexts.dispatch at the folder that holds "
        "its Cargo.toml",
    ]


def test_the_consoles_folders_missing_or_empty_are_each_named(host: Path) -> None:
    (host / "dist" / "index.html").unlink()
    (host / "sessions").rmdir()
    found = problems(diagnose(settings_on(host), FakeEngine()))
    assert found == [
        f"console: {host}/dist (depot:console.distPath) has no index.html, so the console would "
        "serve nothing: build the console there (its dist/ with index.html), or point "
        "depot:console.distPath at its build",
        f"console: {host}/sessions (depot:console.sessionsPath) does not exist: create it "
        f"(`sudo mkdir -p {host}/sessions`), or point depot:console.sessionsPath at a folder",
    ]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_port_another_process_listens_on_is_taken(host: Path, taken_port: int) -> None:
    ports = {"discovery": taken_port, "dispatch": free_port()}
    settings = settings_on(host, **{"depot:publish": {"address": "127.0.0.1", "ports": ports}})
    assert problems(diagnose(settings, FakeEngine())) == [
        f"port: discovery: 127.0.0.1:{taken_port} is taken by another process: stop it, or "
        "publish discovery on another port (depot:publish.ports.discovery)"
    ]


def test_a_port_the_depot_holds_itself_is_fine_and_anothers_container_is_named(
    host: Path, taken_port: int
) -> None:
    ports = {"discovery": taken_port, "console": free_port()}
    settings = settings_on(host, **{"depot:publish": {"address": "127.0.0.1", "ports": ports}})
    engine = FakeEngine(publishers={taken_port: ("depot-discovery",), ports["console"]: ("web",)})
    findings = diagnose(settings, engine)
    assert f"discovery: 127.0.0.1:{taken_port} is already depot-discovery's (the depot runs)" in [
        f.message for f in findings if f.status == "ok"
    ]
    assert problems(findings) == [
        f"port: console: 127.0.0.1:{ports['console']} is taken by container web: stop it, or "
        "publish console on another port (depot:publish.ports.console)"
    ]


def test_no_engine_is_a_problem_with_its_fix_and_what_it_could_not_check(host: Path) -> None:
    findings = diagnose(settings_on(host), FakeEngine(info=None))
    assert problems(findings) == [
        "docker: no Docker engine answers at unix:///var/run/docker.sock (Cannot connect to the "
        "Docker daemon at unix:///var/run/docker.sock.): start Docker (`sudo systemctl start "
        "docker`), or point depot:docker.host at the engine the stack runs on"
    ]
    output, status = report("dev", findings)
    assert status == 1
    assert output.endswith("depot doctor: stack dev is not ready: 1 problem; 1 not checked\n")


def test_an_engine_older_than_the_stack_needs(host: Path) -> None:
    engine = FakeEngine(info={**INFO, "ServerVersion": "19.03.15"})
    assert problems(diagnose(settings_on(host), engine)) == [
        "engine: Docker Engine 19.03.15 is older than 20.10: the console binds port 80 without "
        "NET_BIND_SERVICE, which needs Engine 20.10's net.ipv4.ip_unprivileged_port_start=0 in "
        "containers; upgrade it"
    ]


def warnings(findings: list[Finding]) -> list[str]:
    return [f"{f.check}: {f.message}" for f in findings if f.status == "warning"]


def test_the_engines_api_version_is_reported(host: Path) -> None:
    engine = FakeEngine()
    findings = diagnose(settings_on(host), engine)
    assert ("version", "--format", "{{json .Server}}") in engine.calls
    [api] = [f for f in findings if f.check == "api"]
    assert (api.status, api.message) == (
        "ok",
        "Docker Engine 26.1.5+dfsg1 speaks API 1.45 (1.44+): healthchecks probe every second "
        "while a service starts (start_interval)",
    )
    assert warnings(findings) == []


@pytest.mark.parametrize(("version", "api"), [("25.0.0", "1.44"), ("28.2.2", "1.50")])
def test_engine_25_and_newer_carry_start_interval(host: Path, version: str, api: str) -> None:
    engine = FakeEngine(server={"Version": version, "ApiVersion": api})
    [api_finding] = [f for f in diagnose(settings_on(host), engine) if f.check == "api"]
    assert api_finding.status == "ok"
    assert f"API {api} (1.44+)" in api_finding.message


def test_an_engine_below_api_1_44_is_a_warning_not_a_problem(host: Path) -> None:
    # Engine 20.10 (API 1.41) ignores start_interval (proven on 20.10.24, issue 21): the
    # depot deploys, only more slowly; the doctor says so and the host stays ready.
    engine = FakeEngine(server={"Version": "20.10.24+dfsg1", "ApiVersion": "1.41"})
    findings = diagnose(settings_on(host), engine)
    assert warnings(findings) == [
        "api: Docker Engine 20.10.24+dfsg1 speaks API 1.41, older than 1.44 (Engine 25): it "
        "ignores the healthchecks' start_interval, so each first probe waits a whole interval "
        "and the start order (postgres → dispatch → console) takes at least 25 s to turn "
        "healthy, as does every health-gated replace; the depot deploys as before (every wait "
        "covers a healthcheck's worst case; older Compose v2 CLIs refuse the export's "
        "start_interval on it, the one `make setup` installs does not). Upgrade to Engine 25 or "
        "newer for starts in seconds"
    ]
    output, status = report("dev", findings)
    assert status == 0
    assert "\nWARNING   api: Docker Engine 20.10.24+dfsg1 speaks API 1.41" in output
    assert output.endswith("depot doctor: stack dev is ready\n")
    one_below = FakeEngine(server={"Version": "24.0.7", "ApiVersion": "1.43"})
    assert [f.status for f in diagnose(settings_on(host), one_below) if f.check == "api"] == [
        "warning"
    ]


@pytest.mark.parametrize("server", [None, {"Version": "x"}, {"ApiVersion": "1.4x"}, []])
def test_an_api_version_it_cannot_read_is_unchecked(host: Path, server: Any) -> None:
    findings = diagnose(settings_on(host), FakeEngine(server=server))
    [api] = [f for f in findings if f.check == "api"]
    assert api.status == "unchecked"
    assert report("dev", findings)[1] == 0


def test_the_gpu_profile_needs_the_nvidia_runtime(host: Path) -> None:
    contexts = {c: str(host / c) for c in ("discovery", "dispatch", "splat-worker")}
    (host / "splat-worker").mkdir()
    (host / "splat-worker" / "Cargo.toml").write_text("[package]\n")
    settings = settings_on(
        host, **{"depot:profiles": ["gpu"], "depot:build": {"contexts": contexts}}
    )
    without = problems(diagnose(settings, FakeEngine()))
    assert len(without) == 1
    assert without[0].startswith("gpu: the gpu profile is on (splat-worker asks for every GPU)")
    assert "nvidia-ctk runtime configure --runtime=docker" in without[0]
    with_runtime = FakeEngine(info={**INFO, "Runtimes": {"runc": {}, "nvidia": {}}})
    assert problems(diagnose(settings, with_runtime)) == []


def test_a_remote_hosts_folders_and_ports_are_unchecked_never_guessed(host: Path) -> None:
    settings = settings_on(host, **{"depot:docker": {"host": "ssh://deploy@depot.example.com"}})
    findings = diagnose(settings, FakeEngine(host="ssh://deploy@depot.example.com"))
    assert problems(findings) == []
    unchecked = {f.check for f in findings if f.status == "unchecked"}
    assert unchecked == {"console", "port", "disk"}
    output, status = report("dev", findings)
    assert (status, output.splitlines()[-1]) == (
        0,
        "depot doctor: stack dev is ready; 7 not checked",
    )


def test_an_unreachable_ssh_host_says_what_to_try(host: Path) -> None:
    settings = settings_on(host, **{"depot:docker": {"host": "ssh://deploy@depot.example.com"}})
    findings = diagnose(settings, FakeEngine(host="ssh://deploy@depot.example.com", info=None))
    assert "check that `ssh deploy@depot.example.com docker info` works" in problems(findings)[0]


def test_the_command_exits_2_on_a_stack_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--stack", "nonexistent"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("depot doctor: ")
    assert error.count("\n") == 1


@dataclass(frozen=True)
class FakeSwarm(FakeEngine):
    """A swarm manager whose nodes carry ``labels`` (``docker node ls --filter node.label=``)."""

    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The cluster as its manager describes it: `docker node inspect`, `service inspect` and
    # `service ps` records (tests/test_doctor_cluster.py).
    nodes: tuple[Mapping[str, Any], ...] = ()
    services: tuple[Mapping[str, Any], ...] = ()
    tasks: tuple[Mapping[str, Any], ...] = ()

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        listing: dict[tuple[str, ...], list[str]] = {
            ("node", "ls"): [str(n["ID"]) for n in self.nodes],
            ("node", "inspect"): [json.dumps(n) for n in self.nodes],
            ("service", "ls"): [str(s["ID"]) for s in self.services],
            ("service", "ps"): [json.dumps(t) for t in self.tasks],
        }
        if args[:2] == ("service", "inspect"):
            return subprocess.CompletedProcess(args, 0, json.dumps(list(self.services)), "")
        if args[:2] in listing and "--filter" not in args:
            return subprocess.CompletedProcess(args, 0, "\n".join(listing[args[:2]]), "")
        if args[:2] == ("node", "ls"):
            label = (
                args[args.index("--filter") + 1].removeprefix("node.label=").removesuffix("=true")
            )
            return subprocess.CompletedProcess(args, 0, "\n".join(self.labels.get(label, ())), "")
        return super().run(*args, stdin=stdin, timeout=timeout)


def cluster_settings(host: Path) -> DepotSettings:
    contexts = {c: str(host / c) for c in ("discovery", "dispatch", "splat-worker", "rtk-base")}
    for crate in contexts.values():
        Path(crate).mkdir(exist_ok=True)
        (Path(crate) / "Cargo.toml").write_text("[package]\n")
    return load_settings(
        "cluster", stack_config("cluster", {"depot:build": {"contexts": contexts}})
    )


def test_a_swarm_stack_needs_an_active_manager_and_a_node_for_each_pinned_service(
    host: Path,
) -> None:
    settings = cluster_settings(host)
    manager = {
        **INFO,
        "Runtimes": {"nvidia": {}},
        "Swarm": {"LocalNodeState": "active", "ControlAvailable": True},
    }
    engine = FakeSwarm(host="ssh://deploy@manager", info=manager, labels={"depot.gpu": ("gpu-1",)})
    assert [p for p in problems(diagnose(settings, engine)) if p.startswith("swarm")] == [
        "swarm: postgres: no node has the label depot.postgres-data=true, so it would never be "
        "scheduled: `docker node update --label-add depot.postgres-data=true <node>`",
        "swarm: rtk-base: no node has the label depot.gnss=true, so it would never be scheduled: "
        "`docker node update --label-add depot.gnss=true <node>`",
        # Pinned with postgres: its backups volume is on the data node.
        "swarm: backup: no node has the label depot.postgres-data=true, so it would never be "
        "scheduled: `docker node update --label-add depot.postgres-data=true <node>`",
    ]
    outside = FakeSwarm(
        host="ssh://deploy@manager", info={**manager, "Swarm": {"LocalNodeState": "inactive"}}
    )
    assert [p for p in problems(diagnose(settings, outside)) if p.startswith("swarm")] == [
        "swarm: the engine at ssh://deploy@manager is not in a swarm (state inactive): `docker "
        "swarm init` there, or join it to the depot's swarm; or set depot:runtime: host"
    ]
    worker = {**manager, "Swarm": {"LocalNodeState": "active", "ControlAvailable": False}}
    found = problems(diagnose(settings, FakeSwarm(host="ssh://deploy@manager", info=worker)))
    assert [p for p in found if p.startswith("swarm")] == [
        "swarm: the engine at ssh://deploy@manager is a worker, and services are created through "
        "a manager: point depot:docker.host at one"
    ]
