"""`make demo` and `make demo-down` on the real engine: up, healthy, answering, then gone.

One run of each command, as a user runs them (``python -m depot.demo``, what the Makefile runs),
with the stand-ins already built by the tier's fixture. Decoys named and labelled like the
demo's (but not the demo's) prove that `down` removes by the demo's own label and nothing else.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from depot.demo import PROJECT, PROJECT_LABEL, EngineObject, engine_objects
from tests.engine.conftest import engine_to_itself
from tests.engine.harness import docker

pytestmark = pytest.mark.engine

SERVICES = ("postgres", "discovery", "dispatch", "grafana", "console", "backup")
COMMAND_TIMEOUT = 300  # seconds: up waits for every healthcheck (about 30 s with cached images)


def demo(action: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depot.demo", action, "--dir", str(directory)],
        capture_output=True, text=True, check=False, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip


@pytest.fixture
def decoys(standin_images: dict[str, str]) -> Iterator[set[EngineObject]]:
    """A container, network and volume that look like the demo's and are not; removed after.

    Meanwhile the engine holds no object of another worker's test (``engine_to_itself``): the
    test compares every object on the engine before and after.
    """
    with engine_to_itself():
        yield from _decoys(standin_images)


def _decoys(standin_images: dict[str, str]) -> Iterator[set[EngineObject]]:
    name = f"{PROJECT}-decoy-{secrets.token_hex(4)}"
    other = f"{PROJECT}-other"  # another Compose project whose name starts like the demo's
    docker("volume", "create", "--label", f"{PROJECT_LABEL}={other}", name)
    docker("network", "create", "--label", f"{PROJECT_LABEL}={other}", name)
    docker("create", "--name", name, "--label", f"{PROJECT_LABEL}={other}",
           standin_images["rust-service"])  # fmt: skip
    try:
        yield {EngineObject(kind, name, other) for kind in ("container", "network", "volume")}
    finally:
        docker("rm", "--force", name, check=False)
        docker("network", "rm", name, check=False)
        docker("volume", "rm", name, check=False)


def test_the_demo_comes_up_answers_where_it_says_and_goes_without_a_trace(
    tmp_path: Path, decoys: set[EngineObject]
) -> None:
    directory = tmp_path / "demo"
    before = set(engine_objects())
    assert decoys <= before
    try:
        started = demo("up", directory)
        assert started.returncode == 0, started.stderr
        statuses = docker(
            "ps", "--all", "--filter", f"label={PROJECT_LABEL}={PROJECT}",
            "--format", "{{.Names}}\t{{.Status}}",
        ).stdout.splitlines()  # fmt: skip
        assert sorted(line.split("\t")[0] for line in statuses) == sorted(
            f"depot-{service}" for service in SERVICES
        )
        assert all(line.endswith("(healthy)") for line in statuses), statuses

        addresses = re.findall(r"http://127\.0\.0\.1:\d+/\S*", started.stdout)
        assert len(addresses) == 4, started.stdout
        for address in addresses:
            with urllib.request.urlopen(address, timeout=5) as answer:  # noqa: S310 - our own
                assert answer.status == 200, address

        # Fresh secrets, each 0600 for its reader, and never in what the demo printed.
        files = {path.name: path.stat() for path in (directory / "secrets").iterdir()}
        assert {name: (s.st_mode & 0o777, s.st_uid) for name, s in files.items()} == {
            "database_password.txt": (0o600, 70),
            "grafana_admin_password.txt": (0o600, 472),
            "dispatch.env": (0o600, (directory / "secrets").stat().st_uid),
        }
        env = (directory / "secrets" / "dispatch.env").read_text()
        database_password = re.search(r"://[^:/]+:([^@]+)@", env)
        assert database_password, "dispatch.env holds no DATABASE_URL with a password"
        grafana = docker("exec", "depot-grafana", "cat", "/run/secrets/grafana_admin_password")
        printed = started.stdout + started.stderr
    finally:
        removed = demo("down", directory)
    assert removed.returncode == 0, removed.stderr
    printed += removed.stdout + removed.stderr
    for value in (database_password.group(1), grafana.stdout.strip()):
        assert len(value) == 32
        assert value not in printed

    assert set(engine_objects()) == before  # the demo's all gone; the decoys and all else stay
    assert not directory.exists()
    assert "removed 6 containers of depot-demo" in removed.stdout
