"""The resource types the depot registers and reads back, by the names the engine gives them.

One place for the strings: plans, policy, review and the recording all compare a resource's
``type`` with these, and a new runtime (Swarm's ``docker.Service``) is one more name here.
Nothing here imports Pulumi or a provider.
"""

from __future__ import annotations

CONTAINER = "docker:index/container:Container"
SERVICE = "docker:index/service:Service"
"""A Docker Swarm service: the same workload as a container, nested under ``taskSpec``."""
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BUILD = "docker-build:index:Image"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
DOCKER_SECRET = "docker:index/secret:Secret"  # noqa: S105 - a type name, not a secret
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 - a type name
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
"""Random bytes kept (secret) in state: the SCRAM salt of the database password's rotation."""
COMMAND = "command:local:Command"
"""A command run where ``pulumi up`` runs: the depot's password rotations (not a workload)."""
ROTATION_SUFFIX = "-rotation"
"""A rotation command is named for its secret: ``database-password-rotation``."""


def rotation_name(secret: str) -> str:
    """The name of the command that rotates ``secret`` (see ``ROTATION_SUFFIX``)."""
    return secret.replace("_", "-") + ROTATION_SUFFIX


STACK = "pulumi:pulumi:Stack"

COMPONENT_PREFIX = "depot:"
"""The project's own component resources (``depot:services:Service`` …) start with this."""
