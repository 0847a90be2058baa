"""Reviewing a swarm stack: which changes replace a service, which roll, and what a rotated
password does, in ``depot diff``'s own words."""

from __future__ import annotations

from typing import Any

import pytest

from depot.cli import main
from depot.resource_types import DOCKER_SECRET, SERVICE
from depot.review.diff import DATABASE_PASSWORD_NOTE, diff_plans
from depot.review.plan import Plan, new_fingerprint_key, plan_from
from depot.review.render import (
    diff_markdown,
    diff_text,
    plan_markdown,
    plan_notes,
    plan_text,
    probed_late,
)
from depot.review.replacements import replaces_on_change
from tests.conftest import as_read, run_stack


@pytest.mark.parametrize(
    ("path", "replaces"),
    [("taskSpec.containerSpec.image", False), ("taskSpec.containerSpec.env.PORT", False),
     ("taskSpec.containerSpec.secrets", False), ("taskSpec.resources.limits.nanoCpus", False),
     ("mode.replicated.replicas", False), ("updateConfig.monitor", False),
     ("convergeConfig.timeout", False), ("endpointSpec", False),
     ("name", True), ("auth", True), ("mode", True),
     ("taskSpec.containerSpec.labels", True), ("taskSpec.containerSpec.labels[0]", True),
     ("taskSpec.containerSpec.hosts", True), ("taskSpec.containerSpec.sysctl.net", True),
     ("taskSpec.networksAdvanceds", True), ("taskSpec.containerSpec.labelsExtra", False)],
)  # fmt: skip
def test_a_service_is_replaced_only_by_the_providers_own_list(path: str, replaces: bool) -> None:
    assert replaces_on_change(SERVICE, path) is replaces


@pytest.mark.parametrize("path", ["name", "data", "labels"])
def test_a_swarm_secret_is_replaced_by_any_change(path: str) -> None:
    assert replaces_on_change(DOCKER_SECRET, path)


FIRST_PASSWORD = "first-Qx9"


def _plan(overrides: dict[str, Any] | None = None, password: str = FIRST_PASSWORD) -> Plan:
    recording = run_stack("cluster", overrides, secrets={"depot:databasePassword": password})
    return plan_from(recording, fingerprint_key=KEY)


KEY = new_fingerprint_key()


@pytest.fixture(scope="module")
def base() -> Plan:
    return _plan()


def test_an_env_change_rolls_a_replicated_service_without_downtime(base: Plan) -> None:
    head = _plan({"depot:logLevel": "debug"})
    diff = diff_plans(base, head, base_label="a", head_label="b")
    text = diff_text(diff)
    assert "~ docker:index/service:Service discovery-service [rolling]" in text
    assert "[replace]" not in text
    assert "| update | `discovery-service` | `docker:index/service:Service` | rolling |" in (
        as_read(diff_markdown(diff))
    )


def test_a_replica_count_replaces_no_task(base: Plan) -> None:
    head = _plan({"depot:replicas": {"discovery": 3, "dispatch": 2}})
    diff = diff_plans(base, head, base_label="a", head_label="b")
    [change] = diff.changed
    assert [(p.path, p.before, p.after, p.replaces) for p in change.changes] == [
        ("convergeConfig.timeout", "5m46s", "8m4s", False),
        ("mode.replicated.replicas", 2, 3, False),
    ]
    assert diff_text(diff).splitlines()[1] == "~ docker:index/service:Service discovery-service"


def test_rotating_the_database_password_replaces_only_the_swarm_secret(base: Plan) -> None:
    head = _plan(password="second-Qx9")  # noqa: S106 - a test password
    diff = diff_plans(base, head, base_label="a", head_label="b")
    assert [(c.after.type, c.after.name) for c in diff.replacements] == [
        (DOCKER_SECRET, "database-password")
    ]
    text = diff_text(diff)
    # postgres stops before its new task starts (one task, stop-first); dispatch rolls.
    assert "~ docker:index/service:Service postgres-service [downtime]" in text
    assert "~ docker:index/service:Service dispatch-service [rolling]" in text
    assert DATABASE_PASSWORD_NOTE in diff.notes
    assert "first-Qx9" not in text
    assert "second-Qx9" not in text


def test_changing_container_labels_replaces_the_service(base: Plan) -> None:
    edited = Plan(
        base.stack,
        tuple(
            r if r.name != "discovery-service" else _with_labels(r, [{"label": "a", "value": "b"}])
            for r in base.resources
        ),
    )
    diff = diff_plans(base, edited, base_label="a", head_label="b")
    assert "~ docker:index/service:Service discovery-service [replace]" in diff_text(diff)
    assert "| replace | `discovery-service` | `docker:index/service:Service` | downtime |" in (
        as_read(diff_markdown(diff))
    )


def _with_labels(resource: Any, labels: list[dict[str, str]]) -> Any:
    inputs = dict(resource.inputs)
    task = dict(inputs["taskSpec"])
    task["containerSpec"] = {**task["containerSpec"], "labels": labels}
    inputs["taskSpec"] = task
    return type(resource)(
        resource.type, resource.name, resource.parent, inputs, resource.options,
        resource.dependencies,
    )  # fmt: skip


def test_depot_graph_of_the_cluster_marks_health_gated_deploy_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["graph", "--stack", "cluster"]) == 0
    graph = capsys.readouterr().out
    assert '["service: depot-console"]' in graph
    assert "swarm secret: database-password" in graph
    assert graph.count("==>|healthy|") == 5  # postgres→dispatch and →backup, 3 into console


def test_depot_plan_of_the_cluster_shows_services(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "cluster", "--format", "markdown"]) == 0
    plan = as_read(capsys.readouterr().out)
    assert plan.count("| `docker:index/service:Service` |") == 8
    assert "docker:index/container:Container" not in plan


def test_one_start_first_task_rolls_too() -> None:
    # One replica, started before the old one stops: it keeps serving through the update.
    one = {"depot:replicas": {"discovery": 1, "dispatch": 2}}
    diff = diff_plans(_plan(one), _plan({**one, "depot:logLevel": "debug"}), base_label="a",
                      head_label="b")  # fmt: skip
    assert "~ docker:index/service:Service discovery-service [rolling]" in diff_text(diff)


def test_the_plan_says_swarm_services_start_without_start_interval(base: Plan) -> None:
    # The provider's docker.Service has no start_interval: the plan says so for every service
    # rather than dropping it silently; the stack file carries it (test_swarm_stack_file.py).
    services = [r for r in base.resources if r.type == SERVICE]
    assert services
    for service in services:
        assert "startInterval" not in service.inputs["taskSpec"]["containerSpec"]["healthcheck"]
    expected = sorted(f"depot-{r.name.removesuffix('-service')}" for r in services)
    assert probed_late(base) == expected
    [note] = plan_notes(base)
    assert "no healthcheck start_interval on " + ", ".join(expected) in note
    # What a rolling update pays for it: one interval per replaced task, at least (measured in
    # tests/engine/test_swarm_start_interval.py); two replicas of a 10 s check are the longest.
    assert "a rolling update waits at least one interval per task it replaces" in note
    assert ": 2 tasks of 10 s)" in note
    assert note in plan_text(base).splitlines()
    assert "start&#95;interval" in plan_markdown(base)


def test_a_host_stack_plan_has_no_start_interval_note() -> None:
    prod = plan_from(run_stack("prod"))
    assert probed_late(prod) == []
    assert plan_notes(prod) == []
