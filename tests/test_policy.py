"""The policy rules: the shipped stacks comply, and each rule catches what it is for."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
)

from depot.cli import main
from depot.config import load_settings
from depot.config.settings import PolicySettings
from depot.policy.check import Violation, check_plan, report
from depot.policy.crossguard import policies
from depot.policy.rules import RULES, final_stage_user
from depot.program import deploy
from depot.recording import Recording, Secret, record
from depot.review.plan import Plan, plan_from, plan_stack
from depot.types import PolicyRuleId
from tests.conftest import PROJECT_DIR, edited, run_stack, stack_config

PROD = PolicySettings(enforcement="mandatory", production=True)


@pytest.fixture(scope="module")
def prod_plan() -> Plan:
    return plan_stack("prod")


def messages(plan: Plan, rule: str, policy: PolicySettings = PROD) -> list[str]:
    return [str(v) for v in check_plan(plan, policy) if v.rule.id == rule]


def test_every_rule_id_is_one_the_stack_config_accepts() -> None:
    assert [r.id for r in RULES] == list(get_args(PolicyRuleId))


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_shipped_prod_complies_with_every_rule(prod_plan: Plan, rule: str) -> None:
    assert messages(prod_plan, rule) == []


def test_shipped_dev_shows_no_violation_under_its_own_policy() -> None:
    policy = load_settings("dev", stack_config("dev")).policy
    assert (policy.enforcement, policy.production) == ("advisory", False)
    assert check_plan(plan_stack("dev"), policy) == []


def test_dev_would_only_miss_production_rules() -> None:
    # Held to production's rules, dev lacks exactly what prod adds: limits, digests, protection.
    found = {v.rule.id for v in check_plan(plan_stack("dev"), PROD)}
    assert found == {"limits", "image-pinned", "data-volume"}


MUTATIONS: list[tuple[PolicyRuleId, str, dict[str, Any], str]] = [
    ("image-pinned", "postgres-image", {"name": "postgres:latest"},
     "runs 'postgres:latest', which is not pinned to a version tag"),
    ("image-pinned", "grafana-image", {"name": "grafana/grafana:11.4.0"},
     "runs 'grafana/grafana:11.4.0' by tag only; production pins third-party images by digest"),
    ("image-pinned", "discovery-image-build", {"tags": ["depot-discovery:latest"]},
     "builds the moving tag 'depot-discovery:latest'"),
    ("non-root-user", "discovery-container", {"user": "0:0"}, "runs as root (uid 0)"),
    ("non-root-user", "dispatch-container", {"user": "depot"},
     "runs as 'depot'; our own services run as a numeric user"),
    ("healthcheck", "grafana-container", {"healthcheck": {"tests": ["NONE"]}},
     "has no healthcheck"),
    ("wait-for-health", "postgres-container", {"wait": False},
     "is not waited for, yet depot-dispatch start after it"),
    ("wait-for-health", "discovery-container", {"waitTimeout": 60},
     "waits 60s for healthy; its healthcheck may take 69s"),
    ("limits", "console-container", {"memory": None}, "has no memory limit"),
    ("limits", "console-container", {"cpus": None}, "has no CPU limit"),
    ("restart", "dispatch-container", {"restart": "no"}, "never restarts (restart: no)"),
    ("restart", "dispatch-container", {"restart": "on-failure", "maxRetryCount": 9},
     "restarts on failure 9 times"),
    ("isolation", "discovery-container", {"privileged": True}, "runs privileged"),
    ("isolation", "discovery-container", {"networkMode": "host"},
     "shares the host's namespace (networkMode: host)"),
    ("isolation", "console-container",
     {"mounts": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}]},
     "mounts the host's /var/run/docker.sock"),
    ("isolation", "console-container",
     {"mounts": [{"type": "bind", "source": "/etc/shadow", "target": "/s"}]},
     "mounts the host's /etc/shadow"),
    ("isolation", "console-container",
     {"mounts": [{"type": "bind", "source": "/proc/1/root", "target": "/s"}]},
     "mounts the host's /proc/1/root"),
    ("published-ports", "grafana-container",
     {"ports": [{"internal": 3000, "external": 3000, "ip": "0.0.0.0"}]},
     "publishes 3000 on every interface (0.0.0.0) without a recorded reason"),
    ("capabilities", "discovery-container", {"capabilities": {"drops": []}},
     "keeps Docker's default capabilities (drop ALL)"),
    ("capabilities", "postgres-container",
     {"capabilities": {"drops": ["ALL"], "adds": ["CHOWN", "SYS_ADMIN"]}},
     "adds SYS_ADMIN, which is not on its allowlist"),
    ("capabilities", "dispatch-container", {"securityOpts": []},
     "can gain privileges (no-new-privileges is not set)"),
    ("capabilities", "dispatch-container",
     {"securityOpts": ["no-new-privileges:true", "seccomp=unconfined"]},
     "runs without seccomp (seccomp=unconfined)"),
    ("read-only-root", "dispatch-container", {"readOnly": False},
     "has a writable root filesystem and no recorded exception"),
    ("published-ports", "postgres-container",
     {"ports": [{"internal": 5432, "external": 5432, "ip": "127.0.0.1"}]},
     "publishes the database"),
    ("published-ports", "console-container", {"ports": [{"internal": 80, "external": 80}]},
     "publishes 80 on every host address (no ip)"),
    ("internal-database-network", "database-network", {"internal": False},
     "routes outside Docker (internal is not set)"),
    ("log-rotation", "grafana-container", {"logDriver": "syslog"},
     "logs with syslog, not json-file"),
    ("log-rotation", "grafana-container", {"logOpts": {"max-size": "10m"}},
     "keeps logs without max-file"),
    ("secret-env", "grafana-container", {"envs": ["GF_SECURITY_ADMIN_PASSWORD=hunter2"]},
     "sets GF_SECURITY_ADMIN_PASSWORD in plain text"),
    ("secret-delivery", "postgres-container",
     {"uploads": [{"file": "/run/secrets/database_password", "content": "hunter2"}]},
     "uploads /run/secrets/database_password with plain content"),
    ("data-volume", "postgres-data", {"options": {"retainOnDelete": False}},
     "would be deleted with the stack (retainOnDelete is off)"),
    ("data-volume", "postgres-data", {"options": {"protect": False}},
     "is not protected in production"),
    ("stop-grace", "postgres-container", {"destroyGraceSeconds": 0},
     "gets 0s to stop and holds data; give it at least 30s"),
    ("delete-before-replace", "console-container", {"options": {"deleteBeforeReplace": False}},
     "has a fixed name but is replaced create-first"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "resource", "change", "message"),
    [pytest.param(*m, id=f"{m[0]}:{m[3][:40]}") for m in MUTATIONS],
)
def test_each_rule_reports_its_violation(
    prod_plan: Plan, rule: PolicyRuleId, resource: str, change: dict[str, Any], message: str
) -> None:
    found = messages(edited(prod_plan, resource, change), rule)
    [line] = found
    fix = next(r.fix for r in RULES if r.id == rule)
    assert line.startswith("mandatory: ")
    assert f"[{rule}] {message} — fix: {fix}" in line
    assert resource in line


def test_every_rule_has_a_mutation_that_trips_it() -> None:
    assert {m[0] for m in MUTATIONS} | {"dockerfile-user"} == {r.id for r in RULES}


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        (
            "FROM alpine:3.21.3\nRUN true\n",
            "the final stage sets no USER, so it runs as root",
        ),
        ("FROM alpine:3.21.3\nUSER app\n", "the final stage's USER 'app' is not numeric"),
        ("FROM alpine:3.21.3\nUSER 0:0\n", "the final stage runs as root (USER 0:0)"),
        ("FROM a:1 AS b\nUSER 1000\nFROM alpine:3.21.3\n", "the final stage sets no USER"),
    ],
)
def test_a_dockerfile_whose_final_stage_runs_as_root_is_caught(
    prod_plan: Plan, tmp_path: Path, dockerfile: str, message: str
) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    plan = edited(
        prod_plan,
        "discovery-image-build",
        {"dockerfile": {"location": str(tmp_path / "Dockerfile")}},
    )
    [line] = messages(plan, "dockerfile-user")
    assert message in line


# The engine tier's stand-ins for the official postgres and nginx images keep those images'
# contract: they start as root, and the entrypoint (postgres) or the master (nginx) drops to
# their user. The depot never builds them; tests/engine/test_hardening.py checks what they run as.
ROOT_STARTING_STANDINS = {
    PROJECT_DIR / "tests" / "engine" / "standins" / "postgres.Dockerfile",
    PROJECT_DIR / "tests" / "engine" / "standins" / "console.Dockerfile",
}


def test_every_dockerfile_in_the_repository_ends_as_a_numeric_non_root_user() -> None:
    dockerfiles = [
        path
        for path in PROJECT_DIR.rglob("*Dockerfile")
        if ".venv" not in path.parts and path.is_file() and path not in ROOT_STARTING_STANDINS
    ]
    assert dockerfiles
    for path in dockerfiles:
        user = final_stage_user(path.read_text()) or ""
        uid = user.split(":")[0]
        assert uid.isdigit(), path
        assert int(uid) != 0, path


def test_images_ci_pushed_are_held_to_the_non_root_rule_too() -> None:
    reference = "registry.example.com/depot-discovery@sha256:" + "a" * 64
    recording = run_stack(
        "prod",
        {"depot:images": {"discovery": reference}, "depot:release": {"commit": "abc1234"}},
    )
    plan = edited(plan_from(recording), "discovery-container", {"user": "0:0"})
    [line] = messages(plan, "non-root-user")
    assert "[non-root-user] runs as root (uid 0)" in line


def test_advisory_violations_do_not_fail_the_check(prod_plan: Plan) -> None:
    plan = edited(prod_plan, "console-container", {"memory": None})
    advisory = PolicySettings(enforcement="advisory", production=True)
    text, status = report(check_plan(plan, advisory), "prod")
    assert status == 0
    assert text.startswith("advisory: depot-console")


def test_a_rule_can_be_disabled_or_raised_on_its_own(prod_plan: Plan) -> None:
    plan = edited(prod_plan, "console-container", {"memory": None})
    assert check_plan(plan, PolicySettings(rules={"limits": "disabled"})) == []
    [violation] = check_plan(
        plan, PolicySettings(enforcement="advisory", rules={"limits": "mandatory"})
    )
    assert violation.level == "mandatory"


def test_mandatory_violations_fail_the_check(prod_plan: Plan) -> None:
    violations: list[Violation] = check_plan(
        edited(prod_plan, "console-container", {"cpus": None}), PROD
    )
    text, status = report(violations, "prod")
    assert status == 1
    assert text.splitlines()[-1] == "prod: 1 violation(s), 1 mandatory, 0 advisory (18 rules)"


def test_depot_check_passes_on_the_shipped_prod_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--stack", "prod"]) == 0
    assert "prod: 0 violation(s)" in capsys.readouterr().out


def test_a_stack_edit_that_breaks_a_rule_fails_the_check() -> None:
    recording = run_stack("prod", {"depot:restart": "no", "depot:publish": {"ports": {}}})
    policy = load_settings("prod", stack_config("prod", {"depot:restart": "no"})).policy
    found = {v.rule.id for v in check_plan(plan_from(recording), policy)}
    assert found == {"restart"}


# --- CrossGuard -----------------------------------------------------------------------------


def _decrypted(value: Any) -> Any:
    """A recorded value as CrossGuard hands it to a policy: secrets decrypted, unmarked."""
    if isinstance(value, Secret):
        return _decrypted(value.value)
    if isinstance(value, dict):
        return {key: _decrypted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decrypted(item) for item in value]
    return value


def _policy_resources(
    recording: Recording, edits: dict[str, dict[str, Any]] | None = None
) -> list[PolicyResource]:
    """What CrossGuard would hand the pack: the engine's inputs with secrets decrypted and
    unmarked, absolute paths, and options without retainOnDelete."""
    by_urn: dict[str, PolicyResource] = {}
    for registration in recording.registrations:
        props = {**_decrypted(registration.inputs), **(edits or {}).get(registration.name, {})}
        by_urn[registration.urn] = PolicyResource(
            resource_type=registration.type,
            props=props,
            urn=registration.urn,
            name=registration.name,
            opts=PolicyResourceOptions(
                protect=registration.protect,
                ignore_changes=[],
                delete_before_replace=registration.delete_before_replace,
                aliases=[],
                custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                additional_secret_outputs=[],
            ),
            provider=None,
            parent=None,
            dependencies=[],
            property_dependencies={},
        )
    for registration in recording.registrations:
        by_urn[registration.urn].dependencies = [
            by_urn[u] for u in registration.dependencies if u in by_urn
        ]
    return list(by_urn.values())


def _crossguard(resources: list[PolicyResource], production: bool = True) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for policy in policies():

        def report_violation(message: str, urn: str | None, name: str = policy.name) -> None:
            found.append((name, f"{urn} {message}"))

        args = StackValidationArgs(resources, config={"production": production})
        policy.validate(args, report_violation)
    return found


def test_crossguard_pack_passes_the_shipped_prod_stack(shipped: dict[str, Recording]) -> None:
    recording = shipped["prod"]
    assert _crossguard(_policy_resources(recording)) == []


def test_crossguard_pack_reports_a_violation_against_its_resource(
    shipped: dict[str, Recording],
) -> None:
    recording = shipped["prod"]
    edits = {"console-container": {"privileged": True}}
    [(policy, line)] = _crossguard(_policy_resources(recording, edits))
    assert policy == "isolation"
    assert line.endswith(
        "::console-container runs privileged — fix: remove privileged / host "
        "modes, and mount only the service's own data"
    )


def test_only_the_packs_entry_point_builds_a_policy_pack() -> None:
    for path in [*(PROJECT_DIR / "depot").rglob("*.py"), PROJECT_DIR / "policy" / "__main__.py"]:
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PolicyPack"
        ]
        assert len(calls) == (
            1
            if path.parent.name == "policy"
            and path.name == "__main__.py"
            and path.parent.parent == PROJECT_DIR
            else 0
        ), path


def test_the_pack_runs_on_the_projects_virtualenv() -> None:
    pack = yaml.safe_load((PROJECT_DIR / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": "../.venv"},
    }


def test_hadolint_config_raises_missing_healthcheck_to_an_error() -> None:
    config = yaml.safe_load((PROJECT_DIR / ".hadolint.yaml").read_text())
    assert config["failure-threshold"] == "warning"
    assert "DL3057" in config["override"]["error"]


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        ({"depot:restart": "no"}, "restart"),
        ({"depot:restart": "on-failure:9"}, "restart"),
        ({"depot:data": {"protect": False}}, "data-volume"),
        ({"depot:publish": {"address": "0.0.0.0", "ports": {"console": 80, "grafana": 3000}}},
         "published-ports"),
        ({"depot:images": {"postgres": "postgres:17.2-alpine"}}, "image-pinned"),
    ],
)  # fmt: skip
def test_editing_the_prod_stack_file_to_break_a_rule_fails_the_check(
    edit: dict[str, Any], rule: str
) -> None:
    config = stack_config("prod", {**edit, "depot:release": {"commit": "abc1234"}})
    recording = record(deploy, stack="prod", config=config)
    violations = check_plan(plan_from(recording), load_settings("prod", config).policy)
    assert {v.rule.id for v in violations} == {rule}
    assert report(violations, "prod")[1] == 1


def test_removing_a_containers_limits_from_the_stack_file_fails_the_check() -> None:
    limits = load_settings("prod", stack_config("prod")).limits
    kept = {
        name: {"memory": f"{value.memory}m", "cpus": value.cpus}
        for name, value in limits.items()
        if name != "grafana"
    }
    config = stack_config("prod", {"depot:limits": kept, "depot:release": {"commit": "abc1234"}})
    violations = check_plan(plan_from(record(deploy, stack="prod", config=config)), PROD)
    assert sorted(str(v).split(" — ")[0].split("] ")[1] for v in violations) == [
        "has no CPU limit",
        "has no memory limit",
    ]
