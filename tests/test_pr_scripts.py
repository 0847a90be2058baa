"""The PR comment's scripts: only a diff that ran (exit 0 or 1, with its section) is posted.

``scripts/pr-diff.sh`` runs a stand-in ``depot`` that exits as told; ``scripts/pr-comment.sh``
a stand-in ``gh`` that records each call, so no test reaches GitHub.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_DIR

SECTION = "### `dev@origin/main` → `dev (working tree)`\n\nNo changes.\n"
FOOTER = "never by value.</sub>"


def _pr_diff(tmp_path: Path, status: int, stdout: str) -> subprocess.CompletedProcess[str]:
    """``scripts/pr-diff.sh origin/main dev`` in a copy whose ``depot`` prints and exits so."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(PROJECT_DIR / "scripts" / "pr-diff.sh", tmp_path / "scripts")
    depot = tmp_path / ".venv" / "bin" / "depot"
    depot.parent.mkdir(parents=True)
    (tmp_path / "stdout").write_text(stdout)
    depot.write_text(f"#!/bin/sh\ncat '{tmp_path}/stdout'\necho 'Traceback …' >&2\nexit {status}\n")
    depot.chmod(0o755)
    return subprocess.run(
        ["bash", str(tmp_path / "scripts" / "pr-diff.sh"), "origin/main", "dev"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("status", [0, 1])
def test_a_diff_that_ran_is_written_whole(tmp_path: Path, status: int) -> None:
    completed = _pr_diff(tmp_path, status, SECTION)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0] == "<!-- depot-diff -->"
    assert SECTION in completed.stdout
    assert lines[-1].endswith(FOOTER)


@pytest.mark.parametrize("status", [2, 3, 126, 127, 134, 139, 255])
def test_any_other_exit_fails_the_script(tmp_path: Path, status: int) -> None:
    completed = _pr_diff(tmp_path, status, SECTION)
    assert completed.returncode == 2
    assert completed.stderr.endswith(
        f"depot diff failed for dev (exit {status}); see the job log.\n"
    )
    assert FOOTER not in completed.stdout


@pytest.mark.parametrize("status", [0, 1])
def test_an_exit_that_printed_no_diff_fails_the_script(tmp_path: Path, status: int) -> None:
    # What a crash looked like before `depot diff` exited 2 on any failure: 1 and a traceback.
    completed = _pr_diff(tmp_path, status, "\n")
    assert completed.returncode == 2
    assert f"depot diff printed nothing for dev (exit {status})" in completed.stderr
    assert FOOTER not in completed.stdout


def _pr_comment(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """``scripts/pr-comment.sh`` with ``body``; also what the stand-in ``gh`` was asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "gh-calls"
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\necho "$*" >> \'{calls}\'\necho "[]"\n')
    gh.chmod(0o755)
    body_file = tmp_path / "diff.md"
    body_file.write_text(body)
    completed = subprocess.run(
        [
            "bash", str(PROJECT_DIR / "scripts" / "pr-comment.sh"),
            "owner/repo", "7", str(body_file), "github-actions[bot]",
        ],
        capture_output=True, text=True, check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )  # fmt: skip
    return completed, calls.read_text() if calls.exists() else ""


def test_a_finished_diff_is_posted(tmp_path: Path) -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed")  # pragma: no cover
    body = f"<!-- depot-diff -->\n## Infrastructure diff\n\n{SECTION}\n<sub>…{FOOTER}\n"
    completed, calls = _pr_comment(tmp_path, body)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "posted a new comment\n"
    assert "--method POST repos/owner/repo/issues/7/comments" in calls


@pytest.mark.parametrize(
    "body",
    [
        "",
        "\n",
        f"## Infrastructure diff\n\n{SECTION}\n<sub>{FOOTER}\n",  # no marker first
        f"<!-- depot-diff -->\n## Infrastructure diff\n\n{SECTION}",  # stopped before the end
    ],
)
def test_an_unfinished_body_is_never_posted(tmp_path: Path, body: str) -> None:
    completed, calls = _pr_comment(tmp_path, body)
    assert completed.returncode == 2
    assert completed.stderr.endswith("is not a finished depot diff; nothing posted\n")
    assert calls == ""


def _steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load((PROJECT_DIR / ".github/workflows/pull-request.yml").read_text())
    steps: list[dict[str, Any]] = workflow["jobs"]["infrastructure-diff"]["steps"]
    return steps


def test_the_workflow_posts_only_after_the_diff_succeeded() -> None:
    steps = _steps()
    [diff] = [i for i, s in enumerate(steps) if "scripts/pr-diff.sh" in str(s.get("run", ""))]
    [post] = [i for i, s in enumerate(steps) if "scripts/pr-comment.sh" in str(s.get("run", ""))]
    assert diff < post
    for step in steps[diff : post + 1]:
        # No `if: always()`/`failure()` and no continue-on-error: a failed diff stops the job.
        assert "if" not in step
        assert not step.get("continue-on-error", False)
    assert steps[diff]["run"].strip().endswith("> diff.md")
