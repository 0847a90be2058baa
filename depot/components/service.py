"""One depot service: its image and its container, wired to networks, data and secrets."""

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
    SecretEnv,
    SecretName,
    VolumeName,
)
from depot.components.images import ServiceImage
from depot.model import ServiceDeployment


@dataclass(frozen=True)
class ServiceWiring:
    """What a container is attached to: the stack's shared resources."""

    networks: Mapping[NetworkName, docker.Network]
    volumes: Mapping[VolumeName, docker.Volume]
    secrets: Mapping[SecretName, pulumi.Output[str]]
    waits_for: Sequence[docker.Container]
    registry_password: pulumi.Output[str] | None = None
    # Password rotations the container waits for: its holder takes a new value first.
    told_first: Sequence[pulumi.Resource] = ()


class DepotService(pulumi.ComponentResource):
    """A service's image and its ``depot-<service>`` container."""

    container: docker.Container
    container_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        deployment: ServiceDeployment,
        wiring: ServiceWiring,
        docker_provider: docker.Provider,
        build_provider: docker_build.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("depot:services:Service", name, None, opts)
        image = ServiceImage(
            f"{name}-image",
            deployment=deployment,
            docker_provider=docker_provider,
            build_provider=build_provider,
            registry_password=wiring.registry_password,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.container = docker.Container(
            f"{name}-container",
            args=to_container_args(deployment, image.runs, wiring),
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=docker_provider,
                # Health-gated start order: those containers are created with `wait`, so
                # they are healthy before this one is created.
                depends_on=[*wiring.waits_for, *wiring.told_first],
                # A fixed container name (and host port) cannot exist twice: replace by
                # deleting first, or the create fails on the conflict.
                delete_before_replace=True,
                # The Docker provider stores changes to these but never applies them to a
                # running container (see depot/review/replacements.py): recreate instead.
                replace_on_changes=["healthcheck", "init", "tmpfs"],
            ),
        )
        self.container_name = self.container.name
        self.register_outputs({"container_name": self.container_name})


def to_container_args(
    deployment: ServiceDeployment, image: pulumi.Input[str], wiring: ServiceWiring
) -> docker.ContainerArgs:
    """The provider's arguments for one service's container: the model, mapped one to one."""
    spec = deployment.spec
    limits = deployment.limits
    restart = deployment.restart
    return docker.ContainerArgs(
        name=spec.container_name,
        image=image,
        # postgres' data lock in front of the image's own entrypoint (catalog DATA_LOCK_SCRIPT).
        entrypoints=list(spec.entrypoint) if spec.entrypoint else None,
        command=list(spec.command) if spec.command else None,
        envs=container_env(deployment, wiring.secrets),
        healthcheck=_healthcheck(spec.healthcheck),
        wait=True,
        wait_timeout=spec.healthcheck.wait_timeout,
        restart=restart.name,
        max_retry_count=restart.max_retries,
        memory=limits.memory if limits else None,
        memory_reservation=limits.memory_reservation if limits else None,
        cpus=f"{limits.cpus:g}" if limits else None,
        log_driver="json-file",
        log_opts=dict(LOG_OPTIONS),
        labels=[
            docker.ContainerLabelArgs(label=key, value=value)
            for key, value in sorted(deployment.labels.items())
        ],
        # The first network is the container's own; it joins the others after creation.
        network_mode=wiring.networks[spec.networks[0]].name,
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(
                name=wiring.networks[network].name, aliases=[spec.name]
            )
            for network in spec.networks
        ],
        ports=(
            [
                docker.ContainerPortArgs(
                    internal=deployment.published.target,
                    external=deployment.published.published,
                    ip=deployment.publish_address,
                    protocol="tcp",
                )
            ]
            if deployment.published
            else None
        ),
        volumes=[
            docker.ContainerVolumeArgs(
                volume_name=wiring.volumes[mount.volume].name, container_path=mount.target
            )
            for mount in spec.volumes
        ]
        or None,
        mounts=[
            docker.ContainerMountArgs(
                type="bind",
                source=mount.source.host,
                target=mount.target,
                read_only=mount.read_only,
            )
            for mount in deployment.bind_mounts
        ]
        or None,
        tmpfs={tmpfs.path: tmpfs.options.mount_options for tmpfs in deployment.tmpfs} or None,
        read_only=spec.writable_root is None,
        user=spec.user,
        capabilities=docker.ContainerCapabilitiesArgs(
            drops=["ALL"], adds=list(spec.capabilities) or None
        ),
        security_opts=["no-new-privileges:true"],
        uploads=[
            docker.ContainerUploadArgs(
                file=secret.path,
                content=wiring.secrets[secret.secret],
                owner=str(secret.owner),
                group=str(secret.owner),
                permissions=f"0{secret.mode:o}",
            )
            for secret in deployment.secret_files
        ]
        or None,
        gpus=str(spec.gpu.count) if spec.gpu else None,
        # Our entrypoints run as PID 1 without default signal handlers; an init forwards
        # SIGTERM so `docker stop` is a clean stop, not a kill after the grace period.
        init=spec.init,
        destroy_grace_seconds=spec.stop_grace_seconds,
        stop_timeout=spec.stop_grace_seconds,
        # Anonymous volumes go with the container; the named data volumes never do.
        remove_volumes=not spec.volumes,
    )


def _secret_variable(env: SecretEnv, secret: pulumi.Output[str]) -> pulumi.Output[str]:
    return secret.apply(lambda value: f"{env.name}={env.render(value)}")


def _healthcheck(check: Healthcheck) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=list(check.test),
        interval=f"{check.interval}s",
        timeout=f"{check.timeout}s",
        retries=check.retries,
        start_period=f"{check.start_period}s",
        start_interval=f"{check.start_interval}s",
    )


def container_env(
    deployment: ServiceDeployment, secrets: Mapping[SecretName, pulumi.Output[str]]
) -> pulumi.Input[Sequence[str]]:
    plain = [f"{key}={value}" for key, value in deployment.env]
    if not deployment.secret_env:
        return plain
    # A value built from a secret (DATABASE_URL carries the password) makes the whole list a
    # secret: the provider takes one list, so diffs mask it all.
    derived = [_secret_variable(env, secrets[env.secret]) for env in deployment.secret_env]
    return pulumi.Output.secret(
        pulumi.Output.all(*derived).apply(lambda values: sorted([*plain, *values]))
    )
