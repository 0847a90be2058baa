"""The settings models (depot/config/settings.py) at their edges: the last value each validator
allows and the first it refuses, model by model.

tests/test_config.py shows a refusal per setting through the stack file, with its message; these
pin the bounds themselves, so a validator off by one, or one that stops looking after the first
entry of a map, fails a test.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from depot.config import ConfigError, DepotSettings, RawConfig, load_settings
from depot.config.settings import (
    BackupSettings,
    DataSettings,
    GpuResource,
    PublishSettings,
    RegistrySettings,
    RestartPolicy,
    RetentionSettings,
    ServiceLimits,
    SwarmSettings,
)
from depot.model import node_label
from tests.conftest import stack_config

RECIPIENTS = [
    "age1xk72a7fvfupmssj73newmhv3pz0exes6n7tzwqytn4aepy3sjecq4q2jpc",
    "age1967cg380lwgpdxsnrfgg9zznx9nhak5dnzk7g5uk5kwny3vdfecqza320m",
]


def refused(model: type[BaseModel], value: object) -> str:
    """The first message ``model`` refuses ``value`` with (the test fails if it is taken)."""
    with pytest.raises(ValidationError) as refusal:
        model.model_validate(value)
    return str(refusal.value.errors()[0]["msg"])


# --- restart ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "name", "retries"),
    [
        ("no", "no", None),
        ("always", "always", None),
        ("unless-stopped", "unless-stopped", None),
        ("on-failure", "on-failure", None),
        ("on-failure:1", "on-failure", 1),
        ("on-failure:5", "on-failure", 5),
    ],
)
def test_a_restart_policy_is_read_with_its_retries(
    written: str, name: str, retries: int | None
) -> None:
    policy = RestartPolicy.model_validate(written)
    assert (policy.name, policy.max_retries) == (name, retries)


@pytest.mark.parametrize(
    "written",
    ["on-failure:0", "on-failure:6", "on-failure:05x", "on-failure:5x", "always:3", "sometimes"],
)
def test_a_restart_policy_outside_on_failure_1_to_5_is_refused(written: str) -> None:
    assert refused(RestartPolicy, written).startswith("is not a restart policy")


def test_a_restart_policy_spells_its_bound_in_the_message() -> None:
    assert refused(RestartPolicy, "on-failure:6").endswith("on-failure:N with N from 1 to 5")


# --- limits -------------------------------------------------------------------------------------


def test_a_reservation_up_to_the_limit_is_taken() -> None:
    limits = ServiceLimits.model_validate(
        {"memory": "256m", "cpus": 1, "memoryReservation": "256m"}
    )
    assert (limits.memory, limits.memory_reservation) == (256, 256)


def test_a_reservation_above_the_limit_is_refused() -> None:
    value = {"memory": "256m", "cpus": 1, "memoryReservation": "257m"}
    assert refused(ServiceLimits, value).startswith("memoryReservation is larger than memory")


# --- publish ------------------------------------------------------------------------------------


def test_each_service_publishes_its_own_port() -> None:
    taken = PublishSettings.model_validate({"ports": {"console": 8080, "grafana": 3000}})
    assert dict(taken.ports) == {"console": 8080, "grafana": 3000}
    message = refused(PublishSettings, {"ports": {"console": 8080, "grafana": 8080}})
    assert message.startswith("is already published by console on the same address")


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ({"grafana": 3000, "postgres": 5432}, "publishes postgres"),
        ({"grafana": 3000, "backup": 9000}, "publishes backup, which listens on no port"),
    ],
)
def test_every_published_service_is_checked_not_only_the_first(
    ports: dict[str, int], message: str
) -> None:
    assert refused(PublishSettings, {"ports": ports}).startswith(message)


# --- data, GPUs, swarm --------------------------------------------------------------------------


@pytest.mark.parametrize(("major", "taken"), [(9, False), (10, True), (99, True), (100, False)])
def test_the_recorded_postgres_major_is_from_10_to_99(major: int, taken: bool) -> None:
    if taken:
        assert DataSettings.model_validate({"postgresMajor": major}).postgres_major == major
    else:
        refused(DataSettings, {"postgresMajor": major})


@pytest.mark.parametrize(("count", "taken"), [(0, False), (1, True), (64, True), (65, False)])
def test_a_service_reserves_1_to_64_gpus(count: int, taken: bool) -> None:
    if taken:
        assert GpuResource.model_validate({"count": count}).spec == f"NVIDIA-GPU={count}"
    else:
        refused(GpuResource, {"count": count})


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"postgres": "depot.db", "backup": "depot.db"}, "names backup, which runs on postgres'"),
        ({"postgres": "depot.db", "grafana": "depot.x"}, "names grafana, which runs on any node"),
    ],
)
def test_only_services_pinned_on_their_own_take_a_node_label(
    labels: dict[str, str], message: str
) -> None:
    assert refused(SwarmSettings, {"nodeLabels": labels}).startswith(message)


def test_a_service_pinned_with_another_runs_under_its_label() -> None:
    config = stack_config("cluster", {"depot:swarm": {"nodeLabels": {"postgres": "depot.db"}}})
    settings = load_settings("cluster", config)
    assert node_label(settings, "backup") == node_label(settings, "postgres") == "depot.db"
    assert node_label(settings, "grafana") is None


# --- backups ------------------------------------------------------------------------------------


def backup(**fields: Any) -> dict[str, Any]:
    return {"enabled": True, "recipients": RECIPIENTS[:1], **fields}


@pytest.mark.parametrize(("count", "taken"), [(0, True), (1000, True), (1001, False), (-1, False)])
def test_a_retention_count_is_from_0_to_1000(count: int, taken: bool) -> None:
    if taken:
        assert RetentionSettings.model_validate({"daily": count}).daily == count
    else:
        refused(RetentionSettings, {"daily": count})


@pytest.mark.parametrize(("count", "taken"), [(0, False), (1, True), (1000, True), (1001, False)])
def test_the_host_keeps_1_to_1000_backups(count: int, taken: bool) -> None:
    if taken:
        assert RetentionSettings.model_validate({"local": count}).local == count
    else:
        refused(RetentionSettings, {"local": count})


@pytest.mark.parametrize("kept", ["hourly", "daily", "weekly", "monthly"])
def test_any_one_kept_count_is_enough(kept: str) -> None:
    assert RetentionSettings.model_validate({kept: 1}).keeps_any
    settings = BackupSettings.model_validate(backup(retention={kept: 1}))
    assert settings.retention.keeps_any


def test_a_backup_that_keeps_nothing_is_refused_only_when_enabled() -> None:
    assert not RetentionSettings.model_validate({}).keeps_any
    assert refused(BackupSettings, backup(retention={})).startswith("keeps no backup")
    assert not BackupSettings.model_validate({"retention": {}}).enabled


def test_sixteen_recipients_at_most() -> None:
    # Sixteen distinct valid keys are not at hand; the count is checked before the duplicates.
    message = refused(BackupSettings, backup(recipients=RECIPIENTS * 9))
    assert message == "lists 18 recipients; list at most 16"
    refused_twice = refused(BackupSettings, backup(recipients=[*RECIPIENTS, RECIPIENTS[1]]))
    assert refused_twice == "is listed twice; list each once"


def test_several_recipients_are_kept_in_order() -> None:
    assert BackupSettings.model_validate(backup(recipients=RECIPIENTS)).recipients == tuple(
        RECIPIENTS
    )


def age_recipient(seed: int) -> str:
    """A well-formed age public key (BIP 173 Bech32, human part "age") for 32 bytes of ``seed``."""
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    key = bytes([seed]) * 32
    bits = "".join(f"{byte:08b}" for byte in key) + "0" * 4  # 256 bits in 52 groups of 5
    data = [int(bits[i : i + 5], 2) for i in range(0, len(bits), 5)]
    values = [ord(c) >> 5 for c in "age"] + [0] + [ord(c) & 31 for c in "age"] + data + [0] * 6
    polymod = 1
    for value in values:
        top = polymod >> 25
        polymod = (polymod & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(
            (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
        ):
            polymod ^= generator if (top >> bit) & 1 else 0
    checksum = [(polymod ^ 1) >> 5 * (5 - i) & 31 for i in range(6)]
    return "age1" + "".join(charset[d] for d in data + checksum)


def test_sixteen_distinct_recipients_are_taken_and_seventeen_are_not() -> None:
    keys = [age_recipient(seed) for seed in range(17)]
    assert len(set(keys)) == 17
    assert len(BackupSettings.model_validate(backup(recipients=keys[:16])).recipients) == 16
    assert (
        refused(BackupSettings, backup(recipients=keys)) == "lists 17 recipients; list at most 16"
    )


def test_what_a_stack_that_writes_nothing_gets() -> None:
    settings = BackupSettings()
    assert (settings.enabled, settings.schedule, settings.recipients, settings.targets) == (
        False,
        86400,
        (),
        (),
    )
    retention = settings.retention
    assert (retention.hourly, retention.daily, retention.weekly, retention.monthly) == (0, 7, 4, 0)
    assert RetentionSettings().model_dump() == {
        "hourly": 0,
        "daily": 0,
        "weekly": 0,
        "monthly": 0,
        "local": 2,
    }
    assert GpuResource().spec == "NVIDIA-GPU=1"
    assert DataSettings().postgres_major is None


@pytest.mark.parametrize(("written", "retries"), [("on-failure:05", 5), ("on-failure:005", None)])
def test_on_failure_counts_are_at_most_two_digits(written: str, retries: int | None) -> None:
    if retries is None:
        assert refused(RestartPolicy, written).startswith("is not a restart policy")
    else:
        assert RestartPolicy.model_validate(written).max_retries == retries


# --- the whole stack: rules across settings -----------------------------------------------------

OUR_DIGEST = "@sha256:" + "e" * 64


def cluster_without(*keys: str, **overrides: Any) -> DepotSettings:
    """The shipped cluster stack without ``keys`` and with ``overrides`` (depot: keys)."""
    config = stack_config("cluster", {f"depot:{k}": v for k, v in overrides.items()})
    values = {k: v for k, v in config.values.items() if k.removeprefix("depot:") not in keys}
    return load_settings("cluster", RawConfig(values, config.secret_keys))


def test_one_replica_each_is_what_the_host_runtime_runs() -> None:
    settings = load_settings("dev", stack_config("dev", {"depot:replicas": {"discovery": 1}}))
    assert settings.replicas == {"discovery": 1}


def test_a_swarm_stack_that_publishes_nothing_may_keep_any_address() -> None:
    settings = cluster_without(publish={"address": "127.0.0.1", "ports": {}})
    assert str(settings.publish.address) == "127.0.0.1"


def test_services_a_swarm_stack_does_not_run_need_no_registry() -> None:
    # gpu and rtk off, backups off, our two services pinned by digest: nothing is built, so no
    # registry is needed, though the contexts of the services that are off are still written.
    settings = cluster_without(
        "registry",
        profiles=[],
        backup={"enabled": False},
        build={"contexts": {"splat-worker": "../splat-worker"}},
        images={
            "discovery": f"registry.example.com/depot-discovery{OUR_DIGEST}",
            "dispatch": f"registry.example.com/depot-dispatch{OUR_DIGEST}",
            "postgres": f"postgres:17.2-alpine{OUR_DIGEST}",
            "grafana": f"grafana/grafana:11.4.0{OUR_DIGEST}",
            "console": f"nginx:1.27.3-alpine{OUR_DIGEST}",
        },
    )
    assert settings.registry is None


def test_a_registry_with_a_namespace_is_logged_in_to_at_its_host() -> None:
    # Credentials are for host[:port]; the namespace after it is part of image names only.
    registry = RegistrySettings(address="registry.example.com:5000/depot/team")
    assert registry.host == "registry.example.com:5000"


def test_a_swarm_image_pinned_by_tag_is_named_as_the_stack_pins_it() -> None:
    images = {
        "postgres": f"postgres:17.2-alpine{OUR_DIGEST}",
        "grafana": "grafana/grafana:11.9.9",  # by tag: refused on a swarm
        "console": f"nginx:1.27.3-alpine{OUR_DIGEST}",
    }
    with pytest.raises(ConfigError) as refused:
        cluster_without(images=images)
    assert "runs grafana by tag (grafana/grafana:11.9.9)" in str(refused.value)
