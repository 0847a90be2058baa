"""``depot graph`` draws from the model what the program's plan shows: the two graphs are one.

The command reads the resolved model (``depot.review.model_graph``), which states the program's
wiring a second time, so it can start without the Pulumi SDK. These tests draw each stack both
ways — from the model, and from the plan of the real program run under mocks (the oracle) — and
require them equal: a change to the program that the model's graph does not follow fails here.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from depot.catalog import (
    DATABASE_NETWORK,
    DEPOT_NETWORK,
    DISPATCH,
    SERVICES,
    PulledImage,
    SecretFile,
    ServiceSpec,
)
from depot.cli import main
from depot.config.loader import RawConfig, load_settings
from depot.config.stack_file import stack_config
from depot.program import build_depot
from depot.recording import record
from depot.review.graph import Graph, build_graph, to_dot, to_mermaid
from depot.review.model_graph import model_graph
from depot.review.plan import plan_config, plan_from
from depot.types import PROFILES, ServiceName
from tests.conftest import PROJECT_DIR
from tests.conftest import stack_config as edited_config

SHIPPED = ("dev", "prod", "cluster")
PROFILE_SETS = [
    list(chosen)
    for size in range(len(PROFILES) + 1)
    for chosen in itertools.combinations(PROFILES, size)
]
DIGEST = "sha256:" + "d" * 64
GIVEN = {"depot:databasePassword": "graph-given-1", "depot:grafanaAdminPassword": "graph-given-2"}


def with_secrets(config: RawConfig, secrets: Mapping[str, str]) -> RawConfig:
    """``config`` with secret values set, as ``pulumi config set --secret`` would."""
    return RawConfig({**config.values, **secrets}, config.secret_keys | frozenset(secrets))


def both_ways(
    stack: str, config: RawConfig, services: Sequence[ServiceSpec] = SERVICES
) -> tuple[Graph, Graph]:
    """(the graph of the program's plan, the graph of the model) of ``stack`` with ``config``."""
    settings = load_settings(stack, config)
    if services is SERVICES:  # the real entry point, as `depot plan` runs it
        plan = plan_config(stack, config, settings=settings)
    else:

        def program() -> None:
            build_depot(settings, services)

        plan = plan_from(record(program, stack=stack, config=config))
    return build_graph(plan), model_graph(settings, services)


def assert_same(planned: Graph, modelled: Graph) -> None:
    assert sorted(modelled.nodes) == sorted(planned.nodes)  # which resources, first
    assert modelled.edges == planned.edges
    assert modelled == planned
    assert to_mermaid(modelled) == to_mermaid(planned)
    assert to_dot(modelled) == to_dot(planned)


@pytest.mark.parametrize("profiles", PROFILE_SETS, ids=lambda chosen: "+".join(chosen) or "none")
@pytest.mark.parametrize("stack", SHIPPED)
def test_every_shipped_stack_and_profile_draws_the_plans_graph(
    stack: str, profiles: list[str]
) -> None:
    assert_same(*both_ways(stack, stack_config(stack, profiles)))


VARIANTS: dict[str, tuple[str, dict[str, Any], Mapping[str, str]]] = {
    # Passwords the stack sets: no RandomPassword, so nothing between it and its readers.
    "dev, passwords given": ("dev", {}, GIVEN),
    "prod, one password given": ("prod", {}, {"depot:databasePassword": "graph-given-1"}),
    "cluster, passwords given": ("cluster", {}, GIVEN),
    # A service of ours that CI pushed, run by digest: nothing built for it.
    "prod, a built service pinned": (
        "prod",
        {"depot:images": {"discovery": f"registry.example.com/depot-discovery@{DIGEST}"}},
        {},
    ),
    "cluster, a built service pinned": (
        "cluster",
        {
            "depot:images": {
                **load_settings("cluster", stack_config("cluster")).images,
                "dispatch": f"registry.example.com/depot-dispatch@{DIGEST}",
            }
        },
        {},
    ),
    # Builds pushed from a dev stack, and prod loading its builds into the host's daemon.
    "dev, pushed to a registry": (
        "dev",
        {"depot:registry": {"address": "registry.example.com"}},
        {},
    ),
    "dev, every profile": ("dev", {"depot:profiles": list(PROFILES)}, {}),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_configs_the_tests_run_draw_the_plans_graph(variant: str) -> None:
    stack, overrides, secrets = VARIANTS[variant]
    assert_same(*both_ways(stack, with_secrets(edited_config(stack, overrides), secrets)))


@pytest.mark.parametrize("stack", ["prod", "cluster"])
def test_a_password_the_tools_cannot_decrypt_draws_the_plans_graph(
    stack: str, tmp_path: Path
) -> None:
    # `secure:` values, which only the Pulumi CLI decrypts: a secret of unknown value, set.
    shipped = (PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text()
    secure = "  depot:grafanaAdminPassword:\n    secure: v1:graph:AAAABBBB\n"
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(shipped + secure)
    assert_same(*both_ways(stack, stack_config(stack, (), tmp_path)))


def _extended_catalog() -> tuple[ServiceSpec, ...]:
    """The depot's catalog and one more service, pinned by digest, that reads the database
    password from a file and in a variable, joins both networks and starts after postgres and
    dispatch: what adding a service to the catalog looks like."""
    extra = replace(
        DISPATCH,
        name=cast(ServiceName, "ledger"),
        image=PulledImage(f"registry.example.com/ledger@{DIGEST}"),
        networks=(DATABASE_NETWORK, DEPOT_NETWORK),
        waits_for=("postgres", "dispatch"),
        secret_files=(SecretFile("database_password", "DATABASE_PASSWORD_FILE", owner=10001),),
    )
    return (*SERVICES, extra)


def _rewired_catalog() -> tuple[ServiceSpec, ...]:
    """The depot's catalog with rtk-base wired like the service above: secrets, both networks
    and a start order it does not have."""
    return tuple(
        replace(
            spec,
            networks=(DEPOT_NETWORK, DATABASE_NETWORK),
            waits_for=("postgres", "dispatch"),
            secret_files=(SecretFile("database_password", "DATABASE_PASSWORD_FILE", owner=1),),
            secret_env=DISPATCH.secret_env,
        )
        if spec.name == "rtk-base"
        else spec
        for spec in SERVICES
    )


# A swarm pins services by their catalog entry's node label, so a service the shipped catalog
# does not know can be planned on one host only; a rewired one, everywhere.
@pytest.mark.parametrize(
    ("stack", "catalog"),
    [
        ("dev", _extended_catalog()),
        ("prod", _extended_catalog()),
        ("dev", _rewired_catalog()),
        ("prod", _rewired_catalog()),
        ("cluster", _rewired_catalog()),
    ],
    ids=["dev-added", "prod-added", "dev-rewired", "prod-rewired", "cluster-rewired"],
)
def test_a_changed_catalog_is_drawn_without_an_edit_to_the_graph(
    stack: str, catalog: tuple[ServiceSpec, ...]
) -> None:
    planned, modelled = both_ways(stack, stack_config(stack, ["rtk"]), catalog)
    assert planned != build_graph(plan_config(stack, stack_config(stack, ["rtk"])))  # it shows
    assert_same(planned, modelled)


def test_the_command_prints_the_model_graph(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--stack", "prod", "--profile", "rtk", "--format", "dot"]) == 0
    drawn = capsys.readouterr().out
    assert drawn == to_dot(model_graph(load_settings("prod", stack_config("prod", ["rtk"]))))
