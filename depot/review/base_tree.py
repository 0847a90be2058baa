"""A git ref's tree written to a folder as a checkout would hold it: ``depot diff --base``.

``git archive`` gives the tree as a tar. Python's ``tarfile`` either follows what it extracts
(the default filter) or refuses any link that points out of the folder (the ``data`` filter,
which made a committed ``console-dist -> ../console/dist`` or ``-> /etc/passwd`` crash every
diff). Here each symbolic link is written as a link, its target verbatim and never read, and
nothing is ever written *through* one: every member is created relative to its parent folder
opened with ``O_NOFOLLOW``, so a member whose path crosses a link, leaves the folder (``..``,
an absolute name) or is anything but a file, folder or link is refused with its name.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path, PurePosixPath

# O_NOFOLLOW on the last component; O_DIRECTORY so a file in a folder's place is refused.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class BaseTreeError(Exception):
    """The ref's tree cannot be written as it is (the message names the member and why)."""


def materialise(archive: bytes, root: Path) -> None:
    """Write the tar ``archive`` (``git archive --format=tar``) into the empty folder ``root``."""
    try:
        with tarfile.open(fileobj=BytesIO(archive), mode="r:") as tar:
            for member in tar:
                _write(tar, member, root)
    except tarfile.TarError as error:
        raise BaseTreeError(f"git archive gave no readable tree ({error})") from None


def _parts(name: str) -> tuple[str, ...]:
    """The member's path as folder names below the root; refused if it could leave it."""
    path = PurePosixPath(name)
    parts = tuple(part for part in path.parts if part != ".")
    if path.is_absolute() or ".." in parts or "\x00" in name:
        raise BaseTreeError(f"{name!r}: a path outside the tree")
    return parts


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    parts = _parts(member.name)
    if not parts:  # the root itself ("./")
        return
    *folders, leaf = parts
    with _folder(root, folders, member.name) as parent:
        try:
            if member.isdir():
                _make_folder(leaf, parent)
            elif member.issym():
                os.symlink(member.linkname, leaf, dir_fd=parent)
            elif member.isreg():
                _write_file(tar, member, leaf, parent)
            else:  # hard links, devices, fifos: git trees hold none of these
                raise BaseTreeError(f"{member.name!r}: not a file, folder or symbolic link")
        except FileExistsError:
            raise BaseTreeError(f"{member.name!r}: written twice") from None


def _make_folder(name: str, parent: int) -> None:
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        # Already made for a member inside it; a link or file in its place is refused here.
        os.close(_open_folder(name, parent, name))


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, parent: int) -> None:
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - isreg() members always have content
        raise BaseTreeError(f"{member.name!r}: no content")
    mode = 0o755 if member.mode & 0o100 else 0o644  # what git records: executable or not
    descriptor = os.open(name, _FILE_FLAGS, mode, dir_fd=parent)
    with os.fdopen(descriptor, "wb") as target:
        target.write(source.read())


def _open_folder(name: str, parent: int, member: str) -> int:
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise
    except OSError:  # ELOOP for a link, ENOTDIR for a file
        raise BaseTreeError(
            f"{member!r}: lies beyond {name!r}, which is not a folder (a symbolic link or a "
            "file): it is never followed"
        ) from None


@contextmanager
def _folder(root: Path, folders: list[str], member: str) -> Iterator[int]:
    """The folder ``root/folders…`` open, made where missing, without following any link."""
    current = os.open(root, _FOLDER_FLAGS)
    try:
        for name in folders:
            try:
                opened = _open_folder(name, current, member)
            except FileNotFoundError:
                os.mkdir(name, 0o755, dir_fd=current)
                opened = _open_folder(name, current, member)
            os.close(current)
            current = opened
        yield current
    finally:
        os.close(current)
