"""Where things are: the project, and how a path is written so every checkout plans the same.

Nothing here imports Pulumi, a provider or the settings: the CLI, the policy rules and the review
tools read paths without loading the program.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = PROJECT_ROOT / "docker" / "rust-service.Dockerfile"


def project_relative(path: str | Path, root: Path = PROJECT_ROOT) -> str:
    """``./x`` or ``../x`` for a path in or beside the project; anything else unchanged.

    Builds, plans and the Compose export all write paths this way: Pulumi runs the program (and
    its providers) from the project directory, so nothing they produce names where this
    checkout happens to be — a build's inputs, and so its digest, are the same in every one.
    """
    text, base, beside = str(path), str(root), str(root.parent)
    if text == base or text.startswith(base + "/"):
        return "." + text.removeprefix(base)
    if beside != "/" and text.startswith(beside + "/"):
        return ".." + text.removeprefix(beside)
    return text


def normalised_path(text: str) -> str:
    """``text`` without empty and ``.`` segments or a trailing ``/``: ``//etc/./x/`` → ``/etc/x``.

    ``..`` is kept: only the file system knows where it leads (through a symbolic link,
    ``/srv/link/..`` need not be ``/srv``). ``posixpath.normpath`` is not used: it keeps a
    leading ``//`` (POSIX leaves its meaning to the system) and folds ``..`` away.
    """
    segments = [segment for segment in text.split("/") if segment not in ("", ".")]
    if text.startswith("/"):
        return "/" + "/".join(segments)
    return "/".join(segments) or "."


def climbs(path: str) -> bool:
    """True when ``path`` holds a ``..`` other than one leading a relative path.

    ``../x`` is a folder beside this project (the dev layout, ``../console/dist``; and how plans
    write such paths, see ``project_relative``); any other ``..`` leads where only the file
    system knows (``/srv/depot/../../etc``).
    """
    # An absolute path's first segment is the empty one before its `/`.
    return ".." in normalised_path(path).split("/")[1:]


@dataclass(frozen=True)
class ProjectPath:
    """A host path as a stack file writes it, resolved once into both of its forms.

    ``host`` is what Docker needs (absolute: relative paths are taken from the project
    directory); ``relative`` is what plans, builds and the Compose export write, so they do not
    depend on where this checkout is.
    """

    written: str
    root: Path = PROJECT_ROOT

    @property
    def host(self) -> str:
        if Path(self.written).is_absolute():
            return self.written
        return str((self.root / self.written).resolve())

    @property
    def relative(self) -> str:
        return project_relative(self.host, self.root)

    def __str__(self) -> str:
        return self.host
