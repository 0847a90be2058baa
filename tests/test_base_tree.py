"""``depot diff --base`` writes the ref's tree as a checkout holds it: links as links, and
nothing written through one or outside the folder, whatever the archive says."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from depot.review.base_tree import BaseTreeError, materialise

PASSWD = Path("/etc/passwd")


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, content in members:
            tar.addfile(info, None if content is None else io.BytesIO(content))
    return buffer.getvalue()


def _file(name: str, content: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(content), mode
    return info, content


def _folder(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _files(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (links not followed) and its content."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


def test_links_in_and_out_of_the_tree_are_written_as_links_and_never_read(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    archive = _tar(
        _folder("console/"),
        _folder("console/dist/"),
        _file("console/dist/index.html", b"<h1>console</h1>"),
        _link("console-dist", "../console/dist"),
        _link("passwd", str(PASSWD)),
        _file("run.sh", b"#!/bin/sh\n", mode=0o775),
    )
    materialise(archive, tree)

    assert os.readlink(tree / "console-dist") == "../console/dist"
    assert os.readlink(tree / "passwd") == str(PASSWD)
    # Nothing in the tree is a copy of what a link points at.
    assert _files(tree) == {
        "console/dist/index.html": b"<h1>console</h1>",
        "run.sh": b"#!/bin/sh\n",
    }
    if PASSWD.is_file():
        assert PASSWD.read_bytes() not in _files(tree).values()
    assert (tree / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (tree / "console/dist/index.html").stat().st_mode & 0o777 == 0o644


def test_nothing_is_written_through_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    archive = _tar(_link("escape", str(outside)), _file("escape/planted", b"x"))
    with pytest.raises(BaseTreeError, match="'escape/planted': lies beyond 'escape'"):
        materialise(archive, tree)
    assert list(outside.iterdir()) == []


def test_a_folder_member_over_a_link_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(BaseTreeError, match="lies beyond 'escape'"):
        materialise(_tar(_link("escape", str(outside)), _folder("escape/")), tree)


@pytest.mark.parametrize("name", ["../planted", "/tmp/planted", "a/../../planted"])
def test_a_member_outside_the_tree_is_refused(tmp_path: Path, name: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(BaseTreeError, match="a path outside the tree"):
        materialise(_tar(_file(name, b"x")), tree)
    assert not (tmp_path / "planted").exists()


def test_a_hard_link_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(BaseTreeError, match="'passwd': not a file, folder or symbolic link"):
        materialise(_tar(_link("passwd", str(PASSWD), kind=tarfile.LNKTYPE)), tree)


def test_a_member_written_twice_is_refused_not_replaced(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(BaseTreeError, match="'a': written twice"):
        materialise(_tar(_file("a", b"first"), _link("a", str(PASSWD))), tree)
    assert (tree / "a").read_bytes() == b"first"


def test_an_archive_that_is_no_tar_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(BaseTreeError, match="git archive gave no readable tree"):
        materialise(b"not a tar" * 100, tmp_path)
