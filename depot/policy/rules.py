"""The depot's guardrails: the reference's production practices and CIS Docker (sections 4, 5).

Each rule is a plain function over one resource as planned — its type, inputs (engine property
names; a secret value reads ``"[secret]"``), options and dependencies — plus the stack it is in.
It returns the problems it finds as sentences. The same functions run offline on a plan
(``depot check``) and inside ``pulumi preview/up`` through the CrossGuard pack in ``policy/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depot.catalog import POSTGRES_DATA_VOLUME
from depot.policy.exceptions import CAPABILITY_ALLOWLIST, PUBLIC_PORTS, WRITABLE_ROOT
from depot.review.plan import PlannedResource, is_secret
from depot.review.postgres import data_image, mounts_data, postgres_major
from depot.types import PolicyRuleId

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BUILD = "docker-build:index:Image"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"


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

    def dependencies_of(self, resource: PlannedResource) -> list[PlannedResource]:
        return [self.resources[k] for k in resource.dependencies if k in self.resources]

    def dependents_of(self, resource: PlannedResource) -> list[PlannedResource]:
        return [r for r in self.resources.values() if resource.key in r.dependencies]


Check = Callable[[PlannedResource, Stack], Iterable[str]]


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


def _name(resource: PlannedResource) -> str:
    shown = resource.inputs.get("name")
    return shown if isinstance(shown, str) and resource.type == CONTAINER else resource.name


def _own_build(image: PlannedResource, stack: Stack) -> bool:
    return any(dep.type == BUILD for dep in stack.dependencies_of(image))


_OWN_REPOSITORY = re.compile(r"(^|/)depot-[a-z0-9-]+([:@]|$)")


def _own_image(image: PlannedResource, stack: Stack) -> bool:
    """Built in this stack, or pushed by our CI: our images are named depot-<service>."""
    reference = image.inputs.get("name")
    named_ours = isinstance(reference, str) and bool(_OWN_REPOSITORY.search(reference))
    return _own_build(image, stack) or named_ours


def _images_of(container: PlannedResource, stack: Stack) -> list[PlannedResource]:
    return [d for d in stack.dependencies_of(container) if d.type == REMOTE_IMAGE]


# --- images -------------------------------------------------------------------------------

_TAGGED = re.compile(
    r"^[^@:]+(?::\d+/[^@:]+)?(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*))?"
    r"(?P<digest>@sha256:[a-f0-9]{64})?$"
)


@rule(
    "image-pinned",
    types={REMOTE_IMAGE, BUILD},
    description="images are tagged with a version (never latest); third-party ones by digest "
    "in production",
    fix="pin an exact version tag, and in production add its @sha256 digest (depot:images)",
    source="reference 'Use Specific Tags'; CIS Docker 4.2, 5.27",
)
def image_pinned(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    if resource.type == BUILD:
        for tag in resource.inputs.get("tags") or []:
            if tag.endswith(":latest") or ":" not in tag.rsplit("/", 1)[-1]:
                yield f"builds the moving tag {tag!r}"
        return
    reference = resource.inputs.get("name")
    if not isinstance(reference, str) or _own_build(resource, stack):
        return  # our own builds are run by image ID, not by tag
    match = _TAGGED.match(reference)
    if match is None or match["tag"] == "latest" or not (match["tag"] or match["digest"]):
        yield f"runs {reference!r}, which is not pinned to a version tag"
    elif stack.production and not match["digest"]:
        yield f"runs {reference!r} by tag only; production pins third-party images by digest"


# --- users --------------------------------------------------------------------------------

_NUMERIC_USER = re.compile(r"^(?P<uid>\d+)(?::(?P<gid>\d+))?$")


@rule(
    "non-root-user",
    types={CONTAINER},
    description="the project's own services run as a non-root numeric user",
    fix="set the container's user to the image's numeric uid:gid (10001:10001)",
    source="reference 'Non-Root User'; CIS Docker 4.1",
)
def non_root_user(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    if not any(_own_image(image, stack) for image in _images_of(resource, stack)):
        return  # third-party images choose their own user; capabilities limit them
    user = resource.inputs.get("user")
    match = _NUMERIC_USER.match(user) if isinstance(user, str) else None
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
    description="every Dockerfile's final stage sets a numeric, non-root USER",
    fix="end the final stage with USER <uid>:<gid> (numeric, not 0)",
    source="reference 'Non-Root User'; CIS Docker 4.1 (hadolint does not check a missing USER)",
)
def dockerfile_user(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    location = (resource.inputs.get("dockerfile") or {}).get("location")
    if not isinstance(location, str):
        yield "has no Dockerfile location to check"
        return
    path = (stack.project_dir / location).resolve()
    if not path.is_file():
        yield f"builds from {location}, which does not exist"
        return
    user = final_stage_user(path.read_text())
    match = _NUMERIC_USER.match(user) if user else None
    if user is None:
        yield f"{location}: the final stage sets no USER, so it runs as root"
    elif match is None:
        yield f"{location}: the final stage's USER {user!r} is not numeric"
    elif int(match["uid"]) == 0:
        yield f"{location}: the final stage runs as root (USER {user})"


# --- health -------------------------------------------------------------------------------


def _seconds(duration: object) -> int:
    text = str(duration or "0s")
    return int(text.removesuffix("s")) if text.removesuffix("s").isdigit() else 0


def healthcheck_worst_case(healthcheck: Mapping[str, Any]) -> int:
    """Seconds Docker may take to call a container unhealthy."""
    retries = int(healthcheck.get("retries") or 0)
    interval = _seconds(healthcheck.get("interval"))
    timeout = _seconds(healthcheck.get("timeout"))
    return _seconds(healthcheck.get("startPeriod")) + retries * (interval + timeout)


@rule(
    "healthcheck",
    types={CONTAINER},
    description="every container has a healthcheck",
    fix="give the container a healthcheck (tests, interval, timeout, retries)",
    source="reference 'Health Checks'; CIS Docker 4.6",
)
def healthcheck(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    check = resource.inputs.get("healthcheck") or {}
    tests = check.get("tests") or []
    if not tests or tests[0] == "NONE":
        yield "has no healthcheck"


@rule(
    "wait-for-health",
    types={CONTAINER},
    description="a container others start after is waited for until healthy, long enough",
    fix="set wait=true and wait_timeout >= start period + retries x (interval + timeout)",
    source="reference 'Service Dependencies' (condition: service_healthy)",
)
def wait_for_health(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    waiting = sorted(_name(d) for d in stack.dependents_of(resource) if d.type == CONTAINER)
    if not waiting:
        return
    if resource.inputs.get("wait") is not True:
        yield f"is not waited for, yet {', '.join(waiting)} start after it"
        return
    needed = healthcheck_worst_case(resource.inputs.get("healthcheck") or {})
    timeout = int(resource.inputs.get("waitTimeout") or 60)
    if timeout < needed:
        yield f"waits {timeout}s for healthy; its healthcheck may take {needed}s"


# --- resources ----------------------------------------------------------------------------


@rule(
    "limits",
    types={CONTAINER},
    description="memory and CPU limits on every container in production",
    fix="set depot:limits.<service>.memory and .cpus",
    source="reference 'Resource Limits'; CIS Docker 5.10, 5.11",
)
def limits(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    if not stack.production:
        return
    if not resource.inputs.get("memory"):
        yield "has no memory limit"
    if not resource.inputs.get("cpus"):
        yield "has no CPU limit"


@rule(
    "restart",
    types={CONTAINER},
    description="never restart 'no' in production; on-failure retries at most 5 times",
    fix="use depot:restart always or unless-stopped, or on-failure:N with N <= 5",
    source="reference 'Restart Policies'; CIS Docker 5.14",
)
def restart(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    policy = resource.inputs.get("restart") or "no"
    if policy == "no" and stack.production:
        yield "never restarts (restart: no)"
    if policy == "on-failure":
        retries = int(resource.inputs.get("maxRetryCount") or 0)
        if retries == 0 or retries > 5:
            yield f"restarts on failure {'without limit' if retries == 0 else f'{retries} times'}"


# --- isolation ----------------------------------------------------------------------------

SENSITIVE_HOST_PATHS = (
    "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr", "/root", "/run", "/var/run",
    "/var/lib/docker",
)  # fmt: skip
"""Host paths no container may mount, nor anything below them; nor `/`, nor a Docker socket."""


def _sensitive(source: str) -> bool:
    path = source.rstrip("/") or "/"
    if path == "/" or path.endswith("docker.sock"):
        return True
    return any(path == p or path.startswith(p + "/") for p in SENSITIVE_HOST_PATHS)


@rule(
    "isolation",
    types={CONTAINER},
    description="no privileged mode, no host namespaces, no Docker socket or system paths",
    fix="remove privileged / host modes, and mount only the service's own data",
    source="CIS Docker 5.4, 5.9, 5.16, 5.21, 5.31",
)
def isolation(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    inputs = resource.inputs
    if inputs.get("privileged"):
        yield "runs privileged"
    for mode in ("networkMode", "pidMode", "ipcMode", "usernsMode"):
        if inputs.get(mode) == "host":
            yield f"shares the host's namespace ({mode}: host)"
    for mount in [*(inputs.get("mounts") or []), *(inputs.get("volumes") or [])]:
        source = mount.get("source") or mount.get("hostPath")
        if isinstance(source, str) and _sensitive(source):
            yield f"mounts the host's {source}"


@rule(
    "capabilities",
    types={CONTAINER},
    description="all capabilities dropped but a per-service allowlist; no-new-privileges; "
    "seccomp kept",
    fix="drop ALL, add back only the allowlisted ones (depot/policy/exceptions.py), "
    "and set security_opts no-new-privileges:true",
    source="CIS Docker 5.3, 5.21, 5.25",
)
def capabilities(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    name = _name(resource)
    granted = resource.inputs.get("capabilities") or {}
    if "ALL" not in (granted.get("drops") or []):
        yield "keeps Docker's default capabilities (drop ALL)"
    allowed = CAPABILITY_ALLOWLIST.get(name, {})
    for capability in granted.get("adds") or []:
        if capability not in allowed:
            yield f"adds {capability}, which is not on its allowlist"
    options = resource.inputs.get("securityOpts") or []
    if "no-new-privileges:true" not in options and "no-new-privileges" not in options:
        yield "can gain privileges (no-new-privileges is not set)"
    if any(o.replace("=", ":") == "seccomp:unconfined" for o in options):
        yield "runs without seccomp (seccomp=unconfined)"


@rule(
    "read-only-root",
    types={CONTAINER},
    description="read-only root filesystem, tmpfs for writable paths, exceptions recorded",
    fix="set read_only and give the service tmpfs for what it writes, or record why it cannot "
    "be read-only in depot/policy/exceptions.py",
    source="CIS Docker 5.12",
)
def read_only_root(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    if not resource.inputs.get("readOnly") and _name(resource) not in WRITABLE_ROOT:
        yield "has a writable root filesystem and no recorded exception"


# --- network ------------------------------------------------------------------------------


@rule(
    "published-ports",
    types={CONTAINER},
    description="published ports bind an explicit host address (every interface only with a "
    "recorded reason); the database is never published",
    fix="set depot:publish.address to one interface (or record why in "
    "depot/policy/exceptions.py), and never list postgres in depot:publish.ports",
    source="CIS Docker 5.13; reference 'Networks' (database-network internal)",
)
def published_ports(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    ports = resource.inputs.get("ports") or []
    if ports and "postgres" in _name(resource):
        yield "publishes the database"
    for port in ports:
        address = port.get("ip")
        if not address:
            yield f"publishes {port.get('external')} on every host address (no ip)"
        elif address in ("0.0.0.0", "::") and _name(resource) not in PUBLIC_PORTS:  # noqa: S104
            yield (
                f"publishes {port.get('external')} on every interface ({address}) without a "
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
    if (
        "database" in str(resource.inputs.get("name"))
        and resource.inputs.get("internal") is not True
    ):
        yield "routes outside Docker (internal is not set)"


@rule(
    "log-rotation",
    types={CONTAINER},
    description="json-file logging with max-size and max-file",
    fix="log_driver json-file with log_opts max-size (10m) and max-file (3)",
    source="reference 'Logging'",
)
def log_rotation(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    if resource.inputs.get("logDriver") != "json-file":
        yield f"logs with {resource.inputs.get('logDriver') or 'the daemon default'}, not json-file"
    options = resource.inputs.get("logOpts") or {}
    for option in ("max-size", "max-file"):
        if option not in options:
            yield f"keeps logs without {option}"


# --- secrets ------------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)


@rule(
    "secret-env",
    types={CONTAINER},
    description="no environment variable named like a secret carries a plain value",
    fix="deliver it as a file (*_FILE) or make the value a Pulumi secret",
    source="reference 'Secrets Management'; CIS Docker 4.10",
)
def secret_env(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    if not stack.secrets_visible:
        return
    envs = resource.inputs.get("envs") or []
    if is_secret(envs):
        return  # the whole environment is a secret
    for entry in envs:
        key, _, value = str(entry).partition("=")
        if _SECRET_NAME.search(key) and not key.endswith("_FILE") and not is_secret(value):
            yield f"sets {key} in plain text"


@rule(
    "secret-delivery",
    types={CONTAINER},
    description="files uploaded into containers carry secret content",
    fix="pass secrets as pulumi.Output.secret so the engine encrypts them",
    source="reference 'Secrets Management'",
)
def secret_delivery(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    if not stack.secrets_visible:
        return
    for upload in resource.inputs.get("uploads") or []:
        if "/secrets/" in str(upload.get("file")) and not is_secret(upload.get("content")):
            yield f"uploads {upload.get('file')} with plain content"


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


@rule(
    "stop-grace",
    types={CONTAINER},
    description="containers holding data get at least 30 s to stop",
    fix="set destroy_grace_seconds and stop_timeout to 30 or more",
    source="DESIGN 'Things that bite': destroy_grace_seconds defaults to 0",
)
def stop_grace(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    if not resource.inputs.get("volumes"):
        return
    grace = int(resource.inputs.get("destroyGraceSeconds") or 0)
    if grace < 30:
        yield f"gets {grace}s to stop and holds data; give it at least 30s"


@rule(
    "delete-before-replace",
    types={CONTAINER, NETWORK, VOLUME},
    description="resources with a fixed name are replaced delete-first",
    fix="set delete_before_replace=True",
    source="DESIGN 'Things that bite': create fails on the name or port conflict",
)
def delete_before_replace(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    del stack
    if resource.inputs.get("name") and not resource.options.get("deleteBeforeReplace"):
        yield "has a fixed name but is replaced create-first"


@rule(
    "postgres-major",
    types={CONTAINER},
    description="postgres runs on postgres-data at the major version the stack records "
    "(recorded in production)",
    fix="set depot:data.postgresMajor to the major postgres-data was initialised with and run "
    "an image of that major; to move to another, dump and restore first (README "
    '"Upgrading postgres")',
    source="postgres: a data directory opens only with the major version that initialised it",
)
def postgres_major_matches(resource: PlannedResource, stack: Stack) -> Iterable[str]:
    if not stack.settings_visible or not mounts_data(resource):
        return
    recorded = stack.postgres_major
    if recorded is None:
        if stack.production:
            yield (
                f"mounts {POSTGRES_DATA_VOLUME}, but the stack does not record which postgres "
                "major version it holds (depot:data.postgresMajor)"
            )
        return
    reference = data_image(resource, stack.resources.values())
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
