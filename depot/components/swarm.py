"""One depot service on a Docker Swarm: its image and its ``docker.Service``.

``to_service_args`` is the Swarm sibling of ``depot.components.service.to_container_args``:
the same ``ServiceDeployment``, mapped field by field. What Swarm cannot express is refused by
the settings (``depot:restart: unless-stopped``, local builds, images without a digest) or listed
in README "Docker Swarm"; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_docker_build as docker_build

from depot.catalog import (
    LOG_OPTIONS,
    Healthcheck,
    NetworkName,
    SecretName,
)
from depot.components.images import ServiceImage
from depot.model import ServiceDeployment
from depot.swarm import (
    converge_seconds,
    go_duration,
    spread_preferences,
    swarm_restart,
    update_policy,
)

MIB = 1024 * 1024
NANO_CPUS = 1_000_000_000
TMPFS_MODE = 0o1777  # Docker's own default for a tmpfs mount, written so the plan shows it


@dataclass(frozen=True)
class SwarmWiring:
    """What a service is attached to: the stack's overlay networks, secrets and order."""

    networks: Mapping[NetworkName, docker.Network]
    secrets: Mapping[SecretName, docker.Secret]
    secret_values: Mapping[SecretName, pulumi.Output[str]]  # for variables built from one
    waits_for: Sequence[pulumi.Resource]
    registry_password: pulumi.Output[str] | None = None


class SwarmService(pulumi.ComponentResource):
    """A service's image (pushed or pinned, by digest) and its ``depot-<service>`` service."""

    service: docker.Service
    service_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        deployment: ServiceDeployment,
        wiring: SwarmWiring,
        docker_provider: docker.Provider,
        build_provider: docker_build.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("depot:services:SwarmService", name, None, opts)
        image = ServiceImage(
            f"{name}-image",
            deployment=deployment,
            docker_provider=docker_provider,
            build_provider=build_provider,
            registry_password=wiring.registry_password,
            pulled_by_nodes=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.service = docker.Service(
            f"{name}-service",
            args=to_service_args(deployment, image.runs, wiring),
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=docker_provider,
                # Deploy order: the services these wait for converge (healthy) first. At run
                # time Swarm has no order at all: see README "Docker Swarm".
                depends_on=list(wiring.waits_for),
                # A service name exists once per swarm: a replacement deletes first. Updates,
                # the usual change, roll in place.
                delete_before_replace=True,
            ),
        )
        self.service_name = self.service.name
        self.register_outputs({"service_name": self.service_name})


def to_service_args(
    deployment: ServiceDeployment, image: pulumi.Input[str], wiring: SwarmWiring
) -> docker.ServiceArgs:
    """The provider's arguments for one service on a Swarm: the model, mapped one to one."""
    spec = deployment.spec
    update = update_policy(deployment)
    restart = swarm_restart(deployment.restart)
    published = deployment.published
    return docker.ServiceArgs(
        name=spec.container_name,
        task_spec=docker.ServiceTaskSpecArgs(
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=image,
                # Swarm's "command" is the entrypoint and its "args" the command: the data lock
                # in front of postgres' own entrypoint (catalog DATA_LOCK_SCRIPT), which matters
                # most here — a rescheduled task may start beside the one it replaces.
                commands=list(spec.entrypoint) if spec.entrypoint else None,
                args=list(spec.command) if spec.command else None,
                env=service_env(deployment, wiring.secret_values) or None,
                healthcheck=_healthcheck(spec.healthcheck),
                labels=[
                    docker.ServiceTaskSpecContainerSpecLabelArgs(label=key, value=value)
                    for key, value in sorted(deployment.labels.items())
                ]
                or None,
                user=spec.user,
                read_only=spec.writable_root is None,
                cap_drops=["ALL"],
                cap_adds=list(spec.capabilities) or None,
                # SIGTERM reaches our binaries through an init, as on a single host.
                init=spec.init,
                stop_grace_period=go_duration(spec.stop_grace_seconds),
                mounts=_mounts(deployment) or None,
                secrets=[
                    docker.ServiceTaskSpecContainerSpecSecretArgs(
                        secret_id=wiring.secrets[secret.secret].id,
                        secret_name=wiring.secrets[secret.secret].name,
                        file_name=secret.path,
                        file_uid=str(secret.owner),
                        file_gid=str(secret.owner),
                        file_mode=secret.mode,
                    )
                    for secret in deployment.secret_files
                ]
                or None,
            ),
            resources=_resources(deployment),
            restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
                condition=restart.condition, max_attempts=restart.max_attempts or None
            ),
            placement=_placement(deployment),
            log_driver=docker.ServiceTaskSpecLogDriverArgs(
                name="json-file", options=dict(LOG_OPTIONS)
            ),
            # By ID: the provider's `name` here is deprecated and would replace on every plan.
            networks_advanceds=[
                docker.ServiceTaskSpecNetworksAdvancedArgs(
                    id=wiring.networks[network].id, aliases=[spec.name]
                )
                for network in spec.networks
            ],
        ),
        mode=docker.ServiceModeArgs(
            replicated=docker.ServiceModeReplicatedArgs(replicas=deployment.replicas)
        ),
        update_config=docker.ServiceUpdateConfigArgs(
            parallelism=update.parallelism,
            order=update.order,
            failure_action=update.failure_action,
            monitor=go_duration(update.monitor_seconds),
        ),
        # A rollback runs as carefully as the update it undoes.
        rollback_config=docker.ServiceRollbackConfigArgs(
            parallelism=update.parallelism,
            order=update.order,
            monitor=go_duration(update.monitor_seconds),
        ),
        # `pulumi up` returns once every replica runs healthy (a task with a healthcheck counts
        # as running only then), and the services after it are created only then.
        converge_config=docker.ServiceConvergeConfigArgs(
            timeout=go_duration(converge_seconds(deployment))
        ),
        endpoint_spec=(
            docker.ServiceEndpointSpecArgs(
                mode="vip",
                ports=[
                    docker.ServiceEndpointSpecPortArgs(
                        target_port=published.target,
                        published_port=published.published,
                        protocol="tcp",
                        publish_mode="ingress",
                    )
                ],
            )
            if published
            else None
        ),
    )


def _healthcheck(check: Healthcheck) -> docker.ServiceTaskSpecContainerSpecHealthcheckArgs:
    # No start_interval: pulumi_docker 5.2.0's service healthcheck has no such field, so a
    # task's first probe waits one interval (`depot plan` and README "Docker Swarm" say so; the
    # stack file carries it).
    return docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
        tests=list(check.test),
        interval=go_duration(check.interval),
        timeout=go_duration(check.timeout),
        retries=check.retries,
        start_period=go_duration(check.start_period),
    )


def _mounts(deployment: ServiceDeployment) -> list[docker.ServiceTaskSpecContainerSpecMountArgs]:
    spec = deployment.spec
    # Swarm's tmpfs takes a size and a mode only: no noexec/nosuid (README "Docker Swarm").
    mounts = [
        docker.ServiceTaskSpecContainerSpecMountArgs(
            type="tmpfs",
            target=tmpfs.path,
            tmpfs_options=docker.ServiceTaskSpecContainerSpecMountTmpfsOptionsArgs(
                size_bytes=tmpfs.options.size_bytes, mode=TMPFS_MODE
            ),
        )
        for tmpfs in deployment.tmpfs
    ]
    # A local volume on the node the placement pins the service to (postgres', for both
    # postgres-data and postgres-backups); the engine creates it there on the first start and
    # no service update or removal deletes it.
    mounts.extend(
        docker.ServiceTaskSpecContainerSpecMountArgs(
            type="volume", source=mount.volume, target=mount.target
        )
        for mount in spec.volumes
    )
    mounts.extend(
        docker.ServiceTaskSpecContainerSpecMountArgs(
            type="bind", source=mount.source.host, target=mount.target, read_only=mount.read_only
        )
        for mount in deployment.bind_mounts
    )
    return mounts


def _resources(deployment: ServiceDeployment) -> docker.ServiceTaskSpecResourcesArgs | None:
    limits = deployment.limits
    generic = deployment.generic_resources
    if limits is None and not generic:
        return None
    reserved_memory = limits.memory_reservation if limits else None
    return docker.ServiceTaskSpecResourcesArgs(
        limits=(
            docker.ServiceTaskSpecResourcesLimitsArgs(
                nano_cpus=round(limits.cpus * NANO_CPUS), memory_bytes=limits.memory * MIB
            )
            if limits
            else None
        ),
        reservation=(
            docker.ServiceTaskSpecResourcesReservationArgs(
                memory_bytes=reserved_memory * MIB if reserved_memory else None,
                generic_resources=(
                    docker.ServiceTaskSpecResourcesReservationGenericResourcesArgs(
                        discrete_resources_specs=list(generic)
                    )
                    if generic
                    else None
                ),
            )
            if reserved_memory or generic
            else None
        ),
    )


def service_env(
    deployment: ServiceDeployment, secrets: Mapping[SecretName, pulumi.Output[str]]
) -> dict[str, pulumi.Input[str]]:
    """The task's environment: plain values, and each value built from a secret kept secret.

    Swarm cannot build a variable from a secret file, so ``DATABASE_URL`` is a secret value in
    the service spec, as on a single host; only that value is masked, not its neighbours.
    """
    env: dict[str, pulumi.Input[str]] = dict(deployment.env)
    for variable in deployment.secret_env:
        env[variable.name] = pulumi.Output.secret(secrets[variable.secret].apply(variable.render))
    return dict(sorted(env.items()))


def _placement(deployment: ServiceDeployment) -> docker.ServiceTaskSpecPlacementArgs | None:
    """Constraints pin a service to its labelled nodes; preferences spread the others."""
    spread = spread_preferences(deployment)
    if not deployment.placement and not spread:
        return None
    return docker.ServiceTaskSpecPlacementArgs(
        constraints=list(deployment.placement) or None,
        prefs=[f"spread={label}" for label in spread] or None,
    )
