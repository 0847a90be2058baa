"""The depot's guardrails: the reference's production practices and CIS Docker (sections 4, 5).

Each rule is a plain function over one resource as planned, plus the stack it is in, and returns
the problems it finds as sentences. Rules about what a service runs read its ``Workload``
(``depot.review.workload``): one view whatever the resource type, so a container and a Swarm
service are held to the same rules. The same functions run offline on a plan (``depot check``)
and inside ``pulumi preview/up`` through the CrossGuard pack in ``policy/``.

Importing this module loads no Pulumi provider and not the program: the pack starts quickly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from depot.catalog import (
    BACKUP_RECIPIENTS_ENV,
    BACKUP_TARGETS_ENV,
    POSTGRES_BACKUPS_VOLUME,
    POSTGRES_DATA_VOLUME,
)
from depot.paths import climbs, normalised_path
from depot.policy.exceptions import CAPABILITY_ALLOWLIST, PUBLIC_PORTS, WRITABLE_ROOT
from depot.resource_types import BUILD, DOCKER_SECRET, NETWORK, REMOTE_IMAGE, VOLUME
from depot.resource_types import SERVICE as SWARM_SERVICE
from depot.review.planned import UNKNOWN, PlannedResource, is_secret
from depot.review.postgres import postgres_major
from depot.review.workload import (
    WORKLOAD_TYPES,
    Workload,
    build_view,
    image_view,
    is_workload,
    network_view,
    workload,
)
from depot.types import (
    MAX_RESTART_RETRIES,
    PolicyRuleId,
    parse_image_reference,
    parse_rclone_target,
)


@dataclass(frozen=True)
class Stack:
    """The resources around the one being checked, and the stack's kind."""

    resources: Mapping[str, PlannedResource]  # by key (type::name)
    production: bool
    project_dir: Path
    # The offline plan marks secrets "[secret]"; CrossGuard hands policies decrypted values
    # without a mark, so there the secret rules cannot tell a secret from a plain value.
    secrets_visible: bool = True
    # depot:data.postgresMajor; CrossGuard sees no stack config, so there it is not known.
    postgres_major: int | None = None
    settings_visible: bool = True
    # Each workload read once per check, however many rules ask for it.
    _workloads: dict[str, Workload] = field(default_factory=dict, compare=False, repr=False)

    def dependents_of(self, key: str) -> list[PlannedResource]:
        return [r for r in self.resources.values() if key in r.dependencies]

    def workload(self, resource: PlannedResource) -> Workload:
        """``resource`` as a workload (see ``depot.review.workload``)."""
        found = self._workloads.get(resource.key)
        if found is None:
            found = self._workloads[resource.key] = workload(resource, self.resources)
        return found


Check = Callable[[PlannedResource, Stack], Iterable[str]]
WorkloadCheck = Callable[[Workload, Stack], Iterable[str]]


@dataclass(frozen=True)
class Rule:
    """One guardrail: what it checks, how to fix a violation, and where it comes from."""

    id: PolicyRuleId
    description: str
    fix: str
    source: str
    types: frozenset[str]
    check: Check


RULES: list[Rule] = []


def rule(
    id_: PolicyRuleId, *, types: Iterable[str], description: str, fix: str, source: str
) -> Callable[[Check], Check]:
    """Register ``check`` as the rule ``id_``."""

    def register(check: Check) -> Check:
        RULES.append(Rule(id_, description, fix, source, frozenset(types), check))
        return check

    return register


def workload_rule(
    id_: PolicyRuleId, *, description: str, fix: str, source: str
) -> Callable[[WorkloadCheck], WorkloadCheck]:
    """Register ``check`` as the rule ``id_`` over every resource type that runs a workload."""

    def register(check: WorkloadCheck) -> WorkloadCheck:
        def on_resource(resource: PlannedResource, stack: Stack) -> Iterable[str]:
            return check(stack.workload(resource), stack)

        RULES.append(Rule(id_, description, fix, source, WORKLOAD_TYPES, on_resource))
        return check

    return register


_OWN_REPOSITORY = re.compile(r"(^|/)depot-[a-z0-9-]+([:@]|$)")


def _own_image(service: Workload) -> bool:
    """Built in this stack, or pushed by our CI: our images are named depot-<service>."""
    reference = service.image
    named_ours = reference is not None and bool(_OWN_REPOSITORY.search(reference))
    return service.image_built_here or named_ours


# --- images -------------------------------------------------------------------------------


def _pinning_problem(reference: str, production: bool) -> str | None:
    parsed = parse_image_reference(reference)
    if parsed is None or parsed.tag == "latest" or not (parsed.tag or parsed.digest):
        return f"runs {reference!r}, which is not pinned to a version tag"
    if production and not parsed.digest:
        return f"runs {reference!r} by tag only; production pins third-party images by digest"
    return None


@rule(
    "image-pinned",
    types={REMOTE_IMAGE, BUILD, *WORKLOAD_TYPES},
    description="images are tagged with a version (never latest nor untagged); third-party "
    "ones by @sha256 digest in production",
    fix="pin an exact version tag, and in production add its @sha256 digest (depot:images)",
    source="reference 'Use Specific Tags'; CIS Docker 4.2, 5.27",
)
def image_pinned(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    if resource.type == BUILD:
        for tag in build_view(resource).tags:
            parsed = parse_image_reference(tag)
            if parsed is None or parsed.tag in (None, "latest"):
                yield f"builds the moving tag {tag!r}"
        return
    if is_workload(resource):
        # A workload is checked here only for a reference of its own; one that runs an image
        # resource is checked on that resource.
        service = stack.workload(resource)
        image = None if service.image_resource else service.image
        built_here = service.image_built_here
    else:
        view = image_view(resource, stack.resources)
        image, built_here = view.reference, view.built_here
    if image is None or built_here:
        return  # our own builds are run by image ID, not by tag
    problem = _pinning_problem(image, stack.production)
    if problem:
        yield problem


# --- users --------------------------------------------------------------------------------

_NUMERIC_USER = re.compile(r"^(?P<uid>\d+)(?::(?P<gid>\d+))?$")


@workload_rule(
    "non-root-user",
    description="the project's own services (built here, or CI's …/depot-<service> images) "
    "run as a non-root numeric user",
    fix="set the container's user to the image's numeric uid:gid (10001:10001)",
    source="reference 'Non-Root User'; CIS Docker 4.1",
)
def non_root_user(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if not _own_image(service):
        return  # third-party images choose their own user; capabilities limit them
    user = service.user
    match = _NUMERIC_USER.fullmatch(user) if user is not None else None
    if match is None:
        yield f"runs as {user!r}; our own services run as a numeric user"
    elif int(match["uid"]) == 0:
        yield "runs as root (uid 0)"


def final_stage_user(dockerfile: str) -> str | None:
    """The last ``USER`` of a Dockerfile's final stage (None if it sets none)."""
    text = re.sub(r"\\\n", " ", dockerfile)
    user: str | None = None
    for line in text.splitlines():
        words = line.strip().split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() == "FROM":
            user = None
        elif words[0].upper() == "USER" and len(words) > 1:
            user = words[1]
    return user


@rule(
    "dockerfile-user",
    types={BUILD},
    description="every built Dockerfile's final stage ends with a numeric, non-zero USER (a "
    "test holds every Dockerfile in the repository to it)",
    fix="end the final stage with USER <uid>:<gid> (numeric, not 0)",
    source="reference 'Non-Root User'; CIS Docker 4.1 (hadolint does not check a missing USER)",
)
def dockerfile_user(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    location = build_view(resource).dockerfile
    if location is None:
        yield "has no Dockerfile location to check"
        return
    path = (stack.project_dir / location).resolve()
    if not path.is_file():
        yield f"builds from {location}, which does not exist"
        return
    user = final_stage_user(path.read_text())
    match = _NUMERIC_USER.fullmatch(user) if user else None
    if user is None:
        yield f"{location}: the final stage sets no USER, so it runs as root"
    elif match is None:
        yield f"{location}: the final stage's USER {user!r} is not numeric"
    elif int(match["uid"]) == 0:
        yield f"{location}: the final stage runs as root (USER {user})"


# --- health -------------------------------------------------------------------------------


@workload_rule(
    "healthcheck",
    description="every container has a healthcheck",
    fix="give the container a healthcheck (tests, interval, timeout, retries)",
    source="reference 'Health Checks'; CIS Docker 4.6",
)
def healthcheck(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if not service.has_healthcheck:
        yield "has no healthcheck"


@workload_rule(
    "wait-for-health",
    description="a container others start after is waited for until healthy (wait), with a "
    "wait_timeout of at least its healthcheck's worst case",
    fix="set wait=true and wait_timeout >= start period + retries x (interval + timeout)",
    source="reference 'Service Dependencies' (condition: service_healthy)",
)
def wait_for_health(service: Workload, stack: Stack) -> Iterable[str]:
    waiting = sorted(
        stack.workload(d).name for d in stack.dependents_of(service.key) if is_workload(d)
    )
    if not waiting:
        return
    if not service.waited_for:
        yield f"is not waited for, yet {', '.join(waiting)} start after it"
        return
    needed = service.healthcheck_worst_case
    if service.wait_timeout < needed:
        yield f"waits {service.wait_timeout}s for healthy; its healthcheck may take {needed}s"


# --- resources ----------------------------------------------------------------------------


@workload_rule(
    "limits",
    description="memory and CPU limits on every container in production",
    fix="set depot:limits.<service>.memory and .cpus",
    source="reference 'Resource Limits'; CIS Docker 5.10, 5.11",
)
def limits(service: Workload, stack: Stack) -> Iterable[str]:
    if not stack.production:
        return
    if service.limits.memory_mib is None:
        yield "has no memory limit"
    if service.limits.cpus is None:
        yield "has no CPU limit"


@workload_rule(
    "restart",
    description=f"never restart 'no' in production; on-failure retries at most "
    f"{MAX_RESTART_RETRIES} times",
    fix=f"use depot:restart always or unless-stopped, or on-failure:N with N <= "
    f"{MAX_RESTART_RETRIES}",
    source="reference 'Restart Policies'; CIS Docker 5.14",
)
def restart(service: Workload, stack: Stack) -> Iterable[str]:
    if service.restart == "no" and stack.production:
        yield "never restarts (restart: no)"
    if service.restart == "on-failure":
        retries = service.restart_retries
        if retries == 0 or retries > MAX_RESTART_RETRIES:
            yield f"restarts on failure {'without limit' if retries == 0 else f'{retries} times'}"


# --- isolation ----------------------------------------------------------------------------

SENSITIVE_HOST_PATHS = (
    "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr", "/root", "/run", "/var/run",
    "/var/lib/docker",
)  # fmt: skip
"""Host paths no container may mount, nor anything below them; nor `/`, nor a Docker socket."""


def _sensitive(source: str) -> bool:
    # CrossGuard judges planned resources, which no loader has normalised: `//etc` and `/./`
    # are `/etc` and `/`, and where a `..` leads only the host's file system knows.
    path = normalised_path(source)
    if path == "/" or climbs(path) or path.endswith("docker.sock"):
        return True
    return any(path == p or path.startswith(p + "/") for p in SENSITIVE_HOST_PATHS)


@workload_rule(
    "isolation",
    description="no privileged mode, no host network, pid, ipc or userns namespace, no Docker "
    "socket, no / and nothing under /etc, /proc, /sys, /dev, /boot, /usr, /lib, /root, /run, "
    "/var/run or /var/lib/docker (CIS 5.20, the UTS namespace, needs no check: the provider has "
    "no UTS mode to set, so containers keep Docker's private default)",
    fix="remove privileged / host modes, and mount only the service's own data",
    source="CIS Docker 5.4, 5.9, 5.16, 5.21, 5.31",
)
def isolation(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if service.privileged:
        yield "runs privileged"
    for mode in service.host_namespaces:
        yield f"shares the host's namespace ({mode}: host)"
    for bind in service.binds:
        if _sensitive(bind.source):
            yield f"mounts the host's {bind.source}"


@workload_rule(
    "capabilities",
    description="all capabilities dropped but a per-service allowlist; no-new-privileges; "
    "seccomp kept",
    fix="drop ALL, add back only the allowlisted ones (depot/policy/exceptions.py), "
    "and set security_opts no-new-privileges:true",
    source="CIS Docker 5.3, 5.21, 5.25",
)
def capabilities(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if "ALL" not in service.cap_drops:
        yield "keeps Docker's default capabilities (drop ALL)"
    allowed = CAPABILITY_ALLOWLIST.get(service.name, {})
    for capability in service.cap_adds:
        if capability not in allowed:
            yield f"adds {capability}, which is not on its allowlist"
    # None: the runtime has no such setting (Swarm's provider), so there is nothing to set.
    if service.no_new_privileges is False:
        yield "can gain privileges (no-new-privileges is not set)"
    if service.seccomp_unconfined:
        yield "runs without seccomp (seccomp=unconfined)"


@workload_rule(
    "read-only-root",
    description="read-only root filesystem, tmpfs for writable paths, exceptions recorded",
    fix="set read_only and give the service tmpfs for what it writes, or record why it cannot "
    "be read-only in depot/policy/exceptions.py",
    source="CIS Docker 5.12",
)
def read_only_root(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if not service.read_only_root and service.name not in WRITABLE_ROOT:
        yield "has a writable root filesystem and no recorded exception"


# --- network ------------------------------------------------------------------------------


@workload_rule(
    "published-ports",
    description="published ports bind an explicit host address (every interface only with a "
    "recorded reason); the database is never published",
    fix="set depot:publish.address to one interface (or record why in "
    "depot/policy/exceptions.py), and never list postgres in depot:publish.ports",
    source="CIS Docker 5.13; reference 'Networks' (database-network internal)",
)
def published_ports(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if service.ports and "postgres" in service.name:
        yield "publishes the database"
    for port in service.ports:
        address = port.address
        if port.mode is not None:  # Swarm: every address of every node, whatever the mode
            if service.name not in PUBLIC_PORTS:
                yield (
                    f"publishes {port.published} on every address of every Swarm node without "
                    "a recorded reason"
                )
            continue
        if not address:
            yield f"publishes {port.published} on every host address (no ip)"
        elif address in ("0.0.0.0", "::") and service.name not in PUBLIC_PORTS:  # noqa: S104
            yield (
                f"publishes {port.published} on every interface ({address}) without a "
                "recorded reason"
            )


@rule(
    "internal-database-network",
    types={NETWORK},
    description="the database network is internal",
    fix="create database-network with internal=true",
    source="reference 'Networks'",
)
def internal_database_network(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    network = network_view(resource)
    if "database" in str(network.name) and not network.internal:
        yield "routes outside Docker (internal is not set)"


@workload_rule(
    "log-rotation",
    description="json-file logging with max-size and max-file",
    fix="log_driver json-file with log_opts max-size (10m) and max-file (3)",
    source="reference 'Logging'",
)
def log_rotation(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if service.log_driver != "json-file":
        yield f"logs with {service.log_driver or 'the daemon default'}, not json-file"
    for option in ("max-size", "max-file"):
        if option not in service.log_options:
            yield f"keeps logs without {option}"


# --- secrets ------------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)


@workload_rule(
    "secret-env",
    description="no environment variable named like a secret (PASSWORD, SECRET, TOKEN, KEY) "
    "carries a plain value",
    fix="deliver it as a file (*_FILE) or make the value a Pulumi secret",
    source="reference 'Secrets Management'; CIS Docker 4.10",
)
def secret_env(service: Workload, stack: Stack) -> Iterable[str]:
    if not stack.secrets_visible:
        return
    # A hidden environment is one secret as a whole: nothing in it is plain.
    for variable in service.env:
        name = variable.name
        if _SECRET_NAME.search(name) and not name.endswith("_FILE") and not variable.value_secret:
            yield f"sets {name} in plain text"


@workload_rule(
    "secret-delivery",
    description="files uploaded into containers under /secrets/ carry secret content",
    fix="pass secrets as pulumi.Output.secret so the engine encrypts them",
    source="reference 'Secrets Management'",
)
def secret_delivery(service: Workload, stack: Stack) -> Iterable[str]:
    if not stack.secrets_visible:
        return
    for file in service.files:
        if "/secrets/" in file.path and not file.content_secret:
            yield f"uploads {file.path} with plain content"


# --- data ---------------------------------------------------------------------------------


@rule(
    "data-volume",
    types={VOLUME},
    description="data volumes are retained on delete, and protected in production",
    fix="retain_on_delete=True always; protect=True in production (depot:data.protect)",
    source="DESIGN 'Things that bite': a changed volume option deletes the volume",
)
def data_volume(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    # CrossGuard does not show retainOnDelete (None there): only the plan can check it.
    if resource.options.get("retainOnDelete") is False:
        yield "would be deleted with the stack (retainOnDelete is off)"
    if stack.production and not resource.options.get("protect"):
        yield "is not protected in production"


@workload_rule(
    "stop-grace",
    description="containers holding data get at least 30 s to stop",
    fix="set destroy_grace_seconds and stop_timeout to 30 or more",
    source="DESIGN 'Things that bite': destroy_grace_seconds defaults to 0",
)
def stop_grace(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if not service.volumes:
        return
    grace = service.stop_grace_seconds
    if grace < 30:
        yield f"gets {grace}s to stop and holds data; give it at least 30s"


@rule(
    "delete-before-replace",
    types={*WORKLOAD_TYPES, NETWORK, VOLUME},
    description="resources with a fixed name are replaced delete-first",
    fix="set delete_before_replace=True",
    source="DESIGN 'Things that bite': create fails on the name or port conflict",
)
def delete_before_replace(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    if resource.inputs.get("name") and not resource.options.get("deleteBeforeReplace"):
        yield "has a fixed name but is replaced create-first"


@workload_rule(
    "postgres-major",
    description="postgres runs on postgres-data at the major version the stack records "
    "(recorded in production)",
    fix="set depot:data.postgresMajor to the major postgres-data was initialised with and run "
    "an image of that major; to move to another, dump and restore first (the manual's "
    '"Upgrading postgres")',
    source="postgres: a data directory opens only with the major version that initialised it",
)
def postgres_major_matches(service: Workload, stack: Stack) -> Iterable[str]:
    if not stack.settings_visible or not service.mounts_volume(POSTGRES_DATA_VOLUME):
        return
    recorded = stack.postgres_major
    if recorded is None:
        if stack.production:
            yield (
                f"mounts {POSTGRES_DATA_VOLUME}, but the stack does not record which postgres "
                "major version it holds (depot:data.postgresMajor)"
            )
        return
    reference = service.image
    running = postgres_major(reference) if reference else None
    if running is None:
        yield (
            f"runs {reference!r}, whose tag names no postgres major version to hold to "
            f"depot:data.postgresMajor ({recorded})"
        )
    elif running != recorded:
        yield (
            f"runs postgres {running} on {POSTGRES_DATA_VOLUME}, which holds postgres "
            f"{recorded} data (depot:data.postgresMajor): it cannot open it"
        )


# --- Swarm --------------------------------------------------------------------------------
# A Swarm service is held to every rule above through its workload; these are what a scheduler
# adds: more than one task, updates that replace tasks, nodes that pull and hold data.


@workload_rule(
    "swarm-single-postgres",
    description="the Swarm service on the data volume runs exactly one task and updates stop-first",
    fix="run postgres with depot:replicas.postgres 1 and update and roll back stop-first",
    source="postgres: two servers must never open one data directory",
)
def swarm_single_postgres(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    rollout = service.rollout
    if rollout is None or not service.mounts_volume(POSTGRES_DATA_VOLUME):
        return
    if rollout.replicas != 1:
        tasks = "a task on every node" if rollout.replicas is None else f"{rollout.replicas} tasks"
        yield f"runs {tasks} on {POSTGRES_DATA_VOLUME}; it must run exactly one"
    # Unset is Swarm's default, stop-first.
    for step, order in (("updates", rollout.update_order), ("rolls back", rollout.rollback_order)):
        if order not in (None, "stop-first"):
            yield (
                f"{step} {order}, not stop-first: the new task could open the data while the "
                "old one still runs"
            )


@workload_rule(
    "swarm-image-digest",
    description="Swarm services run images by digest",
    fix="pin depot:images.<service> with @sha256:…, or push built images (depot:registry)",
    source="DESIGN 'Swarm: things that bite': nodes pull on their own; a tag is stored as "
    "tag@digest and diffs forever",
)
def swarm_image_digest(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if service.rollout is None:
        return
    image = service.image
    if image in (None, UNKNOWN) and service.image_built_here:
        return  # the digest of the push, known once it ran
    parsed = parse_image_reference(image) if image else None
    if parsed is None or parsed.digest is None:
        yield f"runs {image!r}, not an image by digest"


@rule(
    "swarm-secrets",
    types={DOCKER_SECRET, SWARM_SERVICE},
    description="Swarm secrets are encrypted in state, replaced create-first, and delivered "
    "readable by their owner only",
    fix="name a docker.Secret by its content with delete_before_replace=False, pass its data "
    "as a Pulumi secret, and deliver it with file_mode 0400 and the reader's uid and gid",
    source="DESIGN 'Swarm: things that bite': Swarm refuses to delete a secret in use",
)
def swarm_secrets(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    if resource.type == DOCKER_SECRET:
        if resource.options.get("deleteBeforeReplace"):
            yield "is replaced delete-first, which Swarm refuses while a service uses it"
        if stack.secrets_visible and not is_secret(resource.inputs.get("data")):
            yield "holds its data in plain text"
        return
    for file in stack.workload(resource).files:
        if file.mode != "0400" or not file.owner:
            yield f"delivers {file.path} with mode {file.mode or 'unset'}; use 0400 and its owner"


@workload_rule(
    "swarm-rollback",
    description="Swarm services update one task at a time and roll back by themselves when the "
    "new one fails its healthcheck",
    fix="update_config parallelism 1, failure_action rollback, monitor >= the healthcheck's "
    "worst case",
    source="Docker 'Configure service update behavior'; the depot's zero-downtime updates",
)
def swarm_rollback(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    rollout = service.rollout
    if rollout is None:
        return
    if rollout.update_failure_action != "rollback":
        action = rollout.update_failure_action or "pause (the default)"
        yield f"does {action} when an update fails, not rollback"
    if rollout.update_parallelism != 1:
        yield f"updates {rollout.update_parallelism or 'every'} task(s) at once, not one"
    needed = service.healthcheck_worst_case
    if rollout.update_monitor_seconds < needed:
        yield (
            f"watches a new task {rollout.update_monitor_seconds}s; its healthcheck may take "
            f"{needed}s to fail"
        )


_PINNING = re.compile(r"^node\.(labels\.\S+|hostname|id)\s*==\s*\S+$")


@workload_rule(
    "swarm-data-placement",
    description="a Swarm service with a named volume is pinned to the node that holds it",
    fix="constrain it to the data's node: depot:swarm.nodeLabels (node.labels.<label> == true)",
    source="Docker: a local volume exists on one node; elsewhere a task starts on an empty one",
)
def swarm_data_placement(service: Workload, stack: Stack) -> Iterable[str]:
    del stack
    if service.rollout is None or not service.volumes:
        return
    if not any(_PINNING.match(constraint) for constraint in service.rollout.placement):
        volumes = ", ".join(sorted({mount.volume for mount in service.volumes}))
        yield f"mounts {volumes} but may run on any node, where it would find none"


# --- backups ------------------------------------------------------------------------------
# The backup service is the workload that holds postgres-backups, as postgres is the one that
# holds postgres-data; its schedule, targets and recipients are plain variables it is given.


def _backups(stack: Stack) -> list[Workload]:
    return [
        stack.workload(resource)
        for resource in stack.resources.values()
        if is_workload(resource) and stack.workload(resource).mounts_volume(POSTGRES_BACKUPS_VOLUME)
    ]


@workload_rule(
    "backup-enabled",
    description="in production, the database is backed up: the workload holding "
    "postgres-data has a backup service (a workload holding postgres-backups) beside it",
    fix="set depot:backup.enabled: true, with its schedule, retention, recipients and targets "
    '(the manual\'s "Backups and restore")',
    source="issue 13: a protected volume guards against a bad `up`, not a lost disk or host",
)
def backup_enabled(service: Workload, stack: Stack) -> Iterable[str]:
    if not stack.production or not service.mounts_volume(POSTGRES_DATA_VOLUME):
        return
    if not _backups(stack):
        yield (
            f"holds {POSTGRES_DATA_VOLUME}, and no backup service dumps it: a lost disk, host "
            "or dropped table would lose the data"
        )


@workload_rule(
    "backup-off-host",
    description="in production, every backup is copied off the host it backs up: the backup "
    "service is given at least one target (DEPOT_BACKUP_TARGETS), and none is rclone's local or "
    "memory backend, a bare path, or a wrapping backend (alias, union, crypt, …) around one",
    fix="set depot:backup.targets to at least one rclone remote on another machine "
    "(S3, SFTP, B2, …; credentials in depot:backupRcloneConfig or env_auth)",
    source="issue 13: backups on the same host die with it",
)
def backup_off_host(service: Workload, stack: Stack) -> Iterable[str]:
    if not stack.production or not service.mounts_volume(POSTGRES_BACKUPS_VOLUME):
        return
    written = service.env_value(BACKUP_TARGETS_ENV)
    if written is None:
        yield f"is not given its targets ({BACKUP_TARGETS_ENV} is missing, secret or unknown)"
        return
    targets = [parse_rclone_target(word) for word in written.split()]
    if not any(target is not None and not target.on_this_host for target in targets):
        yield (
            f"keeps every backup on the host it backs up ({POSTGRES_BACKUPS_VOLUME}): a lost "
            "host loses the backups with the data"
        )
        return
    # A target that is this host after all is no copy off it, and its retention prunes where
    # the local one does. Named by position: a target's text is never shown.
    on_host = [str(n) for n, t in enumerate(targets, 1) if t is not None and t.on_this_host]
    if on_host:
        yield (
            f"is given targets on this host (number {', '.join(on_host)} of {len(targets)} in "
            f"{BACKUP_TARGETS_ENV}): a local path, rclone's local or memory backend, or a "
            "wrapper of one is no copy off the host"
        )


@workload_rule(
    "backup-encrypted",
    description="in production, every dump is encrypted to age public keys "
    "(DEPOT_BACKUP_RECIPIENTS) before it leaves the container",
    fix="set depot:backup.recipients to the age public keys (age1…) of whoever may restore; "
    "keep the private keys away from the deployment",
    source="issue 13: a dump off the host holds every row; only its restorers may read it",
)
def backup_encrypted(service: Workload, stack: Stack) -> Iterable[str]:
    if not stack.production or not service.mounts_volume(POSTGRES_BACKUPS_VOLUME):
        return
    recipients = service.env_value(BACKUP_RECIPIENTS_ENV)
    if recipients is None:
        yield (
            f"is not given its recipients ({BACKUP_RECIPIENTS_ENV} is missing, secret or unknown)"
        )
    elif not recipients.split():
        yield "writes unencrypted dumps: it is given no age recipient to encrypt to"
