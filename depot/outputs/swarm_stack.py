"""A swarm stack as a stack file for ``docker stack deploy``, from the model the program deploys.

``stack_service`` is the sibling of ``depot.components.swarm.to_service_args``: one
``ServiceDeployment`` mapped to the Compose keys the Swarm loader reads, with the same update,
rollback, restart and convergence figures (``depot.swarm``). What the stack file cannot say that
the program does is in README "Docker Swarm"; keys ``docker stack deploy`` would ignore are left
out rather than written to be ignored (``container_name``, ``depends_on``, ``security_opt``).
"""

from __future__ import annotations

from typing import Any, get_args

from depot.catalog import (
    DATABASE_NETWORK,
    DEPOT_NETWORK,
    LOG_OPTIONS,
    NetworkName,
)
from depot.config.settings import DepotSettings
from depot.model import ServiceDeployment, deployments
from depot.outputs.compose import (
    FileMode,
    compose_healthcheck,
    data_and_bind_volumes,
    dump,
    given_secret_lines,
    volumes_and_secrets,
)
from depot.outputs.secret_files import SECRETS_DIR, env_file_name
from depot.swarm import go_duration, spread_preferences, swarm_restart, update_policy

STACK_NAME = "depot"


def stack_document(settings: DepotSettings) -> dict[str, Any]:
    """The stack file of a swarm stack: its enabled services and what they use."""
    planned = deployments(settings)
    specs = [d.spec for d in planned]
    document: dict[str, Any] = {
        "services": {d.name: stack_service(d) for d in planned},
        # Fixed names, as the program gives them: without `name:` the stack's name would
        # prefix them (`depot_postgres-data`), and a depot moved between the two would lose
        # its data.
        "networks": {
            network: {
                "name": network,
                "driver": "overlay",
                **({"attachable": True} if network == DEPOT_NETWORK else {}),
                **({"internal": True} if network == DATABASE_NETWORK else {}),
            }
            for network in get_args(NetworkName)
            if any(network in spec.networks for spec in specs)
        },
    }
    return {**document, **volumes_and_secrets(planned)}


def stack_service(deployment: ServiceDeployment) -> dict[str, Any]:
    """One service as ``docker stack deploy`` creates it: ``to_service_args``, key by key."""
    spec = deployment.spec
    published = deployment.published
    service: dict[str, Any] = {
        "image": _image(deployment),
        # postgres' data lock in front of the image's own entrypoint, as in the program.
        "entrypoint": list(spec.entrypoint) if spec.entrypoint else None,
        "command": list(spec.command) if spec.command else None,
        "environment": dict(deployment.env) or None,
        # DATABASE_URL embeds the password and Swarm cannot build it from a secret file: the
        # CLI reads it from this env file (`depot secrets init`) into the service spec.
        "env_file": (
            f"./{SECRETS_DIR}/{env_file_name(spec.name)}" if deployment.secret_env else None
        ),
        "healthcheck": compose_healthcheck(spec.healthcheck, go_duration),
        "networks": {network: {"aliases": [spec.name]} for network in spec.networks},
        "ports": [
            {
                "target": published.target,
                "published": published.published,
                "protocol": "tcp",
                "mode": "ingress",
            }
        ]
        if published
        else None,
        "volumes": _volumes(deployment) or None,
        "secrets": [
            {
                "source": secret.secret,
                "target": secret.secret,  # under /run/secrets
                "uid": str(secret.owner),
                "gid": str(secret.owner),
                "mode": FileMode(secret.mode),
            }
            for secret in deployment.secret_files
        ]
        or None,
        "read_only": spec.writable_root is None,
        "user": spec.user,
        "cap_drop": ["ALL"],
        "cap_add": list(spec.capabilities) or None,
        "init": spec.init,
        "stop_grace_period": go_duration(spec.stop_grace_seconds),
        "deploy": _deploy(deployment),
        "logging": {"driver": "json-file", "options": dict(LOG_OPTIONS)},
        "labels": dict(sorted(deployment.labels.items())) or None,
    }
    return {key: value for key, value in service.items() if value is not None}


def stack_yaml(settings: DepotSettings) -> str:
    """The stack file: a header saying how to deploy it, then the document."""
    return _header(settings) + dump(stack_document(settings))


def _image(deployment: ServiceDeployment) -> str:
    push = deployment.push
    if deployment.build_context is None or push is None:
        return deployment.image_reference or ""
    # The digest of a push is known only once `pulumi up` ran it: the stack file names the
    # commit's tag, which `docker stack deploy` resolves to its digest for every node.
    return push.references[0]


def _volumes(deployment: ServiceDeployment) -> list[dict[str, Any]]:
    # Long syntax: the Swarm loader reads a tmpfs size only here (not from `tmpfs:`).
    scratch: list[dict[str, Any]] = [
        {"type": "tmpfs", "target": mount.path, "tmpfs": {"size": mount.options.size_bytes}}
        for mount in deployment.tmpfs
    ]
    return scratch + data_and_bind_volumes(deployment, relative_binds=False)


def _deploy(deployment: ServiceDeployment) -> dict[str, Any]:
    update = update_policy(deployment)
    restart = swarm_restart(deployment.restart)
    deploy: dict[str, Any] = {
        "mode": "replicated",
        "replicas": deployment.replicas,
        "endpoint_mode": "vip",
        "update_config": {
            "parallelism": update.parallelism,
            "order": update.order,
            "failure_action": update.failure_action,
            "monitor": go_duration(update.monitor_seconds),
        },
        "rollback_config": {
            "parallelism": update.parallelism,
            "order": update.order,
            "monitor": go_duration(update.monitor_seconds),
        },
        "restart_policy": {
            "condition": restart.condition,
            **({"max_attempts": restart.max_attempts} if restart.max_attempts else {}),
        },
    }
    placement: dict[str, Any] = {}
    if deployment.placement:
        placement["constraints"] = list(deployment.placement)
    spread = spread_preferences(deployment)
    if spread:
        placement["preferences"] = [{"spread": label} for label in spread]
    if placement:
        deploy["placement"] = placement
    resources = _resources(deployment)
    if resources:
        deploy["resources"] = resources
    return deploy


def _resources(deployment: ServiceDeployment) -> dict[str, Any]:
    limits = deployment.limits
    resources: dict[str, Any] = {}
    reservations: dict[str, Any] = {}
    if limits is not None:
        resources["limits"] = {"cpus": f"{limits.cpus:g}", "memory": f"{limits.memory}M"}
        if limits.memory_reservation is not None:
            reservations["memory"] = f"{limits.memory_reservation}M"
    if deployment.generic_resources:
        reservations["generic_resources"] = [
            {"discrete_resource_spec": {"kind": kind, "value": int(value)}}
            for kind, _, value in (spec.partition("=") for spec in deployment.generic_resources)
        ]
    if reservations:
        resources["reservations"] = reservations
    return resources


def _header(settings: DepotSettings) -> str:
    lines = [
        f"# The depot, stack {settings.stack}, for Docker Swarm: generated by",
        f"# `depot compose --stack {settings.stack}` from the model the Pulumi program deploys.",
        "# Do not edit it: regenerate it. Create the secret files it reads first (`depot secrets",
        "# init`); Swarm secrets cannot change, so a new value needs a new secret name. Images",
        "# named by tag are resolved to their digest by `docker stack deploy` for every node.",
        "# Swarm has no start order: services retry until what they need is healthy",
        '# (README "Docker Swarm"). Deploy it from the project root, on a manager:',
        f"#   docker stack deploy --prune -c <this file> {STACK_NAME}",
        *given_secret_lines(settings),
    ]
    return "\n".join(lines) + "\n"
