"""The depot as a Compose file, from the same resolved model the Pulumi program deploys.

``compose_service`` is the sibling of ``depot.components.service.to_container_args``: both map one
``depot.model.ServiceDeployment``, field by field, so the export and the program cannot drift
(tests/test_compose.py walks both, service by service). Where Compose needs something else, or
cannot say what the program does, the code says why; README "Compose export" lists what the file
cannot express.

Every service is exported, the optional ones with their Compose ``profiles:`` so that
``docker compose --profile gpu up`` starts them as in the reference; an optional service whose
build context the stack does not configure cannot be built and is left out (the header names it).

Paths are written for a file placed at the project root: in or beside the project they are
relative to it (``../discovery``, ``./secrets/…``), as ``depot plan`` shows them; others stay
absolute. Secrets are files under ``./secrets/`` (``depot secrets init``); no value is ever read
or written here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import yaml

from depot.catalog import (
    DATABASE_NETWORK,
    LOG_OPTIONS,
    POSTGRES_DATA_VOLUME,
    SECRETS,
    SERVICES,
    Healthcheck,
    NetworkName,
    ServiceSpec,
    VolumeName,
)
from depot.config.settings import DepotSettings, RestartPolicy
from depot.model import ServiceDeployment, deployments, unbuildable
from depot.outputs.secret_files import SECRETS_DIR, env_file_name, secret_file_name
from depot.paths import project_relative
from depot.types import PROFILES

PROJECT_NAME = "depot"


class FileMode(int):
    """A permission mode, written in octal (``0400``) as Compose files and people write it."""


def compose_document(settings: DepotSettings, *, absolute_binds: bool = False) -> dict[str, Any]:
    """The Compose document of ``settings``' stack: every exportable service, and what they use.

    Its bind mounts name host paths as this project writes them (``../console/dist``): Compose
    reads them from the folder of the file, so the file belongs at the project root. A file
    written anywhere else (``make demo``'s folder) takes ``absolute_binds``: from there ``../x``
    would name another folder, which Docker would mount empty.
    """
    exported = deployments(_with_every_buildable_profile(settings))
    specs = [d.spec for d in exported]
    document: dict[str, Any] = {
        "name": PROJECT_NAME,
        "services": {d.name: compose_service(d, absolute_binds=absolute_binds) for d in exported},
        # Fixed names, as the program gives them: without `name:` Compose would prefix the
        # project (`depot_postgres-data`), and a depot moved between the two would lose its data.
        "networks": {
            network: {"name": network, "driver": "bridge", "internal": network == DATABASE_NETWORK}
            for network in get_args(NetworkName)
            if any(network in spec.networks for spec in specs)
        },
    }
    sections = volumes_and_secrets(exported)
    if settings.data.adopt_volume:
        # Made by `depot migrate` before the first `up`: Compose must neither create it nor
        # delete it (`down -v` leaves external volumes alone).
        sections["volumes"][POSTGRES_DATA_VOLUME] = {"name": POSTGRES_DATA_VOLUME, "external": True}
    return {**document, **sections}


def volumes_and_secrets(exported: Sequence[ServiceDeployment]) -> dict[str, Any]:
    """The top-level ``volumes:`` and ``secrets:`` the services use (Compose and stack files).

    The data volumes by their fixed names; each secret from the file `depot secrets init`
    writes, or the operator (a secret that is given, never generated).
    """
    sections: dict[str, Any] = {}
    volumes = [v for v in get_args(VolumeName) if any(_mounts(d, v) for d in exported)]
    if volumes:
        sections["volumes"] = {volume: {"name": volume} for volume in volumes}
    secrets = dict.fromkeys(secret.secret for d in exported for secret in d.secret_files)
    if secrets:
        sections["secrets"] = {
            secret: {"file": f"./{SECRETS_DIR}/{secret_file_name(secret)}"} for secret in secrets
        }
    return sections


def _mounts(deployment: ServiceDeployment, volume: VolumeName) -> bool:
    return any(mount.volume == volume for mount in deployment.spec.volumes)


def compose_service(
    deployment: ServiceDeployment, *, absolute_binds: bool = False
) -> dict[str, Any]:
    """One service as Compose runs it: ``to_container_args``, field by field (None: left out)."""
    spec = deployment.spec
    published = deployment.published
    resources = _resources(deployment)
    service: dict[str, Any] = {
        "container_name": spec.container_name,
        **_image(deployment),
        "profiles": [spec.profile] if spec.profile else None,
        # postgres' data lock in front of the image's own entrypoint, as in the program.
        "entrypoint": list(spec.entrypoint) if spec.entrypoint else None,
        "command": list(spec.command) if spec.command else None,
        # The program creates the dependencies with `wait` and this container after them;
        # Compose waits for their healthchecks itself.
        "depends_on": {name: {"condition": "service_healthy"} for name in deployment.start_after}
        or None,
        "restart": _restart(deployment.restart),
        "environment": dict(deployment.env) or None,
        # DATABASE_URL embeds the password, and Compose cannot build a value from a file
        # secret: it comes from an env file that `depot secrets init` writes (mode 0600).
        "env_file": (
            f"./{SECRETS_DIR}/{env_file_name(spec.name)}" if deployment.secret_env else None
        ),
        "healthcheck": compose_healthcheck(spec.healthcheck),
        # The program's first network is the container's own (network_mode); Compose attaches
        # them all itself. The first only picks the default route, which internal networks lack.
        "networks": {network: {"aliases": [spec.name]} for network in spec.networks},
        "ports": [
            {
                "target": published.target,
                "published": published.published,  # an integer: Swarm's loader refuses a string
                "host_ip": deployment.publish_address,
                "protocol": "tcp",
            }
        ]
        if published
        else None,
        "volumes": data_and_bind_volumes(deployment, relative_binds=not absolute_binds) or None,
        # `path:options`: Compose hands Docker the same tmpfs map the program sends.
        "tmpfs": [f"{tmpfs.path}:{tmpfs.options.mount_options}" for tmpfs in deployment.tmpfs]
        or None,
        "secrets": [
            {
                "source": secret.secret,
                "target": secret.path,
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
        "security_opt": ["no-new-privileges:true"],
        # SIGTERM reaches our entrypoints through an init, as in the program.
        "init": spec.init,
        "stop_grace_period": f"{spec.stop_grace_seconds}s",
        "deploy": {"resources": resources} if resources else None,
        "logging": {"driver": "json-file", "options": dict(LOG_OPTIONS)},
        "labels": dict(sorted(deployment.labels.items())) or None,
    }
    return {key: value for key, value in service.items() if value is not None}


def compose_yaml(settings: DepotSettings, *, absolute_binds: bool = False) -> str:
    """The Compose file of ``settings``' stack: a header saying how to use it, then the document
    (``absolute_binds``: as ``compose_document``'s).

    For a host stack; a swarm stack's file is ``depot.outputs.swarm_stack.stack_yaml``.
    """
    return _header(settings) + dump(compose_document(settings, absolute_binds=absolute_binds))


def dump(document: dict[str, Any]) -> str:
    """``document`` as YAML, in the order it was built."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)


def omitted_services(settings: DepotSettings) -> list[ServiceSpec]:
    """Optional services the export leaves out: the stack gives no build context for them."""
    profiles = _with_every_buildable_profile(settings).profiles
    return [spec for spec in SERVICES if spec.profile and spec.profile not in profiles]


def _with_every_buildable_profile(settings: DepotSettings) -> DepotSettings:
    """``settings`` with every profile enabled whose services can be built.

    The stack's own profiles were validated (a missing context is the program's ConfigError);
    another profile is added only when the stack gives every built service in it a context, so
    the copy satisfies the same rule without being validated again.
    """
    extra = [p for p in PROFILES if p not in settings.profiles and not unbuildable(settings, p)]
    return settings.model_copy(update={"profiles": [*settings.profiles, *extra]})


def _image(deployment: ServiceDeployment) -> dict[str, Any]:
    if deployment.build_context is None:
        # The pinned reference; the program runs what it pulled for it.
        return {"image": deployment.image_reference}
    context = deployment.build_context.host
    push = deployment.push
    return {
        # Compose tags what it builds with `image:`: the program's local tag, or the registry
        # tag it pushes (`docker compose push` sends it there).
        "image": push.references[0] if push else deployment.local_tag,
        "build": {
            "context": project_path(context),
            "dockerfile": _dockerfile_from(context, deployment.dockerfile.host),
            "args": dict(deployment.build_args),
        },
        # Build on every `up`, as the program does; never try to pull a local tag.
        "pull_policy": "build",
    }


def _dockerfile_from(context: str, dockerfile: str) -> str:
    """The Dockerfile's path as Compose reads it: relative to the build context, not the file.

    Relative when both are in or beside the project, so it names this checkout's directory
    (``../main/docker/rust-service.Dockerfile``, ``../backup.Dockerfile``); otherwise absolute.
    """
    if project_path(context) == context or project_path(dockerfile) == dockerfile:
        return dockerfile
    return Path(os.path.relpath(dockerfile, context)).as_posix()


def _restart(policy: RestartPolicy) -> str:
    return f"{policy.name}:{policy.max_retries}" if policy.max_retries else policy.name


def _seconds(seconds: int) -> str:
    return f"{seconds}s"


def compose_healthcheck(
    check: Healthcheck, duration: Callable[[int], str] = _seconds
) -> dict[str, Any]:
    """A healthcheck as Compose writes it, each duration written by ``duration``."""
    return {
        "test": list(check.test),
        "interval": duration(check.interval),
        "timeout": duration(check.timeout),
        "retries": check.retries,
        "start_period": duration(check.start_period),
        # Compose and the stack file carry it; an engine older than 25 ignores it (README
        # "depot doctor"). Swarm services through Pulumi cannot: swarm.py says why.
        "start_interval": duration(check.start_interval),
    }


def data_and_bind_volumes(
    deployment: ServiceDeployment, *, relative_binds: bool
) -> list[dict[str, Any]]:
    """The data volumes and the bind mounts of a service, in the long ``volumes:`` syntax.

    Long syntax: like the program's bind mounts, a missing host path is an error, never
    silently created. ``relative_binds``: host paths as this project writes them (``../x``,
    for a Compose file run from here), else absolute.
    """
    spec = deployment.spec
    volumes: list[dict[str, Any]] = [
        {"type": "volume", "source": mount.volume, "target": mount.target} for mount in spec.volumes
    ]
    volumes.extend(
        {
            "type": "bind",
            "source": mount.source.relative if relative_binds else mount.source.host,
            "target": mount.target,
            "read_only": mount.read_only,
        }
        for mount in deployment.bind_mounts
    )
    return volumes


def _resources(deployment: ServiceDeployment) -> dict[str, Any]:
    # deploy.resources, not mem_limit/cpus: the GPU reservation exists only here, and Compose
    # refuses the two forms with different values.
    limits = deployment.limits
    resources: dict[str, Any] = {}
    reservations: dict[str, Any] = {}
    if limits is not None:
        resources["limits"] = {"cpus": f"{limits.cpus:g}", "memory": f"{limits.memory}m"}
        if limits.memory_reservation is not None:
            reservations["memory"] = f"{limits.memory_reservation}m"
    if deployment.spec.gpu is not None:
        # The program's `gpus: all` is this device request: every GPU, any driver.
        reservations["devices"] = [{"capabilities": ["gpu"], "count": deployment.spec.gpu.count}]
    if reservations:
        resources["reservations"] = reservations
    return resources


def project_path(path: str) -> str:
    """``path`` as the Compose file at the project root says it: ``./x`` or ``../x`` if it can."""
    return project_relative(path)


def _header(settings: DepotSettings) -> str:
    flags = "".join(f"--profile {profile} " for profile in settings.profiles)
    lines = [
        f"# The depot, stack {settings.stack}, for Docker Compose: generated by",
        f"# `depot compose --stack {settings.stack}` from the model the Pulumi program deploys.",
        "# Do not edit it: regenerate it. Its relative paths start at the project root, so keep",
        "# it there. Create the secret files it reads first: `depot secrets init`. What Compose",
        '# cannot express, such as secret owners outside Swarm: README "Compose export".',
        f"# Start it as the stack runs: docker compose {flags}up -d",
    ]
    lines.extend(
        f"# Left out: {spec.name} (profile {spec.profile}): "
        f"no depot:build.contexts.{spec.name} in Pulumi.{settings.stack}.yaml"
        for spec in omitted_services(settings)
    )
    lines.extend(given_secret_lines(settings))
    return "\n".join(lines) + "\n"


def given_secret_lines(settings: DepotSettings) -> list[str]:
    """Header lines for each secret file the export reads that nothing generates."""
    return [
        f"# Write ./{SECRETS_DIR}/{secret_file_name(secret.name)} yourself (mode 0600): the "
        f"{secret.setting} the stack sets, which only the Pulumi CLI can decrypt"
        for secret in SECRETS
        if not secret.generated and settings.secret(secret.setting) is not None
    ]


class _Dumper(yaml.SafeDumper):
    """Block style but for short lists of scalars, no anchors, and file modes in octal."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.SequenceNode:
    # `[CMD, pg_isready, -U, postgres]`; lists of options (tmpfs: `/tmp:rw,noexec,…`) stay blocks.
    short = len(str(items)) <= 60 and all(
        isinstance(item, int) or (isinstance(item, str) and "," not in item) for item in items
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=short)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # Compose interpolates `$` in every value; the specification writes a literal one as `$$`
    # (the worker probe's `pgrep ^depot-service$` would otherwise be refused by the CLI).
    escaped = text.replace("$", "$$")
    if "\n" in text:  # a script (postgres' data lock) reads as one, in literal block style
        return dumper.represent_scalar("tag:yaml.org,2002:str", escaped, style="|")
    return dumper.represent_str(escaped)


def _represent_mode(dumper: yaml.SafeDumper, mode: FileMode) -> yaml.ScalarNode:
    # A leading zero is octal to YAML 1.1 readers and to Compose's parser alike.
    return dumper.represent_scalar("tag:yaml.org,2002:int", f"0{int(mode):o}")


_Dumper.add_representer(FileMode, _represent_mode)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)
