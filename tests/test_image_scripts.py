"""The CI image path without a registry: fake `docker` and `pulumi` record what they are asked."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import PROJECT_DIR

DIGEST = "sha256:" + "c" * 64


def _fake(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/usr/bin/env bash\n{body}\n")
    tool.chmod(0o755)


def _run(script: str, *args: str, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(PROJECT_DIR / "scripts" / script), *args],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip


def test_build_image_pushes_the_commit_tag_with_a_registry_cache_and_prints_the_digest(
    tmp_path: Path,
) -> None:
    calls = tmp_path / "docker.args"
    _fake(
        tmp_path / "bin",
        "docker",
        f'printf "%s\\n" "$@" > {calls}\n'
        "while [[ $# -gt 0 ]]; do [[ $1 == --metadata-file ]] && out=$2; shift; done\n"
        f"echo '{json.dumps({'containerimage.digest': DIGEST})}' > \"$out\"",
    )
    result = _run("build-image.sh", "discovery", "/src/discovery", "registry.example.com",
                  "abc1234", "1.4.0", bin_dir=tmp_path / "bin")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"registry.example.com/depot-discovery@{DIGEST}"
    args = calls.read_text().splitlines()
    assert args[:2] == ["buildx", "build"]
    for expected in (
        "--push",
        "BINARY=discovery",
        "registry.example.com/depot-discovery:abc1234",
        "registry.example.com/depot-discovery:1.4.0",
        "type=registry,ref=registry.example.com/depot-discovery:buildcache",
        "type=registry,ref=registry.example.com/depot-discovery:buildcache,mode=max",
        "docker/rust-service.Dockerfile",
    ):
        assert expected in args, expected
    assert args[-1] == "/src/discovery"


def test_use_images_points_the_stack_at_each_digest(tmp_path: Path) -> None:
    calls = tmp_path / "pulumi.calls"
    _fake(tmp_path / "bin", "pulumi", f'echo "$*" >> {calls}')
    images = tmp_path / "images.txt"
    images.write_text(
        f"discovery registry.example.com/depot-discovery@{DIGEST}\n"
        f"dispatch registry.example.com/depot-dispatch@{DIGEST}\n"
    )
    result = _run("use-images.sh", str(images), "prod", bin_dir=tmp_path / "bin")
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == [
        f"config set --path depot:images.discovery registry.example.com/depot-discovery@{DIGEST}"
        " --stack prod",
        f"config set --path depot:images.dispatch registry.example.com/depot-dispatch@{DIGEST}"
        " --stack prod",
    ]
