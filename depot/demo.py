"""``make demo``: the depot on this machine's Docker Engine, clearly labelled a demo.

What runs is the dev stack's Compose export (``depot compose --stack dev``) with the stand-in
override the engine tier uses (depot/standins.py): real postgres and nginx from Debian's
packages, the real backup service, stand-ins for the services whose source is not here, and the
dev stack's topology, hardening, healthchecks and networks. No Pulumi CLI is used.

It is one Compose project, ``depot-demo``, with a folder of its own (the export, the override,
fresh secret files, the console's placeholder page). ``down`` removes only what carries that
project's label, and the folder only when it holds the demo's marker file. The export keeps the
depot's fixed names (``depot-postgres``, ``depot-network``, ``postgres-data`` …), so the demo
refuses to start where anything else already holds one: a real depot is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from depot.catalog import SERVICES
from depot.config import DepotSettings, RawConfig, load_settings
from depot.config.stack_file import encode
from depot.outputs.compose import compose_document, compose_yaml
from depot.outputs.secret_files import SECRETS_DIR, init_secret_files, secret_file_name
from depot.standins import (
    STANDIN_OF,
    BuildReport,
    StandinBuildError,
    StandinUnavailableError,
    compose_cli,
    ensure_standins,
    override_yaml,
    standin_stack_config,
    standin_summary,
)
from depot.tools.image_budget import engine_unavailable

PROJECT = "depot-demo"
STACK = "dev"
ADDRESS = "127.0.0.1"  # every published port, whatever the stack file says: this machine only
PROJECT_LABEL = "com.docker.compose.project"
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
HELPER_LABEL = "depot.demo"  # on the demo's own short-lived helper containers, for the sweep
MARKER = "DEPOT-DEMO"  # in the demo's folder: `down` removes no folder without it
COMMAND_TIMEOUT = 120  # seconds, for one docker command but `up`
WIDTH = 100  # the summary's lines
NEEDS = (
    "Needs: Linux with Docker Engine 20.10+ (`docker info` answers), `make setup` (the Compose "
    "CLI), and once, to build the stand-in images: root and debootstrap on Debian "
    "(sudo apt-get install debootstrap; sudo make demo-images)."
)
MAKE_UP_DIFFERS = (
    "`make up` is the real thing: `pulumi up` of the dev stack (needs the Pulumi CLI), the "
    "services built from their crates (../discovery, ../dispatch) and the console's build "
    "(../console/dist), the pinned postgres, nginx and grafana images, passwords generated once "
    "and kept in Pulumi state, and postgres-data retained when the stack is destroyed."
)
CONSOLE_PAGE = """<!doctype html>
<title>depot demo</title>
<h1>depot demo</h1>
<p>A placeholder for the console's build, served by real nginx with the console's settings.
discovery, dispatch and grafana are stand-ins that answer their health checks; postgres and
the backup service are real. <code>make demo-down</code> removes it all.</p>
"""


class DemoError(Exception):
    """The demo cannot run (or be removed) here: one line that says why."""


@dataclass(frozen=True)
class EngineObject:
    """A container, network or volume on the engine, and the Compose project it belongs to."""

    kind: str
    name: str
    project: str  # "" when it carries no project label


@dataclass(frozen=True)
class Endpoint:
    """Where one started service answers on this machine (``url`` None: not published)."""

    service: str
    url: str | None
    replaces: str  # the image ``make up`` runs
    standin: str  # what runs in its place


def demo_config(directory: Path) -> RawConfig:
    """The dev stack as the engine tier runs it, every published port on 127.0.0.1."""
    config = standin_stack_config(STACK, directory)
    values = dict(config.values)
    if "depot:publish" in values:
        values["depot:publish"] = encode(
            {**json.loads(values["depot:publish"]), "address": ADDRESS}
        )
    return RawConfig(values, config.secret_keys)


def demo_settings(directory: Path) -> DepotSettings:
    """``demo_config`` validated, as ``pulumi up`` would validate it."""
    return load_settings(STACK, demo_config(directory))


def started(export: Mapping[str, Any]) -> list[str]:
    """The services ``up`` starts: the export's, but those behind a Compose profile."""
    return [name for name, service in export["services"].items() if "profiles" not in service]


def endpoints(export: Mapping[str, Any]) -> list[Endpoint]:
    """Each started service, where it answers (its health path), and what stands in for it."""
    found = []
    for name in started(export):
        service = export["services"][name]
        url = None
        for port in service.get("ports", ()):
            if port.get("host_ip") != ADDRESS:
                raise DemoError(
                    f"{name} would publish port {port['published']} on "
                    f"{port.get('host_ip', 'every address')}: the demo publishes on {ADDRESS} only"
                )
            url = f"http://{ADDRESS}:{port['published']}{_health_path(service, port['target'])}"
        found.append(Endpoint(name, url, service["image"], standin_summary(STANDIN_OF[name])))
    return found


def _health_path(service: Mapping[str, Any], port: int) -> str:
    """The path the service's own healthcheck asks on ``port`` (``/health``), else ``/``."""
    for argument in service.get("healthcheck", {}).get("test", ()):
        parts = urlsplit(str(argument))
        if parts.scheme == "http" and parts.port == port:
            return parts.path or "/"
    return "/"


def fixed_names(export: Mapping[str, Any]) -> dict[str, set[str]]:
    """The names the export gives what it creates, whatever the project: by kind."""
    services = [export["services"][name] for name in started(export)]
    return {
        "container": {service["container_name"] for service in services},
        "network": {network["name"] for network in export.get("networks", {}).values()},
        "volume": {volume["name"] for volume in export.get("volumes", {}).values()},
    }


def collisions(objects: Iterable[EngineObject], names: Mapping[str, set[str]]) -> list[str]:
    """What holds one of ``names`` on the engine and is not the demo's."""
    return sorted(
        f"{o.kind} {o.name}" for o in objects if o.name in names[o.kind] and o.project != PROJECT
    )


def ports_in_use(endpoints_: Iterable[Endpoint]) -> list[str]:
    """``127.0.0.1:PORT`` of each published port something on this machine already listens on."""
    taken = []
    for endpoint in endpoints_:
        if endpoint.url is None:
            continue
        port = urlsplit(endpoint.url).port
        assert port is not None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ADDRESS, port))
            except OSError:
                taken.append(f"{ADDRESS}:{port} ({endpoint.service})")
    return taken


def summary(
    endpoints_: Sequence[Endpoint], directory: Path, seconds: float, report: BuildReport
) -> str:
    """What ``make demo`` prints once every service is healthy. Never a secret's value."""
    built = (
        "built " + ", ".join(f"{name} {took:.0f} s" for name, took in report.seconds.items())
        if report.seconds
        else "all cached"
    )
    name_width = max(len(e.service) for e in endpoints_)
    where = {e.service: e.url or "not published (its networks only)" for e in endpoints_}
    where_width = max(len(text) for text in where.values())
    rows = [f"  {'service':<{name_width}}  {'where it answers':<{where_width}}  instead of"]
    for e in endpoints_:
        rows.append(f"  {e.service:<{name_width}}  {where[e.service]:<{where_width}}  {e.replaces}")
        rows.append(f"  {'':<{name_width}}  {e.standin}")
    paragraphs = [
        f"DEMO: the depot's dev stack on stand-in images, every service healthy, ready in "
        f"{seconds:.0f} s (stand-in images: {built}). It is `depot compose --stack dev` with "
        f"the engine tier's stand-in override, run as Compose project {PROJECT}: no Pulumi CLI "
        "needed, none used.",
        "\n".join(rows),
        "Real: postgres and nginx (Debian's packages), the backup service, and the dev stack's "
        "topology, hardening, healthchecks and networks. Stand-ins: discovery, dispatch and "
        "grafana (they answer their health checks, nothing more) and the console's page.",
        f"Its files (the export, the override, fresh secret files, mode 0600): {directory}",
        MAKE_UP_DIFFERS,
        "Take it down, volumes included: make demo-down",
    ]
    wrapped = [
        p if p.startswith("  ") else textwrap.fill(p, WIDTH, break_on_hyphens=False)
        for p in paragraphs
    ]
    return "\n\n".join(wrapped) + "\n"


def docker(
    *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``docker args``; with ``check``, a failure is a ``DemoError`` with docker's last line."""
    result = subprocess.run(  # noqa: S603 - fixed subcommands, names the demo chose
        ["docker", *args],  # noqa: S607 - docker from PATH, as a user runs it
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DemoError(f"`docker {' '.join(args[:2])}` failed: {reason}")
    return result


def engine_objects() -> list[EngineObject]:
    """Every container, network and volume on the engine, with its Compose project label."""
    template = f'{{{{.Name}}}}\t{{{{.Label "{PROJECT_LABEL}"}}}}'
    listings = {
        "container": ("ps", "--all", "--format", template.replace(".Name", ".Names", 1)),
        "network": ("network", "ls", "--format", template),
        "volume": ("volume", "ls", "--format", template),
    }
    objects = []
    for kind, command in listings.items():
        for line in docker(*command).stdout.splitlines():
            name, _, project = line.partition("\t")
            objects.append(EngineObject(kind, name, project))
    return objects


def _prerequisites() -> str:
    """The Compose CLI, once the engine answers; else a ``DemoError`` saying what is missing."""
    reason = engine_unavailable()
    if reason:
        raise DemoError(f"{reason}. {NEEDS}")
    cli = compose_cli()
    if cli is None:
        raise DemoError(f"the docker-compose CLI is not installed. {NEEDS}")
    return cli


def up(directory: Path) -> str:
    """Start the demo (or leave a running one as it is); returns what to print."""
    cli = _prerequisites()
    directory = directory.absolute()
    started_at = time.monotonic()
    settings = demo_settings(directory)
    # Its files live in its own folder, not at the project root: host paths absolute.
    export = compose_document(settings, absolute_binds=True)
    served = endpoints(export)
    objects = engine_objects()
    clash = collisions(objects, fixed_names(export))
    if clash:
        raise DemoError(
            f"this engine already has {', '.join(clash)}, not the demo's: the demo uses the "
            "depot's fixed names and never touches another depot; nothing was started"
        )
    fresh = not any(o.project == PROJECT for o in objects)
    if fresh:
        taken = ports_in_use(served)
        if taken:
            raise DemoError(f"{', '.join(taken)} already in use; nothing was started")
    else:
        _check_running_from(directory)
    images, report = _standin_images()
    if fresh:
        _fresh_folder(directory)
    _lay_out(directory, settings, export, images, fresh=fresh)
    _compose(cli, directory, "up", *_up_arguments(export), timeout=_wait_timeout(export) + 60)
    return summary(served, directory, time.monotonic() - started_at, report)


def _standin_images() -> tuple[dict[str, str], BuildReport]:
    """The stand-ins' tags, built where missing; a ``DemoError`` says what building needs."""
    try:
        return ensure_standins()
    except StandinUnavailableError as unavailable:
        raise DemoError(
            f"the stand-in images are not built and cannot be built here: {unavailable}. {NEEDS}"
        ) from None
    except StandinBuildError as failed:
        lines = str(failed).strip().splitlines()  # the command, then the end of its output
        raise DemoError(f"{lines[0]} {lines[-1]}" if len(lines) > 1 else lines[0]) from None


def _check_running_from(directory: Path) -> None:
    """A running demo is used again only from its own folder, with its secret files."""
    containers = docker(
        "ps", "--all", "--filter", f"label={PROJECT_LABEL}={PROJECT}", "--format",
        f'{{{{.Label "{WORKING_DIR_LABEL}"}}}}',
    ).stdout.splitlines()  # fmt: skip
    elsewhere = sorted({folder for folder in containers if folder != str(directory)})
    if elsewhere:
        raise DemoError(
            f"the demo runs from {elsewhere[0]}, not {directory}: make demo-down first "
            f"(or DEMO_DIR={elsewhere[0]})"
        )
    if not demo_folder(directory) or not (directory / SECRETS_DIR).is_dir():
        raise DemoError(
            f"the demo's containers or volumes are on the engine but its folder {directory} "
            "is gone (its passwords with it): make demo-down, then make demo"
        )


def demo_folder(directory: Path) -> bool:
    """True for a folder of this user's that holds the demo's marker (and is no symbolic link).

    The default folder is in /var/tmp, where anyone may create a folder of that name first.
    """
    try:
        status = directory.lstat()
    except FileNotFoundError:
        return False
    return (
        stat.S_ISDIR(status.st_mode)
        and status.st_uid == os.getuid()
        and (directory / MARKER).is_file()
    )


def _fresh_folder(directory: Path) -> None:
    """An empty folder for a demo that starts from nothing: never someone else's."""
    if os.path.lexists(directory):
        if not demo_folder(directory):
            raise DemoError(
                f"{directory} exists and is not this user's demo folder (no {MARKER} file, "
                "another owner or a symbolic link): remove it or choose another DEMO_DIR"
            )
        shutil.rmtree(directory)  # a demo folder no demo on the engine uses: its old passwords
    directory.mkdir(mode=0o700, parents=True)
    directory.chmod(0o700)
    (directory / MARKER).write_text(f"The folder of `make demo` (Compose project {PROJECT}).\n")


def _lay_out(
    directory: Path,
    settings: DepotSettings,
    export: Mapping[str, Any],
    images: Mapping[str, str],
    *,
    fresh: bool,
) -> None:
    """The export, the override, the console's folders and (fresh only) the secret files."""
    (directory / "compose.yaml").write_text(compose_yaml(settings, absolute_binds=True))
    (directory / "override.yaml").write_text(override_yaml(export, images))
    for folder in ("console-dist", "sessions"):
        (directory / folder).mkdir(mode=0o755, exist_ok=True)
    (directory / "console-dist" / "index.html").write_text(CONSOLE_PAGE)
    if fresh:
        _new_secret_files(directory / SECRETS_DIR, images)


def _new_secret_files(secrets: Path, images: Mapping[str, str]) -> None:
    """``depot secrets init``'s files (0600, folder 0700), each handed to its reader's uid.

    Outside Swarm, Compose bind-mounts the files with their host owner and mode, so postgres
    (uid 70) and grafana (472) could not read a 0600 file of this user's. Instead of the
    README's ``chmod 0644``, each file goes to its reader, still 0600, by a helper container
    (this user may run the engine without being root); the folder stays this user's, 0700.
    """
    problems = [r for r in init_secret_files(secrets) if r.problem]
    if problems:
        raise DemoError(f"{secrets / problems[0].name}: {problems[0].problem}")
    owners: dict[int, list[str]] = {}
    for spec in SERVICES:
        for secret in spec.secret_files:
            path = secrets / secret_file_name(secret.secret)
            if path.is_file() and secret.owner is not None:
                owners.setdefault(secret.owner, []).append(f"/secrets/{path.name}")
    for owner, files in owners.items():
        docker(
            "run", "--rm", "--network", "none", "--label", f"{HELPER_LABEL}={PROJECT}",
            "--user", "0:0", "--entrypoint", "chown", "--volume", f"{secrets}:/secrets",
            images["postgres"], f"{owner}:{owner}", *dict.fromkeys(files),
        )  # fmt: skip


def _up_arguments(export: Mapping[str, Any]) -> list[str]:
    return [
        "--detach",
        "--wait",
        "--wait-timeout",
        str(_wait_timeout(export)),
        "--pull",
        "never",
    ]


def _wait_timeout(export: Mapping[str, Any]) -> int:
    """A bound on ``up --wait``: every started service's own health wait, one after another."""
    names = set(started(export))
    return sum(spec.healthcheck.wait_timeout for spec in SERVICES if spec.name in names)


def _compose(cli: str, directory: Path, *args: str, timeout: float) -> None:
    command = [
        cli,
        "--project-name",
        PROJECT,
        "--project-directory",
        str(directory),
        "--file",
        str(directory / "compose.yaml"),
        "--file",
        str(directory / "override.yaml"),
        *args,
    ]
    result = subprocess.run(  # noqa: S603 - the Compose CLI with the demo's own files
        command, capture_output=True, text=True, check=False, timeout=timeout
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DemoError(f"`docker compose {args[0]}` failed: {reason} (make demo-down cleans up)")


def down(directory: Path) -> str:
    """Remove every container, network and volume of the demo's project, then its folder."""
    directory = directory.absolute()
    if engine_unavailable() is None:
        removed = _remove_project()
    elif directory.exists():
        raise DemoError(f"{engine_unavailable()}: the demo's containers cannot be removed")
    else:
        removed = {}
    lines = [
        f"removed {len(names)} {kind}s of {PROJECT}: {', '.join(sorted(names))}"
        for kind, names in removed.items()
        if names
    ]
    if demo_folder(directory):
        shutil.rmtree(directory)
        lines.append(f"removed {directory}")
    elif os.path.lexists(directory):
        lines.append(f"left {directory}: not this user's demo folder (no {MARKER} file in it)")
    return "\n".join(lines or [f"no demo on this engine ({PROJECT}); nothing removed"]) + "\n"


def _remove_project() -> dict[str, list[str]]:
    """Stop and delete what carries the demo's labels, and nothing else; by kind, what went."""
    labels = (f"label={PROJECT_LABEL}={PROJECT}", f"label={HELPER_LABEL}={PROJECT}")
    containers = [
        name
        for label in labels
        for name in docker(
            "ps", "--all", "--filter", label, "--format", "{{.Names}}"
        ).stdout.split()
    ]
    if containers:
        # `docker stop` waits each container's own stop grace period (postgres: a clean stop).
        docker("stop", *containers, timeout=COMMAND_TIMEOUT + 60)
        docker("rm", "--volumes", *containers)
    removed = {"container": containers}
    for kind in ("network", "volume"):
        names = docker(kind, "ls", "--filter", labels[0], "--format", "{{.Name}}").stdout.split()
        if names:
            docker(kind, "rm", *names)
        removed[kind] = names
    return removed


def default_directory() -> Path:
    """Outside the checkout, so the export's relative paths (``./secrets``) are the demo's own.

    Under /var/tmp (kept across reboots, as the demo's volumes are), one per user; a folder
    there that is not this user's own demo folder is refused, never used (``demo_folder``).
    """
    return Path("/var/tmp") / f"depot-demo-{os.getuid()}"  # noqa: S108 - checked before use


def images() -> str:
    """Build the stand-in images where missing (the step that needs root); returns the report."""
    reason = engine_unavailable()
    if reason:
        raise DemoError(f"{reason}. {NEEDS}")
    tags, report = _standin_images()
    built = ", ".join(f"{name} {took:.0f} s" for name, took in report.seconds.items())
    return (
        f"stand-in images {'built: ' + built if built else 'all cached'}; "
        f"`make demo` can now run as any user of this engine.\n"
        + "".join(f"  {tag}\n" for tag in sorted(tags.values()))
    )


# Each action, the make target that runs it (what its messages start with), and what it does.
ACTIONS: dict[str, tuple[str, Callable[[Path], str]]] = {
    "up": ("make demo", up),
    "down": ("make demo-down", down),
    "images": ("make demo-images", lambda _directory: images()),
}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m depot.demo up|down|images [--dir DIR]``: 0 done, 1 refused or failed."""
    parser = argparse.ArgumentParser(
        prog="python -m depot.demo",
        description="The depot on this machine's Docker Engine, as a demo (make demo).",
        epilog="Example: make demo; make demo-down",
    )
    parser.add_argument("action", choices=tuple(ACTIONS))
    parser.add_argument("--dir", type=Path, default=None, help="the demo's folder")
    args = parser.parse_args(argv)
    directory = args.dir or default_directory()
    target, action = ACTIONS[args.action]
    try:
        output = action(directory)
    except (DemoError, OSError, subprocess.TimeoutExpired) as error:
        print(f"{target}: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
