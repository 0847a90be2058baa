"""What Swarm adds to a deployment: its update, rollback and restart policies, how long to wait
for a service to converge, and durations written the way the engine writes them back.

Pure data (no Pulumi), read by both Swarm mappings: ``depot.components.swarm`` (the
``docker.Service`` the program registers) and ``depot.outputs.compose`` (the stack file for
``docker stack deploy``), so the two cannot disagree about a policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from depot.config.settings import RestartPolicy
from depot.model import ServiceDeployment

UpdateOrder = Literal["start-first", "stop-first"]
RestartCondition = Literal["none", "on-failure", "any"]

SPREAD_LABEL = "depot.zone"
"""The node label whose values are failure domains (a rack, a room, a site): the stateless
services spread their replicas across them (``docker node update --label-add depot.zone=…``).
Nodes without it form one domain of their own; with no node labelled, Swarm's own spreading
across nodes is all there is."""

PULL_ALLOWANCE_SECONDS = 60
"""Time a node may spend pulling an image before its task starts (counted once per service)."""


def go_duration(seconds: int) -> str:
    """``seconds`` as the provider reads a duration back from the engine: ``1m30s``, ``1m``, ``1h``.

    That is Go's ``Duration.String()`` (``1m30s``, ``1m0s``, ``1h0m0s``) with a trailing zero
    unit cut, as the provider shortens it. Written any other way (``90s``), every plan would show
    a change to the same duration.
    """
    if seconds < 0:
        raise ValueError(f"a duration is never negative: {seconds}")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        text = f"{hours}h{minutes}m{secs}s"
    elif minutes:
        text = f"{minutes}m{secs}s"
    else:
        return f"{secs}s"
    if text.endswith("m0s"):
        text = text[: -len("0s")]
    if text.endswith("h0m"):
        text = text[: -len("0m")]
    return text


@dataclass(frozen=True)
class SwarmRestart:
    """Swarm's restart policy: its condition, and how often (0: without limit)."""

    condition: RestartCondition
    max_attempts: int = 0


def swarm_restart(policy: RestartPolicy) -> SwarmRestart:
    """``depot:restart`` in Swarm's terms.

    ``unless-stopped`` has none (Swarm restarts a task however it stopped); the settings refuse it
    for a swarm stack, so reaching it here is a bug.
    """
    if policy.name == "no":
        return SwarmRestart("none")
    if policy.name == "always":
        return SwarmRestart("any")
    if policy.name == "on-failure":
        return SwarmRestart("on-failure", policy.max_retries or 0)
    raise ValueError(f"Swarm has no restart policy for {policy.name}")


@dataclass(frozen=True)
class UpdatePolicy:
    """How Swarm replaces a service's tasks with new ones, and undoes it when they fail."""

    order: UpdateOrder
    monitor_seconds: int
    parallelism: int = 1
    failure_action: Literal["rollback"] = "rollback"


def update_policy(deployment: ServiceDeployment) -> UpdatePolicy:
    """One task at a time, watched for the healthcheck's worst case, rolled back if it fails.

    A stateless service starts its new task before stopping the old one: no moment without a
    healthy task. A service that holds data stops first: two postgres processes must never
    open one data directory, nor two backup tasks write and prune one backups volume.
    """
    holds_data = bool(deployment.spec.volumes)
    return UpdatePolicy(
        order="stop-first" if holds_data else "start-first",
        monitor_seconds=deployment.spec.healthcheck.worst_case_seconds,
    )


def converge_seconds(deployment: ServiceDeployment) -> int:
    """How long ``pulumi up`` waits for a service to run its replicas, healthy.

    An update replaces one task at a time: each may take the healthcheck's worst case to turn
    healthy, then is watched for the update's monitor period; one probe interval of slack, and
    one image pull, on top.
    """
    check = deployment.spec.healthcheck
    per_task = check.worst_case_seconds + update_policy(deployment).monitor_seconds
    return deployment.replicas * per_task + check.interval + PULL_ALLOWANCE_SECONDS


def spread_preferences(deployment: ServiceDeployment) -> tuple[str, ...]:
    """The node labels a service spreads its tasks across, highest precedence first.

    A service pinned by a constraint (postgres beside its volume, a GPU or GNSS node) has
    nowhere to spread; every other one spreads over the zones (``SPREAD_LABEL``), so that losing
    one rack or room leaves a replica of it running in another.
    """
    return () if deployment.placement else (f"node.labels.{SPREAD_LABEL}",)
