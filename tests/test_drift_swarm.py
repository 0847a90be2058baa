"""`depot drift` on a swarm stack: services compared with the plan, through a bounded manager.

The manager is a stand-in answering ``docker service inspect`` and ``network inspect`` with
documents in Engine 26's shape, made from the cluster plan's workloads (``running_service``) and
then edited the way an operator would. tests/engine/test_multinode.py reads a real swarm.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from depot.cli import main
from depot.config import load_settings
from depot.host.docker import DockerCli, DockerError
from depot.host.drift import Expected, expected_from_plan, find_swarm_drift, report
from depot.review.plan import plan_config
from depot.review.workload import Workload
from tests.conftest import stack_config

CANARY = "canary-value-7e2a"
RESTART = {"no": "none", "always": "any", "on-failure": "on-failure"}


def network_id(name: str) -> str:
    return f"net-{name}"


def running_service(
    workload: Workload, env_names: frozenset[str] | None, networks: frozenset[str]
) -> dict[str, Any]:
    """``docker service inspect`` of a service created exactly as ``workload`` says, named as
    ``docker stack deploy`` names it (``depot_postgres``)."""
    rollout = workload.rollout
    assert rollout is not None
    names = env_names if env_names is not None else {e.name for e in workload.env}
    limits = workload.limits
    return {
        "ID": f"id-{workload.name}",
        "Spec": {
            "Name": workload.name.replace("depot-", "depot_", 1),
            "Mode": {"Replicated": {"Replicas": rollout.replicas}},
            "UpdateConfig": {"Order": rollout.update_order},
            "EndpointSpec": {
                "Ports": [
                    {
                        "PublishedPort": p.published,
                        "TargetPort": p.target,
                        "Protocol": p.protocol,
                        "PublishMode": p.mode,
                    }
                    for p in workload.ports
                ]
            },
            "TaskTemplate": {
                "ContainerSpec": {
                    # The engine appends the digest it resolved; a canary value per variable.
                    "Image": f"{workload.image}@sha256:{'0' * 64}"
                    if "@" not in str(workload.image)
                    else workload.image,
                    "Env": [f"{name}={CANARY}" for name in sorted(names)],
                    "Command": list(workload.entrypoint) or None,
                    "User": workload.user,
                    "ReadOnly": workload.read_only_root,
                    "CapabilityDrop": list(workload.cap_drops),
                    "CapabilityAdd": list(workload.cap_adds),
                    # As `docker stack deploy` writes a target: relative to /run/secrets.
                    "Secrets": [
                        {"File": {"Name": f.path.removeprefix("/run/secrets/")}}
                        for f in workload.files
                    ],
                    "Mounts": [
                        {"Type": "volume", "Source": v.volume, "Target": v.target}
                        for v in workload.volumes
                    ],
                },
                "Resources": {
                    "Limits": {
                        "MemoryBytes": (limits.memory_mib or 0) * 1024 * 1024,
                        "NanoCPUs": int((limits.cpus or 0) * 1e9),
                    },
                    "Reservations": {
                        "MemoryBytes": (limits.memory_reservation_mib or 0) * 1024 * 1024
                    },
                },
                "RestartPolicy": {
                    "Condition": RESTART[workload.restart],
                    "MaxAttempts": workload.restart_retries,
                },
                "Placement": {"Constraints": list(rollout.placement)},
                "Networks": [{"Target": network_id(n)} for n in sorted(networks)],
            },
        },
    }


@dataclass(frozen=True)
class FakeManager(DockerCli):
    """A manager answering ``service`` and ``network`` listings and inspections."""

    services: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        assert timeout is not None, "every manager call is bounded"
        self.calls.append(args)
        answers: Mapping[tuple[str, str], str] = {
            ("service", "ls"): "\n".join(s["ID"] for s in self.services),
            ("service", "inspect"): json.dumps(self.services),
            ("network", "ls"): "\n".join(n["Id"] for n in self.networks),
            ("network", "inspect"): json.dumps(self.networks),
        }
        return subprocess.CompletedProcess(args, 0, answers[(args[0], args[1])], "")


@pytest.fixture(scope="module")
def expected() -> Expected:
    settings = load_settings("cluster", stack_config("cluster"))
    found = expected_from_plan(plan_config("cluster", stack_config("cluster")), settings)
    # The pushed builds' digests are known only after `up`: as the swarm would run them.
    return found


def manager_for(expected: Expected) -> FakeManager:
    services = [
        running_service(
            w, expected.env_names.get(w.name), expected.service_networks.get(w.name, frozenset())
        )
        for w in expected.workloads
    ]
    networks = [
        {"Id": network_id(str(n.name)), "Name": n.name, "Internal": n.internal}
        for n in expected.networks
    ]
    return FakeManager("ssh://deploy@manager", services=services, networks=networks)


def service_named(manager: FakeManager, name: str) -> dict[str, Any]:
    return next(s for s in manager.services if s["Spec"]["Name"] == name)


def test_a_swarm_that_runs_the_plan_has_no_drift(expected: Expected) -> None:
    assert {w.type for w in expected.workloads} == {"docker:index/service:Service"}
    manager = manager_for(expected)
    drifts = find_swarm_drift(expected, manager)
    assert drifts == []
    output, status = report("cluster", drifts, expected)
    assert (output, status) == (
        f"depot drift: stack cluster: none; the swarm runs what the plan says "
        f"({len(expected.workloads)} services, {len(expected.networks)} networks)\n",
        0,
    )


def test_each_change_by_hand_is_one_line_and_values_never_show(expected: Expected) -> None:
    manager = manager_for(expected)
    discovery = service_named(manager, "depot_discovery")
    discovery["Spec"]["Mode"]["Replicated"]["Replicas"] = 3  # docker service scale
    discovery["Spec"]["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] = 200 * 1024 * 1024
    discovery["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].append(f"DEBUG={CANARY}")
    postgres = service_named(manager, "depot_postgres")
    postgres["Spec"]["TaskTemplate"]["Placement"]["Constraints"] = []
    postgres["Spec"]["UpdateConfig"]["Order"] = "start-first"
    grafana = service_named(manager, "depot_grafana")
    grafana["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = (
        "grafana/grafana:latest@sha256:" + "1" * 64
    )
    stray = copy.deepcopy(grafana)
    stray["ID"], stray["Spec"]["Name"] = "id-stray", "depot_adminer"
    manager.services.append(stray)
    manager.services.remove(service_named(manager, "depot_rtk-base"))
    next(n for n in manager.networks if n["Name"] == "database-network")["Internal"] = False
    lines = [d.line() for d in find_swarm_drift(expected, manager)]
    planned_grafana = next(w.image for w in expected.workloads if w.name == "depot-grafana")
    assert lines == [
        "depot-discovery replicas: 3 on the swarm, the plan says 2",
        "depot-discovery memory: 200 MiB on the swarm, the plan says 256 MiB",
        "depot-discovery env: DEBUG on the swarm only",
        f"depot-grafana image: runs grafana/grafana:latest@sha256:{'1' * 64}, the plan says "
        f"{planned_grafana}",
        "depot-postgres placement: none on the swarm, the plan says "
        "node.labels.depot.postgres-data == true",
        "depot-postgres update order: start-first on the swarm, the plan says stop-first",
        "depot-rtk-base service: not on the swarm; the plan runs it",
        "depot_adminer service: on the swarm; the plan has no such service",
        "database-network internal: no on the swarm, the plan says yes",
    ]
    assert not any(CANARY in line for line in lines)


def test_postgres_updated_without_its_data_lock_is_reported(expected: Expected) -> None:
    manager = manager_for(expected)
    # `docker service update --entrypoint ""`: the image's own entrypoint, no lock.
    postgres = service_named(manager, "depot_postgres")["Spec"]["TaskTemplate"]
    del postgres["ContainerSpec"]["Command"]
    discovery = service_named(manager, "depot_discovery")["Spec"]["TaskTemplate"]
    discovery["ContainerSpec"]["Command"] = ["/bin/sh", "-c", "sleep 1"]
    assert [d.line() for d in find_swarm_drift(expected, manager)] == [
        "depot-discovery entrypoint: /bin/sh -c sleep 1 on the swarm, the plan says the image's "
        "own",
        "depot-postgres entrypoint: not the plan's data lock on the swarm: a second postgres "
        "started on its data directory would not wait for this one to stop",
    ]


def test_a_service_made_by_pulumi_is_matched_too(expected: Expected) -> None:
    manager = manager_for(expected)
    for service in manager.services:
        service["Spec"]["Name"] = service["Spec"]["Name"].replace("depot_", "depot-", 1)
    assert find_swarm_drift(expected, manager) == []


def test_drift_on_a_swarm_without_a_leader_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def hangs(self: DockerCli, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert kwargs.get("timeout") == 10
        raise DockerError(f"docker {args[0]} at {self.host} did not answer within 10 s")

    monkeypatch.setattr(DockerCli, "run", hangs)
    assert main(["drift", "--stack", "cluster", "--docker-host", "unix:///run/m.sock"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(
        "depot drift: the swarm has no leader: its manager at unix:///run/m.sock did not answer "
        "`docker node ls` within 10 s"
    )
