"""The swarm runtime: the cluster stack, as the program registers it under mocks.

One ``docker.Service`` per enabled service, mapped from the same model as the host runtime's
containers; what Swarm cannot express is refused when the settings are read.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from depot.catalog import SERVICES, service
from depot.config import ConfigError, RawConfig, load_settings
from depot.model import deployments
from depot.recording import Recording, Registration, Secret
from depot.resource_types import (
    BUILD,
    CONTAINER,
    DOCKER_SECRET,
    NETWORK,
    REMOTE_IMAGE,
    SERVICE,
    VOLUME,
)
from depot.review.workload import duration_seconds
from depot.swarm import converge_seconds, go_duration, update_policy
from tests.conftest import run_stack, stack_config, walk

CANARY = "canary-Zq7!pw/with:url@chars"
GRAFANA_CANARY = "grafana-canary-8Hs2"
STATELESS = ("discovery", "dispatch", "console", "grafana", "splat-worker", "rtk-base")


@pytest.fixture(scope="module")
def cluster() -> Recording:
    return run_stack("cluster")


def services(recording: Recording) -> dict[str, Registration]:
    """Swarm services by service name (``depot-discovery`` → ``discovery``)."""
    return {r.inputs["name"].removeprefix("depot-"): r for r in recording.of_type(SERVICE)}


def container_spec(registration: Registration) -> dict[str, Any]:
    spec: dict[str, Any] = registration.inputs["taskSpec"]["containerSpec"]
    return spec


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(0, "0s"), (3, "3s"), (30, "30s"), (60, "1m"), (69, "1m9s"), (90, "1m30s"), (600, "10m"),
     (3600, "1h"), (3630, "1h0m30s"), (3660, "1h1m"), (7290, "2h1m30s")],
)  # fmt: skip
def test_durations_are_written_as_the_provider_reads_them_back(seconds: int, written: str) -> None:
    assert go_duration(seconds) == written
    assert duration_seconds(written) == seconds


def test_a_negative_duration_is_a_bug() -> None:
    with pytest.raises(ValueError, match="never negative"):
        go_duration(-1)


def test_every_duration_a_service_registers_reads_back_the_same(cluster: Recording) -> None:
    durations = []
    for registration in cluster.of_type(SERVICE):
        inputs = registration.inputs
        check = container_spec(registration)["healthcheck"]
        durations += [check["interval"], check["timeout"], check["startPeriod"]]
        durations += [container_spec(registration)["stopGracePeriod"]]
        durations += [inputs["updateConfig"]["monitor"], inputs["rollbackConfig"]["monitor"]]
        durations += [inputs["convergeConfig"]["timeout"]]
    assert len(durations) == 8 * 7
    assert [go_duration(duration_seconds(d)) for d in durations] == durations


# --- one service per enabled service -----------------------------------------------------------


def test_every_enabled_service_is_one_swarm_service_and_nothing_runs_as_a_container(
    cluster: Recording,
) -> None:
    assert sorted(services(cluster)) == sorted(spec.name for spec in SERVICES)
    assert cluster.of_type(CONTAINER) == []
    # Nodes pull their images themselves: nothing is pulled into the manager's daemon.
    assert cluster.of_type(REMOTE_IMAGE) == []
    assert cluster.stack_outputs["services"] == {
        name: f"depot-{name}" for name in sorted(spec.name for spec in SERVICES)
    }


def test_the_stateless_services_run_twice_and_postgres_once(cluster: Recording) -> None:
    replicas = {
        name: s.inputs["mode"]["replicated"]["replicas"] for name, s in services(cluster).items()
    }
    assert replicas == {
        "discovery": 2, "dispatch": 2, "console": 1, "grafana": 1, "postgres": 1,
        "splat-worker": 1, "rtk-base": 1, "backup": 1,
    }  # fmt: skip


def test_services_are_hardened_as_containers_are(cluster: Recording) -> None:
    for name, registration in services(cluster).items():
        spec, catalog = container_spec(registration), service(name)  # type: ignore[arg-type]
        assert spec["capDrops"] == ["ALL"], name
        assert spec.get("capAdds", []) == list(catalog.capabilities), name
        assert spec["readOnly"] is (catalog.writable_root is None), name
        assert spec.get("user") == catalog.user, name
        assert spec["healthcheck"]["tests"] == list(catalog.healthcheck.test), name
        assert duration_seconds(spec["stopGracePeriod"]) == catalog.stop_grace_seconds, name
        assert registration.inputs["taskSpec"]["logDriver"] == {
            "name": "json-file",
            "options": {"max-size": "10m", "max-file": "3"},
        }, name
        mounts = spec.get("mounts", [])
        assert [m["target"] for m in mounts if m["type"] == "tmpfs"] == list(catalog.tmpfs), name
        assert all(
            m["tmpfsOptions"] == {"sizeBytes": 64 * 1024 * 1024, "mode": 0o1777}
            for m in mounts
            if m["type"] == "tmpfs"
        ), name
    assert container_spec(services(cluster)["discovery"])["init"] is True
    assert "init" not in container_spec(services(cluster)["postgres"])


def test_limits_and_reservations_are_nano_cpus_and_bytes(cluster: Recording) -> None:
    resources = services(cluster)["postgres"].inputs["taskSpec"]["resources"]
    assert resources == {
        "limits": {"nanoCpus": 1_000_000_000, "memoryBytes": 1024 * 1024 * 1024},
        "reservation": {"memoryBytes": 512 * 1024 * 1024},
    }
    console = services(cluster)["console"].inputs["taskSpec"]["resources"]
    assert console["limits"] == {"nanoCpus": 250_000_000, "memoryBytes": 128 * 1024 * 1024}


# --- updates, convergence, order ---------------------------------------------------------------


@pytest.mark.parametrize("name", STATELESS)
def test_stateless_services_update_start_first_and_roll_back_by_themselves(
    cluster: Recording, name: str
) -> None:
    registration = services(cluster)[name]
    monitor = go_duration(service(name).healthcheck.worst_case_seconds)  # type: ignore[arg-type]
    assert registration.inputs["updateConfig"] == {
        "parallelism": 1,
        "order": "start-first",
        "failureAction": "rollback",
        "monitor": monitor,
    }
    assert registration.inputs["rollbackConfig"] == {
        "parallelism": 1,
        "order": "start-first",
        "monitor": monitor,
    }


def test_postgres_is_never_two_processes_on_its_volume(cluster: Recording) -> None:
    postgres = services(cluster)["postgres"].inputs
    assert postgres["mode"] == {"replicated": {"replicas": 1}}
    assert postgres["updateConfig"]["order"] == "stop-first"
    assert postgres["rollbackConfig"]["order"] == "stop-first"
    assert postgres["updateConfig"]["failureAction"] == "rollback"


def test_converge_waits_for_every_replica_through_its_healthcheck_and_monitor(
    cluster: Recording,
) -> None:
    # discovery: 2 replicas x (69 s worst case + 69 s monitor) + 10 s interval + 60 s pull.
    assert services(cluster)["discovery"].inputs["convergeConfig"] == {"timeout": "5m46s"}
    settings = load_settings("cluster", stack_config("cluster"))
    for deployment in deployments(settings):
        check = deployment.spec.healthcheck
        timeout = services(cluster)[deployment.name].inputs["convergeConfig"]["timeout"]
        needed = deployment.replicas * (
            check.worst_case_seconds + update_policy(deployment).monitor_seconds
        )
        assert duration_seconds(timeout) == converge_seconds(deployment) > needed


def test_deploy_order_follows_health_through_depends_on(cluster: Recording) -> None:
    by_urn = {r.urn: r.name for r in cluster.registrations}
    waits = {
        name: sorted(by_urn[u] for u in s.dependencies if by_urn[u].endswith("-service"))
        for name, s in services(cluster).items()
    }
    assert waits["dispatch"] == ["postgres-service"]
    assert waits["console"] == ["discovery-service", "dispatch-service", "grafana-service"]
    assert all(s.delete_before_replace for s in cluster.of_type(SERVICE))


# --- restart ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "policy"),
    [("always", {"condition": "any"}), ("no", {"condition": "none"}),
     ("on-failure:3", {"condition": "on-failure", "maxAttempts": 3}),
     ("on-failure", {"condition": "on-failure"})],
)  # fmt: skip
def test_depot_restart_maps_to_swarms_restart_policy(restart: str, policy: dict[str, Any]) -> None:
    recording = run_stack("cluster", {"depot:restart": restart})
    for registration in recording.of_type(SERVICE):
        assert registration.inputs["taskSpec"]["restartPolicy"] == policy


def test_unless_stopped_is_refused_on_a_swarm() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^Pulumi\.cluster\.yaml: depot:restart: 'unless-stopped' has no Swarm equivalent "
        r"when it is unless-stopped \(the default\).*use always, on-failure\[:N\] or no$",
    ):
        load_settings("cluster", stack_config("cluster", {"depot:restart": "unless-stopped"}))


# --- placement and GPUs ------------------------------------------------------------------------


def test_pinned_services_run_on_their_labelled_nodes(cluster: Recording) -> None:
    placement = {
        name: s.inputs["taskSpec"].get("placement") for name, s in services(cluster).items()
    }
    assert placement == {
        "postgres": {"constraints": ["node.labels.depot.postgres-data == true"]},
        "splat-worker": {"constraints": ["node.labels.depot.gpu == true"]},
        "rtk-base": {"constraints": ["node.labels.depot.gnss == true"]},
        # Its postgres-backups is a local volume too: kept on the data node, beside postgres.
        "backup": {"constraints": ["node.labels.depot.postgres-data == true"]},
        # The rest spread across the zones (depot.zone): one rack lost leaves a replica.
        **{
            name: {"prefs": ["spread=node.labels.depot.zone"]}
            for name in ("discovery", "dispatch", "console", "grafana")
        },
    }  # fmt: skip


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_single_host_pins_and_reserves_nothing_whatever_the_catalogs_labels(stack: str) -> None:
    # The catalog labels postgres, splat-worker and rtk-base for a swarm; one host has no nodes.
    settings = load_settings(stack, stack_config(stack, {"depot:profiles": ["gpu", "rtk"]}))
    resolved = deployments(settings)
    assert {d.name for d in resolved} >= {"postgres", "splat-worker", "rtk-base"}
    assert {(d.name, d.placement, d.generic_resources) for d in resolved} == {
        (d.name, (), ()) for d in resolved
    }


def test_the_gpu_worker_reserves_a_generic_resource(cluster: Recording) -> None:
    reservation = services(cluster)["splat-worker"].inputs["taskSpec"]["resources"]["reservation"]
    assert reservation["genericResources"] == {"discreteResourcesSpecs": ["NVIDIA-GPU=1"]}


def test_node_labels_and_the_gpu_kind_are_configurable() -> None:
    recording = run_stack(
        "cluster",
        {
            "depot:swarm": {
                "nodeLabels": {"postgres": "storage.ssd"},
                "gpu": {"kind": "AMD-GPU", "count": 2},
            }
        },
    )
    postgres, worker = services(recording)["postgres"], services(recording)["splat-worker"]
    assert postgres.inputs["taskSpec"]["placement"] == {
        "constraints": ["node.labels.storage.ssd == true"]
    }
    # The backup service follows postgres' label, renamed or not.
    assert services(recording)["backup"].inputs["taskSpec"]["placement"] == {
        "constraints": ["node.labels.storage.ssd == true"]
    }
    assert worker.inputs["taskSpec"]["placement"] == {
        "constraints": ["node.labels.depot.gpu == true"]
    }
    reservation = worker.inputs["taskSpec"]["resources"]["reservation"]
    assert reservation["genericResources"] == {"discreteResourcesSpecs": ["AMD-GPU=2"]}


# --- networks, data, publishing ----------------------------------------------------------------


def test_networks_are_overlays_and_the_database_one_is_internal(cluster: Recording) -> None:
    networks = {r.name: r.inputs for r in cluster.of_type(NETWORK)}
    assert networks == {
        "depot-network": {
            "name": "depot-network", "driver": "overlay", "internal": False, "attachable": True,
        },
        "database-network": {"name": "database-network", "driver": "overlay", "internal": True},
        # The backup service's way off the swarm: neither internal nor attachable.
        "backup-network": {"name": "backup-network", "driver": "overlay", "internal": False},
    }  # fmt: skip


def test_postgres_is_only_on_the_database_network_by_id(cluster: Recording) -> None:
    by_urn = {r.urn: r for r in cluster.registrations}
    postgres = services(cluster)["postgres"]
    assert postgres.inputs["taskSpec"]["networksAdvanceds"] == [
        {"id": "database-network-id", "aliases": ["postgres"]}
    ]
    network_deps = [by_urn[u].name for u in postgres.dependencies if by_urn[u].type == NETWORK]
    assert network_deps == ["database-network"]


def test_postgres_data_is_a_volume_on_its_node_that_nothing_registers(
    cluster: Recording,
) -> None:
    mounts = container_spec(services(cluster)["postgres"])["mounts"]
    assert {"type": "volume", "source": "postgres-data", "target": "/var/lib/postgresql/data"} in (
        mounts
    )
    # A docker.Volume would be made on the manager, not on the data's node: none is registered.
    assert cluster.of_type(VOLUME) == []
    assert cluster.stack_outputs["dataVolume"] == "postgres-data"


def test_the_console_is_published_through_the_ingress(cluster: Recording) -> None:
    endpoints = {name: s.inputs.get("endpointSpec") for name, s in services(cluster).items()}
    assert endpoints.pop("console") == {
        "mode": "vip",
        "ports": [
            {"targetPort": 80, "publishedPort": 80, "protocol": "tcp", "publishMode": "ingress"}
        ],
    }
    assert set(endpoints.values()) == {None}


def test_a_swarm_cannot_publish_on_one_address() -> None:
    publish = {"address": "127.0.0.1", "ports": {"console": 80}}
    config = stack_config("cluster", {"depot:publish": publish})
    with pytest.raises(
        ConfigError,
        match=r"^Pulumi\.cluster\.yaml: depot:publish\.address: .* Swarm publishes through its "
        r"ingress on every address of every node",
    ):
        load_settings("cluster", config)


# --- images --------------------------------------------------------------------------------


def test_built_images_run_by_the_digest_of_their_push(cluster: Recording) -> None:
    builds = {r.name: r for r in cluster.of_type(BUILD)}
    assert sorted(builds) == [
        "backup-image-build", "discovery-image-build", "dispatch-image-build",
        "rtk-base-image-build", "splat-worker-image-build",
    ]  # fmt: skip
    assert all(b.inputs["push"] is True for b in builds.values())
    for name in ("discovery", "backup"):
        image = container_spec(services(cluster)[name])["image"]
        assert image.startswith(f"registry.example.com/depot-{name}@sha256:")


def test_pulled_images_run_by_the_digest_the_stack_pins(cluster: Recording) -> None:
    pinned = load_settings("cluster", stack_config("cluster")).images
    for name in ("postgres", "grafana", "console"):
        assert container_spec(services(cluster)[name])["image"] == pinned[name]


def test_a_swarm_stack_refuses_a_local_build() -> None:
    shipped = stack_config("cluster")
    values = {k: v for k, v in shipped.values.items() if k != "depot:registry"}
    with pytest.raises(
        ConfigError,
        match=r"^Pulumi\.cluster\.yaml: depot:build\.contexts\.discovery: '\.\./discovery' "
        r"builds discovery into one Docker daemon, but Swarm nodes pull their images from a "
        r"registry; set depot:registry",
    ):
        load_settings("cluster", RawConfig(values, shipped.secret_keys))


def test_a_swarm_stack_refuses_an_image_by_tag() -> None:
    images = {"postgres": "postgres:17.2-alpine"}
    with pytest.raises(
        ConfigError,
        match=r"depot:images\.postgres: 'postgres:17\.2-alpine' runs postgres by tag "
        r"\(postgres:17\.2-alpine\); Swarm nodes pull on their own",
    ):
        load_settings("cluster", stack_config("cluster", {"depot:images": images}))


# --- replicas refused ----------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["cluster", "prod"])
def test_postgres_runs_exactly_once(stack: str) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"^Pulumi\.{stack}\.yaml: depot:replicas\.postgres: 2 runs postgres more than "
        r"once; postgres runs exactly one replica",
    ):
        load_settings(stack, stack_config(stack, {"depot:replicas": {"postgres": 2}}))


def test_the_host_runtime_refuses_replicas() -> None:
    with pytest.raises(
        ConfigError,
        match=r"depot:replicas\.discovery: 2 asks for 2 replicas of discovery, but the host "
        r"runtime runs one container per service \(depot-discovery\); use 1, or "
        r"depot:runtime: swarm",
    ):
        load_settings("prod", stack_config("prod", {"depot:replicas": {"discovery": 2}}))


def test_swarm_settings_are_refused_on_a_host_stack() -> None:
    with pytest.raises(ConfigError, match=r"depot:swarm: .*is read only by a swarm stack"):
        load_settings("prod", stack_config("prod", {"depot:swarm": {"gpu": {"count": 2}}}))


@pytest.mark.parametrize("label", ["depot.gpu==false", "depot.gpu\n", "Depot.GPU", "-x", ""])
def test_a_node_label_is_one_label_and_nothing_more(label: str) -> None:
    # It is written into a constraint (`node.labels.<label> == true`): nothing may change that.
    config = stack_config("cluster", {"depot:swarm": {"nodeLabels": {"postgres": label}}})
    with pytest.raises(
        ConfigError, match=r"depot:swarm\.nodeLabels\.postgres: .* is not a node label"
    ):
        load_settings("cluster", config)


def test_only_pinned_services_take_a_node_label() -> None:
    labels = {"nodeLabels": {"discovery": "depot.web"}}
    with pytest.raises(
        ConfigError,
        match=r"depot:swarm\.nodeLabels\.discovery: 'depot\.web' names discovery, which runs on "
        r"any node",
    ):
        load_settings("cluster", stack_config("cluster", {"depot:swarm": labels}))


# --- secrets -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_canaries() -> Recording:
    return run_stack(
        "cluster",
        secrets={"depot:databasePassword": CANARY, "depot:grafanaAdminPassword": GRAFANA_CANARY},
    )


def _swarm_secrets(recording: Recording) -> dict[str, Registration]:
    return {r.name: r for r in recording.of_type(DOCKER_SECRET)}


def test_passwords_are_swarm_secrets_holding_base64_as_a_pulumi_secret(
    with_canaries: Recording,
) -> None:
    secrets = _swarm_secrets(with_canaries)
    assert secrets["database-password"].inputs["data"] == Secret(
        base64.b64encode(CANARY.encode()).decode()
    )
    assert secrets["grafana-admin-password"].inputs["data"] == Secret(
        base64.b64encode(GRAFANA_CANARY.encode()).decode()
    )
    # A replacement creates the new secret first: Swarm refuses to delete one in use.
    assert not any(s.delete_before_replace for s in secrets.values())


def test_canaries_appear_only_inside_secret_inputs(with_canaries: Recording) -> None:
    encoded = [base64.b64encode(c.encode()).decode() for c in (CANARY, GRAFANA_CANARY)]
    leaks = [
        (r.name, leaf)
        for r in with_canaries.registrations
        for leaf, secret in walk(r.inputs)
        if not secret
        and isinstance(leaf, str)
        and any(c in leaf for c in ("Zq7", "8Hs2", "canary", *encoded))
    ]
    assert leaks == []
    hits = [
        r.name
        for r in with_canaries.registrations
        for leaf, secret in walk(r.inputs)
        if secret and isinstance(leaf, str) and ("%21pw" in leaf or leaf == encoded[0])
    ]
    assert sorted(hits) == ["database-password", "dispatch-service"]


def test_a_secret_is_named_by_its_content_without_revealing_it(with_canaries: Recording) -> None:
    name = _swarm_secrets(with_canaries)["database-password"].inputs["name"]
    assert isinstance(name, str)  # plain: a name, not a secret
    assert name.startswith("depot-database-password-")
    assert len(name.removeprefix("depot-database-password-")) == 12
    rotated = run_stack(
        "cluster",
        secrets={"depot:databasePassword": CANARY + "2", "depot:grafanaAdminPassword": "g"},
    )
    again = run_stack(
        "cluster",
        secrets={"depot:databasePassword": CANARY, "depot:grafanaAdminPassword": "g"},
    )
    assert _swarm_secrets(rotated)["database-password"].inputs["name"] != name
    assert _swarm_secrets(again)["database-password"].inputs["name"] == name


def test_secret_files_reach_tasks_with_their_owner_and_mode_0400(cluster: Recording) -> None:
    by_urn = {r.urn: r for r in cluster.registrations}
    postgres = container_spec(services(cluster)["postgres"])
    [secret] = postgres["secrets"]
    swarm_secret = _swarm_secrets(cluster)["database-password"]
    assert secret == {
        "secretId": "database-password-id",
        "secretName": swarm_secret.inputs["name"],
        "fileName": "/run/secrets/database_password",
        "fileUid": "70",
        "fileGid": "70",
        "fileMode": 0o400,
    }
    assert swarm_secret.urn in services(cluster)["postgres"].dependencies
    assert by_urn[swarm_secret.urn].type == DOCKER_SECRET
    grafana = container_spec(services(cluster)["grafana"])["secrets"]
    assert [(s["fileUid"], s["fileMode"]) for s in grafana] == [("472", 0o400)]


def test_dispatch_gets_database_url_as_one_secret_value(with_canaries: Recording) -> None:
    env = container_spec(services(with_canaries)["dispatch"])["env"]
    assert isinstance(env["DATABASE_URL"], Secret)
    assert "%21pw" in env["DATABASE_URL"].value
    assert env["PORT"] == "4890"  # its neighbours stay readable in a diff


def test_everything_on_the_swarm_goes_through_its_manager(cluster: Recording) -> None:
    [provider] = [r for r in cluster.registrations if r.type == "pulumi:providers:docker"]
    assert provider.inputs["host"] == "ssh://deploy@manager.depot.example.com"
    on_swarm = [r for r in cluster.registrations if r.type in (SERVICE, DOCKER_SECRET, NETWORK)]
    assert len(on_swarm) == 8 + 3 + 2
    assert {r.provider.rsplit("::", 1)[0] for r in on_swarm} == {provider.urn}
