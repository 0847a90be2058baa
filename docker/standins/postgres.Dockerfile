# The postgres stand-in: Debian's postgresql behind an entrypoint that keeps the official
# postgres image's contract (POSTGRES_PASSWORD_FILE, POSTGRES_DB, the data volume initialised
# once, the server run as the postgres user). BASE is the debootstrap image the engine tier
# imports (tests/engine/images.py).
ARG BASE
FROM ${BASE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# uid and gid 70, as in the official Alpine image: the catalogue gives the password file to 70.
# Debian's own cluster is dropped; the entrypoint initialises $PGDATA on the volume. The server
# listens on every address, as the official image configures it.
RUN old_uid="$(id -u postgres)" old_gid="$(id -g postgres)" \
 && groupmod --gid 70 postgres \
 && usermod --uid 70 --gid 70 postgres \
 && find / -xdev \( -user "$old_uid" -o -group "$old_gid" \) -exec chown -h postgres:postgres {} + \
 && rm -rf /var/lib/postgresql/* /etc/postgresql/* \
 && ln -s "$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin)" /usr/lib/postgresql/bin \
 && sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" /usr/share/postgresql/*/postgresql.conf.sample \
 && mkdir -p /var/lib/postgresql/data \
 && chown postgres:postgres /var/lib/postgresql/data \
 && chmod 1777 /var/lib/postgresql/data

ENV PATH=/usr/lib/postgresql/bin:$PATH \
    PGDATA=/var/lib/postgresql/data

COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# The deployment states the check; a fast shutdown on SIGINT, as the official image.
HEALTHCHECK NONE
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
