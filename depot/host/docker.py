"""The docker CLI, pointed at one stack's Docker host.

The host goes in ``DOCKER_HOST`` (a local socket, TCP or ``ssh://``, as the stack file says it),
never on the command line; every argument is the caller's fixed subcommand or a value that
follows its option or ``--``, so nothing read from a stack file or from the host is ever taken
for an option. Every call has a timeout; output is returned, never printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from depot.types import is_remote

LOCAL_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60  # seconds; ssh to a far host and a busy engine both fit


class DockerError(Exception):
    """The docker CLI is missing, timed out or failed; the message is one line."""


@dataclass(frozen=True)
class DockerCli:
    """``docker`` against ``host`` (``DOCKER_HOST``)."""

    host: str = LOCAL_SOCKET
    timeout: float = DEFAULT_TIMEOUT

    @property
    def remote(self) -> bool:
        """The engine runs on another machine: its paths and ports are not this machine's."""
        return is_remote(self.host)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker args`` with its output captured; never raises for a failed command."""
        executable = shutil.which("docker")
        if executable is None:
            raise DockerError(
                "the docker CLI is not installed (https://docs.docker.com/engine/install/)"
            )
        env = {**os.environ, "DOCKER_HOST": self.host}
        env.pop("DOCKER_CONTEXT", None)  # a context would win over DOCKER_HOST's engine
        try:
            return subprocess.run(  # noqa: S603 - fixed subcommands; values never as options
                [executable, *args],
                input=stdin,
                capture_output=True,
                text=True,
                check=False,
                env=env,
                timeout=timeout or self.timeout,
            )
        except subprocess.TimeoutExpired:
            raise DockerError(
                f"docker {args[0]} at {self.host} did not answer within "
                f"{timeout or self.timeout:g} s"
            ) from None

    def inspect(self, kind: str, *names: str) -> list[dict[str, Any]]:
        """``docker <kind> inspect`` of each of ``names`` that exists (missing ones left out)."""
        if not names:
            return []
        result = self.run(kind, "inspect", "--format", "{{json .}}", "--", *names)
        found: list[dict[str, Any]] = []
        for line in result.stdout.splitlines():
            if line.strip():
                found.append(json.loads(line))
        if result.returncode != 0 and not found and "No such" not in result.stderr:
            raise DockerError(f"docker {kind} inspect at {self.host}: {last_line(result.stderr)}")
        return found


def last_line(text: str) -> str:
    """The last non-empty line of docker's stderr: its error, without the usage text."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
