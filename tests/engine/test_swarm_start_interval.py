"""What a start-first rolling update costs on Swarm with and without healthcheck start_interval.

pulumi_docker 5.2.0's ``docker.Service`` has no ``start_interval``: a cluster deployed by ``pulumi
up`` rolls without it, while the stack file (``docker stack deploy``) carries it. Two services
made as the program makes discovery on the cluster stack — its replicas, healthcheck, update and
rollback settings — differing only in ``start_interval``, are updated at once, and each timed
until every task is replaced and healthy. Swarm's update monitor (the healthcheck's worst case)
follows the last task either way before the update is ``completed``, so it is not waited for
here; the single-node swarm test measures a whole update (tests/engine/test_swarm.py).

The swarm is one of its own: a ``dockerd`` in a network namespace (tests/engine/multinode.py),
holding only the rust-service stand-in. It shares nothing with the engine's fixed names or its
Swarm, so on three workers it runs beside the single-engine tests (tests/engine/conftest.py).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from depot.catalog import Healthcheck
from depot.config import load_settings
from depot.model import deployments
from depot.swarm import go_duration, update_policy
from tests.conftest import stack_config
from tests.engine.conftest import FIGURES
from tests.engine.multinode import Node, NodeRole, cluster_of, leftovers, multinode_unavailable
from tests.engine.swarm import wait_until

pytestmark = pytest.mark.engine

SERVICE = "discovery"  # a stateless service with two replicas in the cluster stack
ROLL_TIMEOUT = 120.0
POLL = 0.25


def _deployment() -> Any:
    settings = load_settings("cluster", stack_config("cluster"))
    return next(d for d in deployments(settings) if d.spec.name == SERVICE)


@pytest.fixture(scope="module")
def own_swarm(standin_builds: dict[str, str]) -> Iterator[Node]:
    """A single-node swarm of its own, holding the rust-service stand-in; removed afterwards."""
    reason = multinode_unavailable()
    if reason:
        pytest.skip(f"a swarm of its own: {reason}")
    with cluster_of([NodeRole("start-interval", {})]) as cluster:
        (node,) = cluster.nodes
        # 2 MB from the machine's engine: no registry, the services never resolve the image.
        tag = standin_builds["rust-service"]
        with subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE) as saved:
            node.docker("load", "--quiet", stdin=saved.stdout, timeout=60)
        assert saved.returncode == 0, f"docker save {tag} failed"
        yield node
    left = leftovers(cluster)
    assert not left, f"the swarm of its own left {left} on this machine"


def _create(node: Node, name: str, image: str, check: Healthcheck, start_interval: bool) -> None:
    """The service as ``to_service_args`` makes discovery's, through the CLI (a shell form of
    the same probe); ``start_interval`` only where asked. (``service update`` cannot take it
    away: ``--health-start-interval 0s`` leaves it as it was.)"""
    deployment = _deployment()
    update = update_policy(deployment)
    probe = " ".join(check.test[1:])
    node.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", name,
        "--replicas", str(deployment.replicas),
        "--env", f"PORT={deployment.spec.port}",
        "--health-cmd", probe,
        "--health-interval", go_duration(check.interval),
        "--health-timeout", go_duration(check.timeout),
        "--health-retries", str(check.retries),
        "--health-start-period", go_duration(check.start_period),
        *(["--health-start-interval", f"{check.start_interval}s"] if start_interval else []),
        "--update-parallelism", str(update.parallelism),
        "--update-order", update.order,
        "--update-failure-action", update.failure_action,
        "--update-monitor", go_duration(update.monitor_seconds),
        "--rollback-parallelism", str(update.parallelism),
        "--rollback-order", update.order,
        "--rollback-monitor", go_duration(update.monitor_seconds),
        *(["--user", deployment.spec.user] if deployment.spec.user else []),
        "--init",
        image,
    )  # fmt: skip


def _tasks(node: Node, name: str) -> list[dict[str, Any]]:
    listed = node.docker("service", "ps", "--quiet", "--no-trunc", name, check=False).stdout.split()
    if not listed:
        return []
    found: list[dict[str, Any]] = json.loads(node.docker("inspect", *listed).stdout)
    return found


def _healthy(node: Node, task: dict[str, Any]) -> bool:
    container = task["Status"].get("ContainerStatus", {}).get("ContainerID")
    if task["Status"]["State"] != "running" or not container:
        return False
    health = node.docker("inspect", "--format", "{{.State.Health.Status}}", container, check=False)
    return health.stdout.strip() == "healthy"


def _rolled(node: Node, name: str, replicas: int, marker: str) -> bool:
    """Every running task carries ``marker`` (the update) and is healthy, none of the old runs."""
    tasks = _tasks(node, name)
    wanted = [t for t in tasks if t["DesiredState"] == "running"]
    running = [t for t in tasks if t["Status"]["State"] == "running"]
    updated = [t for t in wanted if marker in (t["Spec"]["ContainerSpec"].get("Env") or [])]
    return (
        len(updated) == replicas == len(running)
        and all(marker in (t["Spec"]["ContainerSpec"].get("Env") or []) for t in running)
        and all(_healthy(node, t) for t in updated)
    )


def _start_intervals(node: Node, name: str) -> set[int]:
    """The healthcheck start_interval (ns; 0 where unset) of the tasks meant to run."""
    return {
        t["Spec"]["ContainerSpec"].get("Healthcheck", {}).get("StartInterval", 0)
        for t in _tasks(node, name)
        if t["DesiredState"] == "running"
    }


def test_a_rolling_update_without_start_interval_waits_an_interval_per_task(
    own_swarm: Node, standin_builds: dict[str, str]
) -> None:
    node = own_swarm
    deployment = _deployment()
    check, replicas = deployment.spec.healthcheck, deployment.replicas
    names = {
        True: f"depot-start-interval-{secrets.token_hex(3)}",
        False: f"depot-no-start-interval-{secrets.token_hex(3)}",
    }
    for with_it, name in names.items():
        _create(node, name, standin_builds["rust-service"], check, start_interval=with_it)
    port = f"PORT={deployment.spec.port}"
    wait_until(
        "both converged healthy",
        lambda: all(_rolled(node, name, replicas, port) for name in names.values()),
        ROLL_TIMEOUT,
    )
    # Both updated at once (a change of their environment), each timed on its own.
    took: dict[bool, float] = {}

    def roll(with_it: bool) -> None:
        started = time.monotonic()
        node.docker("service", "update", "--detach", "--env-add", "ROLL=1", names[with_it])
        wait_until(
            f"{names[with_it]} rolled",
            lambda: _rolled(node, names[with_it], replicas, "ROLL=1"),
            ROLL_TIMEOUT,
            POLL,
        )
        took[with_it] = time.monotonic() - started

    threads = [threading.Thread(target=roll, args=(with_it,)) for with_it in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=ROLL_TIMEOUT + 30)
    intervals = {with_it: _start_intervals(node, name) for with_it, name in names.items()}
    assert set(took) == {True, False}, f"an update did not finish: {took}"
    assert intervals == {True: {check.start_interval * 10**9}, False: {0}}, intervals
    monitor = update_policy(deployment).monitor_seconds
    FIGURES[f"swarm: start-first rolling update of {SERVICE} ({replicas} replicas)"] = (
        f"{took[False]:.1f} s without start_interval (as `pulumi up` creates the service), "
        f"{took[True]:.1f} s with start_interval {check.start_interval} s (the stack file); "
        f"then Swarm's update monitor ({go_duration(monitor)}) before `completed`, either way"
    )
    # Without it each new task's first probe comes one interval after its start, and the next
    # task starts only once the one before is healthy.
    assert took[False] >= replicas * check.interval * 0.9, took
    assert took[True] <= replicas * check.interval / 2, took
    assert took[False] - took[True] >= replicas * check.interval * 0.6, took
