"""The depot program: a function of validated settings. ``__main__.py`` only calls ``deploy``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_docker_build as docker_build

from depot.catalog import POSTGRES_DATA_VOLUME, SECRETS, SERVICES, SecretName, ServiceSpec
from depot.components.data import DepotData
from depot.components.networks import DepotNetworks
from depot.components.rotation import PasswordRotation
from depot.components.secrets import GeneratedOrGivenPassword
from depot.components.service import DepotService, ServiceWiring
from depot.components.swarm import SwarmService, SwarmWiring
from depot.components.swarm_secrets import SwarmSecrets
from depot.config import DepotSettings
from depot.config.engine import load_stack_settings
from depot.model import ServiceDeployment, deployments
from depot.rotations import ROTATIONS
from depot.types import ServiceName


@dataclass(frozen=True)
class Depot:
    """What the program built, for stack outputs and for tests."""

    services: dict[ServiceName, DepotService | SwarmService]
    networks: DepotNetworks
    data: DepotData | None  # None on a Swarm: the engine keeps postgres-data on its node
    passwords: dict[SecretName, pulumi.Output[str]]  # every secret the stack holds
    endpoints: dict[ServiceName, str]

    def outputs(self) -> dict[str, object]:
        """Stack outputs; passwords stay secret (read them with ``--show-secrets``).

        A secret the stack is given and never generates (the rclone configuration) is no
        output: whoever set it has it.
        """
        return {
            **self._workloads(),
            "networks": {name: net.name for name, net in self.networks.networks.items()},
            "dataVolume": self.data.volume.name if self.data else POSTGRES_DATA_VOLUME,
            "endpoints": self.endpoints,
            **{
                secret.setting: self.passwords[secret.name]
                for secret in SECRETS
                if secret.generated
            },
        }

    def _workloads(self) -> dict[str, object]:
        containers = {
            name: svc.container_name
            for name, svc in self.services.items()
            if isinstance(svc, DepotService)
        }
        swarm = {
            name: svc.service_name
            for name, svc in self.services.items()
            if isinstance(svc, SwarmService)
        }
        return {"services": swarm} if swarm else {"containers": containers}


def build_depot(settings: DepotSettings, catalog: Sequence[ServiceSpec] = SERVICES) -> Depot:
    """Register every resource of the depot for ``settings`` (``catalog``: what to deploy)."""
    registry = settings.registry
    docker_provider = docker.Provider(
        "docker",
        host=settings.docker.host,
        ssh_opts=list(settings.docker.ssh_opts) or None,
        # The host pulls pushed images with the credentials of `docker login` where
        # `pulumi up` runs: a password in provider configuration would be stored
        # unencrypted in state (pulumi-docker#643).
        registry_auth=(
            [docker.ProviderRegistryAuthArgs(address=registry.host)] if registry else None
        ),
    )
    # Loaded images are built by the daemon that runs them; pushed ones where `up` runs, so
    # the production host never builds.
    build_host = settings.build.host or (None if registry else settings.docker.host)
    build_provider = docker_build.Provider("docker-build", host=build_host)
    on_docker = pulumi.ResourceOptions(providers=[docker_provider])
    on_swarm = settings.runtime == "swarm"

    planned = deployments(settings, catalog)
    networks = DepotNetworks(
        "networks",
        used=[network for d in planned for network in d.spec.networks],
        overlay=on_swarm,
        opts=on_docker,
    )
    secrets = stack_secrets(settings, planned)

    registry_password = (
        pulumi.Output.secret(settings.registry_password.get_secret_value())
        if settings.registry_password
        else None
    )
    data: DepotData | None = None
    services: dict[ServiceName, DepotService | SwarmService]
    if on_swarm:
        # No rotation commands: `docker exec` reaches only the node DOCKER_HOST names, and the
        # postgres task runs on the data node (README "Changing the database password").
        swarm_secrets = SwarmSecrets("swarm-secrets", values=secrets, opts=on_docker)
        services = _swarm_services(
            planned,
            networks=networks,
            secrets=swarm_secrets,
            values=secrets,
            registry_password=registry_password,
            docker_provider=docker_provider,
            build_provider=build_provider,
        )
    else:
        data = DepotData(
            "data",
            protect=settings.data.protect,
            adopt=settings.data.adopt_volume,
            used=[mount.volume for d in planned for mount in d.spec.volumes],
            opts=on_docker,
        )
        containers: dict[ServiceName, DepotService] = {}
        rotations: dict[SecretName, PasswordRotation] = {}
        for deployment in planned:
            wiring = ServiceWiring(
                networks=networks.networks,
                volumes=data.volumes,
                secrets=secrets,
                waits_for=[containers[name].container for name in deployment.start_after],
                registry_password=registry_password,
                # A new password reaches this container only once its holder took it.
                told_first=[
                    rotations[secret].command
                    for secret in deployment.secrets_read
                    if secret in rotations
                ],
            )
            service = DepotService(
                deployment.spec.name,
                deployment=deployment,
                wiring=wiring,
                docker_provider=docker_provider,
                build_provider=build_provider,
            )
            containers[deployment.spec.name] = service
            for rotation in ROTATIONS.values():
                if rotation.holder.name == deployment.spec.name:
                    rotations[rotation.secret] = PasswordRotation(
                        rotation.secret,
                        holder=rotation.holder,
                        holder_container=service.container,
                        password=secrets[rotation.secret],
                        docker_host=settings.docker.host,
                        ssh_options=settings.docker.ssh_opts,
                    )
        services = dict(containers)

    return Depot(
        services=services,
        networks=networks,
        data=data,
        passwords=secrets,
        endpoints={
            d.spec.name: f"http://{d.publish_address}:{d.published.published}"
            for d in planned
            if d.published is not None
        },
    )


def stack_secrets(
    settings: DepotSettings, planned: Sequence[ServiceDeployment]
) -> dict[SecretName, pulumi.Output[str]]:
    """Every secret the stack holds, always a secret Output: each password the catalog names
    (the stack's secret config, or generated), and each given-only secret the stack sets for a
    service it runs (an rclone configuration kept while backups are off goes nowhere)."""
    read = {file.secret for deployment in planned for file in deployment.secret_files}
    secrets: dict[SecretName, pulumi.Output[str]] = {}
    for secret in SECRETS:
        given = settings.secret(secret.setting)
        if secret.generated:
            name = secret.name.replace("_", "-")
            secrets[secret.name] = GeneratedOrGivenPassword(name, given=given).value
        elif given is not None and secret.name in read:
            secrets[secret.name] = pulumi.Output.secret(given.get_secret_value())
    return secrets


def _swarm_services(
    planned: Sequence[ServiceDeployment],
    *,
    networks: DepotNetworks,
    secrets: SwarmSecrets,
    values: dict[SecretName, pulumi.Output[str]],
    registry_password: pulumi.Output[str] | None,
    docker_provider: docker.Provider,
    build_provider: docker_build.Provider,
) -> dict[ServiceName, DepotService | SwarmService]:
    """One ``docker.Service`` per enabled service, each after those it waits for converge."""
    services: dict[ServiceName, SwarmService] = {}
    for deployment in planned:
        wiring = SwarmWiring(
            networks=networks.networks,
            secrets=secrets.secrets,
            secret_values=values,
            waits_for=[services[name].service for name in deployment.start_after],
            registry_password=registry_password,
        )
        services[deployment.spec.name] = SwarmService(
            deployment.spec.name,
            deployment=deployment,
            wiring=wiring,
            docker_provider=docker_provider,
            build_provider=build_provider,
        )
    return dict(services)


def deploy(settings: DepotSettings | None = None) -> None:
    """Entry point of ``pulumi up``: validate the stack's config, then build and export.

    A tool that validated the settings already (``depot check``, ``depot plan``) passes them,
    so one command validates once.
    """
    if settings is None:
        settings = load_stack_settings()  # raises before any resource is registered
    for key, value in build_depot(settings).outputs().items():
        pulumi.export(key, value)
