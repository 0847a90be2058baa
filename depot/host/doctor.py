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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from depot.catalog import longest_chain
from depot.config.settings import DepotSettings
from depot.exit_status import ExitStatus
from depot.host.cluster import (
    GUIDE,
    SwarmNode,
    SwarmTask,
    depot_service,
    read_nodes,
    read_services,
    read_tasks,
)
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
            state = list(swarm_state(settings, running, info, cli))
            findings.extend(state)
            if all(f.status == "ok" for f in state[:1]):
                findings.extend(cluster_findings(settings, running, cli))
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


# --- the cluster: nodes, managers, labels, engines, services, images --------------------------

IMAGE_ERRORS = ("no such image", "pull access denied", "manifest unknown", "unauthorized",
                "not found", "toomanyrequests", "failed to resolve reference")  # fmt: skip
MIN_MANAGERS = 3


def cluster_findings(
    settings: DepotSettings, running: tuple[ServiceDeployment, ...], cli: DockerCli
) -> list[Finding]:
    """The swarm's nodes and the depot's services on them, read through the manager ``cli``."""
    nodes = read_nodes(cli)
    services = {
        name: service
        for service in read_services(cli)
        if (name := depot_service(str(service["Spec"]["Name"]))) is not None
    }
    deployed = {d.name: d for d in running if d.name in services}
    tasks = read_tasks(cli, [str(services[name]["Spec"]["Name"]) for name in deployed])
    return [
        *manager_quorum(nodes),
        *node_states(nodes),
        *label_homes(settings, running, nodes),
        *engine_versions(nodes),
        *service_health(
            {name: _replicas(services[name]) for name in deployed}, tasks, bool(services)
        ),
        *image_reach(tasks, bool(deployed)),
    ]


def _replicas(service: dict[str, Any]) -> int:
    mode = service["Spec"].get("Mode") or {}
    return int((mode.get("Replicated") or {}).get("Replicas", 1))


def manager_quorum(nodes: list[SwarmNode]) -> Iterator[Finding]:
    """An odd number of managers, at least three, all reachable: Raft needs a majority."""
    managers = [node for node in nodes if node.manager]
    count = len(managers)
    majority = count // 2 + 1
    if count < MIN_MANAGERS:
        lose = "losing it stops" if count == 1 else "losing either stops"
        yield Finding(
            "managers",
            "problem",
            f"{count} manager{'s' if count != 1 else ''} ({_names(managers)}): {lose} every "
            f"change to the swarm (Raft needs a majority, {majority} of {count}): promote nodes "
            f"(`docker node promote <node>`) to 3 managers, each on a machine of its own "
            f"({GUIDE})",
        )
    elif count % 2 == 0:
        yield Finding(
            "managers",
            "problem",
            f"{count} managers: an even count tolerates no more lost managers than "
            f"{count - 1} do ({majority} of {count} must stay) and splits worse: promote or "
            f"demote one for {count + 1} or {count - 1}",
        )
    else:
        yield Finding(
            "managers",
            "ok",
            f"{count} managers ({_names(managers)}): the swarm keeps a leader with "
            f"{count - majority} of them lost",
        )
    for manager in managers:
        if not manager.reachable:
            yield Finding(
                "managers",
                "problem",
                f"manager {manager.hostname} is unreachable: {majority} of {count} must reach "
                f"each other for the swarm to keep its leader; bring it back, or if it is lost "
                f"for good: `docker node demote {manager.hostname} && docker node rm --force "
                f"{manager.hostname}`, then join a new manager ({GUIDE})",
            )


def node_states(nodes: list[SwarmNode]) -> Iterator[Finding]:
    """Every node ready and active; a down one is named with what it means."""
    up = [node for node in nodes if node.up]
    if up:
        yield Finding("nodes", "ok", f"{len(up)} ready: {_names(up)}")
    for node in nodes:
        if node.up:
            continue
        if node.state != "ready":
            yield Finding(
                "nodes",
                "problem",
                f"{node.hostname} is {node.state}: its tasks are started on other nodes where "
                "their constraints allow, and a service pinned to it cannot run; bring it back, "
                f"or remove it (`docker node rm --force {node.hostname}`)",
            )
        else:
            yield Finding(
                "nodes",
                "unchecked",
                f"{node.hostname} is ready but {node.availability}: it runs no new task",
            )


def label_homes(
    settings: DepotSettings, running: tuple[ServiceDeployment, ...], nodes: list[SwarmNode]
) -> Iterator[Finding]:
    """Each pinned service's label on a node that is up; a data label on exactly one node."""
    for deployment in running:
        label = node_label(settings, deployment.spec.name)
        if label is None:
            continue
        holders = [node for node in nodes if node.labels.get(label) == "true"]
        if not holders:
            continue  # said by the swarm check above
        where = f"{deployment.name}: {label}=true"
        if not any(node.up for node in holders):
            verb = "is" if len(holders) == 1 else "are"
            yield Finding(
                "labels",
                "problem",
                f"{where} is only on {_names(holders)}, which {verb} not up: "
                f"{deployment.name} cannot run anywhere. If the node is lost for good, "
                f"move the label to another node, redeploy and restore the newest off-host "
                f'backup ({GUIDE}, "The data node lost for good")',
            )
        elif deployment.spec.volumes and len(holders) > 1:
            yield Finding(
                "labels",
                "problem",
                f"{where} is on {len(holders)} nodes ({_names(holders)}): its volume is local to "
                f"one node, and a task moved to another would start on an empty one; keep the "
                "label on one node",
            )
        else:
            yield Finding("labels", "ok", f"{where} on {_names(holders)}")


def engine_versions(nodes: list[SwarmNode]) -> Iterator[Finding]:
    """Every node's engine at least ``MINIMUM_ENGINE``, and one major version across them."""
    least = ".".join(map(str, MINIMUM_ENGINE))
    versions: dict[str, list[SwarmNode]] = {}
    for node in nodes:
        versions.setdefault(node.engine or "unknown", []).append(node)
    for version, holders in sorted(versions.items()):
        found = re.match(r"(\d+)\.(\d+)", version)
        if found is None or (int(found[1]), int(found[2])) < MINIMUM_ENGINE:
            yield Finding(
                "engines",
                "problem",
                f"{_names(holders)} run{'s' if len(holders) == 1 else ''} Docker Engine "
                f"{version}, not {least} or newer: {MINIMUM_ENGINE_REASON}; upgrade "
                f"{'it' if len(holders) == 1 else 'them'}",
            )
    majors = {version.split(".")[0] for version in versions}
    if len(majors) > 1:
        listed = "; ".join(f"{v} on {_names(n)}" for v, n in sorted(versions.items()))
        yield Finding(
            "engines",
            "problem",
            f"the nodes run different engines ({listed}): finish the upgrade, one node at a "
            "time (drain it first); a service may use only what its oldest node supports",
        )
    elif versions:
        yield Finding("engines", "ok", f"{', '.join(sorted(versions))} on every node")


def service_health(
    replicas: dict[str, int], tasks: list[SwarmTask], stack_deployed: bool
) -> Iterator[Finding]:
    """Each deployed service runs its replicas; a short one says why its tasks do not run."""
    if not stack_deployed:
        yield Finding("services", "unchecked", "the stack is not deployed on this swarm yet")
        return
    for service, wanted in sorted(replicas.items()):
        own = [task for task in tasks if depot_service(task.service) == service]
        runs = sum(task.desired == "running" and task.state == "running" for task in own)
        if runs >= wanted:
            yield Finding("services", "ok", f"{service}: {runs}/{wanted} running")
            continue
        waiting = [t.error for t in own if t.desired == "running" and t.error]
        why = f": {waiting[0]}" if waiting else ""
        yield Finding("services", "problem", f"{service}: {runs}/{wanted} running{why}")


def image_reach(tasks: list[SwarmTask], stack_deployed: bool) -> Iterator[Finding]:
    """A task a node could not get its image for; else what the tasks prove, and no more."""
    if not stack_deployed:
        yield Finding(
            "images",
            "unchecked",
            "a manager cannot list another node's images: once deployed, a node that cannot "
            "pull one shows it in its tasks, which this check reads",
        )
        return
    failed: dict[tuple[str, str], str] = {}
    for task in tasks:
        if any(marker in task.error.lower() for marker in IMAGE_ERRORS):
            failed.setdefault((task.node or "a node", task.image.split("@")[0]), task.error)
    for (node, image), error in sorted(failed.items()):
        yield Finding(
            "images",
            "problem",
            f"{node} cannot get {image}: {error}; log that node in to the registry (or "
            "deploy with registry auth) and check it reaches the registry",
        )
    if not failed:
        nodes = sorted({task.node for task in tasks if task.node and task.state == "running"})
        yield Finding(
            "images",
            "ok",
            f"every task got its image on its node ({', '.join(nodes) or 'none yet'}); a "
            "node that has run none is proven when it first does",
        )


def _names(nodes: Iterable[SwarmNode]) -> str:
    return ", ".join(node.hostname for node in nodes)


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
