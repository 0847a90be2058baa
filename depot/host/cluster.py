"""A Docker Swarm as its managers describe it: nodes, the depot's services and their tasks.

Read through one manager with the docker CLI (``depot.host.docker``), every call bounded by
``MANAGER_TIMEOUT``: a swarm that has lost its leader (a majority of its managers down or cut
off) makes a manager's answer hang for half a minute before it fails, and ``docker info`` for
twenty seconds. Such a swarm is said in one line (``NoLeaderError``), never waited on.

The parsing functions take what the CLI printed and return plain records, so ``depot doctor``'s
cluster section and ``depot drift``'s Swarm services decide on data a test can write by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from depot.host.docker import DockerCli, DockerError, last_line
from depot.outputs.swarm_stack import STACK_NAME

MANAGER_TIMEOUT = 10.0
"""Seconds a manager may take to answer; a swarm with a leader answers in well under one."""
NO_LEADER = "does not have a leader"  # the engine's own words, once it gives up
GUIDE = "docs/several-hosts.md"


class NoLeaderError(DockerError):
    """The swarm's managers cannot act: no leader (quorum lost, or a leader being elected)."""


@dataclass(frozen=True)
class SwarmNode:
    """One node as ``docker node inspect`` describes it."""

    node_id: str
    hostname: str
    state: str  # ready, down, unknown, disconnected
    availability: str  # active, pause, drain
    manager: bool
    reachable: bool  # a manager that the others reach (always True for a worker)
    leader: bool
    engine: str
    labels: dict[str, str]

    @property
    def up(self) -> bool:
        return self.state == "ready" and self.availability == "active"


@dataclass(frozen=True)
class SwarmTask:
    """One task of a service: where it runs (or why it cannot) and what it runs."""

    service: str
    node: str  # hostname; "" while pending
    desired: str  # running, shutdown, ...
    state: str  # running, pending, rejected, failed, ...
    error: str
    image: str


def manager_call(cli: DockerCli, *args: str) -> str:
    """``docker args`` on the manager; its output. ``NoLeaderError`` when the swarm has none."""
    try:
        result = cli.run(*args, timeout=MANAGER_TIMEOUT)
    except DockerError:
        raise NoLeaderError(no_leader_message(cli.host, args)) from None
    if result.returncode != 0:
        said = last_line(result.stderr)
        if NO_LEADER in said or "DeadlineExceeded" in said:
            raise NoLeaderError(no_leader_message(cli.host, args))
        raise DockerError(f"docker {' '.join(args[:2])} at {cli.host}: {said}")
    return result.stdout


def no_leader_message(host: str, args: Sequence[str]) -> str:
    """The one line for a swarm whose managers cannot act."""
    return (
        f"the swarm has no leader: its manager at {host} did not answer `docker "
        f"{' '.join(args[:2])}` within {MANAGER_TIMEOUT:g} s or said it has none. A majority of "
        f"the managers must be up and reach each other; bring them back, or recover with "
        f"`docker swarm init --force-new-cluster` on a surviving manager ({GUIDE}); nothing was "
        "done"
    )


def require_leader(cli: DockerCli) -> None:
    """Return when the swarm's managers can act; else ``NoLeaderError`` within the bound."""
    listed = manager_call(cli, "node", "ls", "--format", "{{.ManagerStatus}}")
    if "Leader" not in listed.split():
        raise NoLeaderError(no_leader_message(cli.host, ("node", "ls")))


# --- nodes -------------------------------------------------------------------------------------


def read_nodes(cli: DockerCli) -> list[SwarmNode]:
    ids = manager_call(cli, "node", "ls", "--quiet").split()
    if not ids:
        return []
    inspected = manager_call(cli, "node", "inspect", "--format", "{{json .}}", "--", *ids)
    return parse_nodes(inspected)


def parse_nodes(text: str) -> list[SwarmNode]:
    """``docker node inspect --format '{{json .}}'``, one node a line."""
    return [node_from(json.loads(line)) for line in text.splitlines() if line.strip()]


def node_from(raw: dict[str, Any]) -> SwarmNode:
    spec, status = raw.get("Spec") or {}, raw.get("Status") or {}
    description = raw.get("Description") or {}
    manager = raw.get("ManagerStatus")
    return SwarmNode(
        node_id=str(raw.get("ID", "")),
        hostname=str(description.get("Hostname") or raw.get("ID", "")),
        state=str(status.get("State", "unknown")),
        availability=str(spec.get("Availability", "active")),
        manager=manager is not None,
        reachable=manager is None or manager.get("Reachability") == "reachable",
        leader=bool(manager and manager.get("Leader")),
        engine=str((description.get("Engine") or {}).get("EngineVersion", "")),
        labels={str(k): str(v) for k, v in (spec.get("Labels") or {}).items()},
    )


# --- services and tasks ------------------------------------------------------------------------


def stack_service_names(service: str) -> tuple[str, str]:
    """The names a depot service has on a swarm: ``pulumi up``'s and ``docker stack deploy``'s."""
    return f"depot-{service}", f"{STACK_NAME}_{service}"


def depot_service(name: str) -> str | None:
    """The depot service a swarm service name is, or None (``depot_postgres`` → ``postgres``)."""
    found = re.fullmatch(rf"(?:depot-|{STACK_NAME}_)([a-z][a-z0-9-]*)", name)
    return found[1] if found else None


def read_services(cli: DockerCli) -> list[dict[str, Any]]:
    """``docker service inspect`` of every service the manager knows."""
    ids = manager_call(cli, "service", "ls", "--quiet").split()
    if not ids:
        return []
    inspected = manager_call(cli, "service", "inspect", "--", *ids)
    services: list[dict[str, Any]] = json.loads(inspected)
    return services


def read_tasks(cli: DockerCli, services: Iterable[str]) -> list[SwarmTask]:
    names = list(services)
    if not names:
        return []
    listed = manager_call(
        cli, "service", "ps", "--no-trunc",
        "--format", "{{json .}}", "--", *names,
    )  # fmt: skip
    return parse_tasks(listed)


def parse_tasks(text: str) -> list[SwarmTask]:
    """``docker service ps --format '{{json .}}'``: the task's name is ``<service>.<slot>``."""
    tasks = []
    for line in text.splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        name = str(raw.get("Name", "")).strip().lstrip("\\_ ")
        tasks.append(
            SwarmTask(
                service=name.rsplit(".", 1)[0],
                node=str(raw.get("Node", "")),
                desired=str(raw.get("DesiredState", "")).lower(),
                state=str(raw.get("CurrentState", "")).split(" ")[0].lower(),
                error=str(raw.get("Error", "")),
                image=str(raw.get("Image", "")),
            )
        )
    return tasks
