"""The workload view: a container and a Swarm service read as the same facts, the rules with them.

The Swarm service is registered through the provider's own SDK under the recording mocks, so the
engine property names the adapter reads are the SDK's, not a guess.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_docker as docker
import pytest

from depot.config.loader import RawConfig
from depot.config.settings import PolicySettings
from depot.policy.check import check_plan
from depot.recording import record
from depot.resource_types import CONTAINER, SERVICE
from depot.review.plan import plan_from
from depot.review.planned import Plan, PlannedResource
from depot.review.workload import (
    WORKLOAD_TYPES,
    BindMount,
    DeliveredFile,
    NetworkAttachment,
    PublishedPort,
    TmpfsMount,
    VolumeMount,
    duration_seconds,
    workload,
)
from tests.conftest import run_stack

PROD = PolicySettings(enforcement="mandatory", production=True)
DIGEST = "registry.example.com/depot-discovery@sha256:" + "a" * 64


@pytest.fixture(scope="module")
def prod() -> Plan:
    return plan_from(run_stack("prod"))


def _named(plan: Plan, name: str) -> PlannedResource:
    [found] = [r for r in plan.resources if r.name == name]
    return found


def test_every_workload_type_has_one_adapter() -> None:
    assert frozenset({CONTAINER, SERVICE}) == WORKLOAD_TYPES


def test_postgres_container_as_a_workload(prod: Plan) -> None:
    postgres = workload(_named(prod, "postgres-container"), prod.by_key())
    assert postgres.name == "depot-postgres"
    assert postgres.image is not None
    assert postgres.image.startswith("postgres:17.2-alpine@sha256:")
    assert not postgres.image_built_here
    assert postgres.volumes == (
        VolumeMount("postgres-data", "/var/lib/postgresql/data", read_only=False),
    )
    assert postgres.files == (
        DeliveredFile("/run/secrets/database_password", True, "70", "70", "0400"),
    )
    assert postgres.healthcheck is not None
    assert (postgres.healthcheck.interval, postgres.healthcheck.retries) == (5, 5)
    assert (postgres.healthcheck.start_period, postgres.healthcheck.start_interval) == (30, 1)
    assert (postgres.healthcheck_worst_case, postgres.wait_timeout) == (70, 75)
    assert (postgres.limits.memory_mib, postgres.limits.cpus) == (1024, 1.0)
    assert (postgres.restart, postgres.stop_grace_seconds) == ("always", 30)
    assert postgres.networks == (NetworkAttachment("database-network", ("postgres",)),)
    assert postgres.no_new_privileges is True
    assert postgres.rollout is None


def test_console_container_as_a_workload(prod: Plan) -> None:
    console = workload(_named(prod, "console-container"), prod.by_key())
    assert console.ports == (PublishedPort(80, 80, "0.0.0.0"),)
    assert BindMount("/data/sessions", "/data/sessions", read_only=False) in console.binds
    assert TmpfsMount("/tmp", ("rw", "noexec", "nosuid", "size=64m")) in console.tmpfs


def test_a_built_image_is_known_as_ours(prod: Plan) -> None:
    discovery = workload(_named(prod, "discovery-container"), prod.by_key())
    assert discovery.image_built_here
    assert discovery.user == "10001:10001"


def test_a_plan_read_back_from_json_finds_the_image_through_the_component(prod: Plan) -> None:
    # JSON keeps no dependencies; the container and its image share the service's component.
    again = Plan.from_json(prod.to_json())
    container = _named(again, "postgres-container")
    assert container.dependencies == ()
    assert (
        workload(container, again.by_key()).image
        == workload(_named(prod, "postgres-container"), prod.by_key()).image
    )


def test_crossguard_numbers_read_as_whole_numbers() -> None:
    # pulumi-policy hands every number over as a double, from a protobuf Struct.
    container = PlannedResource(
        CONTAINER,
        "c",
        None,
        {"waitTimeout": 45.0, "memory": 256.0, "maxRetryCount": 3.0, "restart": "on-failure"},
        {},
    )
    seen = workload(container)
    assert (seen.wait_timeout, seen.limits.memory_mib, seen.restart_retries) == (45, 256, 3)


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("10s", 10), ("1m30s", 90), ("2h", 7200), ("1m0.5s", 60), ("500ms", 0), ("90", 90),
     ("0s", 0), (None, 0), ("ten", 0), ("10s garbage", 0)],
)  # fmt: skip
def test_durations_as_the_engine_writes_them(written: object, seconds: int) -> None:
    assert duration_seconds(written) == seconds


# --- a Swarm service ---------------------------------------------------------------------------


# The network is named as the program names it; the provider would rather have its ID.
SWARM_NETWORK_NAME = pytest.mark.filterwarnings("ignore:Use the id attribute:DeprecationWarning")


def _swarm_plan(**changes: Any) -> Plan:
    """A plan holding discovery as a Swarm service, with ``changes`` to its container spec."""

    def program() -> None:
        password = docker.Secret(
            "database-password",
            name="database_password",
            data=pulumi.Output.secret("aHVudGVyMg=="),
        )
        spec: dict[str, Any] = {
            "image": DIGEST,
            "user": "10001:10001",
            "read_only": True,
            "cap_drops": ["ALL"],
            "init": True,
            "env": {"PORT": "4860"},
            "stop_grace_period": "1m",
            "healthcheck": docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
                tests=["CMD", "wget", "-q", "-O-", "http://localhost:4860/health"],
                interval="10s",
                timeout="3s",
                retries=3,
                start_period="30s",
            ),
            "mounts": [
                docker.ServiceTaskSpecContainerSpecMountArgs(
                    type="tmpfs",
                    target="/tmp",
                    tmpfs_options=docker.ServiceTaskSpecContainerSpecMountTmpfsOptionsArgs(
                        size_bytes=64 * 1024 * 1024, mode=0o1777
                    ),
                )
            ],
            "secrets": [
                docker.ServiceTaskSpecContainerSpecSecretArgs(
                    secret_id=password.id,
                    secret_name="database_password",  # noqa: S106 - a name, not a password
                    file_name="/run/secrets/database_password",
                    file_uid="10001",
                    file_gid="10001",
                    file_mode=0o400,
                )
            ],
            **changes,
        }
        docker.Service(
            "discovery-service",
            name="depot-discovery",
            task_spec=docker.ServiceTaskSpecArgs(
                container_spec=docker.ServiceTaskSpecContainerSpecArgs(**spec),
                resources=docker.ServiceTaskSpecResourcesArgs(
                    limits=docker.ServiceTaskSpecResourcesLimitsArgs(
                        memory_bytes=256 * 1024 * 1024, nano_cpus=500_000_000
                    ),
                ),
                restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
                    condition="on-failure", max_attempts=3
                ),
                log_driver=docker.ServiceTaskSpecLogDriverArgs(
                    name="json-file", options={"max-size": "10m", "max-file": "3"}
                ),
                networks_advanceds=[
                    docker.ServiceTaskSpecNetworksAdvancedArgs(
                        name="depot-network", aliases=["discovery"]
                    )
                ],
            ),
            mode=docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=2)),
            update_config=docker.ServiceUpdateConfigArgs(
                order="start-first", parallelism=1, failure_action="rollback", monitor="1m30s"
            ),
            converge_config=docker.ServiceConvergeConfigArgs(timeout="2m"),
            opts=pulumi.ResourceOptions(delete_before_replace=True),
        )

    return plan_from(record(program, stack="cluster", config=RawConfig({}, frozenset())))


@SWARM_NETWORK_NAME
def test_a_swarm_service_reads_as_the_same_workload() -> None:
    plan = _swarm_plan()
    service = workload(_named(plan, "discovery-service"), plan.by_key())
    assert (service.name, service.image, service.user) == ("depot-discovery", DIGEST, "10001:10001")
    assert (service.read_only_root, service.cap_drops, service.init) == (True, ("ALL",), True)
    assert service.healthcheck is not None
    assert service.healthcheck_worst_case == 69
    assert (service.waited_for, service.wait_timeout) == (True, 120)
    assert (service.restart, service.restart_retries) == ("on-failure", 3)
    assert (service.limits.memory_mib, service.limits.cpus) == (256, 0.5)
    assert service.tmpfs == (TmpfsMount("/tmp", ("size=67108864", "mode=1777")),)
    assert service.files == (
        DeliveredFile("/run/secrets/database_password", True, "10001", "10001", "0400"),
    )
    assert [(v.name, v.value_secret) for v in service.env] == [("PORT", False)]
    assert service.networks == (NetworkAttachment("depot-network", ("discovery",)),)
    assert (service.log_driver, dict(service.log_options)) == (
        "json-file",
        {"max-size": "10m", "max-file": "3"},
    )
    assert service.stop_grace_seconds == 60
    assert service.rollout is not None
    assert (service.rollout.replicas, service.rollout.update_order) == (2, "start-first")
    assert service.rollout.update_monitor_seconds == 90


@SWARM_NETWORK_NAME
def test_the_rules_hold_a_swarm_service_without_a_rule_rewritten() -> None:
    assert check_plan(_swarm_plan(), PROD) == []
    broken = _swarm_plan(cap_drops=[], user="0:0", read_only=False)
    found = sorted((v.rule.id, v.message) for v in check_plan(broken, PROD))
    assert found == [
        ("capabilities", "keeps Docker's default capabilities (drop ALL)"),
        ("non-root-user", "runs as root (uid 0)"),
        ("read-only-root", "has a writable root filesystem and no recorded exception"),
    ]
