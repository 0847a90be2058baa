"""`make up` on a machine without the Pulumi CLI or a Docker engine says so and deploys nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import PROJECT_DIR


def test_up_names_what_is_missing_and_points_to_what_runs_without_it(tmp_path: Path) -> None:
    # A PATH holding only what the script needs before its checks: no pulumi, no docker, even
    # on a machine that has them, so this test can never deploy anything.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    result = subprocess.run(
        [str(bin_dir / "bash"), str(PROJECT_DIR / "scripts" / "up.sh")],
        capture_output=True, text=True, check=False, env={"PATH": str(bin_dir)},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "cannot run `pulumi up --stack dev` on this machine" in result.stderr
    assert "the Pulumi CLI" in result.stderr
    assert "Docker (https://docs.docker.com/engine/install/)" in result.stderr
    assert "Nothing was deployed." in result.stderr
    assert "make test" in result.stderr
