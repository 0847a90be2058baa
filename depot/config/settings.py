"""The stack's settings: one typed model per concern, validated once before any resource exists.

Field aliases are the keys users write in ``Pulumi.<stack>.yaml`` under the ``depot:`` namespace
(camelCase, as Pulumi config keys usually are). The docstring under each field is its
description: the manual's settings reference (docs/reference/settings.md) is generated from them,
and ``tests/test_docs_reference.py`` fails when one is missing. ``expected`` (in a field's JSON
schema extra) says what a value must look like, for the loader's type errors.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel, to_snake
from pydantic_core import PydanticCustomError

from depot.catalog import (
    SECRETS,
    SERVICES,
    BuiltImage,
    ProjectImage,
    PulledImage,
    service,
)
from depot.model import runs, unbuildable
from depot.types import (
    MAX_BACKUP_TARGETS,
    MAX_REPLICAS,
    MAX_RESTART_RETRIES,
    AgeRecipient,
    BackupInterval,
    Cpus,
    DockerHost,
    EnforcementLevel,
    GenericResourceKind,
    GitCommit,
    HostPath,
    LogLevel,
    Megabytes,
    NodeLabel,
    PinnedImage,
    PolicyRuleId,
    Port,
    Profile,
    RcloneTargetText,
    Registry,
    RegistryUsername,
    ReleaseVersion,
    Replicas,
    RestartName,
    Runtime,
    ServiceName,
    SshOptions,
    has_digest,
    is_remote,
    on_this_host_refusal,
    parse_rclone_target,
    read_rclone_config,
    why_on_this_host,
)

UNDECRYPTED = "[secure value: only the Pulumi CLI can decrypt it]"
"""What a ``secure:`` value reads as where only the file is read (``depot.config.stack_file``):
checks of a secret's content skip it, since the real value is unknown there."""


class SettingsModel(BaseModel):
    """Base for every settings model: immutable, camelCase keys, unknown keys rejected, and
    each field described by the docstring under it.

    The docstrings are read by the manual's generator (``depot.tools.reference_docs``), the only
    reader of a field's description, and not here: pydantic's ``use_attribute_docstrings`` reads
    and parses this module's source again for each model, on every start of every command
    (~30 ms of each ``depot`` run)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


class RestartPolicy(SettingsModel):
    """Docker's restart policy, written as in Compose: ``unless-stopped`` or ``on-failure:3``."""

    name: RestartName
    """The policy's name, as Compose writes it."""
    max_retries: int | None = None
    """How often ``on-failure`` restarts a container before it gives up."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        name, _, retries = value.partition(":")
        counted = name == "on-failure" and retries.isdigit() and len(retries) <= 2
        if name not in get_args(RestartName) or (
            retries and not (counted and 1 <= int(retries) <= MAX_RESTART_RETRIES)
        ):
            raise PydanticCustomError(
                "restart_policy",
                "is not a restart policy; use no, always, unless-stopped, on-failure "
                "or on-failure:N with N from 1 to {most}",
                {"most": MAX_RESTART_RETRIES},
            )
        return {"name": name, "max_retries": int(retries) if retries else None}


class ServiceLimits(SettingsModel):
    """Resource limits of one container (Compose ``mem_limit``, ``cpus``, ``mem_reservation``)."""

    memory: Megabytes
    """The container's memory limit (Compose ``mem_limit``): a size with a unit k, m or g, e.g.
    ``256m``; a whole number of MiB, at least ``6m``, at most ``4096g``."""
    cpus: Cpus
    """How many CPUs the container may use (Compose ``cpus``): a decimal number from 0.01 to 512,
    e.g. ``0.5``."""
    memory_reservation: Megabytes | None = None
    """The memory the container is guaranteed (Compose ``mem_reservation``), written like
    ``memory`` and no larger than it."""

    @model_validator(mode="after")
    def _reservation_below_limit(self) -> Self:
        if self.memory_reservation is not None and self.memory_reservation > self.memory:
            raise PydanticCustomError(
                "memory_reservation",
                "memoryReservation is larger than memory; a reservation must not exceed the limit",
            )
        return self


class DockerSettings(SettingsModel):
    """Which Docker daemon the stack deploys to."""

    host: DockerHost = "unix:///var/run/docker.sock"
    """The Docker daemon the stack deploys to, as ``DOCKER_HOST`` spells it: ``unix:///path``,
    ``tcp://host[:port]`` or ``ssh://user@host[:port]``, where user and host start with a letter
    or a digit (so nothing reaches ``ssh`` as an option). The program builds its own providers
    from it: ``docker:host`` is not read."""
    ssh_opts: SshOptions = ()
    """Options for the ``ssh`` that reaches an ``ssh://`` host, read as ssh reads them and allowed
    only when they tune the connection (see "ssh options" in the configuration guide). Given,
    normalised to ``-oKeyword=value``, to the provider, the rotation commands and every ``depot``
    command that reaches the host; image builds on an ``ssh://`` build host cannot be given
    them."""


class BuildSettings(SettingsModel):
    """Where the Rust services' sources are, whether previews build them, and where."""

    contexts: dict[ServiceName, HostPath] = Field(
        default_factory=dict,
        json_schema_extra={"expected": "a map of built service to its source directory"},
    )
    """Each Rust service's crate, the directory its image is built from (relative paths are
    taken from this project's directory). Required for every enabled service built here; a
    service that ``depot:images`` runs by digest is not built and needs none. The backup service
    is built from this repository and never has one."""

    @model_validator(mode="after")
    def _only_built_services(self) -> Self:
        for name in self.contexts:
            image = service(name).image
            if isinstance(image, ProjectImage):
                raise PydanticCustomError(
                    "not_a_crate",
                    "names {service}, whose image is built from this repository "
                    "({dockerfile}) on the stack's {base} image, never from a crate; remove "
                    "contexts.{service}",
                    {
                        "service": name,
                        "dockerfile": image.dockerfile,
                        "base": image.base,
                        "key": f"contexts.{name}",
                    },
                )
            if not isinstance(image, BuiltImage):
                raise PydanticCustomError(
                    "not_built",
                    "names {service}, which runs a pulled image and is never built here; "
                    "remove contexts.{service}",
                    {"service": name, "key": f"contexts.{name}"},
                )
        return self

    on_preview: bool = False
    """Whether ``pulumi preview`` builds the images too (``buildOnPreview``); off, only ``up``
    builds."""
    host: DockerHost | None = None
    """The daemon that builds. Unset: the stack's Docker host when images are loaded there, the
    local daemon of whoever runs ``pulumi up`` when they are pushed to a registry."""


class ConsoleSettings(SettingsModel):
    """Host paths bind-mounted into the console (nginx)."""

    dist_path: HostPath = "../console/dist"
    """The console's build (its ``dist/`` with ``index.html``), bind-mounted read-only into
    nginx. A path on the Docker host: absolute whenever that host is another machine."""
    sessions_path: HostPath = "/data/sessions"
    """The folder the console keeps its sessions in, bind-mounted read-write. A path on the
    Docker host: absolute whenever that host is another machine."""


class PublishSettings(SettingsModel):
    """Which services publish a port on the Docker host, and on which address."""

    address: IPv4Address = IPv4Address("127.0.0.1")
    """The host address published ports bind. A swarm stack publishes through its ingress on
    every address of every node, so there, with ports to publish, it must be ``0.0.0.0``."""
    ports: dict[ServiceName, Port] = Field(
        default_factory=dict,
        json_schema_extra={"expected": "a map of service to a host port, 1-65535"},
    )
    """The services reachable from the host, each with its host port (each port used once).
    postgres is refused (it stays on the internal network), and so is a service that listens
    on no port (splat-worker, rtk-base)."""

    @model_validator(mode="after")
    def _database_stays_private(self) -> Self:
        if "postgres" in self.ports:
            raise PydanticCustomError(
                "postgres_published",
                "publishes postgres, which must stay on the internal database network; "
                "remove ports.postgres",
            )
        return self

    @model_validator(mode="after")
    def _ports_are_for_listeners(self) -> Self:
        for name in self.ports:
            if service(name).port is None:
                raise PydanticCustomError(
                    "port_without_listener",
                    "publishes {service}, which listens on no port; remove ports.{service}",
                    {"service": name, "key": f"ports.{name}"},
                )
        return self

    @model_validator(mode="after")
    def _each_port_once(self) -> Self:
        owners: dict[int, str] = {}
        for name, port in self.ports.items():
            if port in owners:
                raise PydanticCustomError(
                    "port_taken",
                    "is already published by {owner} on the same address; give each service "
                    "its own host port",
                    {"owner": owners[port], "key": f"ports.{name}"},
                )
            owners[port] = name
        return self


class DataSettings(SettingsModel):
    """How stateful resources are guarded. They are always retained on delete."""

    protect: bool = True
    """Protect ``postgres-data`` (and ``postgres-backups``) from ``pulumi destroy`` and from a
    replacement; both are retained on delete whatever this says."""
    postgres_major: int | None = Field(default=None, ge=10, le=99)
    """The postgres major version ``postgres-data`` was initialised with. An image of another
    major could not open it: ``depot diff`` marks one as data at risk, and the production rule
    ``postgres-major`` refuses it (and requires this set). See "Upgrading postgres"."""
    adopt_volume: bool = False
    """postgres-data is on the Docker host already, filled by ``depot migrate`` from a Compose
    deployment: the first ``pulumi up`` imports it instead of creating it (protected and retained
    from that ``up`` on) and the Compose export marks it ``external`` (Compose neither creates it
    nor deletes it with ``down -v``). On a host without it, ``up`` fails rather than start an
    empty database. Only ``true`` or ``false``: the volume's name stays ``postgres-data``."""


class RegistrySettings(SettingsModel):
    """Where prod pushes the images it builds: ``<address>/depot-<service>``."""

    address: Registry
    """The registry (with an optional path) built images are pushed to, as
    ``<address>/depot-<service>:<commit>``, and run from by digest."""
    username: RegistryUsername | None = None
    """Who pushes, with ``depot:registryPassword`` (no spaces, colons or control characters);
    unset, the builder's own ``docker login`` pushes."""

    @property
    def host(self) -> str:
        """The registry's host[:port], which credentials are for (the address may add a path)."""
        return self.address.split("/", 1)[0]


class ReleaseSettings(SettingsModel):
    """What pushed images are tagged with: the commit, and a release version if any."""

    commit: GitCommit | None = None
    """The commit pushed images are tagged with (7 to 40 lowercase hex digits); unset,
    ``DEPOT_RELEASE_COMMIT``, else this checkout's ``HEAD``."""
    version: ReleaseVersion | None = None
    """A release version pushed images are also tagged with."""


class PolicySettings(SettingsModel):
    """How `depot check` and the CrossGuard pack treat this stack (README "Policy")."""

    enforcement: EnforcementLevel = "mandatory"
    """How every rule is enforced: ``mandatory`` blocks a deployment and fails ``depot check``,
    ``advisory`` warns, ``disabled`` skips."""
    production: bool = True
    """Whether the production rules apply (limits, digest-pinned images, protected data,
    backups off the host and encrypted, no ``restart: no``)."""
    rules: dict[PolicyRuleId, EnforcementLevel] = Field(
        default_factory=dict,
        json_schema_extra={"expected": "a map of rule id to mandatory, advisory or disabled"},
    )
    """A level for single rules, overriding ``enforcement`` for them."""

    def level(self, rule: PolicyRuleId) -> EnforcementLevel:
        return self.rules.get(rule, self.enforcement)


class GpuResource(SettingsModel):
    """The generic resource a Swarm service reserves for GPU access, as GPU nodes advertise it."""

    kind: GenericResourceKind = "NVIDIA-GPU"
    """The kind of generic resource GPU nodes advertise (``node-generic-resources`` in their
    ``daemon.json``); it must match what the nodes advertise."""
    count: int = Field(default=1, ge=1, le=64)
    """How many of them splat-worker reserves."""

    @property
    def spec(self) -> str:
        """``NVIDIA-GPU=1``: a discrete resource as Swarm's reservations write it."""
        return f"{self.kind}={self.count}"


class SwarmSettings(SettingsModel):
    """Where a swarm stack's pinned services run (read only with ``depot:runtime: swarm``)."""

    node_labels: dict[ServiceName, NodeLabel] = Field(
        default_factory=dict,
        json_schema_extra={"expected": "a map of service to a node label, e.g. depot.gpu"},
    )
    """The node label a pinned service runs on, renaming the catalogue's (postgres
    ``depot.postgres-data``, splat-worker ``depot.gpu``, rtk-base ``depot.gnss``); the backup
    service follows postgres' label and has none of its own."""
    gpu: GpuResource = GpuResource()
    """The GPU splat-worker reserves: Swarm has no ``--gpus``, only generic resources."""

    @model_validator(mode="after")
    def _only_pinned_services(self) -> Self:
        for name in self.node_labels:
            companion = service(name).pinned_with
            if companion is not None:
                raise PydanticCustomError(
                    "pinned_with",
                    "names {service}, which runs on {companion}'s node under {companion}'s "
                    "label (its volume is kept there); set nodeLabels.{companion} instead",
                    {"service": name, "companion": companion, "key": f"nodeLabels.{name}"},
                )
            if service(name).node_label is None:
                raise PydanticCustomError(
                    "not_pinned",
                    "names {service}, which runs on any node; only postgres, splat-worker and "
                    "rtk-base are pinned to a labelled node",
                    {"service": name, "key": f"nodeLabels.{name}"},
                )
        return self


MAX_RETAINED = 1000
Retained = Annotated[int, Field(ge=0, le=MAX_RETAINED)]
MAX_RECIPIENTS = 16


class RetentionSettings(SettingsModel):
    """How many good backups are kept: grandfather-father-son, per off-host target.

    The newest backup of each of the newest ``daily`` days (hours, ISO weeks, months) that hold
    one; a backup kept by any rule is kept. ``local``: the newest kept on the host when there
    are targets (without targets, the host keeps what the other rules keep). A count not
    written is 0, but for ``local``.
    """

    hourly: Retained = 0
    """Keep the first good backup of each of the newest this many hours that hold one."""
    daily: Retained = 0
    """Keep the first good backup of each of the newest this many days (UTC) that hold one."""
    weekly: Retained = 0
    """Keep the first good backup of each of the newest this many ISO weeks that hold one."""
    monthly: Retained = 0
    """Keep the first good backup of each of the newest this many months that hold one."""
    local: Annotated[int, Field(ge=1, le=MAX_RETAINED)] = 2
    """With targets: how many of the newest backups the host keeps, besides every backup still
    waiting to leave it."""

    @property
    def keeps_any(self) -> bool:
        return any((self.hourly, self.daily, self.weekly, self.monthly))


class BackupSettings(SettingsModel):
    """Scheduled, verified, encrypted dumps of the depot's database (README "Backups")."""

    enabled: bool = False
    """Whether the stack runs the backup service (``depot-backup``). The other keys are
    validated either way, so a stack can switch backups off and keep its settings."""
    schedule: BackupInterval = 86400
    """How often a backup runs: ``15m``-``59m``, ``1h``-``168h`` or ``1d``-``7d``, held as
    seconds (the default, 86400, is ``24h``). Runs fall on its multiples counted from 00:00
    UTC."""
    retention: RetentionSettings = RetentionSettings(daily=7, weekly=4)
    """How many good backups are kept, grandfather-father-son in UTC, on each target (and on
    the host without targets); with backups on, at least one of hourly, daily, weekly or monthly
    is 1 or more."""
    recipients: tuple[AgeRecipient, ...] = Field(
        default=(), json_schema_extra={"expected": "a list of age public keys (age1…)"}
    )
    """The age public keys every dump is encrypted to (the bech32 checksum checked, each once,
    at most 16). A target needs at least one: an unencrypted dump never leaves the host."""
    targets: tuple[RcloneTargetText, ...] = Field(
        default=(),
        json_schema_extra={"expected": "a list of rclone remotes, name:path or :backend,…:path"},
    )
    """The rclone remotes every backup is copied to (each once, at most 8): ``name:path`` of a
    section of ``depot:backupRcloneConfig``, or inline ``:backend,option=value:path`` with only
    the allowed options; never on this host. No error shows a target."""

    @model_validator(mode="after")
    def _lists_bounded_and_unique(self) -> Self:
        for key, items, most in (
            ("recipients", self.recipients, MAX_RECIPIENTS),
            ("targets", self.targets, MAX_BACKUP_TARGETS),
        ):
            if len(items) > most:
                raise PydanticCustomError(
                    "too_many",
                    "lists {count} {key}; list at most {most}",
                    {"count": len(items), "key": key, "most": most},
                )
            for index, item in enumerate(items):
                if item in items[:index]:
                    raise PydanticCustomError(
                        "listed_twice",
                        "is listed twice; list each once",
                        {"key": f"{key}.{index}"},
                    )
        return self

    @model_validator(mode="after")
    def _encrypted_before_it_leaves(self) -> Self:
        if self.targets and not self.recipients:
            raise PydanticCustomError(
                "unencrypted_target",
                "would receive unencrypted dumps: an unencrypted dump never leaves the host; "
                "set depot:backup.recipients to the age public keys to encrypt to",
                {"key": "targets"},
            )
        return self

    @model_validator(mode="after")
    def _keeps_something(self) -> Self:
        if self.enabled and not self.retention.keeps_any:
            raise PydanticCustomError(
                "keeps_nothing",
                "keeps no backup; set at least one of hourly, daily, weekly or monthly to 1 "
                "or more",
                {"key": "retention"},
            )
        return self


_ENCRYPTED_RCLONE_CONFIG = "RCLONE_ENCRYPT_V0:"


def rclone_sections(config: str) -> set[str]:
    """The remotes an rclone.conf defines (its ``[name]`` sections), as rclone reads it."""
    return {name for name in read_rclone_config(config) if name}


SecretSetting = Annotated[SecretStr | None, Field(default=None)]


class DepotSettings(SettingsModel):
    """Everything a stack can set, keyed as in ``Pulumi.<stack>.yaml`` (without ``depot:``)."""

    stack: str = Field(exclude=True)
    """The stack's name (``Pulumi.<stack>.yaml``); not a setting."""
    runtime: Runtime = "host"
    """What runs the depot: containers on one Docker host, or services on a Docker Swarm (see
    the Swarm guide)."""
    docker: DockerSettings = DockerSettings()
    """The Docker daemon the stack deploys to, and how to reach it."""
    profiles: list[Profile] = Field(
        default_factory=list, json_schema_extra={"expected": "a list of gpu, rtk"}
    )
    """The optional service groups this stack runs, each listed once: ``gpu`` (splat-worker,
    with GPU access) and ``rtk`` (rtk-base), as Compose profiles in the reference."""
    restart: RestartPolicy = RestartPolicy(name="unless-stopped")
    """The restart policy of every container, written as in Compose: ``no``, ``always``,
    ``unless-stopped`` or ``on-failure[:N]`` with N from 1 to 5. A swarm stack maps it to
    Swarm's and refuses ``unless-stopped``."""
    limits: dict[ServiceName, ServiceLimits] = Field(
        default_factory=dict,
        json_schema_extra={"expected": "a map of service to {memory, cpus, memoryReservation}"},
    )
    """Memory and CPU limits per service (none by default); the production rules require them
    on every container."""
    replicas: dict[ServiceName, Replicas] = Field(
        default_factory=dict,
        json_schema_extra={"expected": f"a map of service to a task count, 1-{MAX_REPLICAS}"},
    )
    """How many tasks a service runs (1 each by default). More than 1 only on a swarm; postgres
    and the backup service always 1."""
    swarm: SwarmSettings = SwarmSettings()
    """Where a swarm stack's pinned services run, and the GPU splat-worker reserves; only with
    ``depot:runtime: swarm``."""
    log_level: LogLevel = "info"
    """The Rust services' log level: sets ``RUST_LOG``."""
    publish: PublishSettings = PublishSettings()
    """Which services publish a port on the Docker host, and on which address."""
    build: BuildSettings = BuildSettings()
    """Where the Rust services' sources are, whether previews build them, and which daemon
    builds."""
    console: ConsoleSettings = ConsoleSettings()
    """The host folders bind-mounted into the console (nginx)."""
    images: dict[ServiceName, PinnedImage] = Field(
        default_factory=dict,
        json_schema_extra={"expected": "a map of service to a pinned image reference"},
    )
    """The image a service runs, overriding the catalogue's pin: a third-party image by exact
    tag and optionally ``@sha256`` digest; one of our own services only by digest (then it is
    not built)."""
    registry: RegistrySettings | None = None
    """Where built images are pushed and run from by digest; unset, they are built into a
    daemon (the stack's, or ``depot:build.host``) and never pushed."""
    release: ReleaseSettings = ReleaseSettings()
    """The tags of pushed images."""
    data: DataSettings = DataSettings()
    """How the depot's data volumes are guarded."""
    backup: BackupSettings = BackupSettings()
    """The backup service: scheduled, verified, encrypted dumps of the database, copied off the
    host (see the backups guide)."""
    policy: PolicySettings = PolicySettings()
    """How ``depot check`` and the CrossGuard pack treat this stack (see the policy guide)."""
    database_password: SecretSetting
    """postgres' password (``pulumi config set --secret``); generated if unset, never empty. A
    new one is rotated into the running database first."""
    grafana_admin_password: SecretSetting
    """grafana's admin password (``pulumi config set --secret``); generated if unset, never
    empty."""
    registry_password: SecretSetting
    """The password of ``depot:registry.username`` for pushes (``pulumi config set
    --secret``); unset, the builder's ``docker login`` pushes. Used only where ``pulumi up``
    runs: it never reaches the Docker provider's configuration."""
    backup_rclone_config: SecretSetting
    """The text of an ``rclone.conf`` defining the named remotes of ``depot:backup.targets``,
    credentials included (``pulumi config set --secret depot:backupRcloneConfig <
    rclone.conf``); given, never generated. Delivered to the backup service as a file (uid 70,
    0400), never shown; not empty, and not rclone-encrypted (the service is given no rclone
    password)."""

    @model_validator(mode="after")
    def _profiles_unique(self) -> Self:
        for index, profile in enumerate(self.profiles):
            if profile in self.profiles[:index]:
                raise PydanticCustomError(
                    "profiles",
                    "lists a profile twice; list each once",
                    {"key": f"profiles.{index}"},
                )
        return self

    @model_validator(mode="after")
    def _bind_paths_on_their_host(self) -> Self:
        # A bind source is a path on the machine that runs the containers. Relative paths are
        # resolved here, against this project: right for a local daemon, wrong for any other.
        if not is_remote(self.docker.host):
            return self
        for key, path in (
            ("console.distPath", self.console.dist_path),
            ("console.sessionsPath", self.console.sessions_path),
        ):
            if not path.startswith("/"):
                raise PydanticCustomError(
                    "relative_remote_path",
                    "is relative, but the Docker host ({host}) is another machine; use an "
                    "absolute path on that host",
                    {"host": self.docker.host, "key": key},
                )
        return self

    @model_validator(mode="after")
    def _passwords_not_empty(self) -> Self:
        for key in SECRET_KEYS:
            value = getattr(self, to_snake(key))
            if value is not None and not value.get_secret_value().strip():
                raise PydanticCustomError(
                    "empty_secret",
                    "is empty; set a password of at least one character"
                    if key != "backupRcloneConfig"
                    else "is empty; set it to an rclone.conf, or remove it",
                    {"key": key},
                )
        return self

    @model_validator(mode="after")
    def _named_remotes_configured(self) -> Self:
        # Never a word of the secret in a message: only whether it defines a remote's name.
        given = self.backup_rclone_config
        text = given.get_secret_value() if given is not None else None
        if text is not None and text.startswith(UNDECRYPTED):
            return self  # only the Pulumi CLI can read it: `pulumi up` checks it
        if text is not None and _ENCRYPTED_RCLONE_CONFIG in text:
            raise PydanticCustomError(
                "rclone_config_encrypted",
                "is an rclone.conf encrypted with its own password, which the backup service "
                "is never given; store it unencrypted (`rclone config show`): Pulumi encrypts "
                "it as a secret",
                {"key": "backupRcloneConfig"},
            )
        # Read once: which remotes it defines, and what each is or wraps. A message tells only
        # what that comes down to (a local path, rclone's local backend), never a word of it.
        remotes = read_rclone_config(text) if text is not None else {}
        for index, written in enumerate(self.backup.targets):
            target = parse_rclone_target(written)
            if target is None:
                continue  # refused as a target already
            why = why_on_this_host(target, remotes)
            if why is not None:
                raise on_this_host_refusal(why, key=f"backup.targets.{index}")
            remote = target.remote
            if remote is None or remote in remotes:
                continue
            where = (
                "depot:backupRcloneConfig is not set"
                if text is None
                else "depot:backupRcloneConfig has no section of that name"
            )
            raise PydanticCustomError(
                "unknown_remote",
                "names an rclone remote (before its first ':'), but {where}; define it there "
                "(pulumi config set --secret depot:backupRcloneConfig < rclone.conf), or write "
                "the remote inline (:backend,option=value:path)",
                # No name: a target is never shown (the loader withholds it), nor a part of it.
                {"where": where, "key": f"backup.targets.{index}"},
            )
        return self

    @model_validator(mode="after")
    def _every_enabled_build_has_a_context(self) -> Self:
        missing = [name for p in (None, *self.profiles) for name in unbuildable(self, p)]
        if missing:
            raise PydanticCustomError(
                "build_context",
                "has no source directory for {services}; add depot:build.contexts.<service> "
                "(a path to the service's crate, relative to this project)",
                {"services": ", ".join(missing), "key": "build.contexts"},
            )
        return self

    @model_validator(mode="after")
    def _built_services_run_by_digest(self) -> Self:
        moving = [
            name
            for name, reference in self.images.items()
            if service(name).built and not has_digest(reference)
        ]
        if moving:
            raise PydanticCustomError(
                "built_image_digest",
                "names {services} by tag only; our own images run by digest "
                "(registry/depot-<service>@sha256:…), never a moving tag",
                {"services": ", ".join(moving), "key": "images"},
            )
        return self

    @model_validator(mode="after")
    def _one_postgres(self) -> Self:
        if self.replicas.get("postgres", 1) != 1:
            raise PydanticCustomError(
                "postgres_replicas",
                "runs postgres more than once; postgres runs exactly one replica: two postgres "
                "processes must never open postgres-data",
                {"key": "replicas.postgres"},
            )
        return self

    @model_validator(mode="after")
    def _one_backup(self) -> Self:
        if self.replicas.get("backup", 1) != 1:
            raise PydanticCustomError(
                "backup_replicas",
                "runs the backup service more than once; it runs exactly one replica: two "
                "would dump on the same schedule into one volume and prune each other's files",
                {"key": "replicas.backup"},
            )
        return self

    @model_validator(mode="after")
    def _replicas_need_a_scheduler(self) -> Self:
        if self.runtime == "swarm":
            return self
        for name, count in self.replicas.items():
            if count != 1:
                raise PydanticCustomError(
                    "host_replicas",
                    "asks for {count} replicas of {service}, but the host runtime runs one "
                    "container per service (depot-{service}); use 1, or depot:runtime: swarm",
                    {"count": count, "service": name, "key": f"replicas.{name}"},
                )
        return self

    @model_validator(mode="after")
    def _swarm_settings_need_swarm(self) -> Self:
        if self.runtime != "swarm" and "swarm" in self.model_fields_set:
            raise PydanticCustomError(
                "swarm_settings",
                "is read only by a swarm stack; remove depot:swarm, or set depot:runtime: swarm",
                {"key": "swarm"},
            )
        return self

    @model_validator(mode="after")
    def _swarm_restart(self) -> Self:
        if self.runtime == "swarm" and self.restart.name == "unless-stopped":
            raise PydanticCustomError(
                "swarm_restart",
                "has no Swarm equivalent when it is unless-stopped (the default): Swarm "
                "restarts a task however the task stopped, and a service is stopped by scaling "
                "it to 0; use always, on-failure[:N] or no",
                {"key": "restart"},
            )
        return self

    @model_validator(mode="after")
    def _swarm_nodes_pull(self) -> Self:
        if self.runtime != "swarm":
            return self
        for spec in SERVICES:
            if not runs(self, spec):
                continue
            image = spec.image
            if isinstance(image, ProjectImage) and not (self.registry or spec.name in self.images):
                raise PydanticCustomError(
                    "swarm_local_build",
                    "builds the {service} image ({dockerfile}) into one Docker daemon, but "
                    "Swarm nodes pull their images from a registry; set depot:registry (it is "
                    "pushed and run by digest), or depot:images.{service} to a pushed digest",
                    {
                        "service": spec.name,
                        "dockerfile": image.dockerfile,
                        "key": spec.enabled_by or f"images.{spec.name}",
                    },
                )
            if spec.name in self.build.contexts and self.registry is None:
                raise PydanticCustomError(
                    "swarm_local_build",
                    "builds {service} into one Docker daemon, but Swarm nodes pull their images "
                    "from a registry; set depot:registry (built images are pushed and run by "
                    "digest), or depot:images.{service} to a pushed digest and remove this",
                    {"service": spec.name, "key": f"build.contexts.{spec.name}"},
                )
            pinned = self.images.get(spec.name)
            if isinstance(spec.image, PulledImage) and not has_digest(pinned or ""):
                raise PydanticCustomError(
                    "swarm_digest",
                    "runs {service} by tag ({reference}); Swarm nodes pull on their own and a "
                    "tag may name another image on each, so a swarm stack runs images by "
                    "digest: set "
                    "depot:images.{service} to name:tag@sha256:…",
                    {
                        "reference": pinned or spec.image.reference,
                        "service": spec.name,
                        "key": f"images.{spec.name}",
                    },
                )
        return self

    @model_validator(mode="after")
    def _adopted_volume_on_a_host(self) -> Self:
        if self.runtime == "swarm" and self.data.adopt_volume:
            raise PydanticCustomError(
                "adopt_volume_swarm",
                "is read only by a host stack: a swarm keeps postgres-data on its data node, "
                "which depot migrate does not fill; remove data.adoptVolume",
                {"key": "data.adoptVolume"},
            )
        return self

    @model_validator(mode="after")
    def _swarm_publishes_everywhere(self) -> Self:
        unspecified = str(self.publish.address) == "0.0.0.0"  # noqa: S104 - compared, not bound
        if self.runtime == "swarm" and self.publish.ports and not unspecified:
            raise PydanticCustomError(
                "swarm_publish_address",
                "is one address, but Swarm publishes through its ingress on every address of "
                "every node and cannot bind one; set 0.0.0.0 (and firewall the nodes), or "
                "publish no ports",
                {"key": "publish.address"},
            )
        return self

    def secret(self, setting: str) -> SecretStr | None:
        """The value of a secret setting by its key (``databasePassword``), if the stack set it."""
        value = getattr(self, to_snake(setting))
        return value if isinstance(value, SecretStr) else None


SECRET_KEYS = (*(secret.setting for secret in SECRETS), "registryPassword")
"""Keys that must be set with ``pulumi config set --secret``."""
