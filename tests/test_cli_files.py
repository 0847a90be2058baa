"""``depot compose -o`` and ``depot secrets init`` with odd things in the way of their files.

Every case ends in one line per problem, the right exit status, nothing followed or replaced,
and no secret in the output: a canary password shows that.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from depot.cli import main
from depot.outputs.compose import project_path
from depot.outputs.secret_files import init_secret_files

CANARY = "canary-Vr8pw"
PASSWORD = "database_password.txt"
GRAFANA = "grafana_admin_password.txt"
ENV = "dispatch.env"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def shown(folder: Path, name: str) -> str:
    """A file's path as ``depot secrets init`` prints it."""
    return project_path(os.path.abspath(folder / name))


def private_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    return folder


def assert_one_line_error(err: str, starts: str) -> None:
    assert err.startswith(starts), err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err


# --- depot compose -o ------------------------------------------------------------------------


def test_compose_to_a_folder_names_it_and_suggests_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "compose", "--stack", "dev", "-o", str(tmp_path))
    assert (status, out) == (2, "")
    assert err == (
        f"depot compose: -o {tmp_path}: is a folder; give the file's path "
        f"({tmp_path}/compose.yaml)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_compose_into_a_missing_folder_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "missing" / "compose.yaml"
    status, _, err = run(capsys, "compose", "--stack", "dev", "-o", str(output))
    assert status == 2
    assert err == (
        f"depot compose: -o {output}: folder {output.parent} does not exist; create it first\n"
    )
    assert not output.parent.exists()


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A path in a folder the test's user cannot write: a 0500 folder, or sysfs for root."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o500)
        return folder / "compose.yaml"
    path = Path("/sys/compose.yaml")  # sysfs refuses new files, even to root
    try:
        path.write_text("")
    except PermissionError:
        return path
    pytest.skip("no folder here refuses a file to root")  # pragma: no cover


def test_compose_to_an_unwritable_place_is_one_line(
    unwritable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "compose", "--stack", "dev", "-o", str(unwritable))
    assert status == 2
    assert err == f"depot compose: -o {unwritable}: cannot write it: Permission denied\n"


def test_compose_never_replaces_an_existing_file_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The case: `-o Pulumi.dev.yaml` replaced the stack file.
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text("config: {}\n")
    status, out, err = run(capsys, "compose", "--stack", "dev", "-o", str(stack_file))
    assert (status, out) == (2, "")
    assert err == f"depot compose: -o {stack_file}: exists; give --force to replace it\n"
    assert stack_file.read_text() == "config: {}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.dev.yaml"]


def test_compose_with_force_replaces_a_file_whole_and_keeps_its_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "compose.yaml"
    output.write_text("old\n")
    output.chmod(0o640)
    status, out, err = run(capsys, "compose", "--stack", "dev", "-o", str(output), "--force")
    assert (status, err) == (0, "")
    assert out.startswith(f"wrote {output} (stack dev)")
    assert output.read_text().startswith("# The depot, stack dev, for Docker Compose")
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["compose.yaml"], "no scratch file is left"


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("target_exists", [True, False])
def test_compose_never_writes_through_a_symbolic_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], force: list[str], target_exists: bool
) -> None:
    target = tmp_path / "elsewhere" / "Pulumi.dev.yaml"
    target.parent.mkdir()
    if target_exists:
        target.write_text("config: {}\n")
    link = tmp_path / "compose.yaml"
    link.symlink_to(target)
    status, out, err = run(capsys, "compose", "--stack", "dev", "-o", str(link), *force)
    assert (status, out) == (2, "")
    assert err == (
        f"depot compose: -o {link}: is a symbolic link, and depot never writes through one "
        "(not even with --force): remove it, or give the path of a file\n"
    )
    assert os.readlink(link) == str(target)
    assert [p.name for p in target.parent.iterdir()] == (
        ["Pulumi.dev.yaml"] if target_exists else []
    )
    if target_exists:
        assert target.read_text() == "config: {}\n"


def test_compose_with_force_replaces_no_fifo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "compose.yaml"
    os.mkfifo(fifo)
    status, _, err = run(capsys, "compose", "--stack", "dev", "-o", str(fifo), "--force")
    assert status == 2
    assert (
        err == f"depot compose: -o {fifo}: exists and is not a regular file; it is not replaced\n"
    )
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_compose_leaves_a_link_that_appears_after_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The check saw nothing; by the time the file takes its name, a link is there: the final
    # step (link(2), which never replaces or follows) refuses it, and the link's target stays.
    target = tmp_path / "target"
    target.write_text("kept\n")
    output = tmp_path / "compose.yaml"
    output.symlink_to(target)
    monkeypatch.setattr("depot.outputs.output_file._existing_mode", lambda path: None)
    status, _, err = run(capsys, "compose", "--stack", "dev", "-o", str(output))
    assert status == 2
    assert err == f"depot compose: -o {output}: exists; give --force to replace it\n"
    assert target.read_text() == "kept\n"
    assert output.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compose.yaml", "target"]


def test_any_os_error_is_one_line_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def full_disk(directory: Path) -> list[object]:
        raise OSError(28, "No space left on device", str(directory / PASSWORD))

    monkeypatch.setattr("depot.outputs.secret_files.init_secret_files", full_disk)
    status, out, err = run(capsys, "secrets", "init", "--dir", str(tmp_path))
    assert (status, out) == (2, "")
    assert err == f"depot secrets init: {tmp_path / PASSWORD}: No space left on device\n"


# --- depot secrets init: the folder ----------------------------------------------------------


def test_a_file_given_as_the_secrets_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "secrets"
    not_a_folder.write_text("notes\n")
    status, out, err = run(capsys, "secrets", "init", "--dir", str(not_a_folder))
    assert (status, out) == (2, "")
    assert err == f"depot secrets init: {not_a_folder}: is not a folder; --dir takes one\n"
    assert not_a_folder.read_text() == "notes\n"


def test_a_folder_under_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    status, _, err = run(capsys, "secrets", "init", "--dir", str(tmp_path / "file" / "secrets"))
    assert status == 2
    assert_one_line_error(err, "depot secrets init: ")
    assert "Not a directory" in err


@pytest.mark.parametrize("mode", [0o777, 0o755, 0o750, 0o701], ids="{:04o}".format)
def test_a_secrets_folder_other_users_can_enter_is_refused_and_left_alone(
    mode: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    folder.chmod(mode)
    status, out, err = run(capsys, "secrets", "init", "--dir", str(folder))
    assert (status, out) == (2, "")
    assert err == (
        f"depot secrets init: {folder}: mode {mode:04o} lets other users in (it must be 0700): "
        f"refused, nothing written; run `chmod 700 {folder}` and again\n"
    )
    assert list(folder.iterdir()) == []
    assert stat.S_IMODE(folder.stat().st_mode) == mode


def test_a_new_secrets_folder_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o000)
    try:
        init_secret_files(tmp_path / "a" / "secrets")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a" / "secrets").stat().st_mode) == 0o700


# --- depot secrets init: what is in a file's place -------------------------------------------


def test_a_folder_where_the_password_file_goes_is_reported_and_nothing_built_from_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = private_folder(tmp_path)
    (folder / PASSWORD).mkdir()
    status, out, err = run(capsys, "secrets", "init", "--dir", str(folder))
    assert (status, err) == (1, "")
    assert out.splitlines() == [
        f"kept    {shown(folder, PASSWORD)}: is a folder, not a file; remove it and run again",
        f"created {shown(folder, GRAFANA)}",
        f"skipped {shown(folder, ENV)}: cannot be built: {PASSWORD} is a folder, not a file; "
        "remove it and run again",
    ]
    assert not (folder / ENV).exists()


@pytest.mark.parametrize("target", ["nothing", "elsewhere.txt"])
def test_a_symbolic_link_where_a_password_goes_is_never_followed(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = private_folder(tmp_path)
    (tmp_path / "elsewhere.txt").write_text(CANARY)
    (folder / PASSWORD).symlink_to(tmp_path / target)
    status, out, _ = run(capsys, "secrets", "init", "--dir", str(folder))
    assert status == 1
    dangling = " to nothing" if target == "nothing" else ""
    assert out.splitlines()[0] == (
        f"kept    {shown(folder, PASSWORD)}: is a symbolic link{dangling}, and secrets are never "
        "read or written through one; remove it and run again"
    )
    assert out.splitlines()[2].startswith(f"skipped {shown(folder, ENV)}: cannot be built: ")
    assert not (tmp_path / "nothing").exists()  # O_CREAT would have made the link's target
    assert (tmp_path / "elsewhere.txt").read_text() == CANARY
    assert CANARY not in out


def test_a_symbolic_link_where_the_env_file_goes_is_never_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = private_folder(tmp_path)
    (folder / ENV).symlink_to(tmp_path / "planted.env")
    status, out, _ = run(capsys, "secrets", "init", "--dir", str(folder))
    assert status == 1
    assert out.splitlines()[2] == (
        f"kept    {shown(folder, ENV)}: is a symbolic link to nothing, and secrets are never "
        "read or written through one; remove it and run again"
    )
    assert not (tmp_path / "planted.env").exists()


def test_an_empty_password_file_never_becomes_an_empty_database_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = private_folder(tmp_path)
    password = folder / PASSWORD
    password.write_text("\n")
    password.chmod(0o600)
    status, out, _ = run(capsys, "secrets", "init", "--dir", str(folder))
    assert status == 1
    assert out.splitlines() == [
        f"kept    {shown(folder, PASSWORD)}: is empty; remove it and run again",
        f"created {shown(folder, GRAFANA)}",
        f"skipped {shown(folder, ENV)}: cannot be built: {PASSWORD} is empty; "
        "remove it and run again",
    ]
    assert not (folder / ENV).exists()


def test_an_empty_password_file_is_reported_beside_an_env_file_already_built(
    tmp_path: Path,
) -> None:
    folder = private_folder(tmp_path)
    init_secret_files(folder)
    (folder / GRAFANA).write_text("")
    (folder / PASSWORD).write_text("")
    problems = {r.name: r.problem for r in init_secret_files(folder)}
    assert problems == {
        PASSWORD: "is empty; remove it and run again",
        GRAFANA: "is empty; remove it and run again",
        ENV: f"cannot be built: {PASSWORD} is empty; remove it and run again",
    }


def test_a_password_file_that_is_not_utf8_is_reported_without_its_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = private_folder(tmp_path)
    password = folder / PASSWORD
    password.write_bytes(CANARY.encode() + b"\xff\xfe")
    password.chmod(0o600)
    status, out, err = run(capsys, "secrets", "init", "--dir", str(folder))
    assert (status, err) == (1, "")
    assert out.splitlines()[0] == (
        f"kept    {shown(folder, PASSWORD)}: is not UTF-8 text; remove it and run again"
    )
    assert not (folder / ENV).exists()
    assert CANARY not in out
    assert password.read_bytes() == CANARY.encode() + b"\xff\xfe"


def test_a_password_file_looser_than_0600_is_kept_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = private_folder(tmp_path)
    password = folder / PASSWORD
    password.write_text(CANARY + "\n")
    password.chmod(0o644)  # README's Compose workaround, inside the 0700 folder
    status, out, _ = run(capsys, "secrets", "init", "--dir", str(folder))
    assert status == 0
    assert out.splitlines()[0] == (
        f"kept    {shown(folder, PASSWORD)} (exists); warning: mode 0644 is looser than 0600; "
        "only the 0700 folder keeps other users out (as README's Compose workaround intends; "
        "otherwise `chmod 600` it)"
    )
    assert stat.S_IMODE(password.stat().st_mode) == 0o644  # said, not changed
    assert CANARY not in out


def test_a_stale_env_file_with_a_canary_password_never_shows_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = private_folder(tmp_path)
    init_secret_files(folder)
    (folder / PASSWORD).write_text(CANARY)
    status, out, err = run(capsys, "secrets", "init", "--dir", str(folder))
    assert status == 1
    assert f"{shown(folder, ENV)}: its DATABASE_URL does not match {PASSWORD}" in out
    assert CANARY not in out + err
    assert "DATABASE_URL=" not in out + err


def test_a_secret_file_written_half_way_is_removed_not_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = private_folder(tmp_path)

    def disk_full(descriptor: int, mode: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fchmod", disk_full)  # fails once the file exists, before content
    with pytest.raises(OSError, match="No space left"):
        init_secret_files(folder)
    assert list(folder.iterdir()) == []
