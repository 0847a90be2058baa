"""The docker CLI, pointed at one stack's Docker host.

The host goes in ``DOCKER_HOST`` (a local socket, TCP or ``ssh://``, as the stack file says it),
never on the command line; every argument is the caller's fixed subcommand or a value that
follows its option or ``--``, so nothing read from a stack file or from the host is ever taken
for an option. Every call has a timeout; output is returned, never printed.

For an ``ssh://`` host the stack's (allowed, normalised) ``depot:docker.sshOpts`` reach the ssh
the CLI runs, as they reach the provider's: the CLI has no flag for them and runs ``ssh`` from
``PATH``, so a private folder first on ``PATH`` holds an ``ssh`` that runs the real one with
them (``depot.ssh_options.ssh_wrapper``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depot.ssh_options import ssh_wrapper
from depot.types import is_remote

LOCAL_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60  # seconds; ssh to a far host and a busy engine both fit


class DockerError(Exception):
    """The docker CLI is missing, timed out or failed; the message is one line."""


@dataclass(frozen=True)
class DockerCli:
    """``docker`` against ``host`` (``DOCKER_HOST``), over ssh with ``ssh_options``."""

    host: str = LOCAL_SOCKET
    timeout: float = DEFAULT_TIMEOUT
    # Normalised and allowed already (``DockerSettings.ssh_opts``): never raw stack file text.
    ssh_options: tuple[str, ...] = ()

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
        try:
            with self.environment() as env:
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

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        """The environment of a docker (or Compose) process against the host, while it runs."""
        env = {**os.environ, "DOCKER_HOST": self.host}
        env.pop("DOCKER_CONTEXT", None)  # a context would win over DOCKER_HOST's engine
        if not (self.host.startswith("ssh://") and self.ssh_options):
            yield env
            return
        # Found before the wrapper goes first on PATH: the wrapper must never find itself.
        real_ssh = shutil.which("ssh", path=env.get("PATH"))
        if real_ssh is None:
            raise DockerError(f"ssh is not installed, and the Docker host is {self.host}")
        # mkdtemp's folder is 0700: no other user can swap the ssh it holds.
        with tempfile.TemporaryDirectory(prefix="depot-ssh-") as folder:
            wrapper = Path(folder) / "ssh"
            wrapper.write_text(ssh_wrapper(shlex.quote(real_ssh), self.ssh_options))
            wrapper.chmod(0o700)
            env["PATH"] = os.pathsep.join(filter(None, (folder, env.get("PATH"))))
            yield env

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
