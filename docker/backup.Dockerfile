# syntax=docker/dockerfile:1
# PLACEHOLDER written by helper "deploy" so that plans, policy and tests have the file the
# backup service is built from. The real image (age, rclone, docker/backup/depot-backup) comes
# with branch backup-agent: on merge, take that branch's version of this file whole.
ARG POSTGRES_IMAGE=postgres:17.2-alpine
FROM ${POSTGRES_IMAGE}
USER 70:70
HEALTHCHECK --interval=10s --timeout=5s --retries=3 --start-period=300s \
    CMD ["depot-backup", "health"]
ENTRYPOINT ["depot-backup", "schedule"]
