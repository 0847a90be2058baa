"""The image budget: its arithmetic here, the real images where a Docker engine runs."""

from __future__ import annotations

import pytest

from depot.tools.image_budget import BUDGET_MB, MB, engine_unavailable, image_sizes, over_budget


def test_every_built_service_has_a_budget_within_the_references_promise() -> None:
    assert set(BUDGET_MB) == {"discovery", "dispatch", "splat-worker", "rtk-base"}
    assert all(budget <= 20 for budget in BUDGET_MB.values())


def test_an_image_over_budget_is_reported() -> None:
    assert over_budget({"discovery": 25 * MB, "dispatch": 14 * MB}) == [
        "depot-discovery: 25.0 MB, over its 20 MB budget"
    ]


def test_images_within_budget_pass() -> None:
    assert over_budget({"discovery": 20 * MB, "rtk-base": 11 * MB}) == []


def test_built_images_are_within_budget() -> None:
    reason = engine_unavailable()
    if reason:
        pytest.skip(f"needs a Docker engine: {reason}")
    sizes = image_sizes("dev")
    if not sizes:
        pytest.skip("no depot-*:dev images on this engine; build them with `make up`")
    assert over_budget(sizes) == []
