"""A three-node Docker Swarm on this one machine, made and removed by the tests themselves.

Each node is a ``dockerd`` (the installed Engine, ``/usr/sbin/dockerd``) in a network namespace
of its own, joined to the others by a bridge in a hub namespace (not the root namespace: the
main engine's ``FORWARD DROP`` with ``bridge-nf-call-iptables`` silently drops bridged traffic
there). The node namespaces have no default route: a daemon with one resolves registry names
through the host's DNS and every task start waits ~20 s; traffic stays on the nodes' addresses.

Each daemon runs under ``nsenter --net=<node> unshare --uts`` (a hostname of its own; ``ip netns
exec`` would remount /sys) with its own data root, exec root, pid file, socket, ``--bip`` and
``--cgroup-parent``; all three are managers (Raft quorum 2 of 3). The stand-in images reach every
node by ``docker save`` once (cached under ``/var/tmp``) and ``docker load`` on each node.

``Cluster.close`` undoes everything, also after a failed test or a killed node: each daemon
stopped by its pid (SIGTERM, a bounded wait, SIGKILL), every process left in a node's namespace
or cgroups killed, the mounts under the data roots unmounted, the namespaces deleted, the cgroup
folders and data roots removed. Every call is bounded in time: a swarm without a leader makes
``docker node ls`` hang ~35 s before it fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.engine.swarm import wait_until as swarm_wait_until

DOCKERD = Path("/usr/sbin/dockerd")
NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
IMAGE_CACHE = Path("/var/tmp/depot-multinode")  # the stand-ins saved once, by their tags' hash
SUBNET_PREFIX = "10.231.0"  # inside the hub namespace only: no clash with the machine's own
HUB_ADDRESS = f"{SUBNET_PREFIX}.1"
ADDRESS_POOL = "10.232.0.0/16"  # the swarm's overlays (--default-addr-pool), inside the nodes
POLL_SECONDS = 0.25
STOP_SECONDS = 20  # SIGTERM, then this long, then SIGKILL
CALL_SECONDS = 30  # any one docker call against a node
SWARM_PORT = 2377


class ClusterUnavailableError(Exception):
    """This machine cannot make the cluster (no root, no dockerd, no namespaces); says why."""


@dataclass(frozen=True)
class NodeRole:
    """A node's place in the cluster stack: its hostname and the labels the stack expects."""

    hostname: str
    labels: Mapping[str, str]


def multinode_unavailable() -> str | None:
    """Why the cluster cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces and extra dockerds need root"
    if not DOCKERD.is_file():
        return f"{DOCKERD} is missing (apt-get install docker.io)"
    for tool in ("ip", "nsenter", "unshare", "docker"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = f"depotmn-probe-{secrets.token_hex(3)}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"a network namespace cannot be made here: {made.stderr.strip()[-200:]}"
    _run("ip", "netns", "delete", probe, check=False)
    return None


def _run(
    *command: str, timeout: float = CALL_SECONDS, check: bool = True, stdin: Any = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=timeout, stdin=stdin
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command[:4])} failed: {result.stderr[-1500:]}")
    return result


def wait_until(what: str, ready: Callable[[], bool], timeout: float) -> float:
    """The single-node swarm's wait, polling a fault's figures finer (``POLL_SECONDS``)."""
    return swarm_wait_until(what, ready, timeout, poll=POLL_SECONDS)


@dataclass
class Node:
    """One dockerd in its own network namespace."""

    index: int
    role: NodeRole
    token: str  # the cluster's: in every name, so two clusters never clash
    root: Path  # the cluster's folder
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""

    @property
    def name(self) -> str:
        return self.role.hostname

    @property
    def netns(self) -> str:
        return f"depotmn-{self.token}-{self.index}"

    @property
    def address(self) -> str:
        return f"{SUBNET_PREFIX}.{10 + self.index}"

    @property
    def hub_veth(self) -> str:
        return f"mn{self.token}h{self.index}"  # at most 15 characters, as the kernel wants

    @property
    def folder(self) -> Path:
        return self.root / f"n{self.index}"

    @property
    def data_root(self) -> Path:
        return self.folder / "data"

    @property
    def exec_root(self) -> Path:
        # Short: containerd's socket lives under it, and a unix socket path has 108 bytes.
        return Path(f"/run/depotmn-{self.token}-{self.index}")

    @property
    def socket(self) -> str:
        return f"unix://{self.exec_root}/docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.exec_root / "docker.pid"

    @property
    def cgroup_parent(self) -> str:
        return f"/depotmn-{self.token}-{self.index}"

    def docker(
        self, *args: str, timeout: float = CALL_SECONDS, check: bool = True, stdin: Any = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker args`` against this node's daemon, bounded in time."""
        env = {**os.environ, "DOCKER_HOST": self.socket}
        env.pop("DOCKER_CONTEXT", None)
        try:
            result = subprocess.run(
                ["docker", *args],
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
                env=env,
                stdin=stdin,
            )
        except subprocess.TimeoutExpired:
            if check:
                raise AssertionError(
                    f"docker {' '.join(args[:3])} on {self.name}: no answer in {timeout:g} s"
                ) from None
            return subprocess.CompletedProcess(["docker", *args], 124, "", "timed out")
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args[:3])} on {self.name} failed: {result.stderr[-1500:]}"
            )
        return result

    def answers(self) -> bool:
        answered = self.docker("version", "--format", "{{.Server.Version}}", timeout=5, check=False)
        return answered.returncode == 0

    def in_netns(self, *command: str) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR / self.netns}", *command]


@dataclass
class Cluster:
    """Three managers on one machine; ``close`` removes every trace of them."""

    roles: Sequence[NodeRole]
    lead: int = 0  # the node that initialises the swarm: its first leader
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="depot-multinode-")))
    nodes: list[Node] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    # An image store every node starts with (``seeded_images``): its layers hard-linked.
    seed: Path | None = None
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def hub(self) -> str:
        return f"depotmn-{self.token}-hub"

    @property
    def bridge(self) -> str:
        return f"mn{self.token}br"

    def start(self) -> None:
        """Network, daemons, swarm of three managers, node labels: each undone by ``close``."""
        self.root.chmod(0o755)  # the daemons' folders, read by their own processes only
        self._cleanup.callback(shutil.rmtree, self.root, True)
        self.nodes = [Node(i + 1, role, self.token, self.root) for i, role in enumerate(self.roles)]
        started = time.monotonic()
        self._make_network()
        for node in self.nodes:
            self._cleanup.callback(self._remove_node, node)
        # Each node's store seeded (0.25 s of copies and links) and its daemon started beside
        # the others': the last daemon no longer starts after the others' seeds.
        side_by_side(self._begin, self.nodes, timeout=60)
        wait_until("every node's dockerd answering", self._all_answer, timeout=60)
        self.figures["daemons answering"] = time.monotonic() - started
        started = time.monotonic()
        self._form_swarm()
        self.figures["swarm formed"] = time.monotonic() - started

    def _begin(self, node: Node) -> None:
        if self.seed is not None:
            seed_node(node, self.seed)
        self.start_daemon(node)

    def _all_answer(self) -> bool:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                log = (node.folder / "dockerd.log").read_text()[-1500:]
                raise AssertionError(f"dockerd of {node.name} exited: {log}")
        return all(node.answers() for node in self.nodes)

    # --- the network ---------------------------------------------------------------------

    def _make_network(self) -> None:
        hub = self.hub
        _run("ip", "netns", "add", hub)
        self._cleanup.callback(_run, "ip", "netns", "delete", hub, check=False)
        _run("ip", "-n", hub, "link", "add", self.bridge, "type", "bridge")
        _run("ip", "-n", hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", self.bridge)
        _run("ip", "-n", hub, "link", "set", self.bridge, "up")
        _run("ip", "-n", hub, "link", "set", "lo", "up")
        for node in self.nodes:
            _run("ip", "netns", "add", node.netns)
            self._cleanup.callback(_run, "ip", "netns", "delete", node.netns, check=False)
            # The veth is made in the hub and its other end moved into the node as eth0.
            peer = f"mn{self.token}n{node.index}"
            _run("ip", "-n", hub, "link", "add", node.hub_veth, "type", "veth", "peer", peer)
            _run("ip", "-n", hub, "link", "set", peer, "netns", node.netns)
            _run("ip", "-n", node.netns, "link", "set", peer, "name", "eth0")
            _run("ip", "-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
            _run("ip", "-n", node.netns, "link", "set", "eth0", "up")
            _run("ip", "-n", node.netns, "link", "set", "lo", "up")
            _run("ip", "-n", hub, "link", "set", node.hub_veth, "master", self.bridge, "up")
            # No default route in the node: nothing leaves the cluster's own addresses.

    def partition(self, node: Node) -> None:
        """Cut ``node`` off: its link to the hub goes down (its daemon and tasks keep running)."""
        _run("ip", "-n", self.hub, "link", "set", node.hub_veth, "down")

    def heal(self, node: Node) -> None:
        _run("ip", "-n", self.hub, "link", "set", node.hub_veth, "up")

    # --- the daemons ---------------------------------------------------------------------

    def start_daemon(self, node: Node) -> None:
        """``node``'s dockerd in its namespace, with a hostname of its own (``unshare --uts``)."""
        node.folder.mkdir(exist_ok=True)
        node.data_root.mkdir(exist_ok=True)
        node.exec_root.mkdir(exist_ok=True)
        log = (node.folder / "dockerd.log").open("a")
        command = node.in_netns(
            "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', node.name,
            str(DOCKERD),
            "--data-root", str(node.data_root),
            "--exec-root", str(node.exec_root),
            "--pidfile", str(node.pidfile),
            "--host", node.socket,
            "--bip", f"172.31.{node.index}.1/24",
            "--cgroup-parent", node.cgroup_parent,
            "--log-level", "warn",
        )  # fmt: skip
        node.process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()

    def stop_daemon(self, node: Node) -> None:
        """SIGTERM to ``node``'s dockerd, a bounded wait, then SIGKILL."""
        process = node.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)

    def kill_node(self, node: Node) -> None:
        """The node dies as a machine does: its link goes, then every process of it at once."""
        self.partition(node)
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait(timeout=STOP_SECONDS)
        self._kill_leftovers(node)

    def restart_node(self, node: Node) -> None:
        """A killed node back: its mounts cleared, link up, daemon started on its data root."""
        self._unmount(node)
        self.heal(node)
        self.start_daemon(node)
        wait_until(f"{node.name}'s dockerd answering again", node.answers, timeout=60)

    def _kill_leftovers(self, node: Node) -> None:
        # Shims and containers outlive a killed dockerd: everything in the node's namespace
        # (containerd, shims) and in its cgroups (the containers, in namespaces of their own).
        for _ in range(3):
            pids = set(_netns_pids(node.netns)) | set(_cgroup_pids(node.cgroup_parent))
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)

    def _remove_node(self, node: Node) -> None:
        self.stop_daemon(node)
        self._kill_leftovers(node)
        self._unmount(node)
        _remove_cgroups(node.cgroup_parent)
        shutil.rmtree(node.exec_root, ignore_errors=True)
        shutil.rmtree(node.folder, ignore_errors=True)

    def _unmount(self, node: Node) -> None:
        # Deepest first: overlay mounts, shm, netns files, then the data root bound on itself.
        for root in (node.data_root, node.exec_root):
            for mount in sorted(_mounts_under(root), key=len, reverse=True):
                _run("umount", "--lazy", mount, check=False)

    # --- the swarm -----------------------------------------------------------------------

    def _form_swarm(self) -> None:
        lead = self.nodes[self.lead]
        others = [node for node in self.nodes if node is not lead]
        lead.docker(
            "swarm", "init",
            "--advertise-addr", lead.address,
            "--listen-addr", f"{lead.address}:{SWARM_PORT}",
            "--default-addr-pool", ADDRESS_POOL,
        )  # fmt: skip
        token = lead.docker("swarm", "join-token", "--quiet", "manager").stdout.strip()
        for node in others:
            node.docker(
                "swarm", "join",
                "--advertise-addr", node.address,
                "--listen-addr", f"{node.address}:{SWARM_PORT}",
                "--token", token,
                f"{lead.address}:{SWARM_PORT}",
            )  # fmt: skip
        side_by_side(lambda node: self._label(lead, node), self.nodes, timeout=60)

    def _label(self, lead: Node, node: Node) -> None:
        node.node_id = node.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
        labels = [arg for k, v in node.role.labels.items() for arg in ("--label-add", f"{k}={v}")]
        if labels:
            lead.docker("node", "update", *labels, node.node_id)

    def manager(self, *, avoiding: Sequence[Node] = ()) -> Node:
        """A node that answers and is not one of ``avoiding``."""
        for node in self.nodes:
            if node not in avoiding and node.process is not None and node.process.poll() is None:
                return node
        raise AssertionError("no node of the cluster runs")

    def node(self, hostname: str) -> Node:
        return next(node for node in self.nodes if node.name == hostname)

    def has_leader(self, via: Node, timeout: float = 5) -> bool:
        listed = via.docker("node", "ls", "--format", "{{.ManagerStatus}}", timeout=timeout,
                            check=False)  # fmt: skip
        return listed.returncode == 0 and "Leader" in listed.stdout

    # --- images --------------------------------------------------------------------------

    def load_images(self, archive: Path) -> None:
        """``docker load`` of ``archive`` on every node at once."""

        def load(node: Node) -> None:
            with archive.open("rb") as stream:
                loaded = node.docker("load", "--quiet", timeout=300, check=False, stdin=stream)
            assert loaded.returncode == 0, loaded.stderr[-500:]

        side_by_side(load, self.nodes, timeout=320)

    def close(self) -> None:
        """Every node killed at once, as machines die, then every trace removed.

        The cluster is thrown away: a graceful stop (SIGTERM) makes each dockerd stop its tasks
        one by one within their grace periods, which took 10 to 15 s for the three daemons in turn.
        A kill is the path ``kill_node`` takes in the faults, and ``leftovers`` proves it leaves
        nothing behind; each daemon is still stopped by its own pid.
        """
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
        # Each node's removal (its leftovers killed, mounts, cgroups, folders of ~600 MB of
        # image layers) beside the others'; the cleanup stack then finds them done and removes
        # the namespaces and the root. A removal that fails here is tried again by the stack,
        # and ``leftovers`` names whatever stays.
        try:
            with contextlib.suppress(AssertionError):
                side_by_side(self._remove_node, self.nodes, timeout=120)
        finally:
            self._cleanup.close()


def side_by_side(action: Callable[[Node], None], nodes: Sequence[Node], timeout: float) -> None:
    """``action`` on every node at once, each in a thread; AssertionError naming the nodes it
    failed on (or did not end on within ``timeout``)."""
    errors: list[str] = []

    def run(node: Node) -> None:
        try:
            action(node)
        except Exception as error:  # said for its node below, with the others'
            errors.append(f"{node.name}: {error}")

    threads = [threading.Thread(target=run, args=(node,), daemon=True) for node in nodes]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0))
    errors += [
        f"{node.name}: not done in {timeout:g} s"
        for node, thread in zip(nodes, threads, strict=True)
        if thread.is_alive()
    ]
    assert not errors, errors


_T = TypeVar("_T")


def in_the_background(what: str, action: Callable[[], _T]) -> Callable[[float], _T]:
    """``action`` started now in a thread of its own (a daemon: a hung one never holds the
    interpreter); the returned call waits up to its timeout for the result, and raises what
    ``action`` raised, or an AssertionError naming ``what`` if it is not done by then."""
    outcome: list[_T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as error:  # raised by the wait, in the caller's thread
            failed.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def wait(timeout: float) -> _T:
        thread.join(timeout=timeout)
        if failed:
            raise failed[0]
        assert outcome, f"{what}: not done within {timeout:g} s"
        return outcome[0]

    return wait


SEED_PARTS = ("image", "overlay2")  # a data root's image store, as the overlay2 driver keeps it


def seeded_images(archive: Path, beside: Path) -> Path | None:
    """A dockerd image store holding ``archive``'s images, made once per archive by a dockerd
    of its own and cached beside it; None where its layers cannot be hard-linked into
    ``beside`` (another filesystem): then each node loads the archive itself.

    Three ``docker load``s at once took 12-17 s here; hard links to one store's layers take
    about a second. Only the layers are shared: each node gets its own copy of the image
    metadata, and the daemons' databases are their own. An image layer is never written to (a
    container writes to a layer of its own above it).
    """
    seed = archive.with_suffix(".seed")
    if seed.parent.stat().st_dev != beside.stat().st_dev:
        return None
    if (seed / "ready").is_file():
        return seed
    for stale in IMAGE_CACHE.glob("*.seed"):
        shutil.rmtree(stale, ignore_errors=True)
    maker = Cluster([NodeRole("seed", {})])
    node = Node(1, maker.roles[0], maker.token, maker.root)
    maker.nodes = [node]
    maker.root.chmod(0o755)
    _run("ip", "netns", "add", node.netns)
    try:
        maker.start_daemon(node)
        wait_until("the seeding dockerd answering", node.answers, timeout=60)
        with archive.open("rb") as stream:
            node.docker("load", "--quiet", timeout=300, stdin=stream)
        maker.stop_daemon(node)  # a clean stop: its stores written out whole
        maker._unmount(node)
        seed.mkdir()
        for part in SEED_PARTS:
            (node.data_root / part).rename(seed / part)
        (seed / "ready").touch()
    finally:
        maker._remove_node(node)
        _run("ip", "netns", "delete", node.netns, check=False)
        shutil.rmtree(maker.root, ignore_errors=True)
        if not (seed / "ready").is_file():
            shutil.rmtree(seed, ignore_errors=True)
    return seed


def seed_node(node: Node, seed: Path) -> None:
    """``node``'s data root begun with ``seed``'s image store: metadata copied, layers linked."""
    node.folder.mkdir(exist_ok=True)
    node.data_root.mkdir(exist_ok=True)
    _run("cp", "-a", str(seed / "image"), str(node.data_root / "image"))
    _run("cp", "-al", str(seed / "overlay2"), str(node.data_root / "overlay2"))


def saved_images(tags: Mapping[str, str], save: Callable[[Sequence[str], Path], None]) -> Path:
    """The stand-ins as one ``docker save`` archive, made once per set of tags (a cache)."""
    names = sorted(set(tags.values()))
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    archive = IMAGE_CACHE / f"standins-{digest}.tar"
    if archive.is_file():
        return archive
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    for stale in IMAGE_CACHE.glob("standins-*.tar"):
        stale.unlink()
    partial = archive.with_suffix(".partial")
    save(names, partial)
    partial.rename(archive)
    return archive


def save_from_local_engine(names: Sequence[str], target: Path) -> None:
    """``docker save`` on the machine's own engine (the caller holds the engine lock)."""
    _run("docker", "save", "--output", str(target), *names, timeout=600)


def postmasters(node: Node) -> list[str]:
    """The postgres servers running on ``node``, as ``pid in <container>``: the processes in its
    cgroups whose argv[0] is postgres itself and whose parent is not postgres. A server's
    children rename theirs ``postgres: <role>``, but only after the fork: a backend just forked
    still shows the postmaster's argv, under the postmaster. A container waiting on postgres'
    data lock runs, but runs no server: only this tells them apart."""
    found = []
    for pid in _cgroup_pids(node.cgroup_parent):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if _program(pid) != b"postgres":
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if _program(parent).startswith(b"postgres"):
                continue
            cgroup = Path(f"/proc/{pid}/cgroup").read_text().splitlines()[0]
            found.append(f"{pid} in {cgroup.rsplit('/', 1)[-1][:12]}")
    return found


def _program(pid: int) -> bytes:
    """The name in ``pid``'s argv[0], without its folder."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].rsplit(b"/", 1)[-1]


def _netns_pids(netns: str) -> list[int]:
    listed = _run("ip", "netns", "pids", netns, check=False)
    return [int(pid) for pid in listed.stdout.split() if pid.isdigit()]


def _cgroup_pids(parent: str) -> list[int]:
    """Every process in the cgroups under ``parent`` (cgroup v1: each hierarchy; v2: one)."""
    pids: set[int] = set()
    for folder in _cgroup_folders(parent):
        # os.walk, not rglob: a container's cgroup folder goes when its task stops, also while
        # it is walked; rglob raised FileNotFoundError then (and ended the partition test's
        # watch), os.walk passes over it.
        for path, _folders, files in os.walk(folder):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    procs = (Path(path) / "cgroup.procs").read_text()
                    pids |= {int(pid) for pid in procs.split() if pid.isdigit()}
    return sorted(pids)


def _cgroup_folders(parent: str) -> list[Path]:
    relative = parent.strip("/")
    candidates = [CGROUP_ROOT / relative]
    if CGROUP_ROOT.is_dir():
        candidates += [hierarchy / relative for hierarchy in CGROUP_ROOT.iterdir()]
    return [folder for folder in candidates if folder.is_dir()]


def _remove_cgroups(parent: str) -> None:
    """The folders ``--cgroup-parent`` left, deepest first (a cgroup goes only once empty)."""
    for folder in _cgroup_folders(parent):
        for child in sorted(
            (p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            folder.rmdir()


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root)
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            mounts.append(point)
    return mounts


def leftovers(cluster: Cluster) -> list[str]:
    """What of the cluster is still on the machine: namespaces, mounts, cgroups, folders."""
    left = [name for name in _listed_netns() if name.startswith(f"depotmn-{cluster.token}-")]
    for node in cluster.nodes:
        left += _mounts_under(node.data_root) + _mounts_under(node.exec_root)
        left += [str(folder) for folder in _cgroup_folders(node.cgroup_parent)]
        if node.exec_root.exists():
            left.append(str(node.exec_root))
        if node.process is not None and node.process.poll() is None:
            left.append(f"dockerd pid {node.process.pid}")
    if cluster.root.exists():
        left.append(str(cluster.root))
    return left


def _listed_netns() -> list[str]:
    return [line.split()[0] for line in _run("ip", "netns", "list").stdout.splitlines() if line]


@contextlib.contextmanager
def cluster_of(
    roles: Sequence[NodeRole], lead: int = 0, seed: Path | None = None
) -> Iterator[Cluster]:
    """A started cluster, initialised by ``roles[lead]``, each node's images from ``seed`` if
    given (``seeded_images``); removed afterwards whatever happened."""
    cluster = Cluster(roles, lead, seed=seed)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


def inspect(node: Node, kind: str, *names: str) -> list[dict[str, Any]]:
    if not names:
        return []
    found: list[dict[str, Any]] = json.loads(node.docker(kind, "inspect", *names).stdout)
    return found


# --- probes ----------------------------------------------------------------------------------

# A client on depot-network asking discovery's /health: each round resolves tasks.discovery
# and tries its addresses in turn, as a client of a dnsrr service does (the next address when
# one does not answer within 1 s); a round fails only when none answers. First tries that
# failed are counted too. Bounded in rounds and seconds; /tmp/stop ends it early.
DISCOVERY_PROBE = r"""
i=0; ok=0; failed=0; first=0; end=$(( $(date +%s) + {seconds} ))
while [ "$i" -lt {limit} ] && [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/stop ]; do
  i=$((i + 1)); answered=0; try=0
  set -- $(nslookup tasks.discovery 2>/dev/null | sed -n 's/^Address: *//p' | grep -v ':53$')
  n=$#
  while [ "$n" -gt 0 ] && [ "$try" -lt "$n" ]; do
    eval "address=\${{$(( (i + try) % n + 1 ))}}"
    if printf 'GET /health HTTP/1.0\r\n\r\n' | nc -w 1 "$address" 4860 | grep -q '200 OK'; then
      answered=1; break
    fi
    [ "$try" -eq 0 ] && first=$((first + 1))
    try=$((try + 1))
  done
  if [ "$answered" -eq 1 ]; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
  sleep 0.1
done
echo "requests $i ok $ok failed $failed first-try-failed $first"
"""

# The console through the nodes' addresses, as a load balancer in front of them would: its port
# is host-mode (no IPVS here), bound on the node that runs its task; a request fails when no
# node answers. Run in the hub namespace, outside the swarm.
CONSOLE_PROBE = r"""
import socket, sys, time, os
addresses, port, stop = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[5]
limit, seconds = int(sys.argv[3]), float(sys.argv[4])
def get(address):
    try:
        with socket.create_connection((address, port), timeout=1) as s:
            s.settimeout(1)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
i = ok = failed = first = 0
end = time.monotonic() + seconds
while i < limit and time.monotonic() < end and not os.path.exists(stop):
    i += 1
    answers = [get(a) for a in addresses[i % len(addresses):] + addresses[:i % len(addresses)]]
    ok += any(answers); failed += not any(answers)
    time.sleep(0.1)
print(f"requests {i} ok {ok} failed {failed} first-try-failed {first}", flush=True)
"""


@dataclass(frozen=True)
class ProbeResult:
    requests: int
    failed: int
    first_try_failed: int

    @classmethod
    def parse(cls, text: str) -> ProbeResult:
        found = re.search(r"requests (\d+) ok \d+ failed (\d+) first-try-failed (\d+)", text)
        assert found, f"the probe said nothing useful: {text[-800:]}"
        return cls(int(found[1]), int(found[2]), int(found[3]))

    def __str__(self) -> str:
        return f"{self.requests} requests, {self.failed} failed"
