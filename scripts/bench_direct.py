"""The baseline of ``make bench``: the depot's resources registered directly, nothing else.

``direct_program`` registers what ``depot plan --stack prod`` lists — the same types, names,
parents and inputs — with pulumi_docker, pulumi_docker_build, pulumi_random and bare
components, under the same mocks, without the program's components, the plan or its renderer.
Run as a script it does that once: the whole-process side of the comparison, importing only
the providers and what builds their arguments.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_docker_build as docker_build
import pulumi_random as random

from depot.catalog import (
    BACKUP_NETWORK,
    DATABASE_NETWORK,
    DEPOT_NETWORK,
    POSTGRES_BACKUPS_VOLUME,
    POSTGRES_DATA_VOLUME,
    SECRETS,
    NetworkName,
    SecretName,
    VolumeName,
)
from depot.components.images import image_build_args
from depot.components.service import ServiceWiring, to_container_args
from depot.config.engine import load_stack_settings
from depot.config.stack_file import stack_config
from depot.model import deployments
from depot.recording import record


def direct_program() -> None:
    """The resources `depot plan --stack prod` lists — the same types, names, parents and
    inputs — registered directly with pulumi_docker, pulumi_docker_build, pulumi_random and bare
    ``pulumi.ComponentResource``s: no typed components, no outputs, no plan rendering."""
    settings = load_stack_settings()
    registry = settings.registry
    provider = docker.Provider(
        "docker",
        host=settings.docker.host,
        registry_auth=(
            [docker.ProviderRegistryAuthArgs(address=registry.host)] if registry else None
        ),
    )
    builder = docker_build.Provider("docker-build", host=None if registry else settings.docker.host)

    def component(type_: str, name: str, parent: pulumi.Resource | None = None) -> pulumi.Resource:
        return pulumi.ComponentResource(type_, name, None, pulumi.ResourceOptions(parent=parent))

    network_group = component("depot:network:Networks", "networks")
    on_docker = pulumi.ResourceOptions(provider=provider, parent=network_group)
    networks: dict[NetworkName, docker.Network] = {
        name: docker.Network(name, name=name, driver="bridge", internal=internal, opts=on_docker)
        for name, internal in (
            (DEPOT_NETWORK, False),
            (DATABASE_NETWORK, True),
            (BACKUP_NETWORK, False),
        )
    }
    data = component("depot:data:Data", "data")
    volumes: dict[VolumeName, docker.Volume] = {
        name: docker.Volume(
            name,
            name=name,
            opts=pulumi.ResourceOptions(provider=provider, parent=data, retain_on_delete=True),
        )
        for name in (POSTGRES_DATA_VOLUME, POSTGRES_BACKUPS_VOLUME)
    }
    secrets: dict[SecretName, pulumi.Output[str]] = {}
    for secret in SECRETS:
        if not secret.generated:
            continue  # given only: prod sets no rclone configuration
        name = secret.name.replace("_", "-")
        holder = component("depot:secrets:Password", name)
        secrets[secret.name] = random.RandomPassword(
            name, length=32, special=False, opts=pulumi.ResourceOptions(parent=holder)
        ).result
    containers: dict[str, docker.Container] = {}
    for deployment in deployments(settings):
        spec = deployment.spec
        service = component("depot:services:Service", spec.name)
        holder = component("depot:images:ServiceImage", f"{spec.name}-image", service)
        on_host = pulumi.ResourceOptions(provider=provider, parent=holder)
        if deployment.build_context is None:
            image = docker.RemoteImage(
                f"{spec.name}-image", name=deployment.image_reference or "", opts=on_host
            )
            runs = image.image_id
        else:
            build = docker_build.Image(
                f"{spec.name}-image-build",
                args=image_build_args(deployment, None),
                opts=pulumi.ResourceOptions(provider=builder, parent=holder),
            )
            reference = (
                pulumi.Output.concat(deployment.push.repository, "@", build.digest)
                if deployment.push
                else build.ref
            )
            image = docker.RemoteImage(f"{spec.name}-image", name=reference, opts=on_host)
            runs = image.name if deployment.push else image.image_id
        wiring = ServiceWiring(
            networks=networks,
            volumes=volumes,
            secrets=secrets,
            waits_for=[containers[name] for name in spec.waits_for],
        )
        containers[spec.name] = docker.Container(
            f"{spec.name}-container",
            args=to_container_args(deployment, runs, wiring),
            opts=pulumi.ResourceOptions(provider=provider, parent=service),
        )


if __name__ == "__main__":
    record(direct_program, stack="prod", config=stack_config("prod"))
