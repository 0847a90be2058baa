"""How fast is ``depot plan``? Run with ``make bench``; prints one table, asserts nothing.

1. ``depot plan --stack prod`` (config validation, components, recording, rendering) against
   registering the same provider resources directly with pulumi_docker, flat, under the same
   mocks: what our layers cost. Target: plan ≤ 1.5 x direct.
2. The plan of a synthetic depot of 20 and of 200 services: how it grows. Target: linear
   (200 ≤ 12 x 20).
Each figure is the best of several runs in this process, after one warm-up run: the least
disturbed by whatever else the machine does, which is what a ratio of two costs needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import cast

import pulumi
import pulumi_docker as docker
import pulumi_docker_build as docker_build
import pulumi_random as random

from depot.catalog import (
    CONSOLE,
    DATABASE_NETWORK,
    DEPOT_NETWORK,
    POSTGRES,
    SECRETS,
    SERVICES,
    NetworkName,
    PulledImage,
    SecretName,
    ServiceSpec,
)
from depot.components.images import image_build_args
from depot.components.service import ServiceWiring, to_container_args
from depot.config.engine import load_stack_settings
from depot.config.stack_file import stack_config
from depot.model import deployments
from depot.program import build_depot
from depot.recording import record
from depot.review.plan import plan_from, plan_stack
from depot.review.render import dumps
from depot.types import ServiceName

RUNS = 7


def best_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    action()  # warm-up: imports, caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return min(samples)


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
        for name, internal in ((DEPOT_NETWORK, False), (DATABASE_NETWORK, True))
    }
    data = component("depot:data:Data", "data")
    volume = docker.Volume(
        "postgres-data",
        name="postgres-data",
        opts=pulumi.ResourceOptions(provider=provider, parent=data, retain_on_delete=True),
    )
    secrets: dict[SecretName, pulumi.Output[str]] = {}
    for secret in SECRETS:
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
            data_volume=volume,
            secrets=secrets,
            waits_for=[containers[name] for name in spec.waits_for],
        )
        containers[spec.name] = docker.Container(
            f"{spec.name}-container",
            args=to_container_args(deployment, runs, wiring),
            opts=pulumi.ResourceOptions(provider=provider, parent=service),
        )


def synthetic_catalog(size: int) -> tuple[ServiceSpec, ...]:
    """``size`` services shaped like the depot's: postgres, then web services in chains of 3."""
    services = [POSTGRES]
    for index in range(size - 1):
        name = cast(ServiceName, f"svc-{index:03d}")
        previous = services[-1].name if index % 3 else POSTGRES.name
        services.append(
            replace(
                CONSOLE,
                name=name,
                image=PulledImage("nginx:1.27.3-alpine"),
                waits_for=(previous,),
                binds=(),
            )
        )
    return tuple(services)


def plan_synthetic(size: int) -> None:
    catalog = synthetic_catalog(size)

    def program() -> None:
        build_depot(load_stack_settings(), catalog)

    dumps(plan_from(record(program, stack="prod", config=stack_config("prod"))).to_json())


def main() -> None:
    plan = best_seconds(lambda: dumps(plan_stack("prod").to_json()))
    direct = best_seconds(lambda: record(direct_program, stack="prod", config=stack_config("prod")))
    small = best_seconds(lambda: plan_synthetic(20))
    large = best_seconds(lambda: plan_synthetic(200), runs=3)
    rows = [
        ("depot plan --stack prod", plan),
        ("direct pulumi_docker registration", direct),
        ("plan, synthetic depot of 20 services", small),
        ("plan, synthetic depot of 200 services", large),
    ]
    print(f"{'what':45} {'best of':>10}")
    for label, seconds in rows:
        print(f"{label:45} {seconds * 1000:8.1f} ms")
    print(f"plan / direct: {plan / direct:.2f} (target ≤ 1.5)")
    print(f"200 / 20 services: {large / small:.2f} (target ≤ 12; linear is 10)")
    print(f"depot services: {len(SERVICES)}; runs per figure: {RUNS} (200 services: 3)")


if __name__ == "__main__":
    main()
