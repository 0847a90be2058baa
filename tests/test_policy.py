"""The policy rules: the shipped stacks comply, and each rule catches what it is for."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel as PolicyEnforcementLevel
from pulumi_policy import Policy
from pulumi_policy import secret as policy_secret
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from depot.cli import main
from depot.config import load_settings
from depot.config.settings import PolicySettings
from depot.policy.check import Violation, check_plan, report
from depot.policy.crossguard import policies
from depot.policy.rules import RULES, final_stage_user
from depot.program import deploy
from depot.recording import Recording, Secret, Unknown, record
from depot.review.plan import Plan, plan_from, plan_stack
from depot.types import PolicyRuleId
from tests.conftest import PROJECT_DIR, edited, run_stack, stack_config

PROD = PolicySettings(enforcement="mandatory", production=True)
# depot:data.postgresMajor as Pulumi.prod.yaml records it (the postgres-major rule reads it).
RECORDED_MAJOR = load_settings("prod", stack_config("prod")).data.postgres_major


@pytest.fixture(scope="module")
def prod_plan() -> Plan:
    return plan_stack("prod")


@pytest.fixture(scope="module")
def dev_plan() -> Plan:
    return plan_stack("dev")


def messages(plan: Plan, rule: str, policy: PolicySettings = PROD) -> list[str]:
    found = check_plan(plan, policy, postgres_major=RECORDED_MAJOR)
    return [str(v) for v in found if v.rule.id == rule]


def test_every_rule_id_is_one_the_stack_config_accepts() -> None:
    assert [r.id for r in RULES] == list(get_args(PolicyRuleId))


@pytest.mark.parametrize("rule", [r.id for r in RULES])
def test_shipped_prod_complies_with_every_rule(prod_plan: Plan, rule: str) -> None:
    assert messages(prod_plan, rule) == []


def test_shipped_dev_shows_no_violation_under_its_own_policy(dev_plan: Plan) -> None:
    policy = load_settings("dev", stack_config("dev")).policy
    assert (policy.enforcement, policy.production) == ("advisory", False)
    assert check_plan(dev_plan, policy) == []


def test_dev_would_only_miss_production_rules(dev_plan: Plan) -> None:
    # Held to production's rules, dev lacks exactly what prod adds: limits, digests, protection,
    # and backups that leave the machine, encrypted.
    recorded = load_settings("dev", stack_config("dev")).data.postgres_major
    found = {v.rule.id for v in check_plan(dev_plan, PROD, postgres_major=recorded)}
    assert found == {
        "limits",
        "image-pinned",
        "data-volume",
        "backup-off-host",
        "backup-encrypted",
    }


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
     "is not waited for, yet depot-backup, depot-dispatch start after it"),
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
    # dockerfile-user reads files (tested below); postgres-major a setting (test_diff_review);
    # the Swarm rules read a swarm stack's plan (tests/test_swarm_policy.py); the backup rules
    # the stack's backup settings (tests/test_backup_policy.py).
    exempt = {
        "dockerfile-user",
        "postgres-major",
        *(r.id for r in RULES if "swarm" in r.id or "backup" in r.id),
    }
    assert {m[0] for m in MUTATIONS} | exempt == {r.id for r in RULES}


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


# The stand-ins (engine tier, demo) for the official postgres and nginx images keep those images'
# contract: they start as root, and the entrypoint (postgres) or the master (nginx) drops to
# their user. The depot never builds them; tests/engine/test_hardening.py checks what they run as.
ROOT_STARTING_STANDINS = {
    PROJECT_DIR / "docker" / "standins" / "postgres.Dockerfile",
    PROJECT_DIR / "docker" / "standins" / "console.Dockerfile",
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
    text, status = report(check_plan(plan, advisory, postgres_major=RECORDED_MAJOR), "prod")
    assert status == 0
    assert text.startswith("advisory: depot-console")


def test_a_rule_can_be_disabled_or_raised_on_its_own(prod_plan: Plan) -> None:
    plan = edited(prod_plan, "console-container", {"memory": None})
    disabled = PolicySettings(rules={"limits": "disabled"})
    assert check_plan(plan, disabled, postgres_major=RECORDED_MAJOR) == []
    [violation] = check_plan(
        plan,
        PolicySettings(enforcement="advisory", rules={"limits": "mandatory"}),
        postgres_major=RECORDED_MAJOR,
    )
    assert violation.level == "mandatory"


def test_mandatory_violations_fail_the_check(prod_plan: Plan) -> None:
    violations: list[Violation] = check_plan(
        edited(prod_plan, "console-container", {"cpus": None}), PROD, postgres_major=RECORDED_MAJOR
    )
    text, status = report(violations, "prod")
    assert status == 1
    assert text.splitlines()[-1] == "prod: 1 violation(s), 1 mandatory, 0 advisory (27 rules)"


def test_depot_check_passes_on_the_shipped_prod_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--stack", "prod"]) == 0
    assert "prod: 0 violation(s)" in capsys.readouterr().out


def test_a_stack_edit_that_breaks_a_rule_fails_the_check() -> None:
    recording = run_stack("prod", {"depot:restart": "no", "depot:publish": {"ports": {}}})
    settings = load_settings("prod", stack_config("prod", {"depot:restart": "no"}))
    found = {
        v.rule.id
        for v in check_plan(
            plan_from(recording), settings.policy, postgres_major=settings.data.postgres_major
        )
    }
    assert found == {"restart"}


# --- CrossGuard -----------------------------------------------------------------------------


def _wire(value: Any) -> Any:
    """A recorded input as the engine marshals it for an analyzer: a secret in its signature
    object (pulumi-policy's own serialiser writes it), an unknown as its sentinel string."""
    if isinstance(value, Secret):
        return serialize_properties({"v": policy_secret.Secret(_wire(value.value))})["v"]
    if isinstance(value, Unknown):
        return UNKNOWN_STRING_VALUE
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value


def _analyze_stack_request(
    recording: Recording, edits: dict[str, dict[str, Any]] | None = None
) -> analyzer_pb2.AnalyzeStackRequest:
    """The ``AnalyzeStackRequest`` the engine sends the pack for ``recording``: each resource's
    inputs as a protobuf Struct (so every number a double), parent and dependencies by URN."""
    resources = []
    for registration in recording.registrations:
        properties = struct_pb2.Struct()
        properties.update(
            _wire({**registration.inputs, **(edits or {}).get(registration.name, {})})
        )
        resources.append(
            analyzer_pb2.AnalyzerResource(
                type=registration.type,
                properties=properties,
                urn=registration.urn,
                name=registration.name,
                options=analyzer_pb2.AnalyzerResourceOptions(
                    protect=registration.protect,
                    deleteBeforeReplace=registration.delete_before_replace,
                    deleteBeforeReplaceDefined=True,
                ),
                parent=registration.parent,
                dependencies=registration.dependencies,
                propertyDependencies={
                    key: analyzer_pb2.AnalyzerPropertyDependencies(urns=urns)
                    for key, urns in registration.property_dependencies.items()
                },
            )
        )
    return analyzer_pb2.AnalyzeStackRequest(resources=resources)


def _crossguard(
    request: analyzer_pb2.AnalyzeStackRequest, production: bool = True
) -> list[tuple[str, str]]:
    """What the pack reports for ``request``, run through pulumi-policy's own analyzer server:
    configured as the engine configures it, the request deserialised as it deserialises one."""
    pack: list[Policy] = [*policies()]
    server = _PolicyAnalyzerServicer(
        "depot-guardrails", "0.0.1", pack, PolicyEnforcementLevel.MANDATORY
    )
    properties = struct_pb2.Struct()
    properties.update({"production": production})
    config = {
        policy.name: analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.MANDATORY, properties=properties
        )
        for policy in pack
    }
    server.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=config), None)  # type: ignore[no-untyped-call]
    response = server.AnalyzeStack(request, None)  # type: ignore[no-untyped-call]
    return [
        # A diagnostic's message is the policy's description, a newline, then what it reported.
        (d.policyName, f"{d.urn} {d.message.split(chr(10), 1)[-1]}")
        for d in response.diagnostics
    ]


def test_crossguard_pack_passes_the_shipped_prod_stack(shipped: dict[str, Recording]) -> None:
    recording = shipped["prod"]
    assert _crossguard(_analyze_stack_request(recording)) == []


def test_crossguard_pack_reports_a_violation_against_its_resource(
    shipped: dict[str, Recording],
) -> None:
    recording = shipped["prod"]
    edits = {"console-container": {"privileged": True}}
    [(policy, line)] = _crossguard(_analyze_stack_request(recording, edits))
    assert policy == "isolation"
    assert line.endswith(
        "::console-container runs privileged — fix: remove privileged / host "
        "modes, and mount only the service's own data"
    )


def test_crossguard_numbers_arrive_as_doubles_and_read_as_whole_numbers(
    shipped: dict[str, Recording],
) -> None:
    edits = {"grafana-container": {"ports": [{"internal": 3000, "external": 3000, "ip": "::"}]}}
    [(policy, line)] = _crossguard(_analyze_stack_request(shipped["prod"], edits))
    assert policy == "published-ports"
    assert "::grafana-container publishes 3000 on every interface (::) without a recorded" in line


def test_crossguard_runs_every_policy_on_a_preview_with_values_not_yet_known(
    shipped: dict[str, Recording],
) -> None:
    # In a preview a container's image ID is not known until its image is pulled; the pack
    # still checks everything else about it, rather than giving up on the resource.
    unknown = {
        f"{service}-container": {"image": Unknown(), "labels": [Unknown()]}
        for service in ("discovery", "postgres", "console")
    }
    assert _crossguard(_analyze_stack_request(shipped["prod"], unknown)) == []
    privileged = {**unknown, "console-container": {"image": Unknown(), "privileged": True}}
    [(policy, _)] = _crossguard(_analyze_stack_request(shipped["prod"], privileged))
    assert policy == "isolation"


def test_crossguard_sees_the_pack_config_production_flag(shipped: dict[str, Recording]) -> None:
    edits = {"console-container": {"memory": 0}}
    [(policy, line)] = _crossguard(_analyze_stack_request(shipped["prod"], edits))
    assert (policy, line.split(" ", 1)[1].split(" — ")[0]) == ("limits", "has no memory limit")
    assert _crossguard(_analyze_stack_request(shipped["prod"], edits), production=False) == []


def _policy_pack_calls(source: str) -> list[ast.Call]:
    """Every call that builds a ``PolicyPack``: by its name, an alias, or through its module."""
    tree = ast.parse(source)
    names = {"PolicyPack"} | {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name == "PolicyPack" and alias.asname
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in names)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "PolicyPack")
        )
    ]


@pytest.mark.parametrize(
    "source",
    [
        "from pulumi_policy import PolicyPack\nPolicyPack(name='x')",
        "import pulumi_policy\npulumi_policy.PolicyPack(name='x')",
        "import pulumi_policy as pp\npp.PolicyPack(name='x')",
        "from pulumi_policy import PolicyPack as Pack\nPack(name='x')",
    ],
)
def test_the_policy_pack_finder_sees_every_spelling(source: str) -> None:
    assert len(_policy_pack_calls(source)) == 1


def test_only_the_packs_entry_point_builds_a_policy_pack() -> None:
    entry = PROJECT_DIR / "policy" / "__main__.py"
    sources = [
        *(PROJECT_DIR / "depot").rglob("*.py"),
        *(PROJECT_DIR / "scripts").rglob("*.py"),
        entry,
    ]
    assert len(sources) > 10
    for path in sources:
        assert len(_policy_pack_calls(path.read_text())) == (1 if path == entry else 0), path


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
        ({"depot:restart": "on-failure"}, "restart"),  # without a limit
        ({"depot:data": {"protect": False, "postgresMajor": 17}}, "data-volume"),
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
    settings = load_settings("prod", config)
    violations = check_plan(
        plan_from(recording), settings.policy, postgres_major=settings.data.postgres_major
    )
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
    plan = plan_from(record(deploy, stack="prod", config=config))
    violations = check_plan(plan, PROD, postgres_major=RECORDED_MAJOR)
    assert sorted(str(v).split(" — ")[0].split("] ")[1] for v in violations) == [
        "has no CPU limit",
        "has no memory limit",
    ]
