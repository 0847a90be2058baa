"""Passwords: generated or given, delivered as files or secret env, never in plaintext."""

from __future__ import annotations

import pulumi
import pytest
from pydantic import SecretStr

from depot.components.secrets import GeneratedOrGivenPassword
from depot.components.service import container_env
from depot.config import ConfigError, load_settings
from depot.model import deployments
from depot.recording import PROJECT, DepotMocks, Recording, Secret
from depot.resource_types import RANDOM_PASSWORD
from tests.conftest import containers, env_of, run_stack, stack_config, walk

CANARY = "canary-Zq7!pw/with:url@chars"
GRAFANA_CANARY = "grafana-canary-8Hs2"


@pytest.fixture(scope="module", params=["dev", "prod"])
def with_canaries(request: pytest.FixtureRequest) -> Recording:
    return run_stack(
        request.param,
        secrets={
            "depot:databasePassword": CANARY,
            "depot:grafanaAdminPassword": GRAFANA_CANARY,
        },
    )


def _plaintext_leaves(recording: Recording) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for registration in recording.registrations:
        for leaf, secret in walk(registration.inputs):
            if (
                not secret
                and isinstance(leaf, str)
                and ("canary" in leaf.lower() or "Zq7" in leaf or "8Hs2" in leaf)
            ):
                found.append((registration.name, leaf))
    for leaf, secret in walk(recording.stack_outputs):
        if not secret and isinstance(leaf, str) and "canary" in leaf:
            found.append(("<stack outputs>", leaf))
    return found


def test_canary_passwords_appear_only_inside_secret_inputs(with_canaries: Recording) -> None:
    assert _plaintext_leaves(with_canaries) == []


def test_the_canary_check_would_see_a_plaintext_leak(with_canaries: Recording) -> None:
    # Guard against a vacuous pass: the canary does reach resources, marked secret.
    hits = [
        r.name
        for r in with_canaries.registrations
        for leaf, secret in walk(r.inputs)
        if secret and isinstance(leaf, str) and (CANARY in leaf or "%21pw" in leaf)
    ]
    assert "postgres-container" in hits
    assert "dispatch-container" in hits


def test_given_passwords_are_used_and_none_generated(with_canaries: Recording) -> None:
    assert with_canaries.of_type(RANDOM_PASSWORD) == []


def test_missing_passwords_are_generated_once_each(stack: Recording) -> None:
    generated = {r.name: r for r in stack.of_type(RANDOM_PASSWORD)}
    assert set(generated) == {"database-password", "grafana-admin-password"}
    for password in generated.values():
        assert password.inputs["length"] >= 32
        assert password.inputs["special"] is False


def test_postgres_reads_its_password_from_a_secret_file(with_canaries: Recording) -> None:
    postgres = containers(with_canaries)["postgres"]
    assert env_of(postgres)["POSTGRES_PASSWORD_FILE"] == "/run/secrets/database_password"
    [upload] = postgres.inputs["uploads"]
    assert upload["file"] == "/run/secrets/database_password"
    assert upload["content"] == Secret(CANARY)
    assert upload["permissions"] == "0400"
    assert upload["owner"] == "70"
    assert "POSTGRES_PASSWORD" not in env_of(postgres)


def test_dispatch_gets_the_password_through_a_secret_database_url(
    with_canaries: Recording,
) -> None:
    dispatch = containers(with_canaries)["dispatch"]
    envs = dispatch.inputs["envs"]
    assert isinstance(envs, Secret)
    assert env_of(dispatch)["DATABASE_URL"] == (
        "postgres://postgres:canary-Zq7%21pw%2Fwith%3Aurl%40chars@postgres:5432/dispatch"
    )


def test_generated_password_reaches_dispatch_as_a_secret(stack: Recording) -> None:
    dispatch = containers(stack)["dispatch"]
    assert isinstance(dispatch.inputs["envs"], Secret)
    password = stack.named("database-password", RANDOM_PASSWORD)
    assert password.urn in dispatch.dependencies


def test_grafana_reads_its_admin_password_from_a_secret_file(with_canaries: Recording) -> None:
    grafana = containers(with_canaries)["grafana"]
    assert env_of(grafana)["GF_SECURITY_ADMIN_PASSWORD__FILE"] == (
        "/run/secrets/grafana_admin_password"
    )
    [upload] = grafana.inputs["uploads"]
    assert upload["content"] == Secret(GRAFANA_CANARY)
    assert upload["owner"] == "472"


def test_passwords_are_secret_stack_outputs(stack: Recording) -> None:
    assert isinstance(stack.stack_outputs["databasePassword"], Secret)
    assert isinstance(stack.stack_outputs["grafanaAdminPassword"], Secret)


def test_services_without_secrets_keep_a_reviewable_plain_environment(stack: Recording) -> None:
    for service in ("discovery", "console", "grafana", "postgres"):
        assert not isinstance(containers(stack)[service].inputs.get("envs", []), Secret)


def test_a_plaintext_password_in_the_stack_file_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"Pulumi\.dev\.yaml: depot:databasePassword: is stored in plaintext; "
        r"set it with `pulumi config set --secret depot:databasePassword`",
    ) as error:
        run_stack("dev", {"depot:databasePassword": CANARY})
    assert CANARY not in str(error.value)


def test_a_bad_secret_value_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as error:
        run_stack("dev", secrets={"depot:databasePassword": '{"not": "a string"}'})
    assert "[secret]" in str(error.value)
    assert "not" not in str(error.value).split("[secret]")[0] + str(error.value).split("]")[-1]


def test_nothing_printed_carries_a_password(
    capfd: pytest.CaptureFixture[str],
) -> None:
    run_stack("prod", secrets={"depot:databasePassword": CANARY})
    out, err = capfd.readouterr()
    assert CANARY not in out + err


@pytest.fixture
def mocked() -> None:
    """The program's mocks, set before the test's resources exist (they were once left behind
    by whichever test ran a program first: alone, such a test failed)."""
    pulumi.runtime.set_mocks(DepotMocks(), project=PROJECT, stack="dev", preview=True)


@pytest.mark.usefixtures("mocked")
@pulumi.runtime.test
def test_a_given_password_is_a_secret_output() -> pulumi.Output[None]:
    password = GeneratedOrGivenPassword("given", given=SecretStr(CANARY))

    async def check() -> None:
        assert await password.value.is_secret()
        assert await password.value.future() == CANARY

    return pulumi.Output.from_input(check())


@pytest.mark.usefixtures("mocked")
@pulumi.runtime.test
def test_a_generated_password_is_a_secret_output() -> pulumi.Output[None]:
    password = GeneratedOrGivenPassword("generated", given=None)

    async def check() -> None:
        assert await password.value.is_secret()
        assert (await password.value.future() or "").startswith("generated-")

    return pulumi.Output.from_input(check())


def test_every_secret_file_is_readable_by_its_owner_only(stack: Recording) -> None:
    for service in ("postgres", "grafana"):
        [upload] = containers(stack)[service].inputs["uploads"]
        assert upload["permissions"] == "0400", service
        assert upload["group"] == upload["owner"], service


def test_grafana_gets_no_plain_admin_password_variable(stack: Recording) -> None:
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env_of(containers(stack)["grafana"])


@pytest.mark.usefixtures("mocked")
@pulumi.runtime.test
def test_dispatch_env_is_secret_even_from_a_plain_password() -> pulumi.Output[None]:
    settings = load_settings("dev", stack_config("dev"))
    dispatch = next(d for d in deployments(settings) if d.name == "dispatch")
    envs = pulumi.Output.from_input(
        container_env(dispatch, {"database_password": pulumi.Output.from_input("plain")})
    )

    async def check() -> None:
        assert await envs.is_secret()

    return pulumi.Output.from_input(check())
