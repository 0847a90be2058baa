"""What ``depot diff`` must show a reviewer: changed secrets (never their values), data at risk
from a postgres major-version change, and routine commit-tag moves folded into one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import depot.cli
import depot.review.plan
from depot.cli import FINGERPRINT_KEY_VARIABLE, plan_at_ref
from depot.config.loader import load_settings
from depot.policy.check import check_plan
from depot.resource_types import COMMAND, CONTAINER
from depot.review.diff import DATABASE_PASSWORD_NOTE, PlanDiff, diff_plans, rotation_note
from depot.review.plan import SECRET, Plan, new_fingerprint_key, plan_from, plan_stack
from depot.review.postgres import postgres_major
from depot.review.render import diff_markdown, diff_text, dumps
from tests.conftest import as_read, edited, run_depot, run_stack, stack_config
from tests.test_review import _project_copy, main_in_project

CANARY = "diff-canary-Zq81v"
OTHER_CANARY = "diff-canary-Wm47k"
CONTAINER_KEY = f"{CONTAINER}::postgres-container"
POSTGRES_18 = "postgres:18.1-alpine@sha256:" + "b" * 64
POSTGRES_17_4 = "postgres:17.4-alpine@sha256:" + "c" * 64


def outputs(diff: PlanDiff, head: Plan | None = None) -> list[str]:
    """Every format ``depot diff`` prints."""
    return [diff_text(diff), as_read(diff_markdown(diff, head)), dumps(diff.to_json())]


def keyed_plan(key: bytes, secrets: dict[str, str] | None = None, **overrides: Any) -> Plan:
    """Prod's plan with config ``overrides`` and secret values, fingerprinted with ``key``."""
    return plan_from(run_stack("prod", overrides or None, secrets=secrets), fingerprint_key=key)


def password(value: str) -> dict[str, str]:
    return {"depot:databasePassword": value}


# --- secrets ------------------------------------------------------------------------------


def test_a_changed_secret_shows_as_changed_and_never_its_value() -> None:
    key = new_fingerprint_key()
    base = keyed_plan(key, password(CANARY))
    head = keyed_plan(key, password(OTHER_CANARY))
    diff = diff_plans(base, head, base_label="a", head_label="b")

    changed = {(c.after.name, p.path) for c, p in diff.secret_changes}
    assert changed == {
        ("postgres-container", "uploads[0].content"),
        ("backup-container", "uploads[0].content"),
        ("dispatch-container", "envs"),
        ("database-password-rotation", "stdin"),
        ("database-password-rotation", "triggers[0]"),
    }
    text, markdown, document = outputs(diff, head)
    assert "    uploads[0].content: [secret] changed  (replaces)" in text
    assert "    envs: [secret] changed  (replaces)" in text
    assert "**Secrets changed**" in markdown
    assert {(s["resource"], s["path"]) for s in json.loads(document)["secretChanges"]} == {
        (CONTAINER_KEY, "uploads[0].content"),
        (f"{CONTAINER}::backup-container", "uploads[0].content"),
        (f"{CONTAINER}::dispatch-container", "envs"),
        (f"{COMMAND}::database-password-rotation", "stdin"),
        (f"{COMMAND}::database-password-rotation", "triggers[0]"),
    }
    for output in (text, markdown, document):
        assert CANARY not in output
        assert OTHER_CANARY not in output
        assert "[secret:" not in output, "a fingerprint left the diff"


def test_no_fingerprint_leaves_a_diff_with_added_or_removed_resources() -> None:
    plan = keyed_plan(new_fingerprint_key(), password(CANARY))
    nothing = Plan("prod", ())
    for diff in (
        diff_plans(nothing, plan, base_label="a", head_label="b"),
        diff_plans(plan, nothing, base_label="a", head_label="b"),
    ):
        for output in outputs(diff, plan):
            assert "[secret:" not in output
            assert CANARY not in output
        assert '"[secret]"' in dumps(diff.to_json())


def test_changing_the_database_password_says_the_program_rotates_it() -> None:
    key = new_fingerprint_key()
    diff = diff_plans(
        keyed_plan(key, password(CANARY)),
        keyed_plan(key, password(OTHER_CANARY)),
        base_label="a",
        head_label="b",
    )
    # The role in the volume is altered by the program: no manual step is asked for.
    assert rotation_note("database-password-rotation") in diff.notes
    assert DATABASE_PASSWORD_NOTE not in diff.notes
    for output in outputs(diff):
        assert "rotates the database password: " in output
        assert "\\password postgres" not in output


def test_an_unchanged_secret_is_not_reported() -> None:
    key = new_fingerprint_key()
    base = keyed_plan(key, password(CANARY))
    # Another run of the same config (not a copy of the first: see run_stack).
    again = plan_from(run_stack("prod", secrets=password(CANARY), fresh=True), fingerprint_key=key)
    assert diff_plans(base, again, base_label="a", head_label="b").empty
    # Beside another change, the secret still does not show.
    head = keyed_plan(key, password(CANARY), **{"depot:restart": "unless-stopped"})
    diff = diff_plans(base, head, base_label="a", head_label="b")
    assert diff.changed
    assert diff.secret_changes == ()
    assert diff.notes == ()
    assert all("[secret] changed" not in output for output in outputs(diff, head))


def test_fingerprints_compare_within_one_diff_and_not_across_two() -> None:
    recording = run_stack("prod", secrets=password(CANARY))
    first, second = new_fingerprint_key(), new_fingerprint_key()

    def marker(plan: Plan) -> str:
        postgres = plan.by_key()[CONTAINER_KEY]
        content: str = postgres.inputs["uploads"][0]["content"]
        return content

    assert marker(plan_from(recording, fingerprint_key=first)).startswith("[secret:")
    assert marker(plan_from(recording, fingerprint_key=first)) == marker(
        plan_from(recording, fingerprint_key=first)
    )
    assert marker(plan_from(recording, fingerprint_key=first)) != marker(
        plan_from(recording, fingerprint_key=second)
    )
    assert marker(plan_from(recording)) == SECRET  # a plain plan carries no fingerprint


def test_a_plain_plan_shows_secrets_without_fingerprints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process: `depot plan` run as a program is proved by every `diff --base` (its base
    # side) and by the malformed-key refusal below; this test is about what it prints.
    monkeypatch.delenv(FINGERPRINT_KEY_VARIABLE, raising=False)
    status = depot.cli.main(["plan", "--stack", "prod", "--format", "json"])
    stdout, stderr = capsys.readouterr()
    assert status == 0, stderr
    assert '"[secret]"' in stdout
    assert "[secret:" not in stdout


def test_each_diff_draws_its_own_key_for_both_sides(monkeypatch: pytest.MonkeyPatch) -> None:
    keys: list[bytes | None] = []
    real_plan_stack = plan_stack

    def spy(stack: str, profiles: Sequence[str], *, fingerprint_key: bytes | None) -> Plan:
        keys.append(fingerprint_key)
        return real_plan_stack(stack, profiles, fingerprint_key=fingerprint_key)

    monkeypatch.setattr(depot.review.plan, "plan_stack", spy)
    assert depot.cli.main(["diff", "--stacks", "dev", "dev"]) == 0
    assert depot.cli.main(["diff", "--stacks", "dev", "dev"]) == 0
    first_base, first_head, second_base, second_head = keys
    assert first_base is not None
    assert first_base == first_head, "both sides of one diff share a key"
    assert second_base == second_head
    assert first_base != second_base, "fingerprints must not compare across two diffs"


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    env = {**os.environ, FINGERPRINT_KEY_VARIABLE: CANARY}
    completed = run_depot("plan", "--stack", "dev", env=env)
    assert completed.returncode == 2
    assert FINGERPRINT_KEY_VARIABLE in completed.stderr
    assert CANARY not in completed.stdout + completed.stderr


def test_the_base_gets_the_key_through_its_environment_not_its_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(command: list[str], **kwargs: Any) -> Any:
        if command[0] == sys.executable:
            seen.append((command, kwargs["env"]))
        return real_run(command, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)  # the module depot.cli calls it through
    key = new_fingerprint_key()
    base = plan_at_ref("HEAD", "prod", [], fingerprint_key=key)
    [(command, env)] = seen
    assert env[FINGERPRINT_KEY_VARIABLE] == key.hex()
    assert key.hex() not in " ".join(command)
    content = base.by_key()[CONTAINER_KEY].inputs["uploads"][0]["content"]
    assert content.startswith("[secret:"), "the base must fingerprint with the key it was given"


def test_a_base_planned_without_fingerprints_says_secrets_were_not_compared() -> None:
    recording = run_stack("prod", secrets=password(CANARY))
    head = plan_from(run_stack("prod", secrets=password(OTHER_CANARY)), fingerprint_key=b"k" * 32)
    diff = diff_plans(plan_from(recording), head, base_label="a", head_label="b")
    assert diff.empty, "a bare [secret] cannot be compared, so it is no change"
    assert not diff.secrets_compared
    assert any("not compared" in note for note in diff.notes)


def _git(project: Path, *args: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *identity, *args], cwd=project, check=True)


def _diff_at_head(project: Path, fmt: str) -> Any:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return run_depot(
        "diff", "--base", "HEAD", "--stack", "prod", "--format", fmt, env=env, cwd=project
    )


FORMATS = ("text", "markdown")


def test_switching_to_a_given_database_password_shows_what_it_changes(tmp_path: Path) -> None:
    # The case: generated (RandomPassword) → given as secret config, in a stack file.
    # HEAD~1 ships the generated password, HEAD gives one, the working tree gives another.
    project = _project_copy(tmp_path)
    stack_file = project / "Pulumi.prod.yaml"
    shipped = stack_file.read_text()
    stack_file.write_text(shipped + f"  depot:databasePassword:\n    secure: v1:{CANARY}:AAAA\n")
    _git(project, "commit", "-qam", "given password")
    stack_file.write_text(shipped + f"  depot:databasePassword:\n    secure: v1:{CANARY}:BBBB\n")
    # All three diffs in one interpreter (each still plans its base with `python -m depot`);
    # json: the same diff, rendered in-process above. `depot diff --base` as a process of its
    # own: test_a_pull_request_that_only_moves_the_commit_exits_1_with_one_line and the others
    # below, and tests/test_review.py::test_diff_against_a_git_ref_plans_the_base_from_git; a
    # secure value read from a stack file by `depot plan` as a process of its own:
    # tests/test_review.py::test_secure_values_in_a_stack_file_never_fail_or_print.
    switched = (["diff", "--base", "HEAD~1", "--stack", "prod", "--format", f] for f in FORMATS)
    runs = main_in_project(
        project, *switched, ["diff", "--base", "HEAD", "--stack", "prod", "--format", "text"]
    )
    assert len(runs) == len(FORMATS) + 1
    printed = {}
    for fmt, (status, raw, stderr) in zip(FORMATS, runs, strict=False):
        assert status == 1, stderr
        stdout = as_read(raw) if fmt == "markdown" else raw
        assert CANARY not in stdout + stderr
        assert "[secret:" not in stdout
        assert "database-password" in stdout  # the RandomPassword it replaces
        assert "uploads[0].content" in stdout
        assert "rotates the database password: " in stdout
        printed[fmt] = stdout
    text = printed["text"]
    assert "- random:index/randomPassword:RandomPassword database-password" in text
    assert "    envs: [secret] changed  (replaces)" in text

    # Another ciphertext for the same key is another secret, though neither can be decrypted.
    status, text, stderr = runs[-1]
    assert status == 1, stderr
    assert "    uploads[0].content: [secret] changed  (replaces)" in text
    assert CANARY not in text + stderr


# --- postgres major versions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "major"),
    [
        ("postgres:17.2-alpine", 17),
        (POSTGRES_18, 18),
        ("registry.example.com:5000/mirror/postgres:16.4", 16),
        ("postgis/postgis:17-3.5", 17),
        ("timescale/timescaledb:2.17.2-pg16", 16),
        ("postgres@sha256:" + "a" * 64, None),
        ("registry.example.com:5000/postgres", None),
        ("postgres:latest", None),
    ],
)
def test_the_major_version_is_read_from_the_tag(reference: str, major: int | None) -> None:
    assert postgres_major(reference) == major


def _postgres(reference: str) -> Plan:
    return plan_from(run_stack("prod", {"depot:images": _images(reference)}))


def _images(postgres: str) -> dict[str, str]:
    images: dict[str, str] = {"postgres": postgres}
    for name, reference in load_settings("prod", stack_config("prod")).images.items():
        images.setdefault(name, reference)
    return images


def test_a_postgres_major_change_is_data_at_risk_in_every_format() -> None:
    base, head = plan_from(run_stack("prod")), _postgres(POSTGRES_18)
    diff = diff_plans(base, head, base_label="a", head_label="b")
    assert CONTAINER_KEY in diff.data_risks
    text, markdown, document = outputs(diff, head)
    assert "~ docker:index/container:Container postgres-container [replace] [DATA]" in text
    assert "! data at risk: postgres-container: postgres 17 → 18 on postgres-data" in text
    assert "**Data at risk:** `postgres-container`: postgres 17 → 18" in as_read(markdown)
    parsed = json.loads(document)
    assert CONTAINER_KEY in parsed["dataRisks"]
    [reason] = [r for r in parsed["dataRiskReasons"] if r["resource"] == CONTAINER_KEY]
    assert "cannot open a data directory initialised by 17" in reason["reason"]


def test_a_postgres_minor_update_is_no_data_risk() -> None:
    diff = diff_plans(
        plan_from(run_stack("prod")), _postgres(POSTGRES_17_4), base_label="a", head_label="b"
    )
    assert diff.changed
    assert diff.data_risks == ()


def test_a_postgres_image_whose_tag_names_no_major_is_data_at_risk() -> None:
    head = _postgres("postgres@sha256:" + "d" * 64)
    diff = diff_plans(plan_from(run_stack("prod")), head, base_label="a", head_label="b")
    [risk] = diff.risks
    assert risk.key == CONTAINER_KEY
    assert "do not say whether postgres' major version changes" in risk.reason


def _check(overrides: dict[str, Any], stack: str = "prod") -> list[str]:
    overrides = {**overrides, "depot:release": {"commit": "abc1234"}}
    settings = load_settings(stack, stack_config(stack, overrides))
    plan = plan_from(run_stack(stack, overrides))
    found = check_plan(plan, settings.policy, postgres_major=settings.data.postgres_major)
    return [str(v) for v in found if v.rule.id == "postgres-major"]


def test_production_refuses_postgres_of_another_major_than_the_volume_holds() -> None:
    [line] = _check({"depot:images": _images(POSTGRES_18)})
    assert line.startswith("mandatory: depot-postgres")
    assert "runs postgres 18 on postgres-data, which holds postgres 17 data" in line


def test_production_accepts_the_new_major_once_the_stack_records_it() -> None:
    upgraded = {"depot:images": _images(POSTGRES_18), "depot:data": {"postgresMajor": 18}}
    assert _check(upgraded) == []
    assert _check({"depot:images": _images(POSTGRES_17_4)}) == []


def test_production_must_record_which_major_the_volume_holds() -> None:
    [line] = _check({"depot:data": {"protect": True}})
    assert "does not record which postgres major version it holds" in line
    assert _check({"depot:data": {"protect": False}}, stack="dev") == []


def test_the_shipped_stacks_record_the_major_their_postgres_runs() -> None:
    for stack in ("dev", "prod"):
        settings = load_settings(stack, stack_config(stack))
        [postgres] = [
            r
            for r in run_stack(stack).of_type("docker:index/remoteImage:RemoteImage")
            if r.name == "postgres-image"
        ]
        assert settings.data.postgres_major == postgres_major(postgres.inputs["name"])


# --- routine changes --------------------------------------------------------------------------


ROUTINE_KEY = new_fingerprint_key()


def _released(commit: str, **overrides: Any) -> Plan:
    recording = run_stack("prod", {"depot:release": {"commit": commit}, **overrides})
    return plan_from(recording, fingerprint_key=ROUTINE_KEY)


def test_a_diff_of_moved_commit_tags_alone_is_one_line() -> None:
    diff = diff_plans(_released("a" * 40), _released("b" * 40), base_label="a", head_label="b")
    assert diff.only_routine
    text, markdown, document = outputs(diff)
    assert text == (
        "a → b: only the images' commit tags moved: "
        "backup, discovery, dispatch, rtk-base, splat-worker\n"
    )
    assert "Routine: only the images' commit tags moved" in markdown
    assert "| added |" not in markdown
    assert json.loads(document)["onlyCommitTagsMoved"] is True
    assert len(json.loads(document)["changed"]) == 5  # still there for tools


def test_moved_commit_tags_beside_real_changes_are_folded_and_come_last() -> None:
    base = _released("a" * 40)
    head = _released("b" * 40, **{"depot:logLevel": "warn", "depot:images": _images(POSTGRES_18)})
    diff = diff_plans(base, head, base_label="a", head_label="b")
    assert not diff.only_routine
    text = diff_text(diff)
    # The backup image is built FROM the stack's postgres: it rebuilds for real, so its build
    # shows every change, its tag too; the other builds only moved their tag.
    tags = [line.strip() for line in text.splitlines() if line.strip().startswith("tags:")]
    assert len(tags) == 1
    assert "depot-backup:" in tags[0]
    assert '    buildArgs.POSTGRES_IMAGE: "postgres:17.2-alpine' in text
    assert text.splitlines()[-1] == (
        "~ only the images' commit tags moved: discovery, dispatch, rtk-base, splat-worker"
    )
    markdown = diff_markdown(diff).splitlines()
    leads = [line for line in markdown if line.startswith("- ")]
    assert leads[0].startswith("- **Data at risk:**")
    assert leads[1].startswith("- **Recreated (downtime):**")
    assert leads[-1].startswith("- Routine: only the images' commit tags moved")
    assert markdown.index(leads[-1]) < next(
        i for i, line in enumerate(markdown) if line.startswith("| added |")
    )


def test_a_tag_that_is_not_a_commit_is_not_routine() -> None:
    base = _released("a" * 40)
    build = "discovery-image-build"
    tags = base.by_key()[f"docker-build:index:Image::{build}"].inputs["tags"]
    moved = edited(base, build, {"tags": [tags[0].rsplit(":", 1)[0] + ":1.5.0"]})
    diff = diff_plans(base, moved, base_label="a", head_label="b")
    assert diff.routine == ()
    assert "tags:" in diff_text(diff)


def test_a_pull_request_that_only_moves_the_commit_exits_1_with_one_line(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    (project / "NOTES.md").write_text("a change that touches no infrastructure\n")
    _git(project, "add", "NOTES.md")
    _git(project, "commit", "-qm", "docs")
    env = {k: v for k, v in os.environ.items() if k != "DEPOT_RELEASE_COMMIT"}
    completed = run_depot(
        "diff", "--base", "HEAD~1", "--stack", "prod",
        env={**env, "PYTHONPATH": str(project)}, cwd=project,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    assert completed.stdout.splitlines() == [
        "prod@HEAD~1 → prod (working tree): only the images' commit tags moved: "
        "backup, discovery, dispatch, rtk-base, splat-worker"
    ]


# --- a base the diff cannot plan as it is -----------------------------------------------------


def test_a_base_that_holds_symbolic_links_in_and_out_of_the_tree_is_planned(
    tmp_path: Path,
) -> None:
    # The case: a committed `console-dist -> ../console/dist` or `-> /etc/passwd` made
    # the base's extraction raise LinkOutsideDestinationError: a traceback, and exit 1.
    project = _project_copy(tmp_path)
    (project / "console-dist").symlink_to("../console/dist")
    (project / "passwd").symlink_to("/etc/passwd")
    _git(project, "add", "console-dist", "passwd")
    _git(project, "commit", "-qm", "links")
    stack_file = project / "Pulumi.prod.yaml"
    stack_file.write_text(stack_file.read_text().replace("restart: always", "restart: on-failure"))
    completed = _diff_at_head(project, "text")
    assert completed.returncode == 1, completed.stderr
    assert 'restart: "always" → "on-failure"' in completed.stdout
    assert completed.stderr == ""


def test_a_diff_that_fails_exits_2_with_one_line_never_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Exit 1 means "changes" to the PR workflow: a crash read that way posted an empty comment.
    def broken(*args: Any, **kwargs: Any) -> PlanDiff:
        raise ValueError(f"a message that quotes a value: {CANARY}")

    monkeypatch.setattr("depot.review.diff.diff_plans", broken)
    status = depot.cli.main(["diff", "--stacks", "dev", "dev"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err == (
        "depot diff: failed: ValueError at tests/test_diff_review.py:"
        f"{broken.__code__.co_firstlineno + 1} (a bug in depot: please report it)\n"
    )
    assert CANARY not in err


def test_a_base_whose_own_depot_crashes_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    main_module = project / "depot" / "__main__.py"
    main_module.write_text("raise RuntimeError('the base is broken')\n")
    _git(project, "commit", "-qam", "a base whose depot crashes")
    _git(project, "checkout", "-q", "HEAD~1", "--", "depot/__main__.py")
    completed = _diff_at_head(project, "markdown")
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == "depot diff: at HEAD: RuntimeError: the base is broken\n"


def test_a_ref_git_cannot_archive_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    # A commit whose tree object is missing: rev-parse finds the commit, archive cannot read it.
    tree = subprocess.run(
        ["git", "rev-parse", "HEAD^{tree}"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    (project / ".git" / "objects" / tree[:2] / tree[2:]).unlink()
    completed = _diff_at_head(project, "text")
    assert completed.returncode == 2
    assert completed.stderr.startswith("depot diff: git archive HEAD: ")
    assert len(completed.stderr.splitlines()) == 1
