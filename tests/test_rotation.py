"""The Pulumi path rotates passwords: the running service is told first, then its dependents."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from depot.components.rotation import exec_command, stable_salt, with_retries
from depot.host.rotate import alter_role_statement, scram_verifier
from depot.recording import Recording, Registration, Secret
from depot.resource_types import COMMAND, CONTAINER
from depot.review.diff import diff_plans
from depot.review.graph import Edge, build_graph
from depot.review.plan import new_fingerprint_key, plan_from
from depot.review.render import diff_text
from tests.conftest import run_stack, walk

DATABASE_CANARY = "rotation-canary-Db71q"
OTHER_DATABASE_CANARY = "rotation-canary-Db72q"
GRAFANA_CANARY = "rotation-canary-Gf33x"
OTHER_GRAFANA_CANARY = "rotation-canary-Gf34x"
DATABASE_ROTATION = "database-password-rotation"
GRAFANA_ROTATION = "grafana-admin-password-rotation"


def given(database: str = DATABASE_CANARY, grafana: str = GRAFANA_CANARY) -> dict[str, str]:
    return {"depot:databasePassword": database, "depot:grafanaAdminPassword": grafana}


def rotation(recording: Recording, name: str) -> Registration:
    return recording.named(name, COMMAND)


def leaves(value: Any) -> list[str]:
    return [str(leaf) for leaf, _ in walk(value)]


def test_each_password_has_a_rotation_command_on_the_host_runtime() -> None:
    recording = run_stack("prod", secrets=given())
    assert {r.name for r in recording.of_type(COMMAND)} == {DATABASE_ROTATION, GRAFANA_ROTATION}


def test_the_database_rotation_sends_a_scram_verifier_never_the_password() -> None:
    command = rotation(run_stack("prod", secrets=given()), DATABASE_ROTATION)
    stdin = command.inputs["stdin"]
    assert isinstance(stdin, Secret)
    verifier = scram_verifier(DATABASE_CANARY, stable_salt(DATABASE_CANARY, "postgres"))
    assert stdin.value.splitlines() == [
        "SET log_statement = 'none';",
        "SET log_min_error_statement = 'panic';",
        "SET log_min_duration_statement = -1;",
        f"ALTER ROLE postgres PASSWORD '{verifier}';",
    ]
    # The canary: not in any input of the command, not even inside its secrets.
    assert not [leaf for leaf in leaves(command.inputs) if DATABASE_CANARY in leaf]


def test_the_grafana_rotation_reads_the_password_from_a_secret_stdin() -> None:
    command = rotation(run_stack("prod", secrets=given()), GRAFANA_ROTATION)
    assert command.inputs["create"] == (
        "docker exec --interactive depot-grafana "
        "grafana cli admin reset-admin-password --password-from-stdin"
    )
    # grafana's CLI takes nothing but the password itself: it is there, and only as a secret.
    assert command.inputs["stdin"] == Secret(GRAFANA_CANARY + "\n")
    assert all(inside for leaf, inside in walk(command.inputs) if GRAFANA_CANARY in str(leaf))


def test_no_password_is_on_a_command_line_or_in_an_environment() -> None:
    recording = run_stack("prod", secrets=given())
    for name in (DATABASE_ROTATION, GRAFANA_ROTATION):
        command = rotation(recording, name)
        shown = leaves([command.inputs["create"], command.inputs["environment"]])
        assert not [leaf for leaf in shown if DATABASE_CANARY in leaf or GRAFANA_CANARY in leaf]
        assert isinstance(command.inputs["triggers"][0], Secret)
        assert set(command.additional_secret_outputs) == {"stdin", "triggers"}


def test_psql_runs_quietly_over_the_local_socket_as_postgres() -> None:
    command = rotation(run_stack("dev"), DATABASE_ROTATION)
    argv = command.inputs["create"].split()
    at = argv.index("docker")
    assert argv[at : at + 6] == [
        "docker", "exec", "--interactive", "--user", "postgres", "depot-postgres",
    ]  # fmt: skip
    assert {"--quiet", "--no-psqlrc", "VERBOSITY=terse", "ON_ERROR_STOP=1"} <= set(argv)
    assert "--host" not in argv  # the local socket: no password is asked of a local peer


def test_the_docker_host_comes_from_the_stack_in_the_environment() -> None:
    dev = rotation(run_stack("dev"), DATABASE_ROTATION)
    prod = rotation(run_stack("prod"), DATABASE_ROTATION)
    assert dev.inputs["environment"] == {"DOCKER_HOST": "unix:///var/run/docker.sock"}
    assert prod.inputs["environment"] == {"DOCKER_HOST": "ssh://deploy@depot.example.com"}
    assert "ssh://" not in prod.inputs["create"]


def test_postgres_then_the_rotation_then_dispatch() -> None:
    recording = run_stack("prod")
    postgres = recording.named("postgres-container", CONTAINER)
    dispatch = recording.named("dispatch-container", CONTAINER)
    database = rotation(recording, DATABASE_ROTATION)
    assert postgres.urn in database.dependencies
    assert database.urn in dispatch.dependencies
    assert database.urn not in postgres.dependencies
    grafana = rotation(recording, GRAFANA_ROTATION)
    assert recording.named("grafana-container", CONTAINER).urn in grafana.dependencies


def test_the_graph_draws_the_rotation_between_postgres_and_dispatch() -> None:
    graph = build_graph(plan_from(run_stack("prod")))
    command = f"{COMMAND}::{DATABASE_ROTATION}"
    assert Edge(f"{CONTAINER}::postgres-container", command, health_gated=False) in graph.edges
    assert Edge(command, f"{CONTAINER}::dispatch-container", health_gated=False) in graph.edges


def test_a_new_database_password_changes_the_trigger_and_the_diff_says_it_rotates() -> None:
    key = new_fingerprint_key()
    base = plan_from(run_stack("prod", secrets=given()), fingerprint_key=key)
    head = plan_from(
        run_stack("prod", secrets=given(database=OTHER_DATABASE_CANARY)), fingerprint_key=key
    )
    diff = diff_plans(base, head, base_label="a", head_label="b")
    rotated = {p.path for c, p in diff.secret_changes if c.after.name == DATABASE_ROTATION}
    assert rotated == {"stdin", "triggers[0]"}
    text = diff_text(diff)
    assert "rotates the database password: " in text
    assert "rotates the grafana admin password" not in text
    assert DATABASE_CANARY not in text
    assert OTHER_DATABASE_CANARY not in text


def test_a_new_grafana_password_says_it_rotates_the_grafana_admin_password() -> None:
    key = new_fingerprint_key()
    base = plan_from(run_stack("prod", secrets=given()), fingerprint_key=key)
    head = plan_from(
        run_stack("prod", secrets=given(grafana=OTHER_GRAFANA_CANARY)), fingerprint_key=key
    )
    text = diff_text(diff_plans(base, head, base_label="a", head_label="b"))
    assert "rotates the grafana admin password: " in text
    assert "rotates the database password" not in text
    assert GRAFANA_CANARY not in text
    assert OTHER_GRAFANA_CANARY not in text


def test_an_unchanged_password_leaves_the_rotation_unchanged() -> None:
    # A random salt would give a new verifier, so a rotation on every `up`.
    key = new_fingerprint_key()
    base = plan_from(run_stack("prod", secrets=given()), fingerprint_key=key)
    head = plan_from(run_stack("prod", secrets=given(), fresh=True), fingerprint_key=key)
    assert diff_plans(base, head, base_label="a", head_label="b").empty


def test_the_salt_is_the_same_for_a_password_and_another_for_another() -> None:
    assert stable_salt("one", "postgres") == stable_salt("one", "postgres")
    assert stable_salt("one", "postgres") != stable_salt("two", "postgres")
    assert len(stable_salt("one", "postgres")) == 16


def test_a_swarm_stack_has_no_rotation_command() -> None:
    # docker exec reaches only the node it is pointed at (README "Docker Swarm").
    assert run_stack("cluster").of_type(COMMAND) == []


def test_an_up_knows_what_the_rotation_sends() -> None:
    command = rotation(run_stack("dev", preview=False, secrets=given()), DATABASE_ROTATION)
    assert command.inputs["stdin"].value.startswith("SET log_statement = 'none';")


def test_the_psql_call_is_retried_with_the_same_stdin_until_postgres_answers(
    tmp_path: Path,
) -> None:
    # A stand-in docker CLI that refuses twice (postgres' init server stopping), then accepts.
    calls = tmp_path / "calls"
    docker = tmp_path / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        f'n=$(ls {calls} | grep -c stdin); cat > {calls}/stdin-$n; echo "$@" > {calls}/argv-$n\n'
        '[ "$n" -ge 2 ]\n'
    )
    docker.chmod(0o755)
    calls.mkdir()
    line = with_retries(exec_command("depot-postgres", ["psql"], user="postgres"), pause_seconds=0)
    statement = alter_role_statement(DATABASE_CANARY)
    result = subprocess.run(
        ["/bin/sh", "-c", line],
        input=statement,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    stdins = sorted(calls.glob("stdin-*"))
    assert [path.read_text() for path in stdins] == [statement] * 3
    argvs = [path.read_text() for path in sorted(calls.glob("argv-*"))]
    assert argvs == ["exec --interactive --user postgres depot-postgres psql\n"] * 3


def test_a_psql_that_never_answers_fails_the_command(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\ncat > /dev/null; exit 2\n")
    docker.chmod(0o755)
    line = with_retries(exec_command("depot-postgres", ["psql"]), attempts=2, pause_seconds=0)
    result = subprocess.run(
        ["/bin/sh", "-c", line],
        input="SELECT 1;\n",
        text=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 1
