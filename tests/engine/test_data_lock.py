"""postgres' data lock on the real engine: two postgres containers on one volume never both serve.

Each container is started with the catalog's own entrypoint, command, capabilities and secret
file, as the program, the Compose export and the stack file start it (their unit tests check
that each carries them: tests/test_data_lock.py). The multi-node test shows the same guard where
it matters most: a partition of the data node healed (tests/engine/test_multinode.py).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from depot.catalog import POSTGRES
from tests.engine.conftest import FIGURES
from tests.engine.harness import TIER_LABEL, docker

# Objects of its own only: beside the single-engine tests (conftest PRIVATE_MODULES).
pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("beside_the_single_engine_tests")]


LABEL = f"{TIER_LABEL}=data-lock"
DATA = POSTGRES.data_mount or ""
READY_TIMEOUT = 30.0  # seconds: a first start with initdb takes 1 to 2 s here
WAITING = "another postgres holds the data directory"


class Postgres:
    """postgres containers on one throwaway volume, removed with it afterwards."""

    def __init__(self, image: str, folder: Path) -> None:
        self.image = image
        self.volume = f"depot-data-lock-{secrets.token_hex(4)}"
        self.password = folder / "database_password"
        self.password.write_text(secrets.token_urlsafe(18) + "\n")
        secret = POSTGRES.secret_files[0]
        os.chown(self.password, secret.owner, secret.owner)
        self.password.chmod(secret.mode)
        self.names: list[str] = []
        docker("volume", "create", "--label", LABEL, self.volume)

    def start(self, *, guarded: bool = True) -> str:
        """A postgres container on the volume, started as the depot starts it (``guarded``) or
        with the image's own entrypoint only (the control); its name."""
        name = f"{self.volume}-{len(self.names)}"
        self.names.append(name)
        secret = POSTGRES.secret_files[0]
        caps = [option for cap in POSTGRES.capabilities for option in ("--cap-add", cap)]
        # `docker run --entrypoint` takes one word: the rest of the entrypoint goes first in the
        # arguments, which makes the same argv. Unguarded, argv[0] is the image's own entrypoint.
        entrypoint = POSTGRES.entrypoint if guarded else None
        argv: Sequence[str] = [*(entrypoint or ()), *POSTGRES.image_command]
        docker(
            "run", "--detach", "--name", name, "--label", LABEL,
            "--cap-drop", "ALL", *caps,
            "--volume", f"{self.volume}:{DATA}",
            "--volume", f"{self.password}:{secret.path}:ro",
            "--env", f"{secret.env}={secret.path}",
            *(["--entrypoint", argv[0]] if entrypoint else []),
            self.image, *argv[1:],
        )  # fmt: skip
        return name

    def ready(self, name: str) -> bool:
        """The server itself accepts connections: asked over TCP, because the entrypoint's
        temporary server during initdb answers on the socket only (``listen_addresses=''``) and
        would pass a socket probe before the postmaster that holds the lock has started."""
        probe = ("pg_isready", "-U", "postgres", "-h", "127.0.0.1")
        return docker("exec", name, *probe, check=False).returncode == 0

    def wait_ready(self, name: str) -> float:
        started = time.monotonic()
        while not self.ready(name):
            assert time.monotonic() - started < READY_TIMEOUT, docker("logs", name).stderr[-2000:]
            time.sleep(0.2)
        return time.monotonic() - started

    def servers(self, name: str) -> list[str]:
        """The container's postmaster and server processes (``postgres``, ``postgres: …``)."""
        # pid first: docker top needs it. Rows below the header: "<pid> <argv joined>".
        rows = docker("top", name, "-eo", "pid,args").stdout.splitlines()[1:]
        argvs = [row.split(None, 1)[1] for row in rows if len(row.split(None, 1)) == 2]
        return [argv for argv in argvs if argv.split(" ", 1)[0].rstrip(":") == "postgres"]

    def remove(self) -> None:
        if self.names:
            docker("rm", "--force", *self.names, check=False)
        docker("volume", "rm", "--force", self.volume, check=False)


@pytest.fixture
def postgres(standin_builds: dict[str, str]) -> Iterator[Postgres]:
    with tempfile.TemporaryDirectory(prefix="depot-data-lock-") as folder:
        made = Postgres(standin_builds["postgres"], Path(folder))
        try:
            yield made
        finally:
            made.remove()
    assert not docker("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()


def test_a_second_postgres_on_the_data_directory_waits_until_the_first_stops(
    postgres: Postgres,
) -> None:
    first = postgres.start()
    postgres.wait_ready(first)
    assert postgres.servers(first)[0] == "postgres"  # the postmaster itself, no shell before it

    second = postgres.start()
    # It reaches the lock within a second; give it three to be sure it does not start a server.
    deadline = time.monotonic() + 3
    while WAITING not in docker("logs", second).stderr and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(max(0.0, deadline - time.monotonic()))
    assert WAITING in docker("logs", second).stderr
    assert postgres.servers(second) == [], "two postgres servers on one data directory"
    assert not postgres.ready(second)
    assert postgres.ready(first), "the first kept serving"

    # A container that waits stops at once on the stop signal (its shell is PID 1, which
    # ignores signals it has no trap for): not after the 30 s grace with a kill.
    third = postgres.start()
    time.sleep(1)
    stopped = time.monotonic()
    docker("stop", third)
    stop_waiting = time.monotonic() - stopped
    assert stop_waiting < 5, f"a waiting postgres took {stop_waiting:.1f} s to stop"

    # The first stops as Docker stops it (the image's SIGINT, to the postmaster as PID 1): a
    # clean, fast shutdown that releases the lock, and the second takes over.
    stopped = time.monotonic()
    docker("stop", first)
    stop_first = time.monotonic() - stopped
    exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", first).stdout.strip()
    assert exit_code == "0", f"postgres did not shut down cleanly: exit {exit_code}"
    takeover = postgres.wait_ready(second)
    assert stop_first + takeover < POSTGRES.stop_grace_seconds
    assert "is free; starting postgres" in docker("logs", second).stderr
    assert postgres.servers(second)[0] == "postgres"
    FIGURES["data lock"] = (
        f"a waiting postgres stopped in {stop_waiting:.1f} s; the holder stopped in "
        f"{stop_first:.1f} s (exit 0) and the waiter served {takeover:.1f} s later"
    )


def test_without_the_lock_two_postgres_serve_one_data_directory(postgres: Postgres) -> None:
    """The control: what the lock prevents happens without it — postgres' own postmaster.pid
    sees PID 1 of another container as itself (a stale file) and starts a second server."""
    first = postgres.start(guarded=False)
    postgres.wait_ready(first)
    second = postgres.start(guarded=False)
    postgres.wait_ready(second)
    assert postgres.ready(first)
    assert postgres.servers(first)
    assert postgres.servers(second)
