"""What the swarm test deploys is the stack file: the override switches three things and no more.

These need no engine: they check the stack file the swarm test hands to ``docker stack deploy``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from depot.outputs.swarm_stack import stack_document
from depot.standins import STANDIN_OF
from tests.engine.swarm import override_changes, swarm_override, swarm_settings

LAYOUT = Path("/tmp/depot-engine-swarm-layout")
DIGEST = "sha256:" + "0" * 64
PUSHED = {
    name: f"127.0.0.1:5000/depot-standin-{name}:0123456789abcdef@{DIGEST}"
    for name in set(STANDIN_OF.values())
}
CONSOLE_PORT = 41234
# Every path the override may change, and nothing else.
ALLOWED = re.compile(
    r"services\.[a-z-]+\.image"
    r"|services\.[a-z-]+\.deploy\.endpoint_mode"
    r"|services\.console\.ports\[0\]\.(mode|published)"
)


def exported() -> dict[str, Any]:
    return stack_document(swarm_settings(LAYOUT))


def test_the_override_changes_only_images_endpoint_mode_and_the_consoles_port() -> None:
    original = exported()
    changes = override_changes(original, swarm_override(original, PUSHED, CONSOLE_PORT))
    assert changes
    assert {path for path in changes if not ALLOWED.fullmatch(path)} == set()


def test_every_service_gets_its_stand_in_by_digest_dnsrr_and_host_mode() -> None:
    original = exported()
    deployed = swarm_override(original, PUSHED, CONSOLE_PORT)
    for name, service in deployed["services"].items():
        assert service["image"] == PUSHED[STANDIN_OF[name]]
        assert service["deploy"]["endpoint_mode"] == "dnsrr"
    (port,) = deployed["services"]["console"]["ports"]
    assert port == {
        **original["services"]["console"]["ports"][0],
        "mode": "host",
        "published": 41234,
    }
    assert original["services"]["console"]["ports"][0]["mode"] == "ingress"  # not changed in place


def test_the_stack_is_the_cluster_stack_without_its_gpu_and_rtk_profiles() -> None:
    services = set(exported()["services"])
    assert services == {"postgres", "discovery", "dispatch", "grafana", "console", "backup"}


def test_override_changes_finds_a_change_anywhere() -> None:
    original = exported()
    changed = swarm_override(original, PUSHED, CONSOLE_PORT)
    changed["services"]["postgres"]["deploy"]["update_config"]["order"] = "start-first"
    changed["networks"]["depot-network"].pop("attachable")
    found = override_changes(original, changed)
    assert "services.postgres.deploy.update_config.order" in found
    assert "networks.depot-network.attachable" in found
