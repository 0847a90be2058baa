"""``depot drift``: the live Docker host against the plan, field by field in the plan's terms.

The plan's containers are read as ``Workload``s (``depot.review.workload``); each live container
(``docker container inspect`` through the stack's host) is compared with its workload on what an
operator changes by hand or what breaks quietly: image, user, read-only root, capabilities,
no-new-privileges, privileged, restart, memory, CPUs, tmpfs, mounts, environment names (never
values), networks and published ports. Then the networks (there, internal or not, and any
container attached that the plan does not have) and the data volume.

A swarm stack's services are read through a manager (``docker service inspect``, every call
bounded: ``depot.host.cluster``) and compared in the same terms, with what Swarm adds: replicas,
placement constraints and update order (``find_swarm_drift``).

Either runtime that deployed the depot is read the same way: the Pulumi program runs an image by
ID (``sha256:…``), the Compose export by reference; both are compared with what the plan's
reference names on the host now, which also catches a tag moved under a running container.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from depot.catalog import DATA_LOCK_NAME
from depot.config.settings import DepotSettings
from depot.exit_status import ExitStatus
from depot.host.cluster import depot_service, manager_call, read_services
from depot.host.docker import DockerCli
from depot.model import deployments
from depot.paths import ProjectPath
from depot.resource_types import CONTAINER, NETWORK, SERVICE, VOLUME
from depot.review.planned import UNKNOWN, Plan
from depot.review.workload import NetworkView, Workload, network_view, workload

MIB = 1024 * 1024
NANO_CPUS = 1_000_000_000
SHORT_ID = 19  # sha256: and 12 hex digits, as `docker images` shows an ID


@dataclass(frozen=True)
class Expected:
    """What the plan says the host runs."""

    workloads: tuple[Workload, ...]
    env_names: Mapping[str, frozenset[str]]  # by container name, where the plan hides them
    networks: tuple[NetworkView, ...]
    volumes: tuple[str, ...]
    # A Swarm service's networks by name, from the model: the plan names them by the ID the
    # network resource gets at `up`, which no plan knows.
    service_networks: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Drift:
    """One difference between the host and the plan."""

    subject: str  # a container, network or volume name
    field: str
    message: str

    def line(self) -> str:
        return f"{self.subject} {self.field}: {self.message}"


def expected_from_plan(plan: Plan, settings: DepotSettings) -> Expected:
    """The plan's containers, networks and volumes; hidden env names from the model.

    dispatch's whole environment is one secret in the plan (it holds ``DATABASE_URL``), so its
    names come from the model the program built it from.
    """
    around = plan.by_key()
    containers = tuple(
        workload(r, around) for r in plan.resources if r.type in (CONTAINER, SERVICE)
    )
    names = {
        d.spec.container_name: frozenset(
            [name for name, _ in d.env] + [env.name for env in d.secret_env]
        )
        for d in deployments(settings)
    }
    return Expected(
        workloads=containers,
        env_names={w.name: names[w.name] for w in containers if w.env_hidden and w.name in names},
        networks=tuple(network_view(r) for r in plan.resources if r.type == NETWORK),
        volumes=tuple(
            str(r.inputs.get("name") or r.name) for r in plan.resources if r.type == VOLUME
        ),
        service_networks={
            d.spec.container_name: frozenset(d.spec.networks) for d in deployments(settings)
        },
    )


def find_drift(expected: Expected, cli: DockerCli) -> list[Drift]:
    """Every difference between the host ``cli`` reaches and ``expected``."""
    names = [w.name for w in expected.workloads]
    live = {c["Name"].lstrip("/"): c for c in cli.inspect("container", *names)}
    references = {w.image for w in expected.workloads if _known(w.image)}
    references |= {str(c["Config"]["Image"]) for c in live.values()}
    image_ids = _image_ids(cli, sorted(r for r in references if r and not r.startswith("sha256:")))
    drifts: list[Drift] = []
    for planned in expected.workloads:
        container = live.get(planned.name)
        if container is None:
            drifts.append(Drift(planned.name, "container", "not on the host; the plan runs it"))
            continue
        image_env = _image_env(cli, str(container["Image"]))
        drifts.extend(
            compare_container(
                planned, container, image_ids, image_env, expected.env_names.get(planned.name)
            )
        )
    drifts.extend(_network_drift(expected, cli, set(names)))
    found_volumes = {v["Name"] for v in cli.inspect("volume", *expected.volumes)}
    drifts.extend(
        Drift(volume, "volume", "not on the host; the plan keeps it")
        for volume in expected.volumes
        if volume not in found_volumes
    )
    return drifts


def report(stack: str, drifts: Sequence[Drift], expected: Expected) -> tuple[str, ExitStatus]:
    """One line per drift, then the verdict; exit status 0 none, 1 drift."""
    lines = [d.line() for d in drifts]
    services = sum(w.type == SERVICE for w in expected.workloads)
    if drifts:
        count = f"{len(drifts)} difference{'s' if len(drifts) > 1 else ''}"
        where = "the swarm" if services else "the host"
        lines.append(f"depot drift: stack {stack}: {count} between {where} and the plan")
    elif services:
        lines.append(
            f"depot drift: stack {stack}: none; the swarm runs what the plan says ({services} "
            f"services, {len(expected.networks)} networks)"
        )
    else:
        lines.append(
            f"depot drift: stack {stack}: none; the host runs what the plan says "
            f"({len(expected.workloads)} containers, {len(expected.networks)} networks, "
            f"{len(expected.volumes)} volume{'s' if len(expected.volumes) != 1 else ''})"
        )
    return "".join(f"{line}\n" for line in lines), (
        ExitStatus.ATTENTION if drifts else ExitStatus.OK
    )


# --- Swarm services ------------------------------------------------------------------------


def find_swarm_drift(expected: Expected, cli: DockerCli) -> list[Drift]:
    """Every difference between the swarm a manager (``cli``) describes and ``expected``.

    A service is matched by its depot name whichever runtime made it (``depot-postgres`` by
    ``pulumi up``, ``depot_postgres`` by ``docker stack deploy``); a depot service the plan has
    not is named too. Every manager call is bounded (``depot.host.cluster``).
    """
    live = {
        name: service
        for service in read_services(cli)
        if (name := depot_service(str(service["Spec"]["Name"]))) is not None
    }
    network_names = _swarm_network_names(cli)
    drifts: list[Drift] = []
    planned_services = set()
    for planned in expected.workloads:
        if planned.type != SERVICE:
            continue
        service = planned.name.removeprefix("depot-")
        planned_services.add(service)
        found = live.get(service)
        if found is None:
            drifts.append(Drift(planned.name, "service", "not on the swarm; the plan runs it"))
            continue
        drifts.extend(
            compare_service(
                planned,
                found,
                network_names,
                expected.env_names.get(planned.name),
                expected.service_networks.get(planned.name, frozenset()),
            )
        )
    drifts.extend(
        Drift(str(live[name]["Spec"]["Name"]), "service", "on the swarm; the plan has no such "
              "service")
        for name in sorted(set(live) - planned_services)
    )  # fmt: skip
    live_networks = {n["Name"]: n for n in _swarm_networks(cli)}
    for network in expected.networks:
        if network.name is not None and (
            drift := _network_state(
                network.name, network.internal, live_networks.get(network.name), SWARM
            )
        ):
            drifts.append(drift)
    return drifts


def compare_service(
    planned: Workload,
    service: Mapping[str, Any],
    network_names: Mapping[str, str],
    hidden_env_names: frozenset[str] | None,
    planned_networks: frozenset[str],
) -> list[Drift]:
    """The differences between one live service (``docker service inspect``) and its workload."""
    spec = service["Spec"]
    task = spec.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    resources = task.get("Resources") or {}
    limits, reservations = resources.get("Limits") or {}, resources.get("Reservations") or {}
    rollout = planned.rollout
    drifts: list[Drift] = []

    def differs(field: str, live: object, plan: object) -> None:
        if live != plan:
            drifts.append(
                Drift(
                    planned.name, field, f"{_show(live)} on the swarm, the plan says {_show(plan)}"
                )
            )

    runs = str(container.get("Image") or "")
    if _known(planned.image) and not _same_image(runs, str(planned.image)):
        drifts.append(Drift(planned.name, "image", f"runs {runs}, the plan says {planned.image}"))
    if rollout is not None:
        replicated = (spec.get("Mode") or {}).get("Replicated")
        live_replicas = int(replicated.get("Replicas", 1)) if replicated else None
        differs("replicas", _show_replicas(live_replicas), _show_replicas(rollout.replicas))
        differs(
            "placement",
            set((task.get("Placement") or {}).get("Constraints") or []),
            set(rollout.placement),
        )
        if rollout.update_order:
            differs(
                "update order", (spec.get("UpdateConfig") or {}).get("Order"), rollout.update_order
            )
    drifts.extend(_entrypoint_drift(planned, container.get("Command"), SWARM))
    if planned.user is not None:
        differs("user", container.get("User") or None, planned.user)
    differs("read-only root", bool(container.get("ReadOnly")), planned.read_only_root)
    differs(
        "dropped capabilities",
        _capabilities(container.get("CapabilityDrop")),
        _capabilities(planned.cap_drops),
    )
    differs(
        "added capabilities",
        _capabilities(container.get("CapabilityAdd")),
        _capabilities(planned.cap_adds),
    )
    policy = task.get("RestartPolicy") or {}
    differs(
        "restart",
        _restart(_SWARM_RESTART.get(str(policy.get("Condition") or "any"), "always"),
                 int(policy.get("MaxAttempts") or 0)),
        _restart(planned.restart, planned.restart_retries),
    )  # fmt: skip
    differs("memory", _mib(limits.get("MemoryBytes")), _limit(planned.limits.memory_mib, "MiB"))
    differs("CPUs", _cpus(limits.get("NanoCPUs")), _limit(planned.limits.cpus, "CPUs"))
    differs(
        "memory reservation",
        _mib(reservations.get("MemoryBytes")),
        _limit(planned.limits.memory_reservation_mib, "MiB"),
    )
    live_env = {entry.partition("=")[0] for entry in container.get("Env") or []}
    if not planned.env_hidden:
        drifts.extend(
            _set_drift(planned.name, "env", live_env, {e.name for e in planned.env}, SWARM)
        )
    elif hidden_env_names is not None:
        drifts.extend(_set_drift(planned.name, "env", live_env, hidden_env_names, SWARM))
    drifts.extend(
        _set_drift(
            planned.name,
            "networks",
            {
                network_names.get(str(n.get("Target")), str(n.get("Target")))
                for n in task.get("Networks") or []
            },
            planned_networks,
            SWARM,
        )
    )
    drifts.extend(
        _set_drift(
            planned.name,
            "secret files",
            {_secret_path(s) for s in container.get("Secrets") or []},
            {file.path for file in planned.files},
            SWARM,
        )
    )
    drifts.extend(
        _set_drift(
            planned.name,
            "volumes",
            {
                f"{m.get('Source')} at {m.get('Target')}"
                for m in container.get("Mounts") or []
                if m.get("Type") == "volume"
            },
            {f"{v.volume} at {v.target}" for v in planned.volumes},
            SWARM,
        )
    )
    drifts.extend(
        _set_drift(
            planned.name,
            "ports",
            {
                f"{p.get('PublishedPort')} to {p.get('TargetPort')}/{p.get('Protocol', 'tcp')} "
                f"({p.get('PublishMode', 'ingress')})"
                for p in (spec.get("EndpointSpec") or {}).get("Ports") or []
            },
            {
                f"{p.published} to {p.target}/{p.protocol} ({p.mode or 'ingress'})"
                for p in planned.ports
            },
            SWARM,
        )
    )
    return drifts


SWARM = "the swarm"
_SWARM_RESTART = {"none": "no", "on-failure": "on-failure", "any": "always"}


def _same_image(runs: str, planned: str) -> bool:
    """The same image: by digest when both name one, else by reference (the engine appends
    the digest it resolved a tag to: ``name:tag@sha256:…``)."""
    live_digest, planned_digest = runs.partition("@")[2], planned.partition("@")[2]
    if live_digest and planned_digest:
        return live_digest == planned_digest
    return runs.partition("@")[0] == planned.partition("@")[0]


def _secret_path(secret: Mapping[str, Any]) -> str:
    name = str((secret.get("File") or {}).get("Name") or "")
    return name if name.startswith("/") else f"/run/secrets/{name}"


def _show_replicas(replicas: int | None) -> str:
    return "one per node (global)" if replicas is None else str(replicas)


def _swarm_networks(cli: DockerCli) -> list[dict[str, Any]]:
    ids = manager_call(cli, "network", "ls", "--quiet", "--filter", "driver=overlay").split()
    if not ids:
        return []
    found: list[dict[str, Any]] = json.loads(manager_call(cli, "network", "inspect", "--", *ids))
    return found


def _swarm_network_names(cli: DockerCli) -> dict[str, str]:
    return {str(n["Id"]): str(n["Name"]) for n in _swarm_networks(cli)}


# --- one container -------------------------------------------------------------------------


def compare_container(
    planned: Workload,
    container: Mapping[str, Any],
    image_ids: Mapping[str, str],
    image_env: Iterable[str],
    hidden_env_names: frozenset[str] | None = None,
) -> list[Drift]:
    """The differences between one live container (``docker inspect``) and its workload."""
    config, host = container["Config"], container["HostConfig"]
    drifts = _image_drift(planned, container, image_ids)

    def differs(field: str, live: object, plan: object) -> None:
        if live != plan:
            drifts.append(
                Drift(
                    planned.name, field, f"{_show(live)} on the host, the plan says {_show(plan)}"
                )
            )

    if planned.entrypoint:  # else the image's own, which only the image knows
        drifts.extend(_entrypoint_drift(planned, config.get("Entrypoint"), "the host"))
    if planned.user is not None:
        differs("user", config.get("User") or None, planned.user)
    differs("read-only root", bool(host.get("ReadonlyRootfs")), planned.read_only_root)
    differs(
        "dropped capabilities", _capabilities(host.get("CapDrop")), _capabilities(planned.cap_drops)
    )
    differs(
        "added capabilities", _capabilities(host.get("CapAdd")), _capabilities(planned.cap_adds)
    )
    if planned.no_new_privileges is not None:
        security = host.get("SecurityOpt") or []
        live_nnp = any(o in ("no-new-privileges:true", "no-new-privileges") for o in security)
        differs("no-new-privileges", live_nnp, planned.no_new_privileges)
    differs("privileged", bool(host.get("Privileged")), planned.privileged)
    policy = host.get("RestartPolicy") or {}
    differs(
        "restart",
        _restart(policy.get("Name") or "no", int(policy.get("MaximumRetryCount") or 0)),
        _restart(planned.restart, planned.restart_retries),
    )
    limits = planned.limits
    differs("memory", _mib(host.get("Memory")), _limit(limits.memory_mib, "MiB"))
    differs("CPUs", _cpus(host.get("NanoCpus")), _limit(limits.cpus, "CPUs"))
    differs(
        "memory reservation",
        _mib(host.get("MemoryReservation")),
        _limit(limits.memory_reservation_mib, "MiB"),
    )
    differs(
        "tmpfs",
        {path: set(str(options).split(",")) for path, options in (host.get("Tmpfs") or {}).items()},
        {mount.target: set(mount.options) for mount in planned.tmpfs},
    )
    drifts.extend(
        _set_drift(
            planned.name, "mounts", _live_mounts(container, planned), _planned_mounts(planned)
        )
    )
    planned_env = (
        hidden_env_names if planned.env_hidden and hidden_env_names is not None
        else frozenset(env.name for env in planned.env)
    )  # fmt: skip
    if not planned.env_hidden or hidden_env_names is not None:
        drifts.extend(
            _set_drift(planned.name, "env", _live_env_names(config, image_env), planned_env)
        )
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    drifts.extend(
        _set_drift(planned.name, "networks", set(networks), {n.network for n in planned.networks})
    )
    drifts.extend(_set_drift(planned.name, "ports", _live_ports(host), _planned_ports(planned)))
    return drifts


def _entrypoint_drift(planned: Workload, live: object, place: str) -> list[Drift]:
    """The entrypoint it runs, if not the plan's; never the whole script in the line."""
    runs = tuple(str(word) for word in live) if isinstance(live, list) else ()
    if runs == planned.entrypoint:
        return []
    if DATA_LOCK_NAME in planned.entrypoint:
        message = (
            f"not the plan's data lock on {place}: a second postgres started on its data "
            "directory would not wait for this one to stop"
        )
    else:
        image_own = "the image's own"
        message = (
            f"{' '.join(runs) or image_own} on {place}, the plan says "
            f"{' '.join(planned.entrypoint) or image_own}"
        )
    return [Drift(planned.name, "entrypoint", message)]


def _image_drift(
    planned: Workload, container: Mapping[str, Any], image_ids: Mapping[str, str]
) -> list[Drift]:
    runs, running_id = str(container["Config"]["Image"]), str(container["Image"])
    name = planned.name
    if not runs.startswith("sha256:") and _known(planned.image) and runs != planned.image:
        return [Drift(name, "image", f"runs {runs}, the plan says {planned.image}")]
    reference = runs if not runs.startswith("sha256:") else planned.image
    if not _known(reference):
        return []
    now = image_ids.get(str(reference))
    if now is None:
        return [Drift(name, "image", f"runs {_short(running_id)}; {reference} is not on the host")]
    if now != running_id:
        return [
            Drift(
                name,
                "image",
                f"{reference} now names {_short(now)}, but the container runs "
                f"{_short(running_id)}: the image was replaced under the same name after the "
                "container was created",
            )
        ]
    return []


def _live_mounts(container: Mapping[str, Any], planned: Workload) -> set[str]:
    # A file the plan delivers (an upload; Compose: a bind of the secret file) is not a mount.
    delivered = {file.path for file in planned.files}
    mounts = set()
    for mount in container.get("Mounts") or []:
        access = _access(not mount.get("RW", True))
        if mount.get("Type") == "volume":
            mounts.add(f"volume {mount.get('Name')} at {mount.get('Destination')} ({access})")
        elif mount.get("Type") == "bind" and mount.get("Destination") not in delivered:
            mounts.add(f"{mount.get('Source')} at {mount.get('Destination')} ({access})")
    return mounts


def _planned_mounts(planned: Workload) -> set[str]:
    mounts = {f"volume {v.volume} at {v.target} ({_access(v.read_only)})" for v in planned.volumes}
    mounts |= {
        f"{ProjectPath(b.source).host} at {b.target} ({_access(b.read_only)})"
        for b in planned.binds
    }
    return mounts


def _access(read_only: bool) -> str:
    return "read-only" if read_only else "read-write"


def _live_env_names(config: Mapping[str, Any], image_env: Iterable[str]) -> set[str]:
    """Names the container sets beyond its image's own entries (PATH, PGDATA, ...)."""
    from_image = set(image_env)
    return {entry.partition("=")[0] for entry in config.get("Env") or [] if entry not in from_image}


def _live_ports(host: Mapping[str, Any]) -> set[str]:
    ports = set()
    for target, bindings in (host.get("PortBindings") or {}).items():
        for binding in bindings or []:
            address = binding.get("HostIp") or "0.0.0.0"  # noqa: S104 - Docker's own default
            ports.add(f"{address}:{binding.get('HostPort')} to {target}")
    return ports


def _planned_ports(planned: Workload) -> set[str]:
    return {
        f"{p.address or '0.0.0.0'}:{p.published} to {p.target}/{p.protocol}"  # noqa: S104
        for p in planned.ports
    }


def _set_drift(
    subject: str, field: str, live: set[str], planned: Iterable[str], where: str = "the host"
) -> list[Drift]:
    wanted = set(planned)
    extra, missing = sorted(live - wanted), sorted(wanted - live)
    parts = [
        *(f"{item} on {where} only" for item in extra),
        *(f"{item} missing" for item in missing),
    ]
    return [Drift(subject, field, "; ".join(parts))] if parts else []


# --- networks ------------------------------------------------------------------------------


def _network_drift(expected: Expected, cli: DockerCli, planned_names: set[str]) -> list[Drift]:
    names = [n.name for n in expected.networks if n.name]
    live = {n["Name"]: n for n in cli.inspect("network", *names)}
    drifts = []
    for network in expected.networks:
        if network.name is None:
            continue
        found = live.get(network.name)
        if drift := _network_state(network.name, network.internal, found, "the host"):
            drifts.append(drift)
        if found is None:
            continue
        attached = sorted(c.get("Name", "?") for c in (found.get("Containers") or {}).values())
        drifts.extend(
            Drift(
                network.name,
                "unknown container",
                f"{name} is attached, and the plan has no such container",
            )
            for name in attached
            if name not in planned_names
        )
    return drifts


def _network_state(
    name: str, internal: bool, found: Mapping[str, Any] | None, where: str
) -> Drift | None:
    """A planned network missing from ``where`` (the host, the swarm), or with another
    ``internal`` flag there."""
    if found is None:
        return Drift(name, "network", f"not on {where}; the plan has it")
    if bool(found.get("Internal")) != internal:
        return Drift(
            name,
            "internal",
            f"{_show(bool(found.get('Internal')))} on {where}, the plan says {_show(internal)}",
        )
    return None


# --- reading values ------------------------------------------------------------------------


def _image_ids(cli: DockerCli, references: Sequence[str]) -> dict[str, str]:
    """The image ID each reference names on the host now (absent ones left out)."""
    ids = {}
    for reference in references:
        found = cli.inspect("image", reference)
        if found:
            ids[reference] = str(found[0]["Id"])
    return ids


def _image_env(cli: DockerCli, image_id: str) -> list[str]:
    found = cli.inspect("image", image_id)
    return list((found[0].get("Config") or {}).get("Env") or []) if found else []


def _known(reference: str | None) -> bool:
    return bool(reference) and reference != UNKNOWN and not str(reference).startswith("[")


def _capabilities(values: object) -> set[str]:
    """Capabilities without Docker's ``CAP_`` prefix, which the engine adds or not by version."""
    if not isinstance(values, (list, tuple)):
        return set()
    return {str(v).upper().removeprefix("CAP_") for v in values}


def _restart(name: str, retries: int) -> str:
    return f"{name}:{retries}" if retries else name


def _mib(value: object) -> str:
    return f"{int(value) // MIB} MiB" if isinstance(value, int) and value > 0 else "no limit"


def _cpus(value: object) -> str:
    return f"{value / NANO_CPUS:g} CPUs" if isinstance(value, int) and value > 0 else "no limit"


def _limit(value: float | None, unit: str) -> str:
    return f"{value:g} {unit}" if value else "no limit"


def _short(image_id: str) -> str:
    return image_id[:SHORT_ID]


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, set):
        return ", ".join(sorted(map(str, value))) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k} {','.join(sorted(v))}" for k, v in sorted(value.items())) or "none"
    return str(value)
