"""The cluster stack's stack file on a real single-node Swarm, and everything it leaves behind.

``SwarmDepot.start`` initialises a swarm (only on an engine that is in none), serves a local
``docker-registry`` on 127.0.0.1, pushes the stand-ins there, labels the node for postgres' data
and deploys ``depot compose --stack cluster`` with ``swarm_override``; ``close`` undoes each of
those steps that ran, in reverse, also when a test failed. Every wait is bounded in time.

The override (README "Docker Swarm", *Proven on a real swarm*): these machines' kernels have no
IPVS, so a VIP never answers and an ingress port never listens. It switches every service to
``endpoint_mode: dnsrr``, the console's port to host mode on a free port (80 is taken here, and a
host-mode port is bound on the node itself), and every image to its stand-in by digest. Nothing
else; ``override_changes`` lists what it changed, and a test holds it to that.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from depot.catalog import DEPOT_NETWORK, NetworkName, VolumeName
from depot.config import DepotSettings, RawConfig, load_settings
from depot.config.stack_file import encode
from depot.outputs.compose import dump
from depot.outputs.secret_files import SECRETS_DIR, init_secret_files
from depot.outputs.swarm_stack import STACK_NAME, stack_document
from depot.standins import STANDIN_OF
from tests.engine.harness import TIER_LABEL, depot_names_in_use, docker, tier_config

STACK = "cluster"
REGISTRY_BINARY = Path("/usr/bin/docker-registry")  # Debian's docker-registry
NAMESPACE_LABEL = "com.docker.stack.namespace"
# The swarm's own networks, created by `swarm init` and left behind by `swarm leave` (gwbridge).
SWARM_NETWORKS = ("ingress", "docker_gwbridge")
POLL_SECONDS = 0.5


def swarm_unavailable() -> str | None:
    """Why the swarm test cannot run on this engine (beyond the tier's own reasons), or None."""
    if not REGISTRY_BINARY.is_file():
        return f"{REGISTRY_BINARY} is missing (apt-get install docker-registry)"
    if shutil.which("age-keygen") is None:
        return "age-keygen is missing (apt-get install age): the backups' key is made with it"
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state != "inactive":
        return (
            f"this engine is already in a swarm (state {state!r}): the tier initialises and "
            "leaves a swarm of its own, and leaves any other alone"
        )
    clash = depot_names_in_use()
    if clash:
        return f"this engine already has {', '.join(clash)}: the stack's fixed names would clash"
    return None


def swarm_settings(directory: Path, recipient: str | None = None) -> DepotSettings:
    """The cluster stack with its optional profiles off, the console's host paths moved and its
    backups kept on the node — encrypted to ``recipient`` when given.

    The gpu and rtk profiles need a GPU node and a GNSS node; the console's bind folders are
    paths on the deploy host (``/srv/depot/…``) the tier must not create; the backups' S3 target
    is off this machine, where no test sends traffic (tests/engine/test_backup.py proves an
    off-host copy against a target of its own); the stack's example recipient has no private
    key anywhere, and a restore needs one: the tier makes its own (``age_keygen``).
    """
    # The console's paths and the backups' targets as the Compose tier moves them.
    config = tier_config(STACK, directory, {"depot:profiles": []})
    if recipient is not None:
        backup = {**json.loads(config.values["depot:backup"]), "recipients": [recipient]}
        config = RawConfig({**config.values, "depot:backup": encode(backup)}, config.secret_keys)
    return load_settings(STACK, config)


def swarm_override(
    document: Mapping[str, Any], images: Mapping[str, str], console_port: int
) -> dict[str, Any]:
    """The stack file as the tier deploys it: ``document`` with only the three switches above."""
    deployed = copy.deepcopy(dict(document))
    for name, service in deployed["services"].items():
        service["image"] = images[STANDIN_OF[name]]
        service["deploy"]["endpoint_mode"] = "dnsrr"
        for port in service.get("ports", []):
            port["mode"] = "host"
            port["published"] = console_port
    return deployed


def age_keygen(key: Path) -> str:
    """A new age identity in ``key`` (mode 0600, as the operator keeps one); its public key."""
    key.parent.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, check=True, timeout=30)
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], capture_output=True, text=True, check=True, timeout=30
    )
    return public.stdout.strip()


def override_changes(original: Any, changed: Any, path: str = "") -> set[str]:
    """Every leaf path where ``changed`` differs from ``original`` (``services.x.image``)."""
    if isinstance(original, dict) and isinstance(changed, dict):
        found: set[str] = set()
        for key in original.keys() | changed.keys():
            found |= override_changes(original.get(key), changed.get(key), f"{path}.{key}")
        return found
    if isinstance(original, list) and isinstance(changed, list) and len(original) == len(changed):
        found = set()
        for index, (before, after) in enumerate(zip(original, changed, strict=True)):
            found |= override_changes(before, after, f"{path}[{index}]")
        return found
    return set() if original == changed else {path.lstrip(".")}


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(
    what: str, ready: Callable[[], bool], timeout: float, poll: float = POLL_SECONDS
) -> float:
    """Poll ``ready`` every ``poll`` seconds until it holds; the seconds it took. Fails naming
    ``what`` at ``timeout``."""
    started = time.monotonic()
    while not ready():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)
    return time.monotonic() - started


def service_name(service: str) -> str:
    """The Swarm service ``docker stack deploy`` creates for ``service``: ``depot_discovery``."""
    return f"{STACK_NAME}_{service}"


def inspect_service(service: str) -> dict[str, Any]:
    inspected: list[dict[str, Any]] = json.loads(
        docker("service", "inspect", service_name(service)).stdout
    )
    return inspected[0]


def update_state(service: str) -> str:
    """The service's ``UpdateStatus.State``: ``updating``, ``completed``, ``rollback_completed``."""
    status = inspect_service(service).get("UpdateStatus") or {}
    return str(status.get("State", ""))


def running_tasks(service: str) -> list[dict[str, Any]]:
    """The service's tasks the orchestrator wants running and that are running."""
    listed = docker(
        "service", "ps", "--no-trunc", "--format", "{{.ID}}", service_name(service)
    ).stdout.split()
    if not listed:
        return []
    tasks: list[dict[str, Any]] = json.loads(docker("inspect", *listed).stdout)
    return [
        task
        for task in tasks
        if task["DesiredState"] == "running" and task["Status"]["State"] == "running"
    ]


def task_containers(service: str) -> list[str]:
    """The container ids of the service's running tasks."""
    return [task["Status"]["ContainerStatus"]["ContainerID"] for task in running_tasks(service)]


def container_health(container: str) -> str:
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container).stdout)
    return str((state.get("Health") or {}).get("Status", "none"))


def converged(service: str, replicas: int) -> bool:
    """``replicas`` tasks of ``service`` running, each container healthy."""
    containers = task_containers(service)
    return len(containers) == replicas and all(
        container_health(container) == "healthy" for container in containers
    )


def file_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class SwarmDepot:
    """The cluster stack deployed on a swarm this object made; ``close`` removes all of it."""

    directory: Path
    settings: DepotSettings
    standins: dict[str, str]
    identity: Path  # the age private key of the backups: the operator's, not the deployment's
    project: str = field(default_factory=lambda: f"depot-tier-swarm-{secrets.token_hex(4)}")
    document: dict[str, Any] = field(default_factory=dict)
    deployed: dict[str, Any] = field(default_factory=dict)
    pushed: dict[str, str] = field(default_factory=dict)  # stand-in name → image by digest
    console_port: int = 0
    node: str = ""
    setup_seconds: float = 0.0  # swarm, registry, pushes: everything before the deploy
    converge_seconds: float = 0.0
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _networks_before: set[str] = field(default_factory=set)
    _images_before: set[str] = field(default_factory=set)  # a crashed run's must not count

    @property
    def replicas(self) -> dict[str, int]:
        return {
            name: int(service["deploy"]["replicas"])
            for name, service in self.deployed["services"].items()
        }

    def start(self, converge_timeout: float) -> None:
        """Swarm, registry, pushed stand-ins, node label, stack: each undone by ``close``."""
        started = time.monotonic()
        self._networks_before = set(_listed("network", "ls", "--format", "{{.Name}}"))
        self._images_before = set(_registry_images())
        self._init_swarm()
        registry = self._serve_registry()
        self._push_standins(registry)
        self._write_stack()
        self._label_node()
        self.setup_seconds = time.monotonic() - started
        self._deploy(converge_timeout)

    def _init_swarm(self) -> None:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        self._cleanup.callback(self._leave_swarm)
        self.node = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()

    def _leave_swarm(self) -> None:
        docker("swarm", "leave", "--force", timeout=120, check=False)
        # `swarm leave` keeps the gateway bridge it created: the engine is left as found.
        # Its endpoints go a moment after `leave` returns: retried, bounded in count and time.
        for network in SWARM_NETWORKS:
            if network in self._networks_before:
                continue
            for _ in range(40):
                if docker("network", "rm", network, check=False).returncode == 0:
                    break
                present = docker("network", "ls", "--format", "{{.Name}}", check=False).stdout
                if network not in present.split():
                    break
                time.sleep(0.5)

    def _serve_registry(self) -> str:
        storage = self.directory / "registry"
        storage.mkdir()
        port = free_port()
        config = self.directory / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {storage}}}}}\n"
            f"http: {{addr: 127.0.0.1:{port}}}\n"
        )
        log = (self.directory / "registry.log").open("w")
        self._cleanup.callback(log.close)
        server = subprocess.Popen(
            [str(REGISTRY_BINARY), "serve", str(config)], stdout=log, stderr=log
        )
        self._cleanup.callback(stop_process, server)
        address = f"127.0.0.1:{port}"
        wait_until("the local registry answering /v2/", lambda: _answers(address), timeout=30)
        return address

    def _push_standins(self, registry: str) -> None:
        for standin, tag in self.standins.items():
            target = f"{registry}/{tag}"
            docker("tag", tag, target)
            self._cleanup.callback(docker, "image", "rm", target, check=False)
            docker("push", "--quiet", target, timeout=600)
            repo_digests = json.loads(
                docker("image", "inspect", "--format", "{{json .RepoDigests}}", target).stdout
            )
            repository = target.rsplit(":", 1)[0]
            by_digest = next(d for d in repo_digests if d.startswith(f"{repository}@"))
            # The node pulls it by digest: that reference is the tier's too, removed after.
            self._cleanup.callback(docker, "image", "rm", by_digest, check=False)
            self.pushed[standin] = by_digest

    def _label_node(self) -> None:
        for constraint in self._constraints():
            label = constraint.removeprefix("node.labels.").split("==")[0].strip()
            docker("node", "update", "--label-add", f"{label}=true", self.node)

    def _constraints(self) -> list[str]:
        return [
            constraint
            for service in self.document["services"].values()
            for constraint in service["deploy"].get("placement", {}).get("constraints", [])
        ]

    def _write_stack(self) -> None:
        self.document = stack_document(self.settings)
        self.console_port = free_port()
        self.deployed = swarm_override(self.document, self.pushed, self.console_port)
        (self.directory / "stack.yaml").write_text(dump(self.deployed))
        init_secret_files(self.directory / SECRETS_DIR)
        dist = self.directory / "console-dist"
        dist.mkdir(mode=0o755)
        (dist / "index.html").write_text("<h1>depot console</h1>\n")
        (self.directory / "sessions").mkdir(mode=0o755)

    def _deploy(self, converge_timeout: float) -> None:
        self._cleanup.callback(self._remove_stack)
        started = time.monotonic()
        docker(
            "stack",
            "deploy",
            "--resolve-image",
            "never",  # every image is named by digest already
            "--compose-file",
            str(self.directory / "stack.yaml"),
            STACK_NAME,
            timeout=180,
        )
        wait_until(
            "every service of the stack running its replicas, healthy",
            lambda: all(converged(name, n) for name, n in self.replicas.items()),
            converge_timeout,
        )
        self.converge_seconds = time.monotonic() - started

    def _remove_stack(self) -> None:
        docker("stack", "rm", STACK_NAME, timeout=120, check=False)
        wait_until(
            "the stack's containers and networks gone after `docker stack rm`",
            lambda: not self.leftovers(),
            timeout=120,
        )
        for volume in get_args(VolumeName):
            docker("volume", "rm", "--force", volume, check=False)
        for secret in _listed("secret", "ls", "--format", "{{.Name}}"):
            if secret.startswith(f"{STACK_NAME}_"):
                docker("secret", "rm", secret, check=False)

    def leftovers(self) -> list[str]:
        """Containers and networks of the stack (and the tier's clients) still on the engine."""
        return (
            _listed("ps", "-aq", "--filter", f"label={NAMESPACE_LABEL}={STACK_NAME}")
            + _listed("ps", "-aq", "--filter", f"label={TIER_LABEL}={self.project}")
            + [
                network
                for network in _listed("network", "ls", "--format", "{{.Name}}")
                if network in get_args(NetworkName)
            ]
        )

    def close(self) -> None:
        self._cleanup.close()

    def client(
        self,
        script: str,
        *,
        detach: bool = False,
        root_with_net_admin: bool = False,
        timeout: float = 60,
    ) -> str:
        """A busybox shell on ``depot-network`` running ``script``; its output, or its id.

        ``root_with_net_admin``: as root with ``NET_ADMIN``, to change its own routes.
        """
        admin = ["--user", "0", "--cap-add", "NET_ADMIN"] if root_with_net_admin else []
        result = docker(
            "run",
            *(["--detach"] if detach else ["--rm"]),
            *admin,
            "--label",
            f"{TIER_LABEL}={self.project}",
            "--network",
            DEPOT_NETWORK,
            "--entrypoint",
            "/bin/sh",
            self.standins["rust-service"],
            "-c",
            script,
            timeout=timeout,
            check=False,
        )
        return result.stdout.strip() if detach else result.stdout + result.stderr


def left_behind(depot: SwarmDepot) -> list[str]:
    """What of the swarm test is still on the engine: overlays, swarm networks, pushed images."""
    networks = docker("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout.splitlines()
    left = [
        name
        for name, driver in (line.split() for line in networks)
        if driver == "overlay" or (name in SWARM_NETWORKS and name not in depot._networks_before)
    ]
    left += [image for image in _registry_images() if image not in depot._images_before]
    return left + _listed("ps", "-aq", "--filter", f"label={TIER_LABEL}={depot.project}")


def _registry_images() -> list[str]:
    """Images named after a registry on this machine, as the tier's pushes are."""
    images = _listed("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    return [image for image in images if image.startswith("127.0.0.1:")]


def _listed(*args: str) -> list[str]:
    return docker(*args).stdout.split()


def _answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop_process(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """A server this tier started (registry, sftp): asked to stop, killed after ``grace`` s."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


@contextlib.contextmanager
def swarm_depot(
    standins: Mapping[str, str], directory: Path, converge_timeout: float
) -> Iterator[SwarmDepot]:
    """The cluster stack up and converged on a swarm of its own; the engine as found afterwards."""
    identity = directory / "operator" / "age-identity.txt"
    recipient = age_keygen(identity)
    depot = SwarmDepot(
        directory=directory,
        settings=swarm_settings(directory, recipient),
        standins=dict(standins),
        identity=identity,
    )
    try:
        depot.start(converge_timeout)
        yield depot
    finally:
        depot.close()
