"""`depot drift` on the tier's running depot: untouched, it reports nothing; a memory limit
changed with `docker update`, a container started by hand on database-network and an image
replaced under the same name are each reported, and nothing else.

The tier runs each service on a stand-in image, so the expected side is the stack's plan with
each workload's image replaced by the stand-in the override runs: every other field is the
plan's. The test puts back what it changes (discovery recreated from the export, the intruder
and its own image tag removed), also when it fails, and checks the depot is clean again.
"""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from depot.host.docker import DockerCli
from depot.host.drift import Drift, Expected, expected_from_plan, find_drift
from depot.review.plan import plan_config
from depot.standins import STANDIN_OF, compose_cli
from tests.engine.conftest import WAIT_TIMEOUT
from tests.engine.harness import TIER_LABEL, TierDepot, docker, tier_config

pytestmark = pytest.mark.engine

SERVICE = "discovery"  # recreated by the test; nothing else waits on it but the console's start


def expected_on_tier(depot: TierDepot, images: dict[str, str] | None = None) -> Expected:
    """The plan of the tier's stack: the containers it starts, on the images it runs them from."""
    config = tier_config(depot.stack, depot.directory)
    expected = expected_from_plan(
        plan_config(depot.stack, config, settings=depot.settings), depot.settings
    )
    runs = {f"depot-{name}": depot.images[standin] for name, standin in STANDIN_OF.items()}
    runs.update(images or {})
    # The tier starts the base services only (prod's gpu and rtk ones are left to their profiles).
    started = {spec.container_name for spec in depot.services}
    workloads = tuple(
        dataclasses.replace(w, image=runs[w.name]) for w in expected.workloads if w.name in started
    )
    return dataclasses.replace(expected, workloads=workloads)


def lines(drifts: list[Drift]) -> list[str]:
    return sorted(d.line() for d in drifts)


def test_an_untouched_depot_reports_nothing(depot: TierDepot) -> None:
    expected = expected_on_tier(depot)
    assert len(expected.workloads) == len(depot.services)
    assert lines(find_drift(expected, DockerCli())) == []


@pytest.fixture
def own_tag(depot: TierDepot) -> Iterator[str]:
    """discovery recreated from a tag of this test's own (the same image), then put back."""
    tag = f"depot-drift-test-{secrets.token_hex(4)}:{depot.stack}"
    docker("tag", depot.images[STANDIN_OF[SERVICE]], tag)
    extra = depot.directory / "drift-test.yaml"
    extra.write_text(f"services:\n  {SERVICE}:\n    image: {tag}\n")
    try:
        # Not waited healthy (its first check is 10 s away): drift reads the configuration.
        _compose_with(depot, extra, "up", "--detach", "--no-deps", "--pull", "never", SERVICE)
        yield tag
    finally:
        depot.up("--no-deps", "--force-recreate", SERVICE, timeout=WAIT_TIMEOUT)
        docker("image", "rm", tag, check=False)
        extra.unlink()


def _compose_with(depot: TierDepot, extra: Path, *args: str) -> None:
    cli = compose_cli()
    assert cli is not None
    files = [depot.directory / "compose.yaml", depot.directory / "override.yaml", extra]
    command = [cli, "--project-name", depot.project, "--project-directory", str(depot.directory)]
    for file in files:
        command += ["--file", str(file)]
    result = subprocess.run(
        [*command, *args], capture_output=True, text=True, check=False, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture
def intruder(depot: TierDepot) -> Iterator[str]:
    """A container started by hand on database-network (labelled for the tier's sweep)."""
    name = f"depot-drift-intruder-{secrets.token_hex(4)}"
    docker(
        "run", "--detach", "--name", name, "--label", f"{TIER_LABEL}={depot.project}",
        "--network", "database-network", depot.images["rust-service"],
    )  # fmt: skip
    try:
        yield name
    finally:
        docker("rm", "--force", name, check=False)


def test_memory_an_intruder_and_a_swapped_image_are_each_reported(
    depot: TierDepot, own_tag: str, intruder: str
) -> None:
    container = f"depot-{SERVICE}"
    expected = expected_on_tier(depot, {container: own_tag})
    assert lines(find_drift(expected, DockerCli())) == [
        f"database-network unknown container: {intruder} is attached, and the plan has no such "
        "container"
    ]
    docker("update", "--memory", "200m", "--memory-swap", "400m", container)
    running = depot.inspect(container)["Image"]
    other = depot.images["grafana"]  # any other image: the tag now names it
    docker("tag", other, own_tag)
    swapped = docker("image", "inspect", "--format", "{{.Id}}", other).stdout.strip()
    limits = next(w.limits for w in expected.workloads if w.name == container)
    planned_memory = f"{limits.memory_mib} MiB" if limits.memory_mib else "no limit"
    assert lines(find_drift(expected, DockerCli())) == [
        f"database-network unknown container: {intruder} is attached, and the plan has no such "
        "container",
        f"{container} image: {own_tag} now names {swapped[:19]}, but the container runs "
        f"{running[:19]}: the image was replaced under the same name after the container was "
        "created",
        f"{container} memory: 200 MiB on the host, the plan says {planned_memory}",
    ]


def test_put_back_the_depot_reports_nothing_again(depot: TierDepot) -> None:
    # After the test above: discovery recreated from the export, the intruder gone.
    assert lines(find_drift(expected_on_tier(depot), DockerCli())) == []
