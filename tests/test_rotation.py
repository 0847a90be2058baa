"""The Pulumi path rotates passwords: the running service is told first, then its dependents."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

from pulumi.runtime.mocks import MockResourceArgs

from depot.components.rotation import SALT_BYTES, exec_command, with_retries
from depot.config import RawConfig
from depot.program import deploy
from depot.recording import DepotMocks, Recording, Registration, Secret, record
from depot.resource_types import COMMAND, CONTAINER, RANDOM_BYTES
from depot.review.diff import diff_plans
from depot.review.graph import Edge, build_graph
from depot.review.plan import new_fingerprint_key, plan_from
from depot.review.render import diff_text, dumps, plan_markdown, plan_text
from depot.rotations import alter_role_statement
from tests.conftest import run_stack, stack_config, walk
from tests.scram import Verifier

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
    *settings, alter = stdin.value.splitlines()
    assert settings == [
        "SET log_statement = 'none';",
        "SET log_min_error_statement = 'panic';",
        "SET log_min_duration_statement = -1;",
    ]
    assert alter.startswith("ALTER ROLE postgres PASSWORD '")
    assert alter.endswith("';")
    verifier = Verifier.parse(verifier_in(stdin.value))
    assert verifier.admits(DATABASE_CANARY)
    assert not verifier.admits(OTHER_DATABASE_CANARY)
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


# --- the SCRAM salt: random per deployment, kept in state ----------------------------------------


class Deployment(DepotMocks):
    """One deployment's state: random bytes are drawn on its first run and read back on every
    later one, as the engine keeps a ``RandomBytes`` result; another deployment draws its own."""

    def __init__(self) -> None:
        self.drawn: dict[str, bytes] = {}

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        resource_id, outputs = super().new_resource(args)
        if args.typ == RANDOM_BYTES:
            drawn = self.drawn.setdefault(args.name, os.urandom(int(args.inputs["length"])))
            outputs["base64"] = base64.b64encode(drawn).decode("ascii")
            outputs["hex"] = drawn.hex()
        return resource_id, outputs


def up(deployment: Deployment, stack: str = "prod", database: str = DATABASE_CANARY) -> Recording:
    config = stack_config(stack)
    secrets = given(database=database)
    raw = RawConfig({**config.values, **secrets}, config.secret_keys | frozenset(secrets))
    return record(deploy, stack=stack, config=raw, preview=False, stand_ins=deployment)


def verifier_in(statement: str) -> str:
    return statement.split("PASSWORD '", 1)[1].split("'", 1)[0]


def sent_verifier(recording: Recording) -> Verifier:
    stdin = rotation(recording, DATABASE_ROTATION).inputs["stdin"]
    assert isinstance(stdin, Secret)
    return Verifier.parse(verifier_in(stdin.value))


def test_the_salt_is_sixteen_random_bytes_kept_secret_in_state() -> None:
    recording = up(Deployment())
    [salt] = recording.of_type(RANDOM_BYTES)
    assert (salt.name, salt.inputs) == (f"{DATABASE_ROTATION}-salt", {"length": SALT_BYTES})
    assert SALT_BYTES == 16
    # Its outputs are encrypted in state, as the engine treats additionalSecretOutputs.
    assert {"base64", "hex"} <= set(salt.additional_secret_outputs)
    assert salt.parent == next(
        r.urn
        for r in recording.registrations
        if r.type == "depot:rotation:PasswordRotation" and r.name == DATABASE_ROTATION
    )
    # The rotation waits for it: the salt is one of the stdin's dependencies.
    assert salt.urn in rotation(recording, DATABASE_ROTATION).property_dependencies["stdin"]


def test_the_verifier_is_valid_scram_over_the_deployments_own_salt() -> None:
    deployment = Deployment()
    verifier = sent_verifier(up(deployment))
    assert verifier.salt == deployment.drawn[f"{DATABASE_ROTATION}-salt"]
    assert verifier.iterations == 4096
    assert verifier.admits(DATABASE_CANARY)


def test_two_deployments_with_one_password_share_no_salt_nor_verifier() -> None:
    # A salt derived from the password would be the same in both: postgres shows the salt to
    # anyone who starts a login, which would tell that the two share a password.
    first, second = sent_verifier(up(Deployment())), sent_verifier(up(Deployment()))
    assert first.salt != second.salt
    assert first.stored_key != second.stored_key
    assert first.admits(DATABASE_CANARY)
    assert second.admits(DATABASE_CANARY)


def test_each_stack_draws_its_own_salt() -> None:
    dev, prod = sent_verifier(up(Deployment(), "dev")), sent_verifier(up(Deployment(), "prod"))
    assert dev.salt != prod.salt


def test_the_same_state_gives_the_same_verifier_on_every_up() -> None:
    # No new trigger for an unchanged password: nothing random is drawn outside the state.
    deployment = Deployment()
    first, again = up(deployment), up(deployment)
    stdin = rotation(first, DATABASE_ROTATION).inputs["stdin"]
    assert stdin == rotation(again, DATABASE_ROTATION).inputs["stdin"]
    assert len(deployment.drawn) == 1


def test_a_new_password_keeps_the_deployments_salt_and_changes_the_verifier() -> None:
    deployment = Deployment()
    before = sent_verifier(up(deployment))
    after = sent_verifier(up(deployment, database=OTHER_DATABASE_CANARY))
    assert before.salt == after.salt
    assert after.admits(OTHER_DATABASE_CANARY)
    assert not after.admits(DATABASE_CANARY)


def test_the_salt_and_the_verifier_are_never_plain() -> None:
    deployment = Deployment()
    recording = up(deployment)
    verifier = verifier_in(rotation(recording, DATABASE_ROTATION).inputs["stdin"].value)
    salt = deployment.drawn[f"{DATABASE_ROTATION}-salt"]
    shown = (verifier, base64.b64encode(salt).decode(), salt.hex())
    for registration in recording.registrations:
        for leaf, inside_secret in walk(registration.inputs):
            assert inside_secret or not any(value in str(leaf) for value in shown)
    plan = plan_from(recording)
    for text in (plan_text(plan), plan_markdown(plan), dumps(plan.to_json())):
        assert not [value for value in shown if value in text]


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
