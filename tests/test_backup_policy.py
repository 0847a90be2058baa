"""Production backs its database up, off the host, encrypted: three rules, offline and in
CrossGuard, on containers and on Swarm services; and a diff that weakens backups says so."""

from __future__ import annotations

from typing import Any

import pytest

from depot.config import load_settings
from depot.config.settings import PolicySettings
from depot.policy.check import check_plan, report
from depot.policy.rules import RULES
from depot.resource_types import CONTAINER
from depot.review.diff import diff_plans
from depot.review.plan import Plan, plan_from
from depot.review.render import diff_markdown, diff_text
from tests.conftest import as_read, env_of, run_stack, stack_config
from tests.test_policy import _analyze_stack_request, _crossguard
from tests.test_swarm_policy import edited_at

PROD = PolicySettings(enforcement="mandatory", production=True)
BACKUP_RULES = {"backup-enabled", "backup-off-host", "backup-encrypted"}
RECIPIENT = "age1xk72a7fvfupmssj73newmhv3pz0exes6n7tzwqytn4aepy3sjecq4q2jpc"
S3 = ":s3,provider=AWS,env_auth=true,region=eu-central-1:depot-backups/prod"


def fix(rule: str) -> str:
    return next(r.fix for r in RULES if r.id == rule)


def backup(**settings: Any) -> dict[str, Any]:
    shipped: dict[str, Any] = {
        "enabled": True,
        "retention": {"daily": 7},
        "recipients": [RECIPIENT],
        "targets": [S3],
    }
    return {"depot:backup": {**shipped, **settings}}


def check(stack: str, overrides: dict[str, Any] | None = None) -> list[str]:
    """`depot check`'s lines for ``stack`` with ``overrides``, under its own policy."""
    settings = load_settings(stack, stack_config(stack, overrides))
    plan = plan_from(run_stack(stack, overrides))
    violations = check_plan(plan, settings.policy, postgres_major=settings.data.postgres_major)
    text, _ = report(violations, stack)
    return text.splitlines()


def backup_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if any(f"[{rule}]" in line for rule in BACKUP_RULES)]


def test_the_rules_are_registered_for_every_workload_type() -> None:
    registered = {r.id: r for r in RULES if r.id in BACKUP_RULES}
    assert set(registered) == BACKUP_RULES
    for rule in registered.values():
        assert CONTAINER in rule.types
        assert "docker:index/service:Service" in rule.types


@pytest.mark.parametrize("stack", ["dev", "prod", "cluster"])
def test_the_shipped_stacks_pass(stack: str) -> None:
    lines = check(stack)
    assert lines[-1].startswith(f"{stack}: 0 violation(s), 0 mandatory, 0 advisory")


def test_production_without_backups_fails_the_check_naming_the_database() -> None:
    lines = check("prod", {"depot:backup": {"enabled": False}})
    assert backup_lines(lines) == [
        "mandatory: depot-postgres (docker:index/container:Container postgres-container) "
        "[backup-enabled] holds postgres-data, and no backup service dumps it: a lost disk, host "
        f"or dropped table would lose the data — fix: {fix('backup-enabled')}"
    ]
    assert lines[-1] == "prod: 1 violation(s), 1 mandatory, 0 advisory (27 rules)"


def test_production_backups_that_never_leave_the_host_fail_twice() -> None:
    # Without a target the settings allow no recipients either: both rules speak.
    lines = backup_lines(check("prod", backup(recipients=[], targets=[])))
    assert lines == [
        "mandatory: depot-backup (docker:index/container:Container backup-container) "
        "[backup-off-host] keeps every backup on the host it backs up (postgres-backups): a lost "
        f"host loses the backups with the data — fix: {fix('backup-off-host')}",
        "mandatory: depot-backup (docker:index/container:Container backup-container) "
        "[backup-encrypted] writes unencrypted dumps: it is given no age recipient to encrypt to "
        f"— fix: {fix('backup-encrypted')}",
    ]


def _given_targets(targets: str) -> list[str]:
    """The backup-off-host findings on prod's plan whose backup service is given ``targets``.

    The settings refuse a target on this host; a plan made some other way is still held to the
    rule, which reads only the plan.
    """
    edited = _with_targets(plan_from(run_stack("prod")), targets)
    found = check_plan(edited, PROD, postgres_major=17)
    return [v.message for v in found if v.rule.id == "backup-off-host"]


def _with_targets(plan: Plan, targets: str) -> Plan:
    backup_container = next(r for r in plan.resources if r.name == "backup-container")
    envs = [
        f"DEPOT_BACKUP_TARGETS={targets}" if e.startswith("DEPOT_BACKUP_TARGETS=") else e
        for e in backup_container.inputs["envs"]
    ]
    return edited_at(plan, CONTAINER, "backup-container", "envs", envs)


@pytest.mark.parametrize(
    "targets",
    [
        ":local:/backups/copy :local:/tmp/x",
        ":alias,remote=/backups:",
        ":union,upstreams=/backups:",
        ":alias,remote=':hasher,remote=''/backups'':':",
        ":archive:/backups/x.zip",
        ":combine,upstreams=dir=relative/dir:",
        ":memory: /backups relative",
    ],
)
def test_a_target_on_this_host_or_wrapping_it_is_not_off_the_host(targets: str) -> None:
    # Every target is this host: that is keeping every backup on it, said as such.
    assert _given_targets(targets) == [
        "keeps every backup on the host it backs up (postgres-backups): a lost host loses the "
        "backups with the data"
    ]


def test_a_target_on_this_host_beside_one_off_it_is_named_by_position() -> None:
    plan = plan_from(run_stack("prod"))
    edited = _with_targets(plan, f"{S3} :local:/backups/copy :alias,remote=/backups:")
    found = [v.message for v in check_plan(edited, PROD, postgres_major=17)]
    assert found == [
        "is given targets on this host (number 2, 3 of 3 in DEPOT_BACKUP_TARGETS): a local "
        "path, rclone's local or memory backend, or a wrapper of one is no copy off the host"
    ]


def test_targets_off_the_host_pass_the_rule() -> None:
    assert _given_targets(f":alias,remote='offsite:depot': offsite:depot {S3}") == []


def test_dumps_sent_off_unencrypted_are_caught_where_settings_cannot_be() -> None:
    # The settings refuse targets without recipients; a plan made some other way (or a
    # program edited by hand) is still held to the rule.
    plan = plan_from(run_stack("prod"))
    backup_container = next(r for r in plan.resources if r.name == "backup-container")
    envs = [
        "DEPOT_BACKUP_RECIPIENTS=" if e.startswith("DEPOT_BACKUP_RECIPIENTS=") else e
        for e in backup_container.inputs["envs"]
    ]
    edited = edited_at(plan, CONTAINER, "backup-container", "envs", envs)
    found = [(v.rule.id, v.message) for v in check_plan(edited, PROD, postgres_major=17)]
    assert found == [
        ("backup-encrypted", "writes unencrypted dumps: it is given no age recipient to encrypt to")
    ]
    hidden = edited_at(plan, CONTAINER, "backup-container", "envs", "[secret]")
    found = [(v.rule.id, v.message) for v in check_plan(hidden, PROD, postgres_major=17)]
    assert ("backup-encrypted", "is not given its recipients (DEPOT_BACKUP_RECIPIENTS is "
            "missing, secret or unknown)") in found  # fmt: skip


def test_development_is_not_held_to_them() -> None:
    assert backup_lines(check("dev", {"depot:backup": {"enabled": False}})) == []
    prod_rules = PolicySettings(enforcement="mandatory", production=True)
    plan = plan_from(run_stack("dev", {"depot:backup": {"enabled": False}}))
    found = {v.rule.id for v in check_plan(plan, prod_rules, postgres_major=17)}
    assert "backup-enabled" in found


def test_a_swarm_stack_is_held_to_them_through_its_services() -> None:
    lines = backup_lines(check("cluster", {"depot:backup": {"enabled": False}}))
    assert lines == [
        "mandatory: depot-postgres (docker:index/service:Service postgres-service) "
        "[backup-enabled] holds postgres-data, and no backup service dumps it: a lost disk, host "
        f"or dropped table would lose the data — fix: {fix('backup-enabled')}"
    ]
    lines = backup_lines(check("cluster", backup(recipients=[], targets=[])))
    assert [line.split("(")[1].split(")")[0] for line in lines] == [
        "docker:index/service:Service backup-service"
    ] * 2


def test_crossguard_reports_production_without_backups_against_postgres() -> None:
    recording = run_stack("prod", {"depot:backup": {"enabled": False}})
    [(policy, line)] = _crossguard(_analyze_stack_request(recording))
    assert policy == "backup-enabled"
    assert "::postgres-container holds postgres-data, and no backup service dumps it" in line
    assert _crossguard(_analyze_stack_request(recording), production=False) == []


def test_crossguard_reads_targets_and_recipients_from_the_backup_container() -> None:
    recording = run_stack("prod", backup(recipients=[], targets=[]))
    found = sorted(policy for policy, _ in _crossguard(_analyze_stack_request(recording)))
    assert found == ["backup-encrypted", "backup-off-host"]
    assert _crossguard(_analyze_stack_request(run_stack("prod"))) == []
    assert env_of(recording.named("backup-container"))["DEPOT_BACKUP_TARGETS"] == ""


# --- a diff that weakens backups ---------------------------------------------------------------


@pytest.fixture(scope="module")
def prod_plan() -> Plan:
    return plan_from(run_stack("prod"))


def diff_to(base: Plan, overrides: dict[str, Any], stack: str = "prod") -> Any:
    return diff_plans(base, plan_from(run_stack(stack, overrides)), base_label="a", head_label="b")


def test_switching_backups_off_is_data_at_risk(prod_plan: Plan) -> None:
    diff = diff_to(prod_plan, {"depot:backup": {"enabled": False}})
    reasons = {risk.key.split("::")[1]: risk.reason for risk in diff.risks}
    assert reasons == {
        "backup-container": "backups stop: the backup service is removed "
        "(depot:backup.enabled), so no new backup is taken; those already taken are kept",
        "postgres-backups": "deleted from the stack (a guarded resource)",
    }
    text = diff_text(diff)
    assert "! data at risk: backup-container: backups stop" in text
    assert "- docker:index/volume:Volume postgres-backups [DATA]" in text
    assert "- docker:index/container:Container backup-container [DATA]" in text
    assert "- **Data at risk:** `backup-container`: backups stop" in as_read(diff_markdown(diff))


def test_switching_backups_off_on_a_swarm_is_data_at_risk_too() -> None:
    cluster = plan_from(run_stack("cluster"))
    diff = diff_to(cluster, {"depot:backup": {"enabled": False}}, stack="cluster")
    assert [risk.key.split("::")[1] for risk in diff.risks] == ["backup-service"]


def test_backups_that_stop_leaving_the_host_are_data_at_risk(prod_plan: Plan) -> None:
    diff = diff_to(prod_plan, backup(recipients=[], targets=[]))
    assert [risk.reason for risk in diff.risks] == [
        "backups stay on the host: depot:backup.targets is emptied, so a lost host loses the "
        "backups with the data",
        "dumps are no longer encrypted: depot:backup.recipients is emptied",
    ]
    assert diff.data_risks == ("docker:index/container:Container::backup-container",)


def test_other_backup_changes_and_turning_backups_on_put_nothing_at_risk(prod_plan: Plan) -> None:
    assert diff_to(prod_plan, backup(schedule="6h")).risks == ()
    off = plan_from(run_stack("prod", {"depot:backup": {"enabled": False}}))
    turned_on = diff_plans(off, prod_plan, base_label="a", head_label="b")
    assert turned_on.risks == ()
    assert {r.name for r in turned_on.added} >= {"backup-container", "postgres-backups"}
