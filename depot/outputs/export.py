"""``depot compose``: the file a stack is run from without Pulumi, for its runtime."""

from __future__ import annotations

from depot.config.settings import DepotSettings
from depot.outputs.compose import compose_yaml
from depot.outputs.swarm_stack import stack_yaml


def export_yaml(settings: DepotSettings) -> str:
    """A Compose file for a host stack; a stack file for ``docker stack deploy`` for a swarm one."""
    return stack_yaml(settings) if settings.runtime == "swarm" else compose_yaml(settings)
