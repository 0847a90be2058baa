"""``docker compose up --wait`` of each export converges, in the order the healthchecks gate."""

from __future__ import annotations

import pytest

from tests.engine.conftest import FIGURES
from tests.engine.harness import Event, TierDepot, health_gated_floor

pytestmark = pytest.mark.engine

HEALTHY = "health_status: healthy"


def first(events: list[Event], container: str, action: str) -> float:
    """The engine's time of ``container``'s first ``action`` in ``events``."""
    times = [e.seconds for e in events if e.container == container and e.action == action]
    assert times, f"the engine reported no {action!r} for {container}"
    return min(times)


def test_every_base_service_runs_healthy_and_nothing_else_started(depot: TierDepot) -> None:
    expected = {spec.container_name for spec in depot.services}
    started = set(depot.compose("ps", "--all", "--format", "{{.Name}}").stdout.split())
    assert started == expected
    for name in sorted(expected):
        state = depot.inspect(name)["State"]
        assert (state["Status"], state["Health"]["Status"]) == ("running", "healthy"), name


def test_every_dependency_is_healthy_before_its_dependant_starts(depot: TierDepot) -> None:
    events = depot.up_events
    for spec in depot.services:
        started = first(events, spec.container_name, "start")
        for dependency in spec.waits_for:
            healthy = first(events, f"depot-{dependency}", HEALTHY)
            assert healthy < started, f"{spec.name} started before {dependency} was healthy"


def test_time_to_all_healthy_is_bounded_below_by_the_health_gated_chain(
    depot: TierDepot,
) -> None:
    events = depot.up_events
    names = [spec.container_name for spec in depot.services]
    began = min(first(events, name, "start") for name in names)
    all_healthy = max(first(events, name, HEALTHY) for name in names)
    floor, chain = health_gated_floor(depot.services)
    elapsed = all_healthy - began
    FIGURES[f"{depot.stack}: all healthy after"] = (
        f"{elapsed:.1f} s (floor {floor} s: {' → '.join(chain)})"
    )
    # Below the floor, Compose would not have waited for the healthchecks; far above it, a
    # probe failed at least once on the way.
    assert floor <= elapsed < floor + 15
