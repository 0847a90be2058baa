"""Networks, volumes, mounts and what keeps data safe across ``up`` and ``destroy``."""

from __future__ import annotations

from depot.recording import Recording
from depot.resource_types import CONTAINER, NETWORK, VOLUME
from tests.conftest import containers, run_stack


def test_depot_network_is_a_plain_bridge(stack: Recording) -> None:
    network = stack.named("depot-network", NETWORK)
    assert network.inputs == {"name": "depot-network", "driver": "bridge", "internal": False}


def test_database_network_is_an_internal_bridge(stack: Recording) -> None:
    network = stack.named("database-network", NETWORK)
    assert network.inputs == {"name": "database-network", "driver": "bridge", "internal": True}


def _networks(recording: Recording, service: str) -> list[str]:
    return [n["name"] for n in containers(recording)[service].inputs["networksAdvanced"]]


def test_postgres_is_only_on_the_internal_network(stack: Recording) -> None:
    assert _networks(stack, "postgres") == ["database-network"]
    assert containers(stack)["postgres"].inputs["networkMode"] == "database-network"


def test_dispatch_is_on_both_networks(stack: Recording) -> None:
    assert _networks(stack, "dispatch") == ["depot-network", "database-network"]


def test_the_backup_service_is_on_the_database_and_its_own_network(stack: Recording) -> None:
    # Its own network first: that is the container's own, the one with a route off the host.
    assert _networks(stack, "backup") == ["backup-network", "database-network"]
    assert containers(stack)["backup"].inputs["networkMode"] == "backup-network"


def test_nothing_but_the_backup_service_joins_the_backup_network(stack: Recording) -> None:
    network = stack.named("backup-network", NETWORK)
    assert network.inputs == {"name": "backup-network", "driver": "bridge", "internal": False}
    joined = [s for s in containers(stack) if "backup-network" in _networks(stack, s)]
    assert joined == ["backup"]


def test_every_other_service_is_on_the_depot_network_only(stack: Recording) -> None:
    for service in set(containers(stack)) - {"postgres", "dispatch", "backup"}:
        assert _networks(stack, service) == ["depot-network"], service
        assert containers(stack)[service].inputs["networkMode"] == "depot-network"


def test_services_answer_to_their_compose_name_on_each_network(stack: Recording) -> None:
    # DATABASE_URL says `postgres`, as in the reference: the alias makes that name resolve.
    for service, container in containers(stack).items():
        for network in container.inputs["networksAdvanced"]:
            assert network["aliases"] == [service]


def test_postgres_data_volume_is_mounted_at_the_data_directory(stack: Recording) -> None:
    volume = stack.named("postgres-data", VOLUME)
    assert volume.inputs == {"name": "postgres-data"}
    postgres = containers(stack)["postgres"]
    assert postgres.inputs["volumes"] == [
        {"volumeName": "postgres-data", "containerPath": "/var/lib/postgresql/data"}
    ]
    assert volume.urn in postgres.dependencies
    assert postgres.inputs["removeVolumes"] is False


def test_postgres_data_is_protected_in_prod(shipped: dict[str, Recording]) -> None:
    assert shipped["prod"].named("postgres-data", VOLUME).protect is True


def test_postgres_data_is_retained_on_delete_in_every_stack(stack: Recording) -> None:
    assert stack.named("postgres-data", VOLUME).retain_on_delete is True


def test_dev_may_destroy_but_still_keeps_the_volume(shipped: dict[str, Recording]) -> None:
    volume = shipped["dev"].named("postgres-data", VOLUME)
    assert (volume.protect, volume.retain_on_delete) == (False, True)


def test_no_other_container_mounts_the_data_volume(stack: Recording) -> None:
    for service, container in containers(stack).items():
        if service not in ("postgres", "backup"):
            assert "volumes" not in container.inputs, service
    assert containers(stack)["backup"].inputs["volumes"] == [
        {"volumeName": "postgres-backups", "containerPath": "/backups"}
    ]


def test_the_backups_volume_is_guarded_as_the_data_is(shipped: dict[str, Recording]) -> None:
    for stack, protected in (("dev", False), ("prod", True)):
        volume = shipped[stack].named("postgres-backups", VOLUME)
        assert volume.inputs == {"name": "postgres-backups"}
        assert (volume.protect, volume.retain_on_delete) == (protected, True), stack
        assert volume.delete_before_replace is True
        backup = containers(shipped[stack])["backup"]
        assert volume.urn in backup.dependencies
        assert backup.inputs["removeVolumes"] is False


def test_without_backups_neither_their_network_nor_their_volume_exists() -> None:
    recording = run_stack("prod", {"depot:backup": {"enabled": False}})
    assert "backup" not in containers(recording)
    assert {n.name for n in recording.of_type(NETWORK)} == {"depot-network", "database-network"}
    assert {v.name for v in recording.of_type(VOLUME)} == {"postgres-data"}


def test_postgres_gets_at_least_30_seconds_to_stop(stack: Recording) -> None:
    postgres = containers(stack)["postgres"]
    assert postgres.inputs["destroyGraceSeconds"] >= 30
    assert postgres.inputs["stopTimeout"] >= 30


def test_every_fixed_name_resource_is_replaced_delete_first(stack: Recording) -> None:
    fixed_names = [*stack.of_type(CONTAINER), *stack.of_type(NETWORK), *stack.of_type(VOLUME)]
    assert len(fixed_names) >= 8
    for resource in fixed_names:
        assert resource.delete_before_replace is True, resource.name


def test_console_serves_the_built_dist_read_only(stack: Recording) -> None:
    mounts = containers(stack)["console"].inputs["mounts"]
    dist = next(m for m in mounts if m["target"] == "/usr/share/nginx/html")
    assert dist["type"] == "bind"
    assert dist["readOnly"] is True
    assert dist["source"].endswith("/console/dist")
    assert dist["source"].startswith("/"), "Docker needs an absolute host path"


def test_console_writes_sessions_to_the_host(stack: Recording) -> None:
    mounts = containers(stack)["console"].inputs["mounts"]
    sessions = next(m for m in mounts if m["target"] == "/data/sessions")
    assert sessions == {
        "type": "bind",
        "source": "/data/sessions",
        "target": "/data/sessions",
        "readOnly": False,
    }


def test_console_host_paths_come_from_stack_config() -> None:
    recording = run_stack(
        "dev", {"depot:console": {"distPath": "/srv/console", "sessionsPath": "/srv/sessions"}}
    )
    sources = {m["target"]: m["source"] for m in containers(recording)["console"].inputs["mounts"]}
    assert sources == {"/usr/share/nginx/html": "/srv/console", "/data/sessions": "/srv/sessions"}


def test_discovery_has_tmpfs_at_tmp_and_var_run(stack: Recording) -> None:
    assert set(containers(stack)["discovery"].inputs["tmpfs"]) == {"/tmp", "/var/run"}


WRITABLE_PATHS = {
    "discovery": {"/tmp", "/var/run"},
    "dispatch": {"/tmp"},
    "console": {"/tmp", "/var/cache/nginx", "/var/run"},
    "splat-worker": {"/tmp"},
    "rtk-base": {"/tmp"},
}
WRITABLE_ROOT = {"postgres", "grafana", "backup"}  # depot/policy/exceptions.py says why


def test_each_read_only_container_writes_only_to_its_tmpfs(
    shipped: dict[str, Recording],
) -> None:
    tmpfs = {
        service: set(container.inputs.get("tmpfs", {}))
        for service, container in containers(shipped["prod"]).items()
        if container.inputs.get("readOnly")
    }
    assert tmpfs == WRITABLE_PATHS
    writable = {s for s, c in containers(shipped["prod"]).items() if not c.inputs.get("readOnly")}
    assert writable == WRITABLE_ROOT
    # Even there, scratch space is tmpfs: the backup's dumps go to its volume, nothing else.
    assert set(containers(shipped["prod"])["backup"].inputs["tmpfs"]) == {"/tmp"}


def test_tmpfs_is_size_limited_and_not_executable(stack: Recording) -> None:
    for service, container in containers(stack).items():
        for path, options in container.inputs.get("tmpfs", {}).items():
            assert options == "rw,noexec,nosuid,size=64m", (service, path)
