"""How a ``depot`` command ends: the three exit statuses every command uses.

What each means is said once, here (``MEANINGS``); what ``ATTENTION`` means for each command is
beside its example in ``depot.cli``, and ``depot --help`` prints both. A module of its own, with
no imports, so the commands' own modules (policy, day two) use it without loading the CLI.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """The exit status of ``depot``: 0, 1 or 2, as ``diff`` and ``grep`` use them."""

    OK = 0
    ATTENTION = 1
    ERROR = 2


MEANINGS = {
    ExitStatus.OK: "done, and nothing found that needs you",
    ExitStatus.ATTENTION: "done, and it found or met something that needs you (per command below)",
    ExitStatus.ERROR: (
        "error: bad arguments or stack config, no engine answers, a file in the way, or a "
        "bug; one line on stderr, never a traceback"
    ),
}
"""What each status says, for every command."""
