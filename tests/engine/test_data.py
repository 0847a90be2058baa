"""postgres' data on the engine: it outlives its container, and postgres shuts down cleanly.

The test ends with the stack up and healthy again, as the other tests of the stack expect it.
"""

from __future__ import annotations

import secrets
import subprocess
import time

import pytest

from depot.catalog import POSTGRES, POSTGRES_DATA_VOLUME
from tests.engine.conftest import WAIT_TIMEOUT
from tests.engine.harness import TierDepot, docker

pytestmark = pytest.mark.engine

DOWN_AND_UP_STACK = "prod"
CLEAN_START = "database system was shut down at"
# What postgres logs when it starts after being killed instead of shut down.
CRASH_RECOVERY = ("was interrupted", "not properly shut down", "automatic recovery in progress")


def psql(depot: TierDepot, sql: str) -> subprocess.CompletedProcess[str]:
    """``sql`` in the dispatch database, over postgres' own socket, as the postgres user."""
    return depot.exec(
        POSTGRES.container_name,
        "psql",
        "--username=postgres",
        "--dbname=dispatch",
        "--no-psqlrc",
        "--tuples-only",
        "--no-align",
        "--set=ON_ERROR_STOP=1",
        f"--command={sql}",
        user="70",
    )


def rows(depot: TierDepot) -> list[str]:
    selected = psql(depot, "SELECT note FROM engine_tier ORDER BY note")
    assert selected.returncode == 0, selected.stderr
    return selected.stdout.split()


def started_cleanly(depot: TierDepot) -> bool:
    log = docker("logs", POSTGRES.container_name).stderr
    return CLEAN_START in log and not any(sign in log for sign in CRASH_RECOVERY)


def test_a_row_survives_a_recreated_container(depot: TierDepot) -> None:
    note = secrets.token_hex(8)  # hex digits only: safe inside the quotes below
    insert = f"CREATE TABLE engine_tier (note text); INSERT INTO engine_tier VALUES ('{note}')"  # noqa: S608
    created = psql(depot, insert)
    assert created.returncode == 0, created.stderr
    first = depot.inspect(POSTGRES.container_name)["Id"]
    began = time.monotonic()
    depot.compose(
        "up",
        "--detach",
        "--wait",
        "--wait-timeout",
        str(WAIT_TIMEOUT),
        "--pull",
        "never",
        "--force-recreate",
        "--no-deps",
        POSTGRES.name,
        timeout=WAIT_TIMEOUT + 60,
    )
    # Stopped by its signal well within its grace period, not killed when it ran out.
    assert time.monotonic() - began < POSTGRES.stop_grace_seconds
    assert depot.inspect(POSTGRES.container_name)["Id"] != first
    assert rows(depot) == [note]
    assert started_cleanly(depot)


def test_the_row_survives_a_down_and_up(depot: TierDepot) -> None:
    # A whole `down` and `up` costs the health-gated chain again (seconds, each start probed at
    # start_interval). Dev's postgres and volumes differ from prod's only in limits, restart
    # policy and the image's digest (tests/engine/test_data_stacks.py fails the day they differ
    # in more): proven on prod.
    if depot.stack != DOWN_AND_UP_STACK:
        pytest.skip(
            f"down and up proven on {DOWN_AND_UP_STACK} (see tests/engine/test_data_stacks.py)"
        )
    written = rows(depot)
    assert len(written) == 1, "the test above wrote one row"
    depot.compose("down", timeout=180)
    assert docker("volume", "inspect", POSTGRES_DATA_VOLUME, check=False).returncode == 0
    depot.up(timeout=WAIT_TIMEOUT)
    assert rows(depot) == written
    assert started_cleanly(depot)


def test_postgres_is_given_its_grace_period_and_its_fast_shutdown_signal(
    depot: TierDepot,
) -> None:
    config = depot.inspect(POSTGRES.container_name)["Config"]
    assert config["StopTimeout"] == POSTGRES.stop_grace_seconds
    assert config["StopSignal"] == "SIGINT"  # the image's: postgres' fast shutdown
