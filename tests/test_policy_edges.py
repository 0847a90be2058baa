"""The policy rules at their edges: the last value a rule allows, the first it refuses, and the
inputs that look allowed but are not (another service's capability, a `!=` constraint).

tests/test_policy.py shows each rule catching one clear violation; a bound moved by one, or a
word dropped from a pattern, passes that test and fails one of these.
"""

from __future__ import annotations

from typing import Any

import pytest

from depot.config.settings import PolicySettings
from depot.policy.check import check_plan
from depot.policy.exceptions import CAPABILITY_ALLOWLIST
from depot.policy.rules import RULES, Stack, final_stage_user
from depot.resource_types import SERVICE
from depot.review.plan import Plan, plan_stack
from depot.review.planned import UNKNOWN
from depot.types import MAX_RESTART_RETRIES
from tests.conftest import PROJECT_DIR, edited
from tests.test_policy import PROD, messages
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
    assert [
        line.split("[swarm-data-placement] ", 1)[1].split(" — fix:")[0]
        for line in placement_messages(cluster_plan, constraint)
    ] == [UNPINNED]


@pytest.mark.parametrize(
    "constraint",
    ["node.labels.depot.postgres-data == true", "node.hostname == db1", "node.id==abc123"],
)
def test_a_constraint_that_names_one_node_pins_postgres(
    cluster_plan: Plan, constraint: str
) -> None:
    assert placement_messages(cluster_plan, constraint) == []


def placement_messages(cluster_plan: Plan, constraint: str) -> list[str]:
    """``swarm-data-placement``'s messages with postgres' service constrained by ``constraint``."""
    plan = edited_at(
        cluster_plan,
        SERVICE,
        "postgres-service",
        "taskSpec.placement",
        {"constraints": [constraint]},
    )
    return cluster_messages(plan, "swarm-data-placement")


# --- image-pinned: every way a reference can fail to pin ----------------------------------------

DIGEST = "sha256:" + "d" * 64


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("grafana/grafana", "runs 'grafana/grafana', which is not pinned to a version tag"),
        ("Grafana:11.4.0", "runs 'Grafana:11.4.0', which is not pinned to a version tag"),
        (f"grafana/grafana:latest@{DIGEST}", "which is not pinned to a version tag"),
    ],
)
def test_an_image_without_a_version_or_not_an_image_at_all_is_not_pinned(
    prod_plan: Plan, reference: str, message: str
) -> None:
    [found] = violations(prod_plan, "grafana-image", {"name": reference}, "image-pinned")
    assert found.endswith(message)


def test_an_image_by_digest_alone_is_pinned_in_production(prod_plan: Plan) -> None:
    change = {"name": f"grafana/grafana@{DIGEST}"}
    assert violations(prod_plan, "grafana-image", change, "image-pinned") == []


def test_a_build_tag_that_is_no_reference_is_a_moving_tag(prod_plan: Plan) -> None:
    change = {"tags": ["Depot Discovery"]}
    assert violations(prod_plan, "discovery-image-build", change, "image-pinned") == [
        "builds the moving tag 'Depot Discovery'"
    ]


def test_images_built_here_are_run_by_id_and_never_asked_for_a_digest() -> None:
    # dev builds depot-discovery:dev and runs it by image ID: only third-party images are held
    # to production's digests.
    dev = plan_stack("dev")
    found = messages(dev, "image-pinned")
    assert found
    assert not [line for line in found if "depot-" in line.split(" — fix:")[0]]


# --- non-root-user: which images are ours -------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "depot-grafana:1.0",  # no registry
        "registry.example.com/depot-grafana:1.0",
        f"registry.example.com/depot-grafana@{DIGEST}",
        "registry.example.com/depot-grafana",  # neither tag nor digest
    ],
)
def test_an_image_named_depot_something_is_ours_and_runs_as_a_numeric_user(
    prod_plan: Plan, reference: str
) -> None:
    plan = edited(prod_plan, "grafana-image", {"name": reference})
    assert violations(plan, "grafana-container", {"user": "app"}, "non-root-user") == [
        "runs as 'app'; our own services run as a numeric user"
    ]


@pytest.mark.parametrize("reference", ["grafana/grafana:11.4.0", "mydepot-grafana:1", None])
def test_a_third_party_or_unknown_image_chooses_its_own_user(
    prod_plan: Plan, reference: str | None
) -> None:
    plan = edited(prod_plan, "grafana-image", {"name": reference})
    assert violations(plan, "grafana-container", {"user": "app"}, "non-root-user") == []


# --- dockerfile-user: the build's Dockerfile, as written ----------------------------------------


def test_a_build_without_a_dockerfile_location_cannot_be_checked(prod_plan: Plan) -> None:
    change = {"dockerfile": None}
    assert violations(prod_plan, "discovery-image-build", change, "dockerfile-user") == [
        "has no Dockerfile location to check"
    ]


def test_a_build_from_a_missing_dockerfile_is_caught(prod_plan: Plan) -> None:
    change = {"dockerfile": {"location": "./docker/missing.Dockerfile"}}
    assert violations(prod_plan, "discovery-image-build", change, "dockerfile-user") == [
        "builds from ./docker/missing.Dockerfile, which does not exist"
    ]


@pytest.mark.parametrize(
    ("dockerfile", "user"),
    [
        ("FROM a:1\nUSER 10001\nUSER\n", "10001"),  # a USER without a word sets nothing
        ("FROM a:1\nUSER 10001\nUSER 0 #root\n", "0"),  # a trailing word does not hide it
        ("FROM a:1\n# USER 0\nUSER 10001\n", "10001"),
        ("FROM a:1\nuser 10001\n", "10001"),
        ("FROM a:1\nUSER 0\nfrom b:1\n", None),  # a new stage starts without one
    ],
)
def test_the_final_stage_user_is_the_last_user_line_of_the_last_stage(
    dockerfile: str, user: str | None
) -> None:
    assert final_stage_user(dockerfile) == user


def test_an_image_built_here_is_ours_before_its_reference_is_known(prod_plan: Plan) -> None:
    # In a preview the pushed digest is not known yet: the build, not the name, says it is ours.
    plan = edited(prod_plan, "discovery-image", {"name": UNKNOWN})
    assert violations(plan, "discovery-container", {"user": "app"}, "non-root-user") == [
        "runs as 'app'; our own services run as a numeric user"
    ]


# --- wait-for-health: waited for exactly as long as the healthcheck may take --------------------


def test_a_wait_as_long_as_the_healthchecks_worst_case_is_enough(prod_plan: Plan) -> None:
    # discovery's healthcheck may take 69 s (tests/test_policy.py: 60 s is too short).
    change = {"waitTimeout": 69}
    assert violations(prod_plan, "discovery-container", change, "wait-for-health") == []
    change = {"waitTimeout": 68}
    assert violations(prod_plan, "discovery-container", change, "wait-for-health") == [
        "waits 68s for healthy; its healthcheck may take 69s"
    ]


def test_a_container_nothing_starts_after_need_not_be_waited_for(prod_plan: Plan) -> None:
    assert violations(prod_plan, "console-container", {"wait": False}, "wait-for-health") == []


def test_restart_no_is_only_refused_in_production(prod_plan: Plan) -> None:
    plan = edited(prod_plan, "dispatch-container", {"restart": "no"})
    development = PolicySettings(enforcement="mandatory", production=False)
    assert messages(plan, "restart", development) == []
    assert len(messages(plan, "restart")) == 1


# --- what the CrossGuard view cannot tell ------------------------------------------------------


def test_secret_env_says_nothing_where_secrets_arrive_decrypted(prod_plan: Plan) -> None:
    # CrossGuard hands policies secrets decrypted and unmarked: a plain value and a secret look
    # the same there, so the rule leaves it to the offline plan rather than cry wolf.
    plan = edited(prod_plan, "grafana-container", {"envs": ["GF_SECURITY_ADMIN_PASSWORD=x"]})
    resources = {r.key: r for r in plan.resources}
    grafana = next(r for r in plan.resources if r.name == "grafana-container")
    [rule] = [r for r in RULES if r.id == "secret-env"]
    blind = Stack(resources, production=True, project_dir=PROJECT_DIR, secrets_visible=False)
    seeing = Stack(resources, production=True, project_dir=PROJECT_DIR)
    assert list(rule.check(grafana, blind)) == []
    assert list(rule.check(grafana, seeing)) == ["sets GF_SECURITY_ADMIN_PASSWORD in plain text"]


def test_a_postgres_image_whose_tag_names_no_major_is_caught(prod_plan: Plan) -> None:
    reference = f"postgres@{DIGEST}"
    plan = edited(prod_plan, "postgres-image", {"name": reference})
    [found] = [
        line.split("[postgres-major] ", 1)[1].split(" — fix:")[0]
        for line in messages(plan, "postgres-major")
    ]
    assert found.startswith(f"runs {reference!r}, whose tag names no postgres major version")


# --- more of each rule's edges ------------------------------------------------------------------


def test_logs_without_max_size_are_caught(prod_plan: Plan) -> None:
    change = {"logOpts": {"max-file": "3"}}
    assert violations(prod_plan, "grafana-container", change, "log-rotation") == [
        "keeps logs without max-size"
    ]


def test_a_plain_upload_outside_the_secrets_folder_is_no_secret(prod_plan: Plan) -> None:
    change = {"uploads": [{"file": "/etc/nginx/conf.d/extra.conf", "content": "server {}"}]}
    assert violations(prod_plan, "postgres-container", change, "secret-delivery") == []


def test_a_resource_without_a_fixed_name_may_be_replaced_create_first(prod_plan: Plan) -> None:
    change = {"name": None, "options": {"deleteBeforeReplace": False}}
    assert violations(prod_plan, "console-container", change, "delete-before-replace") == []


@pytest.mark.parametrize(
    ("recorded", "message"),
    [
        (None, "mounts postgres-data, but the stack does not record which postgres major"),
        (16, "runs postgres 17 on postgres-data, which holds postgres 16 data"),
    ],
)
def test_postgres_must_run_the_major_its_data_was_recorded_with(
    prod_plan: Plan, recorded: int | None, message: str
) -> None:
    found = [
        str(v)
        for v in check_plan(prod_plan, PROD, postgres_major=recorded)
        if v.rule.id == "postgres-major"
    ]
    assert len(found) == 1
    assert message in found[0]


def test_a_swarm_image_built_here_is_not_asked_for_a_digest_before_the_push(
    cluster_plan: Plan,
) -> None:
    plan = edited_at(
        cluster_plan, SERVICE, "discovery-service", "taskSpec.containerSpec.image", UNKNOWN
    )
    assert cluster_messages(plan, "swarm-image-digest") == []


def test_a_swarm_image_that_is_no_reference_is_not_by_digest(cluster_plan: Plan) -> None:
    plan = edited_at(
        cluster_plan, SERVICE, "grafana-service", "taskSpec.containerSpec.image", "Not An Image"
    )
    [line] = cluster_messages(plan, "swarm-image-digest")
    assert "runs 'Not An Image', not an image by digest" in line


def test_a_pulled_swarm_image_not_known_yet_is_not_by_digest(cluster_plan: Plan) -> None:
    # Only a push of our own build makes the digest known later; a pulled image names it now.
    image = "taskSpec.containerSpec.image"
    plan = edited_at(cluster_plan, SERVICE, "grafana-service", image, UNKNOWN)
    assert len(cluster_messages(plan, "swarm-image-digest")) == 1
