#!/bin/bash
# The official postgres image's entrypoint contract, for Debian's postgresql:
# as root, prepare the data and socket directories and drop to the postgres user;
# as postgres, initialise an empty data directory once (password from
# POSTGRES_PASSWORD_FILE, database POSTGRES_DB), then exec the server as PID 1.
set -Eeuo pipefail

if [ "${1:-}" = postgres ] && [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA"
	chmod 03775 /var/run/postgresql
	find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	# Read as the postgres user: an unreadable file fails here, as in the official image.
	password="$(< "$POSTGRES_PASSWORD_FILE")"
	initdb --username=postgres --pwfile=<(printf '%s\n' "$password") \
		--auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" > /dev/null
	printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
	if [ "${POSTGRES_DB:-postgres}" != postgres ]; then
		psql --username=postgres --no-psqlrc --quiet --set ON_ERROR_STOP=1 \
			--command "CREATE DATABASE \"$POSTGRES_DB\"" postgres
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
	echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
