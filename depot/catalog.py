"""The depot's services as the reference deploys them: one ``ServiceSpec`` each.

This is the only place that knows what each service *is* (image, port, probe, networks, mounts,
start order). What differs between stacks (restart, limits, profiles, ports, log level) lives in
``DepotSettings``; ``depot.components`` turns a spec plus settings into resources.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from depot.types import Profile, ServiceName

NetworkName = Literal["depot-network", "database-network", "backup-network"]
DEPOT_NETWORK: NetworkName = "depot-network"
DATABASE_NETWORK: NetworkName = "database-network"
# The backup service's way off the host (to its rclone targets); nothing else joins it, so the
# database network stays internal and no other service gains a route out through it.
BACKUP_NETWORK: NetworkName = "backup-network"

VolumeName = Literal["postgres-data", "postgres-backups"]
POSTGRES_DATA_VOLUME: VolumeName = "postgres-data"
POSTGRES_BACKUPS_VOLUME: VolumeName = "postgres-backups"
"""The recent backups kept on the host: stateful like the data, and guarded the same way."""
LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}  # json-file rotation, reference "Logging"


@dataclass(frozen=True)
class TmpfsOptions:
    """How an in-memory mount is made: each runtime writes these its own way."""

    size_mib: int
    noexec: bool = True
    nosuid: bool = True

    @property
    def size_bytes(self) -> int:
        return self.size_mib * 1024 * 1024

    @property
    def mount_options(self) -> str:
        """As ``docker run --tmpfs`` and Compose write them: ``rw,noexec,nosuid,size=64m``."""
        flags = ["rw", *(["noexec"] if self.noexec else []), *(["nosuid"] if self.nosuid else [])]
        return ",".join([*flags, f"size={self.size_mib}m"])


# Every tmpfs mount: writable scratch space that can run nothing and is bounded in size.
SCRATCH = TmpfsOptions(size_mib=64)

SecretName = Literal["database_password", "grafana_admin_password", "backup_rclone_config"]


@dataclass(frozen=True)
class StackSecret:
    """A secret the stack holds: the secret config ``setting``, or generated when unset.

    ``generated`` False: given or absent, never made up — a credential file such as rclone's
    configuration, which only its owner can write. A service reads it only where it is set.
    """

    name: SecretName
    setting: str  # the key under depot:, set with `pulumi config set --secret`
    generated: bool = True


SECRETS: tuple[StackSecret, ...] = (
    StackSecret("database_password", setting="databasePassword"),
    StackSecret("grafana_admin_password", setting="grafanaAdminPassword"),
    StackSecret("backup_rclone_config", setting="backupRcloneConfig", generated=False),
)
"""Every secret a service reads; adding one here is what makes the program hold it."""


def worst_case_seconds(*, interval: int, timeout: int, retries: int, start_period: int) -> int:
    """How long Docker may take to call a container unhealthy after it starts.

    The start period passes, then every probe may run to its timeout and fail, ``retries``
    times in a row. Waits (``wait_timeout``, Swarm's update monitor) must cover at least this.
    """
    return start_period + retries * (interval + timeout)


# How often a container is probed during its start period (Engine 25+, API 1.44): its first
# probe no longer waits one ``interval``, so a health-gated chain (postgres → dispatch →
# console) is healthy in seconds, not in the sum of its intervals. An older engine ignores it
# (README "depot doctor"). The probe ends the start period as soon as it passes.
START_INTERVAL = 1


@dataclass(frozen=True)
class Healthcheck:
    """A Docker healthcheck; durations in seconds.

    ``start_interval`` applies only within ``start_period`` (Compose refuses it without one),
    so every check has a start period covering its service's start. It does not enter the
    worst case: a probe failing during the start period does not count.
    """

    test: tuple[str, ...]
    interval: int
    timeout: int
    retries: int
    start_period: int
    start_interval: int = START_INTERVAL

    @property
    def worst_case_seconds(self) -> int:
        """How long Docker may take to call the container unhealthy after it starts."""
        return worst_case_seconds(
            interval=self.interval,
            timeout=self.timeout,
            retries=self.retries,
            start_period=self.start_period,
        )

    @property
    def wait_timeout(self) -> int:
        """Seconds ``pulumi up`` waits for healthy: the worst case plus one probe of slack.

        The provider's default (60 s) is shorter than discovery's worst case (69 s), so a
        slow but healthy start would fail the deployment.
        """
        return self.worst_case_seconds + self.interval


def longest_chain(
    services: Sequence[ServiceSpec], seconds: Callable[[ServiceSpec], int]
) -> tuple[int, list[str]]:
    """The chain of ``waits_for`` among ``services`` with the largest sum of ``seconds``, and
    that sum (a service waited for but not among them ends the chain)."""
    by_name = {spec.name: spec for spec in services}

    def chain(spec: ServiceSpec) -> tuple[int, list[str]]:
        longest: tuple[int, list[str]] = (0, [])
        for name in spec.waits_for:
            if name in by_name:
                longest = max(longest, chain(by_name[name]))
        return longest[0] + seconds(spec), [*longest[1], spec.name]

    return max((chain(spec) for spec in services), default=(0, []))


def database_url(password: str) -> str:
    """dispatch's ``DATABASE_URL`` for ``password``: postgres' user, alias, port and database."""
    return f"postgres://postgres:{quote(password, safe='')}@postgres:5432/dispatch"


def http_probe(port: int, path: str = "/health") -> tuple[str, ...]:
    """An exec-form probe with busybox wget, present in every Alpine-based depot image."""
    return ("CMD", "wget", "-q", "-O-", f"http://localhost:{port}{path}")


# The numeric user of docker/rust-service.Dockerfile, stated again so the container cannot
# fall back to root if an image is built without it.
SERVICE_USER = "10001:10001"

# busybox `pgrep -x` compares argv[0] (the full path) and never the process name, so the
# anchored pattern is what finds the entrypoint in both busybox and procps.
WORKER_PROBE = ("CMD", "pgrep", "^depot-service$")

RUST_SERVICE_PROBE_TIMING = {"interval": 10, "timeout": 3, "retries": 3, "start_period": 30}


# Two postgres servers must never run on one data directory: the data would be corrupted. Swarm
# can start a rescheduled postgres task beside the old one (a partition of the data node heals:
# the new task starts, the old is stopped only then), and postgres' own postmaster.pid cannot
# see a server in another container (each is PID 1 of its own PID namespace, and its SysV
# interlock is per IPC namespace). So the service's entrypoint first takes an exclusive flock(2)
# on the data directory itself — the volume's mount point, one inode for every container on the
# node, no file inside it (initdb wants it empty) — waiting while another holds it, then execs
# the image's own entrypoint. The open descriptor is inherited through every exec by the
# postmaster (PID 1, still the one that gets the stop signal) and its children: the lock lives
# exactly as long as the server and is released by the kernel when the last of them exits.
# While it waits, the shell is PID 1, which ignores signals it has no trap for: the trap ends
# the wait at once on the stop signal. `flock` is util-linux's (the Debian stand-in) or busybox's
# applet (the Alpine image: CONFIG_FLOCK=y in Alpine's busybox). POSIX sh: busybox ash and dash.
DATA_LOCK_SCRIPT = """\
data="$1"; shift
exec 9<"$data" || exit 1
if ! flock -n -x 9; then
  echo "depot: another postgres holds the data directory $data; waiting until it stops" >&2
  flock -x 9 & waiter=$!
  trap 'kill "$waiter" 2>/dev/null; exit 143' INT TERM
  wait "$waiter" || { echo "depot: could not lock the data directory $data" >&2; exit 1; }
  trap - INT TERM
  echo "depot: the data directory $data is free; starting postgres" >&2
fi
exec "$@"
"""
DATA_LOCK_NAME = "depot-data-lock"  # the script's $0, as `ps` and error messages name it


def data_lock_entrypoint(data_directory: str) -> tuple[str, ...]:
    """The entrypoint that holds ``data_directory`` locked, then runs its arguments (the image's
    own entrypoint and command) in its place."""
    return ("/bin/sh", "-c", DATA_LOCK_SCRIPT, DATA_LOCK_NAME, data_directory)


@dataclass(frozen=True)
class BuiltImage:
    """Built from ``docker/rust-service.Dockerfile`` with ``BINARY`` set to ``binary``."""

    binary: str


@dataclass(frozen=True)
class ProjectImage:
    """Built from a Dockerfile and context of this repository, on another service's image.

    The build argument ``base_arg`` is the stack's own image of ``base`` (its ``depot:images``
    pin, else the catalog's), so the tools it brings are that server's own version.
    """

    dockerfile: str  # relative to the project root
    context: str  # relative to the project root
    base: ServiceName
    base_arg: str


@dataclass(frozen=True)
class PulledImage:
    """A third-party image, pinned to an exact version (overridable by ``depot:images``)."""

    reference: str


@dataclass(frozen=True)
class SecretFile:
    """A secret delivered as a file under /run/secrets, readable only by ``owner``."""

    secret: SecretName
    env: str  # the image's ``*_FILE`` variable that points at the file
    owner: int
    mode: int = 0o400  # read by its owner only
    # A secret the stack may leave unset (``StackSecret.generated`` False): then no file, and
    # ``env`` is ``unset_env`` instead.
    unset_env: str | None = None

    @property
    def path(self) -> str:
        return f"/run/secrets/{self.secret}"


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable built from a secret (``DATABASE_URL`` from the password)."""

    name: str
    secret: SecretName
    render: Callable[[str], str]  # the secret's value → the variable's value


BindSetting = Literal["console.distPath", "console.sessionsPath"]


@dataclass(frozen=True)
class BindSpec:
    """A host directory mounted into the service; the stack says where it is on the host."""

    setting: BindSetting  # the depot: key holding the host path
    target: str
    read_only: bool


@dataclass(frozen=True)
class VolumeMount:
    """A named volume of the stack mounted into the service at ``target``."""

    volume: VolumeName
    target: str


@dataclass(frozen=True)
class GpuRequest:
    """Access to the host's GPUs: every one of them, as ``docker run --gpus all``."""

    count: int | Literal["all"] = "all"


@dataclass(frozen=True)
class ServiceSpec:
    """What one depot service is, independent of the stack it runs in."""

    name: ServiceName
    image: BuiltImage | PulledImage | ProjectImage
    healthcheck: Healthcheck
    networks: tuple[NetworkName, ...]
    port: int | None = None
    profile: Profile | None = None
    # The stack setting that switches it on, for a service that is neither always on nor in a
    # profile: the backup service runs when ``depot:backup.enabled`` is true.
    enabled_by: Literal["backup.enabled"] | None = None
    waits_for: tuple[ServiceName, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    log_target: str | None = None  # the RUST_LOG target, for the Rust services
    extra_log_directives: str = ""
    secret_files: tuple[SecretFile, ...] = ()
    secret_env: tuple[SecretEnv, ...] = ()
    tmpfs: tuple[str, ...] = ()  # in-memory writable paths (SCRATCH); the root is read-only
    # Why the root filesystem must stay writable (None: it is read-only). See README "Policy".
    writable_root: str | None = None
    # Capabilities kept after dropping ALL: only what the image's entrypoint needs.
    capabilities: tuple[str, ...] = ()
    user: str | None = None  # None: the image's own user
    metrics: bool = False
    gpu: GpuRequest | None = None
    stop_grace_seconds: int = 10
    volumes: tuple[VolumeMount, ...] = ()  # the stack's named volumes it holds data in
    binds: tuple[BindSpec, ...] = ()
    # The node label a scheduler pins it to (Swarm: ``node.labels.<label> == true``): the node
    # that holds its data, its device or its GPU. ``depot:swarm.nodeLabels`` may rename it.
    node_label: str | None = None
    # Runs on the node of this other service, under that one's label (renamed with it).
    pinned_with: ServiceName | None = None
    # The image's own entrypoint and command, for a service whose entrypoint the depot puts in
    # front of it (the data lock): replacing an image's entrypoint drops its CMD too.
    image_command: tuple[str, ...] = ()

    @property
    def container_name(self) -> str:
        return f"depot-{self.name}"

    @property
    def built(self) -> bool:
        """Its image is ours, built from this project's Dockerfiles (not a third party's)."""
        return isinstance(self.image, (BuiltImage, ProjectImage))

    @property
    def init(self) -> bool | None:
        """An init as PID 1: our entrypoints (a Rust binary, a shell loop) have no default
        SIGTERM handling as PID 1, so ``docker stop`` would end in a kill after the grace."""
        return True if self.built else None

    @property
    def data_mount(self) -> str | None:
        """Where ``postgres-data`` is mounted, if this service holds it."""
        return next((m.target for m in self.volumes if m.volume == POSTGRES_DATA_VOLUME), None)

    @property
    def entrypoint(self) -> tuple[str, ...] | None:
        """The data lock for a service holding ``postgres-data`` (``DATA_LOCK_SCRIPT``); None:
        the image's own entrypoint."""
        mount = self.data_mount
        return None if mount is None else data_lock_entrypoint(mount)

    @property
    def command(self) -> tuple[str, ...] | None:
        """What the entrypoint runs: the image's own entrypoint and command behind the lock."""
        return self.image_command if self.entrypoint else None


DISCOVERY = ServiceSpec(
    name="discovery",
    image=BuiltImage(binary="discovery"),
    healthcheck=Healthcheck(test=http_probe(4860), **RUST_SERVICE_PROBE_TIMING),
    networks=(DEPOT_NETWORK,),
    port=4860,
    env=(("PORT", "4860"),),
    log_target="discovery",
    tmpfs=("/tmp", "/var/run"),  # noqa: S108 - in-memory scratch space, as in the reference
    metrics=True,
    user=SERVICE_USER,
)

POSTGRES = ServiceSpec(
    name="postgres",
    image=PulledImage(reference="postgres:17.2-alpine"),
    healthcheck=Healthcheck(
        test=("CMD", "pg_isready", "-U", "postgres"),
        interval=5,
        timeout=3,
        retries=5,
        # the first start's initdb, or a recovery after a crash, is not yet a failure
        start_period=30,
    ),
    networks=(DATABASE_NETWORK,),
    port=5432,
    env=(("POSTGRES_DB", "dispatch"),),
    # uid 70 is the postgres user of the Alpine image; its entrypoint reads the file as that user
    secret_files=(SecretFile("database_password", "POSTGRES_PASSWORD_FILE", owner=70),),
    stop_grace_seconds=30,  # let postgres finish a clean shutdown instead of being killed
    volumes=(VolumeMount(POSTGRES_DATA_VOLUME, "/var/lib/postgresql/data"),),
    # The official image's ENTRYPOINT and CMD, run behind the data lock (``entrypoint``); its
    # STOPSIGNAL (SIGINT, a fast shutdown) is the image's and stays.
    image_command=("docker-entrypoint.sh", "postgres"),
    node_label="depot.postgres-data",  # a local volume lives on one node: postgres goes there
    tmpfs=("/tmp", "/var/run/postgresql"),  # noqa: S108 - the socket directory and scratch
    writable_root=(
        "the provider copies the password file into the container after creating it and "
        "before starting it, and Docker refuses that copy into a read-only root filesystem"
    ),
    # The entrypoint chowns the data directory, then drops from root to the postgres user; the
    # data lock before it opens that directory (the postgres user's, 0700) as root: DAC_OVERRIDE.
    capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"),
)

DISPATCH = ServiceSpec(
    name="dispatch",
    image=BuiltImage(binary="dispatch"),
    healthcheck=Healthcheck(test=http_probe(4890), **RUST_SERVICE_PROBE_TIMING),
    networks=(DEPOT_NETWORK, DATABASE_NETWORK),
    port=4890,
    waits_for=("postgres",),
    env=(("PORT", "4890"),),
    log_target="dispatch",
    extra_log_directives=",sqlx=warn",
    metrics=True,
    secret_env=(SecretEnv("DATABASE_URL", "database_password", render=database_url),),
    tmpfs=("/tmp",),  # noqa: S108 - scratch space on a read-only root
    user=SERVICE_USER,
)

GRAFANA = ServiceSpec(
    name="grafana",
    image=PulledImage(reference="grafana/grafana:11.4.0"),
    healthcheck=Healthcheck(
        test=http_probe(3000, "/api/health"), interval=10, timeout=3, retries=3, start_period=30
    ),
    networks=(DEPOT_NETWORK,),
    port=3000,
    env=(("GF_SECURITY_ADMIN_USER", "admin"),),
    # uid 472 is the grafana user of the official image
    secret_files=(
        SecretFile("grafana_admin_password", "GF_SECURITY_ADMIN_PASSWORD__FILE", owner=472),
    ),
    writable_root=(
        "grafana keeps its database, plugins and sessions under /var/lib/grafana, and the "
        "reference gives it no volume: that state lives in the container's own layer"
    ),
)

CONSOLE = ServiceSpec(
    name="console",
    image=PulledImage(reference="nginx:1.27.3-alpine"),
    healthcheck=Healthcheck(
        test=("CMD", "wget", "-q", "-O-", "http://127.0.0.1:80/"),
        interval=10,
        timeout=3,
        retries=3,
        start_period=10,
    ),
    networks=(DEPOT_NETWORK,),
    port=80,
    waits_for=("discovery", "dispatch", "grafana"),
    binds=(
        BindSpec("console.distPath", "/usr/share/nginx/html", read_only=True),
        BindSpec("console.sessionsPath", "/data/sessions", read_only=False),
    ),
    tmpfs=("/tmp", "/var/cache/nginx", "/var/run"),  # noqa: S108 - nginx's cache, pid, scratch
    # The master gives its temp paths to the nginx user and starts workers as that user. Port 80
    # needs no NET_BIND_SERVICE: Docker Engine 20.10+ lets any process in a container bind low
    # ports (net.ipv4.ip_unprivileged_port_start=0), as tests/engine/test_exceptions.py shows.
    capabilities=("CHOWN", "SETGID", "SETUID"),
)

SPLAT_WORKER = ServiceSpec(
    name="splat-worker",
    image=BuiltImage(binary="splat-worker"),
    # A worker without an HTTP port: the probe checks that its process is alive.
    healthcheck=Healthcheck(test=WORKER_PROBE, **RUST_SERVICE_PROBE_TIMING),
    networks=(DEPOT_NETWORK,),
    profile="gpu",
    log_target="splat_worker",
    gpu=GpuRequest(),
    tmpfs=("/tmp",),  # noqa: S108 - scratch space on a read-only root
    user=SERVICE_USER,
    node_label="depot.gpu",
)

RTK_BASE = ServiceSpec(
    name="rtk-base",
    image=BuiltImage(binary="rtk-base"),
    healthcheck=Healthcheck(test=WORKER_PROBE, **RUST_SERVICE_PROBE_TIMING),
    networks=(DEPOT_NETWORK,),
    profile="rtk",
    log_target="rtk_base",
    tmpfs=("/tmp",),  # noqa: S108 - scratch space on a read-only root
    user=SERVICE_USER,
    node_label="depot.gnss",  # the node wired to the GNSS receiver
)

BACKUP_USER = "70:70"  # postgres' uid and gid in its Alpine image: the dumps are the server's
BACKUP_INTERVAL_ENV = "DEPOT_BACKUP_INTERVAL"
BACKUP_TARGETS_ENV = "DEPOT_BACKUP_TARGETS"
BACKUP_RECIPIENTS_ENV = "DEPOT_BACKUP_RECIPIENTS"

BACKUP = ServiceSpec(
    name="backup",
    # The stack's own postgres image with age and rclone added: pg_dump and pg_restore are
    # the server's own version, as a dump must be.
    image=ProjectImage(
        dockerfile="docker/backup.Dockerfile",
        context="docker/backup",
        base="postgres",
        base_arg="POSTGRES_IMAGE",
    ),
    # Unhealthy once the newest good backup is older than twice the schedule: a stopped
    # backup is seen. The start period covers the first backup, which runs at once.
    healthcheck=Healthcheck(
        test=("CMD", "depot-backup", "health"), interval=10, timeout=5, retries=3, start_period=300
    ),
    # backup-network first: the container's own network is the one with a route off the host
    # (to the targets); postgres is reached on the internal database network.
    networks=(BACKUP_NETWORK, DATABASE_NETWORK),
    enabled_by="backup.enabled",
    waits_for=("postgres",),
    # libpq's own variables: pg_dump and psql reach the depot's database with no arguments.
    env=(
        ("PGDATABASE", "dispatch"),
        ("PGHOST", "postgres"),
        ("PGPORT", "5432"),
        ("PGUSER", "postgres"),
    ),
    secret_files=(
        SecretFile("database_password", "DATABASE_PASSWORD_FILE", owner=70),
        # rclone reads /dev/null as "no configuration file: remotes in memory only", which is
        # what inline remotes (:s3,env_auth=true:…) need.
        SecretFile("backup_rclone_config", "RCLONE_CONFIG", owner=70, unset_env="/dev/null"),
    ),
    tmpfs=("/tmp",),  # noqa: S108 - in-memory scratch; dumps go to /backups
    writable_root=(
        "the provider copies the password file (and the rclone configuration) into the "
        "container after creating it and before starting it, and Docker refuses that copy into "
        "a read-only root filesystem; it runs as postgres' uid 70 with every capability dropped"
    ),
    user=BACKUP_USER,
    stop_grace_seconds=30,  # a dump being written is abandoned cleanly, not killed at once
    volumes=(VolumeMount(POSTGRES_BACKUPS_VOLUME, "/backups"),),
    pinned_with="postgres",  # its local volume on the data node, next to what it backs up
)

SERVICES: tuple[ServiceSpec, ...] = (
    POSTGRES,
    DISCOVERY,
    DISPATCH,
    GRAFANA,
    CONSOLE,
    SPLAT_WORKER,
    RTK_BASE,
    BACKUP,
)
"""In dependency order: every service comes after those it waits for."""


def service(name: ServiceName) -> ServiceSpec:
    """The spec of ``name``."""
    return next(spec for spec in SERVICES if spec.name == name)
