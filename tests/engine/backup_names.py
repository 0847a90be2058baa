"""A backup's name as depot-backup writes it, ``<stack>-<UTC time>.dump.age``; a backup is good
once its checksum sidecar, ``<name>.sha256``, is beside it. Read by the drill and by the backup
service's private site."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

STAMP = "%Y%m%dT%H%M%SZ"  # the UTC time in a backup's name (and `depot-backup run --now`)


def backup_name(stack: str) -> re.Pattern[str]:
    """A backup's name for ``stack``; its group is the time."""
    return re.compile(rf"^{re.escape(stack)}-(\d{{8}}T\d{{6}}Z)\.dump\.age$")


def good_backups(files: Iterable[str], name: re.Pattern[str], folder: str = "") -> set[str]:
    """The backups in ``folder`` (a path prefix, "" for the top) that have their sidecar."""
    names = {path.removeprefix(folder) for path in files if path.startswith(folder)}
    return {each for each in names if name.match(each) and f"{each}.sha256" in names}


def stamp_of(name: str) -> datetime:
    """The time in a backup's name."""
    match = re.search(r"-(\d{8}T\d{6}Z)\.dump\.age$", name)
    assert match, name
    return datetime.strptime(match.group(1), STAMP).replace(tzinfo=UTC)
