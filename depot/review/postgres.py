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
from depot.review.planned import PlannedResource
from depot.review.workload import is_workload, workload
from depot.types import parse_image_reference

# A tag naming the major itself (`pg17`, as extension images do) wins over a leading version.
_PG_IN_TAG = re.compile(r"(?:^|[^a-z])pg(?P<major>\d+)")
_LEADING_VERSION = re.compile(r"^(?P<major>\d+)")


def postgres_major(reference: str) -> int | None:
    """The major version an image reference's tag names (``postgres:17.2-alpine@sha256:…``).

    None when the reference has no tag (a digest alone) or its tag starts with no number.
    """
    parsed = parse_image_reference(reference)
    tag = parsed.tag if parsed else None
    if tag is None:
        return None
    match = _PG_IN_TAG.search(tag) or _LEADING_VERSION.match(tag)
    return int(match["major"]) if match else None


def mounts_data(resource: PlannedResource) -> bool:
    """True for a workload that mounts the stack's data volume."""
    return is_workload(resource) and workload(resource).mounts_volume(POSTGRES_DATA_VOLUME)


def data_image(service: PlannedResource, resources: Iterable[PlannedResource]) -> str | None:
    """The image reference the workload ``service`` runs, as the plan ``resources`` shows it."""
    return workload(service, {r.key: r for r in resources}).image
