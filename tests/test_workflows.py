"""The guarantees the CI workflows give, read from their YAML: removing one fails here.

actionlint and zizmor (``make workflows``) check that the files are valid and free of known
weaknesses; these tests pin what this project adds: who may run code with the state
credentials, and what stands between a merge and prod.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_DIR

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"
STATE_CREDENTIALS = ("secrets.PULUMI_CONFIG_PASSPHRASE", "secrets.PULUMI_ACCESS_TOKEN")


def _workflow(name: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean true.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict)
    return triggers


def _jobs(name: str) -> dict[str, dict[str, Any]]:
    jobs = _workflow(name)["jobs"]
    assert isinstance(jobs, dict)
    return jobs


def _environment(job: dict[str, Any]) -> str | None:
    environment = job.get("environment")
    if isinstance(environment, dict):
        return str(environment["name"])
    return None if environment is None else str(environment)


def _uses_state_credentials(job: dict[str, Any]) -> bool:
    text = yaml.safe_dump(job)
    return any(credential in text for credential in STATE_CREDENTIALS)


def _step_index(steps: list[dict[str, Any]], needle: str) -> int:
    matches = [i for i, step in enumerate(steps) if needle in str(step.get("run", ""))]
    assert len(matches) == 1, f"expected one step running {needle!r}, found {len(matches)}"
    return matches[0]


def test_pull_requests_never_run_with_the_base_repositorys_secrets_for_a_fork() -> None:
    # pull_request_target would run with the base repository's secrets and token for any fork.
    assert set(_triggers(_workflow("pull-request.yml"))) == {"pull_request"}


def test_the_preview_job_is_the_only_pull_request_job_with_state_credentials() -> None:
    with_credentials = [
        name for name, job in _jobs("pull-request.yml").items() if _uses_state_credentials(job)
    ]
    assert with_credentials == ["pulumi-preview"]


def test_the_preview_runs_only_for_branches_of_this_repository() -> None:
    condition = " ".join(str(_jobs("pull-request.yml")["pulumi-preview"]["if"]).split())
    assert SAME_REPOSITORY in condition
    assert "||" not in condition  # a conjunction of conditions: no way around this one


def test_the_preview_waits_in_a_protected_environment() -> None:
    assert _environment(_jobs("pull-request.yml")["pulumi-preview"]) == "preview"


def test_the_pr_comment_is_edited_only_under_the_tokens_own_login() -> None:
    steps = _jobs("pull-request.yml")["infrastructure-diff"]["steps"]
    step = steps[_step_index(steps, "scripts/pr-comment.sh")]
    assert step["env"]["COMMENT_AUTHOR"] == "github-actions[bot]"
    assert step["run"].split()[-1] == '"$COMMENT_AUTHOR"'


@pytest.mark.parametrize(("job", "environment"), [("prod", "production"), ("dev", "development")])
def test_deploys_wait_in_their_environment(job: str, environment: str) -> None:
    assert _environment(_jobs("deploy.yml")[job]) == environment


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_a_deploy_checks_the_policy_after_the_digests_are_written_and_before_up(
    stack: str,
) -> None:
    steps = _jobs("deploy.yml")[stack]["steps"]
    digests = _step_index(steps, f"scripts/use-images.sh images.txt {stack}")
    check = _step_index(steps, f"depot check --stack {stack}")
    up = _step_index(steps, "pulumi up")
    assert digests < check < up
    command = " ".join(str(steps[up]["run"]).split())
    assert f"--stack {stack}" in command
    assert f"--policy-pack policy --policy-pack-config policy/config.{stack}.json" in command


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_no_deploy_step_runs_up_around_the_policy_pack(stack: str) -> None:
    for step in _jobs("deploy.yml")[stack]["steps"]:
        if str(step.get("uses", "")).startswith("pulumi/actions@"):
            assert "command" not in step.get("with", {}), "pulumi/actions only installs the CLI"


def test_the_policy_configs_the_deploys_name_exist() -> None:
    for stack in ("prod", "dev"):
        assert (PROJECT_DIR / "policy" / f"config.{stack}.json").is_file()


def test_the_drift_check_runs_on_a_schedule_and_never_for_a_pull_request() -> None:
    triggers = _triggers(_workflow("drift.yml"))
    assert set(triggers) == {"schedule", "workflow_dispatch"}


def test_the_drift_preview_refreshes_and_expects_no_changes_with_read_only_permissions() -> None:
    jobs = _jobs("drift.yml")
    preview = jobs["preview"]
    assert preview["permissions"] == {"contents": "read"}
    assert _environment(preview) == "drift"
    steps = preview["steps"]
    command = str(steps[_step_index(steps, "pulumi preview")]["run"])
    assert "--refresh" in command
    assert "--expect-no-changes" in command
    runs = [str(step.get("run", "")) for job in jobs.values() for step in job["steps"]]
    assert not [run for run in runs if run.lstrip().startswith("pulumi up")]


def test_only_the_issue_job_may_write_issues_and_it_holds_no_state_credentials() -> None:
    jobs = _jobs("drift.yml")
    assert _workflow("drift.yml")["permissions"] == {}
    writers = [name for name, job in jobs.items() if "issues" in job.get("permissions", {})]
    assert writers == ["issue"]
    assert jobs["issue"]["permissions"] == {"issues": "write"}
    assert not _uses_state_credentials(jobs["issue"])
    script = str(jobs["issue"]["steps"][-1]["run"])
    # One issue: an open one is edited, a new one only when none is open, closed when clean.
    assert "gh issue list --label drift --state open" in script
    assert "gh issue edit" in script
    assert "gh issue close" in script
