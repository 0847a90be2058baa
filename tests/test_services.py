"""Containers, images, healthchecks and start order, as the reference deploys them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

import pytest

from depot.paths import DOCKERFILE
from depot.recording import Recording, Registration
from depot.resource_types import BUILD, CONTAINER, REMOTE_IMAGE
from tests.conftest import PROJECT_DIR, containers, run_stack

BASE_SERVICES = {"discovery", "dispatch", "console", "grafana", "postgres"}
BUILT = {"discovery", "dispatch", "splat-worker", "rtk-base"}
BACKUP = {"backup"}  # on in every shipped stack (depot:backup.enabled)

T = TypeVar("T")


def some(items: Iterable[T]) -> list[T]:
    """``items``, failing the test when there are none: a check of every item of nothing
    passes without checking anything."""
    found = list(items)
    assert found, "nothing to check"
    return found


def test_a_check_of_every_item_of_nothing_fails() -> None:
    with pytest.raises(AssertionError, match="nothing to check"):
        some([])


def test_dev_runs_the_base_services_and_its_backups_only(shipped: dict[str, Recording]) -> None:
    assert set(containers(shipped["dev"])) == BASE_SERVICES | BACKUP


def test_prod_adds_the_gpu_and_rtk_profiles(shipped: dict[str, Recording]) -> None:
    assert set(containers(shipped["prod"])) == BASE_SERVICES | BACKUP | {"splat-worker", "rtk-base"}


@pytest.mark.parametrize(
    ("profiles", "extra"),
    [(["gpu"], {"splat-worker"}), (["rtk"], {"rtk-base"}), ([], set())],
)
def test_each_optional_service_exists_only_with_its_profile(
    profiles: list[str], extra: set[str]
) -> None:
    recording = run_stack("prod", {"depot:profiles": profiles})
    assert set(containers(recording)) == BASE_SERVICES | BACKUP | extra
    built = {r.name.removesuffix("-image-build") for r in recording.of_type(BUILD)}
    assert built == {"discovery", "dispatch"} | BACKUP | extra


def test_containers_are_named_depot_service(stack: Recording) -> None:
    for service, container in some(containers(stack).items()):
        assert container.inputs["name"] == f"depot-{service}"


def test_splat_worker_gets_the_gpus(shipped: dict[str, Recording]) -> None:
    prod = containers(shipped["prod"])
    assert prod["splat-worker"].inputs["gpus"] == "all"
    others = some(c for name, c in prod.items() if name != "splat-worker")
    assert all("gpus" not in c.inputs for c in others)


def test_rust_services_are_built_from_the_repository_dockerfile(stack: Recording) -> None:
    builds = {r.name.removesuffix("-image-build"): r for r in stack.of_type(BUILD)}
    assert set(builds) == (BUILT | BACKUP) & set(containers(stack))
    for service, build in some(builds.items()):
        if service in BACKUP:
            continue  # its own Dockerfile: tests/test_backup_service.py
        # Relative to the project, so every checkout builds the same inputs.
        assert build.inputs["dockerfile"] == {"location": "./docker/rust-service.Dockerfile"}
        assert (PROJECT_DIR / build.inputs["dockerfile"]["location"]).resolve() == DOCKERFILE
        assert build.inputs["buildArgs"] == {"BINARY": service}


def test_dev_loads_its_builds_into_the_local_daemon(shipped: dict[str, Recording]) -> None:
    for build in some(shipped["dev"].of_type(BUILD)):
        service = build.name.removesuffix("-image-build")
        assert build.inputs["tags"] == [f"depot-{service}:dev"]
        assert (build.inputs["load"], build.inputs["push"]) == (True, False)


def test_build_contexts_come_from_stack_config(stack: Recording) -> None:
    build = stack.named("discovery-image-build")
    assert build.inputs["context"]["location"].endswith("/discovery")
    edited = run_stack(
        stack.stack,
        {
            "depot:build": {
                "contexts": {
                    "discovery": "/src/discovery",
                    "dispatch": "/src/dispatch",
                    "splat-worker": "/src/splat",
                    "rtk-base": "/src/rtk",
                }
            }
        },
    )
    assert edited.named("discovery-image-build").inputs["context"] == {"location": "/src/discovery"}


def test_images_are_not_built_on_preview_unless_the_stack_asks(stack: Recording) -> None:
    assert all(b.inputs["buildOnPreview"] is False for b in some(stack.of_type(BUILD)))
    asked = run_stack(
        stack.stack,
        {"depot:build": {"onPreview": True, "contexts": {s: f"../{s}" for s in BUILT}}},
    )
    assert all(b.inputs["buildOnPreview"] is True for b in some(asked.of_type(BUILD)))


def test_image_builds_do_not_wait_for_anything(stack: Recording) -> None:
    # Builds depend on nothing, so the engine runs them in parallel.
    for build in some(stack.of_type(BUILD)):
        assert build.dependencies == ()


def test_each_container_depends_on_its_own_image(stack: Recording) -> None:
    for service, container in some(containers(stack).items()):
        image = stack.named(f"{service}-image", REMOTE_IMAGE)
        assert image.urn in container.property_dependencies["image"]
        assert image.urn in container.dependencies


def test_dev_containers_run_the_image_id_of_their_image(shipped: dict[str, Recording]) -> None:
    dev = shipped["dev"]
    for service, container in some(containers(dev).items()):
        image = dev.named(f"{service}-image", REMOTE_IMAGE)
        assert container.inputs["image"].startswith(f"(image id of {image.inputs['name']} ")


def test_a_rebuilt_image_changes_the_container_image(shipped: dict[str, Recording]) -> None:
    # RemoteImage re-reads the loaded tag whenever the build's digest changes; its image ID
    # is the container's `image`, which the Docker provider replaces the container on.
    dev = shipped["dev"]
    for service in some(BUILT & set(containers(dev))):
        lookup = dev.named(f"{service}-image", REMOTE_IMAGE)
        build = dev.named(f"{service}-image-build")
        assert build.urn in lookup.dependencies
        assert lookup.inputs["name"] == f"depot-{service}:dev"
        assert set(lookup.property_dependencies["pullTriggers"]) == {build.urn}


THIRD_PARTY = {"postgres": "postgres:", "grafana": "grafana/grafana:", "console": "nginx:"}


@pytest.mark.parametrize("service", sorted(THIRD_PARTY))
def test_third_party_images_are_pinned_to_an_exact_version(stack: Recording, service: str) -> None:
    reference = stack.named(f"{service}-image", REMOTE_IMAGE).inputs["name"]
    assert reference.startswith(THIRD_PARTY[service])
    tag = r"[a-z/]+:\d+\.\d+\.\d+(-alpine)?|postgres:\d+\.\d+-alpine"
    assert re.fullmatch(f"({tag})(@sha256:[a-f0-9]{{64}})?", reference)


@pytest.mark.parametrize("service", sorted(THIRD_PARTY))
def test_prod_runs_third_party_images_by_digest(
    shipped: dict[str, Recording], service: str
) -> None:
    reference = shipped["prod"].named(f"{service}-image", REMOTE_IMAGE).inputs["name"]
    assert re.search(r"@sha256:[a-f0-9]{64}$", reference)


def test_an_image_override_must_still_be_pinned() -> None:
    recording = run_stack(
        "dev", {"depot:images": {"postgres": "postgres:17.2-alpine@sha256:" + "a" * 64}}
    )
    assert recording.named("postgres-image", REMOTE_IMAGE).inputs["name"].endswith("a" * 64)


def _healthcheck(recording: Recording, service: str) -> dict[str, object]:
    check: dict[str, object] = containers(recording)[service].inputs["healthcheck"]
    return check


def test_discovery_healthcheck_is_the_reference_one(stack: Recording) -> None:
    assert _healthcheck(stack, "discovery") == {
        "tests": ["CMD", "wget", "-q", "-O-", "http://localhost:4860/health"],
        "interval": "10s",
        "timeout": "3s",
        "retries": 3,
        "startPeriod": "30s",
        "startInterval": "1s",
    }


def test_postgres_healthcheck_is_the_reference_one(stack: Recording) -> None:
    assert _healthcheck(stack, "postgres") == {
        "tests": ["CMD", "pg_isready", "-U", "postgres"],
        "interval": "5s",
        "timeout": "3s",
        "retries": 5,
        "startPeriod": "30s",
        "startInterval": "1s",
    }


@pytest.mark.parametrize(
    ("service", "probe"),
    [
        ("dispatch", "http://localhost:4890/health"),
        ("grafana", "http://localhost:3000/api/health"),
        ("console", "http://127.0.0.1:80/"),
    ],
)
def test_other_http_services_are_probed_on_their_health_endpoint(
    stack: Recording, service: str, probe: str
) -> None:
    assert _healthcheck(stack, service)["tests"] == ["CMD", "wget", "-q", "-O-", probe]


@pytest.mark.parametrize("worker", ["splat-worker", "rtk-base"])
def test_workers_without_a_port_are_probed_for_a_live_process(
    shipped: dict[str, Recording], worker: str
) -> None:
    assert _healthcheck(shipped["prod"], worker)["tests"] == ["CMD", "pgrep", "^depot-service$"]


def test_built_services_run_under_an_init_that_forwards_signals(stack: Recording) -> None:
    for service, container in some(containers(stack).items()):
        expected = True if service in BUILT | BACKUP else None
        assert container.inputs.get("init") is expected, service


def _seconds(duration: object) -> int:
    assert isinstance(duration, str)
    assert duration.endswith("s")
    return int(duration.removesuffix("s"))


def test_every_container_waits_for_healthy_long_enough(stack: Recording) -> None:
    for service, container in some(containers(stack).items()):
        check = container.inputs["healthcheck"]
        worst_case = _seconds(check["startPeriod"]) + check["retries"] * (
            _seconds(check["interval"]) + _seconds(check["timeout"])
        )
        assert container.inputs["wait"] is True, service
        assert container.inputs["waitTimeout"] >= worst_case, service
        assert container.inputs["waitTimeout"] != 60, "the provider's default is not enough"


def test_discovery_waits_longer_than_the_provider_default(stack: Recording) -> None:
    assert containers(stack)["discovery"].inputs["waitTimeout"] == 30 + 3 * (10 + 3) + 10


def _waits_on(recording: Recording) -> dict[str, set[str]]:
    by_urn = {c.urn: name for name, c in containers(recording).items()}
    return {
        name: {by_urn[d] for d in c.dependencies if d in by_urn}
        for name, c in containers(recording).items()
    }


def test_dispatch_starts_after_postgres_is_healthy(stack: Recording) -> None:
    assert _waits_on(stack)["dispatch"] == {"postgres"}
    assert containers(stack)["postgres"].inputs["wait"] is True


def test_console_starts_after_discovery_dispatch_and_grafana(stack: Recording) -> None:
    assert _waits_on(stack)["console"] == {"discovery", "dispatch", "grafana"}


def test_nothing_else_serialises_the_containers(stack: Recording) -> None:
    waits = _waits_on(stack)
    assert {name for name, deps in waits.items() if deps} == {"dispatch", "console", "backup"}


def test_the_longest_chain_of_waiting_containers_is_three(stack: Recording) -> None:
    waits = _waits_on(stack)

    def depth(name: str) -> int:
        return 1 + max((depth(d) for d in waits[name]), default=0)

    assert max(depth(name) for name in waits) == 3


def test_containers_use_the_stacks_docker_provider(stack: Recording) -> None:
    provider = stack.named("docker", "pulumi:providers:docker")
    for resource in [*some(stack.of_type(CONTAINER)), *some(stack.of_type(REMOTE_IMAGE))]:
        assert resource.provider.startswith(provider.urn + "::"), resource.name


def _provider(recording: Recording, type_: str) -> Registration:
    return recording.named(type_.rsplit(":", maxsplit=1)[-1], type_)


def test_docker_host_defaults_to_the_local_socket(shipped: dict[str, Recording]) -> None:
    assert _provider(shipped["dev"], "pulumi:providers:docker").inputs["host"] == (
        "unix:///var/run/docker.sock"
    )


def test_prod_reaches_its_docker_host_over_ssh(shipped: dict[str, Recording]) -> None:
    assert _provider(shipped["prod"], "pulumi:providers:docker").inputs["host"].startswith("ssh://")


def test_prod_never_builds_on_its_docker_host(shipped: dict[str, Recording]) -> None:
    builder = _provider(shipped["prod"], "pulumi:providers:docker-build")
    assert not builder.inputs.get("host", "").startswith("ssh://")
    for build in some(shipped["prod"].of_type(BUILD)):
        assert build.provider.startswith(builder.urn)


RUST_TIMING = ("10s", "3s", 3, "30s")
REFERENCE_TIMING = {
    "discovery": RUST_TIMING,
    "dispatch": RUST_TIMING,
    "splat-worker": RUST_TIMING,
    "rtk-base": RUST_TIMING,
    "grafana": RUST_TIMING,
    "console": ("10s", "3s", 3, "10s"),
    # Not the reference's start period (none): Docker probes at start_interval only within a
    # start period, so postgres has one (the first start's initdb is not yet a failure).
    "postgres": ("5s", "3s", 5, "30s"),
    # Not the reference's: unhealthy once the newest backup is older than twice the schedule,
    # and the start period covers the first backup, which runs at once.
    "backup": ("10s", "5s", 3, "300s"),
}


def test_every_healthcheck_has_its_documented_timing(shipped: dict[str, Recording]) -> None:
    for service, container in some(containers(shipped["prod"]).items()):
        check = container.inputs["healthcheck"]
        timing = (check["interval"], check["timeout"], check["retries"], check["startPeriod"])
        assert timing == REFERENCE_TIMING[service], service
