"""Deliberate exceptions to the rules, each with its reason (listed in README "Policy").

Kept apart from the program's catalogue on purpose: a change to what a container may do must
be made in both places, so a reviewer sees it twice.
"""

from __future__ import annotations

WRITABLE_ROOT: dict[str, str] = {
    "depot-postgres": (
        "the provider copies the password file into the container after creating it and "
        "before starting it, and Docker refuses that copy into a read-only root filesystem "
        "(tmpfs mounts only exist once it runs); its data, socket and scratch paths are a "
        "volume and tmpfs"
    ),
    "depot-grafana": (
        "grafana keeps its database, plugins and sessions under /var/lib/grafana, and the "
        "reference gives it no volume: that state lives in the container's own layer"
    ),
    "depot-backup": (
        "as postgres: the provider copies the password file (and the rclone configuration) into "
        "the container before starting it, which Docker refuses into a read-only root; it runs "
        "as uid 70 without capabilities, its dumps on a volume and its scratch on tmpfs"
    ),
}
"""Containers allowed a writable root filesystem (rule read-only-root), and why."""

CAPABILITY_ALLOWLIST: dict[str, dict[str, str]] = {
    "depot-postgres": {
        "CHOWN": "the entrypoint gives the data directory to the postgres user",
        "DAC_OVERRIDE": (
            "initdb and the entrypoint write where root's files are, and the data lock opens "
            "the data directory (the postgres user's, mode 0700) as root before the entrypoint"
        ),
        "FOWNER": "the entrypoint sets modes on the data and socket directories",
        "SETGID": "the entrypoint drops from root to the postgres group",
        "SETUID": "the entrypoint drops from root to the postgres user",
    },
    "depot-console": {
        "CHOWN": "nginx gives its cache directories to the nginx user",
        "SETGID": "workers drop to the nginx group",
        "SETUID": "workers drop to the nginx user",
    },
}
"""Capabilities a container may add back after dropping ALL (rule capabilities), and why."""

PUBLIC_PORTS: dict[str, str] = {
    "depot-console": "the console is the depot's web entry point, served to the network",
}
"""Containers allowed to publish on every interface (rule published-ports), and why."""
