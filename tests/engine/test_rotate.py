"""`depot rotate` on the tier's running depot and its real postgres.

database-password: dispatch's new ``DATABASE_URL`` connects, the old password is refused, the
data is intact, and neither password is in any command line on the host while it runs, in
``docker inspect`` (but dispatch's own ``DATABASE_URL``, which is how dispatch takes it) or in a
container's log. grafana-admin-password: the stand-in has no grafana CLI, so this proves only the
refusal path: grafana does not take it, and nothing is rewritten.

The command runs as a separate process, as an operator runs it; ``--stack dev`` names only the
Docker host (this engine), and the tier's Compose files and project are passed as they would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from depot.catalog import database_url
from depot.outputs.secret_files import SECRETS_DIR, env_file_name, secret_file_name
from tests.engine.harness import TierDepot, docker
from tests.engine.test_secrets import psql_from_dispatch

pytestmark = pytest.mark.engine


def rotate_command(depot: TierDepot, secret: str) -> list[str]:
    return [
        sys.executable, "-m", "depot", "rotate", secret, "--stack", "dev",
        "--dir", str(depot.directory / SECRETS_DIR),
        "--compose-file", str(depot.directory / "compose.yaml"),
        "--compose-file", str(depot.directory / "override.yaml"),
        "--project-name", depot.project,
    ]  # fmt: skip


def run_watching_the_process_list(
    command: list[str],
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``command``; every process's command line on the host, sampled while it runs."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []
    while process.poll() is None:
        listed = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
        samples.append(listed.stdout)
        time.sleep(0.02)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(command, process.returncode, out, err), samples


def sql(depot: TierDepot, statement: str) -> str:
    """``statement`` in the dispatch database over postgres' local socket (on stdin)."""
    ran = subprocess.run(
        [
            "docker", "exec", "--interactive", "--user", "postgres", "depot-postgres",
            "psql", "--no-psqlrc", "--tuples-only", "--no-align", "--set", "ON_ERROR_STOP=1",
            "--dbname", "dispatch",
        ],
        input=statement, capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-500:]
    return ran.stdout.strip()


def read(path: Path) -> str:
    return path.read_text().strip()


def test_the_database_password_rotates_on_the_running_depot(
    depot: TierDepot, tmp_path: Path
) -> None:
    folder = depot.directory / SECRETS_DIR
    password_file, env_file = (
        folder / secret_file_name("database_password"),
        folder / env_file_name("dispatch"),
    )
    old = read(password_file)
    sql(
        depot,
        "CREATE TABLE rotation_check (note text); INSERT INTO rotation_check VALUES ('kept');",
    )
    rotated, samples = run_watching_the_process_list(rotate_command(depot, "database-password"))
    assert rotated.returncode == 0, rotated.stderr
    new = read(password_file)
    assert new != old
    assert read(env_file) == f"DATABASE_URL={database_url(new)}"
    assert rotated.stdout.splitlines() == [
        "postgres: took the new password; the old one no longer works",
        f"wrote {env_file}",
        f"wrote {password_file}",
        "recreated dispatch: healthy, with the new value",
        "recreated backup: healthy, with the new value",
        "depot rotate: database-password rotated",
    ]
    assert len(samples) > 10, "the process list was sampled too rarely to mean anything"
    assert not [s for s in samples if old in s or new in s], "a password was on a command line"

    # dispatch's new DATABASE_URL connects from dispatch's place; the old one is refused.
    connected = psql_from_dispatch(depot, ["--env-file", str(env_file)])
    assert (connected.returncode, connected.stdout.strip()) == (0, "1"), connected.stderr[-300:]
    old_env = tmp_path / "old.env"
    old_env.write_text(f"DATABASE_URL={database_url(old)}\n")
    old_env.chmod(0o600)
    refused = psql_from_dispatch(depot, ["--env-file", str(old_env)])
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stderr
    assert sql(depot, "SELECT note FROM rotation_check") == "kept"
    # The backup service reads the new password file: a backup taken now connects and is good.
    backed_up = docker("exec", "depot-backup", "depot-backup", "run", check=False)
    assert backed_up.returncode == 0, backed_up.stderr[-300:]

    # dispatch was recreated with the new URL, healthy; no password anywhere else.
    dispatch = depot.inspect("depot-dispatch")
    assert dispatch["State"]["Health"]["Status"] == "healthy"
    assert f"DATABASE_URL={database_url(new)}" in dispatch["Config"]["Env"]
    for spec in depot.services:
        inspected = json.dumps(depot.inspect(spec.container_name))
        expected = 1 if spec.name == "dispatch" else 0  # its DATABASE_URL, as it takes it
        assert (inspected.count(new), old in inspected) == (expected, False), spec.name
        logs = docker("logs", spec.container_name)
        assert new not in logs.stdout + logs.stderr, spec.name
        assert old not in logs.stdout + logs.stderr, spec.name
    assert not list(folder.glob("*.next"))


def test_the_grafana_stand_in_refuses_and_nothing_is_rewritten(depot: TierDepot) -> None:
    folder = depot.directory / SECRETS_DIR
    password_file = folder / secret_file_name("grafana_admin_password")
    before = (read(password_file), password_file.stat().st_ino)
    refused = subprocess.run(
        rotate_command(depot, "grafana-admin-password"), capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("depot rotate: grafana refused the new admin password (")
    assert refused.stderr.endswith("nothing changed: grafana keeps the old one\n")
    assert (read(password_file), password_file.stat().st_ino) == before
    assert not list(folder.glob("*.next"))
