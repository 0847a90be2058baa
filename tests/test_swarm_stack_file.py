"""`depot compose` of a swarm stack: a stack file the docker CLI's Swarm loader accepts whole,
saying what the program's services say.

``docker stack config`` only reads (client-side), with ``DOCKER_HOST`` at a socket that does not
exist; what it prints is the model ``docker stack deploy`` would send to the manager.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from depot.catalog import SERVICES, START_INTERVAL
from depot.cli import main
from depot.outputs.secret_files import init_secret_files
from depot.recording import Recording
from depot.resource_types import SERVICE
from depot.review.workload import duration_seconds
from depot.swarm import go_duration
from tests.conftest import run_stack
from tests.test_compose_clients import DOCKER, client_env, needs_docker


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cluster")
    init_secret_files(folder / "secrets")
    assert main(["compose", "--stack", "cluster", "-o", str(folder / "stack.yaml")]) == 0
    return folder / "stack.yaml"


@pytest.fixture(scope="module")
def swarm_read(stack_file: Path) -> dict[str, Any]:
    """The stack file as ``docker stack config`` reads it: accepted whole, or the test fails."""
    assert DOCKER is not None
    result = subprocess.run(
        [DOCKER, "stack", "config", "-c", str(stack_file)], cwd=stack_file.parent,
        env=client_env(stack_file.parent), capture_output=True, text=True, check=False,
        timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    read: dict[str, Any] = yaml.safe_load(result.stdout)
    return read


@pytest.fixture(scope="module")
def cluster() -> Recording:
    return run_stack("cluster")


def test_the_stack_file_keeps_no_key_the_swarm_loader_ignores(stack_file: Path) -> None:
    document = yaml.safe_load(stack_file.read_text())
    for name, service in document["services"].items():
        ignored = {"container_name", "depends_on", "restart", "security_opt", "profiles", "build"}
        assert not ignored & service.keys(), name
    assert "name" not in document


def test_the_stack_file_has_no_version_key_so_it_may_carry_start_interval(
    stack_file: Path,
) -> None:
    # `docker stack config` (CLI 28) refuses start_interval under `version: "3.9"` ("Additional
    # property start_interval is not allowed") and takes it without a version key.
    document = yaml.safe_load(stack_file.read_text())
    assert "version" not in document
    for name, service in document["services"].items():
        spec = next(spec for spec in SERVICES if spec.name == name)
        assert service["healthcheck"]["start_interval"] == go_duration(START_INTERVAL), name
        assert spec.healthcheck.start_interval == START_INTERVAL, name


@needs_docker
def test_docker_stack_config_keeps_every_start_interval(swarm_read: dict[str, Any]) -> None:
    for name, service in swarm_read["services"].items():
        assert duration_seconds(service["healthcheck"]["start_interval"]) == START_INTERVAL, name


@needs_docker
def test_docker_stack_config_accepts_the_whole_stack_file(swarm_read: dict[str, Any]) -> None:
    assert sorted(swarm_read["services"]) == [
        "backup", "console", "discovery", "dispatch", "grafana", "postgres", "rtk-base",
        "splat-worker",
    ]  # fmt: skip
    assert swarm_read["networks"] == {
        "depot-network": {"name": "depot-network", "driver": "overlay", "attachable": True},
        "database-network": {"name": "database-network", "driver": "overlay", "internal": True},
        "backup-network": {"name": "backup-network", "driver": "overlay"},
    }


@needs_docker
def test_the_swarm_loader_reads_what_the_program_registers(
    swarm_read: dict[str, Any], cluster: Recording
) -> None:
    for registration in cluster.of_type(SERVICE):
        name = registration.inputs["name"].removeprefix("depot-")
        inputs, read = registration.inputs, swarm_read["services"][name]
        task, spec, deploy = inputs["taskSpec"], inputs["taskSpec"]["containerSpec"], read["deploy"]
        assert deploy["replicas"] == inputs["mode"]["replicated"]["replicas"], name
        for key in ("update_config", "rollback_config"):
            program = inputs["updateConfig" if key == "update_config" else "rollbackConfig"]
            assert deploy[key]["order"] == program["order"], name
            assert deploy[key]["monitor"] == program["monitor"], name
            assert deploy[key]["parallelism"] == program["parallelism"], name
        assert deploy["update_config"]["failure_action"] == "rollback", name
        assert deploy["restart_policy"] == task["restartPolicy"], name
        assert deploy.get("placement", {}).get("constraints") == task.get("placement", {}).get(
            "constraints"
        ), name
        spread = [
            f"spread={p['spread']}" for p in deploy.get("placement", {}).get("preferences", [])
        ]
        assert spread == task.get("placement", {}).get("prefs", []), name
        limits = task["resources"]["limits"]
        assert int(deploy["resources"]["limits"]["memory"]) == limits["memoryBytes"], name
        assert float(deploy["resources"]["limits"]["cpus"]) * 1e9 == limits["nanoCpus"], name
        reservation = task["resources"]["reservation"]
        assert int(deploy["resources"]["reservations"]["memory"]) == reservation["memoryBytes"]
        assert read["image"] == spec["image"] or name in {
            "discovery", "dispatch", "splat-worker", "rtk-base", "backup"
        }, name  # fmt: skip
        check = read["healthcheck"]
        assert check["test"] == spec["healthcheck"]["tests"], name
        assert duration_seconds(check["interval"]) == duration_seconds(
            spec["healthcheck"]["interval"]
        ), name
        # postgres' data lock, its `$`s as the CLI hands them to the engine (written `$$`).
        assert read.get("entrypoint") == spec.get("commands"), name
        assert read.get("command") == spec.get("args"), name
        assert read["stop_grace_period"] == spec["stopGracePeriod"], name
        assert read["cap_drop"] == spec["capDrops"], name
        assert read.get("cap_add") == spec.get("capAdds"), name
        assert read.get("user") == spec.get("user"), name
        assert read.get("read_only", False) == spec["readOnly"], name
        assert [
            (s["uid"], s["gid"], s["mode"], f"/run/secrets/{s['target']}")
            for s in read.get("secrets", [])
        ] == [
            (s["fileUid"], s["fileGid"], s["fileMode"], s["fileName"])
            for s in spec.get("secrets", [])
        ], name
        assert [
            (v["target"], v["tmpfs"]["size"])
            for v in read.get("volumes", [])
            if v["type"] == "tmpfs"
        ] == [
            (m["target"], m["tmpfsOptions"]["sizeBytes"])
            for m in spec.get("mounts", [])
            if m["type"] == "tmpfs"
        ], name
        assert sorted(read["networks"]) == sorted(
            n["id"].removesuffix("-id") for n in task["networksAdvanceds"]
        ), name


@needs_docker
def test_the_gpu_reservation_and_the_ingress_port_reach_the_loader(
    swarm_read: dict[str, Any],
) -> None:
    worker = swarm_read["services"]["splat-worker"]["deploy"]["resources"]["reservations"]
    assert worker["generic_resources"] == [
        {"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}
    ]
    assert swarm_read["services"]["console"]["ports"] == [
        {"mode": "ingress", "target": 80, "published": 80, "protocol": "tcp"}
    ]


def test_the_stack_file_never_holds_a_secret(stack_file: Path) -> None:
    text = stack_file.read_text()
    passwords = [p.read_text().strip() for p in (stack_file.parent / "secrets").glob("*.txt")]
    assert len(passwords) == 2
    assert all(password not in text for password in passwords)
