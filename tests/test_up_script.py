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


def test_up_runs_the_doctor_first_and_stops_on_what_it_finds(tmp_path: Path) -> None:
    # The doctor is a stand-in that reports one problem; pulumi and docker "exist" and would
    # record a call, which must never come.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    calls = tmp_path / "calls"
    for tool in ("pulumi", "docker"):
        (bin_dir / tool).write_text(f'#!{bin_dir}/bash\necho {tool} "$@" >> {calls}\n')
        (bin_dir / tool).chmod(0o755)
    doctor = tmp_path / "depot"
    doctor.write_text(
        f'#!{bin_dir}/bash\necho depot "$@" >> {calls}\n'
        "echo 'PROBLEM   crate: discovery: its crate ../discovery is not there'\nexit 1\n"
    )
    doctor.chmod(0o755)
    result = subprocess.run(
        [str(bin_dir / "bash"), str(PROJECT_DIR / "scripts" / "up.sh")],
        capture_output=True, text=True, check=False,
        env={"PATH": str(bin_dir), "DEPOT": str(doctor), "STACK": "prod"},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "PROBLEM   crate: discovery" in result.stdout
    assert "`depot doctor --stack prod` found what is above" in result.stderr
    assert "Nothing was deployed." in result.stderr
    # The doctor ran first; then only the script's own `docker info` probe, never `pulumi up`.
    assert calls.read_text().splitlines() == ["depot doctor --stack prod", "docker info"]
