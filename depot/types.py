"""Domain types for stack settings: each says what a value is and what is allowed.

Every validator here raises ``PydanticCustomError`` with a message that states what *is*
allowed, because that text reaches the user verbatim (see ``depot.config.errors``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
# rclone's characters for an option's name in a connection string (fs/fspath). A `.` only ever
# starts `global.` or `override.`, which set rclone's global flags: none is allowed here.
_OPTION_NAME = re.compile(r"[A-Za-z0-9_.]+")

INLINE_TARGET_OPTIONS = frozenset(
    {
        # Where the store is.
        "provider",
        "region",
        "endpoint",
        "location_constraint",
        # Whose identity: the machine's own (an instance role, workload identity), never a key.
        "env_auth",
        # How objects are stored: modes and names, none of them a key.
        "storage_class",
        "acl",
        "bucket_acl",
        "object_acl",
        "server_side_encryption",
        "sse_kms_key_id",  # names a KMS key; holds none
        "force_path_style",
        "no_check_bucket",
        # A server and the account on it (sftp, ftp, smb): its password or key is a credential.
        "host",
        "user",
        "port",
    }
)
"""The options an inline target may set: none holds a credential and none runs a program.

An allowlist (README "Backups"): every other option — a key, a password, a token, a connection
string, a header, a command — belongs in a remote of the secret ``depot:backupRcloneConfig``.
"""

# Backends that wrap other remotes (rclone's backend/*), by the options naming what they wrap
# (`upstreams` is a space-separated list; combine's entries are `dir=remote`). A target is
# judged by what it wraps.
WRAPPED_REMOTE_OPTIONS: dict[str, tuple[str, ...]] = {
    "alias": ("remote",),
    "archive": ("remote",),  # without one, the path is the remote (`:archive:remote:path`)
    "cache": ("remote",),
    "chunker": ("remote",),
    "combine": ("upstreams",),
    "compress": ("remote",),
    "crypt": ("remote",),
    "hasher": ("remote",),
    "union": ("upstreams", "remotes"),  # `remotes`: union's older name for them
}
# Backends that store nothing anywhere else: their "target" is inside the backup container.
_ON_THIS_HOST = {"local": "rclone's local backend", "memory": "rclone's memory backend"}
# Options that make rclone run a program: sftp's `ssh` (a local command) and its
# `*_command`s (run on the server), webdav's `bearer_token_command`, and the global
# `password_command`, `metadata_mapper` and `name_transform` (its `command=`). None is in
# INLINE_TARGET_OPTIONS; this only words their refusal.
_RUNS_A_PROGRAM = re.compile(r"(?:^|\.)(?:ssh|\w*_command|metadata_mapper|name_transform)$")
# What an allowed option's value may hold (INLINE_TARGET_OPTIONS): a region, a mode, a name, a
# number, an endpoint's URL or a KMS key's ARN.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._:/+-]*")
_URL_USER_INFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
_URL_QUERY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^?#]*[?#]")
_MOST_WRAPPED = 8  # named remotes inside named remotes, deeper than any real configuration


class MalformedTargetError(ValueError):
    """Where a target stops being an rclone remote, and what is wrong there — never its text."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(problem)
        self.position = position
        self.problem = problem


@dataclass(frozen=True)
class RcloneTarget:
    """A backup target in its parts: ``name:path``, ``:backend,key=value,…:path`` or a path.

    A text with no remote at all (``/backups``, ``dir``) is, to rclone, a local path: it is
    read as one (``remote`` and ``backend`` both None), so that it is judged on this host.
    """

    remote: str | None  # the named remote (a section of depot:backupRcloneConfig)
    backend: str | None  # the inline remote's backend (s3, sftp, b2, ...)
    parameters: tuple[tuple[str, str], ...]
    path: str
    # Where each parameter's name and the path begin in the text: errors name a position,
    # never the text.
    positions: tuple[int, ...] = field(default=(), compare=False)
    path_position: int = field(default=0, compare=False)

    @property
    def is_local_path(self) -> bool:
        return self.remote is None and self.backend is None

    @property
    def on_this_host(self) -> bool:
        """True when the target is, or wraps, a place inside the backup container itself.

        A named remote is judged only where its section is known (``why_on_this_host``).
        """
        return why_on_this_host(self) is not None


def read_rclone_target(text: str) -> RcloneTarget:
    """``text`` read as rclone reads a remote and path (its fs/fspath), or ``MalformedTargetError``.

    A parameter value may be quoted (``'…'`` or ``"…"``, a doubled quote for a quote) to hold a
    comma or a colon, as rclone's connection strings allow.
    """
    if not text.startswith(":"):
        end = next((i for i, c in enumerate(text) if c in ":,/\\"), len(text))
        if end == len(text) or text[end] in "/\\":
            return RcloneTarget(None, None, (), text)  # no remote before a separator: local
        if not _REMOTE_NAME.fullmatch(text[:end]):
            raise MalformedTargetError(
                0,
                "a remote's name starts with a letter, a digit or _, and holds only those and .+@-",
            )
        remote, backend, position = text[:end], None, end
    else:
        match = _BACKEND.match(text, 1)
        if match is None or match.end() == len(text) or text[match.end()] not in ",:":
            raise MalformedTargetError(
                1, "an inline remote starts with its backend in lower case (:s3,)"
            )
        remote, backend, position = None, match.group(), match.end()
    parameters: list[tuple[str, str]] = []
    positions: list[int] = []
    while text[position] == ",":
        key = _OPTION_NAME.match(text, position + 1)
        if key is None or (key.end() < len(text) and text[key.end()] not in "=,:"):
            at = key.end() if key else position + 1
            raise MalformedTargetError(at, "an option's name holds only letters, digits, _ and .")
        position, value = key.end(), "true"
        if position < len(text) and text[position] == "=":
            value, position = _parameter_value(text, position + 1)
        if position >= len(text):
            raise MalformedTargetError(
                len(text) - 1, "the remote's options end with ':' and a path"
            )
        parameters.append((key.group(), value))
        positions.append(key.start())
    return RcloneTarget(
        remote, backend, tuple(parameters), text[position + 1 :], tuple(positions), position + 1
    )


def parse_rclone_target(text: str) -> RcloneTarget | None:
    """``text`` as an rclone remote and path (``read_rclone_target``), or None."""
    try:
        return read_rclone_target(text)
    except MalformedTargetError:
        return None


def _parameter_value(text: str, position: int) -> tuple[str, int]:
    """A parameter's value from ``position`` and where it ends (at its ``,`` or ``:``)."""
    if position < len(text) and text[position] in "'\"":
        quote, start, value = text[position], position, []
        position += 1
        while position < len(text):
            if text[position] != quote:
                value.append(text[position])
                position += 1
            elif text[position + 1 : position + 2] == quote:
                value.append(quote)
                position += 2
            elif text[position + 1 : position + 2] in (",", ":"):
                return "".join(value), position + 1
            else:
                raise MalformedTargetError(
                    position + 1, "a quoted value ends with its quote, then ',' or ':'"
                )
        raise MalformedTargetError(start, "a quoted value is not closed")
    end = position
    while end < len(text) and text[end] not in ",:":
        end += 1
    return text[position:end], end


def read_rclone_config(text: str) -> dict[str, dict[str, str]]:
    """An rclone.conf's remotes: ``{name: {option: value}}``, read as rclone's goconfig reads.

    A line is ``[name]`` or ``key = value`` (or ``key: value``); ``#`` and ``;`` start comments.
    """
    remotes: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            section = remotes.setdefault(line[1:-1].strip(), {})
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if section is not None and cut > 0:
            section[line[:cut].strip()] = line[cut + 1 :].strip()
    return remotes


def why_on_this_host(
    target: RcloneTarget, remotes: Mapping[str, Mapping[str, str]] | None = None
) -> str | None:
    """Why ``target`` stays on this host, or None: what it is, in words of this module only.

    Wrapping backends are judged by every remote they wrap; a named remote by its section of
    ``remotes`` (the secret rclone config), and not at all where that is unknown. Nothing of
    the secret is told, not even its remotes' names or types: only what they come down to.
    """
    return _why(target, remotes or {}, ())


def _why(
    target: RcloneTarget, remotes: Mapping[str, Mapping[str, str]], seen: tuple[str, ...]
) -> str | None:
    """``seen``: the named remotes this one is inside (non-empty: reading the secret)."""
    if len(seen) > _MOST_WRAPPED:  # a loop, too, ends here
        return f"remotes wrapping each other in a loop or more than {_MOST_WRAPPED} deep"
    if target.is_local_path:
        return "a local path"
    if target.backend is not None:
        return _why_backend(target.backend, dict(target.parameters), target.path, remotes, seen)
    section = remotes.get(target.remote or "")
    if section is None or target.remote is None:
        return None  # unknown here: judged where the config is read, or refused as undefined
    backend = section.get("type", "")
    why = _why_backend(backend, section, target.path, remotes, (*seen, target.remote))
    if why is None or seen:
        return why
    return f"a remote that depot:backupRcloneConfig defines as, or around, {why}"


def _why_backend(
    backend: str,
    options: Mapping[str, str],
    path: str,
    remotes: Mapping[str, Mapping[str, str]],
    seen: tuple[str, ...],
) -> str | None:
    if backend in _ON_THIS_HOST:
        return _ON_THIS_HOST[backend]
    for _, spec in wrapped_remotes(backend, options, path):
        inner = parse_rclone_target(spec)
        why = _why(inner, remotes, seen) if inner is not None else None
        if why is not None:
            return why if seen else f"rclone's {backend} backend around {why}"
    return None


def wrapped_remotes(backend: str, options: Mapping[str, str], path: str) -> list[tuple[str, str]]:
    """The remotes a wrapping backend wraps, each with the option that names it."""
    wrapped: list[tuple[str, str]] = []
    for key in WRAPPED_REMOTE_OPTIONS.get(backend, ()):
        value = options.get(key, "")
        if key == "remote":
            wrapped += [(key, value)] if value else []
            continue
        for item in _space_separated(value):
            wrapped.append((key, item.partition("=")[2] if backend == "combine" else item))
    if backend == "archive" and not options.get("remote"):
        wrapped.append(("path", path))
    return wrapped


def _space_separated(value: str) -> list[str]:
    """rclone's space-separated list (Go's encoding/csv with a space for a comma)."""
    try:
        rows = list(csv.reader([value], delimiter=" "))
    except csv.Error:
        rows = [value.split()]
    return [item for row in rows for item in row if item]


def _refusal(message: str, position: int | None, **context: str) -> PydanticCustomError:
    """A target's refusal: ``message`` may say ``{position}`` (1 is the first character).

    Every refusal of a target is withheld: its text may hold a credential no check named.
    """
    at = {} if position is None else {"position": position + 1}
    return PydanticCustomError("backup_target", message, {**context, **at, "withhold": True})


_WHAT_A_TARGET_IS = (
    "use name:path (a remote of depot:backupRcloneConfig) or :backend,option=value:path, e.g. "
    ":s3,provider=AWS,env_auth=true:depot-backups/prod"
)
_WHERE_CREDENTIALS_GO = (
    "an inline target takes only {allowed}; define the remote in depot:backupRcloneConfig "
    "(pulumi config set --secret) and name it here as name:path"
)


def _checked_options(target: RcloneTarget, within: str = "", outer: int | None = None) -> None:
    """Refuse every option of ``target`` (and of the inline remotes it wraps) not allowed.

    ``within``, ``outer``: the option of the target that wraps this one, and its position (a
    wrapped remote's own positions count in its unquoted text).
    """
    keys = [key for key, _ in target.parameters]
    positions = target.positions if outer is None else (outer,) * len(keys)
    wraps = WRAPPED_REMOTE_OPTIONS.get(target.backend or "", ())
    for (key, value), at in zip(target.parameters, positions, strict=True):
        if target.remote is not None:
            raise _refusal(
                "sets option {option} at character {position} on a named remote; set a named "
                "remote's options in its section of depot:backupRcloneConfig",
                at,
                option=key + within,
            )
        _checked_option(key, value, key + within, at, wrapper=key in wraps)
    for key, spec in wrapped_remotes(target.backend or "", dict(target.parameters), target.path):
        at = target.path_position if key == "path" else positions[keys.index(key)]
        try:
            inner = read_rclone_target(spec)
        except MalformedTargetError as error:
            raise _refusal(
                f"wraps, in option {{option}} at character {{position}}, what is not an rclone "
                f"remote: {error.problem}; {_WHAT_A_TARGET_IS}",
                at,
                option=key,
            ) from None
        _checked_options(inner, f" (inside {key}{within})", at)
        _checked_path(inner, at)


def _checked_option(key: str, value: str, option: str, at: int, *, wrapper: bool) -> None:
    """One inline option: allowed (or naming what a wrapper wraps), its value no URL's secret."""
    if key not in INLINE_TARGET_OPTIONS and not wrapper:
        reason = (
            "would make rclone run a program"
            if _RUNS_A_PROGRAM.search(key)
            else "sets one of rclone's global flags"
            if "." in key
            else "may hold a credential"
        )
        raise _refusal(
            f"sets option {{option}} at character {{position}}, which {reason}; "
            + _WHERE_CREDENTIALS_GO,
            at,
            option=option,
            allowed=", ".join(sorted(INLINE_TARGET_OPTIONS)),
        )
    if _URL_USER_INFO.search(value) or (key in ("host", "endpoint") and "@" in value):
        raise _refusal(
            "holds a URL with user information (user:password@) in option {option} at "
            "character {position}; define the remote with its credentials in "
            "depot:backupRcloneConfig (pulumi config set --secret) and name it here as name:path",
            at,
            option=option,
        )
    if _URL_QUERY.search(value):
        raise _refusal(
            "holds a URL with a query or fragment, which can carry a token, in option {option} "
            "at character {position}; write the URL without one, or define the remote in "
            "depot:backupRcloneConfig",
            at,
            option=option,
        )
    if not wrapper and not _PLAIN_VALUE.fullmatch(value):
        # No allowed option's value needs more (an endpoint is a URL, a KMS key an ARN); a ','
        # or '=' in one, quoted, is a second option's text riding inside it.
        raise _refusal(
            "sets option {option} at character {position} to a value with a character none of "
            "its values needs; use letters, digits and . _ : / + - (quoted where it holds ':')",
            at,
            option=option,
        )


def _checked_path(target: RcloneTarget, outer: int | None = None) -> None:
    """Refuse what no backup's path holds; ``outer``: the position of a wrapping option."""

    def at(offset: int) -> int:
        return outer if outer is not None else target.path_position + offset

    # An unquoted value ends at its first ':', and rclone reads the rest as the path: options
    # written after it (`:s3,acl=x:,secret_access_key=…:`) would reach it as a path, checked by
    # nothing above. No path of a backup holds an '='.
    if "=" in target.path:
        raise _refusal(
            "has an '=' in its path at character {position}: an option whose value holds ':' "
            "ended there; quote such a value ('…')",
            at(target.path.index("=")),
        )
    if found := _URL_USER_INFO.search(target.path):
        raise _refusal(
            "holds a URL with user information (user:password@) in its path at character "
            "{position}; define the remote with its credentials in depot:backupRcloneConfig "
            "and name it here as name:path",
            at(found.start()),
        )
    if found := re.search(r"(?:^|/)\.\.(?:/|$)", target.path):
        raise _refusal(
            "has a '..' in its path at character {position}; write the path without it",
            at(found.start() + (found[0][0] == "/")),
        )


def _checked_urls(text: str) -> None:
    """No URL with user information or a query anywhere, whichever part rclone reads it as.

    An unquoted URL's ``:`` ends its option, and rclone reads the rest as the path: the checks
    of each value would not see it there.
    """
    for pattern, what in ((_URL_USER_INFO, "user information"), (_URL_QUERY, "a query")):
        if found := pattern.search(text):
            raise _refusal(
                f"holds a URL with {what} at character {{position}}; write the URL without it, "
                "or define the remote in depot:backupRcloneConfig and name it here as name:path",
                found.start(),
            )


def on_this_host_refusal(why: str, **key: str) -> PydanticCustomError:
    """The refusal of a target that never leaves this host, ``why`` naming what it is.

    ``key``: where a model-level check locates it (``key="backup.targets.0"``).
    """
    return _refusal(
        "does not leave this host: it is {why}, inside the backup container (where the "
        "local retention prunes too); use a remote on another machine (S3, SFTP, B2, …)",
        None,
        why=why,
        **key,
    )


def _rclone_target(value: str) -> str:
    """``value`` if it is a target off this host with no credential in it; else a refusal
    that names what is wrong and where, never the text (it may hold what no check named)."""
    if not value or len(value) > MAX_TARGET_LENGTH:
        raise _refusal(
            "is {length} characters long; use one rclone remote and path of 1 to {most}",
            None,
            length=str(len(value)),
            most=str(MAX_TARGET_LENGTH),
        )
    bad = next((i for i, c in enumerate(value) if c.isspace() or _has_control(c)), None)
    if bad is not None:
        raise _refusal(
            "holds a space or a control character at character {position}; use one rclone "
            "remote and path without either (a target is one word)",
            bad,
        )
    try:
        target = read_rclone_target(value)
    except MalformedTargetError as error:
        raise _refusal(
            f"is not a backup target at character {{position}}: {error.problem}; "
            + _WHAT_A_TARGET_IS,
            error.position,
        ) from None
    _checked_options(target)
    why = why_on_this_host(target)
    if why is not None:
        raise on_this_host_refusal(why)
    _checked_path(target)
    _checked_urls(value)
    return value


RcloneTargetText = Annotated[str, AfterValidator(_rclone_target)]
"""Where a backup is copied off the host: an rclone remote and path (``offsite:depot/prod``)."""
