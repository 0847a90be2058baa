#!/bin/sh
# grafana, as far as the deployment can tell: it reads its admin password file at start (and
# fails when it cannot), keeps its state under /var/lib/grafana, answers /api/health, and stops
# on SIGTERM (as PID 1, which gets no default handler, the shell traps it for the server).
set -eu
cat "$GF_SECURITY_ADMIN_PASSWORD__FILE" > /dev/null
date > /var/lib/grafana/grafana.db
httpd -f -p 3000 -h /usr/share/grafana/public &
server=$!
trap 'kill -TERM "$server"; wait "$server"; exit 0' TERM INT
wait "$server"
