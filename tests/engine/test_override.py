"""What the tier runs is the export: the override swaps images only, the stack only its host paths.

These need no engine: they check the files the tier hands to Compose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from depot.catalog import SERVICES
from depot.config import load_settings
from depot.outputs.compose import compose_document
from depot.paths import project_relative
from depot.standins import OVERRIDABLE, STANDIN_OF, apt_source, override_document, override_yaml
from tests.conftest import STACKS, stack_config
from tests.engine.harness import floor_without_start_interval, health_gated_floor, tier_settings

IMAGES = {name: f"depot-standin-{name}:0123456789abcdef" for name in set(STANDIN_OF.values())}
LAYOUT = Path("/tmp/depot-engine-layout")


def exported(stack: str) -> dict[str, Any]:
    return compose_document(tier_settings(stack, LAYOUT))


@pytest.mark.parametrize("stack", STACKS)
def test_the_override_sets_only_images_builds_and_commands(stack: str) -> None:
    override = override_document(exported(stack), IMAGES)
    assert set(override) == {"services"}
    for name, change in override["services"].items():
        assert set(change) <= OVERRIDABLE, name


@pytest.mark.parametrize("stack", STACKS)
def test_every_exported_service_gets_its_stand_in_and_loses_its_build(stack: str) -> None:
    export = exported(stack)
    override = yaml.safe_load(
        override_yaml(export, IMAGES).replace("!reset", "")  # the tag is Compose's, not YAML's
    )["services"]
    assert set(override) == set(export["services"])
    for name, service in export["services"].items():
        assert override[name]["image"] == IMAGES[STANDIN_OF[name]]
        assert ("build" in override[name]) is ("build" in service), name


def test_the_override_resets_builds_with_composes_reset_tag() -> None:
    assert "build: !reset" in override_yaml(exported("dev"), IMAGES)


@pytest.mark.parametrize("stack", STACKS)
def test_the_tier_changes_only_the_consoles_host_paths_and_backup_targets(stack: str) -> None:
    shipped = compose_document(load_settings(stack, stack_config(stack)))
    tier = exported(stack)
    # Written as every export writes a host path: relative when it is beside this checkout (a
    # clone in /tmp has the layout beside it), absolute otherwise.
    host_paths = {
        "/usr/share/nginx/html": project_relative(LAYOUT / "console-dist"),
        "/data/sessions": project_relative(LAYOUT / "sessions"),
    }
    for volume in shipped["services"]["console"]["volumes"]:
        volume["source"] = host_paths[volume["target"]]
    # And the backups stay on the host: the shipped targets are off this machine.
    backup = shipped["services"].get("backup")
    if backup is not None:
        backup["environment"]["DEPOT_BACKUP_TARGETS"] = ""
    assert tier == shipped


def test_the_floor_is_the_postgres_dispatch_console_chain() -> None:
    base = [spec for spec in SERVICES if spec.profile is None]
    assert health_gated_floor(base) == (1 + 1 + 1, ["postgres", "dispatch", "console"])
    assert floor_without_start_interval(base) == (
        5 + 10 + 10,
        ["postgres", "dispatch", "console"],
    )


def test_the_debian_source_is_read_from_apt_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: trixie trixie-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\n"
        "Suites: trixie-security\n"
    )
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb [arch=amd64] http://other.invalid/debian bookworm main\n")
    assert apt_source((deb822,)) == ("http://mirror.invalid/debian", "trixie")
    assert apt_source((tmp_path / "absent", one_line)) == (
        "http://other.invalid/debian",
        "bookworm",
    )
