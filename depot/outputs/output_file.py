"""``depot compose -o``: a generated file written where it is asked, and nowhere else.

A path that exists is replaced only when the caller says so (``--force``): ``-o
Pulumi.dev.yaml`` would otherwise replace the stack file. A symbolic link is never written
through, ``--force`` or not: the file would land wherever the link points. The text goes to a
new file beside the target (``O_CREAT | O_EXCL | O_NOFOLLOW``), which then takes the target's
name in one step: ``link`` when nothing may be replaced (it fails if anything, a link included,
appeared there meanwhile), ``rename`` with ``force`` (which replaces a name, never follows it).
A reader never sees half a file, and a failed write leaves the old one as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class OutputFileError(Exception):
    """Why the file cannot be written at the path asked for (one line, without the path)."""


def write_output(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path``: a new file, or with ``force`` a regular file replaced."""
    existing = _existing_mode(path)
    if existing is not None:
        _check_replaceable(path, existing, force=force)
    elif not path.parent.is_dir():
        raise OutputFileError(f"folder {path.parent} does not exist; create it first")
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _write_in(folder, path.name, text, existing, force=force)
    except FileExistsError:
        # Something took the name between the check and the link: it is left as it is.
        raise OutputFileError("exists; give --force to replace it") from None
    except OSError as error:
        raise OutputFileError(f"cannot write it: {error.strerror or error}") from None
    finally:
        os.close(folder)


def _existing_mode(path: Path) -> int | None:
    """What is at ``path`` (its ``lstat`` mode: a link is not followed), or None."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _check_replaceable(path: Path, mode: int, *, force: bool) -> None:
    if stat.S_ISLNK(mode):
        raise OutputFileError(
            "is a symbolic link, and depot never writes through one (not even with --force): "
            "remove it, or give the path of a file"
        )
    if stat.S_ISDIR(mode):
        raise OutputFileError(f"is a folder; give the file's path ({path}/compose.yaml)")
    if not stat.S_ISREG(mode):
        raise OutputFileError("exists and is not a regular file; it is not replaced")
    if not force:
        raise OutputFileError("exists; give --force to replace it")


def _write_in(folder: int, name: str, text: str, existing: int | None, *, force: bool) -> None:
    """``text`` into a new file in ``folder``, then under ``name``; the new file never stays."""
    scratch = f".{name}.{secrets.token_hex(6)}.tmp"
    # A replaced file keeps its permissions; a new one gets the umask's, as any other file.
    mode = 0o666 if existing is None else stat.S_IMODE(existing)
    descriptor = os.open(scratch, _NEW_FILE_FLAGS, mode, dir_fd=folder)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            if existing is not None:
                os.fchmod(descriptor, mode)
            file.write(text)
            file.flush()
            os.fsync(descriptor)
        if force:
            os.replace(scratch, name, src_dir_fd=folder, dst_dir_fd=folder)
        else:
            os.link(scratch, name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
    finally:
        with contextlib.suppress(FileNotFoundError):  # gone when it was renamed into place
            os.unlink(scratch, dir_fd=folder)
