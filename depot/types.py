"""Domain types for stack settings: each says what a value is and what is allowed.

Every validator here raises ``PydanticCustomError`` with a message that states what *is*
allowed, because that text reaches the user verbatim (see ``depot.config.errors``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from depot.paths import climbs, normalised_path
from depot.ssh_options import SshOptionError, normalise_ssh_options

Profile = Literal["gpu", "rtk"]
"""Optional service groups, as Compose profiles in the reference."""

ServiceName = Literal[
    "discovery", "dispatch", "console", "grafana", "postgres", "splat-worker", "rtk-base", "backup"
]
"""Every depot service; container names are ``depot-<service>``."""


Runtime = Literal["host", "swarm"]
"""What runs the depot: containers on one Docker host, or services on a Docker Swarm."""

LogLevel = Literal["trace", "debug", "info", "warn", "error"]

EnforcementLevel = Literal["mandatory", "advisory", "disabled"]
"""As CrossGuard: mandatory blocks a deployment (and fails `depot check`), advisory warns."""

PolicyRuleId = Literal[
    "image-pinned",
    "non-root-user",
    "dockerfile-user",
    "healthcheck",
    "wait-for-health",
    "limits",
    "restart",
    "isolation",
    "capabilities",
    "read-only-root",
    "published-ports",
    "internal-database-network",
    "log-rotation",
    "secret-env",
    "secret-delivery",
    "data-volume",
    "stop-grace",
    "delete-before-replace",
    "postgres-major",
    "swarm-single-postgres",
    "swarm-image-digest",
    "swarm-secrets",
    "swarm-rollback",
    "swarm-data-placement",
    "backup-enabled",
    "backup-off-host",
    "backup-encrypted",
]
"""Every rule of the policy pack (depot/policy/rules.py), as stack config may name them."""

PROFILES: tuple[Profile, ...] = get_args(Profile)

RestartName = Literal["no", "always", "unless-stopped", "on-failure"]
"""Restart intent, in Compose's words; each runtime maps it to its own policy."""

MAX_RESTART_RETRIES = 5
"""How often ``on-failure`` may restart a service: a crash loop must end, and be seen."""

MAX_PORT = 65535
Port = Annotated[int, Field(ge=1, le=MAX_PORT)]

_SIZE = re.compile(r"^(?P<number>\d{1,12}(?:\.\d{1,6})?)\s*(?P<unit>[kmg])i?b?$", re.IGNORECASE)
_KIB_PER_UNIT = {"k": 1, "m": 1024, "g": 1024 * 1024}
_DOCKER_MINIMUM_MB = 6  # the Docker engine rejects memory limits below 6 MiB
_MAXIMUM_MB = 4 * 1024 * 1024  # 4 TiB: more than any host the depot runs on has


def _to_megabytes(value: object) -> int:
    """Parse a Compose-style size (``256m``, ``1g``, ``1.5G``) into whole MiB."""
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "memory_size", "is not a memory size; use a number with a unit k, m or g, e.g. 256m"
        )
    # Exact arithmetic: a float would overflow or round a long number into a different limit.
    kib = Fraction(match["number"]) * _KIB_PER_UNIT[match["unit"].lower()]
    if kib > _MAXIMUM_MB * 1024:
        raise PydanticCustomError(
            "memory_size", "is larger than any container limit can be; use at most 4096g"
        )
    if kib < _DOCKER_MINIMUM_MB * 1024 or kib % 1024:
        raise PydanticCustomError(
            "memory_size", "is not a usable limit; use a whole number of MiB, at least 6m"
        )
    return int(kib // 1024)


Megabytes = Annotated[int, BeforeValidator(_to_megabytes)]
"""A memory size written ``256m`` in the stack file, held as whole MiB (the provider's unit)."""

_CPU_COUNT = re.compile(r"^(\d{1,4}(\.\d{1,3})?|\.\d{1,3})$")
MAX_CPUS = 512


def _to_cpus(value: object) -> float:
    # Read from text: a YAML `true`, `.nan` or `.inf` arrives as a string the float parser
    # would accept (`true` → 1.0 in lax mode, `nan`, `inf`); none of them is a CPU count.
    text = str(value).strip() if isinstance(value, (str, int, float)) else ""
    if isinstance(value, bool) or not _CPU_COUNT.fullmatch(text):
        raise PydanticCustomError(
            "cpus", "is not a number of CPUs; use a decimal number, e.g. 0.5 or 2"
        )
    cpus = float(text)
    if not 0.01 <= cpus <= MAX_CPUS:
        raise PydanticCustomError(
            "cpus", "is not a usable number of CPUs; use between 0.01 and 512"
        )
    return cpus


Cpus = Annotated[float, BeforeValidator(_to_cpus)]
"""A CPU count as Compose's ``cpus``: finite, at least 0.01, at most 512."""

_IMAGE_REF = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::\d+/[a-z0-9._/-]+)?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?P<digest>@sha256:[a-f0-9]{64})?$"
)


def _pinned_image(value: str) -> str:
    match = _IMAGE_REF.fullmatch(value)
    versioned = match is not None and match["tag"] and any(c.isdigit() for c in match["tag"])
    if match is None or not (versioned or match["digest"]) or match["tag"] == "latest":
        raise PydanticCustomError(
            "image_ref",
            "is not a pinned image; use name:exact-version, optionally @sha256:digest, "
            "e.g. postgres:17.2-alpine, or name@sha256:digest",
        )
    return value


def has_digest(reference: str) -> bool:
    """True when ``reference`` names its image by content (``…@sha256:…``)."""
    match = _IMAGE_REF.fullmatch(reference)
    return match is not None and bool(match["digest"])


@dataclass(frozen=True)
class ImageReference:
    """An image reference in its parts: ``name[:tag][@sha256:digest]``."""

    name: str
    tag: str | None
    digest: str | None  # ``sha256:…``, without the ``@``

    @property
    def moving(self) -> bool:
        """True when what it names can change under it: no digest, and no tag or ``latest``."""
        return self.digest is None and self.tag in (None, "latest")


def parse_image_reference(reference: str) -> ImageReference | None:
    """``reference`` in its parts, or None when it is not an image reference.

    The one grammar for references: stack settings (``PinnedImage``) and the policy rules both
    read images through it.
    """
    match = _IMAGE_REF.fullmatch(reference)
    if match is None:
        return None
    digest = match["digest"]
    return ImageReference(match["name"], match["tag"], digest.removeprefix("@") if digest else None)


PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
"""An image by exact version tag (never ``latest``) and/or by ``@sha256`` digest."""


def _matching(pattern: str, kind: str, rule: str) -> AfterValidator:
    """A validator for text that must match ``pattern``; ``rule`` says what is allowed."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):  # `$` alone would let a trailing newline in
            raise PydanticCustomError(kind, rule)
        return value

    return AfterValidator(check)


def _registry(value: str) -> str:
    match = re.fullmatch(
        r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:(?P<port>\d{1,5}))?(/[a-z0-9._-]+)*", value
    )
    if match is None or (match["port"] is not None and not 1 <= int(match["port"]) <= MAX_PORT):
        raise PydanticCustomError(
            "registry",
            "is not a registry address; use host[:port][/namespace] with a port 1-65535, "
            "e.g. registry.example.com",
        )
    return value


Registry = Annotated[str, AfterValidator(_registry)]

RegistryUsername = Annotated[
    str,
    _matching(
        r"^[^\s:\x00-\x1f\x7f]{1,256}$",
        "registry_username",
        "is not a registry username; use 1-256 characters without spaces, colons or "
        "control characters",
    ),
]
COMMIT_PATTERN = r"^[0-9a-f]{7,40}$"
"""A git commit as images are tagged with it: 7 to 40 lowercase hex digits."""

GitCommit = Annotated[
    str,
    _matching(COMMIT_PATTERN, "commit", "is not a git commit; use 7 to 40 lowercase hex digits"),
]

ReleaseVersion = Annotated[
    str,
    _matching(
        r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$",
        "version",
        "is not a release version; use e.g. 1.4.0 or v1.4.0",
    ),
]

# What comes after the scheme. A user or host that starts with `-` would reach `ssh` (or the
# docker CLI behind the provider) as an option such as `-oProxyCommand=…`: never allowed.
_HOST = r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_PORT = r"(?::(?P<port>\d{1,5}))?"
_DOCKER_HOSTS = (
    re.compile(r"^unix:///[A-Za-z0-9._/-]+$"),
    re.compile(rf"^tcp://{_HOST}{_PORT}/?$"),
    re.compile(rf"^ssh://(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]*)@{_HOST}{_PORT}$"),
)


def _docker_host(value: str) -> str:
    match = next((m for p in _DOCKER_HOSTS if (m := p.fullmatch(value))), None)
    port = match.groupdict().get("port") if match else None
    if match is None or (port is not None and not 1 <= int(port) <= MAX_PORT):
        raise PydanticCustomError(
            "docker_host",
            "is not a Docker host; use unix:///var/run/docker.sock, tcp://host:2376 or "
            "ssh://user@host[:port] (a user and host that start with a letter or digit)",
        )
    return value


DockerHost = Annotated[str, AfterValidator(_docker_host)]
"""The daemon a stack deploys to, as ``DOCKER_HOST`` spells it; only local socket, TCP or SSH."""


def is_remote(host: str) -> bool:
    """True when ``host`` is another machine: its paths are not this machine's paths."""
    return not host.startswith("unix://")


def _has_control(text: str) -> bool:
    """True when ``text`` holds a control character: a newline would split a line or a command."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _ssh_options(value: object) -> tuple[str, ...]:
    # Every refusal is [withheld]: a refused option is never shown back (README Configuration).
    # YAML reads `[-p, 2222]` with a number in it: ssh is given its digits.
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool))
        for item in value
    ):
        raise PydanticCustomError(
            "ssh_options",
            "is not a list of ssh options; use e.g. [-oConnectTimeout=10, -p, 2222]",
            {"withhold": True},
        )
    try:
        return normalise_ssh_options([str(item) for item in value])
    except SshOptionError as error:
        raise PydanticCustomError(
            "ssh_option", error.rule, {"key": str(error.index), "withhold": True}
        ) from None


SshOptions = Annotated[tuple[str, ...], BeforeValidator(_ssh_options)]
"""ssh options as ``-oKeyword=value``, each one allowed (``depot.ssh_options``)."""


NodeLabel = Annotated[
    str,
    _matching(
        r"^[a-z0-9]([a-z0-9._-]{0,98}[a-z0-9])?$",
        "node_label",
        "is not a node label; use lowercase letters, digits, '.', '_' and '-', e.g. depot.gpu",
    ),
]
"""A Swarm node label key (``docker node update --label-add depot.gpu=true``)."""

GenericResourceKind = Annotated[
    str,
    _matching(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        "generic_resource",
        "is not a generic resource kind; use letters, digits, '.', '_' and '-', e.g. NVIDIA-GPU",
    ),
]
"""A kind of ``node-generic-resources`` a Swarm node advertises (``NVIDIA-GPU``)."""

MAX_REPLICAS = 50
Replicas = Annotated[int, Field(ge=1, le=MAX_REPLICAS)]


def _host_path(value: str) -> str:
    if not value.strip() or _has_control(value):
        raise PydanticCustomError(
            "path", "is not a path; use a non-empty path without control characters"
        )
    if climbs(value):  # where a `..` leads, nothing that reads the path can judge
        raise PydanticCustomError(
            "path_climbs",
            "climbs with '..'; write the path without it (only a relative path may start with "
            "one ../, for a folder beside this project)",
        )
    return normalised_path(value)


HostPath = Annotated[str, AfterValidator(_host_path)]
"""A directory path: non-empty, one line, normalised (``normalised_path``), no ``..`` in it."""


# --- backups ---------------------------------------------------------------------------------

_INTERVAL = re.compile(r"^(?P<count>\d{1,3})(?P<unit>[mhd])$")
# unit → (seconds, fewest, most): at least a quarter hour apart (a dump of a large database
# must end before the next begins), at most a week (a weekly retention needs one a week).
_INTERVAL_UNITS = {"m": (60, 15, 59), "h": (3600, 1, 168), "d": (86400, 1, 7)}


def _to_interval_seconds(value: object) -> int:
    match = _INTERVAL.fullmatch(value.strip()) if isinstance(value, str) else None
    unit = _INTERVAL_UNITS.get(match["unit"]) if match else None
    if match is None or unit is None or not unit[1] <= int(match["count"]) <= unit[2]:
        raise PydanticCustomError(
            "backup_interval",
            "is not a backup interval; use 15m to 59m, 1h to 168h or 1d to 7d, e.g. 24h",
        )
    return int(match["count"]) * unit[0]


BackupInterval = Annotated[int, BeforeValidator(_to_interval_seconds)]
"""How often a backup runs, written ``24h`` (or ``30m``, ``2d``), held as seconds."""

# Bech32 (BIP 173), which age writes its X25519 recipients in: ``age1`` and 58 characters,
# the last six a checksum. Checked here so that a mistyped key fails the config, not every
# backup after the deploy.
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_AGE_RECIPIENT = re.compile(rf"^age1[{_BECH32_CHARSET}]{{58}}$")


def _bech32_checksum_holds(human_part: str, data: str) -> bool:
    values = [ord(c) >> 5 for c in human_part] + [0] + [ord(c) & 31 for c in human_part]
    values += [_BECH32_CHARSET.index(c) for c in data]
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate(_BECH32_GENERATOR):
            if (top >> bit) & 1:
                checksum ^= generator
    return checksum == 1


def _age_recipient(value: str) -> str:
    if not _AGE_RECIPIENT.fullmatch(value) or not _bech32_checksum_holds("age", value[4:]):
        raise PydanticCustomError(
            "age_recipient",
            "is not an age public key; use the 'age1…' line age-keygen prints (62 characters, "
            "its checksum intact), never the AGE-SECRET-KEY",
        )
    return value


AgeRecipient = Annotated[str, AfterValidator(_age_recipient)]
"""An age X25519 public key (``age1…``): dumps are encrypted to it; its private key stays away."""

MAX_BACKUP_TARGETS = 8
MAX_TARGET_LENGTH = 512
# rclone's own rule for a remote's name, without the spaces it also allows (a target is one
# word in the service's environment) and never starting with `-` (it would reach rclone as an
# option).
_REMOTE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@-]*")
_BACKEND = re.compile(r"[a-z][a-z0-9]*")
_PARAMETER_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Connection-string parameters that hold a credential (`secret_access_key`, `pass`, `token`,
# `sas_url`, ...) — and those that only name where one is, or are none at all.
_CREDENTIAL_KEY = re.compile(r"pass|secret|key|token|credential|sas_url|signature|bearer")
_NOT_CREDENTIALS = frozenset(
    {
        "env_auth",  # take credentials from the environment (an instance role): the point
        "key_file",  # a path to a key file, not the key
        "pubkey_file",
        "key_use_agent",
        "known_hosts_file",
        "shared_credentials_file",
        "sse_kms_key_id",  # names a KMS key; holds no secret
    }
)


@dataclass(frozen=True)
class RcloneTarget:
    """A backup target in its parts: ``name:path`` or ``:backend,key=value,…:path``."""

    remote: str | None  # the named remote (a section of depot:backupRcloneConfig); None: inline
    backend: str | None  # the inline remote's backend (s3, sftp, b2, ...)
    parameters: tuple[tuple[str, str], ...]
    path: str

    @property
    def on_this_host(self) -> bool:
        """True for rclone's local backend: a "target" inside the backup container itself."""
        return self.backend == "local"


def parse_rclone_target(text: str) -> RcloneTarget | None:
    """``text`` as an rclone remote and path, or None when it is not one.

    A parameter value may be quoted (``'…'`` or ``"…"``, a doubled quote for a quote) to hold a
    comma or a colon, as rclone's connection strings allow.
    """
    if not text.startswith(":"):
        name, colon, path = text.partition(":")
        if not colon or not _REMOTE_NAME.fullmatch(name):
            return None
        return RcloneTarget(remote=name, backend=None, parameters=(), path=path)
    backend = _BACKEND.match(text, 1)
    if backend is None:
        return None
    position, parameters = backend.end(), []
    while position < len(text) and text[position] == ",":
        key = _PARAMETER_KEY.match(text, position + 1)
        if key is None:
            return None
        position, value = key.end(), "true"
        if position < len(text) and text[position] == "=":
            value, position = _parameter_value(text, position + 1)
        parameters.append((key.group(), value))
    if position >= len(text) or text[position] != ":":
        return None
    return RcloneTarget(None, backend.group(), tuple(parameters), text[position + 1 :])


def _parameter_value(text: str, position: int) -> tuple[str, int]:
    """A parameter's value from ``position`` and where it ends (before ``,`` or ``:``)."""
    if position < len(text) and text[position] in "'\"":
        quote, value, position = text[position], [], position + 1
        while position < len(text):
            if text[position] == quote and text[position + 1 : position + 2] == quote:
                value.append(quote)
                position += 2
            elif text[position] == quote:
                return "".join(value), position + 1
            else:
                value.append(text[position])
                position += 1
        return "".join(value), position  # unterminated: the ':' check after it refuses it
    end = position
    while end < len(text) and text[end] not in ",:":
        end += 1
    return text[position:end], end


def credential_parameters(target: RcloneTarget) -> list[str]:
    """The keys of ``target``'s parameters that hold a credential."""
    return [
        key
        for key, _ in target.parameters
        if (normal := key.lower().replace("-", "_")) not in _NOT_CREDENTIALS
        and _CREDENTIAL_KEY.search(normal)
    ]


def _rclone_target(value: str) -> str:
    if (
        not value
        or len(value) > MAX_TARGET_LENGTH
        or _has_control(value)
        or any(c.isspace() for c in value)
    ):
        raise PydanticCustomError(
            "backup_target",
            "is not a backup target; use one rclone remote and path without spaces or control "
            "characters, at most {most} characters",
            {"most": MAX_TARGET_LENGTH},
        )
    target = parse_rclone_target(value)
    if target is None:
        raise PydanticCustomError(
            "backup_target",
            "is not a backup target; use an rclone remote and path: name:path (a remote of "
            "depot:backupRcloneConfig) or :backend,option=value:path, e.g. "
            ":s3,provider=AWS,env_auth=true:depot-backups/prod",
        )
    credentials = credential_parameters(target)
    if credentials:
        raise PydanticCustomError(
            "backup_target_credential",
            "carries a credential ({keys}) in the stack file, which anyone who reads it can "
            "read; define the remote with it in depot:backupRcloneConfig (pulumi config set "
            "--secret) and name it here as name:path, or use env_auth",
            # The target is shown as [withheld]: its text holds the credential.
            {"keys": ", ".join(credentials), "withhold": True},
        )
    return value


RcloneTargetText = Annotated[str, AfterValidator(_rclone_target)]
"""Where a backup is copied off the host: an rclone remote and path (``offsite:depot/prod``)."""
