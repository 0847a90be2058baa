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
- ``docker:index/service:Service`` (Swarm): kreuzwerker v4.5.0, ``resource_docker_service.go``
  (the schema's ``willReplaceOnChanges`` in pulumi-docker 5.2): only ``name``, ``auth``, the
  container ``labels``, ``hosts`` and ``sysctl``, the task's ``networks_advanceds`` (id,
  aliases, driver options) and adding or removing the ``mode`` block replace a service. Every
  other change — image, env, secrets, limits, replica counts — is a Swarm update: tasks are
  replaced as ``update_config`` says (start-first: rolling, no downtime).
- ``docker:index/secret:Secret``: immutable, every input is ``ForceNew``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from depot.resource_types import (
    CONTAINER,
    DOCKER_SECRET,
    NETWORK,
    RANDOM_BYTES,
    RANDOM_PASSWORD,
    REMOTE_IMAGE,
    SERVICE,
    VOLUME,
)

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
    RANDOM_BYTES: frozenset(),
    DOCKER_SECRET: frozenset(),
}

# Types updated in place but for these paths: a change at or below one replaces the resource.
_REPLACE_ONLY: dict[str, tuple[str, ...]] = {
    SERVICE: (
        "name",
        "auth",
        "taskSpec.containerSpec.labels",
        "taskSpec.containerSpec.hosts",
        "taskSpec.containerSpec.sysctl",
        "taskSpec.networksAdvanceds",
    ),
}
# Paths whose block being added or removed replaces, while a change inside it does not: the
# diff names such a change by the block's own path (``mode``), a change inside by a longer one.
_REPLACE_WHOLE: dict[str, frozenset[str]] = {SERVICE: frozenset({"mode"})}


def replaces_on_change(type_: str, path: str, replace_on_changes: Iterable[str] = ()) -> bool:
    """True when changing ``path`` (``a.b``) of a ``type_`` resource deletes and recreates it.

    ``replace_on_changes`` is the resource's own ``replaceOnChanges`` option. Types not listed
    (providers, components, docker-build images) are updated in place. A path may index a list
    (``uploads[0].content``): what counts is the top-level property.
    """
    top = re.split(r"[.\[]", path, maxsplit=1)[0]
    if top in replace_on_changes or "*" in replace_on_changes:
        return True
    if type_ in _REPLACE_ONLY:
        return path in _REPLACE_WHOLE.get(type_, ()) or any(
            path == field or path.startswith((f"{field}.", f"{field}["))
            for field in _REPLACE_ONLY[type_]
        )
    in_place = _REPLACE_ALL_BUT.get(type_)
    return in_place is not None and top not in in_place
