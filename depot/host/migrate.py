"""``depot migrate``: from the running Compose depot of the reference to the stack, losing nothing.

The Compose deployment keeps its database in the project's volume (``depot_postgres-data``), its
password in ``./secrets/database_password.txt`` and its containers under the names the stack
wants (``depot-postgres`` …). This module finds that deployment on the stack's Docker host (by
its Compose labels), says what it found and what it will do as numbered steps, and — unless asked
only for the plan — switches in this order:

1. the secret files of the new deployment: the Compose depot's password, nothing new;
2. the old writers stopped (downtime starts), the old database fingerprinted (tables, row
   counts, a checksum per table) and backed up with the backup service's own ``depot-backup
   run`` (dumped, verified) into ``postgres-backups``; postgres stopped cleanly;
3. each stopped container kept as an image (its own files: grafana's state lives there) and
   renamed out of the way; the old volume **copied** into ``postgres-data`` (the old one is
   never written to or deleted);
4. ``up --wait`` of the new deployment (downtime ends when it is healthy), the moved database
   checked against the fingerprint and the password checked against it;
5. only then the old containers removed.

Any failure after the first stop goes back by itself (``go_back``): the new containers removed
(volumes kept), the old ones renamed back and started from their own Compose file. The same is
``depot migrate --rollback`` later. The password is read from its file and handed on only on
stdin or into a 0600 file: never on a command line, in a log or in anything printed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depot.catalog import BACKUP_TARGETS_ENV, POSTGRES_BACKUPS_VOLUME, POSTGRES_DATA_VOLUME, service
from depot.config.settings import DepotSettings
from depot.host.docker import DockerCli, DockerError, last_line
from depot.host.rotate import ComposeProject
from depot.model import backup_environment, deployments
from depot.outputs.secret_files import (
    create_secret_file,
    init_secret_files,
    read_secret,
    secret_file_name,
)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
PASSWORD_SECRET = "database_password"  # noqa: S105 - the secret's name, not its value
DEFAULT_DATA_DIR = "/var/lib/postgresql/data"
RENAMED = "{name}.pre-migrate"
KEPT_IMAGE = "depot-pre-migrate-{service}:{stamp}"
RECORD_FILE = "migration.json"  # in the new deployment's secrets folder: private, git-ignored
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
COMMAND_TIMEOUT = 120.0  # seconds, any one docker call but the backup, the copy and `up`
COPY_TIMEOUT = 3600.0  # the volume copy: about disk speed
BACKUP_TIMEOUT = 3600.0
# A Docker object name (containers, volumes, images' repositories after lowercase): what we
# accept from the host's labels before handing it back to docker or Compose.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_VERSION = re.compile(r"\(PostgreSQL\) (?P<major>\d+)")


class MigrationError(Exception):
    """Nothing was stopped or moved: what is unsafe or missing, in one line with its fix."""


class SwitchError(Exception):
    """The switch failed after the first stop; the message says how far the way back got."""


# --- what the Compose deployment is ----------------------------------------------------------


@dataclass(frozen=True)
class OldContainer:
    """One container of the Compose depot."""

    id: str
    name: str
    service: str
    running: bool


@dataclass(frozen=True)
class ComposeDepot:
    """The running Compose depot, as its containers' labels and mounts describe it."""

    project: str
    working_dir: str
    config_files: tuple[str, ...]
    containers: tuple[OldContainer, ...]
    postgres: OldContainer
    volume: str  # the real name of postgres' data volume
    data_dir: str
    password_file: Path
    database: str
    database_network: str
    published: dict[str, list[str]]  # service → "address:port->target"

    @property
    def writers(self) -> list[OldContainer]:
        """Every container but postgres: stopped first, so the database stops changing."""
        return [c for c in self.containers if c.id != self.postgres.id]


def compose_projects(cli: DockerCli) -> dict[str, set[str]]:
    """Compose projects on the host that run a service named ``postgres``: project → its
    containers' config files."""
    listed = _docker(
        cli, "container", "ls", "--all", "--no-trunc",
        "--filter", f"label={SERVICE_LABEL}=postgres",
        "--format",
        f'{{{{.Label "{PROJECT_LABEL}"}}}}\t{{{{.Label "{CONFIG_FILES_LABEL}"}}}}',
    )  # fmt: skip
    projects: dict[str, set[str]] = {}
    for line in listed.splitlines():
        project, _, files = line.partition("\t")
        if project:
            projects.setdefault(project, set()).add(files)
    return projects


def find_compose_depot(
    cli: DockerCli, project: str | None, new_files: Sequence[Path]
) -> ComposeDepot:
    """The Compose depot ``project`` (or the one there is), never the new deployment itself."""
    ours = ",".join(str(path.resolve()) for path in new_files)
    candidates = {name: files for name, files in compose_projects(cli).items() if files != {ours}}
    if project is None:
        if not candidates:
            raise MigrationError(
                f"no Compose project with a postgres service at {cli.host}: start the Compose "
                "depot (docker compose up -d), or name it with --project"
            )
        if len(candidates) > 1:
            raise MigrationError(
                f"{len(candidates)} Compose projects run postgres ({', '.join(sorted(candidates))})"
                ": name the depot's with --project"
            )
        (project,) = candidates
    elif project not in candidates:
        raise MigrationError(
            f"--project {project}: no container of that Compose project runs postgres at "
            f"{cli.host} (or it is the new deployment itself); see `docker compose ls --all`"
        )
    check_name(project, "--project")
    ids = _docker(
        cli, "container", "ls", "--all", "--no-trunc", "--quiet",
        "--filter", f"label={PROJECT_LABEL}={project}",
    ).split()  # fmt: skip
    inspected = cli.inspect("container", *ids)
    return _describe(cli, project, inspected)


def _describe(cli: DockerCli, project: str, inspected: list[dict[str, Any]]) -> ComposeDepot:
    containers = tuple(
        OldContainer(
            id=item["Id"],
            name=check_name(item["Name"].lstrip("/"), "a container name"),
            service=_labels(item).get(SERVICE_LABEL, ""),
            running=bool(item.get("State", {}).get("Running")),
        )
        for item in inspected
    )
    by_id = {item["Id"]: item for item in inspected}
    postgres = next(c for c in containers if c.service == "postgres")
    if not postgres.running:
        raise MigrationError(
            f"{postgres.name} of Compose project {project} is not running: start it "
            "(docker compose up -d postgres) so its database can be read and backed up first"
        )
    details = by_id[postgres.id]
    env = _environment(details)
    labels = _labels(details)
    data_dir = env.get("PGDATA", DEFAULT_DATA_DIR)
    mounts = {m.get("Destination"): m for m in details.get("Mounts", [])}
    data = mounts.get(data_dir)
    if data is None or data.get("Type") != "volume":
        kind = "nothing" if data is None else f"a {data.get('Type')} mount"
        raise MigrationError(
            f"{postgres.name} keeps {data_dir} in {kind}, not a named volume: depot migrate "
            "moves a volume only; copy the data into a named volume first (README "
            '"Upgrading postgres" shows the copy)'
        )
    working_dir = labels.get(WORKING_DIR_LABEL, "")
    files = tuple(f for f in labels.get(CONFIG_FILES_LABEL, "").split(",") if f)
    if not working_dir or not files:
        raise MigrationError(
            f"{postgres.name} has no Compose working folder or file in its labels: it was not "
            "started by docker compose v2, whose file the way back starts it from"
        )
    check_path(working_dir, "the Compose working folder")
    for file in files:
        if not Path(check_path(file, "a Compose file")).is_file() and not cli.remote:
            raise MigrationError(
                f"{file}: the Compose file {project} was started from is gone, and the way back "
                "starts the depot from it; put it back, then migrate"
            )
    networks = list(details.get("NetworkSettings", {}).get("Networks", {}))
    return ComposeDepot(
        project=project,
        working_dir=working_dir,
        config_files=files,
        containers=containers,
        postgres=postgres,
        volume=check_name(data["Name"], "the data volume's name"),
        data_dir=data_dir,
        password_file=_password_file(cli, env, mounts, working_dir),
        database=env.get("POSTGRES_DB", "postgres"),
        database_network=check_name(networks[0], "a network name") if networks else "",
        published={
            c.service: _published(by_id[c.id]) for c in containers if _published(by_id[c.id])
        },
    )


def _password_file(
    cli: DockerCli, env: dict[str, str], mounts: dict[Any, dict[str, Any]], working_dir: str
) -> Path:
    """Where the host keeps the password postgres was initialised with.

    The bind mount behind ``POSTGRES_PASSWORD_FILE`` (Compose mounts a file secret from the
    host), else the reference's ``./secrets/database_password.txt`` in the working folder.
    """
    if cli.remote:
        raise MigrationError(
            f"the Docker host {cli.host} is another machine, and the password file is there: "
            "run depot migrate on that host"
        )
    inside = env.get("POSTGRES_PASSWORD_FILE")
    if inside is None:
        raise MigrationError(
            "postgres takes its password from POSTGRES_PASSWORD, not a file: write it to "
            f"{working_dir}/secrets/database_password.txt (mode 0600), give postgres "
            "POSTGRES_PASSWORD_FILE from that secret, docker compose up -d, then migrate"
        )
    mount = mounts.get(inside)
    if mount is not None and mount.get("Type") == "bind":
        return Path(mount["Source"])
    return Path(working_dir) / "secrets" / secret_file_name(PASSWORD_SECRET)


def _published(item: dict[str, Any]) -> list[str]:
    bindings = item.get("HostConfig", {}).get("PortBindings") or {}
    return sorted(
        f"{b.get('HostIp') or '0.0.0.0'}:"  # noqa: S104 - read, not bound
        f"{b.get('HostPort')}->{port.split('/')[0]}"
        for port, listed in bindings.items()
        for b in listed or []
    )


def _labels(item: dict[str, Any]) -> dict[str, str]:
    return dict(item.get("Config", {}).get("Labels") or {})


def _environment(item: dict[str, Any]) -> dict[str, str]:
    pairs = (entry.partition("=") for entry in item.get("Config", {}).get("Env") or [])
    return {name: value for name, _, value in pairs}


def check_path(path: str, what: str) -> str:
    """``path`` if it is an absolute host path Compose wrote (no control characters, no comma:
    Compose joins its file list with commas); refused otherwise (it goes back to Compose)."""
    if not path.startswith("/") or "," in path or not path.isprintable():
        raise MigrationError(f"{what} {path!r} is not an absolute path Compose writes; refused")
    return path


def check_name(name: str, what: str) -> str:
    """``name`` if it is a Docker object name; refused otherwise (it goes back to docker)."""
    if not _NAME.fullmatch(name):
        raise MigrationError(
            f"{what} {name!r} is not a Docker name (letters, digits, '_', '.', '-'); refused"
        )
    return name


# --- the new deployment ----------------------------------------------------------------------


@dataclass(frozen=True)
class NewDeployment:
    """The stack's Compose export (and any override files) the depot moves to."""

    compose: ComposeProject
    secrets_dir: Path
    images: dict[str, str]  # service → image, as the files say (the last file wins)
    containers: dict[str, str]  # service → container name

    @property
    def files(self) -> tuple[Path, ...]:
        return self.compose.files


class _ComposeLoader(yaml.SafeLoader):
    """Reads Compose files, whose ``!reset``/``!override`` tags plain YAML does not know."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_ComposeLoader.add_constructor("!reset", _tagged)
_ComposeLoader.add_constructor("!override", _tagged)


def new_deployment(files: Sequence[Path], secrets_dir: Path) -> NewDeployment:
    """What the new deployment's Compose files run: each service's image and container."""
    images: dict[str, str] = {}
    containers: dict[str, str] = {}
    for path in files:
        document = yaml.load(path.read_text(), Loader=_ComposeLoader) or {}  # noqa: S506 - safe
        for name, body in (document.get("services") or {}).items():
            if isinstance(body, dict) and isinstance(body.get("image"), str):
                images[name] = body["image"]
            if isinstance(body, dict) and isinstance(body.get("container_name"), str):
                containers[name] = check_name(body["container_name"], "a container_name")
    return NewDeployment(ComposeProject(tuple(files)), secrets_dir, images, containers)


# --- reading a database ----------------------------------------------------------------------

FINGERPRINT_SQL = r"""
SELECT format(
  'SELECT %L, count(*), md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) FROM %I.%I t',
  schemaname || '.' || tablename, schemaname, tablename)
FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY schemaname, tablename
\gexec
"""  # noqa: E501 - one SQL statement


def fingerprint(cli: DockerCli, container: str, database: str) -> dict[str, tuple[int, str]]:
    """Each table of ``database``: its row count and an md5 of its rows in a fixed order."""
    result = cli.run(
        "exec", "--interactive", "--user", "postgres", container,
        "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
        "--field-separator", "\t", "--set", "ON_ERROR_STOP=1", "--dbname", database,
        stdin=FINGERPRINT_SQL, timeout=COPY_TIMEOUT,
    )  # fmt: skip
    if result.returncode != 0:
        raise DockerError(f"reading the tables of {container}: {last_line(result.stderr)}")
    tables: dict[str, tuple[int, str]] = {}
    for line in result.stdout.splitlines():
        if line.strip():
            table, count, digest = line.split("\t")
            tables[table] = (int(count), digest)
    return tables


def password_opens(cli: DockerCli, container: str, database: str, password: str) -> str | None:
    """None when ``password`` logs in to ``database`` over TCP in ``container``; else why not.

    The password goes on stdin into a shell variable: never on a command line.
    """
    script = (
        "IFS= read -r PGPASSWORD; export PGPASSWORD; exec psql --no-psqlrc --no-password "
        '--host 127.0.0.1 --username postgres --dbname "$1" --tuples-only --command "SELECT 1"'
    )
    result = cli.run(
        "exec", "--interactive", "--user", "postgres", container, "sh", "-c", script, "sh",
        database, stdin=password + "\n", timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    if result.returncode == 0:
        return None
    return last_line(result.stderr).replace(password, "[password]")


def data_major(cli: DockerCli, depot: ComposeDepot) -> int:
    """The postgres major version the old data directory was initialised by (PG_VERSION)."""
    result = cli.run(
        "exec", depot.postgres.id, "cat", "--", f"{depot.data_dir}/PG_VERSION",
        timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    text = result.stdout.strip()
    if result.returncode != 0 or not text.isdigit():
        raise MigrationError(
            f"{depot.postgres.name}: cannot read {depot.data_dir}/PG_VERSION "
            f"({last_line(result.stderr)}): is it a postgres data directory?"
        )
    return int(text)


def image_major(cli: DockerCli, image: str) -> int | None:
    """The major version of the postgres server in ``image`` (``postgres --version``)."""
    result = cli.run(
        "run", "--rm", "--network", "none", "--entrypoint", "postgres", "--", image, "--version",
        timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    found = _VERSION.search(result.stdout)
    return int(found["major"]) if result.returncode == 0 and found else None


# --- the plan --------------------------------------------------------------------------------


@dataclass
class Plan:
    """What was found, what differs, and the steps, as printed before anything is done."""

    depot: ComposeDepot
    new: NewDeployment
    settings: DepotSettings
    major: int
    notes: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def text(self) -> str:
        depot = self.depot
        services = ", ".join(sorted(c.service for c in depot.containers))
        lines = [
            f"from Compose project {depot.project} ({depot.working_dir}) to stack "
            f"{self.settings.stack} ({', '.join(str(f) for f in self.new.files)})",
            f"found: {len(depot.containers)} containers ({services}); postgres {self.major} "
            f"data in volume {depot.volume}; database {depot.database}; the password in "
            f"{depot.password_file} opens it",
        ]
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"{number}. {step}" for number, step in enumerate(self.steps, 1)]
        pulumi = pulumi_steps(self.settings.stack, depot.password_file)
        lines.append(f"with pulumi up instead of Compose, step 8 is: {'; '.join(pulumi)}")
        lines.append(
            f"if a step after 2 fails, the way back runs by itself; later: depot migrate "
            f"--rollback --stack {self.settings.stack} --dir {self.new.secrets_dir}"
        )
        return "".join(f"{line}\n" for line in lines)


def plan_migration(
    cli: DockerCli,
    settings: DepotSettings,
    depot: ComposeDepot,
    new: NewDeployment,
    password: str,
) -> Plan:
    """Check everything the switch needs, refuse what is unsafe, and list the steps."""
    why = password_opens(cli, depot.postgres.id, depot.database, password)
    if why is not None:
        raise MigrationError(
            f"the password in {depot.password_file} does not open {depot.database} ({why}): "
            "the Compose depot runs with another one; put that one in the file"
        )
    if depot.database != "dispatch":
        raise MigrationError(
            f"the Compose depot's database is {depot.database}, the stack's is dispatch: "
            "rename it (ALTER DATABASE … RENAME TO dispatch) and point DATABASE_URL at it first"
        )
    major = data_major(cli, depot)
    image = new.images.get("postgres")
    if image is None:
        raise MigrationError(f"{new.files[0]}: runs no postgres service; give the stack's export")
    runs = image_major(cli, image)
    if runs is None:
        raise MigrationError(
            f"cannot ask {image} its postgres version (docker pull it, or build it): the new "
            "server must be the data's major version"
        )
    if runs != major:
        raise MigrationError(
            f"{depot.volume} holds postgres {major} data and the stack runs postgres {runs} "
            f"({image}), which cannot open it: migrate to an image of postgres {major}, then "
            'upgrade as README "Upgrading postgres" says'
        )
    if "backup" not in new.images:
        raise MigrationError(
            f"stack {settings.stack} runs no backup service, whose tools take the verified "
            "backup first: set depot:backup.enabled: true, export again, then migrate"
        )
    missing = [
        image for image in dict.fromkeys(new.images.values()) if not exists(cli, "image", image)
    ]
    if missing:
        raise MigrationError(
            f"{', '.join(missing)}: not on the Docker host; build and pull them first "
            f"(docker compose {' '.join(f'-f {f}' for f in new.files)} build, then pull), so "
            "the downtime is not spent on them"
        )
    if exists(cli, "volume", POSTGRES_DATA_VOLUME):
        raise MigrationError(
            f"the volume {POSTGRES_DATA_VOLUME} exists already at {cli.host}: it may hold a "
            "database; move it aside (or remove it, if you know it is empty), then migrate"
        )
    in_the_way = [
        name
        for name in new.containers.values()
        if name not in {c.name for c in depot.containers} and exists(cli, "container", name)
    ]
    if in_the_way:
        raise MigrationError(
            f"{', '.join(in_the_way)}: containers of that name exist and are not the Compose "
            "depot's; remove them, then migrate"
        )
    kept = existing_password(new.secrets_dir)
    if kept is not None and kept != password:
        raise MigrationError(
            f"{new.secrets_dir / secret_file_name(PASSWORD_SECRET)} holds another password than "
            f"{depot.password_file}: the new deployment must use the old one; remove the new "
            "file (nothing has used it yet), then migrate"
        )
    plan = Plan(depot, new, settings, major)
    plan.notes = _notes(settings, depot, major)
    plan.steps = _steps(plan)
    return plan


def existing_password(secrets_dir: Path) -> str | None:
    path = secrets_dir / secret_file_name(PASSWORD_SECRET)
    if not os.path.lexists(path):
        return None
    value, problem = read_secret(path)
    if value is None:
        raise MigrationError(f"{path}: {problem}")
    return value


def _notes(settings: DepotSettings, depot: ComposeDepot, major: int) -> list[str]:
    planned = {d.name: d for d in deployments(settings)}
    notes = []
    for old in sorted(depot.containers, key=lambda c: c.service):
        if old.service not in planned:
            notes.append(f"{old.service}: the stack does not run it; it is not carried over")
    for name, deployment in planned.items():
        was = depot.published.get(name, [])
        now = (
            [f"{deployment.publish_address}:{deployment.published.published}->"
             f"{deployment.published.target}"]
            if deployment.published
            else []
        )  # fmt: skip
        if was != now:
            notes.append(
                f"{name}: published {', '.join(was) or 'nowhere'} there, "
                f"{', '.join(now) or 'nowhere'} in the stack"
            )
    if any(c.service == "grafana" for c in depot.containers):
        notes.append(
            "grafana: its dashboards, users and settings live in its container (the reference "
            "gives it no volume) and are not carried over; the container is kept as an image"
        )
    if settings.data.postgres_major not in (None, major):
        notes.append(
            f"depot:data.postgresMajor says {settings.data.postgres_major}, the data is "
            f"{major}: set it to {major} in Pulumi.{settings.stack}.yaml"
        )
    if not settings.data.adopt_volume:
        notes.append(
            f"set depot:data.adoptVolume: true in Pulumi.{settings.stack}.yaml: pulumi up then "
            f"imports {POSTGRES_DATA_VOLUME} instead of creating it, and the export marks it "
            "external"
        )
    return notes


def _steps(plan: Plan) -> list[str]:
    depot, new = plan.depot, plan.new
    writers = ", ".join(c.name for c in depot.writers) or "none"
    up = " ".join(["docker compose", *(f"-f {f}" for f in new.files), "up --detach --wait"])
    return [
        f"write {new.secrets_dir}/{secret_file_name(PASSWORD_SECRET)}: the Compose depot's "
        "password (0600), and any other missing secret file (as depot secrets init)",
        f"stop {writers}: nothing writes any more (downtime starts)",
        f"fingerprint {depot.database} in {depot.postgres.name}: tables, row counts, a "
        "checksum per table",
        f"back it up with the stack's backup tools (depot-backup run: dumped, verified) into "
        f"{POSTGRES_BACKUPS_VOLUME}",
        f"stop {depot.postgres.name} (a clean shutdown)",
        f"keep each stopped container as an image ({KEPT_IMAGE.format(service='<service>', stamp='<time>')}) "  # noqa: E501
        f"and rename it {RENAMED.format(name='<name>')}",
        f"copy {depot.volume} into a new {POSTGRES_DATA_VOLUME} ({depot.volume} is never "
        "changed or deleted)",
        f"{up} (downtime ends when every service is healthy)",
        "check the moved database against step 3, and that the password opens it",
        f"remove the old containers ({depot.volume} stays)",
    ]


# --- the switch ------------------------------------------------------------------------------


@dataclass
class Record:
    """What the way back needs, written before the first stop (no secret in it)."""

    project: str
    working_dir: str
    config_files: list[str]
    containers: list[dict[str, str]]  # id, name, service
    volume: str
    new_files: list[str]
    new_containers: dict[str, str]
    stamp: str
    state: str = "switching"

    def save(self, secrets_dir: Path) -> None:
        path = secrets_dir / RECORD_FILE
        temporary = path.with_name(f".{RECORD_FILE}.{secrets.token_hex(4)}")
        if not create_secret_file(temporary, json.dumps(asdict(self), indent=2) + "\n"):
            raise MigrationError(f"{temporary}: in the way; remove it")
        os.replace(temporary, path)

    @classmethod
    def load(cls, secrets_dir: Path) -> Record:
        path = secrets_dir / RECORD_FILE
        try:
            data = json.loads(path.read_text())
            record = cls(**data)
        except FileNotFoundError:
            raise MigrationError(f"{path}: no migration recorded here; give --dir") from None
        except (ValueError, TypeError):
            raise MigrationError(f"{path}: not a migration record this depot reads") from None
        check_name(record.project, "the recorded project")
        check_path(record.working_dir, "the recorded working folder")
        for file in record.config_files:
            check_path(file, "a recorded Compose file")
        for container in record.containers:
            check_name(container["name"], "a recorded container")
        return record


@dataclass
class Outcome:
    """What the switch did: its lines, and the downtime it measured."""

    lines: list[str] = field(default_factory=list)
    downtime: float | None = None  # from the first stop request to every new service healthy
    clock: Callable[[], float] = time.monotonic
    began: float | None = None  # the first stop: each later line says how long after it
    # When the old writers had stopped: a service that ignores SIGTERM (PID 1 without an init,
    # as the reference runs them) keeps serving through Docker's stop timeout, so the outage
    # seen by every client is from here on; the figure above counts that grace too.
    stopped: float | None = None

    def say(self, line: str) -> None:
        at = "" if self.began is None else f" (+{self.clock() - self.began:.1f} s)"
        self.lines.append(f"{line}{at}")


def prepare_secrets(new: NewDeployment, password: str) -> list[str]:
    """The password file (the old password, 0600) and every other missing secret file."""
    new.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = new.secrets_dir / secret_file_name(PASSWORD_SECRET)
    lines = []
    if create_secret_file(path, password + "\n"):
        lines.append(f"wrote {path} (the Compose depot's password)")
    for result in init_secret_files(new.secrets_dir):
        if result.problem:
            raise MigrationError(f"{new.secrets_dir / result.name}: {result.problem}")
        if result.created:
            lines.append(f"wrote {new.secrets_dir / result.name}")
    return lines


def unreadable_for_postgres(path: Path, owner: int = 70) -> bool:
    """True when the postgres user (uid 70) cannot read the bind-mounted file ``path``."""
    info = path.stat()
    return not (info.st_mode & 0o004 or (info.st_uid == owner and info.st_mode & 0o400))


def switch(
    cli: DockerCli,
    plan: Plan,
    password: str,
    *,
    wait_timeout: int,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Move the depot as ``plan`` says; on a failure after the first stop, go back."""
    depot, new = plan.depot, plan.new
    outcome = Outcome(clock=clock)
    for line in prepare_secrets(new, password):
        outcome.say(line)
    secret = new.secrets_dir / secret_file_name(PASSWORD_SECRET)
    if not cli.remote and unreadable_for_postgres(secret):
        raise MigrationError(
            f"{secret}: postgres (uid 70) cannot read it through Compose's bind mount; on "
            f'Linux run `chmod 0644 {new.secrets_dir}/*.txt` (README "Compose export"), then '
            "migrate again (the secret files are written; nothing else was changed)"
        )
    stamp = time.strftime(STAMP_FORMAT, time.gmtime())
    record = Record(
        project=depot.project,
        working_dir=depot.working_dir,
        config_files=list(depot.config_files),
        containers=[{"id": c.id, "name": c.name, "service": c.service} for c in depot.containers],
        volume=depot.volume,
        new_files=[str(f) for f in new.files],
        new_containers=dict(new.containers),
        stamp=stamp,
    )
    record.save(new.secrets_dir)
    started = outcome.began = clock()
    try:
        before = _stop_and_keep(cli, plan, password, record, outcome)
        _copy_volume(cli, depot)
        outcome.say(f"copied {depot.volume} into {POSTGRES_DATA_VOLUME}")
        _up(cli, new, wait_timeout)
        healthy = clock()
        outcome.downtime = healthy - started
        since_stopped = healthy - (outcome.stopped if outcome.stopped is not None else started)
        outcome.say(
            f"up: every service healthy; downtime {since_stopped:.1f} s from the old containers "
            f"stopped, {outcome.downtime:.1f} s from the first stop request"
        )
        _check(cli, new, depot, before, password)
        outcome.say(
            f"checked: {len(before)} tables, the same row counts and checksums; the password "
            "opens the moved database"
        )
    except (DockerError, MigrationError, SwitchError, subprocess.SubprocessError) as error:
        said = str(error)
        back = go_back(cli, record, new.secrets_dir, wait_timeout=wait_timeout)
        raise SwitchError(f"{said}; {back}") from None
    for container in depot.containers:
        if exists(cli, "container", container.id):  # Compose replaced those of its project
            _docker(cli, "container", "rm", "--", container.id)  # never --volumes
    record.state = "done"
    record.save(new.secrets_dir)
    outcome.say(
        f"removed the old containers; {depot.volume} and the images "
        f"{KEPT_IMAGE.format(service='<service>', stamp=stamp)} stay"
    )
    return outcome


def _stop_and_keep(
    cli: DockerCli, plan: Plan, password: str, record: Record, outcome: Outcome
) -> dict[str, tuple[int, str]]:
    depot = plan.depot
    writers = [c.id for c in depot.writers]
    if writers:
        _docker(cli, "container", "stop", "--", *writers)
    outcome.stopped = outcome.clock()
    outcome.say(f"stopped {', '.join(c.name for c in depot.writers)}")
    before = fingerprint(cli, depot.postgres.id, depot.database)
    outcome.say(f"fingerprinted {len(before)} tables, {sum(n for n, _ in before.values())} rows")
    _backup(cli, plan, password)
    outcome.say(f"backed up {depot.database} into {POSTGRES_BACKUPS_VOLUME} (verified)")
    _docker(cli, "container", "stop", "--time", "60", "--", depot.postgres.id)
    for container in depot.containers:
        kept = KEPT_IMAGE.format(service=container.service, stamp=record.stamp)
        _docker(cli, "container", "commit", "--", container.id, kept)
        _docker(cli, "container", "rename", container.id, RENAMED.format(name=container.name))
    outcome.say(f"stopped {depot.postgres.name}; kept and renamed the old containers")
    return before


def _backup(cli: DockerCli, plan: Plan, password: str) -> None:
    """``depot-backup run`` in a one-off container of the stack's backup image, on the old
    database network: dumped and verified (``pg_restore``), placed in ``postgres-backups``.

    Off-host targets are left to the stack's backup service, which ships this backup with
    its first run; the password reaches the container on stdin only, into its tmpfs.
    """
    settings = plan.settings
    environment = [
        f"{name}={value}"
        for name, value in backup_environment(settings)
        if name != BACKUP_TARGETS_ENV
    ]
    variables = [
        *environment,
        f"PGHOST={plan.depot.postgres.name}",
        "PGPORT=5432",
        "PGUSER=postgres",
        f"PGDATABASE={plan.depot.database}",
        "RCLONE_CONFIG=/dev/null",
    ]
    script = (
        "umask 077; cat > /tmp/database-password; "
        "DATABASE_PASSWORD_FILE=/tmp/database-password exec depot-backup run"
    )
    options = [option for variable in variables for option in ("--env", variable)]
    result = cli.run(
        "run", "--rm", "--interactive", "--network", plan.depot.database_network,
        # As the backup service runs: uid 70 (the image's user), nothing more.
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
        "--tmpfs", "/tmp:rw,noexec,nosuid,size=16m",  # noqa: S108 - the container's own tmpfs
        "--volume", f"{POSTGRES_BACKUPS_VOLUME}:/backups", *options,
        "--entrypoint", "sh", "--", plan.new.images["backup"], "-c", script,
        stdin=password, timeout=BACKUP_TIMEOUT,
    )  # fmt: skip
    if result.returncode != 0:
        raise SwitchError(f"the backup failed ({last_line(result.stderr)})")


def _copy_volume(cli: DockerCli, depot: ComposeDepot) -> None:
    """The old volume's files into a new ``postgres-data``, owners and modes kept."""
    _docker(cli, "volume", "create", "--", POSTGRES_DATA_VOLUME)
    image = _image_of(cli, depot.postgres.id)
    result = cli.run(
        "run", "--rm", "--network", "none", "--user", "0:0",
        "--volume", f"{depot.volume}:/from:ro", "--volume", f"{POSTGRES_DATA_VOLUME}:/to",
        "--entrypoint", "cp", "--", image, "-a", "/from/.", "/to/",
        timeout=COPY_TIMEOUT,
    )  # fmt: skip
    if result.returncode != 0:
        raise SwitchError(f"copying {depot.volume} failed ({last_line(result.stderr)})")


def _image_of(cli: DockerCli, container: str) -> str:
    inspected = cli.inspect("container", container)
    return str(inspected[0]["Image"])


def _up(cli: DockerCli, new: NewDeployment, wait_timeout: int) -> None:
    command = [
        *new.compose.command(cli), "up", "--detach", "--wait", "--wait-timeout",
        str(wait_timeout), "--no-build", "--pull", "never",
    ]  # fmt: skip
    why = compose_run(cli, command, timeout=wait_timeout + 60)
    if why is not None:
        raise SwitchError(f"up failed ({why})")


def _check(
    cli: DockerCli,
    new: NewDeployment,
    depot: ComposeDepot,
    before: dict[str, tuple[int, str]],
    password: str,
) -> None:
    postgres = new.containers.get("postgres", service("postgres").container_name)
    after = fingerprint(cli, postgres, depot.database)
    if after != before:
        differing = sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
        raise SwitchError(
            f"the moved database differs from the old one in {', '.join(differing[:5])}"
        )
    why = password_opens(cli, postgres, depot.database, password)
    if why is not None:
        raise SwitchError(f"the password does not open the moved database ({why})")


def compose_run(cli: DockerCli, command: Sequence[str], *, timeout: float) -> str | None:
    """Run a Compose command against ``cli``'s host; None when it succeeded, else why not."""
    try:
        with cli.environment() as env:
            result = subprocess.run(  # noqa: S603 - fixed subcommands; names checked
                list(command), capture_output=True, text=True, check=False, env=env,
                timeout=timeout,
            )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout:g} s"
    except OSError as error:
        return str(error)
    return None if result.returncode == 0 else last_line(result.stderr)


def go_back(cli: DockerCli, record: Record, secrets_dir: Path, *, wait_timeout: int) -> str:
    """The Compose depot running again: the new containers removed (volumes kept), the old ones
    renamed back and started from their own Compose file. Returns what it did, in words."""
    old_ids = {c["id"] for c in record.containers}
    removed = []
    for name in dict.fromkeys(record.new_containers.values()):
        found = cli.inspect("container", name)
        if found and found[0]["Id"] not in old_ids:
            _docker(cli, "container", "rm", "--force", "--", name)  # never --volumes
            removed.append(name)
    for container in record.containers:
        found = cli.inspect("container", container["id"])
        if found and found[0]["Name"].lstrip("/") != container["name"]:
            _docker(cli, "container", "rename", container["id"], container["name"])
    old = ComposeProject(tuple(Path(f) for f in record.config_files), record.project)
    command = [
        *old.command(cli), "--project-directory", record.working_dir, "up", "--detach",
        "--wait", "--wait-timeout", str(wait_timeout), "--no-build", "--pull", "never",
    ]  # fmt: skip
    why = compose_run(cli, command, timeout=wait_timeout + 60)
    if why is not None:
        return (
            f"went back part of the way: removed {', '.join(removed) or 'nothing'}, but the "
            f"Compose depot did not come up ({why}); run: "
            f"{' '.join(['docker compose', '-p', record.project, '--project-directory', record.working_dir, *(f'-f {f}' for f in record.config_files), 'up -d'])}"  # noqa: E501
        )
    record.state = "rolled back"
    record.save(secrets_dir)
    return (
        f"went back: the Compose depot {record.project} runs again on {record.volume} "
        f"(removed the new containers {', '.join(removed) or '(none)'}; volumes kept: "
        f"{POSTGRES_DATA_VOLUME}, the copy, may hold what the new depot wrote; move it aside "
        "before migrating again)"
    )


def exists(cli: DockerCli, kind: str, name: str) -> bool:
    """True when the host has the ``kind`` (container, image, volume) called ``name``."""
    result = cli.run(kind, "inspect", "--format", "{{.Id}}" if kind != "volume" else "{{.Name}}",
                     "--", name, timeout=COMMAND_TIMEOUT)  # fmt: skip
    if result.returncode == 0:
        return True
    if "no such" in result.stderr.lower():
        return False
    raise DockerError(f"docker {kind} inspect at {cli.host}: {last_line(result.stderr)}")


def _docker(cli: DockerCli, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
    result = cli.run(*args, timeout=timeout)
    if result.returncode != 0:
        raise DockerError(f"docker {args[0]} {args[1]} at {cli.host}: {last_line(result.stderr)}")
    return result.stdout


# --- the Pulumi path -------------------------------------------------------------------------


def pulumi_secret_command(stack: str) -> list[str]:
    """``pulumi config set --secret`` of the database password: the value comes on stdin."""
    return ["pulumi", "config", "set", "--secret", "--stack", stack, "depot:databasePassword"]


def set_pulumi_secret(
    stack: str, password: str, run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> str | None:
    """Hand ``password`` to ``pulumi config set --secret`` on stdin; None, or why it failed."""
    command = pulumi_secret_command(stack)
    try:
        result = run(
            command, input=password, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error).replace(password, "[password]")
    if result.returncode == 0:
        return None
    return last_line(result.stderr).replace(password, "[password]")


def pulumi_steps(stack: str, password_file: Path) -> list[str]:
    """The Pulumi path after the copy, as printed: nothing of it needs the value on a line."""
    return [
        f"tr -d '\\n' < {password_file} | {' '.join(pulumi_secret_command(stack))}",
        f"set depot:data.adoptVolume: true in Pulumi.{stack}.yaml "
        f"(the first up imports {POSTGRES_DATA_VOLUME})",
        "pulumi up",
    ]


def wait_timeout(settings: DepotSettings) -> int:
    """How long ``up --wait`` may take: the longest chain of the services' wait timeouts."""
    planned = {d.name: d.spec for d in deployments(settings) if d.spec.profile is None}

    def chain(name: str) -> int:
        spec = planned[name]
        return spec.healthcheck.wait_timeout + max(
            (chain(n) for n in spec.waits_for if n in planned), default=0
        )

    return max(chain(name) for name in planned) if planned else 60
