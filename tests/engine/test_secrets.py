"""The secret files on the engine: readable by their process only, never in ``docker inspect``.

No value is printed: assertions compare in Python and say only which file or container failed.
"""

from __future__ import annotations

import json
import stat
import subprocess

import pytest

from depot.catalog import SecretFile, ServiceSpec
from depot.model import deployments
from depot.outputs.secret_files import SECRETS_DIR, env_file_name, secret_file_name
from tests.engine.harness import TierDepot

pytestmark = pytest.mark.engine

NOBODY = "65534:65534"


def with_secrets(depot: TierDepot) -> list[tuple[ServiceSpec, SecretFile]]:
    """Each secret file the tier's services are given (an unset rclone configuration is none)."""
    started = {spec.name for spec in depot.services}
    return [
        (deployment.spec, secret)
        for deployment in deployments(depot.settings)
        if deployment.name in started
        for secret in deployment.secret_files
    ]


def test_each_password_file_is_readable_by_its_process(depot: TierDepot) -> None:
    for spec, secret in with_secrets(depot):
        owner = str(secret.owner)
        read = depot.exec(spec.container_name, "sh", "-c", f"wc -c < {secret.path}", user=owner)
        assert read.returncode == 0, f"{spec.name}: user {owner} cannot read {secret.path}"
        assert int(read.stdout) > 0, f"{spec.name}: {secret.path} is empty"


def test_compose_bind_mounts_the_host_file_read_only(depot: TierDepot) -> None:
    # README "Compose export": outside Swarm the file is the host's, its uid/gid/mode ignored.
    for spec, secret in with_secrets(depot):
        mounts = {m["Destination"]: m for m in depot.inspect(spec.container_name)["Mounts"]}
        mount = mounts[secret.path]
        assert (mount["Type"], mount["RW"]) == ("bind", False), spec.name
        assert mount["Source"] == str(
            depot.directory / SECRETS_DIR / secret_file_name(secret.secret)
        )


def test_no_one_else_on_the_host_can_read_them(depot: TierDepot) -> None:
    folder = depot.directory / SECRETS_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # Another user of the host, as the kernel sees it: nobody, through the same folder.
    read = depot.run_helper(
        depot.images["rust-service"],
        "-c",
        "cat /secrets/database_password.txt > /dev/null",
        options=["--user", NOBODY, "--entrypoint", "sh", "-v", f"{folder}:/secrets:ro"],
    )
    assert read.returncode != 0
    assert "Permission denied" in read.stderr


def test_select_1_with_the_database_url_from_dispatchs_network_position(depot: TierDepot) -> None:
    env_file = depot.directory / SECRETS_DIR / env_file_name("dispatch")
    selected = psql_from_dispatch(depot, ["--env-file", str(env_file)])
    assert (selected.returncode, selected.stdout.strip()) == (0, "1"), selected.stderr[-500:]


def test_a_wrong_password_is_refused_from_dispatchs_network_position(depot: TierDepot) -> None:
    # The control: the server checks the password over the network (scram-sha-256, not trust).
    wrong = "postgres://postgres:not-the-password@postgres:5432/dispatch"
    refused = psql_from_dispatch(depot, ["--env", f"DATABASE_URL={wrong}"])
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stderr


def psql_from_dispatch(depot: TierDepot, env: list[str]) -> subprocess.CompletedProcess[str]:
    """``SELECT 1`` with ``$DATABASE_URL`` from a psql in dispatch's network namespace."""
    return depot.run_helper(
        depot.images["postgres"],
        "sh",
        "-c",
        'psql "$DATABASE_URL" --no-psqlrc --tuples-only --no-align --command "SELECT 1"',
        options=["--network", "container:depot-dispatch", "--user", "70:70", *env],
        timeout=30,
    )


def test_no_password_appears_in_docker_inspect(depot: TierDepot) -> None:
    containers = [spec.container_name for spec, _secret in with_secrets(depot)]
    assert containers == ["depot-postgres", "depot-grafana", "depot-backup"]
    for _spec, secret in with_secrets(depot):
        password_file = depot.directory / SECRETS_DIR / secret_file_name(secret.secret)
        password = password_file.read_text().strip()
        for container in containers:
            leaked = password in json.dumps(depot.inspect(container))
            assert not leaked, f"the {secret.secret} value is in `docker inspect {container}`"
