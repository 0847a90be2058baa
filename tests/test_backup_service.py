"""The backup service as each runtime deploys it: containers, Swarm services, Compose and stack
files, and the rclone configuration followed as a canary through all of them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from depot.catalog import BACKUP
from depot.config import DepotSettings, RawConfig, load_settings
from depot.config.stack_file import read_stack_file
from depot.model import runs
from depot.outputs.compose import compose_document, compose_yaml
from depot.outputs.secret_files import init_secret_files
from depot.outputs.swarm_stack import stack_document, stack_yaml
from depot.recording import Recording, Registration, Secret
from depot.resource_types import BUILD, DOCKER_SECRET, REMOTE_IMAGE, SERVICE
from depot.review.diff import diff_plans
from depot.review.graph import build_graph, to_dot, to_mermaid
from depot.review.plan import new_fingerprint_key, plan_from
from depot.review.render import diff_markdown, diff_text, dumps, plan_markdown, plan_text
from tests.conftest import (
    PROJECT_DIR,
    as_read,
    containers,
    env_of,
    run_stack,
    stack_config,
    walk,
)

RCLONE_CANARY = "rclone-canary-Y4r!secret"
RCLONE_CONFIG = (
    f"[offsite]\ntype = sftp\nhost = backup.example.com\nuser = depot\npass = {RCLONE_CANARY}\n"
)
RCLONE = {"depot:backupRcloneConfig": RCLONE_CONFIG}
OFFSITE = {
    "depot:backup": {
        "enabled": True,
        "schedule": "6h",
        "retention": {"hourly": 4, "daily": 7, "local": 3},
        "recipients": ["age1xk72a7fvfupmssj73newmhv3pz0exes6n7tzwqytn4aepy3sjecq4q2jpc"],
        "targets": ["offsite:depot/prod", ":s3,env_auth=true:depot-backups/prod"],
    }
}
PROD_POSTGRES = load_settings("prod", stack_config("prod")).images["postgres"]


def settings_with(stack: str, overrides: dict[str, Any], secrets: dict[str, str]) -> DepotSettings:
    """``stack``'s settings with ``overrides`` and decrypted secret config values."""
    config = stack_config(stack, overrides)
    raw = RawConfig({**config.values, **secrets}, config.secret_keys | frozenset(secrets))
    return load_settings(stack, raw)


def backup_container(recording: Recording) -> Registration:
    return containers(recording)["backup"]


def backup_service(recording: Recording) -> Registration:
    return next(r for r in recording.of_type(SERVICE) if r.inputs["name"] == "depot-backup")


@pytest.fixture(scope="module")
def with_rclone() -> Recording:
    """prod with a named remote, the rclone configuration a secret canary."""
    return run_stack("prod", OFFSITE, secrets=RCLONE)


@pytest.fixture(scope="module")
def cluster_with_rclone() -> Recording:
    return run_stack("cluster", OFFSITE, secrets=RCLONE)


# --- the container -----------------------------------------------------------------------------


def test_the_backup_service_is_told_everything_as_plain_variables(
    shipped: dict[str, Recording],
) -> None:
    assert env_of(backup_container(shipped["dev"])) == {
        "PGHOST": "postgres",
        "PGPORT": "5432",
        "PGUSER": "postgres",
        "PGDATABASE": "dispatch",
        "DEPOT_BACKUP_STACK": "dev",
        "DEPOT_BACKUP_INTERVAL": "86400",
        "DEPOT_BACKUP_KEEP_HOURLY": "0",
        "DEPOT_BACKUP_KEEP_DAILY": "7",
        "DEPOT_BACKUP_KEEP_WEEKLY": "0",
        "DEPOT_BACKUP_KEEP_MONTHLY": "0",
        "DEPOT_BACKUP_KEEP_LOCAL": "7",
        "DEPOT_BACKUP_RECIPIENTS": "",
        "DEPOT_BACKUP_TARGETS": "",
        "DATABASE_PASSWORD_FILE": "/run/secrets/database_password",
        # No rclone configuration: rclone keeps its (inline) remotes in memory.
        "RCLONE_CONFIG": "/dev/null",
    }
    # Nothing in it is a secret: a diff shows every variable that changes.
    assert isinstance(backup_container(shipped["dev"]).inputs["envs"], list)


def test_targets_and_recipients_are_space_separated_words(with_rclone: Recording) -> None:
    env = env_of(backup_container(with_rclone))
    assert env["DEPOT_BACKUP_INTERVAL"] == "21600"
    assert env["DEPOT_BACKUP_TARGETS"] == "offsite:depot/prod :s3,env_auth=true:depot-backups/prod"
    assert env["DEPOT_BACKUP_RECIPIENTS"].startswith("age1xk72")
    assert env["DEPOT_BACKUP_STACK"] == "prod"
    assert (env["DEPOT_BACKUP_KEEP_HOURLY"], env["DEPOT_BACKUP_KEEP_LOCAL"]) == ("4", "3")
    assert env["RCLONE_CONFIG"] == "/run/secrets/backup_rclone_config"


RECIPIENTS = [
    "age1xk72a7fvfupmssj73newmhv3pz0exes6n7tzwqytn4aepy3sjecq4q2jpc",
    "age1967cg380lwgpdxsnrfgg9zznx9nhak5dnzk7g5uk5kwny3vdfecqza320m",
]


@pytest.mark.parametrize("stack", ["prod", "cluster"])
def test_every_recipient_reaches_the_backup_service_on_each_runtime(stack: str) -> None:
    # Each restorer holds one key: a dump encrypted to the first alone locks out the others.
    several = {"depot:backup": {**OFFSITE["depot:backup"], "recipients": RECIPIENTS}}
    recording = run_stack(stack, several, secrets=RCLONE)
    if stack == "cluster":
        env = backup_service(recording).inputs["taskSpec"]["containerSpec"]["env"]
    else:
        env = env_of(backup_container(recording))
    assert env["DEPOT_BACKUP_RECIPIENTS"] == " ".join(RECIPIENTS)
    settings = settings_with(stack, several, RCLONE)
    compose = compose_document(settings)["services"]["backup"]["environment"]
    assert compose["DEPOT_BACKUP_RECIPIENTS"] == " ".join(RECIPIENTS)


def test_it_reads_the_password_and_only_a_given_rclone_config_as_files_for_uid_70(
    shipped: dict[str, Recording], with_rclone: Recording
) -> None:
    [password] = backup_container(shipped["prod"]).inputs["uploads"]
    assert password == {
        "file": "/run/secrets/database_password",
        "content": password["content"],
        "owner": "70",
        "group": "70",
        "permissions": "0400",
    }
    assert isinstance(password["content"], Secret)
    uploads = backup_container(with_rclone).inputs["uploads"]
    assert [(u["file"], u["owner"], u["permissions"]) for u in uploads] == [
        ("/run/secrets/database_password", "70", "0400"),
        ("/run/secrets/backup_rclone_config", "70", "0400"),
    ]
    assert uploads[1]["content"] == Secret(RCLONE_CONFIG)


def test_it_runs_as_postgres_without_capabilities_on_its_own_volume(
    shipped: dict[str, Recording],
) -> None:
    inputs = backup_container(shipped["prod"]).inputs
    assert inputs["user"] == "70:70"
    assert inputs["capabilities"] == {"drops": ["ALL"]}
    assert inputs["securityOpts"] == ["no-new-privileges:true"]
    assert inputs["tmpfs"] == {"/tmp": "rw,noexec,nosuid,size=64m"}
    assert inputs["volumes"] == [{"volumeName": "postgres-backups", "containerPath": "/backups"}]
    assert (inputs["init"], inputs["destroyGraceSeconds"], inputs["stopTimeout"]) == (True, 30, 30)
    assert (inputs["restart"], inputs["memory"], inputs["cpus"]) == ("always", 512, "0.5")


def test_its_healthcheck_turns_unhealthy_when_the_newest_backup_is_too_old(
    shipped: dict[str, Recording],
) -> None:
    inputs = backup_container(shipped["dev"]).inputs
    assert inputs["healthcheck"] == {
        "tests": ["CMD", "depot-backup", "health"],
        "interval": "10s",
        "timeout": "5s",
        "retries": 3,
        "startPeriod": "300s",
        # probed every second while its first backup runs: healthy as soon as it is good
        "startInterval": "1s",
    }
    # up waits for the first backup: the start period, then every probe failing, and one more.
    assert (inputs["wait"], inputs["waitTimeout"]) == (True, 300 + 3 * (10 + 5) + 10)


def test_it_starts_once_postgres_is_healthy_and_after_a_rotated_password(
    shipped: dict[str, Recording],
) -> None:
    dev = shipped["dev"]
    backup = backup_container(dev)
    by_urn = {r.urn: r.name for r in dev.registrations}
    assert {by_urn[u] for u in backup.dependencies} >= {
        "postgres-container",
        "database-password-rotation",
        "postgres-backups",
        "backup-network",
        "database-network",
        "backup-image",
    }
    assert containers(dev)["postgres"].inputs["wait"] is True


def test_dev_builds_it_on_the_stacks_own_postgres_and_loads_it(
    shipped: dict[str, Recording],
) -> None:
    dev = shipped["dev"]
    build = dev.named("backup-image-build", BUILD)
    assert build.inputs["context"] == {"location": "./docker/backup"}
    assert build.inputs["dockerfile"] == {"location": "./docker/backup.Dockerfile"}
    assert build.inputs["buildArgs"] == {"POSTGRES_IMAGE": "postgres:17.2-alpine"}
    assert build.inputs["tags"] == ["depot-backup:dev"]
    assert (build.inputs["load"], build.inputs["push"]) == (True, False)
    image = dev.named("backup-image", REMOTE_IMAGE)
    assert image.inputs["name"] == "depot-backup:dev"
    assert backup_container(dev).inputs["image"].startswith("(image id of depot-backup:dev ")


def test_prod_pushes_it_and_runs_it_by_digest_from_its_pinned_postgres(
    shipped: dict[str, Recording],
) -> None:
    prod = shipped["prod"]
    build = prod.named("backup-image-build", BUILD)
    # The postgres prod runs, by digest: pg_dump is exactly the server's own.
    assert build.inputs["buildArgs"] == {"POSTGRES_IMAGE": PROD_POSTGRES}
    assert "@sha256:" in PROD_POSTGRES
    assert build.inputs["tags"] == [
        "registry.example.com/depot-backup:0123456789abcdef0123456789abcdef01234567"
    ]
    assert build.inputs["push"] is True
    assert (
        backup_container(prod)
        .inputs["image"]
        .startswith("registry.example.com/depot-backup@sha256:")
    )


def test_an_image_ci_pushed_is_run_by_its_digest_and_not_built() -> None:
    digest = "registry.example.com/depot-backup@sha256:" + "b" * 64
    images = {**load_settings("prod", stack_config("prod")).images, "backup": digest}
    recording = run_stack("prod", {"depot:images": images})
    assert "backup-image-build" not in {b.name for b in recording.of_type(BUILD)}
    assert backup_container(recording).inputs["image"] == digest


def test_without_backups_nothing_of_them_is_registered() -> None:
    recording = run_stack("dev", {"depot:backup": {"enabled": False}})
    names = {r.name for r in recording.registrations}
    assert not {n for n in names if "backup" in n}
    assert "backup" not in recording.stack_outputs.get("containers", {})


# --- Swarm -------------------------------------------------------------------------------------


def test_on_a_swarm_it_is_one_task_on_the_data_node_updated_stop_first(
    cluster_with_rclone: Recording,
) -> None:
    service = backup_service(cluster_with_rclone)
    spec = service.inputs["taskSpec"]["containerSpec"]
    assert service.inputs["mode"] == {"replicated": {"replicas": 1}}
    assert service.inputs["taskSpec"]["placement"] == {
        "constraints": ["node.labels.depot.postgres-data == true"]
    }
    # Never two backup tasks on one volume, as postgres is never two servers on its data.
    assert service.inputs["updateConfig"]["order"] == "stop-first"
    assert {"type": "volume", "source": "postgres-backups", "target": "/backups"} in spec["mounts"]
    assert spec["user"] == "70:70"
    assert spec["init"] is True
    assert [n["id"] for n in service.inputs["taskSpec"]["networksAdvanceds"]] == [
        "backup-network-id",
        "database-network-id",
    ]
    assert [(s["fileName"], s["fileUid"], s["fileMode"]) for s in spec["secrets"]] == [
        ("/run/secrets/database_password", "70", 0o400),
        ("/run/secrets/backup_rclone_config", "70", 0o400),
    ]
    assert spec["env"]["RCLONE_CONFIG"] == "/run/secrets/backup_rclone_config"


def test_on_a_swarm_the_rclone_config_is_a_secret_named_by_its_content(
    cluster_with_rclone: Recording,
) -> None:
    secret = cluster_with_rclone.named("backup-rclone-config", DOCKER_SECRET)
    assert secret.inputs["data"] == Secret(base64.b64encode(RCLONE_CONFIG.encode()).decode())
    name = secret.inputs["name"]
    assert name.startswith("depot-backup-rclone-config-")
    changed = run_stack("cluster", OFFSITE, secrets={"depot:backupRcloneConfig": "[offsite]\n"})
    assert changed.named("backup-rclone-config", DOCKER_SECRET).inputs["name"] != name


def test_an_rclone_config_kept_while_backups_are_off_goes_nowhere() -> None:
    off = {"depot:backup": {**OFFSITE["depot:backup"], "enabled": False}}
    recording = run_stack("cluster", off, secrets=RCLONE)
    assert "backup-rclone-config" not in {r.name for r in recording.of_type(DOCKER_SECRET)}
    leaks = [
        leaf for r in recording.registrations for leaf, _ in walk(r.inputs) if leaf == RCLONE_CONFIG
    ]
    assert leaks == []


def test_a_swarm_stack_without_an_rclone_config_has_no_such_secret(
    shipped_cluster: Recording,
) -> None:
    assert {r.name for r in shipped_cluster.of_type(DOCKER_SECRET)} == {
        "database-password",
        "grafana-admin-password",
    }
    spec = backup_service(shipped_cluster).inputs["taskSpec"]["containerSpec"]
    assert [s["fileName"] for s in spec["secrets"]] == ["/run/secrets/database_password"]


@pytest.fixture(scope="module")
def shipped_cluster() -> Recording:
    return run_stack("cluster")


# --- the Compose and stack files ---------------------------------------------------------------


def test_the_compose_file_builds_it_as_the_program_does() -> None:
    settings = load_settings("dev", stack_config("dev"))
    service = compose_document(settings)["services"]["backup"]
    assert service["image"] == "depot-backup:dev"
    assert service["build"] == {
        "context": "./docker/backup",
        # Compose reads it from the context: beside the folder, in docker/.
        "dockerfile": "../backup.Dockerfile",
        "args": {"POSTGRES_IMAGE": "postgres:17.2-alpine"},
    }
    assert service["pull_policy"] == "build"
    assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert service["volumes"] == [
        {"type": "volume", "source": "postgres-backups", "target": "/backups"}
    ]
    assert list(service["networks"]) == ["backup-network", "database-network"]
    assert service["user"] == "70:70"
    assert service["healthcheck"]["test"] == ["CMD", "depot-backup", "health"]


def test_the_compose_file_names_its_network_volume_and_secret_files() -> None:
    settings = settings_with("prod", OFFSITE, RCLONE)
    document = compose_document(settings)
    assert document["networks"]["backup-network"] == {
        "name": "backup-network",
        "driver": "bridge",
        "internal": False,
    }
    assert document["volumes"]["postgres-backups"] == {"name": "postgres-backups"}
    assert document["secrets"]["backup_rclone_config"] == {
        "file": "./secrets/backup_rclone_config.txt"
    }
    assert document["services"]["backup"]["secrets"][1] == {
        "source": "backup_rclone_config",
        "target": "/run/secrets/backup_rclone_config",
        "uid": "70",
        "gid": "70",
        "mode": 0o400,
    }
    text = compose_yaml(settings)
    assert "mode: 0400" in text
    # depot secrets init never writes it: the header says who does.
    assert (
        "# Write ./secrets/backup_rclone_config.txt yourself (mode 0600): the backupRcloneConfig "
        "the stack sets, which only the Pulumi CLI can decrypt"
    ) in text
    assert RCLONE_CANARY not in text


def test_a_compose_file_without_an_rclone_config_reads_none() -> None:
    text = compose_yaml(load_settings("prod", stack_config("prod")))
    assert "backup_rclone_config" not in text
    assert "RCLONE_CONFIG: /dev/null" in text


def test_the_stack_file_pins_it_with_postgres_on_an_overlay_of_its_own() -> None:
    settings = settings_with("cluster", OFFSITE, RCLONE)
    document = stack_document(settings)
    service = document["services"]["backup"]
    assert service["image"] == (
        "registry.example.com/depot-backup:0123456789abcdef0123456789abcdef01234567"
    )
    assert service["deploy"]["placement"] == {
        "constraints": ["node.labels.depot.postgres-data == true"]
    }
    assert service["deploy"]["replicas"] == 1
    assert service["deploy"]["update_config"]["order"] == "stop-first"
    assert {"type": "volume", "source": "postgres-backups", "target": "/backups"} in service[
        "volumes"
    ]
    assert document["networks"]["backup-network"] == {"name": "backup-network", "driver": "overlay"}
    assert [s["source"] for s in service["secrets"]] == [
        "database_password",
        "backup_rclone_config",
    ]
    assert RCLONE_CANARY not in stack_yaml(settings)


def test_secrets_init_never_makes_up_an_rclone_config_but_checks_one(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    names = [result.name for result in init_secret_files(folder)]
    assert "backup_rclone_config.txt" not in names
    assert not (folder / "backup_rclone_config.txt").exists()
    (folder / "backup_rclone_config.txt").write_text("")
    problems = {r.name: r.problem for r in init_secret_files(folder)}
    assert problems["backup_rclone_config.txt"] == "is empty; remove it and run again"
    (folder / "backup_rclone_config.txt").write_text(RCLONE_CONFIG)
    (folder / "backup_rclone_config.txt").chmod(0o600)
    results = {r.name: r for r in init_secret_files(folder)}
    kept = results["backup_rclone_config.txt"]
    assert (kept.created, kept.problem, kept.warning) == (False, None, None)
    assert (folder / "backup_rclone_config.txt").read_text() == RCLONE_CONFIG


# --- the canary --------------------------------------------------------------------------------


def test_the_rclone_config_is_in_no_input_that_is_not_secret(
    with_rclone: Recording, cluster_with_rclone: Recording
) -> None:
    for recording in (with_rclone, cluster_with_rclone):
        encoded = base64.b64encode(RCLONE_CONFIG.encode()).decode()
        leaks = [
            (r.name, leaf)
            for r in recording.registrations
            for leaf, secret in walk(r.inputs)
            if not secret and isinstance(leaf, str) and (RCLONE_CANARY in leaf or encoded in leaf)
        ]
        assert leaks == []
        holders = sorted(
            r.name
            for r in recording.registrations
            for leaf, secret in walk(r.inputs)
            if secret and isinstance(leaf, str) and (RCLONE_CANARY in leaf or leaf == encoded)
        )
        assert holders == (
            ["backup-container"] if recording is with_rclone else ["backup-rclone-config"]
        )
        # Given, never generated: no stack output carries it, not even as a secret.
        assert "backupRcloneConfig" not in recording.stack_outputs
        assert RCLONE_CANARY not in json.dumps(recording.stack_outputs, default=str)


def test_no_plan_diff_or_graph_prints_the_rclone_config(
    with_rclone: Recording, cluster_with_rclone: Recording
) -> None:
    key = new_fingerprint_key()
    plan = plan_from(with_rclone, fingerprint_key=key)
    other = plan_from(
        run_stack("prod", OFFSITE, secrets={"depot:backupRcloneConfig": "[offsite]\n"}),
        fingerprint_key=key,
    )
    diff = diff_plans(other, plan, base_label="a", head_label="b")
    assert ("backup-container", "uploads[1].content") in {
        (c.after.name, p.path) for c, p in diff.secret_changes
    }
    unkeyed = plan_from(with_rclone)
    swarm = plan_from(cluster_with_rclone)
    outputs = [
        plan_text(unkeyed),
        as_read(plan_markdown(unkeyed)),
        dumps(unkeyed.to_json()),
        dumps(swarm.to_json()),
        diff_text(diff),
        as_read(diff_markdown(diff, plan)),
        dumps(diff.to_json()),
        to_mermaid(build_graph(unkeyed)),
        to_dot(build_graph(swarm)),
    ]
    for output in outputs:
        assert RCLONE_CANARY not in output
        assert "[secret:" not in output  # not even a fingerprint leaves a diff


def test_a_secure_rclone_config_in_a_stack_file_is_never_read_or_printed(tmp_path: Path) -> None:
    # `depot` reads stack files, where the value is `secure:` ciphertext: it never has it, and
    # a named remote is not second-guessed without it (`pulumi up` checks the decrypted value).
    document = yaml.safe_load((PROJECT_DIR / "Pulumi.prod.yaml").read_text())
    document["config"]["depot:backupRcloneConfig"] = {"secure": "v1:" + RCLONE_CANARY}
    document["config"]["depot:backup"]["targets"] = ["offsite:depot/prod"]
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    raw = read_stack_file("prod", tmp_path)
    assert raw.secret_keys == {"depot:backupRcloneConfig"}
    assert RCLONE_CANARY not in raw.values["depot:backupRcloneConfig"]
    settings = load_settings("prod", raw)
    text = compose_yaml(settings)
    assert "./secrets/backup_rclone_config.txt" in text
    assert RCLONE_CANARY not in text


def test_the_catalog_switches_it_on_by_its_setting_not_a_profile() -> None:
    assert (BACKUP.container_name, BACKUP.profile) == ("depot-backup", None)
    assert BACKUP.enabled_by == "backup.enabled"
    settings = load_settings("dev", stack_config("dev", {"depot:backup": {"enabled": False}}))
    assert not runs(settings, BACKUP)
    assert runs(load_settings("dev", stack_config("dev")), BACKUP)


def test_the_graph_draws_the_backup_service_with_what_it_needs(
    shipped: dict[str, Recording],
) -> None:
    graph = build_graph(plan_from(shipped["prod"]))
    mermaid = to_mermaid(graph)
    for label in (
        '["service: depot-backup"]',
        '[("volume: postgres-backups")]',
        '["network: backup-network"]',
        '["image: backup-image"]',
        '["build: backup-image-build"]',
    ):
        assert label in mermaid, label
    edges = {
        (e.source.split("::")[1], e.target.split("::")[1], e.health_gated) for e in graph.edges
    }
    assert {
        ("postgres-container", "backup-container", True),
        ("postgres-backups", "backup-container", False),
        ("backup-network", "backup-container", False),
        ("database-network", "backup-container", False),
        ("backup-image", "backup-container", False),
        ("database-password-rotation", "backup-container", False),
    } <= edges
