"""The policy rules at their edges: the last value a rule allows, the first it refuses, and the
inputs that look allowed but are not (another service's capability, a `!=` constraint).

tests/test_policy.py shows each rule catching one clear violation; a bound moved by one, or a
word dropped from a pattern, passes that test and fails one of these.
"""

from __future__ import annotations

from typing import Any

import pytest

from depot.policy.exceptions import CAPABILITY_ALLOWLIST
from depot.resource_types import SERVICE
from depot.review.plan import Plan, plan_stack
from depot.types import MAX_RESTART_RETRIES
from tests.conftest import edited
from tests.test_policy import messages
from tests.test_swarm_policy import edited_at
from tests.test_swarm_policy import messages as cluster_messages


@pytest.fixture(scope="module")
def prod_plan() -> Plan:
    return plan_stack("prod")


@pytest.fixture(scope="module")
def cluster_plan() -> Plan:
    return plan_stack("cluster")


def violations(plan: Plan, resource: str, change: dict[str, Any], rule: str) -> list[str]:
    """``rule``'s messages on ``plan`` with ``resource``'s inputs changed, without the prefix."""
    found = messages(edited(plan, resource, change), rule)
    return [line.split(f"[{rule}] ", 1)[1].split(" — fix:")[0] for line in found]


# --- capabilities: each service's own allowlist, not any service's -------------------------


def test_the_allowlists_differ_so_that_borrowing_is_possible() -> None:
    # The tests below borrow a capability from one list for a service on another (or none).
    assert "DAC_OVERRIDE" in CAPABILITY_ALLOWLIST["depot-postgres"]
    assert "DAC_OVERRIDE" not in CAPABILITY_ALLOWLIST["depot-console"]
    assert "depot-discovery" not in CAPABILITY_ALLOWLIST


@pytest.mark.parametrize(
    ("resource", "adds", "borrowed"),
    [
        ("discovery-container", ["CHOWN"], "CHOWN"),  # on postgres' and console's lists
        ("console-container", ["CHOWN", "SETGID", "SETUID", "DAC_OVERRIDE"], "DAC_OVERRIDE"),
    ],
)
def test_a_service_may_not_add_a_capability_only_another_service_may(
    prod_plan: Plan, resource: str, adds: list[str], borrowed: str
) -> None:
    change = {"capabilities": {"drops": ["ALL"], "adds": adds}}
    assert violations(prod_plan, resource, change, "capabilities") == [
        f"adds {borrowed}, which is not on its allowlist"
    ]


def test_a_service_may_add_what_its_own_allowlist_holds(prod_plan: Plan) -> None:
    change = {"capabilities": {"drops": ["ALL"], "adds": ["SETUID", "CHOWN"]}}
    assert violations(prod_plan, "console-container", change, "capabilities") == []


# --- secret-env: every word of the pattern, in any case -------------------------------------


@pytest.mark.parametrize(
    "name",
    ["GITHUB_TOKEN", "API_KEY", "CLIENT_SECRET", "SMTP_PASSWORD", "session_token", "ApiKey"],
)
def test_a_variable_named_like_any_kind_of_secret_is_caught_in_plain_text(
    prod_plan: Plan, name: str
) -> None:
    change = {"envs": ["PORT=4860", f"{name}=hunter2"]}
    assert violations(prod_plan, "discovery-container", change, "secret-env") == [
        f"sets {name} in plain text"
    ]


def test_a_secret_file_path_and_an_ordinary_variable_are_not_secrets(prod_plan: Plan) -> None:
    change = {"envs": ["GITHUB_TOKEN_FILE=/run/secrets/token", "RUST_LOG=info", "PORT=4860"]}
    assert violations(prod_plan, "discovery-container", change, "secret-env") == []


# --- restart: on-failure retries between 1 and the most ------------------------------------


@pytest.mark.parametrize("retries", [1, MAX_RESTART_RETRIES])
def test_on_failure_within_its_bounds_passes(prod_plan: Plan, retries: int) -> None:
    change = {"restart": "on-failure", "maxRetryCount": retries}
    assert violations(prod_plan, "dispatch-container", change, "restart") == []


@pytest.mark.parametrize(
    ("retries", "message"),
    [
        (0, "restarts on failure without limit"),
        (MAX_RESTART_RETRIES + 1, f"restarts on failure {MAX_RESTART_RETRIES + 1} times"),
    ],
)
def test_on_failure_beyond_its_bounds_is_caught(
    prod_plan: Plan, retries: int, message: str
) -> None:
    change = {"restart": "on-failure", "maxRetryCount": retries}
    assert violations(prod_plan, "dispatch-container", change, "restart") == [message]


# --- stop-grace: 30 s is enough, 29 s is not --------------------------------------------------


def test_thirty_seconds_to_stop_is_enough_for_a_service_with_data(prod_plan: Plan) -> None:
    change = {"destroyGraceSeconds": 30}
    assert violations(prod_plan, "postgres-container", change, "stop-grace") == []


def test_twenty_nine_seconds_to_stop_is_not(prod_plan: Plan) -> None:
    change = {"destroyGraceSeconds": 29}
    assert violations(prod_plan, "postgres-container", change, "stop-grace") == [
        "gets 29s to stop and holds data; give it at least 30s"
    ]


# --- Swarm placement: only `==` on a label, hostname or id pins a service to its data ---------

UNPINNED = "mounts postgres-data but may run on any node, where it would find none"


@pytest.mark.parametrize(
    "constraint",
    [
        "node.labels.depot.postgres-data != true",
        "node.hostname != db1",
        "node.id != abc123",
        "node.role == manager",  # one of several managers: not one node
    ],
)
def test_a_constraint_that_does_not_name_one_node_does_not_pin_postgres(
    cluster_plan: Plan, constraint: str
) -> None:
    plan = edited_at(
        cluster_plan,
        SERVICE,
        "postgres-service",
        "taskSpec.placement",
        {"constraints": [constraint]},
    )
    assert [
        line.split("[swarm-data-placement] ", 1)[1].split(" — fix:")[0]
        for line in cluster_messages(plan, "swarm-data-placement")
    ] == [UNPINNED]


@pytest.mark.parametrize(
    "constraint",
    ["node.labels.depot.postgres-data == true", "node.hostname == db1", "node.id==abc123"],
)
def test_a_constraint_that_names_one_node_pins_postgres(
    cluster_plan: Plan, constraint: str
) -> None:
    plan = edited_at(
        cluster_plan,
        SERVICE,
        "postgres-service",
        "taskSpec.placement",
        {"constraints": [constraint]},
    )
    assert cluster_messages(plan, "swarm-data-placement") == []
