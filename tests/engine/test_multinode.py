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

import dataclasses
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from depot.config import DepotSettings, RawConfig, load_settings
from depot.config.stack_file import encode
from depot.host.docker import DockerCli
from depot.host.doctor import diagnose
from depot.host.drift import Expected, expected_from_plan, find_swarm_drift
from depot.model import deployments
from depot.outputs.compose import dump
from depot.outputs.secret_files import SECRETS_DIR, init_secret_files, secret_file_name
from depot.outputs.swarm_stack import STACK_NAME, stack_document
from depot.review.plan import plan_config, stack_config
from depot.review.workload import PublishedPort
from depot.standins import (
    STANDIN_OF,
    STANDINS,
    apt_source,
    backup_image_tag,
    base_tag,
    standin_tag,
)
from tests.engine.conftest import FIGURES
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
    in_the_background,
    leftovers,
    multinode_unavailable,
    postmasters,
    save_from_local_engine,
    saved_images,
    seeded_images,
    wait_until,
)
from tests.engine.swarm import age_keygen, stop_process, swarm_override

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
# The swarm's first leader: neither the node the first fault kills nor the data node. A lost
# leader costs more (a new election, then a grace period before its node is marked down: 16 s
# and 48 s measured here), figures docs/several-hosts.md gives; the faults below keep to a
# follower so that the module fits its budget.
LEAD = ROLES[2]
CONSOLE_PORT = 8080  # host mode, on the node that runs the console's task
SFTP_PORT = 2022
SFTP_USER = "depot"
REMOTE = "offsite"
CONVERGE_SECONDS = 120
FAULT_SECONDS = 120  # any one fault's recovery must be within this (a busy machine)
PROBE_LIMIT = 2000
PROBE_SECONDS = 150
BUDGET_SECONDS = 180  # the module's target, cluster made and removed included
HANG_SECONDS = 480  # its bound
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

    @property
    def without_postgres(self) -> dict[str, int]:
        """The stateless services that can be healthy while postgres is away: not dispatch,
        which waits for the database before it serves (its DATABASE_URL)."""
        needs = {d.name for d in deployments(self.settings) if d.secret_env}
        return {name: n for name, n in self.stateless.items() if name not in needs}


def _standin_tags() -> dict[str, str]:
    """The stand-ins' tags, computed as depot/standins.py names them (no engine needed)."""
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
    started = time.monotonic()
    seed = seeded_images(archive, Path(tempfile.gettempdir()))
    if seed is not None:
        FIGURES["multinode: stand-ins' image store"] = (
            f"{time.monotonic() - started:.0f} s (cached: made once per set of stand-ins), "
            "hard-linked into each node's data root"
        )
    with tempfile.TemporaryDirectory(prefix="depot-engine-multinode-") as folder:
        directory = Path(folder)
        with cluster_of(ROLES, lead=ROLES.index(LEAD), seed=seed) as cluster:
            try:
                FIGURES["multinode: daemons up, swarm of 3 managers formed"] = (
                    f"{cluster.figures['daemons answering']:.1f} s, "
                    f"{cluster.figures['swarm formed']:.1f} s"
                )
                loaded = _loading(cluster, archive) if seed is None else (lambda: None)
                deployed = _deploy(cluster, directory, tags, loaded)
                yield deployed
            finally:
                _STARTED["removal"] = time.monotonic()
                if "deployed" in locals() and deployed.sftp is not None:
                    stop_process(deployed.sftp, grace=10)
        FIGURES["multinode: cluster removed"] = f"{time.monotonic() - _STARTED['removal']:.0f} s"
        left = leftovers(cluster)
        assert not left, f"the multi-node test left {left} on this machine"
    seconds = time.monotonic() - _STARTED["module"]
    FIGURES["multinode: whole module (made, tested, removed)"] = (
        f"{seconds:.0f} s (target {BUDGET_SECONDS} s)"
    )
    # The target is met in most runs (146-157 s at loads of 2.4 to 4.6), not in all (172-197
    # s): the partition's leaderless window, Swarm's own (no pre-vote), ran to 36-44 s in three
    # runs of ten (docs/several-hosts.md). Not asserted on a shared 2-core machine; the bound
    # catches a hang.
    assert seconds < HANG_SECONDS, f"the multi-node module took {seconds:.0f} s"


def _loading(cluster: Cluster, archive: Path) -> Callable[[], None]:
    """The stand-ins loaded on every node in the background (while the deployment is
    prepared: the sftp target, keys, files); the returned call waits for it."""
    started = time.monotonic()

    def load() -> None:
        cluster.load_images(archive)
        FIGURES["multinode: stand-ins loaded on every node"] = f"{time.monotonic() - started:.0f} s"

    loading = in_the_background("the stand-ins loaded on every node", load)
    return lambda: loading(330)


def _save(request: pytest.FixtureRequest, names: Any, target: Path) -> None:
    # The first run saves from the machine's engine: it must build (or find) the stand-ins.
    request.getfixturevalue("standin_builds")
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


def _deploy(
    cluster: Cluster, directory: Path, tags: dict[str, str], loaded: Callable[[], None]
) -> Depot:
    """The stack deployed and converged healthy; ``loaded`` waits for the images on the nodes."""
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
    loaded()
    started = time.monotonic()
    _stack_deploy(cluster.node(DATA), depot)
    wait_until(
        "every service of the stack running its replicas, healthy",
        lambda: _whole(cluster.node(DATA), depot.replicas),
        CONVERGE_SECONDS,
    )
    FIGURES["multinode: stack converged healthy on 3 nodes"] = f"{time.monotonic() - started:.0f} s"
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
        "--format", "{{.Node}} {{.CurrentState}}", f"{STACK_NAME}_{service}", check=False,
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
        began = time.monotonic()
        told = self.node.docker("exec", self.client, "touch", "/tmp/stop", check=False, timeout=10)
        told_after = time.monotonic() - began
        self.stop_file.touch()
        console_out, _ = self.console.communicate(timeout=20)
        try:
            wait_until(
                "the discovery probe ended",
                lambda: "requests" in self.node.docker("logs", self.client, check=False).stdout,
                timeout=20,
            )
        except AssertionError as error:
            # What the probe was doing, and whether it was told to stop: a round's DNS lookup
            # or connection that hangs would show in its processes.
            running = self.node.docker("top", self.client, check=False, timeout=10)
            raise AssertionError(
                f"{error}; told to stop after {told_after:.1f} s (exit {told.returncode}: "
                f"{told.stderr.strip()[-300:]}); its processes: {running.stdout[-800:]}"
                f"{running.stderr[-300:]}"
            ) from None
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
    time.sleep(1)  # requests before the fault too (a few dozen)
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


# --- day two on the real cluster --------------------------------------------------------------

CLUSTER_CHECKS = ("managers", "nodes", "labels", "engines", "services", "images")


def test_the_doctor_reads_the_cluster_through_a_manager(depot: Depot) -> None:
    findings = diagnose(depot.settings, DockerCli(depot.cluster.node(GPU).socket))
    cluster = [f for f in findings if f.check in CLUSTER_CHECKS]
    assert [f.line() for f in cluster if f.status != "ok"] == []
    lines = [f.line() for f in cluster]
    assert "ok        managers: 3 managers (data, gpu, rtk): the swarm keeps a leader with 1 of " \
        "them lost" in lines  # fmt: skip
    assert "ok        labels: postgres: depot.postgres-data=true on data" in lines
    (engines,) = [f.message for f in cluster if f.check == "engines"]
    assert engines.startswith("26.1.5"), engines
    assert engines.endswith("on every node"), engines
    running = {f.message.split(":")[0] for f in cluster if f.check == "services"}
    assert running == set(depot.replicas)


def _expected(depot: Depot) -> Expected:
    """The plan of the cluster stack as deployed here: its images the stand-ins, the console's
    port the override's (host mode); every other field the plan's."""
    config = stack_config(STACK)
    planned = expected_from_plan(
        plan_config(STACK, config, settings=depot.settings), depot.settings
    )
    tags = _standin_tags()
    console = (PublishedPort(CONSOLE_PORT, 80, None, "tcp", "host"),)
    workloads = tuple(
        dataclasses.replace(
            w,
            image=tags[STANDIN_OF[w.name.removeprefix("depot-")]],
            ports=console if w.ports else (),
        )
        for w in planned.workloads
    )
    return dataclasses.replace(planned, workloads=workloads)


def test_drift_compares_the_swarm_services_with_the_plan(depot: Depot) -> None:
    cli = DockerCli(depot.cluster.node(GPU).socket)
    expected = _expected(depot)
    assert find_swarm_drift(expected, cli) == []
    manager = depot.cluster.node(DATA)
    # A dangerous change by hand that restarts nothing: postgres would start a second task
    # on its data directory before stopping the first at its next update.
    manager.docker("service", "update", "--detach", "--update-order", "start-first",
                   f"{STACK_NAME}_postgres")  # fmt: skip
    try:
        lines = [d.line() for d in find_swarm_drift(expected, cli)]
    finally:
        manager.docker("service", "update", "--detach", "--update-order", "stop-first",
                       f"{STACK_NAME}_postgres")  # fmt: skip
    assert lines == [
        "depot-postgres update order: start-first on the swarm, the plan says stop-first"
    ]
    assert find_swarm_drift(expected, cli) == []


# --- faults ----------------------------------------------------------------------------------


def _running_on(manager: Node, services: dict[str, int], excluded: set[str]) -> dict[str, int]:
    """Running tasks by service, on nodes other than ``excluded`` (one bounded call)."""
    listed = manager.docker(
        "service", "ps", "--filter", "desired-state=running",
        "--format", "{{.Name}} {{.Node}} {{.CurrentState}}",
        *(f"{STACK_NAME}_{name}" for name in services), timeout=10, check=False,
    )  # fmt: skip
    counts = dict.fromkeys(services, 0)
    for line in listed.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "Running" and fields[1] not in excluded:
            counts[fields[0].removeprefix(f"{STACK_NAME}_").rsplit(".", 1)[0]] += 1
    return counts


def _whole_without(manager: Node, services: dict[str, int], excluded: set[str]) -> bool:
    counts = _running_on(manager, services, excluded)
    return all(counts[name] >= wanted for name, wanted in services.items())


def _node_state(manager: Node, node: Node) -> str:
    found = manager.docker(
        "node", "inspect", "--format", "{{.Status.State}}", node.name, timeout=5, check=False
    )
    return found.stdout.strip()


class Watch:
    """Counts, every 0.3 s, each service's containers on every node's own engine, and the
    postgres servers on every node (``postgres``): the most of each seen at once (a cut-off
    node's included: its engine and processes are still seen here)."""

    def __init__(self, cluster: Cluster, services: tuple[str, ...]) -> None:
        self.cluster, self.services = cluster, services
        self.most = dict.fromkeys(services, 0)
        self.most_servers = 0
        self.servers: list[str] = []  # the postgres servers when the most were seen
        self.evidence: list[str] = []  # postgres' containers when more than one ran
        self.failure = ""  # why the watch ended before it was stopped: then it proves nothing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._count()
        except Exception as error:  # said by stop(), in the test's own thread
            self.failure = f"{type(error).__name__}: {error}"

    def _count(self) -> None:
        while not self._stop.is_set():
            servers = [f"{n.name}: {s}" for n in self.cluster.nodes for s in postmasters(n)]
            if len(servers) > self.most_servers:
                self.most_servers, self.servers = len(servers), servers
            for service in self.services:
                count = sum(len(_task_containers(n, service)) for n in self.cluster.nodes)
                self.most[service] = max(self.most[service], count)
                if service == "postgres" and count > 1 and not self.evidence:
                    self.evidence = _postgres_containers(self.cluster)
            self._stop.wait(0.3)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self.failure, f"the watch of postgres and discovery ended early: {self.failure}"
        return self.most


def _postgres_containers(cluster: Cluster) -> list[str]:
    """``node: container status`` of postgres' running task containers."""
    return [
        f"{node.name}: {line}"
        for node in cluster.nodes
        for line in node.docker(
            "ps", "--filter",
            f"label=com.docker.swarm.service.name={STACK_NAME}_postgres",
            "--format", "{{.Names}} {{.Status}}", timeout=5, check=False,
        ).stdout.splitlines()
    ]  # fmt: skip


def _waited_on_the_lock(node: Node) -> list[str]:
    """postgres' task containers on ``node`` (stopped ones too) that logged waiting for the
    data lock (catalog DATA_LOCK_SCRIPT)."""
    listed = node.docker(
        "ps", "--all", "--quiet", "--filter",
        f"label=com.docker.swarm.service.name={STACK_NAME}_postgres", timeout=5, check=False,
    ).stdout.split()  # fmt: skip
    return [
        container
        for container in listed
        if "another postgres holds the data directory"
        in node.docker("logs", container, timeout=10, check=False).stderr
    ]


def _stateless_on(node: Node) -> int:
    return sum(len(_task_containers(node, s)) for s in ("discovery", "dispatch", "console"))


def test_a_node_without_data_lost_and_back(depot: Depot) -> None:
    cluster = depot.cluster
    manager = cluster.node(DATA)
    victim, survivor = cluster.node(GPU), cluster.node(RTK)
    assert _leader_name(manager) == RTK, "the victim must be a follower"
    assert _stateless_on(victim), "the victim runs no stateless task: the test would prove nothing"
    probes = _start_probes(depot, survivor, "kill")
    lost = time.monotonic()
    cluster.kill_node(victim)
    wait_until(f"{victim.name} down", lambda: _node_state(manager, victim) == "down", 60)
    down = time.monotonic() - lost
    wait_until(
        "the stateless services whole on the other nodes",
        lambda: _whole_without(manager, depot.stateless, {victim.name}),
        FAULT_SECONDS,
    )
    whole = time.monotonic() - lost
    time.sleep(1)  # requests after the recovery too
    discovery, console = probes.finish()
    FIGURES[f"multinode: a node without data lost ({victim.name}, kill -9 of the whole node)"] = (
        f"down after {down:.1f} s, stateless services whole after {whole:.1f} s; discovery "
        f"probe {discovery} ({discovery.first_try_failed} first tries failed), console probe "
        f"{console}"
    )
    assert discovery.requests >= 20, discovery
    assert discovery.failed == 0, f"discovery (2 replicas) failed requests: {discovery}"
    started = time.monotonic()
    cluster.restart_node(victim)
    # The leader watched from the moment the engine answers, beside the waits for the node
    # to be ready and for its orphaned tasks to end (they do not depend on each other).
    watching = in_the_background(
        "the leader watch after the rejoin", lambda: _leaderless_seconds(manager, victim)
    )
    wait_until(f"{victim.name} ready again", lambda: _node_state(manager, victim) == "ready", 60)
    ready = time.monotonic() - started
    # The restarted engine ends its orphaned tasks; nothing moves back by itself.
    wait_until(f"{victim.name}'s orphaned tasks ended", lambda: _stateless_on(victim) == 0, 30)
    leaderless, agreed = watching(100)
    FIGURES[f"multinode: {victim.name} rejoined"] = (
        f"ready {ready:.1f} s after its engine restarted; no leader for {leaderless:.1f} s "
        f"(it named the leader {agreed:.1f} s after its engine answered); its orphaned tasks "
        "ended, none moved back"
    )
    counts = _running_on(manager, depot.replicas, set())
    assert counts == depot.replicas, counts


def _leader_name(node: Node) -> str:
    """The leader's hostname as ``node`` sees it; "" without an answer within 3 s."""
    listed = node.docker(
        "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}", timeout=3, check=False
    )
    leaders = [line.split()[0] for line in listed.stdout.splitlines() if line.endswith("Leader")]
    return leaders[0] if listed.returncode == 0 and leaders else ""


def _make_follower(manager: Node, node: Node) -> None:
    """A stable leader that is not ``node``: a restarted manager may have started an election
    (measured in the first fault); if ``node`` won it, demoting and promoting it hands the
    leadership to another manager."""
    wait_until("a leader", lambda: _leader_name(manager) != "", 60)
    if _leader_name(manager) == node.name:
        manager.docker("node", "demote", node.name)
        wait_until("another leader", lambda: _leader_name(manager) not in ("", node.name), 60)
        manager.docker("node", "promote", node.name)
    wait_until(f"{node.name} a reachable manager", lambda: _reachable(manager, node), 60)


def _reachable(manager: Node, node: Node) -> bool:
    found = manager.docker(
        "node", "inspect", "--format", "{{.ManagerStatus.Reachability}}", node.name,
        timeout=5, check=False,
    )  # fmt: skip
    return found.stdout.strip() == "reachable"


def _leaderless_seconds(manager: Node, back: Node, limit: float = 90) -> tuple[float, float]:
    """From now: the seconds ``manager`` saw no leader, and until ``back`` (a manager that
    was away) named the leader ``manager`` names, three times in a row.

    Why that is long enough to see the election it is there for: a manager that was away
    deposes the leader only by elections of its own, which it starts while it hears from no
    leader for its election timeout (10 to 20 one-second Raft ticks; a cut-off manager does so
    all the while it is cut off, and comes back with a higher term). It names a leader only
    once it has heard from one in a term at least its own: any deposition it brings has
    happened by then, and the election after it is over; from then on the leader's heartbeat
    (every tick) keeps it a follower. This replaces a fixed 20 s watch. Measured (load 2-4):
    on a bare three-manager swarm, three restarts of a killed follower: it named the leader
    0.0-2.6 s after its engine answered, no election in the 10 s after; three partitions of
    21 s: the leader deposed 7.1-7.7 s after the heal, the healed node named the new leader
    28-35 s after it, no deposition in the 10 s after. In this module (thirteen runs): named
    1.6-6.3 s after a restart, no leader lost after; after a heal (``_settle_after_heal``)
    deposed 4.6-10.9 s after it, and named by the healed node only after the election that
    followed.
    """
    started, leaderless, in_a_row = time.monotonic(), 0.0, 0
    while in_a_row < 3 and time.monotonic() - started < limit:
        began = time.monotonic()
        leader = _leader_name(manager)
        if not leader:
            in_a_row = 0
            leaderless += max(time.monotonic() - began, 0.5)
        elif _leader_name(back) == leader:
            in_a_row += 1
        else:
            in_a_row = 0
        time.sleep(0.5)
    assert in_a_row >= 3, f"no leader {back.name} and {manager.name} agree on within {limit:.0f} s"
    return leaderless, time.monotonic() - started


def _leader_via(node: Node) -> bool:
    listed = node.docker("node", "ls", "--format", "{{.ManagerStatus}}", timeout=3, check=False)
    return listed.returncode == 0 and "Leader" in listed.stdout.split()


def test_the_data_node_cut_off_and_healed_never_runs_two_postgres(depot: Depot) -> None:
    cluster = depot.cluster
    data, manager, client = cluster.node(DATA), cluster.node(GPU), cluster.node(RTK)
    _make_follower(manager, data)
    watch = Watch(cluster, ("postgres", "discovery"))
    probes = _start_probes(depot, client, "partition")
    try:
        cut = time.monotonic()
        cluster.partition(data)
        wait_until(f"{DATA} down", lambda: _node_state(manager, data) == "down", FAULT_SECONDS)
        down = time.monotonic() - cut
        wait_until(
            "the services that need no database whole without the data node",
            lambda: _whole_without(manager, depot.without_postgres, {DATA}),
            FAULT_SECONDS,
        )
        whole = time.monotonic() - cut
        cluster.heal(data)
        leaderless, back, deposed = _settle_after_heal(depot, manager)
        time.sleep(1)
    finally:
        cluster.heal(data)  # also when a wait above failed: the tests after need the node
        discovery, console = probes.finish()
        most = watch.stop()
    waited = _waited_on_the_lock(data)
    FIGURES["multinode: the data node cut off"] = (
        f"down after {down:.1f} s, discovery, console and grafana "
        f"whole after {whole:.1f} s (dispatch waits for postgres); at most "
        f"{watch.most_servers} postgres server and {most['postgres']} postgres containers "
        f"({len(waited)} waited on the data lock), {most['discovery']} discovery containers "
        "at once"
    )
    deposition = "never" if deposed is None else f"{deposed:.1f} s after the heal"
    FIGURES["multinode: the data node's link healed"] = (
        f"leader deposed {deposition}, no leader for {leaderless:.1f} s, every service whole, "
        f"postgres back on the data node and the data node naming the leader after {back:.1f} "
        f"s; discovery probe {discovery} "
        f"({discovery.first_try_failed} first tries failed), console probe {console}"
    )
    assert discovery.failed <= discovery.requests // 20, discovery
    # Found here before the data lock: while the node was cut off, the others gave postgres a
    # new task, pending (only the data node has its label); when the link came back, that task
    # started on the data node beside the old one, which Swarm stopped only then — two postgres
    # servers on one data directory. The lock makes the new one wait (it logs so) until the old
    # one has stopped: two containers may run at once, never two servers.
    assert watch.most_servers == 1, (
        f"{watch.most_servers} postgres servers at once ({'; '.join(watch.servers)}); "
        f"containers: {'; '.join(watch.evidence)}"
    )
    if most["postgres"] > 1:
        assert waited, f"a second postgres container ran without waiting: {watch.evidence}"


def _settled(depot: Depot, manager: Node) -> bool:
    """Every service runs its replicas and postgres runs, healthy, on the data node's engine
    (the managers' view of a node that was away lags behind it)."""
    data = depot.cluster.node(DATA)
    containers = _task_containers(data, "postgres")
    healthy = (
        len(containers) == 1
        and "healthy"
        in data.docker(
            "inspect", "--format", "{{.State.Health.Status}}", containers[0], check=False
        ).stdout.split()
    )
    return healthy and _whole(manager, depot.replicas)


def _settle_after_heal(depot: Depot, manager: Node) -> tuple[float, float, float | None]:
    """After a heal: the seconds ``manager`` saw no leader, until everything settled (every
    service whole, postgres healthy on the data node and seen there by the managers, and the
    data node naming the leader ``manager`` names three times in a row: why that is long
    enough to see the deposition, ``_leaderless_seconds``), and when the leader was first
    seen gone (None if it never was)."""
    data = depot.cluster.node(DATA)
    started, leaderless, deposed, in_a_row = time.monotonic(), 0.0, None, 0
    while time.monotonic() - started < FAULT_SECONDS:
        began = time.monotonic()
        leader = _leader_name(manager)
        if not leader:
            in_a_row = 0
            leaderless += max(time.monotonic() - began, 0.5)
            deposed = began - started if deposed is None else deposed
        elif _leader_name(data) != leader:
            in_a_row = 0
        else:
            in_a_row += 1
            if (
                in_a_row >= 3
                and _settled(depot, manager)
                and _placed(manager, "postgres") == [DATA]
            ):
                return leaderless, time.monotonic() - started, deposed
        time.sleep(0.5)
    raise AssertionError(f"not settled within {FAULT_SECONDS} s of healing")


def _depot(*args: str, host: Node, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``depot ARGS --stack cluster --docker-host <host>``, as the operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "depot", *args, "--stack", STACK, "--docker-host", host.socket],
        capture_output=True, text=True, check=False, timeout=timeout,
    )  # fmt: skip


ROWS = 10_000
DRILL_TABLE = (
    "CREATE TABLE drill (id bigint PRIMARY KEY, note text NOT NULL);"  # noqa: S608 - constants
    f"INSERT INTO drill SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g;"
)
FINGERPRINT = "SELECT count(*) || ' ' || md5(string_agg(note, ',' ORDER BY id)) FROM drill"


def _psql(node: Node, statement: str) -> str:
    (container,) = _task_containers(node, "postgres")
    return node.docker("exec", "--user", "postgres", container, *PSQL, statement).stdout.strip()


def test_the_data_node_lost_for_good_and_postgres_restored_elsewhere(depot: Depot) -> None:
    """The runbook of docs/several-hosts.md: RTO and RPO measured, the rows checked."""
    cluster = depot.cluster
    data, new_home = cluster.node(DATA), cluster.node(GPU)
    wait_until("postgres healthy on the data node", lambda: _settled(depot, new_home), 60)
    _psql(data, DRILL_TABLE)
    written = _psql(data, FINGERPRINT)
    backed_up = _depot("backup", host=data)
    assert backed_up.returncode == 0, backed_up.stderr[-1000:]
    (name,) = re.findall(r"backup (cluster-\d{8}T\d{6}Z\.dump\.age) is good", backed_up.stdout)
    assert (depot.target / "depot" / STACK / name).is_file(), "the backup never left the node"
    taken = time.mktime(time.strptime(name[len("cluster-") :][:16], "%Y%m%dT%H%M%SZ"))
    taken -= time.timezone  # the name's stamp is UTC
    _psql(data, "INSERT INTO drill VALUES (0, 'written after the newest backup')")
    time.sleep(1)
    lost_at, lost = time.time(), time.monotonic()
    cluster.kill_node(data)
    depot.lost.add(DATA)

    # The depot says so: the doctor, through a surviving manager.
    cli = DockerCli(new_home.socket)

    def said() -> list[str]:
        lines = [f.line() for f in diagnose(depot.settings, cli) if f.status == "problem"]
        return [line for line in lines if "postgres" in line]

    wait_until(
        "the doctor naming postgres' lost node",
        lambda: any("which is not up" in line for line in said()),
        60,
    )
    told = said()
    detected = time.monotonic() - lost
    assert any("depot.postgres-data=true is only on data, which is not up" in t for t in told), told
    assert any(t.startswith("PROBLEM   services: postgres: 0/1 running") for t in told), told

    # The runbook: the lost manager out, the label moved, the stack redeployed, the restore.
    new_home.docker("node", "demote", DATA)
    new_home.docker("node", "rm", "--force", DATA)
    new_home.docker("node", "update", "--label-add", "depot.postgres-data=true", GPU)
    _stack_deploy(new_home, depot)
    wait_until(
        "postgres and the backup service healthy on their new node",
        lambda: (
            _running_on(new_home, {"postgres": 1, "backup": 1}, set())
            == {"postgres": 1, "backup": 1}
        ),
        FAULT_SECONDS,
    )
    assert _placed(new_home, "postgres") == [GPU]
    restored = _depot(
        "restore", "--from", "latest", "--identity", str(depot.identity), host=new_home
    )
    assert restored.returncode == 0, restored.stderr[-1500:]
    assert name in restored.stdout + restored.stderr, "the restore did not take the newest backup"
    recovered = time.monotonic() - lost
    assert _psql(new_home, FINGERPRINT) == written.replace(f"{ROWS} ", f"{ROWS} ", 1)
    assert _psql(new_home, "SELECT count(*) FROM drill WHERE id = 0") == "0"
    wait_until(
        "every service whole on the two remaining nodes",
        lambda: _whole(new_home, depot.replicas),
        FAULT_SECONDS,
    )
    FIGURES["multinode: the data node lost for good, postgres restored on another node"] = (
        f"the doctor said so after {detected:.1f} s; RTO {recovered:.0f} s (loss to restored "
        f"rows, runbook by the test), RPO {lost_at - taken:.0f} s (the newest off-host backup's "
        f"age at the loss): {ROWS:,} rows back, the row written after it gone"
    )


def test_quorum_lost_services_keep_serving_and_depot_says_no_leader(depot: Depot) -> None:
    cluster = depot.cluster
    gpu, rtk = cluster.node(GPU), cluster.node(RTK)
    # The survivor runs a discovery task, so the probe has something to reach on it; of two
    # that do, the follower, and the leader is lost. A surviving leader goes on naming itself
    # until it steps down for want of a majority, which took 20 s and more (no leader after
    # 23.0 s, against 3.5 s when the follower survived, load 2-4); the commands below are
    # asked once the survivor says there is no leader, either way.
    runs = [node for node in (gpu, rtk) if _task_containers(node, "discovery")]
    survivor = next((node for node in runs if _leader_name(node) != node.name), (*runs, rtk)[0])
    other = rtk if survivor is gpu else gpu
    probes = _start_probes(depot, survivor, "quorum")
    try:
        lost = time.monotonic()
        cluster.kill_node(other)
        depot.lost.add(other.name)
        wait_until("the last manager without a leader", lambda: not _leader_via(survivor), 60)
        leaderless = time.monotonic() - lost
        # The depot's two commands and a change asked by hand, all at once, as an operator
        # and a monitor would: each depot command must still fail within its bound, in one
        # line; the change must be refused. One after the other they took 10.3 s, 10.6 s (each
        # at its 10 s bound on the manager's answer) and then 0.0 s or 20.0 s for the change
        # (its own bound, unless the manager had by then given up on a leader: 20-30 s after
        # the loss), load 2-4. The probes keep running meanwhile.
        timings: dict[str, float] = {}
        said: dict[str, subprocess.CompletedProcess[str]] = {}

        def ask(what: str) -> None:
            began = time.monotonic()
            if what == "update":
                said[what] = survivor.docker(
                    "service", "update", "--detach", "--env-add", "X=1",
                    f"{STACK_NAME}_discovery", timeout=60, check=False,
                )  # fmt: skip
            else:
                said[what] = _depot(what, host=survivor, timeout=60)
            timings[what] = time.monotonic() - began

        asked = [threading.Thread(target=ask, args=(w,)) for w in ("doctor", "drift", "update")]
        for thread in asked:
            thread.start()
        for thread in asked:
            thread.join(timeout=70)
        assert not [t for t in asked if t.is_alive()], f"not all answered in 70 s: {timings}"
        for command in ("doctor", "drift"):
            ran = said[command]
            lines = ran.stderr.strip().splitlines()
            assert ran.returncode == 2, (command, ran.stdout[-500:], ran.stderr[-500:])
            assert len(lines) == 1, (command, lines)
            assert "the swarm has no leader" in lines[0], (command, lines)
            assert timings[command] < 20, (command, timings[command])
        assert said["update"].returncode != 0, "a leaderless swarm accepted an update"
    finally:
        discovery, console = probes.finish()
    FIGURES["multinode: quorum lost (1 of 2 managers left)"] = (
        f"no leader after {leaderless:.1f} s; then at once: docker service update failed "
        f"after {timings['update']:.1f} s, depot doctor {timings['doctor']:.1f} s and depot "
        f"drift {timings['drift']:.1f} s, each one line 'the swarm has no leader'; "
        f"discovery probe {discovery} on {survivor.name}, console probe {console}"
    )
    assert discovery.failed <= discovery.requests // 20, discovery
