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


MARKER = "<!-- depot-diff -->"
BOT = "github-actions[bot]"


def _comment(comment_id: int, login: str, body: str) -> dict[str, object]:
    kind = "Bot" if login.endswith("[bot]") else "User"
    return {"id": comment_id, "user": {"login": login, "type": kind}, "body": body}


def _pr_comment(
    tmp_path: Path, pages: list[list[dict[str, object]]], *author: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run pr-comment.sh against a fake `gh` that lists PAGES and records every write."""
    listing = tmp_path / "comments.json"
    listing.write_text("".join(json.dumps(page) for page in pages))  # --paginate: one per page
    writes = tmp_path / "gh.writes"
    writes.touch()
    _fake(
        tmp_path / "bin",
        "gh",
        f'if [[ $2 == --method ]]; then echo "$3 $4" >> {writes}; else cat {listing}; fi',
    )
    body = tmp_path / "diff.md"
    body.write_text(f"{MARKER}\n## Infrastructure diff\n")
    result = _run("pr-comment.sh", "acme/depot", "7", str(body), *author, bin_dir=tmp_path / "bin")
    return result, writes.read_text().splitlines()


def test_pr_comment_updates_the_marked_comment_its_own_token_wrote(tmp_path: Path) -> None:
    pages = [
        [_comment(11, "alice", "looks good")],
        [_comment(12, BOT, f"{MARKER}\nold diff"), _comment(13, BOT, f"{MARKER}\nlater")],
    ]
    result, writes = _pr_comment(tmp_path, pages, BOT)
    assert result.returncode == 0, result.stderr
    assert writes == ["PATCH repos/acme/depot/issues/comments/12"]


def test_pr_comment_never_edits_a_marked_comment_someone_else_wrote(tmp_path: Path) -> None:
    pages = [
        [
            _comment(21, "mallory", f"{MARKER}\nnothing to see here"),
            _comment(22, "other-app[bot]", f"{MARKER}\nanother bot"),
            _comment(23, BOT, "a comment of ours without the marker"),
        ]
    ]
    result, writes = _pr_comment(tmp_path, pages, BOT)
    assert result.returncode == 0, result.stderr
    assert writes == ["POST repos/acme/depot/issues/7/comments"]


def test_pr_comment_skips_a_foreign_marked_comment_before_its_own(tmp_path: Path) -> None:
    pages = [[_comment(31, "mallory", f"{MARKER}\nfirst"), _comment(32, BOT, f"{MARKER}\nours")]]
    result, writes = _pr_comment(tmp_path, pages, BOT)
    assert result.returncode == 0, result.stderr
    assert writes == ["PATCH repos/acme/depot/issues/comments/32"]


def test_pr_comment_refuses_to_run_without_knowing_its_author(tmp_path: Path) -> None:
    result, writes = _pr_comment(tmp_path, [[_comment(41, "mallory", MARKER)]])
    assert result.returncode != 0
    assert "AUTHOR" in result.stderr
    assert writes == []
