"""What ``depot diff`` must never fold away, hide or claim: each test here killed a deliberate
bug (a mutant) that the rest of the unit tier let through.

Routine is *only* moved commit tags of the same image; data at risk reaches every format,
JSON's ``touchesData`` included; a secret that changes beside a visible value is said, and so
is the visible value; "nothing else changes" is said only where secrets were compared.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from depot.recording import UNKNOWN as RECORDED_UNKNOWN
from depot.recording import Recording, Secret
from depot.resource_types import BUILD, COMMAND, CONTAINER, VOLUME
from depot.review.diff import (
    DATABASE_PASSWORD_NOTE,
    SECRETS_NOT_COMPARED_NOTE,
    PlanDiff,
    diff_plans,
)
from depot.review.plan import (
    UNKNOWN,
    Plan,
    PlannedResource,
    new_fingerprint_key,
    plan_from,
    render,
)
from depot.review.postgres import postgres_major
from depot.review.render import diff_markdown, diff_text, dumps, plan_markdown, plan_text
from tests.conftest import PLAIN_OPTIONS, as_read, edited, run_stack
from tests.test_backup_policy import backup
from tests.test_diff_review import (
    CANARY,
    CONTAINER_KEY,
    OTHER_CANARY,
    POSTGRES_18,
    _images,
    _released,
    keyed_plan,
    password,
)

SHA_A, SHA_B = "a" * 40, "b" * 40
DATA_VOLUME_KEY = f"{VOLUME}::postgres-data"
BACKUP_KEY = f"{CONTAINER}::backup-container"
DISCOVERY_BUILD = "discovery-image-build"


def _diff(base: Plan, head: Plan) -> PlanDiff:
    return diff_plans(base, head, base_label="a", head_label="b")


def _formats(diff: PlanDiff) -> tuple[str, str, dict[str, Any]]:
    return diff_text(diff), as_read(diff_markdown(diff)), json.loads(dumps(diff.to_json()))


def _without(plan: Plan, name: str) -> Plan:
    return Plan(plan.stack, tuple(r for r in plan.resources if r.name != name))


def _one(type_: str, name: str, **inputs: Any) -> Plan:
    return Plan("prod", (PlannedResource(type_, name, None, inputs, PLAIN_OPTIONS),))


# --- routine is moved commit tags and nothing else ---------------------------------------------


def test_moved_tags_beside_a_removed_data_volume_are_not_one_routine_line() -> None:
    base, head = _released(SHA_A), _without(_released(SHA_B), "postgres-data")
    diff = _diff(base, head)
    assert not diff.only_routine
    text, markdown, document = _formats(diff)
    assert text.splitlines()[0] == "a → b: 0 to add, 5 to change (0 replaced), 1 to remove"
    assert "! data at risk: postgres-data: deleted from the stack (a guarded resource)" in text
    assert "- docker:index/volume:Volume postgres-data [DATA]" in text
    assert "- **Data at risk:** `postgres-data`: deleted from the stack" in markdown
    assert "nothing else changes" not in markdown
    assert document["onlyCommitTagsMoved"] is False
    assert document["dataRisks"] == [DATA_VOLUME_KEY]


def test_moved_tags_beside_an_added_resource_are_not_one_routine_line() -> None:
    extra = PlannedResource(VOLUME, "scratch", None, {}, PLAIN_OPTIONS)
    base = _released(SHA_A)
    head = _released(SHA_B)
    diff = _diff(base, Plan(head.stack, (*head.resources, extra)))
    assert not diff.only_routine
    assert "+ docker:index/volume:Volume scratch" in diff_text(diff)


def _tags_moved(before: list[Any], after: list[Any], type_: str = BUILD) -> PlanDiff:
    return _diff(
        _one(type_, DISCOVERY_BUILD, tags=before), _one(type_, DISCOVERY_BUILD, tags=after)
    )


def test_an_image_repository_swapped_under_a_commit_tag_is_shown() -> None:
    diff = _tags_moved(
        [f"registry.example.com/depot-discovery:{SHA_A}"],
        [f"evil.example.com/depot-discovery:{SHA_B}"],
    )
    assert diff.routine == ()
    text = diff_text(diff)
    assert "evil.example.com/depot-discovery" in text
    assert "only the images' commit tags moved" not in text


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ([f"r/d:{SHA_A}"], [f"r/d:{SHA_A}", f"r/d:{SHA_B}"]),  # a tag added
        ([f"r/d:{SHA_A}", "r/d:prod"], [f"r/d:{SHA_B}", "r/d:1.0"]),  # a named tag moved too
        ([f"r/d:{SHA_A}"], ["r/d:1.5.0"]),  # a version is no commit
        (["r/d:1.5.0"], [f"r/d:{SHA_B}"]),
        ([{"tag": f"r/d:{SHA_A}"}], [{"tag": f"r/d:{SHA_B}"}]),  # not tag strings
        ("r/d", "r/e"),  # not lists
    ],
)
def test_tags_that_did_more_than_move_a_commit_are_not_routine(before: Any, after: Any) -> None:
    assert _tags_moved(before, after).routine == ()


def test_only_a_builds_tags_are_routine() -> None:
    assert _tags_moved([f"r/d:{SHA_A}"], [f"r/d:{SHA_B}"]).only_routine
    assert _tags_moved([f"r/d:{SHA_A}", "r/d:prod"], [f"r/d:{SHA_B}", "r/d:prod"]).only_routine
    assert _tags_moved([f"r/d:{SHA_A}"], [f"r/d:{SHA_B}"], type_=CONTAINER).routine == ()
    moved_elsewhere = _diff(
        _one(BUILD, DISCOVERY_BUILD, cacheFrom=[f"r/d:{SHA_A}"]),
        _one(BUILD, DISCOVERY_BUILD, cacheFrom=[f"r/d:{SHA_B}"]),
    )
    assert moved_elsewhere.routine == ()


# --- a secret beside a visible change ----------------------------------------------------------


def _envs(*values: str) -> Plan:
    return _one(CONTAINER, "dispatch-container", envs=list(values))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("LOG=info", "[secret:1111]"), ("LOG=debug", "[secret:2222]")),
        (("LOG=info", "[secret:1111]"), ("LOG=info", "NEW=1", "[secret:2222]")),  # one added
    ],
)
def test_a_secret_and_a_visible_value_changed_together_are_both_shown(
    before: tuple[str, ...], after: tuple[str, ...]
) -> None:
    diff = _diff(_envs(*before), _envs(*after))
    [(change, prop)] = diff.secret_changes
    assert (change.after.name, prop.path, prop.only_secret) == ("dispatch-container", "envs", False)
    text, markdown, document = _formats(diff)
    was = json.dumps([v if not v.startswith("[secret") else "[secret]" for v in before])
    shown = json.dumps([v if not v.startswith("[secret") else "[secret]" for v in after])
    assert f"    envs: {was} → {shown}  (and a secret in it changed)" in text
    assert "! secret changed: dispatch-container envs" in text
    assert f"`{shown}` (and a secret in it changed)" in markdown
    assert "**Secrets changed** (values never shown): `dispatch-container` `envs`" in markdown
    [entry] = document["changed"][0]["changes"]
    assert (entry["after"], entry["secretChanged"]) == (json.loads(shown), True)
    for output in (text, markdown, json.dumps(document)):
        assert "1111" not in output
        assert "2222" not in output


def test_a_secret_only_added_beside_others_is_no_changed_secret() -> None:
    diff = _diff(_envs("[secret:1111]"), _envs("[secret:1111]", "[secret:2222]"))
    [change] = diff.changed
    assert [(p.path, p.secret) for p in change.changes] == [("envs", False)]


def test_a_secret_alone_changed_shows_only_that_it_changed() -> None:
    diff = _diff(_envs("LOG=info", "[secret:1111]"), _envs("LOG=info", "[secret:2222]"))
    text, markdown, _ = _formats(diff)
    assert "    envs[1]: [secret] changed  (replaces)" in text
    assert '| `envs[1]` | `"[secret]"` | `[secret] changed` | yes |' in markdown


# --- "nothing else changes" only where secrets were compared ---------------------------------


def _routine_with_secrets(compared: bool) -> PlanDiff:
    base = _released(SHA_A)
    if not compared:  # a base planned without fingerprints, as an older depot plans it
        base = plan_from(run_stack("prod", {"depot:release": {"commit": SHA_A}}))
    return _diff(base, _released(SHA_B))


def test_a_routine_diff_says_nothing_else_changes_only_when_secrets_were_compared() -> None:
    compared, uncompared = _routine_with_secrets(True), _routine_with_secrets(False)
    assert compared.only_routine
    assert uncompared.only_routine
    assert "; nothing else changes." in diff_markdown(compared)
    assert SECRETS_NOT_COMPARED_NOTE not in diff_markdown(compared)
    markdown = as_read(diff_markdown(uncompared))
    assert "nothing else changes" not in markdown
    assert f"- **Note:** {SECRETS_NOT_COMPARED_NOTE}" in markdown
    assert diff_text(uncompared).splitlines()[1] == f"! note: {SECRETS_NOT_COMPARED_NOTE}"
    assert json.loads(dumps(uncompared.to_json()))["secretsCompared"] is False


# --- touchesData in JSON: every kind of data risk ---------------------------------------------


def _touches_data(diff: PlanDiff) -> dict[str, bool]:
    return {c["name"]: c["touchesData"] for c in json.loads(dumps(diff.to_json()))["changed"]}


def test_json_marks_a_postgres_major_change_as_touching_data() -> None:
    base = plan_from(run_stack("prod"))
    head = plan_from(run_stack("prod", {"depot:images": _images(POSTGRES_18)}))
    touches = _touches_data(_diff(base, head))
    assert [name for name, touched in touches.items() if touched] == ["postgres-container"]
    assert len(touches) > 1  # the backup image, built FROM postgres, changes too: no data
    assert CONTAINER_KEY in _diff(base, head).data_risks


def test_json_marks_weakened_backups_as_touching_data() -> None:
    base = plan_from(run_stack("prod"))
    head = plan_from(run_stack("prod", backup(recipients=[], targets=[])))
    diff = _diff(base, head)
    assert _touches_data(diff)["backup-container"] is True
    assert diff.data_risks == (BACKUP_KEY,)


def test_a_replaced_guarded_resource_touches_data_and_an_updated_one_does_not() -> None:
    volume = PlannedResource(VOLUME, "postgres-data", None, {"driver": "local"}, PLAIN_OPTIONS)
    relabelled = PlannedResource(VOLUME, "postgres-data", None, {"driver": "other"}, PLAIN_OPTIONS)
    replaced = _diff(Plan("prod", (volume,)), Plan("prod", (relabelled,)))
    assert replaced.changed[0].touches_data
    assert _touches_data(replaced) == {"postgres-data": True}
    protected = {**PLAIN_OPTIONS, "protect": True}
    options_only = PlannedResource(VOLUME, "postgres-data", None, {"driver": "local"}, protected)
    updated = _diff(Plan("prod", (volume,)), Plan("prod", (options_only,)))
    assert not updated.changed[0].touches_data
    assert _touches_data(updated) == {"postgres-data": False}


# --- a tag that names no version is no version ------------------------------------------------


@pytest.mark.parametrize("reference", ["postgres:alpine", "postgres:alpine3.20", "postgres:pgdata"])
def test_a_tag_without_a_leading_version_names_no_major(reference: str) -> None:
    assert postgres_major(reference) is None


@pytest.mark.parametrize(
    "new", ["postgres:latest", "postgres@sha256:" + "d" * 64, "postgres:17.2-alpine"]
)
def test_from_an_unversioned_tag_to_any_other_is_data_at_risk(new: str) -> None:
    base = edited(plan_from(run_stack("prod")), "postgres-image", {"name": "postgres:alpine"})
    head = edited(base, "postgres-image", {"name": new})
    diff = _diff(base, head)
    [risk] = diff.postgres_risks
    assert risk.key == CONTAINER_KEY
    assert f"its image changes from postgres:alpine to {new}" in risk.reason


def test_the_same_unversioned_image_on_both_sides_is_no_risk() -> None:
    base = edited(plan_from(run_stack("prod")), "postgres-image", {"name": "postgres:alpine"})
    head = edited(base, "postgres-container", {"restart": "on-failure"})
    assert _diff(base, head).postgres_risks == ()


# --- what each note and flag says, word for word ----------------------------------------------


def _password_changed(*, rotation: bool) -> PlanDiff:
    key = new_fingerprint_key()
    base, head = keyed_plan(key, password(CANARY)), keyed_plan(key, password(OTHER_CANARY))
    if not rotation:  # as a plan without the rotation (an older depot) shows the change
        base, head = (
            Plan(p.stack, tuple(r for r in p.resources if r.type != COMMAND)) for p in (base, head)
        )
    return _diff(base, head)


def test_a_password_changed_without_its_rotation_asks_for_the_manual_step() -> None:
    notes = _password_changed(rotation=False).notes
    assert notes == (DATABASE_PASSWORD_NOTE,)
    assert "\\password postgres" in notes[0]


def test_a_rotated_password_says_what_the_program_does() -> None:
    notes = _password_changed(rotation=True).notes
    assert notes[0].startswith(
        "rotates the database password: postgres reads its password file only when it "
        "initialises an empty data directory, so once postgres is up the program alters the role"
    )
    assert DATABASE_PASSWORD_NOTE not in notes


def test_json_says_which_changes_are_routine() -> None:
    base, head = _released(SHA_A), _without(_released(SHA_B), "postgres-data")
    document = json.loads(dumps(_diff(base, head).to_json()))
    assert {c["name"]: c["routine"] for c in document["changed"]} == dict.fromkeys(
        ["backup-image-build", "discovery-image-build", "dispatch-image-build",
         "rtk-base-image-build", "splat-worker-image-build"], True,
    )  # fmt: skip
    assert document["commitTagsMoved"] == ["backup", "discovery", "dispatch", "rtk-base",
                                           "splat-worker"]  # fmt: skip
    changed = _diff(base, edited(head, "postgres-container", {"restart": "no"}))
    routine = {c["name"]: c["routine"] for c in json.loads(dumps(changed.to_json()))["changed"]}
    assert routine["postgres-container"] is False


@pytest.mark.parametrize("option", ["protect", "retainOnDelete"])
def test_deleting_a_protected_or_retained_resource_is_data_at_risk(option: str) -> None:
    kept = PlannedResource(CONTAINER, "archive", None, {}, {**PLAIN_OPTIONS, option: True})
    plain = PlannedResource(CONTAINER, "scratch", None, {}, PLAIN_OPTIONS)
    diff = _diff(Plan("prod", (kept, plain)), Plan("prod", ()))
    assert diff.data_risks == (f"{CONTAINER}::archive",)
    assert "- docker:index/container:Container archive [DATA]" in diff_text(diff)


def test_a_head_planned_without_fingerprints_is_not_compared_either() -> None:
    recording = run_stack("prod", secrets=password(CANARY))
    keyed = plan_from(recording, fingerprint_key=new_fingerprint_key())
    plain = plan_from(recording)
    assert not _diff(keyed, plain).secrets_compared
    assert not _diff(plain, keyed).secrets_compared
    assert _diff(keyed, keyed).secrets_compared


def test_a_container_that_starts_mounting_the_data_volume_is_not_read_as_a_postgres_upgrade() -> (
    None
):
    base = plan_from(run_stack("prod"))
    mounted = edited(
        base,
        "grafana-container",
        {"volumes": [{"containerPath": "/var/lib/grafana", "volumeName": "postgres-data"}]},
    )
    head = edited(mounted, "grafana-image", {"name": "grafana/grafana:12.0.0"})
    assert _diff(base, head).postgres_risks == ()
    # The same image change on a container that held the volume before is compared.
    held = edited(
        base, "grafana-container", mounted.by_key()[f"{CONTAINER}::grafana-container"].inputs
    )
    assert _diff(held, head).postgres_risks != ()


def test_backups_that_never_left_the_host_are_no_new_risk() -> None:
    on_host = backup(recipients=[], targets=[])
    base = plan_from(run_stack("prod", on_host))
    head = plan_from(
        run_stack("prod", {"depot:backup": {**on_host["depot:backup"], "schedule": "6h"}})
    )
    diff = _diff(base, head)
    assert diff.changed
    assert diff.backup_risks == ()


def test_a_backup_service_that_no_longer_mounts_its_backups_stops_backups() -> None:
    base = plan_from(run_stack("prod"))
    head = edited(base, "backup-container", {"volumes": []})
    [risk] = _diff(base, head).backup_risks
    assert risk.key == BACKUP_KEY
    assert risk.reason.startswith("backups stop: the backup service is removed")


def test_a_new_parent_is_a_replacement() -> None:
    before = PlannedResource(VOLUME, "v", "old-parent", {}, PLAIN_OPTIONS)
    after = PlannedResource(VOLUME, "v", "new-parent", {}, PLAIN_OPTIONS)
    [change] = _diff(Plan("prod", (before,)), Plan("prod", (after,))).changed
    assert [(p.path, p.before, p.after, p.replaces) for p in change.changes] == [
        ("parent", "old-parent", "new-parent", True)
    ]


def test_the_plan_text_flags_what_guards_a_resource_and_what_it_waits_for() -> None:
    flags = {
        **PLAIN_OPTIONS,
        "protect": True,
        "retainOnDelete": True,
        "deleteBeforeReplace": True,
        "dependsOn": ["a", "b"],
    }
    plan = Plan("prod", (PlannedResource(VOLUME, "postgres-data", "data", {}, flags),))
    assert plan_text(plan).splitlines()[1] == (
        "docker:index/volume:Volume postgres-data (in data)  "
        "[protect retainOnDelete deleteBeforeReplace dependsOn=a,b]"
    )
    markdown = as_read(plan_markdown(plan))
    assert "| `docker:index/volume:Volume` | `postgres-data` | data | [protect retainOnDelete" in (
        markdown
    )


def test_the_markdown_table_says_what_each_change_costs() -> None:
    volume = PlannedResource(VOLUME, "postgres-data", None, {"driver": "local"}, PLAIN_OPTIONS)
    moved = PlannedResource(VOLUME, "postgres-data", None, {"driver": "other"}, PLAIN_OPTIONS)
    diff = _diff(
        Plan("prod", (volume, *_envs("LOG=info", "[secret:1111]").resources)),
        Plan("prod", (moved, *_envs("LOG=info", "[secret:2222]").resources)),
    )
    markdown = as_read(diff_markdown(diff))
    assert "- **Recreated (downtime):** `dispatch-container`\n" in markdown
    assert "| replace | `dispatch-container` | `docker:index/container:Container` | downtime, " in (
        markdown
    )
    assert "| replace | `postgres-data` | `docker:index/volume:Volume` | data |" in markdown
    assert "`docker:index/container:Container` | downtime, secret changed |" in markdown


def test_the_markdown_of_moved_tags_beside_a_removal_lists_each_and_draws_no_routine_graph() -> (
    None
):
    base, head = _released(SHA_A), _without(_released(SHA_B), "postgres-data")
    markdown = as_read(diff_markdown(_diff(base, head), head))
    assert "| remove | `postgres-data` | `docker:index/volume:Volume` | data |" in markdown
    assert (
        "| update | `backup-image-build`, `discovery-image-build`, `dispatch-image-build`, "
        "`rtk-base-image-build`, `splat-worker-image-build` | `docker-build:index:Image` "
        "| commit tag only |"
    ) in markdown
    assert "Graph of what changed" not in markdown  # moved tags are no change to draw


def test_a_replaced_resource_says_so_in_its_folded_details() -> None:
    diff = _diff(_envs("LOG=info"), _envs("LOG=debug"))
    markdown = as_read(diff_markdown(diff))
    assert "<details><summary>`dispatch-container`: 1 change(s) — replaces</summary>" in markdown


def test_the_markdown_counts_recreated_containers_and_lists_replacements_first() -> None:
    volume = PlannedResource(VOLUME, "postgres-data", None, {"driver": "local"}, PLAIN_OPTIONS)
    moved = PlannedResource(VOLUME, "postgres-data", None, {"driver": "other"}, PLAIN_OPTIONS)
    grafana = PlannedResource(
        CONTAINER, "grafana-container", None, {"restart": "no"}, PLAIN_OPTIONS
    )
    restarted = PlannedResource(
        CONTAINER, "grafana-container", None, {"restart": "always"}, PLAIN_OPTIONS
    )
    diff = _diff(
        Plan("prod", (volume, grafana, *_envs("LOG=info").resources)),
        Plan("prod", (moved, restarted, *_envs("LOG=debug").resources)),
    )
    lines = as_read(diff_markdown(diff)).splitlines()
    summary = lines[lines.index("|---:|---:|---:|---:|---:|---:|") + 1]
    assert summary == "| 0 | 3 | 2 | 1 | 0 | 1 |"  # 2 replaced, 1 of them a container
    rows = [line.split(" | ")[:2] for line in lines if line.startswith(("| replace", "| update"))]
    assert rows == [
        ["| replace", "`dispatch-container`"],
        ["| replace", "`postgres-data`"],
        ["| update", "`grafana-container`"],
    ]


# --- plans ---------------------------------------------------------------------------------------


def test_an_unknown_value_is_named_in_the_plan() -> None:
    assert render({"id": RECORDED_UNKNOWN, "ids": [RECORDED_UNKNOWN]}) == {
        "id": UNKNOWN,
        "ids": [UNKNOWN],
    }


def test_a_secret_holding_a_project_path_fingerprints_the_same_in_any_checkout(
    tmp_path: Path,
) -> None:
    key = new_fingerprint_key()
    registration = next(r for r in run_stack("prod").registrations if not r.dependencies)

    def planned_in(root: Path) -> Any:
        secret = Secret(str(root / "secrets" / "database_password.txt"))
        alone = dataclasses.replace(registration, inputs={"file": secret}, parent="")
        return plan_from(Recording("prod", [alone]), root, fingerprint_key=key).resources[0]

    first, second = planned_in(tmp_path / "a"), planned_in(tmp_path / "b")
    assert first.inputs["file"].startswith("[secret:")
    assert first.inputs == second.inputs


def test_a_plan_lists_resources_by_type_then_name() -> None:
    plan = plan_from(run_stack("prod"))
    listed = [(r.type, r.name) for r in plan.resources]
    assert listed == sorted(listed)
    assert len(set(listed)) == len(listed)
