"""postgres' data lock: owned by the catalog, carried by every runtime, and working as a script.

On the real engine, two postgres containers on one volume: tests/engine/test_data_lock.py; a
partition of the data node healed on a multi-node swarm: tests/engine/test_multinode.py.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Hashable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from depot.catalog import (
    POSTGRES,
    POSTGRES_DATA_VOLUME,
    SERVICES,
    data_lock_entrypoint,
)
from depot.config import load_settings
from depot.outputs.compose import compose_yaml
from depot.outputs.swarm_stack import stack_yaml
from depot.recording import Recording
from depot.resource_types import CONTAINER, SERVICE
from tests.conftest import STACKS, stack_config
from tests.together import Together

WAITING = "another postgres holds the data directory"
SETTLE = 1.0  # seconds a waiting script is given to (wrongly) go on


def test_every_service_holding_the_data_volume_runs_behind_the_lock() -> None:
    holders = [s for s in SERVICES if any(m.volume == POSTGRES_DATA_VOLUME for m in s.volumes)]
    assert holders == [POSTGRES]
    for spec in SERVICES:
        if spec in holders:
            assert spec.data_mount is not None
            assert spec.entrypoint == data_lock_entrypoint(spec.data_mount)
            # Replacing the entrypoint drops the image's CMD: the image's own must follow.
            assert spec.command == spec.image_command != ()
        else:
            assert spec.entrypoint is None
            assert spec.command is None
    assert POSTGRES.command == ("docker-entrypoint.sh", "postgres")  # the official image's


# --- every runtime carries it ------------------------------------------------------------------


def _by_name(recording: Recording) -> dict[str, dict[str, Any]]:
    if recording.stack == "cluster":
        return {
            r.inputs["name"]: r.inputs["taskSpec"]["containerSpec"]
            for r in recording.of_type(SERVICE)
        }
    return {r.inputs["name"]: r.inputs for r in recording.of_type(CONTAINER)}


def test_the_program_starts_postgres_behind_the_lock(stack: Recording) -> None:
    # A container's entrypoint and command; a Swarm service's "command" and "args" (the same).
    swarm = stack.stack == "cluster"
    entrypoint, command = ("commands", "args") if swarm else ("entrypoints", "command")
    for name, inputs in _by_name(stack).items():
        spec = next(s for s in SERVICES if s.container_name == name)
        assert inputs.get(entrypoint) == (list(spec.entrypoint) if spec.entrypoint else None), name
        assert inputs.get(command) == (list(spec.command) if spec.command else None), name
    postgres = _by_name(stack)["depot-postgres"]
    assert postgres[entrypoint] == list(data_lock_entrypoint("/var/lib/postgresql/data"))
    assert postgres[command] == ["docker-entrypoint.sh", "postgres"]


def _unescaped(values: list[str]) -> list[str]:
    """As Compose reads a value: ``$$`` is a literal ``$``."""
    return [value.replace("$$", "$") for value in values]


@pytest.mark.parametrize("stack", STACKS)
def test_the_compose_export_and_the_stack_file_start_postgres_behind_the_lock(
    stack: str,
) -> None:
    settings = load_settings(stack, stack_config(stack))
    text = stack_yaml(settings) if stack == "cluster" else compose_yaml(settings)
    services = yaml.safe_load(text)["services"]
    postgres = services["postgres"]
    assert _unescaped(postgres["entrypoint"]) == list(
        data_lock_entrypoint("/var/lib/postgresql/data")
    )
    assert postgres["command"] == ["docker-entrypoint.sh", "postgres"]
    assert all("entrypoint" not in s and "command" not in s for n, s in services.items()
               if n != "postgres")  # fmt: skip


# --- the script itself, with this machine's sh and util-linux flock ----------------------------


# --- the waiting tests, side by side --------------------------------------------------------
#
# Each of them gives a script that must wait about 1.3 s to (wrongly) go on: one after another
# they kept a worker idle for 4 s. Each is written as an ordinary test on its own data
# directory; @side_by_side runs it with the others (tests/together.py).

Scenario = Callable[[Path], None]
SCENARIOS: dict[str, Scenario] = {}


def side_by_side(scenario: Scenario) -> Callable[[Callable[[str], None]], None]:
    SCENARIOS[scenario.__name__] = scenario

    def run(waits: Callable[[str], None]) -> None:
        waits(scenario.__name__)

    run.__name__ = scenario.__name__
    run.__doc__ = scenario.__doc__
    marked: Callable[[Callable[[str], None]], None] = pytest.mark.xdist_group("data-lock-waits")(
        run
    )
    return marked


def _in_a_data_directory(scenario: Scenario, root: Path) -> None:
    directory = root / "data"
    directory.mkdir()
    scenario(directory)
    assert list(directory.iterdir()) == [], "the lock must leave the data directory empty"


@pytest.fixture(scope="module")
def waits(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], None]]:
    """Waits for one scenario's outcome; the first call starts all this session runs."""
    if shutil.which("flock") is None:
        pytest.skip("util-linux flock is not installed")
    wanted = [
        item.originalname
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname in SCENARIOS
    ]

    def prepare() -> dict[Hashable, Callable[[], None]]:
        return {
            each: partial(
                _in_a_data_directory, SCENARIOS[each], tmp_path_factory.mktemp(each[5:40])
            )
            for each in wanted
        }

    together = Together(prepare, timeout=60)
    yield together.wait  # raises what the scenario raised
    together.close()


DEFAULT_SIGNALS = ("env", "--default-signal=INT,QUIT,TERM")  # coreutils' env, 8.31 and later


def _start(data: Path, *command: str) -> subprocess.Popen[str]:
    """The lock script on ``data`` running ``command`` in its place, as the entrypoint does.

    Its signals at their defaults, as a container's process starts: a shell cannot trap a signal
    ignored when it started, and a test run started in the background (``pytest … &`` from a
    script) ignores SIGINT."""
    return subprocess.Popen(
        [*DEFAULT_SIGNALS, *data_lock_entrypoint(str(data)), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    if process.poll() is None:
        process.kill()
    return process.communicate(timeout=10)


@side_by_side
def test_the_second_waits_until_the_first_exits_and_then_runs(data: Path) -> None:
    first = _start(data, "sleep", "30")  # the "postmaster": it holds the lock through exec
    time.sleep(0.3)
    second = _start(data, "echo", "serving")
    try:
        time.sleep(SETTLE)
        assert second.poll() is None, "the second ran while the first held the directory"
        first.terminate()  # the server stops: the kernel releases its lock
        first.wait(timeout=5)
        out, err = second.communicate(timeout=5)
    finally:
        _stop(first)
        _stop(second)
    assert out == "serving\n"
    assert WAITING in err
    assert "is free; starting postgres" in err


@side_by_side
def test_the_lock_is_the_directorys_inode_whatever_path_reaches_it(data: Path) -> None:
    # Containers mount the same volume at their own paths; here a second name for the directory.
    other_path = data.parent / "elsewhere"
    other_path.symlink_to(data, target_is_directory=True)
    first = _start(data, "sleep", "30")
    time.sleep(0.3)
    second = _start(other_path, "echo", "serving")
    try:
        time.sleep(SETTLE)
        assert second.poll() is None, "a second path to the directory escaped the lock"
    finally:
        _stop(first)
        _stop(second)
    other_path.unlink()


@side_by_side
def test_a_waiting_script_ends_at_once_on_the_stop_signal(data: Path) -> None:
    first = _start(data, "sleep", "30")
    time.sleep(0.3)
    second = _start(data, "echo", "serving")
    try:
        time.sleep(SETTLE)
        waiters = [pid for pid, argv in _children(second.pid) if argv == "flock -x 9"]
        stopped = time.monotonic()
        second.send_signal(signal.SIGINT)
        out, _ = second.communicate(timeout=5)
        waited = time.monotonic() - stopped
        # The flock it waited in is ended too: nothing of it waits to take the lock later.
        deadline = time.monotonic() + 2
        while any(_alive(pid) for pid in waiters) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        _stop(first)
        _stop(second)
    assert len(waiters) == 1
    assert not _alive(waiters[0])
    assert second.returncode == 128 + signal.SIGTERM  # its trap's status, for INT and TERM
    assert out == ""
    assert waited < 2


def _children(pid: int) -> list[tuple[int, str]]:
    """``pid``'s child processes and their command lines (from /proc)."""
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie nor gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
