"""What a start-first rolling update costs on Swarm with and without healthcheck start_interval.

pulumi_docker 5.2.0's ``docker.Service`` has no ``start_interval``: a cluster deployed by ``pulumi
up`` rolls without it, while the stack file (``docker stack deploy``) carries it. Two services
made as the program makes discovery on the cluster stack — its replicas, healthcheck, update and
rollback settings — differing only in ``start_interval``, are updated at once on a single-node
swarm of the engine, and each timed until every task is replaced and healthy. Swarm's update
monitor (the healthcheck's worst case) follows the last task either way before the update is
``completed``, so it is not waited for here; the single-node swarm test measures a whole update
(tests/engine/test_swarm.py).
"""

from __future__ import annotations

import json
import secrets
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
from tests.engine.harness import docker
from tests.engine.swarm import SWARM_NETWORKS, wait_until

pytestmark = pytest.mark.engine

SERVICE = "discovery"  # a stateless service with two replicas in the cluster stack
ROLL_TIMEOUT = 120.0
POLL = 0.25


def _deployment() -> Any:
    settings = load_settings("cluster", stack_config("cluster"))
    return next(d for d in deployments(settings) if d.spec.name == SERVICE)


@pytest.fixture(scope="module")
def single_node_swarm() -> Iterator[None]:
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state != "inactive":
        pytest.skip(f"this engine is already in a swarm (state {state!r}): it is left alone")
    networks_before = set(docker("network", "ls", "--format", "{{.Name}}").stdout.split())
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        yield
    finally:
        docker("swarm", "leave", "--force", check=False)
        for network in SWARM_NETWORKS:
            if network not in networks_before:
                docker("network", "rm", network, check=False)
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == "inactive"


def _create(name: str, image: str, check: Healthcheck, start_interval: bool) -> None:
    """The service as ``to_service_args`` makes discovery's, through the CLI (a shell form of
    the same probe); ``start_interval`` only where asked."""
    deployment = _deployment()
    update = update_policy(deployment)
    probe = " ".join(check.test[1:])
    docker(
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


def _tasks(name: str) -> list[dict[str, Any]]:
    listed = docker("service", "ps", "--quiet", "--no-trunc", name, check=False).stdout.split()
    if not listed:
        return []
    found: list[dict[str, Any]] = json.loads(docker("inspect", *listed).stdout)
    return found


def _healthy(task: dict[str, Any]) -> bool:
    container = task["Status"].get("ContainerStatus", {}).get("ContainerID")
    if task["Status"]["State"] != "running" or not container:
        return False
    health = docker("inspect", "--format", "{{.State.Health.Status}}", container, check=False)
    return health.stdout.strip() == "healthy"


def _rolled(name: str, replicas: int, marker: str) -> bool:
    """Every running task carries ``marker`` (the update) and is healthy, none of the old runs."""
    wanted = [t for t in _tasks(name) if t["DesiredState"] == "running"]
    running = [t for t in _tasks(name) if t["Status"]["State"] == "running"]
    updated = [t for t in wanted if marker in (t["Spec"]["ContainerSpec"].get("Env") or [])]
    return (
        len(updated) == replicas == len(running)
        and all(marker in (t["Spec"]["ContainerSpec"].get("Env") or []) for t in running)
        and all(_healthy(t) for t in updated)
    )


def test_a_rolling_update_without_start_interval_waits_an_interval_per_task(
    single_node_swarm: None, standin_images: dict[str, str]
) -> None:
    deployment = _deployment()
    check, replicas = deployment.spec.healthcheck, deployment.replicas
    names = {
        True: f"depot-start-interval-{secrets.token_hex(3)}",
        False: f"depot-no-start-interval-{secrets.token_hex(3)}",
    }
    try:
        for with_it, name in names.items():
            _create(name, standin_images["rust-service"], check, start_interval=with_it)
        port = f"PORT={deployment.spec.port}"
        wait_until(
            "both converged healthy",
            lambda: all(_rolled(name, replicas, port) for name in names.values()),
            ROLL_TIMEOUT,
        )
        # Both updated at once (a change of their environment), each timed on its own.
        took: dict[bool, float] = {}

        def roll(with_it: bool) -> None:
            started = time.monotonic()
            docker("service", "update", "--detach", "--env-add", "ROLL=1", names[with_it])
            wait_until(
                f"{names[with_it]} rolled",
                lambda: _rolled(names[with_it], replicas, "ROLL=1"),
                ROLL_TIMEOUT,
                POLL,
            )
            took[with_it] = time.monotonic() - started

        threads = [threading.Thread(target=roll, args=(with_it,)) for with_it in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=ROLL_TIMEOUT + 30)
    finally:
        docker("service", "rm", *names.values(), check=False)
        wait_until(
            "the services' containers gone",
            lambda: not docker(
                "ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={names[True]}",
                "--filter", f"label=com.docker.swarm.service.name={names[False]}",
            ).stdout.split(),
            60,
        )  # fmt: skip
    assert set(took) == {True, False}, f"an update did not finish: {took}"
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
