"""Bad stack config: one message naming file, key, value and what is allowed; nothing registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from depot.config import ConfigError, RawConfig, load_settings
from depot.config.stack_file import read_stack_file
from depot.program import deploy
from depot.recording import Recording, record
from tests.conftest import PROJECT_DIR, stack_config

BAD_CONFIG: list[tuple[str, dict[str, Any], str]] = [
    (
        "profiles not a list",
        {"depot:profiles": "gpu"},
        r"Pulumi\.prod\.yaml: depot:profiles: 'gpu' should be a valid list; "
        r"expected a list of gpu, rtk",
    ),
    (
        "unknown profile",
        {"depot:profiles": ["gpu", "cuda"]},
        r"Pulumi\.prod\.yaml: depot:profiles\[1\]: 'cuda' should be 'gpu' or 'rtk'",
    ),
    (
        "unknown restart policy",
        {"depot:restart": "sometimes"},
        r"Pulumi\.prod\.yaml: depot:restart: 'sometimes' is not a restart policy; "
        r"use no, always, unless-stopped, on-failure or on-failure:N with N from 1 to 5",
    ),
    (
        "more restarts than policy allows",
        {"depot:restart": "on-failure:9"},
        r"Pulumi\.prod\.yaml: depot:restart: 'on-failure:9' is not a restart policy; "
        r"use .* on-failure:N with N from 1 to 5",
    ),
    (
        "memory that is not a size",
        {"depot:limits": {"discovery": {"memory": "lots", "cpus": 0.5}}},
        r"Pulumi\.prod\.yaml: depot:limits\.discovery\.memory: 'lots' is not a memory size; "
        r"use a number with a unit k, m or g, e\.g\. 256m",
    ),
    (
        "non-positive cpus",
        {"depot:limits": {"discovery": {"memory": "256m", "cpus": 0}}},
        r"Pulumi\.prod\.yaml: depot:limits\.discovery\.cpus: 0 is not a usable number of "
        r"CPUs; use between 0\.01 and 512",
    ),
    (
        "negative cpus",
        {"depot:limits": {"discovery": {"memory": "256m", "cpus": -1}}},
        r"depot:limits\.discovery\.cpus: -1 is not a number of CPUs; use a decimal number",
    ),
    (
        "limits for an unknown service",
        {"depot:limits": {"mongo": {"memory": "256m", "cpus": 1}}},
        r"Pulumi\.prod\.yaml: depot:limits\.mongo: 'mongo' should be 'discovery', 'dispatch', "
        r"'console', 'grafana', 'postgres', 'splat-worker', 'rtk-base' or 'backup'",
    ),
    (
        "misspelt field",
        {"depot:limits": {"discovery": {"memroy": "256m", "memory": "256m", "cpus": 1}}},
        r"Pulumi\.prod\.yaml: depot:limits\.discovery\.memroy: is not a known setting "
        r"\(did you mean memory\?\); known keys here: cpus, memory, memoryReservation$",
    ),
    (
        "misspelt top-level key",
        {"depot:profile": ["gpu"]},
        r"Pulumi\.prod\.yaml: depot:profile: is not a known setting \(did you mean profiles\?\); "
        r"known keys here: backup, backupRcloneConfig, build, console, data, .*profiles, "
        r"publish, .*restart",
    ),
    (
        "value of the wrong type",
        {"depot:build": {"onPreview": "maybe", "contexts": {}}},
        r"Pulumi\.prod\.yaml: depot:build\.onPreview: 'maybe' should be a valid boolean",
    ),
    (
        "map where a list belongs",
        {"depot:limits": ["discovery"]},
        r"Pulumi\.prod\.yaml: depot:limits: \[\"discovery\"\] should be a valid dictionary; "
        r"expected a map of service to \{memory, cpus, memoryReservation\}",
    ),
    (
        "reservation above the limit",
        {"depot:limits": {"discovery": {"memory": "128m", "cpus": 1, "memoryReservation": "1g"}}},
        r"depot:limits\.discovery: .* memoryReservation is larger than memory",
    ),
    (
        "postgres published",
        {"depot:publish": {"ports": {"postgres": 5432}}},
        r"Pulumi\.prod\.yaml: depot:publish: .* publishes postgres, which must stay on the "
        r"internal database network",
    ),
    (
        "port out of range",
        {"depot:publish": {"ports": {"console": 70000}}},
        r"Pulumi\.prod\.yaml: depot:publish\.ports\.console: 70000 should be less than or "
        r"equal to 65535",
    ),
    (
        "unpinned image",
        {"depot:images": {"postgres": "postgres:latest"}},
        r"Pulumi\.prod\.yaml: depot:images\.postgres: 'postgres:latest' is not a pinned image",
    ),
    (
        "docker host that is not one",
        {"depot:docker": {"host": "depot.example.com"}},
        r"Pulumi\.prod\.yaml: depot:docker\.host: 'depot\.example\.com' is not a Docker host",
    ),
    (
        "enabled service without a build context",
        {"depot:build": {"contexts": {"discovery": "../d", "dispatch": "../x"}}},
        r"Pulumi\.prod\.yaml: depot:build\.contexts: .* has no source directory for "
        r"splat-worker, rtk-base",
    ),
    (
        "unknown log level",
        {"depot:logLevel": "loud"},
        r"Pulumi\.prod\.yaml: depot:logLevel: 'loud' should be 'trace', 'debug', 'info', "
        r"'warn' or 'error'",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [pytest.param(o, m, id=case) for case, o, m in BAD_CONFIG],
)
def test_bad_config_is_rejected_with_a_message_naming_file_key_value_and_rule(
    overrides: dict[str, Any], message: str
) -> None:
    recording = Recording(stack="prod")
    with pytest.raises(ConfigError, match=message):
        record(deploy, stack="prod", config=stack_config("prod", overrides), into=recording)
    assert recording.registrations == []


def test_the_registration_check_sees_what_a_run_registers() -> None:
    # Guards the test above against passing vacuously.
    recording = Recording(stack="prod")
    record(deploy, stack="prod", config=stack_config("prod"), into=recording)
    assert len(recording.registrations) > 30


def test_every_problem_is_reported_at_once() -> None:
    config = stack_config("prod", {"depot:restart": "x", "depot:logLevel": "loud"})
    with pytest.raises(ConfigError) as error:
        load_settings("prod", config)
    lines = str(error.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("Pulumi.prod.yaml: depot:") for line in lines)


def test_the_engines_namespace_is_left_to_the_engine() -> None:
    config = stack_config("dev", {"pulumi:tags": "{}"})
    assert load_settings("dev", config).stack == "dev"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("docker:host", "namespace 'docker' is read by nothing in this project"),
        ("dpot:restart", "namespace 'dpot' is read by nothing in this project"),
        ("restart", "has no namespace; depot's settings are written depot:<key>"),
        (":restart", "has no namespace"),
        ("depot:", "has no namespace"),
    ],
)
def test_a_key_nothing_reads_is_an_error_not_ignored(key: str, message: str) -> None:
    # The program builds its own providers from depot: settings; `docker:host` would be unused.
    with pytest.raises(ConfigError) as error:
        load_settings("dev", stack_config("dev", {key: "always"}))
    assert (
        str(error.value)
        == f"Pulumi.dev.yaml: {key}: {message}" + str(error.value).split(message, 1)[1]
    )
    assert "always" not in str(error.value)


@pytest.mark.parametrize("policy", ["no", "always", "unless-stopped", "on-failure"])
def test_every_docker_restart_policy_is_accepted(policy: str) -> None:
    settings = load_settings("dev", stack_config("dev", {"depot:restart": policy}))
    assert settings.restart.name == policy


def test_on_failure_takes_a_retry_count() -> None:
    settings = load_settings("dev", stack_config("dev", {"depot:restart": "on-failure:5"}))
    assert (settings.restart.name, settings.restart.max_retries) == ("on-failure", 5)


@pytest.mark.parametrize(
    ("written", "megabytes"), [("256m", 256), ("1g", 1024), ("1.5G", 1536), ("8192k", 8)]
)
def test_memory_sizes_are_read_as_compose_writes_them(written: str, megabytes: int) -> None:
    config = stack_config("prod", {"depot:limits": {"discovery": {"memory": written, "cpus": 1}}})
    assert load_settings("prod", config).limits["discovery"].memory == megabytes


def test_restart_no_in_a_stack_file_stays_the_string_no(tmp_path: Path) -> None:
    # YAML 1.1 readers turn `no` into false; Pulumi's reader (YAML 1.2) does not.
    (tmp_path / "Pulumi.x.yaml").write_text("config:\n  depot:restart: no\n")
    assert read_stack_file("x", tmp_path).values["depot:restart"] == "no"


def test_an_unknown_stack_file_says_which_stacks_exist() -> None:
    with pytest.raises(
        ConfigError,
        match=r"Pulumi\.qa\.yaml: no such stack file; known stacks: "
        r"cluster, dev, prod",
    ):
        read_stack_file("qa", PROJECT_DIR)


def test_secure_values_are_secrets_of_unknown_value(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text(
        "config:\n  depot:databasePassword:\n    secure: v1:abc:def\n"
    )
    config = read_stack_file("x", tmp_path)
    assert config.secret_keys == {"depot:databasePassword"}
    assert "v1:abc" not in config.values["depot:databasePassword"]


def test_raw_config_from_the_engine_decodes_json_values() -> None:
    raw = RawConfig(
        {
            "depot:profiles": '["gpu"]',
            "depot:build": '{"contexts": {"discovery": "a", "dispatch": "b", "splat-worker": "c"}}',
        }
    )
    assert load_settings("x", raw).profiles == ["gpu"]


def test_a_pulled_service_takes_no_build_context() -> None:
    config = stack_config("prod", {"depot:build": {"contexts": {"postgres": "../pg"}}})
    with pytest.raises(ConfigError) as error:
        load_settings("prod", config)
    assert str(error.value) == (
        "Pulumi.prod.yaml: depot:build.contexts.postgres: '../pg' names postgres, which runs a "
        "pulled image and is never built here; remove contexts.postgres"
    )
