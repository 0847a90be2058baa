"""What dev and prod set differently, and what every container gets in both."""

from __future__ import annotations

import json

import pytest

from depot.recording import Recording
from tests.conftest import containers, env_of, run_stack


def test_dev_restarts_unless_stopped(shipped: dict[str, Recording]) -> None:
    for service, container in containers(shipped["dev"]).items():
        assert container.inputs["restart"] == "unless-stopped", service


def test_prod_always_restarts(shipped: dict[str, Recording]) -> None:
    for service, container in containers(shipped["prod"]).items():
        assert container.inputs["restart"] == "always", service


def test_on_failure_carries_its_retry_count() -> None:
    recording = run_stack("dev", {"depot:restart": "on-failure:4"})
    for container in containers(recording).values():
        assert (container.inputs["restart"], container.inputs["maxRetryCount"]) == ("on-failure", 4)


def test_dev_sets_no_limits(shipped: dict[str, Recording]) -> None:
    for container in containers(shipped["dev"]).values():
        assert not {"memory", "cpus", "memoryReservation"} & set(container.inputs)


def test_prod_limits_every_container(shipped: dict[str, Recording]) -> None:
    for service, container in containers(shipped["prod"]).items():
        inputs = container.inputs
        assert inputs["memory"] > 0, service
        assert float(inputs["cpus"]) > 0, service
        assert 0 < inputs["memoryReservation"] <= inputs["memory"], service


def test_prod_limits_discovery_as_the_reference_does(shipped: dict[str, Recording]) -> None:
    discovery = containers(shipped["prod"])["discovery"].inputs
    assert (discovery["memory"], discovery["cpus"], discovery["memoryReservation"]) == (
        256,
        "0.5",
        128,
    )


def test_dev_logs_at_debug_and_prod_at_info(shipped: dict[str, Recording]) -> None:
    assert env_of(containers(shipped["dev"])["discovery"])["RUST_LOG"] == "discovery=debug"
    assert env_of(containers(shipped["prod"])["discovery"])["RUST_LOG"] == "discovery=info"


def test_dispatch_quiets_sqlx_as_the_reference_does(stack: Recording) -> None:
    assert env_of(containers(stack)["dispatch"])["RUST_LOG"].endswith(",sqlx=warn")


@pytest.mark.parametrize(("service", "port"), [("discovery", "4860"), ("dispatch", "4890")])
def test_rust_services_get_their_port(stack: Recording, service: str, port: str) -> None:
    assert env_of(containers(stack)[service])["PORT"] == port


def test_postgres_creates_the_dispatch_database(stack: Recording) -> None:
    assert env_of(containers(stack)["postgres"])["POSTGRES_DB"] == "dispatch"


def test_every_container_logs_json_with_rotation(stack: Recording) -> None:
    for service, container in containers(stack).items():
        assert container.inputs["logDriver"] == "json-file", service
        assert container.inputs["logOpts"] == {"max-size": "10m", "max-file": "3"}, service


@pytest.mark.parametrize(("service", "port"), [("discovery", "4860"), ("dispatch", "4890")])
def test_metric_services_carry_prometheus_labels(stack: Recording, service: str, port: str) -> None:
    labels = {item["label"]: item["value"] for item in containers(stack)[service].inputs["labels"]}
    assert labels == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": port,
        "prometheus.io/path": "/metrics",
    }


@pytest.mark.parametrize("service", ["console", "grafana", "postgres"])
def test_other_services_are_not_scraped(stack: Recording, service: str) -> None:
    assert containers(stack)[service].inputs.get("labels", []) == []


def _published(recording: Recording) -> dict[str, list[dict[str, object]]]:
    return {
        service: container.inputs["ports"]
        for service, container in containers(recording).items()
        if "ports" in container.inputs
    }


def test_dev_publishes_discovery_on_4860_locally(shipped: dict[str, Recording]) -> None:
    assert _published(shipped["dev"])["discovery"] == [
        {"internal": 4860, "external": 4860, "ip": "127.0.0.1", "protocol": "tcp"}
    ]


def test_prod_publishes_only_the_console(shipped: dict[str, Recording]) -> None:
    assert set(_published(shipped["prod"])) == {"console"}


def test_postgres_is_never_published(stack: Recording) -> None:
    assert "postgres" not in _published(stack)


def test_endpoints_are_stack_outputs(shipped: dict[str, Recording]) -> None:
    assert shipped["dev"].stack_outputs["endpoints"]["discovery"] == "http://127.0.0.1:4860"
    assert shipped["prod"].stack_outputs["endpoints"] == {"console": "http://0.0.0.0:80"}


def test_published_ports_map_the_container_port_to_the_stacks_host_port(
    shipped: dict[str, Recording],
) -> None:
    assert containers(shipped["dev"])["console"].inputs["ports"] == [
        {"internal": 80, "external": 8080, "ip": "127.0.0.1", "protocol": "tcp"}
    ]
    assert containers(shipped["prod"])["console"].inputs["ports"] == [
        {"internal": 80, "external": 80, "ip": "0.0.0.0", "protocol": "tcp"}
    ]


PROD_LIMITS = {
    "discovery": (256, "0.5", 128),
    "dispatch": (256, "0.5", 128),
    "console": (128, "0.25", 64),
    "grafana": (512, "0.5", 256),
    "postgres": (1024, "1", 512),
    "splat-worker": (8192, "4", 4096),
    "rtk-base": (256, "0.5", 128),
    "backup": (512, "0.5", 128),
}


def test_prod_gives_each_container_its_own_limits(shipped: dict[str, Recording]) -> None:
    limits = {
        service: (c.inputs["memory"], c.inputs["cpus"], c.inputs["memoryReservation"])
        for service, c in containers(shipped["prod"]).items()
    }
    assert limits == PROD_LIMITS


@pytest.mark.parametrize(("stack_name", "level"), [("dev", "debug"), ("prod", "info")])
def test_every_rust_service_logs_at_the_stacks_level(
    shipped: dict[str, Recording], stack_name: str, level: str
) -> None:
    for service, container in containers(shipped[stack_name]).items():
        if service in {"discovery", "dispatch", "splat-worker", "rtk-base"}:
            target = service.replace("-", "_")
            assert env_of(container)["RUST_LOG"].startswith(f"{target}={level}"), service


def test_ssh_options_reach_the_docker_provider() -> None:
    recording = run_stack(
        "prod", {"depot:docker": {"host": "ssh://deploy@host", "sshOpts": ["-i", "/key"]}}
    )
    provider = recording.named("docker", "pulumi:providers:docker")
    assert json.loads(provider.inputs["sshOpts"]) == ["-oIdentityFile=/key"]  # normalised
