"""``depot migrate`` without an engine: what it refuses, what it prints, where the password goes.

A fake Docker host answers the calls the migration makes (the engine tier runs the real thing:
tests/engine/test_migrate.py); the Pulumi path is checked under the mocks: the copied volume is
imported, never created, and the stack's password is the Compose depot's, always as a secret.
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from depot.config import ConfigError, load_settings
from depot.config.settings import DepotSettings
from depot.host import migrate
from depot.host.docker import DockerCli
from depot.outputs.compose import compose_document
from depot.recording import Secret
from depot.resource_types import VOLUME
from tests.conftest import containers, env_of, run_depot, run_stack, stack_config, walk

CANARY = "canary-Mg8!old/compose:pw@x"
# The old Compose file must exist (the way back starts the depot from it): this file stands in.
OLD_FILES = str(Path(__file__).resolve())
POSTGRES_ID = "p" * 64


def old_postgres(**changes: Any) -> dict[str, Any]:
    """``docker inspect`` of the reference's postgres container, as Compose v2 labels it."""
    item: dict[str, Any] = {
        "Id": POSTGRES_ID,
        "Name": "/depot-postgres",
        "State": {"Running": True},
        "Config": {
            "Labels": {
                migrate.PROJECT_LABEL: "depot",
                migrate.SERVICE_LABEL: "postgres",
                migrate.WORKING_DIR_LABEL: "/srv/depot",
                migrate.CONFIG_FILES_LABEL: OLD_FILES,
            },
            "Env": [
                "POSTGRES_DB=dispatch",
                "POSTGRES_PASSWORD_FILE=/run/secrets/database_password",
            ],
        },
        "Mounts": [
            {
                "Type": "volume",
                "Name": "depot_postgres-data",
                "Destination": "/var/lib/postgresql/data",
            },
            {
                "Type": "bind",
                "Source": "/srv/depot/secrets/database_password.txt",
                "Destination": "/run/secrets/database_password",
            },
        ],
        "NetworkSettings": {"Networks": {"depot_database-network": {}}},
        "HostConfig": {"PortBindings": {}},
    }
    item.update(changes)
    return item


def old_dispatch() -> dict[str, Any]:
    return {
        "Id": "d" * 64,
        "Name": "/depot-dispatch",
        "State": {"Running": True},
        "Config": {"Labels": {migrate.SERVICE_LABEL: "dispatch"}, "Env": []},
        "HostConfig": {"PortBindings": {"4890/tcp": [{"HostIp": "", "HostPort": "4890"}]}},
    }


class FakeHost(DockerCli):
    """A Docker host that answers the migration's calls from ``containers`` and records them."""

    containers: list[dict[str, Any]]
    projects: str
    image_version: str
    data_version: str
    volumes: tuple[str, ...]
    calls: list[tuple[tuple[str, ...], str | None]]

    def __init__(
        self,
        containers: list[dict[str, Any]],
        *,
        projects: str = f"depot\t{OLD_FILES}\n",
        image_version: str = "postgres (PostgreSQL) 15.8",
        data_version: str = "15\n",
        volumes: tuple[str, ...] = (),
    ) -> None:
        super().__init__("unix:///fake.sock")
        for name, value in (
            ("containers", containers),
            ("projects", projects),
            ("image_version", image_version),
            ("data_version", data_version),
            ("volumes", volumes),
            ("calls", []),
        ):
            object.__setattr__(self, name, value)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, stdin))
        out, err, status = self._answer(args, stdin)
        return subprocess.CompletedProcess(args, status, out, err)

    def _answer(self, args: tuple[str, ...], stdin: str | None) -> tuple[str, str, int]:
        missing = ("", "Error: No such object", 1)
        if args[:2] == ("container", "ls"):
            ids = "\n".join(c["Id"] for c in self.containers)
            return (ids if "--quiet" in args else self.projects), "", 0
        if args[0] == "exec" and "sh" in args:
            opens = stdin == CANARY + "\n"
            return "", "FATAL: password authentication failed", 0 if opens else 2
        answers = {
            ("exec", "cat"): (self.data_version, "", 0),
            ("run", "--version"): (self.image_version, "", 0),
            ("image", "inspect"): ("sha256:1", "", 0),
            ("container", "inspect"): missing,
            ("volume", "inspect"): (args[-1], "", 0) if args[-1] in self.volumes else missing,
        }
        for (first, then), answer in answers.items():
            if args[0] == first and then in args:
                return answer
        raise AssertionError(f"unexpected docker call: {args}")

    def inspect(self, kind: str, *names: str) -> list[dict[str, Any]]:
        return [c for c in self.containers if c["Id"] in names]


@pytest.fixture
def settings() -> DepotSettings:
    return load_settings("dev", stack_config("dev"))


@pytest.fixture
def new(tmp_path: Path) -> migrate.NewDeployment:
    export = tmp_path / "compose.yaml"
    export.write_text(
        "services:\n"
        "  postgres: {image: 'postgres:17.2-alpine', container_name: depot-postgres}\n"
        "  dispatch: {image: 'depot-dispatch:dev', container_name: depot-dispatch}\n"
        "  backup: {image: 'depot-backup:dev', container_name: depot-backup}\n"
    )
    override = tmp_path / "override.yaml"
    override.write_text("services:\n  postgres: {image: standin-postgres, build: !reset null}\n")
    return migrate.new_deployment([export, override], tmp_path / "secrets")


def plan(host: FakeHost, settings: DepotSettings, new: migrate.NewDeployment) -> migrate.Plan:
    depot = migrate.find_compose_depot(host, None, new.files)
    return migrate.plan_migration(host, settings, depot, new, CANARY)


def test_the_override_file_decides_the_image_and_its_reset_tag_is_read(
    new: migrate.NewDeployment,
) -> None:
    assert new.images["postgres"] == "standin-postgres"
    assert new.containers == {
        "postgres": "depot-postgres",
        "dispatch": "depot-dispatch",
        "backup": "depot-backup",
    }


def test_the_plan_names_the_old_volume_and_numbers_every_step(
    settings: DepotSettings, new: migrate.NewDeployment
) -> None:
    host = FakeHost([old_postgres(), old_dispatch()])
    text = plan(host, settings, new).text()
    assert "postgres 15 data in volume depot_postgres-data" in text
    assert "the password in /srv/depot/secrets/database_password.txt opens it" in text
    steps = [line for line in text.splitlines() if line[:1].isdigit()]
    assert [line.split(".", 1)[0] for line in steps] == [str(n) for n in range(1, 11)]
    assert "stop depot-dispatch: nothing writes any more (downtime starts)" in steps[1]
    assert "copy depot_postgres-data into a new postgres-data" in steps[6]
    assert "remove the old containers (depot_postgres-data stays)" in steps[9]
    assert "note: dispatch: published 0.0.0.0:4890->4890 there, 127.0.0.1:4890->4890" in text
    assert "depot:data.postgresMajor says 17, the data is 15" in text
    assert (
        "with pulumi up instead of Compose, step 8 is: tr -d '\\n' < "
        "/srv/depot/secrets/database_password.txt | pulumi config set --secret --stack dev "
        "depot:databasePassword; " in text
    )
    assert CANARY not in text


def test_the_password_reaches_the_host_on_stdin_only(
    settings: DepotSettings, new: migrate.NewDeployment
) -> None:
    host = FakeHost([old_postgres()])
    plan(host, settings, new)
    calls = host.calls
    assert not [args for args, _ in calls if any(CANARY in arg for arg in args)]
    assert [stdin for _, stdin in calls if stdin and CANARY in stdin] == [CANARY + "\n"]


@pytest.mark.parametrize(
    ("host", "refusal"),
    [
        (
            FakeHost([old_postgres()], image_version="postgres (PostgreSQL) 17.2"),
            "depot_postgres-data holds postgres 15 data and the stack runs postgres 17 "
            r"\(standin-postgres\), which cannot open it: migrate to an image of postgres 15",
        ),
        (
            FakeHost(
                [
                    old_postgres(
                        Mounts=[
                            {
                                "Type": "bind",
                                "Source": "/srv/pg",
                                "Destination": "/var/lib/postgresql/data",
                            }
                        ]
                    )
                ]
            ),
            "keeps /var/lib/postgresql/data in a bind mount, not a named volume",
        ),
        (
            FakeHost([old_postgres(State={"Running": False})]),
            "depot-postgres of Compose project depot is not running: start it",
        ),
        (
            FakeHost([old_postgres()], projects=f"depot\t{OLD_FILES}\nother\t/x.yml\n"),
            r"2 Compose projects run postgres \(depot, other\): name the depot's with --project",
        ),
        (FakeHost([old_postgres()], projects=""), "no Compose project with a postgres service"),
        (
            FakeHost([old_postgres()], volumes=("postgres-data",)),
            "the volume postgres-data exists already",
        ),
        (
            FakeHost([old_postgres(Config={"Labels": {migrate.SERVICE_LABEL: "postgres"}})]),
            "has no Compose working folder or file in its labels",
        ),
        (
            FakeHost(
                [
                    old_postgres(
                        Config={
                            "Labels": {
                                migrate.SERVICE_LABEL: "postgres",
                                migrate.WORKING_DIR_LABEL: "/srv/depot",
                                migrate.CONFIG_FILES_LABEL: "/srv/depot/gone.yml",
                            },
                            "Env": ["POSTGRES_PASSWORD_FILE=/run/secrets/database_password"],
                        }
                    )
                ]
            ),
            "/srv/depot/gone.yml: the Compose file depot was started from is gone",
        ),
    ],
)
def test_what_cannot_be_carried_over_safely_stops_with_its_fix(
    host: FakeHost, refusal: str, settings: DepotSettings, new: migrate.NewDeployment
) -> None:
    with pytest.raises(migrate.MigrationError, match=refusal):
        plan(host, settings, new)
    calls = host.calls
    changing = {"stop", "rm", "rename", "commit", "create"}
    assert not [args for args, _ in calls if changing & set(args[:2])]


def test_a_password_that_does_not_open_the_database_stops(
    settings: DepotSettings, new: migrate.NewDeployment
) -> None:
    host = FakeHost([old_postgres()])
    depot = migrate.find_compose_depot(host, None, new.files)
    with pytest.raises(migrate.MigrationError, match="does not open dispatch") as refused:
        migrate.plan_migration(host, settings, depot, new, "not-" + CANARY)
    assert CANARY not in str(refused.value)


def test_the_new_deployment_is_never_taken_for_the_old_one(new: migrate.NewDeployment) -> None:
    ours = ",".join(str(path.resolve()) for path in new.files)
    host = FakeHost([old_postgres()], projects=f"depot\t{ours}\n")
    with pytest.raises(migrate.MigrationError, match="no Compose project with a postgres"):
        migrate.find_compose_depot(host, None, new.files)


def test_another_password_in_the_new_secrets_folder_stops(
    settings: DepotSettings, new: migrate.NewDeployment
) -> None:
    new.secrets_dir.mkdir(mode=0o700)
    (new.secrets_dir / "database_password.txt").write_text("another\n")
    with pytest.raises(migrate.MigrationError, match="holds another password than"):
        plan(FakeHost([old_postgres()]), settings, new)


def test_a_name_from_the_host_that_docker_would_misread_is_refused() -> None:
    with pytest.raises(migrate.MigrationError, match="is not a Docker name"):
        migrate.check_name("--volumes-from=x", "a container name")


def test_the_secret_files_keep_the_old_password_0600(new: migrate.NewDeployment) -> None:
    lines = migrate.prepare_secrets(new, CANARY)
    path = new.secrets_dir / "database_password.txt"
    assert path.read_text() == CANARY + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert CANARY in (new.secrets_dir / "dispatch.env").read_text().replace("%21", "!").replace(
        "%2F", "/"
    ).replace("%3A", ":").replace("%40", "@")
    assert not [line for line in lines if CANARY in line]
    assert migrate.unreadable_for_postgres(path)  # Compose's bind mount keeps 0600: README's chmod
    path.chmod(0o644)
    assert not migrate.unreadable_for_postgres(path)


def test_the_record_holds_no_secret_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    record = migrate.Record(
        project="depot",
        working_dir="/srv/depot",
        config_files=[OLD_FILES],
        containers=[{"id": POSTGRES_ID, "name": "depot-postgres", "service": "postgres"}],
        volume="depot_postgres-data",
        new_files=["/x/compose.yaml"],
        new_containers={"postgres": "depot-postgres"},
        stamp="20261206T000000Z",
    )
    record.save(tmp_path)
    saved = tmp_path / migrate.RECORD_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert migrate.Record.load(tmp_path) == record
    assert json.loads(saved.read_text())["volume"] == "depot_postgres-data"


def test_a_tampered_record_is_refused(tmp_path: Path) -> None:
    (tmp_path / migrate.RECORD_FILE).write_text(
        json.dumps(
            {
                "project": "-p evil",
                "working_dir": "/",
                "config_files": [],
                "containers": [],
                "volume": "v",
                "new_files": [],
                "new_containers": {},
                "stamp": "x",
            }
        )
    )
    with pytest.raises(migrate.MigrationError, match="is not a Docker name"):
        migrate.Record.load(tmp_path)


# --- the Pulumi path -------------------------------------------------------------------------


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``pulumi`` first on PATH that records its arguments and its stdin."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "pulumi"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\ncat > {tmp_path}/stdin\n')
    script.chmod(0o700)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return tmp_path


def test_the_password_goes_to_pulumi_config_on_stdin_never_its_command_line(
    fake_pulumi: Path,
) -> None:
    assert migrate.set_pulumi_secret("prod", CANARY) is None
    argv = (fake_pulumi / "argv").read_text().split("\n")
    assert argv[:6] == ["config", "set", "--secret", "--stack", "prod", "depot:databasePassword"]
    assert CANARY not in (fake_pulumi / "argv").read_text()
    assert (fake_pulumi / "stdin").read_text() == CANARY


def test_a_failing_pulumi_never_echoes_the_password() -> None:
    def failing(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 255, "", f"error: bad value {CANARY}\n")

    said = migrate.set_pulumi_secret("prod", CANARY, run=failing)
    assert said == "error: bad value [password]"


def test_the_printed_pulumi_steps_read_the_password_from_its_file() -> None:
    steps = migrate.pulumi_steps("prod", Path("/srv/depot/secrets/database_password.txt"))
    assert steps[0] == (
        "tr -d '\\n' < /srv/depot/secrets/database_password.txt | pulumi config set --secret "
        "--stack prod depot:databasePassword"
    )
    assert "depot:data.adoptVolume: true" in steps[1]


def test_under_the_mocks_the_copied_volume_is_imported_never_created() -> None:
    adopted = run_stack("dev", {"depot:data": {"protect": False, "adoptVolume": True}})
    volume = adopted.named("postgres-data", VOLUME)
    assert volume.import_id == "postgres-data"
    assert (volume.retain_on_delete, volume.delete_before_replace) == (True, True)
    assert adopted.named("postgres-backups", VOLUME).import_id == ""
    prod = run_stack("prod", {"depot:data": {"protect": True, "adoptVolume": True}})
    assert prod.named("postgres-data", VOLUME).protect is True
    assert prod.named("postgres-data", VOLUME).import_id == "postgres-data"
    assert run_stack("dev").named("postgres-data", VOLUME).import_id == ""


def test_under_the_mocks_the_stack_runs_with_the_old_password_as_a_secret() -> None:
    # What `pulumi config set --secret depot:databasePassword` of the old file gives the program.
    recording = run_stack(
        "dev",
        {"depot:data": {"protect": False, "adoptVolume": True}},
        secrets={"depot:databasePassword": CANARY},
    )
    services = containers(recording)
    [upload] = services["postgres"].inputs["uploads"]
    assert upload["content"] == Secret(CANARY)
    assert isinstance(services["dispatch"].inputs["envs"], Secret)
    assert env_of(services["dispatch"])["DATABASE_URL"].startswith("postgres://postgres:canary-")
    for registration in recording.registrations:
        for leaf, secret in walk(registration.inputs):
            assert secret or CANARY not in str(leaf), registration.name


def test_the_export_leaves_an_adopted_volume_to_the_host(settings: DepotSettings) -> None:
    adopted = load_settings(
        "dev", stack_config("dev", {"depot:data": {"protect": False, "adoptVolume": True}})
    )
    assert compose_document(adopted)["volumes"]["postgres-data"] == {
        "name": "postgres-data",
        "external": True,
    }
    assert compose_document(settings)["volumes"]["postgres-data"] == {"name": "postgres-data"}


@pytest.mark.parametrize(
    ("stack", "data", "message"),
    [
        (
            "dev",
            {"adoptVolume": "depot_postgres-data"},
            "Pulumi.dev.yaml: depot:data.adoptVolume: 'depot_postgres-data' should be a valid "
            "boolean",
        ),
        (
            "cluster",
            {"adoptVolume": True},
            "Pulumi.cluster.yaml: depot:data.adoptVolume: .*is read only by a host stack",
        ),
    ],
)
def test_a_bad_adoption_setting_names_its_file_key_and_value(
    stack: str, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(stack, stack_config(stack, {"depot:data": data}))


def test_the_cli_refuses_a_rollback_without_a_record(tmp_path: Path) -> None:
    ran = run_depot("migrate", "--stack", "dev", "--rollback", "--dir", str(tmp_path))
    assert ran.returncode == 2
    assert ran.stderr == (
        f"depot migrate: {tmp_path / migrate.RECORD_FILE}: no migration recorded here; give --dir\n"
    )


def test_the_cli_refuses_a_swarm_stack() -> None:
    ran = run_depot("migrate", "--stack", "cluster", "--dry-run")
    assert ran.returncode == 2
    assert "stack cluster runs on a swarm" in ran.stderr


class SwitchingHost(FakeHost):
    """A host on which every step of the switch works, up to the new deployment's ``up``."""

    def _answer(self, args: tuple[str, ...], stdin: str | None) -> tuple[str, str, int]:
        if args[0] == "exec" and "--field-separator" in args:
            return "public.jobs\t5000\t0123abcd\n", "", 0
        if args[:2] in {
            ("container", "stop"),
            ("container", "commit"),
            ("container", "rename"),
            ("container", "rm"),
            ("volume", "create"),
        } or (args[0] == "run" and "--version" not in args):
            return "", "", 0
        return super()._answer(args, stdin)

    def inspect(self, kind: str, *names: str) -> list[dict[str, Any]]:
        return [
            {**c, "Image": "sha256:old"}
            for c in self.containers
            if c["Id"] in names or c["Name"].lstrip("/") in names
        ]


def test_a_failed_up_goes_back_to_the_compose_depot_and_deletes_no_volume(
    settings: DepotSettings, new: migrate.NewDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = SwitchingHost([old_postgres(), old_dispatch()])
    ready = plan(host, settings, new)
    new.secrets_dir.mkdir(mode=0o700)
    (new.secrets_dir / "database_password.txt").write_text(CANARY + "\n")
    (new.secrets_dir / "database_password.txt").chmod(0o644)  # README's Compose workaround
    composed: list[list[str]] = []

    def compose(cli: DockerCli, command: list[str], *, timeout: float) -> str | None:
        composed.append(command)
        return "container depot-postgres is unhealthy" if len(composed) == 1 else None

    monkeypatch.setattr(migrate, "compose_run", compose)
    with pytest.raises(migrate.SwitchError) as failed:
        migrate.switch(host, ready, CANARY, wait_timeout=30)
    assert str(failed.value).startswith(
        "up failed (container depot-postgres is unhealthy); went back: the Compose depot depot "
        "runs again on depot_postgres-data"
    )
    new_up, old_up = composed
    assert new_up[-8:] == [
        "up", "--detach", "--wait", "--wait-timeout", "30", "--no-build", "--pull", "never",
    ]  # fmt: skip
    assert new_up[new_up.index("--file") + 1] == str(new.files[0])
    assert old_up[old_up.index("--project-name") + 1] == "depot"
    assert old_up[old_up.index("--file") + 1] == OLD_FILES
    assert old_up[old_up.index("--project-directory") + 1] == "/srv/depot"
    order = [args[:2] for args, _ in host.calls if args[0] in ("container", "exec", "run")]
    assert order.index(("container", "stop")) < order.index(("container", "commit"))
    calls = [args for args, _ in host.calls]
    stops = [args for args in calls if args[:2] == ("container", "stop")]
    assert [args[-1] for args in stops] == ["d" * 64, POSTGRES_ID]  # the writers, then postgres
    assert not [args for args in calls if args[:2] == ("volume", "rm") or "--volumes" in args]
    assert not [args for args in calls if any(CANARY in arg for arg in args)]
    assert migrate.Record.load(new.secrets_dir).state == "rolled back"


def test_the_downtime_counts_from_the_old_containers_stopped_and_from_the_request(
    settings: DepotSettings, new: migrate.NewDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writers' stop takes Docker's 10 s timeout (services that ignore SIGTERM keep serving
    # through it); the new depot is healthy 5 s after they stopped.
    now = [100.0]

    class SlowStop(SwitchingHost):
        def _answer(self, args: tuple[str, ...], stdin: str | None) -> tuple[str, str, int]:
            if args[:2] == ("container", "stop") and POSTGRES_ID not in args:
                now[0] += 10.0
            return super()._answer(args, stdin)

    host = SlowStop([old_postgres(), old_dispatch()])
    ready = plan(host, settings, new)
    new.secrets_dir.mkdir(mode=0o700)
    (new.secrets_dir / "database_password.txt").write_text(CANARY + "\n")
    (new.secrets_dir / "database_password.txt").chmod(0o644)

    def compose(cli: DockerCli, command: list[str], *, timeout: float) -> str | None:
        now[0] += 5.0
        return None

    monkeypatch.setattr(migrate, "compose_run", compose)
    outcome = migrate.switch(host, ready, CANARY, wait_timeout=30, clock=lambda: now[0])
    assert outcome.downtime == 15.0
    assert (
        "up: every service healthy; downtime 5.0 s from the old containers stopped, 15.0 s from "
        "the first stop request (+15.0 s)"
    ) in outcome.lines
