"""``depot migrate`` on the real engine: the reference's Compose depot moved to the dev stack.

The old deployment is the reference's own Compose file (docker-deployment-patterns.md: its
services, healthchecks, ``depends_on: condition: service_healthy``, networks with the internal
database network, the ``postgres-data`` volume, the password as a file secret from
``./secrets/database_password.txt`` and dispatch's ``DATABASE_URL`` from ``.env``), run as Compose
project ``depot`` — so its volume is ``depot_postgres-data`` — on the tier's stand-in images
(only ``image:`` differs, as in the tier's override; ports are published on 127.0.0.1 only, as
every test here does). Rows are written; then, as an operator runs it, in a process of its own:

1. a switch whose new postgres is never healthy (a third Compose file gives it a failing probe)
   exits 1 and leaves the Compose depot running again with its rows;
2. the switch to the dev stack's export (with the tier's override): same rows and checksums,
   dispatch's ``DATABASE_URL`` connects from a container on ``database-network``, the old volume
   is still there, and the downtime (the first old container stopped → every new service
   healthy) is printed and bounded.

The depot's fixed names (``depot-postgres``, ``postgres-data`` …) are the session's Compose
depots' too: conftest runs this module before them, and it removes everything it made.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from depot.catalog import POSTGRES_BACKUPS_VOLUME, POSTGRES_DATA_VOLUME, SERVICES
from depot.outputs.compose import compose_document, compose_yaml
from depot.outputs.secret_files import SECRETS_DIR, new_password
from depot.standins import compose_cli, override_yaml
from tests.engine.conftest import FIGURES
from tests.engine.harness import docker, tier_settings
from tests.engine.test_backup import ProcessWatch

pytestmark = pytest.mark.engine

PROJECT = "depot"  # as the issue measured it: its volume is depot_postgres-data
OLD_VOLUME = f"{PROJECT}_{POSTGRES_DATA_VOLUME}"
ROWS = 5000
# The goal is 15 s. Measured here (2 cores shared, Engine 26): 43.8-54.5 s, of which the old
# writers' stop is 10.3-10.5 s (the stand-ins' PID 1, like a binary without a SIGTERM handler and
# no init, waits out Docker's 10 s), fingerprint, backup, keep and copy 3.5-9.4 s (the copy grows
# on a busy machine), and `up --wait` 30-35 s: the export's health-gated chain alone is 25 s
# (postgres 5 s -> dispatch 10 s -> console 10 s, each first probe one interval after the start).
# Healthcheck start_interval (Engine 25+, being added to the catalogue) takes most of that chain
# away; lower this bound towards 15 s then.
# The measure, from the old containers stopped to every new service healthy: its goal.
DOWNTIME_BOUND = 15.0
# From the first stop request: that plus the old services' stop timeout (10 s: the reference
# runs them without an init, and the stand-ins, like a binary as PID 1, ignore SIGTERM).
REQUEST_TO_HEALTHY_BOUND = 40.0
OLD_WAIT = 60  # seconds for the old deployment's `up --wait` (discovery's 10 s interval)
DOWNTIME = re.compile(r"downtime (\d+\.\d) s from the old containers stopped, (\d+\.\d) s")

CREATE_ROWS = (
    "CREATE TABLE jobs (id bigint PRIMARY KEY, note text NOT NULL);"  # noqa: S608 - constants
    f"INSERT INTO jobs SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g;"
    "CREATE TABLE sites (name text PRIMARY KEY, seen timestamptz);"
    "INSERT INTO sites VALUES ('north', '2026-01-01T00:00:00Z'), ('south', NULL);"
)
FINGERPRINT = (
    "SELECT (SELECT count(*) || ' ' || md5(string_agg(note, ',' ORDER BY id)) FROM jobs)"
    " || ' / ' || (SELECT count(*) || ' ' || md5(string_agg(name || coalesce(seen::text, '-'),"
    " ',' ORDER BY name)) FROM sites)"
)


def reference_compose(images: dict[str, str]) -> dict[str, object]:
    """The reference's Compose file for the depot, each service on its tier stand-in."""
    wget = ["CMD", "wget", "-q", "-O-"]
    return {
        "services": {
            "discovery": {
                "image": images["rust-service"],
                "container_name": "depot-discovery",
                "restart": "unless-stopped",
                "ports": ["127.0.0.1:4860:4860"],
                "environment": ["PORT=4860", "RUST_LOG=discovery=info"],
                "healthcheck": {
                    "test": [*wget, "http://localhost:4860/health"],
                    "interval": "10s",
                    "timeout": "3s",
                    "retries": 3,
                },
                "networks": ["depot-network"],
            },
            "dispatch": {
                "image": images["rust-service"],
                "container_name": "depot-dispatch",
                "restart": "unless-stopped",
                "ports": ["127.0.0.1:4890:4890"],
                "environment": ["DATABASE_URL=${DATABASE_URL}", "PORT=${DISPATCH_PORT:-4890}"],
                "depends_on": {"postgres": {"condition": "service_healthy"}},
                "secrets": ["database_password"],
                "networks": ["depot-network", "database-network"],
            },
            "postgres": {
                "image": images["postgres"],
                "container_name": "depot-postgres",
                "restart": "unless-stopped",
                "environment": [
                    "POSTGRES_DB=dispatch",
                    "POSTGRES_PASSWORD_FILE=/run/secrets/database_password",
                ],
                "secrets": ["database_password"],
                "healthcheck": {
                    "test": ["CMD", "pg_isready", "-U", "postgres"],
                    "interval": "5s",
                    "timeout": "3s",
                    "retries": 5,
                },
                "volumes": ["postgres-data:/var/lib/postgresql/data"],
                "networks": ["database-network"],
            },
            "grafana": {
                "image": images["grafana"],
                "container_name": "depot-grafana",
                "restart": "unless-stopped",
                "ports": ["127.0.0.1:3000:3000"],
                # The stand-in reads its admin password file at start, as grafana does.
                "environment": [
                    "GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/grafana_admin_password"
                ],
                "secrets": ["grafana_admin_password"],
                "networks": ["depot-network"],
            },
            "console": {
                "image": images["console"],
                "container_name": "depot-console",
                "restart": "unless-stopped",
                "ports": ["127.0.0.1:8080:80"],
                "depends_on": ["discovery", "dispatch", "grafana"],
                "volumes": ["./console/dist:/usr/share/nginx/html:ro", "./sessions:/data/sessions"],
                "networks": ["depot-network"],
            },
        },
        "networks": {
            "depot-network": {"driver": "bridge"},
            "database-network": {"driver": "bridge", "internal": True},
        },
        "volumes": {"postgres-data": None},
        "secrets": {
            "database_password": {"file": "./secrets/database_password.txt"},
            "grafana_admin_password": {"file": "./secrets/grafana_admin_password.txt"},
        },
    }


@dataclass
class Setup:
    """The Compose depot's folder and the new deployment's."""

    old: Path
    new: Path
    password: str

    @property
    def new_files(self) -> list[Path]:
        return [self.new / "compose.yaml", self.new / "override.yaml"]

    def old_compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cli = compose_cli()
        assert cli is not None
        return subprocess.run(
            [cli, "--project-name", PROJECT, "--project-directory", str(self.old),
             "--file", str(self.old / "docker-compose.yml"), *args],
            capture_output=True, text=True, check=False, timeout=timeout,
        )  # fmt: skip

    def migrate(
        self, *args: str, files: list[Path] | None = None
    ) -> subprocess.CompletedProcess[str]:
        given = [option for f in files or self.new_files for option in ("--compose-file", str(f))]
        return subprocess.run(
            [sys.executable, "-m", "depot", "migrate", "--stack", "dev", "--project", PROJECT,
             "--dir", str(self.new / SECRETS_DIR), *given, *args],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip


def sql(statement: str, container: str = "depot-postgres") -> str:
    ran = subprocess.run(
        ["docker", "exec", "--interactive", "--user", "postgres", container, "psql",
         "--no-psqlrc", "--tuples-only", "--no-align", "--set", "ON_ERROR_STOP=1",
         "--dbname", "dispatch"],
        input=statement, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-500:]
    return ran.stdout.strip()


def project_containers(project: str = PROJECT) -> dict[str, dict[str, object]]:
    """The project's containers by name: state and the Compose file each was created from."""
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}").stdout
    if not ids.split():
        return {}
    inspected = json.loads(docker("inspect", *ids.split()).stdout)
    return {
        item["Name"].lstrip("/"): {
            "running": item["State"]["Running"],
            "files": item["Config"]["Labels"].get("com.docker.compose.project.config_files"),
        }
        for item in inspected
    }


def _sweep() -> None:
    """Everything either deployment made: by the fixed names, the project and the kept images."""
    names = [spec.container_name for spec in SERVICES]
    listed = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}")
    found = [n for n in names if docker("inspect", n, check=False).returncode == 0]
    renamed = [f"{n}.pre-migrate" for n in names]
    renamed = [n for n in renamed if docker("inspect", n, check=False).returncode == 0]
    targets = [*listed.stdout.split(), *found, *renamed]
    if targets:
        docker("rm", "--force", *dict.fromkeys(targets), check=False)
    for network in (
        f"{PROJECT}_depot-network", f"{PROJECT}_database-network",
        "depot-network", "database-network", "backup-network",
    ):  # fmt: skip
        docker("network", "rm", network, check=False)
    for volume in (OLD_VOLUME, POSTGRES_DATA_VOLUME, POSTGRES_BACKUPS_VOLUME):
        docker("volume", "rm", "--force", volume, check=False)
    kept = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    kept = [image for image in kept if image.startswith("depot-pre-migrate-")]
    if kept:
        docker("image", "rm", *kept, check=False)


@pytest.fixture(scope="module")
def setup(standin_images: dict[str, str]) -> Iterator[Setup]:
    """The reference's Compose depot up as project ``depot``, with rows; the dev stack's export
    (stand-in override) laid out beside it, not started."""
    with tempfile.TemporaryDirectory(prefix="depot-engine-migrate-") as directory:
        old, new = Path(directory) / "compose-depot", Path(directory) / "stack"
        password = new_password()
        (old / "secrets").mkdir(parents=True, mode=0o700)
        for name, value in (("database_password", password), ("grafana_admin_password", "x")):
            path = old / "secrets" / f"{name}.txt"
            path.write_text(value + "\n")
            path.chmod(0o644)  # README "Compose export": bind-mounted files keep their mode
        (old / ".env").write_text(
            f"DATABASE_URL=postgres://postgres:{password}@postgres:5432/dispatch\n"
        )
        (old / ".env").chmod(0o600)
        (old / "console" / "dist").mkdir(parents=True)
        (old / "console" / "dist" / "index.html").write_text("<h1>console</h1>\n")
        (old / "sessions").mkdir()
        (old / "docker-compose.yml").write_text(yaml.safe_dump(reference_compose(standin_images)))
        new.mkdir()
        settings = tier_settings("dev", new)
        # Not at the project root: host paths absolute (compose_document's absolute_binds).
        (new / "compose.yaml").write_text(compose_yaml(settings, absolute_binds=True))
        (new / "override.yaml").write_text(
            override_yaml(compose_document(settings, absolute_binds=True), standin_images)
        )
        (new / "console-dist").mkdir(mode=0o755)
        (new / "console-dist" / "index.html").write_text("<h1>depot console</h1>\n")
        (new / "sessions").mkdir(mode=0o755)
        running = Setup(old, new, password)
        try:
            up = running.old_compose("up", "--detach", "--wait", "--wait-timeout", str(OLD_WAIT))
            assert up.returncode == 0, up.stderr[-2000:]
            sql(CREATE_ROWS)
            yield running
        finally:
            _sweep()


def test_a_switch_whose_postgres_never_gets_healthy_goes_back(setup: Setup) -> None:
    before = sql(FINGERPRINT)
    assert before.startswith(f"{ROWS} ")

    planned = setup.migrate("--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert f"data in volume {OLD_VOLUME}" in planned.stdout
    assert "1. write" in planned.stdout
    assert "dry run; nothing was changed" in planned.stdout
    assert not (setup.new / SECRETS_DIR).exists()  # a dry run writes nothing
    assert all(state["running"] for state in project_containers().values())

    # The export's secret files are written 0600; postgres (uid 70) cannot read them through
    # Compose's bind mount, so the switch refuses before stopping anything.
    refused = setup.migrate()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "chmod 0644" in refused.stderr
    assert all(state["running"] for state in project_containers().values())
    for secret_file in (setup.new / SECRETS_DIR).glob("*.txt"):
        secret_file.chmod(0o644)  # as README "Compose export" says for Linux hosts

    never = setup.new / "never-healthy.yaml"
    never.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "postgres": {
                        "healthcheck": {
                            "test": ["CMD", "false"],
                            "interval": "1s",
                            "timeout": "1s",
                            "retries": 1,
                            "start_period": "0s",
                        }
                    }
                }
            }
        )
    )
    failed = setup.migrate(files=[*setup.new_files, never])
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "went back: the Compose depot depot runs again" in failed.stderr, failed.stderr
    assert setup.password not in failed.stdout + failed.stderr

    containers = project_containers()
    old_file = str(setup.old / "docker-compose.yml")
    assert {name for name, state in containers.items() if state["running"]} == {
        "depot-console", "depot-discovery", "depot-dispatch", "depot-grafana", "depot-postgres",
    }  # fmt: skip
    assert {state["files"] for state in containers.values()} == {old_file}
    assert sql(FINGERPRINT) == before
    assert docker("volume", "inspect", OLD_VOLUME, check=False).returncode == 0


def test_the_compose_depot_moves_to_the_stack_with_every_row(setup: Setup) -> None:
    before = sql(FINGERPRINT)
    # What the failed switch left is cleared by the operator before trying again.
    docker("volume", "rm", POSTGRES_DATA_VOLUME)

    began = time.monotonic()
    with ProcessWatch([setup.password]) as watch:
        moved = setup.migrate()
    took = time.monotonic() - began
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert setup.password not in moved.stdout + moved.stderr
    # On no command line on the host or in a container (one kernel), while it ran: only in the
    # environment of the processes that take it so (libpq's clients, dispatch's DATABASE_URL).
    assert watch.samples > 20, "the process list was read too rarely to mean anything"
    assert not [program for program, part in watch.found if part == "cmdline"], watch.found
    assert "checked: 2 tables, the same row counts and checksums" in moved.stdout, moved.stdout
    ((downtime, requested),) = ((float(a), float(b)) for a, b in DOWNTIME.findall(moved.stdout))

    assert sql(FINGERPRINT) == before
    containers = project_containers()
    new_file = ",".join(str(f) for f in setup.new_files)
    assert {state["files"] for state in containers.values()} == {new_file}
    assert all(state["running"] for state in containers.values())
    assert docker("volume", "inspect", OLD_VOLUME, check=False).returncode == 0
    assert not [n for n in docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
                if n.endswith(".pre-migrate")]  # fmt: skip

    # dispatch's DATABASE_URL, from the export's env file, opens the moved database from a
    # container on database-network (the URL goes in by --env-file, never on a command line).
    connected = docker(
        "run", "--rm", "--network", "database-network",
        "--env-file", str(setup.new / SECRETS_DIR / "dispatch.env"),
        "--entrypoint", "sh", setup_image("postgres"),
        "-c", 'psql "$DATABASE_URL" --no-psqlrc --tuples-only --no-align --command '
        '"SELECT count(*) FROM jobs"',
        check=False,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr[-500:]
    assert connected.stdout.strip() == str(ROWS)

    assert downtime <= DOWNTIME_BOUND, moved.stdout
    assert requested <= REQUEST_TO_HEALTHY_BOUND, moved.stdout
    steps = "; ".join(line for line in moved.stdout.splitlines() if "(+" in line)
    FIGURES["migrate steps"] = steps
    FIGURES["migrate"] = (
        f"{ROWS + 2} rows in 2 tables moved from {OLD_VOLUME}: downtime {downtime:.1f} s from "
        f"the old containers stopped (goal and bound {DOWNTIME_BOUND:g} s), {requested:.1f} s "
        f"from the first stop request (bound {REQUEST_TO_HEALTHY_BOUND:g} s), the whole command "
        f"{took:.1f} s"
    )


def setup_image(standin: str) -> str:
    tags = docker("image", "ls", f"depot-standin-{standin}", "--format", "{{.Repository}}:{{.Tag}}")
    return tags.stdout.split()[0]
