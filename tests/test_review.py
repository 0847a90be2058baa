"""``depot plan``, ``depot diff`` and ``depot graph``: review without the engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from depot.cli import main
from depot.recording import Recording
from depot.review.diff import diff_plans
from depot.review.graph import build_graph, to_dot, to_mermaid
from depot.review.plan import SECRET, Plan, plan_from, plan_stack, render
from depot.review.render import diff_markdown, diff_text, dumps, plan_markdown, plan_text
from depot.tools.reference_docs import topology_page
from tests.conftest import PROJECT_DIR, as_read, edited, run_depot, run_stack

CANARY = "plan-canary-3fQ9x"


@pytest.fixture(scope="module")
def prod_plan() -> Plan:
    return plan_stack("prod")


@pytest.fixture(scope="module")
def dev_plan() -> Plan:
    """Planned once per module, as ``prod_plan``: a plan without a key is the same every run."""
    return plan_stack("dev")


def test_plan_lists_exactly_what_the_program_registers(
    shipped: dict[str, Recording], prod_plan: Plan
) -> None:
    recording = shipped["prod"]
    registered = sorted((r.type, r.name) for r in recording.registrations)
    assert sorted((r.type, r.name) for r in prod_plan.resources) == registered
    for registration in recording.registrations:
        planned = prod_plan.by_key()[f"{registration.type}::{registration.name}"]
        assert planned.inputs == render(registration.inputs)
        assert planned.options["protect"] == registration.protect
        assert planned.options["retainOnDelete"] == registration.retain_on_delete
        assert planned.options["deleteBeforeReplace"] == registration.delete_before_replace


def test_plan_json_has_the_documented_shape(prod_plan: Plan) -> None:
    document = json.loads(dumps(prod_plan.to_json()))
    assert set(document) == {"stack", "resources"}
    assert document["stack"] == "prod"
    for resource in document["resources"]:
        assert set(resource) == {"type", "name", "parent", "inputs", "options"}
        assert set(resource["options"]) == {
            "protect",
            "retainOnDelete",
            "deleteBeforeReplace",
            "dependsOn",
            "replaceOnChanges",
        }


def test_plan_inputs_use_the_engines_property_names(prod_plan: Plan) -> None:
    container = prod_plan.by_key()["docker:index/container:Container::postgres-container"]
    assert {"destroyGraceSeconds", "networksAdvanced", "waitTimeout"} <= set(container.inputs)
    assert container.parent == "postgres"


def test_plan_shows_explicit_depends_on(prod_plan: Plan) -> None:
    console = prod_plan.by_key()["docker:index/container:Container::console-container"]
    assert console.options["dependsOn"] == [
        "discovery-container",
        "dispatch-container",
        "grafana-container",
    ]


def test_plan_paths_are_relative_to_the_project(prod_plan: Plan) -> None:
    build = prod_plan.by_key()["docker-build:index:Image::discovery-image-build"]
    assert build.inputs["dockerfile"] == {"location": "./docker/rust-service.Dockerfile"}
    assert build.inputs["context"] == {"location": "../discovery"}


def test_plan_renders_secrets_as_the_secret_marker(prod_plan: Plan) -> None:
    postgres = prod_plan.by_key()["docker:index/container:Container::postgres-container"]
    assert postgres.inputs["uploads"][0]["content"] == SECRET


def test_profile_flag_enables_a_profile_on_top_of_the_stack() -> None:
    plan = plan_stack("dev", ["gpu"])
    names = {r.name for r in plan.resources}
    assert "splat-worker-container" in names
    assert "rtk-base-container" not in names


def test_dev_to_prod_diff_shows_restart_limits_and_profiles(
    dev_plan: Plan, prod_plan: Plan
) -> None:
    text = diff_text(diff_plans(dev_plan, prod_plan, base_label="dev", head_label="prod"))
    assert 'restart: "unless-stopped" → "always"' in text
    assert "memory: null → 256" in text
    assert "memoryReservation: null → 128" in text
    assert "+ docker:index/container:Container splat-worker-container" in text
    assert "+ docker:index/container:Container rtk-base-container" in text
    assert "options.protect: false → true" in text


def test_a_replace_causing_change_is_flagged() -> None:
    base = plan_from(run_stack("dev"))
    head = plan_from(run_stack("dev", {"depot:logLevel": "warn"}))
    diff = diff_plans(base, head, base_label="a", head_label="b")
    [change] = diff.changed
    assert change.after.name == "discovery-container"
    assert change.replaces
    assert "[replace]" in diff_text(diff)


def test_an_update_in_place_is_not_flagged_as_a_replacement() -> None:
    base = plan_from(run_stack("dev"))
    head = plan_from(run_stack("dev", {"depot:restart": "always"}))
    diff = diff_plans(base, head, base_label="a", head_label="b")
    assert diff.changed
    assert not diff.replacements


def test_deleting_the_data_volume_is_a_data_risk(prod_plan: Plan) -> None:
    base = prod_plan
    head = Plan(base.stack, tuple(r for r in base.resources if r.name != "postgres-data"))
    diff = diff_plans(base, head, base_label="a", head_label="b")
    assert diff.data_risks == ("docker:index/volume:Volume::postgres-data",)
    assert "[DATA]" in diff_text(diff)
    assert "Data at risk" in diff_markdown(diff)


def test_markdown_diff_leads_with_a_summary_and_folds_details(
    dev_plan: Plan, prod_plan: Plan
) -> None:
    diff = diff_plans(dev_plan, prod_plan, base_label="dev", head_label="prod")
    markdown = diff_markdown(diff, prod_plan)
    lines = markdown.splitlines()
    # What matters first (dev → prod recreates containers), then the summary table.
    assert as_read(lines[2]).startswith(
        "- **Recreated (downtime):** `backup-container`, `console-container`"
    )
    assert lines[lines.index("", 3) + 1].startswith("| added | changed | replaced | containers")
    assert "<details><summary><code>discovery-container</code>" in markdown
    assert "```mermaid" in markdown


def test_graph_marks_the_health_gated_edges(prod_plan: Plan) -> None:
    graph = build_graph(prod_plan)
    gated = {
        (e.source.split("::")[1], e.target.split("::")[1]) for e in graph.edges if e.health_gated
    }
    assert gated == {
        ("postgres-container", "dispatch-container"),
        ("postgres-container", "backup-container"),
        ("discovery-container", "console-container"),
        ("dispatch-container", "console-container"),
        ("grafana-container", "console-container"),
    }
    assert "==>|healthy|" in to_mermaid(graph)
    assert 'label="healthy"' in to_dot(graph)


def test_graph_shows_services_images_networks_volumes_and_secrets(prod_plan: Plan) -> None:
    mermaid = to_mermaid(build_graph(prod_plan))
    for label in (
        "service: depot-dispatch",
        "image: dispatch-image",
        "build: dispatch-image-build",
        "network: database-network",
        "volume: postgres-data",
        "secret: database-password",
    ):
        assert label in mermaid


@pytest.fixture(scope="module")
def canary_recording() -> Recording:
    return run_stack(
        "prod",
        secrets={"depot:databasePassword": CANARY, "depot:grafanaAdminPassword": CANARY + "g"},
    )


def test_no_format_of_any_command_prints_a_secret(canary_recording: Recording) -> None:
    plan = plan_from(canary_recording)
    other = plan_from(run_stack("dev"))
    diff = diff_plans(other, plan, base_label="dev", head_label="prod")
    outputs = [
        plan_text(plan),
        as_read(plan_markdown(plan)),
        dumps(plan.to_json()),
        diff_text(diff),
        as_read(diff_markdown(diff, plan)),
        dumps(diff.to_json()),
        to_mermaid(build_graph(plan)),
        to_dot(build_graph(plan)),
    ]
    assert all(CANARY not in output for output in outputs)
    assert any(SECRET in output for output in outputs)


def run_cli(*args: str) -> tuple[int, str, str]:
    completed = run_depot(*args, cwd=PROJECT_DIR)
    return completed.returncode, completed.stdout, completed.stderr


def test_cli_plan_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "dev", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["stack"] == "dev"


def test_cli_diff_exits_1_on_changes_and_0_without(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--stacks", "dev", "prod"]) == 1
    assert main(["diff", "--stacks", "prod", "prod"]) == 0
    assert "prod → prod: no changes" in capsys.readouterr().out


def test_cli_unknown_stack_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "qa"]) == 2
    known = "known stacks: cluster, dev, prod"
    assert f"Pulumi.qa.yaml: no such stack file; {known}" in capsys.readouterr().err


def test_cli_unknown_ref_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--base", "no-such-ref-xyz", "--stack", "dev"]) == 2
    assert "unknown git ref 'no-such-ref-xyz'" in capsys.readouterr().err


_SKIPPED = shutil.ignore_patterns(".venv", ".git", "*_cache", ".hypothesis", ".pulumi-state")


def _not_copied(directory: str, names: list[str]) -> set[str]:
    """What a project copy leaves out: the venv, git, caches; bytecode except ``depot``'s.

    The copy's ``python -m depot`` imports the copy's ``depot``: with its bytecode copied too
    (``copytree`` keeps each source's mtime, which Python checks a cached file against) it need
    not compile the package again, ~0.3 s a run. ``__pycache__`` is git-ignored, so the copy's
    commit, and every base ``git archive`` makes of it, hold the same files either way.
    """
    skipped = set(_SKIPPED(directory, names))
    inside_depot = Path(directory).resolve().is_relative_to(PROJECT_DIR / "depot")
    if "__pycache__" in names and not inside_depot:
        skipped.add("__pycache__")
    return skipped


def _project_copy(root: Path) -> Path:
    """This project (code and stack files, not its venv) in a fresh git repository."""
    project = root / "project"
    shutil.copytree(PROJECT_DIR, project, ignore=_not_copied)
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "commit.gpgsign=false",
    ]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=project, check=True)
    return project


# `depot` commands run by `depot.cli.main` one after another in ONE interpreter started in a
# project copy, so it imports the copy's `depot` and reads the copy's files exactly as
# `python -m depot` there would (whose __main__ only calls main); each prints what it printed
# and returns what it returned. A test that runs the same commands in several formats pays for
# one interpreter importing Pulumi (~0.8 s CPU) instead of one per format; each such test keeps
# one real `python -m depot` run beside it.
_MAIN_IN_ONE_INTERPRETER = """
import contextlib, io, json, pathlib, sys
import depot.cli
here = pathlib.Path.cwd().resolve()
assert pathlib.Path(depot.cli.__file__).resolve().is_relative_to(here), depot.cli.__file__
runs = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = depot.cli.main(argv)
        except SystemExit as stop:  # argparse refusing the command line
            status = stop.code
    runs.append([status, out.getvalue(), err.getvalue()])
sys.stdout.write(json.dumps(runs))
"""


def depot_in(
    project: Path, *args: str, environ: Mapping[str, str] = os.environ
) -> subprocess.CompletedProcess[str]:
    """``python -m depot ARGS`` as a process of its own in the project copy, reading its files."""
    return run_depot(*args, cwd=project, env={**environ, "PYTHONPATH": str(project)})


def main_in_project(
    project: Path, *argvs: list[str], env: dict[str, str] | None = None
) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each ``depot`` command line, run in ``project``.

    Whatever reached the interpreter's own stderr around the redirection (a logging handler
    holding the real stream) is added to every command's stderr, so a check on it sees it.
    """
    completed = subprocess.run(
        [sys.executable, "-c", _MAIN_IN_ONE_INTERPRETER, json.dumps(argvs)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**(os.environ if env is None else env), "PYTHONPATH": str(project)},
    )
    assert completed.returncode == 0, completed.stderr
    stray = completed.stderr
    return [(status, out, err + stray) for status, out, err in json.loads(completed.stdout)]


def test_diff_against_a_git_ref_plans_the_base_from_git(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("unless-stopped", "always"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "commit", "-qam", "head"], cwd=project, check=True)
    # Dirty the working tree too: the base must come from git, the head from the tree.
    stack_file.write_text(stack_file.read_text().replace("logLevel: debug", "logLevel: info"))

    completed = depot_in(project, "diff", "--base", "HEAD~1", "--stack", "dev")
    assert completed.returncode == 1, completed.stderr
    assert 'restart: "unless-stopped" → "always"' in completed.stdout
    assert "RUST_LOG=discovery=info" in completed.stdout
    assert "dev@HEAD~1 → dev (working tree)" in completed.stdout
    assert "logLevel: info" in stack_file.read_text(), "the working tree is left as it was"


def test_a_bad_config_gives_the_programs_message(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("unless-stopped", "sometimes"))
    completed = depot_in(project, "plan", "--stack", "dev")
    assert completed.returncode == 2
    assert (
        "Pulumi.dev.yaml:3:18: depot:restart: 'sometimes' is not a restart policy"
        in completed.stderr
    )


def test_secure_values_in_a_stack_file_never_fail_or_print(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(
        stack_file.read_text() + f"  depot:databasePassword:\n    secure: v1:{CANARY}:AAAABBBB\n"
    )
    completed = depot_in(project, "plan", "--stack", "dev", "--format", "text")
    runs = [(completed.returncode, completed.stdout, completed.stderr)]
    runs += main_in_project(
        project, *(["plan", "--stack", "dev", "--format", fmt] for fmt in ("json", "markdown"))
    )
    assert len(runs) == 3
    for status, stdout, stderr in runs:
        assert status == 0, stderr
        assert CANARY not in as_read(stdout) + stderr
    assert json.loads(runs[1][1])["stack"] == "dev"


@pytest.mark.parametrize(
    ("inputs", "replaces"),
    [
        ({"restart": "no"}, False),  # `docker update` applies it
        ({"memory": 999}, False),
        ({"waitTimeout": 500}, False),  # provider bookkeeping
        ({"labels": []}, True),  # ForceNew upstream
        ({"logOpts": {"max-size": "1m"}}, True),
        ({"image": "sha256:other"}, True),
        ({"healthcheck": {"interval": "1s"}}, True),  # stored only upstream: replaceOnChanges
    ],
)
def test_container_changes_are_classified_as_the_provider_treats_them(
    prod_plan: Plan, inputs: dict[str, object], replaces: bool
) -> None:
    head = edited(prod_plan, "discovery-container", inputs)
    [change] = diff_plans(prod_plan, head, base_label="a", head_label="b").changed
    assert change.replaces is replaces


def test_a_changed_build_rebuilds_in_place_but_replaces_its_container() -> None:
    base = plan_from(run_stack("dev"))
    contexts = {s: f"../{s}" for s in ("dispatch", "splat-worker", "rtk-base")}
    head = plan_from(
        run_stack("dev", {"depot:build": {"contexts": {**contexts, "discovery": "../d2"}}})
    )
    diff = diff_plans(base, head, base_label="a", head_label="b")
    verdict = {c.after.name: c.replaces for c in diff.changed}
    assert verdict == {
        "discovery-image-build": False,
        "discovery-image": True,
        "discovery-container": True,
    }


def test_the_manuals_topology_is_the_graph_the_plan_draws(prod_plan: Plan) -> None:
    drawn = to_mermaid(build_graph(prod_plan))
    assert f"```mermaid\n{drawn}```" in topology_page()


def _manual_block_after(marker: str) -> list[str]:
    page = (PROJECT_DIR / "docs" / "reviewing.md").read_text()
    block = page[page.index(marker) :].split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line and line != "…"]


@pytest.mark.parametrize(
    ("marker", "argv"),
    [
        ("`depot plan --stack dev` (excerpt):", ["plan", "--stack", "dev"]),
        ("`depot diff --stacks dev prod` (excerpt):", ["diff", "--stacks", "dev", "prod"]),
    ],
)
def test_the_manuals_examples_are_real_output(
    capsys: pytest.CaptureFixture[str], marker: str, argv: list[str]
) -> None:
    main(argv)
    output = capsys.readouterr().out.splitlines()
    for line in _manual_block_after(marker):
        assert line in output, line


def test_an_unchanged_tree_diffs_clean_against_its_own_commit(tmp_path: Path) -> None:
    # The base is planned in another directory than the head: nothing may depend on where.
    # Both stacks in one interpreter (each diff plans its base with `python -m depot` of its
    # own); `depot diff --base` as a process of its own: the test above.
    project = _project_copy(tmp_path)
    environ = _without("DEPOT_RELEASE_COMMIT")
    stacks = ("dev", "prod")
    diffs = (["diff", "--base", "HEAD", "--stack", stack] for stack in stacks)
    runs = main_in_project(project, *diffs, env=environ)
    assert len(runs) == len(stacks)
    for stack, (status, stdout, stderr) in zip(stacks, runs, strict=True):
        assert status == 0, (stack, stdout + stderr)
        assert stdout == f"{stack}@HEAD → {stack} (working tree): no changes\n"


def _without(variable: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != variable}
