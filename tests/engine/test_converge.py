"""``docker compose up --wait`` of each export converges, in the order the healthchecks gate, in
seconds: each start is probed every ``start_interval`` (Engine 25+), and so is a health-gated
replace of postgres and of dispatch. The bounds are loose for a loaded 2-core machine and below
what the same start takes without ``start_interval`` (a whole interval a link), so losing it
fails them; the first-probe checks say so directly.
"""

from __future__ import annotations

import pytest

from depot.catalog import DISPATCH, POSTGRES, ServiceSpec
from tests.engine.conftest import FIGURES, WAIT_TIMEOUT
from tests.engine.harness import (
    Event,
    TierDepot,
    engine_time,
    first_probe_delay,
    floor_without_start_interval,
    health_gated_floor,
)

pytestmark = pytest.mark.engine

HEALTHY = "health_status: healthy"
# Seconds from the first container's start to the last one's healthy, on Engine 26 with the
# stand-ins: 10-13 s here, 5 s of it postgres' first start (initdb on the new volume), then one
# probe a link. Without start_interval the floor is 25 s (postgres → dispatch → console) plus
# that initdb.
ALL_HEALTHY_BOUND = 20
# Seconds of a `compose up --force-recreate --no-deps` of one service: the old container
# stopped, the new one started and healthy (goal 5 s).
REPLACE_BOUND = 12
# A first probe later than this after a start is not start_interval's (1 s) but the interval's.
FIRST_PROBE_BOUND = 3


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


def test_the_bounds_fail_without_start_interval() -> None:
    # The tier's own arithmetic: each bound is below what the same start takes when every first
    # probe waits its interval, so a lost start_interval cannot pass.
    assert floor_without_start_interval()[0] > ALL_HEALTHY_BOUND
    for spec in (POSTGRES, DISPATCH):
        assert spec.healthcheck.interval > FIRST_PROBE_BOUND
        assert spec.healthcheck.start_interval < FIRST_PROBE_BOUND


def test_time_to_all_healthy_is_seconds_along_the_health_gated_chain(
    depot: TierDepot,
) -> None:
    events = depot.up_events
    names = [spec.container_name for spec in depot.services]
    began = min(first(events, name, "start") for name in names)
    all_healthy = max(first(events, name, HEALTHY) for name in names)
    floor, chain = health_gated_floor(depot.services)
    elapsed = all_healthy - began
    FIGURES[f"{depot.stack}: all healthy after"] = (
        f"{elapsed:.1f} s (bound {ALL_HEALTHY_BOUND} s; floor {floor} s: {' → '.join(chain)})"
    )
    # Below the floor, Compose would not have waited for the healthchecks; above the bound,
    # the start was probed at intervals, not start intervals, or a probe failed on the way.
    assert floor <= elapsed < ALL_HEALTHY_BOUND
    for name in chain:
        delay = first_probe_delay(events, f"depot-{name}")
        assert delay < FIRST_PROBE_BOUND, f"{name}'s first probe {delay:.1f} s after its start"


@pytest.mark.parametrize("spec", [POSTGRES, DISPATCH], ids=lambda spec: spec.name)
def test_a_health_gated_replace_is_healthy_in_seconds(depot: TierDepot, spec: ServiceSpec) -> None:
    """A replaced container is probed on start_interval too: healthy within seconds.

    postgres' data surviving its replace is tests/engine/test_data.py's; this one times it.
    """
    before = depot.inspect(spec.container_name)["Id"]
    since = engine_time()
    depot.up("--force-recreate", "--no-deps", spec.name, timeout=WAIT_TIMEOUT)
    events = depot.events(since)
    replaced = depot.inspect(spec.container_name)
    assert replaced["Id"] != before
    started = first(events, spec.container_name, "start")
    healthy = first(events, spec.container_name, HEALTHY)
    took, unready = healthy - since, healthy - started
    FIGURES[f"{depot.stack}: {spec.name} replaced, healthy after"] = (
        f"{took:.1f} s ({unready:.1f} s from its start; bound {REPLACE_BOUND} s)"
    )
    assert took < REPLACE_BOUND
    assert unready < spec.healthcheck.interval
    delay = first_probe_delay(events, spec.container_name)
    assert delay < FIRST_PROBE_BOUND, f"{spec.name}'s first probe {delay:.1f} s after start"
