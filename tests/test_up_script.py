"""`make up` on a machine without the Pulumi CLI or a Docker engine says so and deploys nothing."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import PROJECT_DIR


def test_up_names_what_is_missing_and_points_to_what_runs_without_it() -> None:
    # No pulumi on this PATH (and none on these machines); docker may be a bare client.
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(PROJECT_DIR / "scripts" / "up.sh")],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot run `pulumi up --stack dev` on this machine" in result.stderr
    assert "the Pulumi CLI" in result.stderr
    assert "Nothing was deployed." in result.stderr
    assert "make test" in result.stderr
