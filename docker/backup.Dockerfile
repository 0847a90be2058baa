# The backup service: the stack's own postgres image (so pg_dump and pg_restore are the
# server's version) with age and rclone, running docker/backup/depot-backup. The build context
# is docker/backup/:
#   docker build -f docker/backup.Dockerfile --build-arg POSTGRES_IMAGE=<image> docker/backup
# POSTGRES_IMAGE is the stack's postgres image reference (depot:images.postgres, else the
# catalog's default below): Alpine (apk) or Debian (apt) based.
ARG POSTGRES_IMAGE=postgres:17.2-alpine
FROM ${POSTGRES_IMAGE}

SHELL ["/bin/sh", "-eu", "-c"]
# The install runs as root, whatever user the base ends with.
USER 0:0

# age encrypts each dump to the stack's recipients, rclone copies it off the host (over TLS:
# ca-certificates). The base's own package manager; nothing is installed when the base has
# both tools already (the engine tier's Debian stand-in, whose targets are local). Alpine's
# `--no-cache` and apt's list removal keep no index in the image.
# DL3008 (pin apt versions) is ignored for DL3018's reason in .hadolint.yaml: the base, the
# stack's exact postgres image, fixes the release; its mirror keeps only the current build of
# each package, so a pinned version would break the build as soon as a security fix lands.
# hadolint ignore=DL3008
RUN if command -v age >/dev/null && command -v rclone >/dev/null; then \
        echo "age and rclone are in the base already"; \
    elif command -v apk >/dev/null; then \
        apk add --no-cache age rclone ca-certificates; \
    elif command -v apt-get >/dev/null; then \
        apt-get update; \
        apt-get install -y --no-install-recommends age rclone ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    else \
        echo "the base image has neither apk nor apt-get: cannot install age and rclone" >&2; \
        exit 1; \
    fi \
 && age --version && rclone version >/dev/null \
 && pg_dump --version && pg_restore --version && pg_isready --version && psql --version \
 && mkdir -p /backups \
 && chown 70:70 /backups \
 && chmod 0700 /backups

# Mode 0755 from the repository (the classic builder has no COPY --chmod).
COPY depot-backup /usr/local/bin/depot-backup

# /backups is the postgres-backups volume: a new named volume takes this directory's owner
# (70, as the service runs) and mode when it is first mounted.
WORKDIR /backups

# The deployment states the same check: unhealthy once the newest good backup is older than
# twice the schedule. The first backup runs at start: 5 minutes' grace.
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
    CMD ["depot-backup", "health"]

# postgres' uid and gid in the official Alpine image (and the tier's stand-in).
USER 70:70
ENTRYPOINT ["depot-backup"]
CMD ["schedule"]
