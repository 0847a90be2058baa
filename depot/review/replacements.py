"""Which property changes make a provider replace a resource instead of updating it in place.

Sources (read at these versions; pulumi-docker 5.x bridges kreuzwerker's provider v4):
- ``docker:index/container:Container``: kreuzwerker/terraform-provider-docker v4.5.0
  (5074970c), ``internal/provider/resource_docker_container.go``. Every top-level attribute is
  ``ForceNew`` except the ones in ``_CONTAINER_IN_PLACE``, and there is no CustomizeDiff; nested
  attributes follow their parent. The update function (``resource_docker_container_funcs.go``)
  applies only restart, retries, memory, CPU shares/set and device limits to the running
  container through ``docker update``; the rest of that list is provider bookkeeping, except
  healthcheck, init and tmpfs, which are stored but never applied (the program therefore
  declares them ``replaceOnChanges``).
- ``docker:index/network:Network``: every input is ``ForceNew`` (same release,
  ``resource_docker_network.go``).
- ``docker:index/volume:Volume``: every input but Swarm's ``cluster`` is ``ForceNew``
  (``resource_docker_volume.go``).
- ``docker:index/remoteImage:RemoteImage``: ``name``, ``pullTriggers``, ``triggers`` and
  ``platform`` are ``ForceNew`` (``resource_docker_image.go``).
- ``docker-build:index:Image``: pulumi/pulumi-docker-build v0.0.22 (eb787fad),
  ``provider/internal/image.go``: ``Diff`` reports every change as an update (a rebuild), never
  a replacement.
- ``random:index/randomPassword:RandomPassword``: hashicorp/terraform-provider-random v3.9.0,
  ``internal/provider/resource_password.go``: every input is ``ForceNew``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from depot.resource_types import CONTAINER, NETWORK, RANDOM_PASSWORD, REMOTE_IMAGE, VOLUME

_CONTAINER_IN_PLACE = frozenset(
    {
        # applied to the running container by `docker update`
        "restart", "maxRetryCount", "memory", "memoryReservation", "memorySwap", "cpuShares",
        "cpuSet", "deviceReadBps", "deviceReadIops", "deviceWriteBps", "deviceWriteIops",
        "mustRun",
        # the provider's own behaviour on create, delete and refresh
        "rm", "start", "attach", "logs", "wait", "waitTimeout", "destroyGraceSeconds",
        "removeVolumes", "containerReadRefreshTimeoutMilliseconds",
        # stored, never applied to a running container
        "healthcheck", "init", "tmpfs", "cpuPeriod", "cpuQuota",
    }
)  # fmt: skip

_REPLACE_ALL_BUT: dict[str, frozenset[str]] = {
    CONTAINER: _CONTAINER_IN_PLACE,
    NETWORK: frozenset(),
    VOLUME: frozenset({"cluster"}),
    REMOTE_IMAGE: frozenset({"keepLocally", "forceRemove", "build"}),
    RANDOM_PASSWORD: frozenset(),
}


def replaces_on_change(type_: str, path: str, replace_on_changes: Iterable[str] = ()) -> bool:
    """True when changing ``path`` (``a.b``) of a ``type_`` resource deletes and recreates it.

    ``replace_on_changes`` is the resource's own ``replaceOnChanges`` option. Types not listed
    (providers, components, docker-build images) are updated in place. A path may index a list
    (``uploads[0].content``): what counts is the top-level property.
    """
    top = re.split(r"[.\[]", path, maxsplit=1)[0]
    if top in replace_on_changes or "*" in replace_on_changes:
        return True
    in_place = _REPLACE_ALL_BUT.get(type_)
    return in_place is not None and top not in in_place
