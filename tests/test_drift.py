"""`depot drift`: a host that runs exactly the plan reports nothing; each change is one line in
the plan's terms; environment values never appear.

The host is a stand-in engine answering ``docker … inspect`` with documents in the engine's own
shape, made from the dev plan's workloads (``running``), then edited the way an operator would.
"""

from __future__ import annotations

import copy
import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

import pytest

from depot.cli import main
from depot.config import load_settings
from depot.host.docker import DockerCli
from depot.host.drift import Expected, expected_from_plan, find_drift, report
from depot.paths import ProjectPath
from depot.review.plan import plan_config
from depot.review.workload import Workload
from tests.conftest import stack_config

CANARY = "canary-value-4f1d"
IMAGE_ENV = ["PATH=/usr/local/bin:/usr/bin:/bin"]


def image_id(reference: str) -> str:
    return "sha256:" + format(abs(hash(reference)), "x").rjust(64, "0")[:64]


def running(workload: Workload, env_names: frozenset[str] | None) -> dict[str, Any]:
    """``docker container inspect`` of a container created exactly as ``workload`` says."""
    names = env_names if env_names is not None else {e.name for e in workload.env}
    mounts = [
        {"Type": "volume", "Name": v.volume, "Destination": v.target, "RW": not v.read_only}
        for v in workload.volumes
    ] + [
        {"Type": "bind", "Source": ProjectPath(b.source).host, "Destination": b.target}
        | {"RW": not b.read_only}
        for b in workload.binds
    ]
    assert workload.image is not None
    return {
        "Name": f"/{workload.name}",
        "Image": image_id(workload.image),
        "Config": {
            "Image": workload.image,
            # The image's own when the plan names none (here: none at all).
            "Entrypoint": list(workload.entrypoint) or None,
            "User": workload.user or "",
            "Env": [*IMAGE_ENV, *(f"{name}={CANARY}" for name in sorted(names))],
        },
        "HostConfig": {
            "ReadonlyRootfs": workload.read_only_root,
            "CapDrop": list(workload.cap_drops),
            "CapAdd": [f"CAP_{c}" for c in workload.cap_adds] or None,
            "SecurityOpt": ["no-new-privileges:true"] if workload.no_new_privileges else None,
            "Privileged": workload.privileged,
            "RestartPolicy": {
                "Name": workload.restart,
                "MaximumRetryCount": workload.restart_retries,
            },
            "Memory": (workload.limits.memory_mib or 0) * 1024 * 1024,
            "NanoCpus": int((workload.limits.cpus or 0) * 1e9),
            "MemoryReservation": (workload.limits.memory_reservation_mib or 0) * 1024 * 1024,
            "Tmpfs": {m.target: ",".join(m.options) for m in workload.tmpfs},
            "PortBindings": {
                f"{p.target}/{p.protocol}": [{"HostIp": p.address, "HostPort": str(p.published)}]
                for p in workload.ports
            },
        },
        "Mounts": mounts,
        "NetworkSettings": {
            "Networks": {n.network: {"Aliases": list(n.aliases)} for n in workload.networks}
        },
    }


@dataclass(frozen=True)
class FakeHost(DockerCli):
    """Answers ``docker <kind> inspect`` from ``objects[kind][name]``, as the CLI prints them."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        kind, action = args[0], args[1]
        assert action == "inspect", args
        names = args[args.index("--") + 1 :]
        found = [self.objects.get(kind, {}).get(name) for name in names]
        out = "".join(json.dumps(item) + "\n" for item in found if item is not None)
        return subprocess.CompletedProcess(
            args, 0 if all(found) else 1, out, "Error: No such object"
        )


@pytest.fixture(scope="module")
def expected() -> Expected:
    settings = load_settings("dev", stack_config("dev"))
    return expected_from_plan(plan_config("dev", stack_config("dev"), settings=settings), settings)


@pytest.fixture
def host(expected: Expected) -> FakeHost:
    """A host that runs exactly the plan."""
    containers = {w.name: running(w, expected.env_names.get(w.name)) for w in expected.workloads}
    images: dict[str, Any] = {}
    for reference in {w.image for w in expected.workloads if w.image}:
        image = {"Id": image_id(reference), "Config": {"Env": IMAGE_ENV}}
        images[reference] = images[image_id(reference)] = image
    networks = {}
    for network in expected.networks:
        assert network.name
        attached = {
            f"id-{w.name}": {"Name": w.name}
            for w in expected.workloads
            if network.name in {n.network for n in w.networks}
        }
        networks[network.name] = {
            "Name": network.name,
            "Internal": network.internal,
            "Containers": attached,
        }
    volumes = {v: {"Name": v} for v in expected.volumes}
    return FakeHost(
        objects={"container": containers, "image": images, "network": networks, "volume": volumes}
    )


def lines(expected: Expected, host: DockerCli) -> list[str]:
    return [d.line() for d in find_drift(expected, host)]


def test_a_host_that_runs_the_plan_reports_nothing(expected: Expected, host: FakeHost) -> None:
    assert {w.name for w in expected.workloads} == {
        "depot-postgres", "depot-discovery", "depot-dispatch", "depot-grafana", "depot-console",
        "depot-backup",
    }  # fmt: skip
    assert expected.env_names["depot-dispatch"] >= {"DATABASE_URL", "PORT", "RUST_LOG"}
    assert lines(expected, host) == []
    output, status = report("dev", find_drift(expected, host), expected)
    assert status == 0
    assert output == (
        "depot drift: stack dev: none; the host runs what the plan says (6 containers, "
        "3 networks, 2 volumes)\n"
    )


def test_each_changed_field_is_one_line_in_the_plans_terms(
    expected: Expected, host: FakeHost
) -> None:
    changed = copy.deepcopy(host.objects)
    discovery = changed["container"]["depot-discovery"]
    discovery["HostConfig"]["Memory"] = 200 * 1024 * 1024
    discovery["HostConfig"]["NanoCpus"] = 2_000_000_000
    discovery["HostConfig"]["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
    discovery["HostConfig"]["ReadonlyRootfs"] = False
    discovery["HostConfig"]["CapAdd"] = ["CAP_SYS_ADMIN"]
    discovery["HostConfig"]["Privileged"] = True
    discovery["HostConfig"]["SecurityOpt"] = None
    discovery["HostConfig"]["PortBindings"] = {
        "4860/tcp": [{"HostIp": "0.0.0.0", "HostPort": "4860"}]
    }
    discovery["Config"]["User"] = "0"
    discovery["Config"]["Env"].append(f"DEBUG_TOKEN={CANARY}")
    discovery["NetworkSettings"]["Networks"]["database-network"] = {}
    discovery["Mounts"].append({"Type": "bind", "Source": "/", "Destination": "/host", "RW": True})
    found = lines(expected, FakeHost(objects=changed))
    assert found == [
        "depot-discovery user: 0 on the host, the plan says 10001:10001",
        "depot-discovery read-only root: no on the host, the plan says yes",
        "depot-discovery added capabilities: SYS_ADMIN on the host, the plan says none",
        "depot-discovery no-new-privileges: no on the host, the plan says yes",
        "depot-discovery privileged: yes on the host, the plan says no",
        "depot-discovery restart: no on the host, the plan says unless-stopped",
        "depot-discovery memory: 200 MiB on the host, the plan says no limit",
        "depot-discovery CPUs: 2 CPUs on the host, the plan says no limit",
        "depot-discovery mounts: / at /host (read-write) on the host only",
        "depot-discovery env: DEBUG_TOKEN on the host only",
        "depot-discovery networks: database-network on the host only",
        "depot-discovery ports: 0.0.0.0:4860 to 4860/tcp on the host only; 127.0.0.1:4860 to "
        "4860/tcp missing",
    ]
    assert all(CANARY not in line for line in found)


def test_postgres_started_without_its_data_lock_is_reported(
    expected: Expected, host: FakeHost
) -> None:
    changed = copy.deepcopy(host.objects)
    # Started by hand with the image's own entrypoint: nothing would make a second one wait.
    changed["container"]["depot-postgres"]["Config"]["Entrypoint"] = ["docker-entrypoint.sh"]
    assert lines(expected, FakeHost(objects=changed)) == [
        "depot-postgres entrypoint: not the plan's data lock on the host: a second postgres "
        "started on its data directory would not wait for this one to stop"
    ]


def test_a_tag_moved_under_a_running_container_is_reported(
    expected: Expected, host: FakeHost
) -> None:
    changed = copy.deepcopy(host.objects)
    new = "sha256:" + "e" * 64
    changed["image"]["postgres:17.2-alpine"] = {"Id": new, "Config": {"Env": IMAGE_ENV}}
    runs = image_id("postgres:17.2-alpine")
    assert lines(expected, FakeHost(objects=changed)) == [
        f"depot-postgres image: postgres:17.2-alpine now names {new[:19]}, but the container runs "
        f"{runs[:19]}: the image was replaced under the same name after the container was created"
    ]


def test_a_container_run_by_image_id_is_compared_with_what_the_plans_reference_names(
    expected: Expected, host: FakeHost
) -> None:
    # The Pulumi program runs the image ID; nothing moved: no drift.
    changed = copy.deepcopy(host.objects)
    grafana = changed["container"]["depot-grafana"]
    grafana["Config"]["Image"] = grafana["Image"]
    assert lines(expected, FakeHost(objects=changed)) == []
    changed["image"]["grafana/grafana:11.4.0"]["Id"] = "sha256:" + "f" * 64
    assert lines(expected, FakeHost(objects=changed))[0].startswith(
        "depot-grafana image: grafana/grafana:11.4.0 now names sha256:ffffffffffff"
    )


def test_an_unknown_container_a_missing_one_an_open_network_and_a_lost_volume(
    expected: Expected, host: FakeHost
) -> None:
    changed = copy.deepcopy(host.objects)
    database = changed["network"]["database-network"]
    database["Containers"]["id-intruder"] = {"Name": "psql-by-hand"}
    database["Internal"] = False
    del changed["container"]["depot-console"]
    del changed["volume"]["postgres-data"]
    found = lines(expected, FakeHost(objects=changed))
    assert found == [
        "depot-console container: not on the host; the plan runs it",
        "database-network internal: no on the host, the plan says yes",
        "database-network unknown container: psql-by-hand is attached, and the plan has no such "
        "container",
        "postgres-data volume: not on the host; the plan keeps it",
    ]
    output, status = report("dev", find_drift(expected, FakeHost(objects=changed)), expected)
    assert status == 1
    assert output.endswith("depot drift: stack dev: 4 differences between the host and the plan\n")


def test_the_command_exits_2_when_no_engine_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_engine(self: DockerCli, *args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 1, "", "Cannot connect to the Docker daemon at x.")

    monkeypatch.setattr(DockerCli, "run", no_engine)
    assert main(["drift", "--stack", "dev"]) == 2
    assert capsys.readouterr().err == (
        "depot drift: docker container inspect at unix:///var/run/docker.sock: Cannot connect "
        "to the Docker daemon at x.\n"
    )
