"""The engine tier's fixtures: stand-in images once per session, then each stack's export up.

Every test here needs a Docker Engine and the docker-compose CLI; where either is missing, or the
engine already runs a depot whose fixed names would clash, the tier is skipped with that reason.
Each stack is started once (``up --wait``) and removed afterwards, also when a test fails.

The tier runs on three pytest-xdist workers (``make test``: ``pytest -m engine -n 3 tests/engine``),
one part each. The single-engine tests go, in order, to one worker: they share the engine's fixed
names (``depot-network``, ``depot-postgres`` …) and its one Swarm, so they cannot overlap. The
multi-node module (``test_multinode.py``) goes to another: it shares nothing with them but the
stand-in images (its three dockerds, network namespaces and addresses are its own). The private
modules (``PRIVATE_MODULES``) go to the third: every object of theirs is named by them, on
networks of their own, or on a dockerd of their own. All three parts mostly wait, on the engine
and on Swarm's timers (the tier uses a fraction of one core), so the tier takes about as long as
the longest part. Each worker has its own session fixtures, so the stand-ins are built under a
file lock (one build at a time on this machine); the demo, which compares every object on the
engine before and after, waits until no private module has objects there (``engine_to_itself``).
The figures are measured in the workers and reach the controller, which prints them, on each
test's report (``user_properties``). With fewer workers a worker runs parts one after another.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import pytest

from depot.catalog import SERVICES, longest_chain
from depot.standins import BuildReport, StandinUnavailableError, ensure_standins
from depot.tools.image_budget import engine_unavailable
from tests.conftest import STACKS
from tests.engine.harness import TierDepot, tier_unavailable

# `up --wait` may take the worst case of every health-gated chain (each probe's wait_timeout).
WAIT_TIMEOUT, _ = longest_chain(
    [spec for spec in SERVICES if spec.profile is None], lambda spec: spec.healthcheck.wait_timeout
)
FIGURES: dict[str, str] = {}
"""Measured figures, printed in the test summary (README "Engine tier")."""
TIER_PATH = "tests/engine/"  # node ids start with it
# The work units, one per xdist worker (``pytest_itemcollected``), by part of the tier.
GROUPS = {
    "single-engine": "engine",
    "multi-node module": "engine-multinode",
    "private modules": "engine-private",
}
MULTINODE_MODULE = "test_multinode.py"
# Modules whose objects all have names of their own (no fixed name, no Compose depot) or live on
# a dockerd of their own (the start_interval measurement's single-node swarm): they run beside
# the single-engine tests and the multi-node module (``pytest_itemcollected``).
PRIVATE_MODULES = (
    "test_backup_agent.py",
    "test_data_lock.py",
    "test_exceptions.py",
    "test_swarm_start_interval.py",
)
# The stand-ins' builds, one at a time on this machine (each worker may ask for them).
BUILD_LOCK = Path(tempfile.gettempdir()) / "depot-standins.lock"
# Shared by the private modules, exclusive for a test that compares the whole engine (the demo).
ENGINE_OBJECTS_LOCK = Path(tempfile.gettempdir()) / "depot-engine-objects.lock"
# Exclusive while the engine is in a swarm (the single-node swarm test), shared by a private
# module whose containers find each other by name through the engine's DNS: `docker swarm leave`
# drops the names of the containers already running on bridge networks (moby/moby#45144; seen
# here as "lookup sftp on 127.0.0.11:53: no such host"), so none of theirs may span a leave.
ENGINE_SWARM_LOCK = Path(tempfile.gettempdir()) / "depot-engine-swarm.lock"
_FIGURES_PROPERTY = "engine tier figures"  # a report's user property carrying new figures
_SENT: dict[str, str] = {}  # figures this process already put on a report
# Wall-clock starts and ends of each part, in the process that prints the summary.
_SPANS: dict[str, list[float]] = {}


@contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """An flock on ``path`` (made readable by every user), held for the block."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextmanager
def engine_in_use() -> Iterator[None]:
    """Held (shared) by the tier's private modules while their objects are on the engine."""
    with file_lock(ENGINE_OBJECTS_LOCK, shared=True):
        yield


@pytest.fixture(scope="module")
def beside_the_single_engine_tests() -> Iterator[None]:
    """For a private module whose objects on the engine all carry names of its own: it runs
    beside the single-engine tests (``PRIVATE_MODULES``), and the demo, which compares the whole
    engine, waits until it is done (``engine_in_use``)."""
    with engine_in_use():
        yield


@contextmanager
def names_resolved_by_the_engine() -> Iterator[None]:
    """Held (shared) by a private module whose containers reach each other by name: the engine
    stays out of a swarm meanwhile (``ENGINE_SWARM_LOCK``)."""
    with file_lock(ENGINE_SWARM_LOCK, shared=True):
        yield


@contextmanager
def engine_in_a_swarm() -> Iterator[None]:
    """Held (exclusive) while the engine is in a swarm: no private module has containers that
    find each other by name meanwhile (``ENGINE_SWARM_LOCK``)."""
    with file_lock(ENGINE_SWARM_LOCK):
        yield


@contextmanager
def engine_to_itself() -> Iterator[None]:
    """Held (exclusive) by a test that compares every object on the engine before and after:
    it waits until no private module of another worker has objects there."""
    with file_lock(ENGINE_OBJECTS_LOCK):
        yield


@pytest.fixture(scope="session")
def standin_builds() -> dict[str, str]:
    """Each stand-in's tag, built on the machine's engine unless cached; skips where it cannot.

    No check for a depot on the engine: the multi-node module only saves the images from it,
    and the private modules use names of their own.
    """
    reason = engine_unavailable()
    if reason:
        pytest.skip(f"engine tier: {reason}")
    try:
        with file_lock(BUILD_LOCK):
            tags, report = ensure_standins()
    except StandinUnavailableError as unavailable:
        pytest.skip(f"engine tier: {unavailable}")
    FIGURES["stand-in images"] = _build_figure(report)
    return tags


@pytest.fixture(scope="session")
def standin_images(request: pytest.FixtureRequest) -> dict[str, str]:
    """Each stand-in's tag, built here unless cached; skips the tier where it cannot run."""
    reason = tier_unavailable()
    if reason:
        pytest.skip(f"engine tier: {reason}")
    tags: dict[str, str] = request.getfixturevalue("standin_builds")
    return tags


def _build_figure(report: BuildReport) -> str:
    if not report.seconds:
        return "all cached"
    built = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report.seconds.items())
    return f"built {built}"


@pytest.fixture(scope="session", params=STACKS)
def depot(request: pytest.FixtureRequest, standin_images: dict[str, str]) -> Iterator[TierDepot]:
    """The stack's export up and healthy on the engine; everything of it removed afterwards."""
    stack: str = request.param
    with tempfile.TemporaryDirectory(prefix=f"depot-engine-{stack}-") as directory:
        running = TierDepot.create(stack, Path(directory), standin_images)
        try:
            since = running.up(timeout=WAIT_TIMEOUT)
            running.up_events = running.events(since)
            yield running
        finally:
            running.remove()
        leftovers = running.leftovers()
        assert not leftovers, f"the tier left {leftovers} of {running.project} on the engine"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The demo, the backup drill, the swarm test and the migration first: the Compose depots hold
    the stack's fixed names until the session ends.

    ``depot`` is session-scoped, so the last stack's containers and networks (``depot-network``
    …) stay up until every test ran; the swarm test, the backup drill, the migration and `make
    demo` (each a stack of its own, with the same fixed names), which need those names free, run
    before. The multi-node module (it shares nothing with them) may run anywhere; it goes first,
    so that with fewer workers than parts it heads its worker's queue. Each worker keeps this
    order.
    """
    first = (
        MULTINODE_MODULE,  # with fewer workers than parts: ahead of the private modules
        # Both at the start of their workers. The demo waits until no private module has objects
        # on the engine; this private module puts none there (its swarm is a dockerd of its own)
        # and takes longer than the demo, so the demo has the engine to itself at once.
        "test_swarm_start_interval.py",
        "test_demo.py",
        # The engine's swarm early, while the private modules that need the engine out of one
        # (``engine_in_a_swarm``) wait behind those that do not (``last``).
        "test_swarm.py",
        "test_backup.py",
        "test_migrate.py",
    )
    last = ("test_backup_agent.py",)  # its containers find each other by name
    ahead = [item for name in first for item in items if item.path.name == name]
    behind = [item for name in last for item in items if item.path.name == name]
    rest = [item for item in items if item.path.name not in first + last]
    items[:] = ahead + rest + behind


def pytest_itemcollected(item: pytest.Item) -> None:
    """The tier's three xdist groups (``GROUPS``), each a work unit that goes whole to one
    worker, in collection order: the single-engine tests (the longest part), the multi-node
    module, the private modules. By path, here, rather than a mark in every module; the marks
    reach the scheduler through tests/conftest.py's suffix (xdist 3.8 under pytest 9.2)."""
    part = _part(item.nodeid)
    if part is not None:
        item.add_marker(pytest.mark.xdist_group(GROUPS[part]))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The figures measured since the last report ride on this one (to the xdist controller)."""
    report = yield
    new = {name: figure for name, figure in FIGURES.items() if _SENT.get(name) != figure}
    if new:
        _SENT.update(new)
        # A list of its own: the report's list is the item's, shared by its three phases.
        report.user_properties = [*report.user_properties, (_FIGURES_PROPERTY, new)]
    return report


def pytest_runtest_logstart(nodeid: str) -> None:
    part = _part(nodeid)
    if part:
        _SPANS.setdefault(part, [time.time()] * 2)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == _FIGURES_PROPERTY:
            FIGURES.update(cast("dict[str, str]", value))


def pytest_runtest_logfinish(nodeid: str) -> None:
    part = _part(nodeid)
    if part in _SPANS:
        _SPANS[part][1] = time.time()


def _part(nodeid: str) -> str | None:
    """Which part of the tier a test is in (each timed on its own), or None: not the tier."""
    path = nodeid.split("::", maxsplit=1)[0]
    if not path.startswith(TIER_PATH):
        return None
    name = path.rsplit("/", maxsplit=1)[-1]
    if name == MULTINODE_MODULE:
        return "multi-node module"
    return "private modules" if name in PRIVATE_MODULES else "single-engine"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SPANS and FIGURES:
        start = min(begun for begun, _ in _SPANS.values())
        end = max(ended for _, ended in _SPANS.values())
        parts = ", ".join(
            f"{part} {ended - begun:.0f} s" for part, (begun, ended) in _SPANS.items()
        )
        FIGURES["tier duration"] = f"{end - start:.0f} s ({parts})"
    if FIGURES:
        terminalreporter.section("engine tier figures")
        for name, figure in FIGURES.items():
            terminalreporter.write_line(f"{name}: {figure}")
