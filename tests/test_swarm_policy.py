"""The policy on a swarm stack: the shipped cluster stack complies, and each Swarm rule catches
what it is for on the cluster's own plan, offline and through CrossGuard."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from depot.cli import main
from depot.config.settings import PolicySettings
from depot.policy.check import check_plan
from depot.policy.rules import RULES
from depot.resource_types import DOCKER_SECRET, SERVICE
from depot.review.plan import Plan, PlannedResource, plan_stack
from tests.conftest import run_stack
from tests.test_policy import _analyze_stack_request, _crossguard

PROD = PolicySettings(enforcement="mandatory", production=True)
SWARM_RULES = {r.id for r in RULES if r.id.startswith("swarm-")}


@pytest.fixture(scope="module")
def cluster_plan() -> Plan:
    return plan_stack("cluster")


def messages(plan: Plan, rule: str) -> list[str]:
    return [str(v) for v in check_plan(plan, PROD, postgres_major=17) if v.rule.id == rule]


def edited_at(plan: Plan, type_: str, name: str, path: str, value: Any) -> Plan:
    """``plan`` with one value of ``type_``/``name`` set (``a.b[0].c``, or ``options.x``)."""

    def edit(resource: PlannedResource) -> PlannedResource:
        if (resource.type, resource.name) != (type_, name):
            return resource
        inputs, options = copy.deepcopy(resource.inputs), dict(resource.options)
        if path.startswith("options."):
            options[path.removeprefix("options.")] = value
        else:
            node: Any = inputs
            *parents, last = path.replace("[", ".").replace("]", "").split(".")
            for part in parents:
                node = node[int(part)] if part.isdigit() else node[part]
            node[int(last) if last.isdigit() else last] = value
        return PlannedResource(
            resource.type, resource.name, resource.parent, inputs, options, resource.dependencies
        )

    return Plan(plan.stack, tuple(edit(r) for r in plan.resources))


def test_every_swarm_rule_is_registered() -> None:
    assert {
        "swarm-single-postgres",
        "swarm-image-digest",
        "swarm-secrets",
        "swarm-rollback",
        "swarm-data-placement",
    } == SWARM_RULES


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_shipped_cluster_complies_with_every_rule(cluster_plan: Plan, rule: str) -> None:
    assert messages(cluster_plan, rule) == []


def test_depot_check_passes_on_the_shipped_cluster_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--stack", "cluster"]) == 0
    assert "cluster: 0 violation(s)" in capsys.readouterr().out


SWARM_MUTATIONS: list[tuple[str, str, str, str, Any, str]] = [
    ("swarm-single-postgres", SERVICE, "postgres-service", "mode.replicated.replicas", 2,
     "runs 2 tasks on postgres-data; it must run exactly one"),
    ("swarm-single-postgres", SERVICE, "postgres-service", "updateConfig.order", "start-first",
     "updates start-first, not stop-first: the new task could open the data while the old one "
     "still runs"),
    ("swarm-single-postgres", SERVICE, "postgres-service", "rollbackConfig.order", "start-first",
     "rolls back start-first, not stop-first: the new task could open the data while the old "
     "one still runs"),
    ("swarm-image-digest", SERVICE, "grafana-service", "taskSpec.containerSpec.image",
     "grafana/grafana:11.4.0", "runs 'grafana/grafana:11.4.0', not an image by digest"),
    ("swarm-secrets", DOCKER_SECRET, "database-password", "options.deleteBeforeReplace", True,
     "is replaced delete-first, which Swarm refuses while a service uses it"),
    ("swarm-secrets", DOCKER_SECRET, "grafana-admin-password", "data", "aHVudGVyMg==",
     "holds its data in plain text"),
    ("swarm-secrets", SERVICE, "postgres-service", "taskSpec.containerSpec.secrets[0].fileMode",
     0o444, "delivers /run/secrets/database_password with mode 0444; use 0400 and its owner"),
    ("swarm-rollback", SERVICE, "discovery-service", "updateConfig.failureAction", "pause",
     "does pause when an update fails, not rollback"),
    ("swarm-rollback", SERVICE, "discovery-service", "updateConfig.parallelism", 2,
     "updates 2 task(s) at once, not one"),
    ("swarm-rollback", SERVICE, "dispatch-service", "updateConfig.monitor", "5s",
     "watches a new task 5s; its healthcheck may take 69s to fail"),
    ("swarm-data-placement", SERVICE, "postgres-service", "taskSpec.placement", None,
     "mounts postgres-data but may run on any node, where it would find none"),
    ("published-ports", SERVICE, "grafana-service", "endpointSpec",
     {"ports": [{"targetPort": 3000, "publishedPort": 3000}]},
     "publishes 3000 on every address of every Swarm node without a recorded reason"),
]  # fmt: skip


@pytest.mark.parametrize(
    "mutation", [pytest.param(m, id=f"{m[0]}:{m[5][:40]}") for m in SWARM_MUTATIONS]
)
def test_each_swarm_rule_reports_its_violation(
    cluster_plan: Plan, mutation: tuple[str, str, str, str, Any, str]
) -> None:
    rule, type_, name, path, value, message = mutation
    [line] = messages(edited_at(cluster_plan, type_, name, path, value), rule)
    assert f"[{rule}] {message} — fix:" in line
    assert name in line


def test_every_swarm_rule_has_a_mutation_that_trips_it() -> None:
    assert {m[0] for m in SWARM_MUTATIONS} >= SWARM_RULES


def test_the_swarm_rules_leave_containers_alone() -> None:
    # A host stack has no Swarm service and no Swarm secret: nothing for them to say.
    plan = plan_stack("prod")
    assert not [v for v in check_plan(plan, PROD, postgres_major=17) if v.rule.id in SWARM_RULES]
    assert not [r for r in plan.resources if r.type in (SERVICE, DOCKER_SECRET)]


def test_crossguard_pack_passes_the_shipped_cluster_stack() -> None:
    assert _crossguard(_analyze_stack_request(run_stack("cluster"))) == []


def test_crossguard_reports_a_swarm_rule_against_its_service() -> None:
    edits = {"postgres-service": {"mode": {"replicated": {"replicas": 3}}}}
    [(policy, line)] = _crossguard(_analyze_stack_request(run_stack("cluster"), edits))
    assert policy == "swarm-single-postgres"
    assert "::postgres-service runs 3 tasks on postgres-data; it must run exactly one" in line
