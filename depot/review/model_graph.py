"""``depot graph`` without running the program: the plan's graph, read off the resolved model.

Drawing the graph from a plan (``build_graph``) runs the program under the Pulumi SDK's mocks,
and importing the SDK and its providers alone takes half a second. The graph needs less: which
resources the program registers for this stack, and which of them each one needs. Both follow
from the model (``deployments``), the catalog (its secrets, the services' networks, mounts and
start order) and the settings, by the rules the components (``depot.components``) and
``depot.program`` follow; this module states those rules as plain data, one function per
component, and imports no Pulumi. Services, networks, volumes and secrets come from the model
and the catalog, so a new entry there is drawn without an edit here.

Because it states the program's wiring a second time, ``tests/test_graph.py`` draws every stack
and profile both ways and requires the two graphs equal: a change to the program that this
module does not follow fails there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from depot.catalog import (
    POSTGRES_DATA_VOLUME,
    SECRETS,
    SERVICES,
    NetworkName,
    SecretName,
    ServiceSpec,
)
from depot.config.settings import DepotSettings
from depot.model import ServiceDeployment, deployments
from depot.resource_types import (
    BUILD,
    COMMAND,
    CONTAINER,
    DOCKER_SECRET,
    NETWORK,
    RANDOM_PASSWORD,
    REMOTE_IMAGE,
    SERVICE,
    VOLUME,
    rotation_name,
)
from depot.review.graph import Edge, Graph, Node, node
from depot.rotations import ROTATIONS
from depot.types import ServiceName

SWARM_NAMING_KEY = "swarm-secrets-naming-key"
"""The ``RandomPassword`` that keys the Swarm secrets' names (``SwarmSecrets``)."""


@dataclass
class _Drawing:
    """The nodes and edges drawn so far."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def add(self, type_: str, name: str, engine_name: str | None = None) -> str:
        """Draw resource ``name`` of ``type_``; its key."""
        drawn = node(type_, name, engine_name or name)
        self.nodes.append(drawn)
        return drawn.key

    def needs(self, target: str, *sources: str | None, health_gated: bool = False) -> None:
        """``target`` needs each of ``sources`` (None: a resource this stack does not have)."""
        self.edges.extend(Edge(s, target, health_gated) for s in sources if s is not None)

    def graph(self) -> Graph:
        return Graph.of(self.nodes, self.edges)


def model_graph(settings: DepotSettings, services: Sequence[ServiceSpec] = SERVICES) -> Graph:
    """The graph ``build_graph`` draws of this stack's plan, from ``settings`` alone
    (``services``: the catalog, as ``build_depot`` takes it)."""
    planned = deployments(settings, services)
    drawing = _Drawing()
    passwords = _passwords(drawing, settings)
    networks = _networks(drawing, planned)
    if settings.runtime == "swarm":
        _swarm_services(drawing, planned, networks, passwords)
    else:
        _containers(drawing, planned, networks, passwords)
    return drawing.graph()


def _dashed(secret: SecretName) -> str:
    """How a secret's resources are named: ``database-password``."""
    return secret.replace("_", "-")


def _passwords(drawing: _Drawing, settings: DepotSettings) -> dict[SecretName, str | None]:
    """``stack_secrets``: a ``RandomPassword`` for each generated secret the stack leaves unset
    (None: the stack's value, which is no resource). A given-only secret the stack leaves unset
    is no key at all: the stack does not hold it."""
    held: dict[SecretName, str | None] = {}
    for secret in SECRETS:
        given = settings.secret(secret.setting) is not None
        if given:
            held[secret.name] = None
        elif secret.generated:
            held[secret.name] = drawing.add(RANDOM_PASSWORD, _dashed(secret.name))
    return held


def _networks(drawing: _Drawing, planned: Sequence[ServiceDeployment]) -> dict[NetworkName, str]:
    """``DepotNetworks``: each network the enabled services join, named as it is called."""
    joined = dict.fromkeys(n for d in planned for n in d.spec.networks)
    return {network: drawing.add(NETWORK, network) for network in joined}


def _volumes(drawing: _Drawing, planned: Sequence[ServiceDeployment]) -> dict[str, str]:
    """``DepotData``: postgres' volume always, then each other named volume an enabled service
    keeps its data in."""
    used = [mount.volume for d in planned for mount in d.spec.volumes]
    mounted = dict.fromkeys([POSTGRES_DATA_VOLUME, *used])
    return {volume: drawing.add(VOLUME, volume) for volume in mounted}


def _volumes_of(deployment: ServiceDeployment, volumes: Mapping[str, str]) -> list[str]:
    return [volumes[mount.volume] for mount in deployment.spec.volumes]


def _image_build(drawing: _Drawing, deployment: ServiceDeployment) -> str | None:
    """``ServiceImage``'s build, where this stack builds the service's image."""
    if deployment.build_context is None:
        return None
    return drawing.add(BUILD, f"{deployment.name}-image-build")


def _host_image(drawing: _Drawing, deployment: ServiceDeployment) -> str:
    """``ServiceImage`` on one host: the ``RemoteImage`` the container runs, after its build."""
    build = _image_build(drawing, deployment)
    image = drawing.add(REMOTE_IMAGE, f"{deployment.name}-image")
    drawing.needs(image, build)
    return image


def _containers(
    drawing: _Drawing,
    planned: Sequence[ServiceDeployment],
    networks: Mapping[NetworkName, str],
    passwords: Mapping[SecretName, str | None],
) -> None:
    """``DepotService`` for each service, in order, and the ``PasswordRotation`` of each secret
    after the container that holds it (``build_depot``)."""
    volumes = _volumes(drawing, planned)
    containers: dict[ServiceName, str] = {}
    rotations: dict[SecretName, str] = {}
    for deployment in planned:
        container = drawing.add(
            CONTAINER, f"{deployment.name}-container", deployment.spec.container_name
        )
        drawing.needs(
            container,
            _host_image(drawing, deployment),
            *_networks_of(deployment, networks),
            *_volumes_of(deployment, volumes),
            *(passwords.get(secret) for secret in deployment.secrets_read),
            # A new password reaches it only once the secret's holder took it.
            *(rotations.get(secret) for secret in deployment.secrets_read),
        )
        _start_after(drawing, deployment, container, containers)
        containers[deployment.spec.name] = container
        for rotation in ROTATIONS.values():
            if rotation.holder.name == deployment.spec.name:
                command = drawing.add(COMMAND, rotation_name(rotation.secret))
                drawing.needs(command, container, passwords[rotation.secret])
                rotations[rotation.secret] = command


def _networks_of(deployment: ServiceDeployment, networks: Mapping[NetworkName, str]) -> list[str]:
    return [networks[network] for network in deployment.spec.networks]


def _start_after(
    drawing: _Drawing,
    deployment: ServiceDeployment,
    workload: str,
    workloads: Mapping[ServiceName, str],
) -> None:
    """Health-gated start order: each workload it starts after is created waiting until healthy
    (a container's ``wait``, a Swarm service's converge)."""
    drawing.needs(
        workload, *(workloads[name] for name in deployment.start_after), health_gated=True
    )


def _swarm_secrets(
    drawing: _Drawing, passwords: Mapping[SecretName, str | None]
) -> dict[SecretName, str]:
    """``SwarmSecrets``: one ``docker.Secret`` per secret, named under a generated key."""
    naming_key = drawing.add(RANDOM_PASSWORD, SWARM_NAMING_KEY)
    secrets: dict[SecretName, str] = {}
    for secret, password in passwords.items():
        secrets[secret] = drawing.add(DOCKER_SECRET, _dashed(secret))
        drawing.needs(secrets[secret], naming_key, password)
    return secrets


def _swarm_services(
    drawing: _Drawing,
    planned: Sequence[ServiceDeployment],
    networks: Mapping[NetworkName, str],
    passwords: Mapping[SecretName, str | None],
) -> None:
    """``SwarmService`` for each service, in order. Nodes pull its image, so a service needs only
    its build, if any; a secret file comes as a Swarm secret, a variable built from a secret
    from the password itself."""
    secrets = _swarm_secrets(drawing, passwords)
    services: dict[ServiceName, str] = {}
    for deployment in planned:
        service = drawing.add(SERVICE, f"{deployment.name}-service", deployment.spec.container_name)
        drawing.needs(
            service,
            _image_build(drawing, deployment),
            *_networks_of(deployment, networks),
            *(secrets.get(file.secret) for file in deployment.secret_files),
            *(passwords.get(env.secret) for env in deployment.secret_env),
        )
        _start_after(drawing, deployment, service, services)
        services[deployment.spec.name] = service
