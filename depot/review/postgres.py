"""Which postgres major version runs on the stack's data volume, read from a plan.

A postgres server opens only a data directory initialised by its own major version: replacing
``postgres:17.x`` with ``postgres:18.x`` on ``postgres-data`` leaves a container that cannot
start on the data it is given. ``depot diff`` names such a change as data at risk, and the
``postgres-major`` policy rule holds the image to the major the stack records
(``depot:data.postgresMajor``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from depot.catalog import POSTGRES_DATA_VOLUME
from depot.review.plan import PlannedResource

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
_COMPONENT_PREFIX = "depot:"

# A tag naming the major itself (`pg17`, as extension images do) wins over a leading version.
_PG_IN_TAG = re.compile(r"(?:^|[^a-z])pg(?P<major>\d+)")
_LEADING_VERSION = re.compile(r"^(?P<major>\d+)")


def postgres_major(reference: str) -> int | None:
    """The major version an image reference's tag names (``postgres:17.2-alpine@sha256:…``).

    None when the reference has no tag (a digest alone) or its tag starts with no number.
    """
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]  # a registry's :port is before the last slash
    if ":" not in last:
        return None
    tag = last.split(":", 1)[1]
    match = _PG_IN_TAG.search(tag) or _LEADING_VERSION.match(tag)
    return int(match["major"]) if match else None


def mounts_data(resource: PlannedResource) -> bool:
    """True for a container that mounts the stack's data volume."""
    if resource.type != CONTAINER:
        return False
    volumes = resource.inputs.get("volumes")
    return isinstance(volumes, list) and any(
        isinstance(v, dict) and v.get("volumeName") == POSTGRES_DATA_VOLUME for v in volumes
    )


def data_image(container: PlannedResource, resources: Iterable[PlannedResource]) -> str | None:
    """The image reference ``container`` runs, found through the service component both share.

    The plan keeps no dependencies in its JSON (a base planned at another ref has only what its
    JSON says), but both the container and its ``RemoteImage`` sit under the service's component.
    """
    everything = list(resources)
    components = {r.name: r for r in everything if r.type.startswith(_COMPONENT_PREFIX)}
    for image in everything:
        reference = image.inputs.get("name")
        if image.type != REMOTE_IMAGE or not isinstance(reference, str):
            continue
        if container.parent is not None and container.parent in _ancestors(image, components):
            return reference
    return None


def _ancestors(resource: PlannedResource, components: dict[str, PlannedResource]) -> set[str]:
    found: set[str] = set()
    parent = resource.parent
    while parent is not None and parent not in found:
        found.add(parent)
        component = components.get(parent)
        parent = component.parent if component else None
    return found
