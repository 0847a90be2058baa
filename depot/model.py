"""One stack's depot, resolved: each enabled service with every value the stack decides.

``deployments(settings)`` is pure data (no Pulumi): the Pulumi components and any other output
(a Compose export, a plan) read this same model, so they cannot drift apart.

This is the one place that resolves a service against the stack's settings (which services run,
what each runs, where); the settings (``depot.config.settings``) are validated data and answer
no question about a service. Their validators ask this module (``runs``, ``unbuildable``), so
it reads the settings' types for annotations only and never imports them at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from depot.catalog import (
    BACKUP_INTERVAL_ENV,
    BACKUP_RECIPIENTS_ENV,
    BACKUP_TARGETS_ENV,
    SCRATCH,
    SECRETS,
    SERVICES,
    BindSetting,
    BuiltImage,
    ProjectImage,
    PulledImage,
    SecretEnv,
    SecretFile,
    SecretName,
    ServiceSpec,
    TmpfsOptions,
    service,
)
from depot.paths import DOCKERFILE, ProjectPath
from depot.types import Profile, ServiceName

if TYPE_CHECKING:
    from depot.config.settings import DepotSettings, RestartPolicy, ServiceLimits


@dataclass(frozen=True)
class BindMount:
    """A host directory mounted into a container; its path resolved once, in both forms."""

    source: ProjectPath
    target: str
    read_only: bool


@dataclass(frozen=True)
class TmpfsMount:
    """Writable in-memory scratch space at ``path``."""

    path: str
    options: TmpfsOptions


@dataclass(frozen=True)
class PublishedPort:
    """A service port reachable from outside: ``published`` on the stack's hosts → ``target``.

    Which address it binds to is the host runtime's business (``publish_address``); Swarm
    publishes through its ingress and has no such address.
    """

    target: int
    published: int


@dataclass(frozen=True)
class RegistryPush:
    """Where a built image is pushed, and with which tags (prod)."""

    repository: str  # registry.example.com/depot-discovery
    tags: tuple[str, ...]  # the commit, then the release version if any
    address: str
    username: str | None

    @property
    def references(self) -> list[str]:
        return [f"{self.repository}:{tag}" for tag in self.tags]

    @property
    def cache(self) -> str:
        """The registry cache of this image's layers, shared by every build of it."""
        return f"{self.repository}:buildcache"


@dataclass(frozen=True)
class ServiceDeployment:
    """One enabled service as this stack runs it."""

    spec: ServiceSpec
    stack: str
    restart: RestartPolicy  # the intent (Compose's words); each runtime maps it
    limits: ServiceLimits | None
    env: tuple[tuple[str, str], ...]  # plain values only; see ``secret_env``
    published: PublishedPort | None
    publish_address: str  # where the host runtime binds ``published``
    bind_mounts: tuple[BindMount, ...]
    tmpfs: tuple[TmpfsMount, ...]
    image_reference: str | None  # pulled services, and built ones run from a registry digest
    build_context: ProjectPath | None  # services built by this stack
    build_on_preview: bool
    # The secret files it is given: the catalog's, but for optional ones the stack left unset.
    secret_files: tuple[SecretFile, ...] = ()
    # What a build of it is told (``BINARY``, ``POSTGRES_IMAGE``); empty when not built here.
    build_args: tuple[tuple[str, str], ...] = ()
    push: RegistryPush | None = None  # None: built images are loaded into the stack's daemon
    replicas: int = 1  # how many tasks a scheduler runs; a single host runs one container
    placement: tuple[str, ...] = ()  # scheduler constraints; a single host has none
    # Discrete resources a scheduler reserves on a node (``NVIDIA-GPU=1``); a single host hands
    # its GPUs over with ``gpus`` instead (``spec.gpu``).
    generic_resources: tuple[str, ...] = ()

    @property
    def start_after(self) -> tuple[ServiceName, ...]:
        """Services that must be healthy before this one starts."""
        return self.spec.waits_for

    @property
    def secret_env(self) -> tuple[SecretEnv, ...]:
        return self.spec.secret_env

    @property
    def secrets_read(self) -> tuple[SecretName, ...]:
        """The secrets it reads, from a file or in its environment, each once."""
        files = [file.secret for file in self.secret_files]
        return tuple(dict.fromkeys([*files, *(env.secret for env in self.secret_env)]))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def from_registry(self) -> bool:
        """One of our images that CI pushed, run by digest instead of built here."""
        return self.spec.built and self.build_context is None

    @property
    def dockerfile(self) -> ProjectPath:
        """The Dockerfile a built service's image is built from."""
        image = self.spec.image
        if isinstance(image, ProjectImage):
            return ProjectPath(image.dockerfile)
        if isinstance(image, BuiltImage):
            return ProjectPath(str(DOCKERFILE))
        raise TypeError(f"{self.name} is not built here")

    @property
    def builds_a_crate(self) -> bool:
        """Built here from a Rust crate (``depot:build.contexts``), not from this repository."""
        return isinstance(self.spec.image, BuiltImage) and self.build_context is not None

    @property
    def local_tag(self) -> str:
        """Tag of a locally built image: ``depot-discovery:dev``."""
        return f"{self.spec.container_name}:{self.stack}"

    @property
    def labels(self) -> dict[str, str]:
        """Container labels: the reference's prometheus scrape labels on metric services."""
        if not self.spec.metrics or self.spec.port is None:
            return {}
        return {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(self.spec.port),
            "prometheus.io/path": "/metrics",
        }


def deployments(
    settings: DepotSettings, services: Sequence[ServiceSpec] = SERVICES
) -> tuple[ServiceDeployment, ...]:
    """The enabled services of this stack, in dependency order."""
    enabled = [spec for spec in services if runs(settings, spec)]
    return tuple(_deploy(spec, settings) for spec in enabled)


def runs(settings: DepotSettings, spec: ServiceSpec) -> bool:
    """True when ``spec`` is part of this stack: its profile, and its switch, are on."""
    switched_on = spec.enabled_by is None or (
        spec.enabled_by == "backup.enabled" and settings.backup.enabled
    )
    return switched_on and (spec.profile is None or spec.profile in settings.profiles)


def unbuildable(settings: DepotSettings, profile: Profile | None) -> list[ServiceName]:
    """Built services of ``profile`` with neither a crate to build nor a digest to run."""
    return [
        spec.name
        for spec in SERVICES
        if spec.profile == profile
        and isinstance(spec.image, BuiltImage)
        and spec.name not in settings.build.contexts
        and spec.name not in settings.images  # run from a registry, not built here
    ]


def _deploy(spec: ServiceSpec, settings: DepotSettings) -> ServiceDeployment:
    context = _build_context(spec, settings)
    return ServiceDeployment(
        spec=spec,
        stack=settings.stack,
        restart=settings.restart,
        limits=settings.limits.get(spec.name),
        env=_environment(spec, settings),
        published=_published(spec, settings),
        publish_address=str(settings.publish.address),
        bind_mounts=_bind_mounts(spec, settings),
        tmpfs=tuple(TmpfsMount(path, SCRATCH) for path in spec.tmpfs),
        image_reference=image_for(settings, spec),
        build_context=context,
        build_on_preview=settings.build.on_preview,
        secret_files=_secret_files(spec, settings),
        build_args=_build_args(spec, settings) if context is not None else (),
        push=_push(spec, settings) if context is not None else None,
        replicas=settings.replicas.get(spec.name, 1),
        placement=_placement(spec, settings),
        generic_resources=(
            (settings.swarm.gpu.spec,) if spec.gpu and settings.runtime == "swarm" else ()
        ),
    )


def _placement(spec: ServiceSpec, settings: DepotSettings) -> tuple[str, ...]:
    """Swarm constraints: a pinned service runs only on nodes labelled for it."""
    if settings.runtime != "swarm":  # before the label: one host pins nothing, by any name
        return ()
    label = node_label(settings, spec.name)
    return () if label is None else (f"node.labels.{label} == true",)


def node_label(settings: DepotSettings, name: ServiceName) -> str | None:
    """The label of the swarm nodes ``name`` runs on, if it is pinned to one."""
    spec = service(name)
    if spec.pinned_with is not None:
        return node_label(settings, spec.pinned_with)
    return settings.swarm.node_labels.get(name, spec.node_label)


def _given(secret: SecretFile, settings: DepotSettings) -> bool:
    """The stack holds this secret: generated, or an optional one the stack set."""
    stack_secret = next(s for s in SECRETS if s.name == secret.secret)
    return stack_secret.generated or settings.secret(stack_secret.setting) is not None


def _secret_files(spec: ServiceSpec, settings: DepotSettings) -> tuple[SecretFile, ...]:
    return tuple(secret for secret in spec.secret_files if _given(secret, settings))


def _environment(spec: ServiceSpec, settings: DepotSettings) -> tuple[tuple[str, str], ...]:
    env = list(spec.env)
    if spec.log_target is not None:
        env.append(
            ("RUST_LOG", f"{spec.log_target}={settings.log_level}{spec.extra_log_directives}")
        )
    for secret in spec.secret_files:
        if _given(secret, settings):
            env.append((secret.env, secret.path))
        elif secret.unset_env is not None:
            env.append((secret.env, secret.unset_env))
    if spec.enabled_by == "backup.enabled":
        env.extend(backup_environment(settings))
    return tuple(sorted(env))


def backup_environment(settings: DepotSettings) -> tuple[tuple[str, str], ...]:
    """What the backup service is told, as plain variables (none of it is secret)."""
    backup = settings.backup
    keep = backup.retention
    return (
        ("DEPOT_BACKUP_STACK", settings.stack),
        (BACKUP_INTERVAL_ENV, str(backup.schedule)),
        ("DEPOT_BACKUP_KEEP_HOURLY", str(keep.hourly)),
        ("DEPOT_BACKUP_KEEP_DAILY", str(keep.daily)),
        ("DEPOT_BACKUP_KEEP_WEEKLY", str(keep.weekly)),
        ("DEPOT_BACKUP_KEEP_MONTHLY", str(keep.monthly)),
        ("DEPOT_BACKUP_KEEP_LOCAL", str(keep.local)),
        (BACKUP_RECIPIENTS_ENV, " ".join(backup.recipients)),
        (BACKUP_TARGETS_ENV, " ".join(backup.targets)),
    )


def _build_args(spec: ServiceSpec, settings: DepotSettings) -> tuple[tuple[str, str], ...]:
    image = spec.image
    if isinstance(image, BuiltImage):
        return (("BINARY", image.binary),)
    if isinstance(image, ProjectImage):
        # The stack's own image of the base: a pin in depot:images (a digest in production)
        # is what the build starts FROM, exactly.
        return ((image.base_arg, image_for(settings, service(image.base)) or ""),)
    return ()


def image_for(settings: DepotSettings, spec: ServiceSpec) -> str | None:
    """The image reference ``spec`` runs, from the spec itself (a caller's catalog may hold
    services the shipped one does not): its ``depot:images`` pin, else its pulled image."""
    if spec.name in settings.images:
        return settings.images[spec.name]
    return spec.image.reference if isinstance(spec.image, PulledImage) else None


def _published(spec: ServiceSpec, settings: DepotSettings) -> PublishedPort | None:
    external = settings.publish.ports.get(spec.name)
    if external is None or spec.port is None:
        return None
    return PublishedPort(target=spec.port, published=external)


def _bind_mounts(spec: ServiceSpec, settings: DepotSettings) -> tuple[BindMount, ...]:
    return tuple(
        BindMount(ProjectPath(bind_source(settings, bind.setting)), bind.target, bind.read_only)
        for bind in spec.binds
    )


def bind_source(settings: DepotSettings, setting: BindSetting) -> str:
    """The host path a catalog bind mount names by its setting (``console.distPath``)."""
    sources: dict[BindSetting, str] = {
        "console.distPath": settings.console.dist_path,
        "console.sessionsPath": settings.console.sessions_path,
    }
    return sources[setting]


def _build_context(spec: ServiceSpec, settings: DepotSettings) -> ProjectPath | None:
    if not spec.built or spec.name in settings.images:
        return None
    if isinstance(spec.image, ProjectImage):
        return ProjectPath(spec.image.context)
    # DepotSettings guarantees a context for every enabled built service.
    return ProjectPath(settings.build.contexts[spec.name])


def _push(spec: ServiceSpec, settings: DepotSettings) -> RegistryPush | None:
    registry = settings.registry
    if registry is None:
        return None
    release = settings.release
    # The loader fills in the commit whenever a registry is configured.
    tags = tuple(tag for tag in (release.commit, release.version) if tag)
    return RegistryPush(
        repository=f"{registry.address}/{spec.container_name}",
        tags=tags,
        address=registry.host,
        username=registry.username,
    )
