"""`depot doctor`'s cluster section: managers, nodes, labels, engines, services and images.

The manager is a stand-in answering ``docker node inspect``, ``service inspect`` and ``service
ps`` with records shaped as Engine 26's; tests/engine/test_multinode.py reads a real three-node
swarm with the same code.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from depot.host.cluster import (
    NoLeaderError,
    SwarmTask,
    depot_service,
    manager_call,
    parse_nodes,
    parse_tasks,
    require_leader,
)
from depot.host.docker import DockerCli, DockerError
from depot.host.doctor import Finding, diagnose, engine_versions, image_reach, manager_quorum
from tests.test_doctor import INFO, FakeSwarm, cluster_settings

MANAGER_INFO = {
    **INFO,
    "Runtimes": {"nvidia": {}},
    "Swarm": {"LocalNodeState": "active", "ControlAvailable": True},
}


def node(
    hostname: str,
    *,
    labels: dict[str, str] | None = None,
    state: str = "ready",
    manager: str | None = "reachable",
    leader: bool = False,
    engine: str = "26.1.5",
) -> dict[str, Any]:
    """A node as ``docker node inspect`` gives it."""
    raw: dict[str, Any] = {
        "ID": f"id-{hostname}",
        "Spec": {"Labels": labels or {}, "Role": "manager" if manager else "worker",
                 "Availability": "active"},
        "Description": {"Hostname": hostname, "Engine": {"EngineVersion": engine}},
        "Status": {"State": state, "Addr": "10.0.0.1"},
    }  # fmt: skip
    if manager:
        raw["ManagerStatus"] = {"Leader": leader, "Reachability": manager, "Addr": "10.0.0.1:2377"}
    return raw


DATA = {"depot.postgres-data": "true"}
HEALTHY_NODES = (
    node("data", labels=DATA, leader=True),
    node("gpu", labels={"depot.gpu": "true"}),
    node("rtk", labels={"depot.gnss": "true"}),
)


def service(name: str, replicas: int) -> dict[str, Any]:
    return {
        "ID": f"sid-{name}",
        "Spec": {"Name": name, "Mode": {"Replicated": {"Replicas": replicas}}},
    }


def task(
    service_name: str,
    slot: int,
    node_name: str,
    state: str = "Running",
    *,
    desired: str = "Running",
    error: str = "",
    image: str = "img:1",
) -> dict[str, Any]:
    return {
        "ID": f"t-{service_name}-{slot}-{node_name}", "Name": f"{service_name}.{slot}",
        "Node": node_name, "DesiredState": desired, "CurrentState": f"{state} 3 minutes ago",
        "Error": error, "Image": image, "Ports": "",
    }  # fmt: skip


def swarm(**fields: Any) -> FakeSwarm:
    labels = {"depot.postgres-data": ("data",), "depot.gpu": ("gpu",), "depot.gnss": ("rtk",)}
    return FakeSwarm(host="ssh://deploy@manager", info=MANAGER_INFO, labels=labels, **fields)


def cluster_lines(findings: list[Finding]) -> list[str]:
    sections = ("managers", "nodes", "labels", "engines", "services", "images")
    return [f.line() for f in findings if f.check in sections]


def test_a_healthy_three_manager_cluster_is_ready_line_by_line(tmp_path: Path) -> None:
    services = (service("depot_postgres", 1), service("depot_discovery", 2))
    tasks = (
        task("depot_postgres", 1, "data"),
        task("depot_discovery", 1, "data"),
        task("depot_discovery", 2, "gpu"),
    )
    found = diagnose(
        cluster_settings(tmp_path), swarm(nodes=HEALTHY_NODES, services=services, tasks=tasks)
    )
    assert cluster_lines(found) == [
        "ok        managers: 3 managers (data, gpu, rtk): the swarm keeps a leader with 1 of "
        "them lost",
        "ok        nodes: 3 ready: data, gpu, rtk",
        "ok        labels: postgres: depot.postgres-data=true on data",
        "ok        labels: splat-worker: depot.gpu=true on gpu",
        "ok        labels: rtk-base: depot.gnss=true on rtk",
        "ok        labels: backup: depot.postgres-data=true on data",
        "ok        engines: 26.1.5 on every node",
        "ok        services: discovery: 2/2 running",
        "ok        services: postgres: 1/1 running",
        "ok        images: every task got its image on its node (data, gpu); a node that has run "
        "none is proven when it first does",
    ]


@pytest.mark.parametrize(
    ("count", "says"),
    [
        (1, "1 manager (m0): losing it stops every change to the swarm (Raft needs a majority, "
            "1 of 1)"),
        (2, "2 managers (m0, m1): losing either stops every change to the swarm (Raft needs a "
            "majority, 2 of 2)"),
        (4, "4 managers: an even count tolerates no more lost managers than 3 do (3 of 4 must "
            "stay) and splits worse"),
    ],
)  # fmt: skip
def test_fewer_than_three_or_an_even_count_of_managers_is_a_problem(count: int, says: str) -> None:
    nodes = parse_nodes("\n".join(json.dumps(node(f"m{i}")) for i in range(count)))
    (finding,) = manager_quorum(nodes)
    assert finding.status == "problem"
    assert finding.message.startswith(says), finding.message


def test_five_managers_keep_a_leader_with_two_lost() -> None:
    nodes = parse_nodes("\n".join(json.dumps(node(f"m{i}")) for i in range(5)))
    assert [f.status for f in manager_quorum(nodes)] == ["ok"]
    assert "with 2 of them lost" in next(iter(manager_quorum(nodes))).message


def test_workers_do_not_count_as_managers() -> None:
    nodes = parse_nodes(
        "\n".join(
            json.dumps(n) for n in (node("m"), node("w1", manager=None), node("w2", manager=None))
        )
    )
    (finding,) = manager_quorum(nodes)
    assert finding.status == "problem"
    assert finding.message.startswith("1 manager (m)")


def test_a_lost_data_node_is_said_with_the_way_back(tmp_path: Path) -> None:
    nodes = (
        node("data", labels=DATA, state="down", manager="unreachable"),
        node("gpu", labels={"depot.gpu": "true"}, leader=True),
        node("rtk", labels={"depot.gnss": "true"}),
    )
    services = (service("depot_postgres", 1),)
    pending = "no suitable node (scheduling constraints not satisfied on 2 nodes)"
    tasks = (
        task("depot_postgres", 1, "", "Pending", error=pending),
        task("depot_postgres", 1, "data", "Running", desired="Shutdown"),
    )
    found = diagnose(cluster_settings(tmp_path), swarm(nodes=nodes, services=services, tasks=tasks))
    problems = [f.line() for f in found if f.status == "problem"]
    assert problems == [
        "PROBLEM   managers: manager data is unreachable: 2 of 3 must reach each other for the "
        "swarm to keep its leader; bring it back, or if it is lost for good: `docker node demote "
        "data && docker node rm --force data`, then join a new manager (docs/several-hosts.md)",
        "PROBLEM   nodes: data is down: its tasks are started on other nodes where their "
        "constraints allow, and a service pinned to it cannot run; bring it back, or remove it "
        "(`docker node rm --force data`)",
        "PROBLEM   labels: postgres: depot.postgres-data=true is only on data, which is not up: "
        "postgres cannot run anywhere. If the node is lost for good, move the label to another "
        'node, redeploy and restore the newest off-host backup (docs/several-hosts.md, "The '
        'data node lost for good")',
        "PROBLEM   labels: backup: depot.postgres-data=true is only on data, which is not up: "
        "backup cannot run anywhere. If the node is lost for good, move the label to another "
        'node, redeploy and restore the newest off-host backup (docs/several-hosts.md, "The '
        'data node lost for good")',
        f"PROBLEM   services: postgres: 0/1 running: {pending}",
    ]


def test_the_data_label_on_two_nodes_would_start_postgres_on_an_empty_volume(
    tmp_path: Path,
) -> None:
    nodes = (node("data", labels=DATA, leader=True), node("gpu", labels=DATA), node("rtk"))
    found = diagnose(cluster_settings(tmp_path), swarm(nodes=nodes))
    lines = [f.message for f in found if f.check == "labels" and f.status == "problem"]
    assert lines[0] == (
        "postgres: depot.postgres-data=true is on 2 nodes (data, gpu): its volume is local to "
        "one node, and a task moved to another would start on an empty one; keep the label on "
        "one node"
    )


def test_engines_below_the_minimum_or_of_different_majors_are_problems() -> None:
    nodes = parse_nodes(
        "\n".join(
            json.dumps(n)
            for n in (node("a", engine="26.1.5"), node("b", engine="19.03.8"), node("c"))
        )
    )
    messages = [f.message for f in engine_versions(nodes)]
    assert messages[0].startswith("b runs Docker Engine 19.03.8, not 20.10 or newer:")
    assert messages[1].startswith(
        "the nodes run different engines (19.03.8 on b; 26.1.5 on a, c): finish the upgrade"
    )
    same = parse_nodes("\n".join(json.dumps(node(h, engine="26.1.5")) for h in "abc"))
    assert [f.line() for f in engine_versions(same)] == ["ok        engines: 26.1.5 on every node"]


def test_a_node_that_cannot_pull_an_image_is_named() -> None:
    image = "registry.example.com/grafana@sha256:abc"
    tasks = [
        SwarmTask("depot_grafana", "gpu", "running", "rejected", f"No such image: {image}", image),
        SwarmTask("depot_grafana", "data", "running", "running", "", image),
    ]
    (finding,) = image_reach(tasks, stack_deployed=True)
    assert finding.line() == (
        "PROBLEM   images: gpu cannot get registry.example.com/grafana: No such image: "
        "registry.example.com/grafana@sha256:abc; log that node in to the registry (or deploy "
        "with registry auth) and check it reaches the registry"
    )
    (unchecked,) = image_reach([], stack_deployed=False)
    assert unchecked.status == "unchecked"


def test_service_ps_lines_and_history_are_read() -> None:
    text = "\n".join(
        [
            json.dumps(task("depot_discovery", 1, "gpu")),
            json.dumps({**task("depot_discovery", 1, "rtk", "Shutdown", desired="Shutdown"),
                        "Name": "\\_ depot_discovery.1"}),
        ]
    )  # fmt: skip
    first, history = parse_tasks(text)
    assert (first.service, first.node, first.state, first.desired) == (
        "depot_discovery", "gpu", "running", "running"
    )  # fmt: skip
    assert (history.service, history.state) == ("depot_discovery", "shutdown")


@pytest.mark.parametrize(
    ("name", "service_name"),
    [("depot_postgres", "postgres"), ("depot-splat-worker", "splat-worker"),
     ("other_postgres", None), ("depot_", None)],
)  # fmt: skip
def test_depot_services_are_known_by_either_runtimes_name(
    name: str, service_name: str | None
) -> None:
    assert depot_service(name) == service_name


class SlowManager(DockerCli):
    """A manager of a swarm without a leader: it hangs (the CLI's timeout), or says so."""

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        assert timeout is not None, "every manager call is bounded"
        assert timeout <= 10, "every manager call is bounded"
        if self.host.endswith("hangs"):
            raise DockerError(f"docker {args[0]} at {self.host} did not answer within {timeout} s")
        said = (
            "Error response from daemon: rpc error: code = Unknown desc = The swarm does not "
            "have a leader. It's possible that too few managers are online."
        )
        return subprocess.CompletedProcess(args, 1, "", said)


@pytest.mark.parametrize("host", ["ssh://m/hangs", "ssh://m/says"])
def test_a_swarm_without_a_leader_is_one_line_and_bounded(host: str) -> None:
    with pytest.raises(NoLeaderError) as raised:
        require_leader(SlowManager(host))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"the swarm has no leader: its manager at {host} did not answer")
    assert "docker swarm init --force-new-cluster" in message


def test_another_manager_error_is_not_taken_for_a_lost_leader() -> None:
    class NotManager(DockerCli):
        def run(self, *args: str, stdin: str | None = None, timeout: float | None = None
                ) -> subprocess.CompletedProcess[str]:  # fmt: skip
            return subprocess.CompletedProcess(args, 1, "", "This node is not a swarm manager.")

    with pytest.raises(DockerError) as raised:
        manager_call(NotManager("unix:///x.sock"), "node", "ls")
    assert not isinstance(raised.value, NoLeaderError)
    assert "not a swarm manager" in str(raised.value)
