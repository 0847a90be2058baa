#!/bin/sh
# A depot Rust service, as far as the deployment can tell: with DATABASE_URL, it waits for the
# database to accept connections (as dispatch does) before it serves /health on $PORT; without a
# port it is a worker that stays alive. Never prints the URL: it holds the password.
set -eu

if [ -n "${DATABASE_URL:-}" ]; then
	address="${DATABASE_URL##*@}"
	address="${address%%/*}"
	tries=0
	until nc -w 2 "${address%:*}" "${address##*:}" < /dev/null; do
		tries=$((tries + 1))
		[ "$tries" -lt 60 ] || { echo "database ${address} unreachable" >&2; exit 1; }
		sleep 1
	done
fi

if [ -n "${PORT:-}" ]; then
	exec httpd -f -p "$PORT" -h /srv/www
fi
while :; do sleep 60; done
