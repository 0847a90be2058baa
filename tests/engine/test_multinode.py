"""The cluster stack on a real three-node Swarm: placement, overlay traffic and faults.

One cluster for the module (``tests.engine.multinode``), the stack file ``depot compose --stack
cluster`` writes deployed on it with the single-node swarm test's override (dnsrr, host-mode
console port, stand-in images), then driven through the faults in file order: a node without
data lost and back, the data node cut off and healed, the data node lost for good and postgres
brought back on another node from the newest off-host backup, and quorum lost. Every figure is
printed in the tier's summary and bounded here. Swarm's own settings are the defaults (dispatcher
heartbeat 5 s, restart delay 5 s): the figures are what a user of the defaults gets.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from depot.config import DepotSettings, RawConfig, load_settings
from depot.config.stack_file import encode
from depot.outputs.compose import dump
from depot.outputs.secret_files import SECRETS_DIR, init_secret_files, secret_file_name
from depot.outputs.swarm_stack import STACK_NAME, stack_document
from depot.review.plan import stack_config
from tests.engine.conftest import FIGURES
from tests.engine.images import (
    STANDINS,
    apt_source,
    backup_image_tag,
    base_tag,
    standin_tag,
)
from tests.engine.multinode import (
    CONSOLE_PROBE,
    DISCOVERY_PROBE,
    HUB_ADDRESS,
    NETNS_DIR,
    Cluster,
    Node,
    NodeRole,
    ProbeResult,
    cluster_of,
    leftovers,
    multinode_unavailable,
    save_from_local_engine,
    saved_images,
    wait_until,
)
from tests.engine.swarm import age_keygen, swarm_override

pytestmark = pytest.mark.engine

STACK = "cluster"
DATA, GPU, RTK = "data", "gpu", "rtk"
# As the cluster stack expects them (Pulumi.cluster.yaml's depot:swarm.nodeLabels), plus zones
# for the spread preference: the data node alone in zone a, the other two in zone b.
ROLES = (
    NodeRole(DATA, {"depot.postgres-data": "true", "depot.zone": "a"}),
    NodeRole(GPU, {"depot.gpu": "true", "depot.zone": "b"}),
    NodeRole(RTK, {"depot.gnss": "true", "depot.zone": "b"}),
)
CONSOLE_PORT = 8080  # host mode, on the node that runs the console's task
SFTP_PORT = 2022
SFTP_USER = "depot"
REMOTE = "offsite"
CONVERGE_SECONDS = 120
FAULT_SECONDS = 90  # any one fault's recovery must be within this
PROBE_LIMIT = 2000
PROBE_SECONDS = 150
BUDGET_SECONDS = 180  # the module, cluster made and removed included
PSQL = ["psql", "-U", "postgres", "-d", "dispatch", "-tA", "-v", "ON_ERROR_STOP=1", "-c"]
_STARTED: dict[str, float] = {}


@dataclass
class Depot:
    """The cluster, the stack on it, and what only the operator holds."""

    cluster: Cluster
    directory: Path
    settings: DepotSettings
    identity: Path
    stack_file: Path
    replicas: dict[str, int]
    target: Path  # the off-host backups' folder (served by sftp from the hub)
    sftp: subprocess.Popen[bytes] | None = None
    lost: set[str] = field(default_factory=set)  # nodes removed for good

    @property
    def stateless(self) -> dict[str, int]:
        return {name: n for name, n in self.replicas.items() if name not in ("postgres", "backup")}


def _standin_tags() -> dict[str, str]:
    """The stand-ins' tags, computed as tests/engine/images.py names them (no engine needed)."""
    base = base_tag(apt_source()[1])
    tags = {standin.name: standin_tag(standin, base) for standin in STANDINS}
    tags["backup"] = backup_image_tag(tags["postgres"])
    return tags


@pytest.fixture(scope="module")
def depot(request: pytest.FixtureRequest) -> Iterator[Depot]:
    _STARTED["module"] = time.monotonic()
    reason = multinode_unavailable()
    if reason:
        pytest.skip(f"multi-node swarm: {reason}")
    tags = _standin_tags()
    try:
        archive = saved_images(tags, lambda names, target: _save(request, names, target))
    except (OSError, subprocess.SubprocessError, AssertionError) as error:
        pytest.skip(f"multi-node swarm: the stand-ins cannot be saved from the engine: {error}")
    with tempfile.TemporaryDirectory(prefix="depot-engine-multinode-") as folder:
        directory = Path(folder)
        with cluster_of(ROLES) as cluster:
            try:
                started = time.monotonic()
                cluster.load_images(archive)
                FIGURES["multinode: daemons up, swarm of 3 managers formed"] = (
                    f"{cluster.figures['daemons answering']:.1f} s, "
                    f"{cluster.figures['swarm formed']:.1f} s"
                )
                FIGURES["multinode: stand-ins loaded on every node"] = (
                    f"{time.monotonic() - started:.0f} s"
                )
                deployed = _deploy(cluster, directory, tags)
                yield deployed
            finally:
                if "deployed" in locals() and deployed.sftp is not None:
                    _stop(deployed.sftp)
        left = leftovers(cluster)
        assert not left, f"the multi-node test left {left} on this machine"
    seconds = time.monotonic() - _STARTED["module"]
    FIGURES["multinode: whole module (made, tested, removed)"] = f"{seconds:.0f} s"


def _save(request: pytest.FixtureRequest, names: Any, target: Path) -> None:
    # The first run saves from the machine's engine: it must build (or find) the stand-ins.
    request.getfixturevalue("standin_images")
    save_from_local_engine(names, target)


def _settings(directory: Path, recipient: str, rclone_config: str) -> DepotSettings:
    """The cluster stack: gpu and rtk off (no GPU, no receiver: their nodes carry only the
    labels), the console's folders in ``directory``, backups to the sftp target in the hub."""
    config = stack_config(STACK)
    backup = {
        **json.loads(config.values["depot:backup"]),
        "recipients": [recipient],
        "targets": [f"{REMOTE}:depot/{STACK}"],
    }
    console = {
        "distPath": str(directory / "console-dist"),
        "sessionsPath": str(directory / "sessions"),
    }
    values = {
        **config.values,
        "depot:profiles": encode([]),
        "depot:console": encode(console),
        "depot:backup": encode(backup),
        "depot:backupRcloneConfig": rclone_config,
    }
    raw = RawConfig(values, config.secret_keys | {"depot:backupRcloneConfig"})
    return load_settings(STACK, raw)


def _obscure(password: str) -> str:
    ran = subprocess.run(
        ["rclone", "obscure", "-"], input=password, capture_output=True, text=True, check=True,
        timeout=30,
    )  # fmt: skip
    return ran.stdout.strip()


def _serve_target(cluster: Cluster, folder: Path, password: str) -> subprocess.Popen[bytes]:
    """``rclone serve sftp`` in the hub namespace: a backup host off every node."""
    folder.mkdir(mode=0o700)
    (folder / "depot" / STACK).mkdir(parents=True)
    log = (folder.parent / "sftp.log").open("w")
    server = subprocess.Popen(
        [
            "nsenter", f"--net={NETNS_DIR / cluster.hub}",
            "rclone", "serve", "sftp", str(folder), "--addr", f"{HUB_ADDRESS}:{SFTP_PORT}",
            "--dir-cache-time", "0s",
        ],
        stdout=log, stderr=log,
        # From this process's environment only: the password is on no command line.
        env={**os.environ, "RCLONE_USER": SFTP_USER, "RCLONE_PASS": password},
    )  # fmt: skip
    log.close()
    wait_until(
        "the sftp target listening",
        lambda: "SFTP server listening" in (folder.parent / "sftp.log").read_text(),
        timeout=20,
    )
    return server


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _deploy(cluster: Cluster, directory: Path, tags: dict[str, str]) -> Depot:
    identity = directory / "operator" / "age-identity.txt"
    recipient = age_keygen(identity)
    password = secrets.token_urlsafe(24)
    rclone_config = (
        f"[{REMOTE}]\ntype = sftp\nhost = {HUB_ADDRESS}\nport = {SFTP_PORT}\n"
        f"user = {SFTP_USER}\npass = {_obscure(password)}\n"
    )
    settings = _settings(directory, recipient, rclone_config)
    target = directory / "offsite"
    depot = Depot(cluster, directory, settings, identity, directory / "stack.yaml", {}, target)
    depot.sftp = _serve_target(cluster, target, password)
    document = swarm_override(stack_document(settings), tags, CONSOLE_PORT)
    depot.replicas = {
        name: int(service["deploy"]["replicas"]) for name, service in document["services"].items()
    }
    depot.stack_file.write_text(dump(document))
    init_secret_files(directory / SECRETS_DIR)
    (directory / SECRETS_DIR / secret_file_name("backup_rclone_config")).write_text(rclone_config)
    dist = directory / "console-dist"
    dist.mkdir(mode=0o755)
    (dist / "index.html").write_text("<h1>depot console</h1>\n")
    (directory / "sessions").mkdir(mode=0o755)
    started = time.monotonic()
    _stack_deploy(cluster.node(DATA), depot)
    seconds = wait_until(
        "every service of the stack running its replicas, healthy",
        lambda: _whole(cluster.node(DATA), depot.replicas),
        CONVERGE_SECONDS,
    )
    FIGURES["multinode: stack converged healthy on 3 nodes"] = f"{time.monotonic() - started:.0f} s"
    del seconds
    return depot


def _stack_deploy(manager: Node, depot: Depot) -> None:
    manager.docker(
        "stack", "deploy", "--resolve-image", "never", "--compose-file", str(depot.stack_file),
        STACK_NAME, timeout=120,
    )  # fmt: skip


# --- reading the swarm -----------------------------------------------------------------------


def _running(manager: Node, timeout: float = 10) -> dict[str, int] | None:
    """Running tasks by stack service (``docker service ls``), or None without an answer."""
    listed = manager.docker(
        "service", "ls", "--format", "{{.Name}} {{.Replicas}}", timeout=timeout, check=False
    )
    if listed.returncode != 0:
        return None
    running = {}
    for line in listed.stdout.splitlines():
        name, replicas = line.split()[:2]
        if name.startswith(f"{STACK_NAME}_"):
            running[name.removeprefix(f"{STACK_NAME}_")] = int(replicas.split("/")[0])
    return running


def _whole(manager: Node, replicas: dict[str, int]) -> bool:
    running = _running(manager)
    return running is not None and all(running.get(n, 0) >= r for n, r in replicas.items())


def _placed(manager: Node, service: str) -> list[str]:
    """The nodes running ``service``'s tasks, one entry per running task."""
    listed = manager.docker(
        "service", "ps", "--filter", "desired-state=running",
        "--format", "{{.Node}} {{.CurrentState}}", f"{STACK_NAME}_{service}",
    )  # fmt: skip
    return sorted(
        line.split()[0] for line in listed.stdout.splitlines() if " Running " in f" {line} "
    )


def _task_containers(node: Node, service: str) -> list[str]:
    """The running containers of ``service`` on ``node`` (asked of that node's own engine)."""
    listed = node.docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK_NAME}_{service}",
        timeout=5, check=False,
    )  # fmt: skip
    return listed.stdout.split()


# --- probes ----------------------------------------------------------------------------------


@dataclass
class Probes:
    """The discovery probe on a client of ``node`` and the console probe from the hub."""

    node: Node
    client: str
    console: subprocess.Popen[str]
    stop_file: Path

    def finish(self) -> tuple[ProbeResult, ProbeResult]:
        self.node.docker("exec", self.client, "touch", "/tmp/stop", check=False, timeout=10)
        self.stop_file.touch()
        console_out, _ = self.console.communicate(timeout=20)
        wait_until(
            "the discovery probe ended",
            lambda: "requests" in self.node.docker("logs", self.client, check=False).stdout,
            timeout=20,
        )
        discovery_out = self.node.docker("logs", self.client).stdout
        self.node.docker("rm", "--force", self.client, check=False)
        return ProbeResult.parse(discovery_out), ProbeResult.parse(console_out)


def _start_probes(depot: Depot, node: Node, tag: str) -> Probes:
    client = node.docker(
        "run", "--detach", "--network", "depot-network", "--entrypoint", "/bin/sh",
        _standin_tags()["rust-service"], "-c",
        DISCOVERY_PROBE.format(seconds=PROBE_SECONDS, limit=PROBE_LIMIT),
    ).stdout.strip()  # fmt: skip
    stop_file = depot.directory / f"stop-{tag}"
    addresses = ",".join(n.address for n in depot.cluster.nodes if n.name not in depot.lost)
    console = subprocess.Popen(
        [
            "nsenter", f"--net={NETNS_DIR / depot.cluster.hub}", sys.executable, "-c",
            CONSOLE_PROBE, addresses, str(CONSOLE_PORT), str(PROBE_LIMIT), str(PROBE_SECONDS),
            str(stop_file),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(2)  # requests before the fault too
    return Probes(node, client, console, stop_file)


# --- the healthy cluster ---------------------------------------------------------------------


def test_postgres_and_its_volume_are_on_the_data_node_only(depot: Depot) -> None:
    manager = depot.cluster.node(DATA)
    assert _placed(manager, "postgres") == [DATA]
    assert _placed(manager, "backup") == [DATA]
    for node in depot.cluster.nodes:
        volumes = node.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
        assert ("postgres-data" in volumes) == (node.name == DATA), (node.name, volumes)


def test_stateless_replicas_spread_across_the_zones(depot: Depot) -> None:
    """Zone a is the data node alone: each two-replica service has one task there, one in b."""
    manager = depot.cluster.node(DATA)
    for service in ("discovery", "dispatch"):
        placed = _placed(manager, service)
        assert len(placed) == 2, (service, placed)
        assert DATA in placed, (service, placed)
        assert set(placed) & {GPU, RTK}, (service, placed)


def test_overlay_traffic_crosses_nodes_and_postgres_stays_unreachable(depot: Depot) -> None:
    """A client on one node reaches discovery's task on another through depot-network; postgres
    (on database-network only) neither resolves nor answers from there; dispatch reaches it."""
    cluster = depot.cluster
    manager = cluster.node(DATA)
    listed = manager.docker(
        "service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}} {{.ID}}",
        f"{STACK_NAME}_discovery",
    ).stdout.split("\n")  # fmt: skip
    remote_task = next(line.split()[1] for line in listed if line and line.split()[0] != GPU)
    task = json.loads(manager.docker("inspect", remote_task).stdout)[0]
    address = next(
        a["Addresses"][0].split("/")[0]
        for a in task["NetworksAttachments"]
        if a["Network"]["Spec"]["Name"] == "depot-network"
    )
    ssl_request = r"\000\000\000\010\004\322\026\057"
    script = "; ".join(
        [
            "ip route del default",
            f"printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {address} 4860 | grep -q '200 OK'"
            " && echo 'reached discovery'",
            *(
                f"printf '{ssl_request}' | nc -w 2 {target} 5432 | grep -q '[NS]' "
                f"&& echo 'open {target}' || echo 'closed {target}'"
                for target in ("postgres", "tasks.postgres")
            ),
        ]
    )
    answers = cluster.node(GPU).docker(
        "run", "--rm", "--user", "0", "--cap-add", "NET_ADMIN", "--network", "depot-network",
        "--entrypoint", "/bin/sh", _standin_tags()["rust-service"], "-c", script, check=False,
        timeout=60,
    )  # fmt: skip
    said = answers.stdout + answers.stderr
    assert "reached discovery" in said, f"no overlay traffic from gpu to {address}: {said}"
    assert "open" not in said, said
    (dispatch, *_) = [
        c for node in cluster.nodes for c in _task_containers(node, "dispatch") if c
    ] or [""]
    holder = next(n for n in cluster.nodes if dispatch in _task_containers(n, "dispatch"))
    probe = f"printf '{ssl_request}' | nc -w 2 postgres 5432 | grep -q '[NS]'"
    assert holder.docker("exec", dispatch, "sh", "-c", probe, check=False).returncode == 0


def test_only_the_console_publishes_a_port_and_only_where_it_runs(depot: Depot) -> None:
    manager = depot.cluster.node(DATA)
    for name in depot.replicas:
        spec = json.loads(manager.docker("service", "inspect", f"{STACK_NAME}_{name}").stdout)[0]
        ports = (spec["Spec"].get("EndpointSpec") or {}).get("Ports") or []
        published = [(p["PublishedPort"], p["PublishMode"]) for p in ports]
        assert published == ([(CONSOLE_PORT, "host")] if name == "console" else []), name
    (console_node,) = _placed(manager, "console")
    for node in depot.cluster.nodes:
        bound = subprocess.run(
            [*node.in_netns("ss", "-Htln"), f"sport = :{CONSOLE_PORT}"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
        assert bool(bound.strip()) == (node.name == console_node), (node.name, bound)
