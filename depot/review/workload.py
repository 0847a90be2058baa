"""One view of a workload as planned — a container today, a Swarm service next — whatever its type.

The policy rules, the diff, the graph and the renderer ask what a workload *is*: who it runs
as, its healthcheck, limits, mounts, secrets, ports. Each resource type keeps those facts in its
own engine properties — a ``docker.Container`` has ``capabilities.drops``, a ``docker.Service``
``taskSpec.containerSpec.capDrops`` — so each type has one adapter here that reads them into a
``Workload``, and a new runtime is one more adapter, not every reader rewritten.

Adapters read inputs as the offline plan shows them (a secret ``"[secret]"``, an unknown
``"[unknown]"``) and as CrossGuard hands them (secrets decrypted, every number a float). The
smaller views below do the same for networks and images. Nothing here imports Pulumi.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from depot.catalog import Healthcheck
from depot.resource_types import BUILD, COMPONENT_PREFIX, CONTAINER, DOCKER_SECRET, REMOTE_IMAGE
from depot.resource_types import SERVICE as SWARM_SERVICE
from depot.review.planned import UNKNOWN, PlannedResource, is_secret

Around = Mapping[str, PlannedResource]
"""The plan's resources by key: where an adapter finds what a workload refers to."""
NOTHING_AROUND: Around = {}

MIB = 1024 * 1024
NANO_CPUS = 1_000_000_000
PROVIDER_WAIT_TIMEOUT = 60  # docker.Container's wait_timeout when none is set
SWARM_CONVERGE_TIMEOUT = 180  # docker.Service's converge_config timeout when none is set


@dataclass(frozen=True)
class BindMount:
    """A host path mounted into the workload."""

    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class VolumeMount:
    """A named volume mounted into the workload."""

    volume: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class TmpfsMount:
    """An in-memory mount, its options as ``docker run --tmpfs`` writes them."""

    target: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class DeliveredFile:
    """A file the runtime puts into the workload (an upload, a Swarm secret)."""

    path: str
    content_secret: bool  # the content is a secret (encrypted in Pulumi's state)
    owner: str | None = None
    group: str | None = None
    mode: str | None = None


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: its name, whether its value is a secret, and the value if not
    (None too where the plan cannot know it yet)."""

    name: str
    value_secret: bool
    value: str | None = None


@dataclass(frozen=True)
class NetworkAttachment:
    network: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class PublishedPort:
    """A port published on the host: ``address`` None means every address."""

    published: int | None
    target: int | None
    address: str | None
    protocol: str = "tcp"
    mode: str | None = None  # Swarm: ingress (routing mesh) or host


@dataclass(frozen=True)
class Limits:
    memory_mib: int | None = None
    cpus: float | None = None
    memory_reservation_mib: int | None = None
    cpu_reservation: float | None = None


@dataclass(frozen=True)
class Rollout:
    """How a replicated workload is scheduled and updated (Swarm); None for a container."""

    replicas: int | None  # None: one task per node (global mode)
    update_order: str | None = None  # start-first or stop-first
    update_parallelism: int | None = None
    update_failure_action: str | None = None
    update_monitor_seconds: int = 0
    placement: tuple[str, ...] = ()
    rollback_order: str | None = None


@dataclass(frozen=True)
class Workload:
    """What a planned workload is, in the same terms for every resource type."""

    key: str  # the plan key of the resource it is read from
    type: str
    name: str  # as the engine knows it (depot-postgres), else the resource's name
    image: str | None  # the reference it runs, where the plan can tell
    image_resource: str | None  # the plan key of the image resource it runs, if any
    image_built_here: bool  # the image is built by this stack
    user: str | None
    read_only_root: bool
    cap_drops: tuple[str, ...]
    cap_adds: tuple[str, ...]
    no_new_privileges: bool | None  # None: the runtime cannot say (Swarm's provider)
    seccomp_unconfined: bool
    privileged: bool
    host_namespaces: tuple[str, ...]  # shared with the host, by the runtime's property name
    healthcheck: Healthcheck | None
    waited_for: bool  # the deployment waits until it is healthy (converged)
    wait_timeout: int
    restart: str  # no, always, unless-stopped, on-failure
    restart_retries: int  # 0: without limit
    limits: Limits
    tmpfs: tuple[TmpfsMount, ...]
    binds: tuple[BindMount, ...]
    volumes: tuple[VolumeMount, ...]
    files: tuple[DeliveredFile, ...]
    env: tuple[EnvVar, ...]
    env_hidden: bool  # the whole environment is one secret: its names are hidden too
    networks: tuple[NetworkAttachment, ...]
    network_mode: str | None
    ports: tuple[PublishedPort, ...]
    labels: tuple[tuple[str, str], ...]
    log_driver: str | None
    log_options: Mapping[str, str]
    stop_grace_seconds: int
    init: bool | None
    devices: tuple[str, ...]
    gpus: str | None  # what it asks of the host's GPUs (``all``, ``gpu=1``), if anything
    rollout: Rollout | None
    # The entrypoint the runtime is given (a container's ``entrypoints``, a service's
    # ``commands``); empty: the image's own. postgres' is its data lock (catalog).
    entrypoint: tuple[str, ...] = ()

    @property
    def has_healthcheck(self) -> bool:
        """A healthcheck that runs a test (``NONE`` turns the image's own off)."""
        test = self.healthcheck.test if self.healthcheck else ()
        return bool(test) and test[0] != "NONE"

    @property
    def healthcheck_worst_case(self) -> int:
        """Seconds the runtime may take to call it unhealthy (0 without a healthcheck)."""
        return self.healthcheck.worst_case_seconds if self.healthcheck else 0

    def mounts_volume(self, volume: str) -> bool:
        return any(mount.volume == volume for mount in self.volumes)

    def env_value(self, name: str) -> str | None:
        """The plain value of variable ``name``; None when it is absent, secret or unknown."""
        return next((v.value for v in self.env if v.name == name), None)


# --- reading engine values -----------------------------------------------------------------


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str) else ()


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in _list(value))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int:
    """A whole number as the engine sends it (CrossGuard: a float); 0 when it is not one."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0


def _float(value: object) -> float | None:
    """A positive number (``"0.5"`` or 0.5); None when it is none, zero or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number > 0 else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_SECONDS_PER_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def duration_seconds(value: object) -> int:
    """Whole seconds of a duration as the engine writes it (``10s``, ``1m30s``); 0 if none."""
    text = str(value or "0s").strip()
    if text.isdigit():
        return int(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return 0
    return int(sum(float(number) * _SECONDS_PER_UNIT[unit] for number, unit in parts))


def _healthcheck(value: object) -> Healthcheck | None:
    check = _map(value)
    if not check:
        return None
    return Healthcheck(
        test=_strings(check.get("tests")),
        interval=duration_seconds(check.get("interval")),
        timeout=duration_seconds(check.get("timeout")),
        retries=_int(check.get("retries")),
        start_period=duration_seconds(check.get("startPeriod")),
        start_interval=duration_seconds(check.get("startInterval")),
    )


def _labels(value: object) -> tuple[tuple[str, str], ...]:
    return tuple(
        (str(_map(item).get("label")), str(_map(item).get("value"))) for item in _list(value)
    )


def _networks(value: object) -> tuple[NetworkAttachment, ...]:
    # Swarm's provider names a network by ``id`` (``name`` is deprecated there); a container's
    # by ``name``.
    return tuple(
        NetworkAttachment(
            str(_map(n).get("name") or _map(n).get("id")), _strings(_map(n).get("aliases"))
        )
        for n in _list(value)
    )


def _env(entries: Iterable[tuple[str, object]]) -> tuple[EnvVar, ...]:
    return tuple(
        EnvVar(
            name,
            is_secret(value),
            value if isinstance(value, str) and not is_secret(value) and value != UNKNOWN else None,
        )
        for name, value in entries
    )


def _assignment(entry: object) -> tuple[str, str]:
    """``NAME=value`` as (name, value)."""
    name, _, value = str(entry).partition("=")
    return name, value


def display_name(resource: PlannedResource) -> str:
    """The name the engine gives a resource (``depot-postgres``), else its Pulumi name."""
    shown = resource.inputs.get("name")
    return shown if isinstance(shown, str) else resource.name


# --- the image a workload runs -------------------------------------------------------------


def _image_resource(resource: PlannedResource, around: Around) -> PlannedResource | None:
    """The ``RemoteImage`` a workload runs: a dependency, or one under the same component.

    A plan read back from JSON keeps no dependencies (a base planned at another ref has only
    what its JSON says), but the workload and its image sit under the service's component.
    """
    for key in resource.dependencies:
        found = around.get(key)
        if found is not None and found.type == REMOTE_IMAGE:
            return found
    if resource.parent is None:
        return None
    components = {r.name: r for r in around.values() if r.type.startswith(COMPONENT_PREFIX)}
    for image in around.values():
        if image.type == REMOTE_IMAGE and resource.parent in _ancestors(image, components):
            return image
    return None


def _ancestors(resource: PlannedResource, components: Mapping[str, PlannedResource]) -> set[str]:
    found: set[str] = set()
    parent = resource.parent
    while parent is not None and parent not in found:
        found.add(parent)
        component = components.get(parent)
        parent = component.parent if component else None
    return found


def _built_here(resource: PlannedResource, around: Around) -> bool:
    return any(
        dependency.type == BUILD
        for key in resource.dependencies
        if (dependency := around.get(key)) is not None
    )


def _image_fields(
    resource: PlannedResource, around: Around, own_reference: object
) -> tuple[str | None, str | None, bool]:
    """(reference, image resource key, built here) for a workload."""
    image = _image_resource(resource, around)
    if image is not None:
        return _text(image.inputs.get("name")), image.key, _built_here(image, around)
    return _text(own_reference), None, _built_here(resource, around)


# --- docker.Container ----------------------------------------------------------------------

_HOST_NAMESPACES = ("networkMode", "pidMode", "ipcMode", "usernsMode")


def container_workload(resource: PlannedResource, around: Around = NOTHING_AROUND) -> Workload:
    """A ``docker:index/container:Container`` as a workload."""
    inputs = resource.inputs
    capabilities = _map(inputs.get("capabilities"))
    security = _strings(inputs.get("securityOpts"))
    mounts = [_map(m) for m in _list(inputs.get("mounts"))]
    volumes = [_map(v) for v in _list(inputs.get("volumes"))]
    envs = inputs.get("envs")
    image, image_resource, built_here = _image_fields(resource, around, None)
    return Workload(
        key=resource.key,
        type=resource.type,
        name=display_name(resource),
        image=image,
        image_resource=image_resource,
        image_built_here=built_here,
        user=_text(inputs.get("user")),
        read_only_root=inputs.get("readOnly") is True,
        cap_drops=_strings(capabilities.get("drops")),
        cap_adds=_strings(capabilities.get("adds")),
        no_new_privileges=any(
            o in ("no-new-privileges:true", "no-new-privileges") for o in security
        ),
        seccomp_unconfined=any(o.replace("=", ":") == "seccomp:unconfined" for o in security),
        privileged=bool(inputs.get("privileged")),
        host_namespaces=tuple(mode for mode in _HOST_NAMESPACES if inputs.get(mode) == "host"),
        healthcheck=_healthcheck(inputs.get("healthcheck")),
        waited_for=inputs.get("wait") is True,
        wait_timeout=_int(inputs.get("waitTimeout")) or PROVIDER_WAIT_TIMEOUT,
        restart=_text(inputs.get("restart")) or "no",
        restart_retries=_int(inputs.get("maxRetryCount")),
        limits=Limits(
            memory_mib=_int(inputs.get("memory")) or None,
            cpus=_float(inputs.get("cpus")),
            memory_reservation_mib=_int(inputs.get("memoryReservation")) or None,
        ),
        tmpfs=tuple(
            TmpfsMount(str(target), tuple(str(options).split(",")) if options else ())
            for target, options in _map(inputs.get("tmpfs")).items()
        ),
        binds=(
            *(
                BindMount(m["source"], str(m.get("target")), m.get("readOnly") is True)
                for m in mounts
                if m.get("type") not in ("volume", "tmpfs") and isinstance(m.get("source"), str)
            ),
            *(
                BindMount(v["hostPath"], str(v.get("containerPath")), v.get("readOnly") is True)
                for v in volumes
                if isinstance(v.get("hostPath"), str)
            ),
        ),
        volumes=(
            *(
                VolumeMount(str(m.get("source")), str(m.get("target")), m.get("readOnly") is True)
                for m in mounts
                if m.get("type") == "volume"
            ),
            *(
                VolumeMount(v["volumeName"], str(v.get("containerPath")), v.get("readOnly") is True)
                for v in volumes
                if isinstance(v.get("volumeName"), str)
            ),
        ),
        files=tuple(
            DeliveredFile(
                path=str(upload.get("file")),
                content_secret=is_secret(upload.get("content")),
                owner=_text(upload.get("owner")),
                group=_text(upload.get("group")),
                mode=_text(upload.get("permissions")),
            )
            for upload in map(_map, _list(inputs.get("uploads")))
        ),
        env=() if is_secret(envs) else _env(_assignment(entry) for entry in _list(envs)),
        env_hidden=is_secret(envs),
        networks=_networks(inputs.get("networksAdvanced")),
        network_mode=_text(inputs.get("networkMode")),
        ports=tuple(
            PublishedPort(
                published=_int(port.get("external")) or None,
                target=_int(port.get("internal")) or None,
                address=_text(port.get("ip")) or None,
                protocol=_text(port.get("protocol")) or "tcp",
            )
            for port in map(_map, _list(inputs.get("ports")))
        ),
        labels=_labels(inputs.get("labels")),
        log_driver=_text(inputs.get("logDriver")),
        log_options={str(k): str(v) for k, v in _map(inputs.get("logOpts")).items()},
        stop_grace_seconds=_int(inputs.get("destroyGraceSeconds")),
        init=inputs.get("init") if isinstance(inputs.get("init"), bool) else None,
        devices=tuple(str(_map(d).get("hostPath")) for d in _list(inputs.get("devices"))),
        gpus=_text(inputs.get("gpus")),
        rollout=None,
        entrypoint=_strings(inputs.get("entrypoints")),
    )


# --- docker.Service (Swarm) ----------------------------------------------------------------

# Swarm's restart conditions in the words the depot uses (depot:restart, Compose's).
_SWARM_RESTART = {"none": "no", "on-failure": "on-failure", "any": "always"}


def _swarm_secret_is_encrypted(name: object, around: Around) -> bool:
    """Whether the ``docker.Secret`` named ``name`` holds its data as a Pulumi secret.

    True when the plan does not show it: nothing says the content is plain.
    """
    for resource in around.values():
        if resource.type == DOCKER_SECRET and resource.inputs.get("name") == name:
            return is_secret(resource.inputs.get("data"))
    return True


def _tmpfs_options(mount: Mapping[str, Any]) -> tuple[str, ...]:
    options = _map(mount.get("tmpfsOptions"))
    size, mode = _int(options.get("sizeBytes")), _int(options.get("mode"))
    return (*([f"size={size}"] if size else []), *([f"mode={mode:o}"] if mode else []))


def service_workload(resource: PlannedResource, around: Around = NOTHING_AROUND) -> Workload:
    """A Swarm ``docker:index/service:Service`` as a workload (pulumi-docker 5.x inputs)."""
    inputs = resource.inputs
    task = _map(inputs.get("taskSpec"))
    spec = _map(task.get("containerSpec"))
    resources = _map(task.get("resources"))
    limits, reservation = _map(resources.get("limits")), _map(resources.get("reservation"))
    restart = _map(task.get("restartPolicy"))
    mounts = [_map(m) for m in _list(spec.get("mounts"))]
    env = spec.get("env")
    converge = inputs.get("convergeConfig")
    mode, update = _map(inputs.get("mode")), _map(inputs.get("updateConfig"))
    rollback = _map(inputs.get("rollbackConfig"))
    generic = _map(reservation.get("genericResources"))
    gpus = [s for s in _strings(generic.get("discreteResourcesSpecs")) if "gpu" in s.lower()]
    image, image_resource, built_here = _image_fields(resource, around, spec.get("image"))
    return Workload(
        key=resource.key,
        type=resource.type,
        name=display_name(resource),
        image=image,
        image_resource=image_resource,
        image_built_here=built_here,
        user=_text(spec.get("user")),
        read_only_root=spec.get("readOnly") is True,
        cap_drops=_strings(spec.get("capDrops")),
        cap_adds=_strings(spec.get("capAdds")),
        no_new_privileges=None,  # the provider's containerSpec cannot set it
        seccomp_unconfined=False,  # nor change the seccomp profile
        privileged=False,  # nor run a task privileged
        host_namespaces=(),
        healthcheck=_healthcheck(spec.get("healthcheck")),
        waited_for=converge is not None,
        wait_timeout=duration_seconds(_map(converge).get("timeout")) or SWARM_CONVERGE_TIMEOUT,
        # Swarm restarts any task that exits unless told otherwise.
        restart=_SWARM_RESTART.get(str(restart.get("condition") or "any"), "always"),
        restart_retries=_int(restart.get("maxAttempts")),
        limits=Limits(
            memory_mib=_int(limits.get("memoryBytes")) // MIB or None,
            cpus=_int(limits.get("nanoCpus")) / NANO_CPUS or None,
            memory_reservation_mib=_int(reservation.get("memoryBytes")) // MIB or None,
            cpu_reservation=_int(reservation.get("nanoCpus")) / NANO_CPUS or None,
        ),
        tmpfs=tuple(
            TmpfsMount(str(m.get("target")), _tmpfs_options(m))
            for m in mounts
            if m.get("type") == "tmpfs"
        ),
        binds=tuple(
            BindMount(m["source"], str(m.get("target")), m.get("readOnly") is True)
            for m in mounts
            if m.get("type") not in ("volume", "tmpfs") and isinstance(m.get("source"), str)
        ),
        volumes=tuple(
            VolumeMount(str(m.get("source")), str(m.get("target")), m.get("readOnly") is True)
            for m in mounts
            if m.get("type") == "volume"
        ),
        files=tuple(
            DeliveredFile(
                path=str(secret.get("fileName")),
                content_secret=_swarm_secret_is_encrypted(secret.get("secretName"), around),
                owner=_text(secret.get("fileUid")),
                group=_text(secret.get("fileGid")),
                mode=f"{_int(secret.get('fileMode')):04o}" if secret.get("fileMode") else None,
            )
            for secret in map(_map, _list(spec.get("secrets")))
        ),
        env=() if is_secret(env) else _env((str(k), v) for k, v in _map(env).items()),
        env_hidden=is_secret(env),
        networks=_networks(task.get("networksAdvanceds")),
        network_mode=None,
        ports=tuple(
            PublishedPort(
                published=_int(port.get("publishedPort")) or None,
                target=_int(port.get("targetPort")) or None,
                address=None,  # Swarm publishes on every address of every node
                protocol=_text(port.get("protocol")) or "tcp",
                mode=_text(port.get("publishMode")) or "ingress",
            )
            for port in map(_map, _list(_map(inputs.get("endpointSpec")).get("ports")))
        ),
        labels=_labels(spec.get("labels")),
        log_driver=_text(_map(task.get("logDriver")).get("name")),
        log_options={
            str(k): str(v) for k, v in _map(_map(task.get("logDriver")).get("options")).items()
        },
        stop_grace_seconds=duration_seconds(spec.get("stopGracePeriod")),
        init=spec.get("init") if isinstance(spec.get("init"), bool) else None,
        devices=(),
        gpus=",".join(gpus) or None,
        rollout=Rollout(
            replicas=None
            if "global" in mode
            else _int(_map(mode.get("replicated")).get("replicas")) or 1,
            update_order=_text(update.get("order")),
            update_parallelism=_int(update.get("parallelism")) if "parallelism" in update else None,
            update_failure_action=_text(update.get("failureAction")),
            update_monitor_seconds=duration_seconds(update.get("monitor")),
            placement=_strings(_map(task.get("placement")).get("constraints")),
            rollback_order=_text(rollback.get("order")),
        ),
        entrypoint=_strings(spec.get("commands")),
    )


# --- every workload type -------------------------------------------------------------------

Adapter = Callable[[PlannedResource, Around], Workload]

ADAPTERS: Mapping[str, Adapter] = {
    CONTAINER: container_workload,
    SWARM_SERVICE: service_workload,
}
"""One adapter per resource type that runs a workload: a new runtime is one entry here."""

WORKLOAD_TYPES = frozenset(ADAPTERS)


def is_workload(resource: PlannedResource) -> bool:
    return resource.type in ADAPTERS


def workload(resource: PlannedResource, around: Around = NOTHING_AROUND) -> Workload:
    """``resource`` as a workload; ``around`` (the plan by key) lets it find its image.

    Raises KeyError for a resource that runs no workload (see ``is_workload``).
    """
    return ADAPTERS[resource.type](resource, around)


# --- networks and images -------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkView:
    """A ``docker.Network`` as the rules read it."""

    name: str | None
    internal: bool
    driver: str | None
    attachable: bool


def network_view(resource: PlannedResource) -> NetworkView:
    inputs = resource.inputs
    return NetworkView(
        name=_text(inputs.get("name")),
        internal=inputs.get("internal") is True,
        driver=_text(inputs.get("driver")),
        attachable=inputs.get("attachable") is True,
    )


@dataclass(frozen=True)
class ImageView:
    """An image a workload runs (``RemoteImage``): its reference, and whether it is built here."""

    reference: str | None
    built_here: bool


def image_view(resource: PlannedResource, around: Around = NOTHING_AROUND) -> ImageView:
    return ImageView(_text(resource.inputs.get("name")), _built_here(resource, around))


@dataclass(frozen=True)
class BuildView:
    """An image build (``docker-build.Image``): the tags it writes and its Dockerfile."""

    tags: tuple[str, ...]
    dockerfile: str | None


def build_view(resource: PlannedResource) -> BuildView:
    inputs = resource.inputs
    return BuildView(
        tags=_strings(inputs.get("tags")),
        dockerfile=_text(_map(inputs.get("dockerfile")).get("location")),
    )
