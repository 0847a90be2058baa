"""The engine tier's fixtures: stand-in images once per session, then each stack's export up.

Every test here needs a Docker Engine and the docker-compose CLI; where either is missing, or the
engine already runs a depot whose fixed names would clash, the tier is skipped with that reason.
Each stack is started once (``up --wait``) and removed afterwards, also when a test fails.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from depot.catalog import SERVICES, longest_chain
from depot.standins import BuildReport, StandinUnavailableError, ensure_standins
from tests.conftest import STACKS
from tests.engine.harness import TierDepot, tier_unavailable

# `up --wait` may take the worst case of every health-gated chain (each probe's wait_timeout).
WAIT_TIMEOUT, _ = longest_chain(
    [spec for spec in SERVICES if spec.profile is None], lambda spec: spec.healthcheck.wait_timeout
)
FIGURES: dict[str, str] = {}
"""Measured figures, printed in the test summary (README "Engine tier")."""
_TIER_SPAN: dict[str, float] = {}  # monotonic start (the first stand-in check) and end


@pytest.fixture(scope="session")
def standin_images() -> dict[str, str]:
    """Each stand-in's image tag, built here unless cached; skips the tier where it cannot run."""
    _TIER_SPAN["start"] = time.monotonic()
    reason = tier_unavailable()
    if reason:
        pytest.skip(f"engine tier: {reason}")
    try:
        tags, report = ensure_standins()
    except StandinUnavailableError as unavailable:
        pytest.skip(f"engine tier: {unavailable}")
    FIGURES["stand-in images"] = _build_figure(report)
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
    """The swarm test, the backup drill, the migration and the demo first: the Compose depots hold
    the stack's fixed names until the session ends.

    ``depot`` is session-scoped, so the last stack's containers and networks (``depot-network``
    …) stay up until every test ran; the swarm test, the backup drill, the migration and `make
    demo` (each a stack of its own, with the same fixed names), which need those names free, run
    before.
    """
    first = ("test_swarm.py", "test_backup.py", "test_migrate.py", "test_demo.py")
    ahead = [item for name in first for item in items if item.path.name == name]
    items[:] = ahead + [item for item in items if item.path.name not in first]


def pytest_runtest_logfinish(nodeid: str) -> None:
    if "start" in _TIER_SPAN:
        _TIER_SPAN["end"] = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "end" in _TIER_SPAN and FIGURES:
        FIGURES["tier duration"] = f"{_TIER_SPAN['end'] - _TIER_SPAN['start']:.0f} s"
    if FIGURES:
        terminalreporter.section("engine tier figures")
        for name, figure in FIGURES.items():
            terminalreporter.write_line(f"{name}: {figure}")
