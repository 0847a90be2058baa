"""``depot compose`` and ``depot secrets init``: the same depot as a Compose file.

The parity tests walk the export and the Pulumi registrations service by service; each area has
its own test, and ``test_every_container_input_is_exported_or_explained`` fails when the program
gains a container input the export does not carry.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.validators import validator_for

from depot.catalog import SERVICES, START_INTERVAL
from depot.cli import _parser, main
from depot.config import ConfigError, DepotSettings, RawConfig, load_settings
from depot.config.stack_file import read_stack_file
from depot.config.stack_file import stack_config as read_stack_config
from depot.outputs.compose import compose_document, compose_yaml, omitted_services, project_path
from depot.outputs.secret_files import PASSWORD_LENGTH, init_secret_files
from depot.program import deploy
from depot.recording import Recording, Registration, record
from depot.resource_types import BUILD, CONTAINER, NETWORK, REMOTE_IMAGE, VOLUME
from tests.conftest import PROJECT_DIR, containers, env_of, run_stack, stack_config

SCHEMA = json.loads((PROJECT_DIR / "schemas" / "compose-spec.json").read_text())
CANARY = "canary-Zq7!pw/with:url@chars"
EVERY_PROFILE = {"depot:profiles": ["gpu", "rtk"]}


def settings_of(stack: str, overrides: dict[str, Any] | None = None) -> DepotSettings:
    return load_settings(stack, stack_config(stack, overrides))


def export_of(stack: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return compose_document(settings_of(stack, overrides))


@dataclass(frozen=True)
class Parity:
    """One stack's Compose export beside what the program registers for it."""

    settings: DepotSettings
    export: dict[str, Any]
    recording: Recording

    def services(self) -> Iterator[tuple[str, dict[str, Any], Registration]]:
        """Each container the program registers, with its Compose service."""
        for name, container in containers(self.recording).items():
            yield name, self.export["services"][name], container

    def container(self, urn: str) -> Registration | None:
        registration = self.recording.by_urn(urn)
        return registration if registration.type == CONTAINER else None


@pytest.fixture(scope="module")
def dev_with_every_profile() -> Recording:
    return run_stack("dev", EVERY_PROFILE)


@pytest.fixture(params=["dev", "prod", "dev --profile gpu --profile rtk"])
def parity(
    request: pytest.FixtureRequest,
    shipped: dict[str, Recording],
    dev_with_every_profile: Recording,
) -> Parity:
    """dev and prod as shipped, and dev with the optional services it exports but does not run."""
    if request.param == "dev --profile gpu --profile rtk":
        settings = settings_of("dev", EVERY_PROFILE)
        return Parity(settings, compose_document(settings), dev_with_every_profile)
    settings = settings_of(request.param)
    return Parity(settings, compose_document(settings), shipped[request.param])


def from_project(path: str) -> str:
    """A path of the Compose file (at the project root) as the program's absolute one."""
    return os.path.normpath(PROJECT_DIR / path)


# --- the Compose specification ---------------------------------------------------------------


def compose_validator() -> Any:
    # The schema says draft-07 as https://…/schema; jsonschema registers it as http://…/schema#.
    draft = SCHEMA["$schema"].replace("https://", "http://").removesuffix("#") + "#"
    return validator_for({"$schema": draft})(SCHEMA)


def schema_errors(document: object) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in compose_validator().iter_errors(document)
    ]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_export_validates_against_the_compose_specification(stack: str) -> None:
    written = yaml.safe_load(compose_yaml(settings_of(stack)))
    assert schema_errors(written) == []


def test_the_schema_check_uses_draft_7_and_rejects_what_compose_rejects() -> None:
    assert compose_validator().META_SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    document = export_of("dev")
    document["services"]["discovery"]["restart_policy"] = "always"
    document["services"]["postgres"]["ports"] = [{"target": "5432", "unknown": 1}]
    assert len(schema_errors(document)) == 2


def test_the_file_is_the_document_with_a_header_saying_how_to_use_it() -> None:
    settings = settings_of("prod")
    text = compose_yaml(settings)
    assert _as_compose_reads(yaml.safe_load(text)) == compose_document(settings)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert "# `depot compose --stack prod` from the model the Pulumi program deploys." in header
    assert (
        "# Start it as the stack runs: docker compose --profile gpu --profile rtk up -d" in header
    )
    assert "mode: 0400" in text  # octal, as Compose files write modes


def test_a_literal_dollar_is_written_as_compose_requires() -> None:
    # The worker probe `pgrep ^depot-service$`: a lone `$` is refused by Compose's interpolation.
    text = compose_yaml(settings_of("prod"))
    assert "^depot-service$$" in text
    assert "^depot-service$]" not in text
    assert _as_compose_reads(yaml.safe_load(text)) == compose_document(settings_of("prod"))


def _as_compose_reads(value: Any) -> Any:
    """A loaded Compose document after interpolation: `$$` is a literal `$`."""
    if isinstance(value, dict):
        return {key: _as_compose_reads(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_compose_reads(item) for item in value]
    return value.replace("$$", "$") if isinstance(value, str) else value


# --- parity with the program, service by service ---------------------------------------------


def test_the_export_starts_the_services_the_stack_runs(parity: Parity) -> None:
    started = {
        name
        for name, service in parity.export["services"].items()
        if all(profile in parity.settings.profiles for profile in service.get("profiles", []))
    }
    assert started == set(containers(parity.recording))


def test_images_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        if "build" in service:
            build = parity.recording.named(f"{name}-image-build", BUILD).inputs
            context = from_project(service["build"]["context"])
            assert context == from_project(build["context"]["location"]), name
            dockerfile = os.path.normpath(Path(context) / service["build"]["dockerfile"])
            assert dockerfile == from_project(build["dockerfile"]["location"]), name
            assert service["build"]["args"] == build["buildArgs"], name
            assert service["image"] == build["tags"][0], name
            if build["push"]:
                # Pushed: the container runs that repository's image by the build's digest.
                repository = service["image"].rsplit(":", 1)[0]
                assert container.inputs["image"].startswith(f"{repository}@sha256:"), name
                continue
        else:
            pulled = parity.recording.named(f"{name}-image", REMOTE_IMAGE).inputs
            assert service["image"] == pulled["name"], name
        # The container runs the image ID of exactly that reference (the mocks name it).
        assert container.inputs["image"].startswith(f"(image id of {service['image']} "), name


def test_published_ports_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        assert service.get("ports", []) == [
            {
                "target": port["internal"],
                "published": port["external"],
                "host_ip": port["ip"],
                "protocol": port["protocol"],
            }
            for port in container.inputs.get("ports", [])
        ], name


def test_environments_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        program = env_of(container)
        assert service.get("environment", {}) == {
            key: value for key, value in program.items() if key != "DATABASE_URL"
        }, name
        # The one variable Compose cannot build from a file secret comes from the env file.
        assert ("env_file" in service) == ("DATABASE_URL" in program), name


def test_healthchecks_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        check = container.inputs["healthcheck"]
        assert service["healthcheck"] == {
            "test": check["tests"],
            "interval": check["interval"],
            "timeout": check["timeout"],
            "retries": check["retries"],
            "start_period": check["startPeriod"],
            "start_interval": check["startInterval"],
        }, name


def test_every_healthcheck_probes_its_start_as_the_catalog_says(parity: Parity) -> None:
    # start_interval is what makes a fresh `up` healthy in seconds (README "Engine tier"): each
    # container and each exported service carries the catalog's figure, inside a start period
    # (Docker applies it only there; Compose refuses it without one).
    for name, service, container in parity.services():
        check = next(spec for spec in SERVICES if spec.name == name).healthcheck
        assert check.start_interval == START_INTERVAL, name
        assert check.start_period > 0, name
        assert container.inputs["healthcheck"]["startInterval"] == f"{START_INTERVAL}s", name
        assert service["healthcheck"]["start_interval"] == f"{START_INTERVAL}s", name


def test_networks_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        assert [(n, c["aliases"]) for n, c in service["networks"].items()] == [
            (n["name"], n["aliases"]) for n in container.inputs["networksAdvanced"]
        ], name
        assert next(iter(service["networks"])) == container.inputs["networkMode"], name
    assert parity.export["networks"] == {
        network.inputs["name"]: {
            "name": network.inputs["name"],
            "driver": network.inputs["driver"],
            "internal": network.inputs["internal"],
        }
        for network in parity.recording.of_type(NETWORK)
    }


def test_volumes_bind_mounts_and_tmpfs_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        mounts = service.get("volumes", [])
        assert [
            {
                "volumeName": parity.export["volumes"][m["source"]]["name"],
                "containerPath": m["target"],
            }
            for m in mounts
            if m["type"] == "volume"
        ] == container.inputs.get("volumes", []), name
        assert [
            {
                "type": "bind",
                "source": from_project(m["source"]),
                "target": m["target"],
                "readOnly": m["read_only"],
            }
            for m in mounts
            if m["type"] == "bind"
        ] == container.inputs.get("mounts", []), name
        assert dict(entry.split(":", 1) for entry in service.get("tmpfs", [])) == (
            container.inputs.get("tmpfs", {})
        ), name
    assert [v["name"] for v in parity.export["volumes"].values()] == [
        volume.inputs["name"] for volume in parity.recording.of_type(VOLUME)
    ]


def test_secret_files_agree_in_path_owner_and_mode(parity: Parity) -> None:
    for name, service, container in parity.services():
        assert [
            {
                "file": s["target"],
                "owner": s["uid"],
                "group": s["gid"],
                "permissions": f"0{s['mode']:o}",
            }
            for s in service.get("secrets", [])
        ] == [
            {key: upload[key] for key in ("file", "owner", "group", "permissions")}
            for upload in container.inputs.get("uploads", [])
        ], name
    assert parity.export["secrets"] == {
        "database_password": {"file": "./secrets/database_password.txt"},
        "grafana_admin_password": {"file": "./secrets/grafana_admin_password.txt"},
    }


def test_restart_policies_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        retries = container.inputs.get("maxRetryCount")
        expected = container.inputs["restart"] + (f":{retries}" if retries else "")
        assert service["restart"] == expected, name


def test_an_on_failure_retry_count_is_exported() -> None:
    overrides = {"depot:restart": "on-failure:3"}
    program = containers(run_stack("dev", overrides))["discovery"].inputs
    assert (program["restart"], program["maxRetryCount"]) == ("on-failure", 3)
    assert export_of("dev", overrides)["services"]["discovery"]["restart"] == "on-failure:3"


def _megabytes(size: str | None) -> int | None:
    return None if size is None else int(size.removesuffix("m"))


def test_limits_reservations_and_gpus_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        resources = service.get("deploy", {}).get("resources", {})
        limits = resources.get("limits", {})
        reservations = resources.get("reservations", {})
        assert _megabytes(limits.get("memory")) == container.inputs.get("memory"), name
        assert limits.get("cpus") == container.inputs.get("cpus"), name
        assert _megabytes(reservations.get("memory")) == (
            container.inputs.get("memoryReservation")
        ), name
        gpus = [{"capabilities": ["gpu"], "count": "all"}]
        assert (reservations.get("devices") == gpus) == (container.inputs.get("gpus") == "all"), (
            name
        )


def test_logging_agrees(parity: Parity) -> None:
    for name, service, container in parity.services():
        assert service["logging"] == {
            "driver": container.inputs["logDriver"],
            "options": container.inputs["logOpts"],
        }, name


def test_labels_agree(parity: Parity) -> None:
    for name, service, container in parity.services():
        assert service.get("labels", {}) == {
            label["label"]: label["value"] for label in container.inputs["labels"]
        }, name


def test_start_order_agrees(parity: Parity) -> None:
    order = list(parity.export["services"])
    for name, service, container in parity.services():
        waited_for = [parity.container(urn) for urn in container.dependencies]
        assert service.get("depends_on", {}) == {
            dependency.inputs["name"].removeprefix("depot-"): {"condition": "service_healthy"}
            for dependency in waited_for
            if dependency is not None and dependency.inputs["wait"]
        }, name
        assert all(
            order.index(other) < order.index(name) for other in service.get("depends_on", {})
        )


def test_hardening_agrees(parity: Parity) -> None:
    for name, service, container in parity.services():
        program = container.inputs
        assert service["container_name"] == program["name"], name
        assert service["read_only"] == program["readOnly"], name
        assert service.get("user") == program.get("user"), name
        assert service["cap_drop"] == program["capabilities"]["drops"], name
        assert service.get("cap_add") == program["capabilities"].get("adds"), name
        assert service["security_opt"] == program["securityOpts"], name
        assert service.get("init") == program.get("init"), name
        assert service["stop_grace_period"] == f"{program['destroyGraceSeconds']}s", name
        assert program["stopTimeout"] == program["destroyGraceSeconds"], name


# Each container input the program sends → the Compose keys that carry it (tested above).
EXPORTED = {
    "name": {"container_name"},
    "image": {"image"},
    "entrypoints": {"entrypoint"},
    "command": {"command"},
    "envs": {"environment", "env_file"},
    "healthcheck": {"healthcheck"},
    "restart": {"restart"},
    "maxRetryCount": {"restart"},
    "memory": {"deploy"},
    "memoryReservation": {"deploy"},
    "cpus": {"deploy"},
    "gpus": {"deploy"},
    "logDriver": {"logging"},
    "logOpts": {"logging"},
    "labels": {"labels"},
    "networkMode": {"networks"},
    "networksAdvanced": {"networks"},
    "ports": {"ports"},
    "volumes": {"volumes"},
    "mounts": {"volumes"},
    "tmpfs": {"tmpfs"},
    "uploads": {"secrets"},
    "readOnly": {"read_only"},
    "user": {"user"},
    "capabilities": {"cap_drop", "cap_add"},
    "securityOpts": {"security_opt"},
    "init": {"init"},
    "destroyGraceSeconds": {"stop_grace_period"},
    "stopTimeout": {"stop_grace_period"},
}
# What only the program needs, and why Compose does without (README "Compose export").
PULUMI_ONLY = {
    "wait": "Compose waits for health through depends_on: service_healthy",
    "waitTimeout": "Compose's own wait has no per-service timeout",
    "removeVolumes": "Compose removes anonymous volumes only on `down -v`",
}
# Compose keys that come from somewhere other than the container's inputs (tested above).
FROM_ELSEWHERE = {
    "build": "the image build",
    "pull_policy": "the image build",
    "depends_on": "the container's dependencies",
    "profiles": "which containers a stack registers",
}


def test_every_container_input_is_exported_or_explained(parity: Parity) -> None:
    for name, service, container in parity.services():
        unexplained = set(container.inputs) - set(EXPORTED) - set(PULUMI_ONLY)
        assert unexplained == set(), name
        carried = set().union(*EXPORTED.values(), FROM_ELSEWHERE)
        assert set(service) - carried == set(), name


def test_paths_in_or_beside_the_project_are_relative_to_it() -> None:
    services = export_of("dev")["services"]
    assert services["discovery"]["build"] == {
        "context": "../discovery",
        # Compose reads the Dockerfile's path from the build context.
        "dockerfile": f"../{PROJECT_DIR.name}/docker/rust-service.Dockerfile",
        "args": {"BINARY": "discovery"},
    }
    assert services["console"]["volumes"][0]["source"] == "../console/dist"
    assert services["dispatch"]["env_file"] == "./secrets/dispatch.env"


def test_paths_elsewhere_stay_absolute() -> None:
    contexts = {s: f"/srv/{s}" for s in ("discovery", "dispatch", "splat-worker", "rtk-base")}
    build = export_of("dev", {"depot:build": {"contexts": contexts}})["services"]["discovery"]
    assert build["build"]["context"] == "/srv/discovery"
    assert build["build"]["dockerfile"] == str(PROJECT_DIR / "docker" / "rust-service.Dockerfile")


# --- the reference's settings ----------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_export() -> dict[str, Any]:
    return export_of("dev")


def test_dev_discovery_carries_the_references_settings(dev_export: dict[str, Any]) -> None:
    discovery = dev_export["services"]["discovery"]
    assert discovery["ports"] == [
        {"target": 4860, "published": 4860, "host_ip": "127.0.0.1", "protocol": "tcp"}
    ]
    assert discovery["healthcheck"] == {
        "test": ["CMD", "wget", "-q", "-O-", "http://localhost:4860/health"],
        "interval": "10s",
        "timeout": "3s",
        "retries": 3,
        "start_period": "30s",
        "start_interval": "1s",
    }
    assert [entry.split(":")[0] for entry in discovery["tmpfs"]] == ["/tmp", "/var/run"]
    assert discovery["labels"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "4860",
        "prometheus.io/path": "/metrics",
    }
    assert discovery["logging"] == {
        "driver": "json-file",
        "options": {"max-size": "10m", "max-file": "3"},
    }
    assert discovery["restart"] == "unless-stopped"
    assert discovery["environment"] == {"PORT": "4860", "RUST_LOG": "discovery=debug"}


def test_dev_postgres_is_the_references_internal_database(dev_export: dict[str, Any]) -> None:
    postgres = dev_export["services"]["postgres"]
    assert postgres["healthcheck"]["test"] == ["CMD", "pg_isready", "-U", "postgres"]
    assert (postgres["healthcheck"]["interval"], postgres["healthcheck"]["retries"]) == ("5s", 5)
    assert postgres["volumes"] == [
        {"type": "volume", "source": "postgres-data", "target": "/var/lib/postgresql/data"}
    ]
    assert dev_export["volumes"] == {
        "postgres-data": {"name": "postgres-data"},
        "postgres-backups": {"name": "postgres-backups"},
    }
    assert list(postgres["networks"]) == ["database-network"]
    assert dev_export["networks"]["database-network"]["internal"] is True
    assert dev_export["networks"]["depot-network"]["internal"] is False
    assert "ports" not in postgres


def test_dev_start_order_is_health_gated_as_in_the_reference(dev_export: dict[str, Any]) -> None:
    services = dev_export["services"]
    healthy = {"condition": "service_healthy"}
    assert services["console"]["depends_on"] == {
        "discovery": healthy,
        "dispatch": healthy,
        "grafana": healthy,
    }
    assert services["dispatch"]["depends_on"] == {"postgres": healthy}
    assert list(services["dispatch"]["networks"]) == ["depot-network", "database-network"]


def test_dev_console_mounts_its_dist_read_only_and_sessions_writable(
    dev_export: dict[str, Any],
) -> None:
    assert dev_export["services"]["console"]["volumes"] == [
        {
            "type": "bind",
            "source": "../console/dist",
            "target": "/usr/share/nginx/html",
            "read_only": True,
        },
        {
            "type": "bind",
            "source": "/data/sessions",
            "target": "/data/sessions",
            "read_only": False,
        },
    ]


# --- profiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_service_is_exported_the_optional_ones_with_their_profile(stack: str) -> None:
    services = export_of(stack)["services"]
    assert {name: s.get("profiles") for name, s in services.items()} == {
        "postgres": None,
        "discovery": None,
        "dispatch": None,
        "grafana": None,
        "console": None,
        "splat-worker": ["gpu"],
        "rtk-base": ["rtk"],
        "backup": None,  # switched on by depot:backup.enabled, not by a profile
    }
    gpus = services["splat-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpus == [{"capabilities": ["gpu"], "count": "all"}]


def test_an_optional_service_without_a_build_context_is_left_out_and_named() -> None:
    contexts = {s: f"../{s}" for s in ("discovery", "dispatch", "rtk-base")}
    settings = settings_of("dev", {"depot:build": {"contexts": contexts}})
    assert "splat-worker" not in compose_document(settings)["services"]
    assert "rtk-base" in compose_document(settings)["services"]
    assert [spec.name for spec in omitted_services(settings)] == ["splat-worker"]
    assert (
        "# Left out: splat-worker (profile gpu): no depot:build.contexts.splat-worker "
        "in Pulumi.dev.yaml"
    ) in compose_yaml(settings)


def test_asking_for_a_profile_without_its_build_context_is_the_programs_error() -> None:
    overrides = {
        "depot:build": {"contexts": {"discovery": "../discovery", "dispatch": "../dispatch"}},
        "depot:profiles": ["gpu"],
    }
    with pytest.raises(ConfigError) as program:
        run_stack("dev", overrides)
    with pytest.raises(ConfigError) as export:
        export_of("dev", overrides)
    assert "has no source directory for splat-worker" in str(program.value)
    assert str(export.value) == str(program.value)


# --- secrets ---------------------------------------------------------------------------------


def test_no_secret_value_reaches_the_export() -> None:
    config = stack_config("prod")
    given = {"depot:databasePassword": CANARY, "depot:grafanaAdminPassword": CANARY + "-g"}
    settings = load_settings(
        "prod", RawConfig({**config.values, **given}, config.secret_keys | frozenset(given))
    )
    assert settings.database_password is not None
    assert settings.database_password.get_secret_value() == CANARY  # the export could see it
    text = compose_yaml(settings)
    assert "canary" not in text
    assert "Zq7" not in text
    assert "DATABASE_URL" not in text


def test_secrets_init_creates_each_file_mode_0600_in_a_private_folder(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    results = init_secret_files(folder)
    assert [(r.name, r.created) for r in results] == [
        ("database_password.txt", True),
        ("grafana_admin_password.txt", True),
        ("dispatch.env", True),
    ]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for result in results:
        assert stat.S_IMODE((folder / result.name).stat().st_mode) == 0o600, result.name


def test_secret_values_are_random_letters_and_digits(tmp_path: Path) -> None:
    init_secret_files(tmp_path / "a")
    init_secret_files(tmp_path / "b")
    first = (tmp_path / "a" / "database_password.txt").read_text()
    second = (tmp_path / "b" / "database_password.txt").read_text()
    grafana = (tmp_path / "a" / "grafana_admin_password.txt").read_text()
    assert PASSWORD_LENGTH >= 32
    assert re.fullmatch(f"[A-Za-z0-9]{{{PASSWORD_LENGTH}}}", first)
    assert len({first, second, grafana}) == 3


def test_secrets_init_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    init_secret_files(tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    (tmp_path / "grafana_admin_password.txt").unlink()
    results = init_secret_files(tmp_path)
    assert [(r.name, r.created) for r in results] == [
        ("database_password.txt", False),
        ("grafana_admin_password.txt", True),
        ("dispatch.env", False),
    ]
    after = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert after["database_password.txt"] == before["database_password.txt"]
    assert after["dispatch.env"] == before["dispatch.env"]


def test_secrets_init_never_writes_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)  # a folder other users can enter is refused (tests/test_cli_files.py)
    (folder / "grafana_admin_password.txt").symlink_to(target)
    init_secret_files(folder)
    assert not target.exists()


def test_the_env_file_carries_the_database_url_the_program_builds(tmp_path: Path) -> None:
    program = containers(run_stack("dev", secrets={"depot:databasePassword": CANARY}))
    (tmp_path / "database_password.txt").write_text(CANARY + "\n")
    init_secret_files(tmp_path)
    assert (tmp_path / "dispatch.env").read_text() == (
        f"DATABASE_URL={env_of(program['dispatch'])['DATABASE_URL']}\n"
    )


def test_an_env_file_that_no_longer_matches_is_reported_not_rewritten(tmp_path: Path) -> None:
    init_secret_files(tmp_path)
    (tmp_path / "database_password.txt").write_text("changed")
    stale = (tmp_path / "dispatch.env").read_text()
    [*_, env_file] = init_secret_files(tmp_path)
    assert env_file.problem is not None
    assert "does not match database_password.txt" in env_file.problem
    assert (tmp_path / "dispatch.env").read_text() == stale


def test_the_secrets_folder_and_the_export_are_git_ignored() -> None:
    for path in ("secrets/database_password.txt", "secrets/dispatch.env", "compose.yaml"):
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=PROJECT_DIR, check=False
        ).returncode
        assert ignored == 0, path


# --- the command -----------------------------------------------------------------------------


def test_cli_compose_prints_the_export(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose", "--stack", "dev"]) == 0
    assert _as_compose_reads(yaml.safe_load(capsys.readouterr().out)) == export_of("dev")


def test_cli_compose_profile_enables_it_as_docker_compose_would(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["compose", "--stack", "dev", "--profile", "gpu"]) == 0
    assert "# Start it as the stack runs: docker compose --profile gpu up -d" in (
        capsys.readouterr().out
    )


def test_cli_compose_writes_a_file_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "compose.yaml"
    assert main(["compose", "--stack", "prod", "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {output} (stack prod)")
    assert len(out.splitlines()) == 1
    assert _as_compose_reads(yaml.safe_load(output.read_text())) == export_of("prod")


def test_cli_compose_of_an_unknown_stack_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose", "--stack", "qa"]) == 2
    assert "depot compose: Pulumi.qa.yaml: no such stack file" in capsys.readouterr().err


def test_cli_compose_of_a_bad_stack_file_gives_the_programs_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    shipped = (PROJECT_DIR / "Pulumi.dev.yaml").read_text()
    stack_file.write_text(shipped.replace("unless-stopped", "sometimes"))
    # The command reads the stack file of this copy instead of the project's.
    monkeypatch.setattr(
        "depot.config.stack_file.stack_config",
        lambda stack, profiles: read_stack_config(stack, profiles, tmp_path),
    )
    with pytest.raises(ConfigError) as program:
        record(deploy, stack="dev", config=read_stack_file("dev", tmp_path))
    assert main(["compose", "--stack", "dev"]) == 2
    # The same message; the command read the file itself, so it also knows the line and column.
    in_file = str(program.value).replace("Pulumi.dev.yaml:", "Pulumi.dev.yaml:3:18:", 1)
    assert capsys.readouterr().err == f"depot compose: {in_file}\n"
    assert "Pulumi.dev.yaml: depot:restart: 'sometimes' is not a restart policy" in str(
        program.value
    )


def test_cli_secrets_init_prints_file_names_never_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ("database_password.txt", "grafana_admin_password.txt", "dispatch.env")
    assert main(["secrets", "init", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"created {project_path(str(tmp_path / n))}" for n in names]
    for name in names:
        value = (tmp_path / name).read_text().strip().removeprefix("DATABASE_URL=")
        assert value not in out, name
    assert main(["secrets", "init", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"kept    {project_path(str(tmp_path / n))} (exists)" for n in names
    ]


def test_the_manual_shows_commands_the_cli_accepts() -> None:
    page = (PROJECT_DIR / "docs" / "compose.md").read_text()
    shell = page.split("```sh")[1].split("```")[0]
    commands = [
        line.split("#")[0].split() for line in shell.splitlines() if line.startswith("depot ")
    ]
    assert [c[:2] for c in commands] == [["depot", "secrets"], ["depot", "compose"]]
    for command in commands:
        _parser().parse_args(command[1:])  # exits (SystemExit) on an unknown option


def test_an_optional_service_run_by_digest_needs_no_crate_to_be_exported() -> None:
    reference = "registry.example.com/depot-splat-worker@sha256:" + "f" * 64
    settings = load_settings(
        "dev",
        stack_config(
            "dev",
            {
                "depot:build": {
                    "contexts": {"discovery": "../discovery", "dispatch": "../dispatch"}
                },
                "depot:images": {"splat-worker": reference},
            },
        ),
    )
    services = compose_document(settings)["services"]
    assert services["splat-worker"]["image"] == reference
    assert "build" not in services["splat-worker"]
    assert "rtk-base" not in services  # no crate, no digest: left out, as the header says
