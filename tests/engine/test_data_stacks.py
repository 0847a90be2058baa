"""Why the data test's ``down`` and ``up`` runs on prod only: dev's postgres is prod's but for
settings that do not touch its data.

These need no engine: they compare the two stacks' Compose exports. Were dev's postgres or its
volumes to differ from prod's in anything else (a mount, a volume's definition, the stop signal
or grace period), this fails, and the down-and-up belongs on dev too (tests/engine/test_data.py,
``DOWN_AND_UP_STACK``).
"""

from __future__ import annotations

from typing import Any

from depot.catalog import POSTGRES
from depot.config import load_settings
from depot.outputs.compose import compose_document
from depot.review.plan import stack_config
from tests.engine.test_data import DOWN_AND_UP_STACK

# What may differ: resources (limits), the restart policy and the image pinned by digest.
UNRELATED_TO_DATA = {"deploy", "restart", "image"}


def export(stack: str) -> dict[str, Any]:
    return compose_document(load_settings(stack, stack_config(stack)))


def differences(one: dict[str, Any], other: dict[str, Any]) -> set[str]:
    """The keys of postgres' service that differ between two exports, and ``volumes`` when the
    top-level volumes do."""
    mine, theirs = one["services"][POSTGRES.name], other["services"][POSTGRES.name]
    keys = {key for key in mine.keys() | theirs.keys() if mine.get(key) != theirs.get(key)}
    return keys | ({"volumes"} if one["volumes"] != other["volumes"] else set())


def test_dev_and_prod_postgres_differ_only_in_limits_restart_and_digest() -> None:
    dev, prod = export("dev"), export(DOWN_AND_UP_STACK)
    assert differences(dev, prod) <= UNRELATED_TO_DATA
    pinned = prod["services"][POSTGRES.name]["image"]
    assert dev["services"][POSTGRES.name]["image"] == pinned.split("@")[0]  # the same version


def test_a_different_mount_or_volume_is_seen() -> None:
    prod = export(DOWN_AND_UP_STACK)
    postgres = prod["services"][POSTGRES.name]
    mounted = {**postgres, "volumes": [*postgres["volumes"], "scratch:/scratch"]}
    assert differences(prod, {**prod, "services": {POSTGRES.name: mounted}}) == {"volumes"}
    external = {"postgres-data": {"name": "postgres-data", "external": True}}
    assert differences(prod, {**prod, "volumes": {**prod["volumes"], **external}}) == {"volumes"}
