"""The domain types (depot/types.py) at their edges: the last value each allows, the first it
refuses, and the spellings an attacker or a typo would try.

tests/test_config.py shows each setting refused with its message through the stack file; these
check the types themselves, one value at a time, so a bound moved by one fails a test.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from depot.types import (
    AgeRecipient,
    BackupInterval,
    Cpus,
    DockerHost,
    GenericResourceKind,
    GitCommit,
    HostPath,
    Megabytes,
    NodeLabel,
    PinnedImage,
    Port,
    Registry,
    RegistryUsername,
    ReleaseVersion,
    Replicas,
    has_digest,
    is_remote,
    parse_image_reference,
)

DIGEST = "sha256:" + "a" * 64
RECIPIENT = "age1xk72a7fvfupmssj73newmhv3pz0exes6n7tzwqytn4aepy3sjecq4q2jpc"


def accepts(kind: Any, value: object) -> object:
    return TypeAdapter(kind).validate_python(value)


def refuses(kind: Any, value: object) -> str:
    """The message ``kind`` refuses ``value`` with (the test fails if it is accepted)."""
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(kind).validate_python(value)
    [error] = refused.value.errors()
    return str(error["msg"])


# --- memory sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "mib"),
    [
        ("6m", 6),  # the engine's smallest limit
        ("6144k", 6),
        ("256m", 256),
        ("256M", 256),
        ("256mb", 256),
        ("256MiB", 256),
        (" 1g ", 1024),
        ("1.5g", 1536),
        ("4096g", 4096 * 1024),  # the largest
    ],
)
def test_a_memory_size_is_read_in_whole_mib(written: str, mib: int) -> None:
    assert accepts(Megabytes, written) == mib


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("5m", "is not a usable limit; use a whole number of MiB, at least 6m"),
        ("6143k", "is not a usable limit; use a whole number of MiB, at least 6m"),
        ("6145k", "is not a usable limit; use a whole number of MiB, at least 6m"),
        ("4097g", "is larger than any container limit can be; use at most 4096g"),
        ("4194305m", "is larger than any container limit can be; use at most 4096g"),
        ("256", "is not a memory size"),
        ("256t", "is not a memory size"),
        ("-256m", "is not a memory size"),
        (256, "is not a memory size"),
    ],
)
def test_a_memory_size_outside_what_docker_takes_is_refused(written: object, reason: str) -> None:
    assert refuses(Megabytes, written).startswith(reason)


# --- CPUs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "cpus"),
    [("0.01", 0.01), (0.5, 0.5), (".5", 0.5), (2, 2.0), ("512", 512.0), (512, 512.0)],
)
def test_a_cpu_count_between_a_hundredth_and_512_is_taken(written: object, cpus: float) -> None:
    assert accepts(Cpus, written) == cpus


@pytest.mark.parametrize("written", ["0.009", "0", 0, "512.001", 513, "1000"])
def test_a_cpu_count_outside_its_bounds_is_refused(written: object) -> None:
    assert refuses(Cpus, written).startswith("is not a usable number of CPUs")


@pytest.mark.parametrize("written", [True, "true", "nan", "inf", "-1", "1e3", "", None])
def test_what_is_not_a_decimal_is_not_a_cpu_count(written: object) -> None:
    assert refuses(Cpus, written).startswith("is not a number of CPUs")


# --- images --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "postgres:17.2-alpine",
        "grafana/grafana:11.4.0",
        "registry.example.com:5000/depot/discovery:1",
        f"postgres@{DIGEST}",
        f"postgres:17.2-alpine@{DIGEST}",
        f"postgres:alpine@{DIGEST}",  # a digest pins what a word tag does not
    ],
)
def test_a_pinned_image_is_taken(reference: str) -> None:
    assert accepts(PinnedImage, reference) == reference


@pytest.mark.parametrize(
    "reference",
    [
        "postgres",
        "postgres:latest",
        f"postgres:latest@{DIGEST}",
        "postgres:alpine",  # a tag without a version number moves
        "Postgres:17",
        f"postgres@sha256:{'a' * 63}",
        "postgres:17\n",
        "postgres:-17.2",  # a tag never starts with '-' (nor would reach a CLI as an option)
        "postgres:.17.2",
    ],
)
def test_an_image_that_can_move_is_refused(reference: str) -> None:
    assert refuses(PinnedImage, reference).startswith("is not a pinned image")


def test_a_reference_is_read_in_its_parts() -> None:
    parsed = parse_image_reference(f"registry.example.com:5000/depot/x:1.2@{DIGEST}")
    assert parsed is not None
    assert (parsed.name, parsed.tag, parsed.digest) == (
        "registry.example.com:5000/depot/x",
        "1.2",
        DIGEST,
    )
    assert not parsed.moving
    assert parse_image_reference("Not An Image") is None


@pytest.mark.parametrize(
    ("reference", "moving"),
    [("postgres", True), ("postgres:latest", True), ("postgres:17", False), (f"p@{DIGEST}", False)],
)
def test_a_reference_without_digest_moves_when_it_has_no_tag_or_latest(
    reference: str, moving: bool
) -> None:
    parsed = parse_image_reference(reference)
    assert parsed is not None
    assert parsed.moving is moving


def test_has_digest_is_true_only_for_a_content_address() -> None:
    assert has_digest(f"postgres:17@{DIGEST}")
    assert not has_digest("postgres:17")
    assert not has_digest("not an image")


# --- registry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["registry.example.com", "localhost:5000/depot", "r:1", "r:65535/a/b", "10.0.0.1:443"],
)
def test_a_registry_address_is_taken(address: str) -> None:
    assert accepts(Registry, address) == address


@pytest.mark.parametrize(
    "address",
    ["r:0", "r:65536", "-registry.example.com", "registry.example.com-", "https://r"],
)
def test_a_registry_address_with_a_port_out_of_range_or_an_option_is_refused(address: str) -> None:
    assert refuses(Registry, address).startswith("is not a registry address")


@pytest.mark.parametrize("name", ["deploy", "robot$ci", "a" * 256])
def test_a_registry_username_is_taken(name: str) -> None:
    assert accepts(RegistryUsername, name) == name


@pytest.mark.parametrize("name", ["", "a" * 257, "de ploy", "de:ploy", "de\tploy", "de\x7fploy"])
def test_a_registry_username_that_would_break_a_login_is_refused(name: str) -> None:
    assert refuses(RegistryUsername, name).startswith("is not a registry username")


# --- commits and versions ------------------------------------------------------------------------


@pytest.mark.parametrize("commit", ["a" * 7, "0123456789abcdef" * 2 + "01234567"])
def test_a_commit_of_7_to_40_hex_digits_is_taken(commit: str) -> None:
    assert accepts(GitCommit, commit) == commit


@pytest.mark.parametrize("commit", ["a" * 6, "a" * 41, "ABCDEF0", "abcdefg", "abcdef0\n"])
def test_anything_else_is_not_a_commit(commit: str) -> None:
    assert refuses(GitCommit, commit).startswith("is not a git commit")


@pytest.mark.parametrize("version", ["1.4.0", "v1.4.0", "1.4.0-rc.1", "1.4.0+build.7"])
def test_a_release_version_is_taken(version: str) -> None:
    assert accepts(ReleaseVersion, version) == version


@pytest.mark.parametrize("version", ["1.4", "V1.4.0", "1.4.0-", "latest", "1.4.0\n"])
def test_anything_else_is_not_a_release_version(version: str) -> None:
    assert refuses(ReleaseVersion, version).startswith("is not a release version")


# --- the Docker host -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "unix:///var/run/docker.sock",
        "tcp://depot.example.com:2376",
        "tcp://10.0.0.1",
        "tcp://depot.example.com/",
        "tcp://[fd00::1]:1",
        "tcp://depot.example.com:65535",
        "ssh://deploy@depot.example.com",
        "ssh://_deploy@depot.example.com:22",
        "ssh://d@h",
    ],
)
def test_a_docker_host_is_taken(host: str) -> None:
    assert accepts(DockerHost, host) == host


@pytest.mark.parametrize(
    "host",
    [
        # A user or host that starts with `-` reaches ssh as an option (-oProxyJump, -J, ...).
        "ssh://-oProxyJump@depot.example.com",
        "ssh://-J@depot.example.com",
        "ssh://deploy@-oProxyJump",
        "ssh://deploy@-J",
        "tcp://-H:2376",
        "ssh://.deploy@depot.example.com",
        "ssh://deploy@depot.example.com-",
        "ssh://deploy@depot.example.com:0",
        "ssh://deploy@depot.example.com:65536",
        "tcp://depot.example.com:65536",
        "tcp://depot.example.com:0",
        "ssh://depot.example.com",
        "unix://relative.sock",
        "npipe:////./pipe/docker",
    ],
)
def test_a_docker_host_that_could_carry_an_option_or_is_out_of_range_is_refused(
    host: str,
) -> None:
    assert refuses(DockerHost, host).startswith("is not a Docker host")


def test_only_the_local_socket_is_this_machine() -> None:
    assert not is_remote("unix:///var/run/docker.sock")
    assert is_remote("tcp://depot.example.com:2376")
    assert is_remote("ssh://deploy@depot.example.com")


# --- Swarm ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["depot.gpu", "a", "a" * 100, "depot_data-1"])
def test_a_node_label_is_taken(label: str) -> None:
    assert accepts(NodeLabel, label) == label


@pytest.mark.parametrize("label", ["", "a" * 101, "-gpu", "gpu-", "Depot.gpu", "depot gpu"])
def test_a_node_label_docker_would_not_take_is_refused(label: str) -> None:
    assert refuses(NodeLabel, label).startswith("is not a node label")


@pytest.mark.parametrize("kind", ["NVIDIA-GPU", "g", "G" * 63])
def test_a_generic_resource_kind_is_taken(kind: str) -> None:
    assert accepts(GenericResourceKind, kind) == kind


@pytest.mark.parametrize("kind", ["", "-GPU", "G" * 64, "NVIDIA GPU", "GPU=1"])
def test_a_generic_resource_kind_docker_would_not_take_is_refused(kind: str) -> None:
    assert refuses(GenericResourceKind, kind).startswith("is not a generic resource kind")


# The figures the messages and the README state, written out: a moved constant fails here.
@pytest.mark.parametrize("count", [1, 50])
def test_a_replica_count_from_1_to_the_most_is_taken(count: int) -> None:
    assert accepts(Replicas, count) == count


@pytest.mark.parametrize("count", [0, -1, 51])
def test_a_replica_count_outside_it_is_refused(count: int) -> None:
    refuses(Replicas, count)


@pytest.mark.parametrize(("port", "taken"), [(0, False), (1, True), (65535, True), (65536, False)])
def test_a_port_is_from_1_to_65535(port: int, taken: bool) -> None:
    if taken:
        assert accepts(Port, port) == port
    else:
        refuses(Port, port)


@pytest.mark.parametrize(
    "path", ["", "   ", "/srv/depot\n", "/srv/\x00depot", "/srv/\x1fdepot", "/srv/\x7f"]
)
def test_a_host_path_is_one_non_empty_line(path: str) -> None:
    assert refuses(HostPath, path).startswith("is not a path")


@pytest.mark.parametrize("path", ["/srv/my depot", "../console/dist", "/srv/~depot/é"])
def test_a_host_path_may_hold_spaces_and_any_printable_character(path: str) -> None:
    assert accepts(HostPath, path) == path


# --- backups -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("15m", 900),
        ("59m", 3540),
        ("1h", 3600),
        ("168h", 168 * 3600),
        ("1d", 86400),
        ("7d", 7 * 86400),
        (" 24h ", 86400),
    ],
)
def test_a_backup_interval_is_read_in_seconds(written: str, seconds: int) -> None:
    assert accepts(BackupInterval, written) == seconds


@pytest.mark.parametrize(
    "written", ["14m", "60m", "0h", "169h", "0d", "8d", "24", "1w", "1000h", 86400, "-1h"]
)
def test_a_backup_interval_outside_a_quarter_hour_to_a_week_is_refused(written: object) -> None:
    assert refuses(BackupInterval, written).startswith("is not a backup interval")


@pytest.mark.parametrize(
    "key", [RECIPIENT, "age1967cg380lwgpdxsnrfgg9zznx9nhak5dnzk7g5uk5kwny3vdfecqza320m"]
)
def test_an_age_public_key_is_taken(key: str) -> None:
    assert accepts(AgeRecipient, key) == key


@pytest.mark.parametrize(
    "key",
    [
        RECIPIENT[:-1] + "q",  # one character of the checksum changed
        RECIPIENT[:10] + ("q" if RECIPIENT[10] != "q" else "p") + RECIPIENT[11:],  # of the data
        RECIPIENT[:-1],  # one short
        RECIPIENT + "q",  # one long
        RECIPIENT.replace("age1", "agf1"),
        RECIPIENT.upper(),
        "AGE-SECRET-KEY-1" + "Q" * 58,
    ],
)
def test_anything_but_an_intact_age_public_key_is_refused(key: str) -> None:
    assert refuses(AgeRecipient, key).startswith("is not an age public key")
