"""Domain types for stack settings: each says what a value is and what is allowed.

Every validator here raises ``PydanticCustomError`` with a message that states what *is*
allowed, because that text reaches the user verbatim (see ``depot.config.errors``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

Profile = Literal["gpu", "rtk"]
"""Optional service groups, as Compose profiles in the reference."""

ServiceName = Literal[
    "discovery", "dispatch", "console", "grafana", "postgres", "splat-worker", "rtk-base"
]
"""Every depot service; container names are ``depot-<service>``."""

BuiltServiceName = Literal["discovery", "dispatch", "splat-worker", "rtk-base"]
"""The Rust services built from this repository's Dockerfile."""


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
]
"""Every rule of the policy pack (depot/policy/rules.py), as stack config may name them."""

PROFILES: tuple[Profile, ...] = get_args(Profile)

Port = Annotated[int, Field(ge=1, le=65535)]

_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kmg])i?b?$", re.IGNORECASE)
_MEBIBYTES_PER_UNIT = {"k": 1 / 1024, "m": 1.0, "g": 1024.0}
_DOCKER_MINIMUM_MB = 6  # the Docker engine rejects memory limits below 6 MiB


def _to_megabytes(value: object) -> int:
    """Parse a Compose-style size (``256m``, ``1g``, ``1.5G``) into whole MiB."""
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "memory_size", "is not a memory size; use a number with a unit k, m or g, e.g. 256m"
        )
    megabytes = float(match["number"]) * _MEBIBYTES_PER_UNIT[match["unit"].lower()]
    if megabytes < _DOCKER_MINIMUM_MB or megabytes != int(megabytes):
        raise PydanticCustomError(
            "memory_size", "is not a usable limit; use a whole number of MiB, at least 6m"
        )
    return int(megabytes)


Megabytes = Annotated[int, BeforeValidator(_to_megabytes)]
"""A memory size written ``256m`` in the stack file, held as whole MiB (the provider's unit)."""


def _positive_cpus(value: float) -> float:
    if value <= 0:
        raise PydanticCustomError("cpus", "is not a positive number of CPUs; use e.g. 0.5 or 2")
    return value


Cpus = Annotated[float, AfterValidator(_positive_cpus)]

_IMAGE_REF = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::\d+/[a-z0-9._/-]+)?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?P<digest>@sha256:[a-f0-9]{64})?$"
)


def _pinned_image(value: str) -> str:
    match = _IMAGE_REF.match(value)
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
    match = _IMAGE_REF.match(reference)
    return match is not None and bool(match["digest"])


PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
"""An image by exact version tag (never ``latest``) and/or by ``@sha256`` digest."""


def _matching(pattern: str, kind: str, rule: str) -> AfterValidator:
    """A validator for text that must match ``pattern``; ``rule`` says what is allowed."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise PydanticCustomError(kind, rule)
        return value

    return AfterValidator(check)


Registry = Annotated[
    str,
    _matching(
        r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9._-]+)*$",
        "registry",
        "is not a registry address; use host[:port][/namespace], e.g. registry.example.com",
    ),
]

GitCommit = Annotated[
    str,
    _matching(
        r"^[0-9a-f]{7,40}$", "commit", "is not a git commit; use 7 to 40 lowercase hex digits"
    ),
]

ReleaseVersion = Annotated[
    str,
    _matching(
        r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$",
        "version",
        "is not a release version; use e.g. 1.4.0 or v1.4.0",
    ),
]

DockerHost = Annotated[
    str,
    _matching(
        r"^(unix|tcp|ssh|npipe)://\S+$",
        "docker_host",
        "is not a Docker host; use unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host",
    ),
]
