"""How fast is ``depot plan``? Run with ``make bench``; prints one table, asserts nothing.

1. ``depot plan --stack prod`` (config validation, components, recording, rendering) against
   registering the same provider resources directly with pulumi_docker, flat, under the same
   mocks: what our layers cost. Target: plan ≤ 1.5 x direct.
2. The plan of a synthetic depot of 20 and of 200 services: how it grows. Target: linear
   (200 ≤ 12 x 20).
Each figure is the median of several runs in this process, after one warm-up run.
"""

from __future__ import annotations

import statistics
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
    SERVICES,
    BuiltImage,
    NetworkName,
    PulledImage,
    ServiceSpec,
)
from depot.components.service import ServiceWiring, to_container_args
from depot.config import load_stack_settings
from depot.model import DOCKERFILE, deployments
from depot.program import build_depot
from depot.recording import record
from depot.review.plan import plan_from, plan_stack, stack_config
from depot.review.render import dumps
from depot.types import ServiceName

RUNS = 7


def median_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    action()  # warm-up: imports, caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def direct_program() -> None:
    """The prod depot's provider resources, registered flat with pulumi_docker: no components,
    no validation, no rendering. Arguments come from the same model, so the work is the same."""
    settings = load_stack_settings()
    provider = docker.Provider("docker", host=settings.docker.host)
    builder = docker_build.Provider("docker-build", host=settings.docker.host)
    on_docker = pulumi.ResourceOptions(provider=provider)
    networks: dict[NetworkName, docker.Network] = {
        name: docker.Network(name, name=name, driver="bridge", internal=internal, opts=on_docker)
        for name, internal in ((DEPOT_NETWORK, False), (DATABASE_NETWORK, True))
    }
    volume = docker.Volume("postgres-data", name="postgres-data", opts=on_docker)
    secrets = {
        key: random.RandomPassword(key, length=32, special=False).result
        for key in ("database_password", "grafana_admin_password")
    }
    containers: dict[str, docker.Container] = {}
    for deployment in deployments(settings):
        spec = deployment.spec
        if isinstance(spec.image, BuiltImage):
            build = docker_build.Image(
                f"{spec.name}-image-build",
                tags=[deployment.local_tag],
                context=docker_build.BuildContextArgs(location=deployment.build_context or ""),
                dockerfile=docker_build.DockerfileArgs(location=str(DOCKERFILE)),
                build_args={"BINARY": spec.image.binary},
                load=True,
                push=False,
                build_on_preview=False,
                opts=pulumi.ResourceOptions(provider=builder),
            )
            image = docker.RemoteImage(
                f"{spec.name}-image", name=build.ref, pull_triggers=[build.digest], opts=on_docker
            )
        else:
            image = docker.RemoteImage(
                f"{spec.name}-image", name=deployment.image_reference or "", opts=on_docker
            )
        wiring = ServiceWiring(
            networks=networks,
            data_volume=volume,
            secrets=secrets,
            waits_for=[containers[name] for name in spec.waits_for],
        )
        containers[spec.name] = docker.Container(
            f"{spec.name}-container",
            args=to_container_args(deployment, image.image_id, wiring),
            opts=on_docker,
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
                console_mounts=False,
            )
        )
    return tuple(services)


def plan_synthetic(size: int) -> None:
    catalog = synthetic_catalog(size)

    def program() -> None:
        build_depot(load_stack_settings(), catalog)

    dumps(plan_from(record(program, stack="prod", config=stack_config("prod"))).to_json())


def main() -> None:
    plan = median_seconds(lambda: dumps(plan_stack("prod").to_json()))
    direct = median_seconds(
        lambda: record(direct_program, stack="prod", config=stack_config("prod"))
    )
    small = median_seconds(lambda: plan_synthetic(20))
    large = median_seconds(lambda: plan_synthetic(200), runs=3)
    rows = [
        ("depot plan --stack prod", plan),
        ("direct pulumi_docker registration", direct),
        ("plan, synthetic depot of 20 services", small),
        ("plan, synthetic depot of 200 services", large),
    ]
    print(f"{'what':45} {'median':>10}")
    for label, seconds in rows:
        print(f"{label:45} {seconds * 1000:8.1f} ms")
    print(f"plan / direct: {plan / direct:.2f} (target ≤ 1.5)")
    print(f"200 / 20 services: {large / small:.2f} (target ≤ 12; linear is 10)")
    print(f"depot services: {len(SERVICES)}; runs per figure: {RUNS} (200 services: 3)")


if __name__ == "__main__":
    main()
