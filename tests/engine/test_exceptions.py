"""Each exception to the hardening rules, tried on the engine: without it, the real program fails.

The capabilities in ``depot/policy/exceptions.py`` are taken away one at a time from real
postgres and nginx (Debian's, in the stand-ins), hardened as the catalogue says; postgres'
writable root is tried against the upload the Pulumi provider makes. These need the stand-in
images but no stack: they run one short-lived container each.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from depot.catalog import CONSOLE, POSTGRES, SCRATCH, ServiceSpec
from depot.policy.exceptions import CAPABILITY_ALLOWLIST
from tests.engine.harness import TIER_LABEL, docker

# Objects of its own only: beside the single-engine tests (conftest PRIVATE_MODULES).
pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("beside_the_single_engine_tests")]


READY_SECONDS = 20  # the control must be ready within this
FAILED_SECONDS = 6  # and without a capability, not within this


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="depot-engine-exceptions-") as directory:
        path = Path(directory)
        (path / "password").write_text("engine-tier-only\n")
        (path / "password").chmod(0o644)
        (path / "html").mkdir()
        (path / "html" / "index.html").write_text("console\n")
        yield path


def hardened(spec: ServiceSpec, capabilities: list[str]) -> list[str]:
    """``docker run`` options: the catalogue's hardening of ``spec`` with these capabilities."""
    options = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges:true"]
    options += [f"--cap-add={cap}" for cap in capabilities]
    options += [f"--tmpfs={path}:{SCRATCH.mount_options}" for path in spec.tmpfs]
    if spec.writable_root is None:
        options.append("--read-only")
    return options


def service_options(spec: ServiceSpec, workdir: Path, volume: str) -> list[str]:
    if spec is POSTGRES:
        secret = POSTGRES.secret_files[0]
        return [
            f"--volume={volume}:{POSTGRES.data_mount}",
            f"--volume={workdir / 'password'}:{secret.path}:ro",
            f"--env={secret.env}={secret.path}",
            "--env=POSTGRES_DB=dispatch",
        ]
    return [f"--volume={workdir / 'html'}:/usr/share/nginx/html:ro"]


def ready_probe(spec: ServiceSpec) -> list[str]:
    """The service's own healthcheck command, bounded by its timeout as Docker bounds it."""
    return ["timeout", str(spec.healthcheck.timeout), *spec.healthcheck.test[1:]]


def becomes_ready(
    image: str, spec: ServiceSpec, capabilities: list[str], workdir: Path, within: float
) -> bool:
    """Whether ``spec``'s stand-in, hardened, answers its probe within ``within`` seconds."""
    label = f"{TIER_LABEL}=exceptions"
    volume = docker("volume", "create", "--label", label).stdout.strip()
    run = docker(
        "run",
        "--detach",
        "--label",
        label,
        *hardened(spec, capabilities),
        *service_options(spec, workdir, volume),
        image,
    )
    container = run.stdout.strip()
    try:
        return _polled(lambda: _answers(container, spec), within)
    finally:
        docker("rm", "--force", container, check=False)
        docker("volume", "rm", "--force", volume, check=False)


# What a program that keeps its container running logs when it has given up for good: nginx's
# master outlives a worker that could not drop to its user, but never starts another.
GAVE_UP = ("cannot be respawned",)


def _answers(container: str, spec: ServiceSpec) -> bool | None:
    """True when the probe answers; False when the container stopped or its program logged that
    it gave up; None while undecided."""
    if docker("exec", container, *ready_probe(spec), timeout=10, check=False).returncode == 0:
        return True
    running = docker("inspect", "--format", "{{.State.Running}}", container, check=False)
    if running.stdout.strip() != "true":
        return False
    logs = docker("logs", container, check=False)
    return False if any(sign in logs.stdout + logs.stderr for sign in GAVE_UP) else None


def _polled(check: Callable[[], bool | None], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        outcome = check()
        if outcome is not None:
            return outcome
        time.sleep(0.5)
    return False


CASES = [
    (spec, capability)
    for spec in (POSTGRES, CONSOLE)
    for capability in CAPABILITY_ALLOWLIST[spec.container_name]
]


def test_the_allowlists_are_the_catalogues() -> None:
    for spec in (POSTGRES, CONSOLE):
        assert sorted(CAPABILITY_ALLOWLIST[spec.container_name]) == sorted(spec.capabilities)


@pytest.mark.parametrize("spec", [POSTGRES, CONSOLE], ids=lambda spec: spec.name)
def test_the_hardened_stand_in_starts_with_its_allowlist(
    spec: ServiceSpec, standin_builds: dict[str, str], workdir: Path
) -> None:
    image = standin_builds[spec.name]
    assert becomes_ready(image, spec, list(spec.capabilities), workdir, READY_SECONDS)


@pytest.mark.parametrize(("spec", "capability"), CASES, ids=[f"{s.name}-{c}" for s, c in CASES])
def test_without_an_allowlisted_capability_the_real_program_fails(
    spec: ServiceSpec, capability: str, standin_builds: dict[str, str], workdir: Path
) -> None:
    image = standin_builds[spec.name]
    kept = [cap for cap in spec.capabilities if cap != capability]
    assert not becomes_ready(image, spec, kept, workdir, FAILED_SECONDS)


def test_nginx_binds_port_80_unprivileged_because_the_engine_lets_it(
    standin_builds: dict[str, str],
) -> None:
    # Why the console needs no NET_BIND_SERVICE: since Engine 20.10 every container's network
    # namespace lets any process bind ports from 0 (net.ipv4.ip_unprivileged_port_start).
    read = docker(
        "run",
        "--rm",
        "--label",
        f"{TIER_LABEL}=exceptions",
        "--cap-drop",
        "ALL",
        standin_builds["console"],
        "cat",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
    )
    assert read.stdout.strip() == "0"


def test_the_providers_upload_needs_postgres_writable_root(standin_builds: dict[str, str]) -> None:
    # The Pulumi provider uploads the password file as a tar into the created container before
    # it starts (the Engine's archive API, as `docker cp -` uses it): refused on a read-only root.
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        member = tarfile.TarInfo("run/secrets/database_password")
        member.size, member.mode, member.uid = 4, 0o400, 70
        tar.addfile(member, io.BytesIO(b"test"))
    outcomes = {}
    for read_only in (True, False):
        options = ["--read-only"] if read_only else []
        created = docker(
            "create", "--label", f"{TIER_LABEL}=exceptions", *options, standin_builds["postgres"]
        ).stdout.strip()
        try:
            upload = subprocess_with_input(
                ["docker", "cp", "-", f"{created}:/"], archive.getvalue()
            )
            outcomes[read_only] = (upload.returncode, upload.stderr.decode())
        finally:
            docker("rm", "--force", created, check=False)
    assert outcomes[False][0] == 0
    assert outcomes[True][0] != 0
    assert "read-only" in outcomes[True][1]


def subprocess_with_input(command: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(command, input=data, capture_output=True, check=False, timeout=60)
