"""``depot doctor``: what a stack needs from its host, checked before anything is created.

Each check gives findings, one line each: what is wrong and how to fix it, or what is fine, or
what cannot be checked from here and why. A problem makes the host not ready (``depot doctor``
exits 1; ``make up`` stops before ``pulumi up``).

Paths and ports are checked on this machine only when the Docker host is this machine (a local
socket); for another host the doctor asks its engine what an engine can say, and names the rest
as unchecked rather than guessing.
"""

from __future__ import annotations

import errno
import json
import re
import shlex
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from depot.catalog import longest_chain
from depot.config.settings import DepotSettings
from depot.exit_status import ExitStatus
from depot.host.docker import DockerCli, DockerError, last_line
from depot.model import ServiceDeployment, deployments, node_label

Status = Literal["ok", "problem", "warning", "unchecked"]
GIB = 1024**3

# The oldest engine that runs every service as the catalogue describes it, and why.
MINIMUM_ENGINE = (20, 10)
MINIMUM_ENGINE_REASON = (
    "the console binds port 80 without NET_BIND_SERVICE, which needs Engine 20.10's "
    "net.ipv4.ip_unprivileged_port_start=0 in containers"
)
# The API that carries a healthcheck's start_interval (Engine 25). An older engine ignores it
# (on 20.10, API 1.41, a container created with it runs without it, as through Compose): the
# depot deploys as before, but each first probe waits a whole interval.
START_INTERVAL_API = (1, 44)
# Free space the engine's data root needs: the pulled images, and the built ones with their
# build cache when this stack builds on that engine.
PULLED_IMAGES_GIB = 2
BUILT_IMAGES_GIB = 4
NVIDIA_HOOK = "nvidia-container-runtime-hook"


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    check: str  # docker, engine, api, gpu, crate, console, port, disk
    status: Status
    message: str

    def line(self) -> str:
        label = {"ok": "ok", "problem": "PROBLEM", "warning": "WARNING", "unchecked": "unchecked"}[
            self.status
        ]
        return f"{label:<9} {self.check}: {self.message}"


def diagnose(settings: DepotSettings, cli: DockerCli) -> list[Finding]:
    """Every finding for ``settings``' stack on the engine ``cli`` talks to."""
    running = deployments(settings)
    info, reached = _engine_info(cli)
    findings = [reached]
    if info is None:
        why = "Docker does not answer (see above)"
        findings.append(Finding("engine", "unchecked", why))
    else:
        findings.append(engine_version(info))
        findings.append(engine_api(cli, running))
        if settings.runtime == "swarm":
            findings.extend(swarm_state(settings, running, info, cli))
        findings.extend(gpu_runtime(settings, info, cli))
    findings.extend(crates(running))
    findings.extend(console_folders(running, cli))
    if settings.runtime == "swarm":
        findings.append(
            Finding(
                "port",
                "unchecked",
                "a swarm publishes through its ingress on every node; ports are not tried",
            )
        )
    else:
        findings.extend(published_ports(running, cli, engine_answers=info is not None))
    if info is not None:
        findings.append(disk_space(running, info, cli))
    return findings


def report(stack: str, findings: list[Finding]) -> tuple[str, ExitStatus]:
    """The findings, one line each, then the verdict; exit status 0 ready, 1 not ready."""
    problems = [f for f in findings if f.status == "problem"]
    unchecked = sum(f.status == "unchecked" for f in findings)
    lines = [f.line() for f in findings]
    aside = f"; {unchecked} not checked" if unchecked else ""
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        lines.append(f"depot doctor: stack {stack} is not ready: {count}{aside}")
    else:
        lines.append(f"depot doctor: stack {stack} is ready{aside}")
    return "".join(f"{line}\n" for line in lines), (
        ExitStatus.ATTENTION if problems else ExitStatus.OK
    )


# --- the engine ----------------------------------------------------------------------------


def _engine_info(cli: DockerCli) -> tuple[dict[str, Any] | None, Finding]:
    """``docker info`` of the stack's engine, and the finding that says whether it answered."""
    try:
        result = cli.run("info", "--format", "{{json .}}")
    except DockerError as error:
        return None, Finding("docker", "problem", f"{error}")
    info: dict[str, Any] | None = None
    if result.returncode == 0:
        try:
            info = json.loads(result.stdout)
        except ValueError:
            info = None
    if info is None or not info.get("ServerVersion"):
        # ssh's own words are the useful part of the CLI's long connection error.
        reason = last_line(result.stderr).rpartition("stderr=")[2] or "no answer"
        return None, Finding("docker", "problem", _unreachable(cli, reason))
    where = "this machine" if not cli.remote else cli.host
    return info, Finding(
        "docker", "ok", f"Docker Engine {info['ServerVersion']} answers at {cli.host} ({where})"
    )


def _unreachable(cli: DockerCli, reason: str) -> str:
    host = cli.host
    problem = f"no Docker engine answers at {host} ({reason})"
    if host.startswith("ssh://"):
        # The connection the CLI makes: the stack's ssh options, and the port as ssh takes it.
        target, _, port = host.removeprefix("ssh://").split("/", 1)[0].partition(":")
        ssh = shlex.join(["ssh", *cli.ssh_options, *(["-p", port] if port else []), target])
        return (
            f"{problem}: check that `{ssh} docker info` works without a prompt (key in "
            "your ssh agent, host in known_hosts, the user in the docker group there), or fix "
            "depot:docker.host"
        )
    if "permission denied" in reason.lower():
        return f"{problem}: add your user to the docker group (then log in again), or use sudo"
    if host.startswith("unix://"):
        return (
            f"{problem}: start Docker (`sudo systemctl start docker`), or point "
            "depot:docker.host at the engine the stack runs on"
        )
    return f"{problem}: start that engine or fix depot:docker.host"


def engine_version(info: dict[str, Any]) -> Finding:
    """The engine against ``MINIMUM_ENGINE``; a version it cannot read is a problem."""
    version = str(info.get("ServerVersion", ""))
    found = re.match(r"(\d+)\.(\d+)", version)
    least = ".".join(map(str, MINIMUM_ENGINE))
    if found is None:
        return Finding("engine", "problem", f"cannot read the engine's version {version!r}")
    if (int(found[1]), int(found[2])) < MINIMUM_ENGINE:
        return Finding(
            "engine",
            "problem",
            f"Docker Engine {version} is older than {least}: {MINIMUM_ENGINE_REASON}; upgrade it",
        )
    return Finding("engine", "ok", f"{version} is {least} or newer, as the stack needs")


def engine_api(cli: DockerCli, running: tuple[ServiceDeployment, ...]) -> Finding:
    """The engine's API version (``docker version``), and what an engine below 1.44 loses."""
    try:
        result = cli.run("version", "--format", "{{json .Server}}")
    except DockerError as error:
        return Finding("api", "unchecked", f"{error}")
    try:
        server = json.loads(result.stdout) if result.returncode == 0 else None
    except ValueError:
        server = None
    if not isinstance(server, dict):
        return Finding("api", "unchecked", "`docker version` gave no server version")
    return api_finding(server, running)


def api_finding(server: dict[str, Any], running: tuple[ServiceDeployment, ...]) -> Finding:
    """``docker version``'s server part against ``START_INTERVAL_API``: a warning below it."""
    version, api = str(server.get("Version", "")), str(server.get("ApiVersion", ""))
    found = re.fullmatch(r"(\d+)\.(\d+)", api)
    least = ".".join(map(str, START_INTERVAL_API))
    if found is None:
        return Finding("api", "unchecked", f"cannot read the engine's API version {api!r}")
    if (int(found[1]), int(found[2])) >= START_INTERVAL_API:
        return Finding(
            "api",
            "ok",
            f"Docker Engine {version} speaks API {api} ({least}+): healthchecks probe every "
            "second while a service starts (start_interval)",
        )
    floor, chain = longest_chain([d.spec for d in running], lambda spec: spec.healthcheck.interval)
    return Finding(
        "api",
        "warning",
        f"Docker Engine {version} speaks API {api}, older than {least} (Engine 25): it ignores "
        "the healthchecks' start_interval, so each first probe waits a whole interval and the "
        f"start order ({' → '.join(chain)}) takes at least {floor} s to turn healthy, as does "
        "every health-gated replace; the depot deploys as before (every wait covers a "
        "healthcheck's worst case; older Compose v2 CLIs refuse the export's start_interval on "
        "it, the one `make setup` installs does not). Upgrade to Engine 25 or newer for starts "
        "in seconds",
    )


def swarm_state(
    settings: DepotSettings,
    running: tuple[ServiceDeployment, ...],
    info: dict[str, Any],
    cli: DockerCli,
) -> Iterator[Finding]:
    """A swarm stack's engine is an active manager, and each pinned service has a labelled node."""
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    if state != "active":
        yield Finding(
            "swarm",
            "problem",
            f"the engine at {cli.host} is not in a swarm (state {state}): `docker swarm init` "
            "there, or join it to the depot's swarm; or set depot:runtime: host",
        )
        return
    if not swarm.get("ControlAvailable"):
        yield Finding(
            "swarm",
            "problem",
            f"the engine at {cli.host} is a worker, and services are created through a manager: "
            "point depot:docker.host at one",
        )
        return
    yield Finding("swarm", "ok", f"{cli.host} is a manager of an active swarm")
    for deployment in running:
        label = node_label(settings, deployment.spec.name)
        if label is None:
            continue
        listed = cli.run(
            "node", "ls", "--filter", f"node.label={label}=true", "--format", "{{.Hostname}}"
        )
        nodes = sorted(listed.stdout.split()) if listed.returncode == 0 else []
        if nodes:
            yield Finding("swarm", "ok", f"{deployment.name}: {label}=true on {', '.join(nodes)}")
        else:
            yield Finding(
                "swarm",
                "problem",
                f"{deployment.name}: no node has the label {label}=true, so it would never be "
                f"scheduled: `docker node update --label-add {label}=true <node>`",
            )


def gpu_runtime(settings: DepotSettings, info: dict[str, Any], cli: DockerCli) -> list[Finding]:
    """With the gpu profile on, the engine must hand GPUs to containers (NVIDIA's toolkit)."""
    if "gpu" not in settings.profiles:
        return []
    runtimes = sorted(info.get("Runtimes") or {})
    if "nvidia" in runtimes:
        return [Finding("gpu", "ok", "the engine has the NVIDIA runtime for splat-worker")]
    if not cli.remote and shutil.which(NVIDIA_HOOK):
        return [Finding("gpu", "ok", f"{NVIDIA_HOOK} is installed for splat-worker's GPUs")]
    return [
        Finding(
            "gpu",
            "problem",
            f"the gpu profile is on (splat-worker asks for every GPU), but the engine has no "
            f"NVIDIA runtime (runtimes: {', '.join(runtimes) or 'none'}): install the NVIDIA "
            "Container Toolkit on the Docker host, run `sudo nvidia-ctk runtime configure "
            "--runtime=docker` and restart Docker; or take gpu out of depot:profiles",
        )
    ]


def disk_space(
    running: tuple[ServiceDeployment, ...], info: dict[str, Any], cli: DockerCli
) -> Finding:
    """Free space where the engine keeps images, against what the stack pulls and builds."""
    needed = PULLED_IMAGES_GIB + (
        BUILT_IMAGES_GIB
        if any(d.build_context is not None and d.push is None for d in running)
        else 0
    )
    root = str(info.get("DockerRootDir") or "/var/lib/docker")
    if cli.remote or not Path(root).is_dir():
        return Finding(
            "disk",
            "unchecked",
            f"free space under {root} on {cli.host} cannot be read from here; the stack needs "
            f"about {needed} GiB there (`df -h {root}` on that host)",
        )
    free = shutil.disk_usage(root).free
    if free < needed * GIB:
        return Finding(
            "disk",
            "problem",
            f"{free / GIB:.1f} GiB free under {root}, and the stack's images need about "
            f"{needed} GiB: free space (`docker system prune` removes unused images and caches)",
        )
    return Finding(
        "disk", "ok", f"{free / GIB:.1f} GiB free under {root} (about {needed} GiB needed)"
    )


# --- this machine and the host ---------------------------------------------------------------


def crates(running: tuple[ServiceDeployment, ...]) -> Iterator[Finding]:
    """Each service built here has its crate: a folder with a ``Cargo.toml``.

    Builds read their context on the machine that runs ``pulumi up``, whatever the Docker host.
    """
    for deployment in running:
        context = deployment.build_context
        if context is None or not deployment.builds_a_crate:
            continue  # pulled, or built from this repository (the backup service)
        key = f"depot:build.contexts.{deployment.name}"
        where = Path(context.host)
        if not where.is_dir():
            yield Finding(
                "crate",
                "problem",
                f"{deployment.name}: its crate {context.written} ({key}) is not there: clone "
                f"the {deployment.name} repository to {where}, or point {key} at it",
            )
        elif not (where / "Cargo.toml").is_file():
            yield Finding(
                "crate",
                "problem",
                f"{deployment.name}: {context.written} ({key}) has no Cargo.toml: it is not the "
                f"{deployment.name} crate; point {key} at the folder that holds its Cargo.toml",
            )
        else:
            yield Finding("crate", "ok", f"{deployment.name}: {context.written}/Cargo.toml")


_CONSOLE_FIXES = {
    "console.distPath": "build the console there (its dist/ with index.html), or point {key} at "
    "its build",
    "console.sessionsPath": "create it (`sudo mkdir -p {path}`), or point {key} at a folder",
}


def console_folders(running: tuple[ServiceDeployment, ...], cli: DockerCli) -> Iterator[Finding]:
    """The console's content and sessions folders exist on the Docker host."""
    for deployment in running:
        for mount, bind in zip(deployment.bind_mounts, deployment.spec.binds, strict=True):
            key = f"depot:{bind.setting}"
            path = mount.source.host
            if cli.remote:
                yield Finding(
                    "console",
                    "unchecked",
                    f"{path} ({key}) is on {cli.host} and cannot be checked from here; make sure "
                    "it exists there",
                )
                continue
            fix = _CONSOLE_FIXES[bind.setting].format(key=key, path=path)
            folder = Path(path)
            if not folder.is_dir():
                what = "is not a folder" if folder.exists() else "does not exist"
                yield Finding("console", "problem", f"{path} ({key}) {what}: {fix}")
            elif bind.setting == "console.distPath" and not (folder / "index.html").is_file():
                yield Finding(
                    "console",
                    "problem",
                    f"{path} ({key}) has no index.html, so the console would serve nothing: {fix}",
                )
            else:
                yield Finding("console", "ok", f"{path} ({key})")


def published_ports(
    running: tuple[ServiceDeployment, ...], cli: DockerCli, *, engine_answers: bool
) -> Iterator[Finding]:
    """Each published port is free on its address, or already the depot's own."""
    for deployment in running:
        published = deployment.published
        if published is None:
            continue
        address, port = deployment.publish_address, published.published
        where = f"{deployment.name}: {address}:{port}"
        holders = _publishers(cli, port) if engine_answers else []
        ours = deployment.spec.container_name
        if holders == [ours]:
            yield Finding("port", "ok", f"{where} is already {ours}'s (the depot runs)")
            continue
        others = [name for name in holders if name != ours]
        fix = (
            f"stop it, or publish {deployment.name} on another port "
            f"(depot:publish.ports.{deployment.name})"
        )
        if others:
            yield Finding(
                "port", "problem", f"{where} is taken by container {', '.join(others)}: {fix}"
            )
            continue
        if cli.remote and not engine_answers:
            yield Finding("port", "unchecked", f"{where}: Docker does not answer (see above)")
            continue
        if cli.remote:
            yield Finding(
                "port",
                "unchecked",
                f"{where}: no container on {cli.host} publishes it; other processes there "
                "cannot be checked from here",
            )
            continue
        taken = _bind_fails(address, port)
        if taken == errno.EADDRINUSE:
            yield Finding("port", "problem", f"{where} is taken by another process: {fix}")
        elif taken == errno.EACCES:
            yield Finding(
                "port",
                "unchecked",
                f"{where}: only root may bind a port below 1024 here, so it cannot be tried; "
                "Docker binds it as root",
            )
        elif taken == errno.EADDRNOTAVAIL:
            yield Finding(
                "port",
                "problem",
                f"{where}: {address} is not an address of this machine: use one it has "
                "(depot:publish.address)",
            )
        elif taken:
            yield Finding(
                "port", "problem", f"{where} cannot be bound: {errno.errorcode.get(taken, taken)}"
            )
        else:
            yield Finding("port", "ok", f"{where} is free")


def _publishers(cli: DockerCli, port: int) -> list[str]:
    """Running containers that publish ``port`` on the engine."""
    try:
        listed = cli.run("ps", "--filter", f"publish={port}", "--format", "{{.Names}}")
    except DockerError:
        return []
    return sorted(listed.stdout.split()) if listed.returncode == 0 else []


def _bind_fails(address: str, port: int) -> int:
    """0 when ``address:port`` can be bound for TCP now, else the errno that says why not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError as error:
            return error.errno or -1
    return 0
