"""One stack's depot, resolved: each enabled service with every value the stack decides.

``deployments(settings)`` is pure data (no Pulumi): the Pulumi components and any other output
(a Compose export, a plan) read this same model, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from depot.catalog import SERVICES, BuiltImage, PulledImage, ServiceSpec
from depot.config.settings import DepotSettings, RestartPolicy, ServiceLimits
from depot.paths import PROJECT_ROOT
from depot.types import BuiltServiceName


@dataclass(frozen=True)
class BindMount:
    """A host directory mounted into a container."""

    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class PublishedPort:
    """A container port published on the Docker host."""

    internal: int
    external: int
    address: str


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
    restart: RestartPolicy
    limits: ServiceLimits | None
    env: tuple[tuple[str, str], ...]
    published: PublishedPort | None
    bind_mounts: tuple[BindMount, ...]
    image_reference: str | None  # pulled services, and built ones run from a registry digest
    build_context: str | None  # services built by this stack
    build_on_preview: bool
    push: RegistryPush | None = None  # None: built images are loaded into the stack's daemon

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def from_registry(self) -> bool:
        """One of our images that CI pushed, run by digest instead of built here."""
        return isinstance(self.spec.image, BuiltImage) and self.build_context is None

    @property
    def binary(self) -> str:
        """The cargo binary a built service's image is built for."""
        if not isinstance(self.spec.image, BuiltImage):
            raise TypeError(f"{self.name} is not built here")
        return self.spec.image.binary

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
    enabled = [spec for spec in services if settings.enabled(spec.profile)]
    return tuple(_deploy(spec, settings) for spec in enabled)


def _deploy(spec: ServiceSpec, settings: DepotSettings) -> ServiceDeployment:
    context = _build_context(spec, settings)
    return ServiceDeployment(
        spec=spec,
        stack=settings.stack,
        restart=settings.restart,
        limits=settings.limits.get(spec.name),
        env=_environment(spec, settings),
        published=_published(spec, settings),
        bind_mounts=_bind_mounts(spec, settings),
        image_reference=_image_reference(spec, settings),
        build_context=context,
        build_on_preview=settings.build.on_preview,
        push=_push(spec, settings) if context is not None else None,
    )


def _image_reference(spec: ServiceSpec, settings: DepotSettings) -> str | None:
    if spec.name in settings.images:
        return settings.images[spec.name]
    return spec.image.reference if isinstance(spec.image, PulledImage) else None


def _environment(spec: ServiceSpec, settings: DepotSettings) -> tuple[tuple[str, str], ...]:
    env = list(spec.env)
    if spec.log_target is not None:
        env.append(
            ("RUST_LOG", f"{spec.log_target}={settings.log_level}{spec.extra_log_directives}")
        )
    env.extend((secret.env, secret.path) for secret in spec.secret_files)
    return tuple(sorted(env))


def _published(spec: ServiceSpec, settings: DepotSettings) -> PublishedPort | None:
    external = settings.publish.ports.get(spec.name)
    if external is None or spec.port is None:
        return None
    return PublishedPort(
        internal=spec.port, external=external, address=str(settings.publish.address)
    )


def _bind_mounts(spec: ServiceSpec, settings: DepotSettings) -> tuple[BindMount, ...]:
    if not spec.console_mounts:
        return ()
    return (
        BindMount(_host_path(settings.console.dist_path), "/usr/share/nginx/html", read_only=True),
        BindMount(_host_path(settings.console.sessions_path), "/data/sessions", read_only=False),
    )


def _build_context(spec: ServiceSpec, settings: DepotSettings) -> str | None:
    if not isinstance(spec.image, BuiltImage) or spec.name in settings.images:
        return None
    # DepotSettings guarantees a context for every enabled built service.
    return _host_path(settings.build.contexts[cast(BuiltServiceName, spec.name)])


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


def _host_path(path: str) -> str:
    """Docker needs absolute host paths; relative ones are taken from the project directory."""
    return str((PROJECT_ROOT / path).resolve()) if not Path(path).is_absolute() else path
