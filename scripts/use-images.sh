#!/usr/bin/env bash
# Point a stack at images CI pushed: one `pulumi config set` per line of IMAGES
# (`<service> <registry>/depot-<service>@sha256:…`, as .github/workflows/deploy.yml writes).
# The stack then runs exactly those digests and builds nothing itself.
set -euo pipefail
images="$1" stack="${2:-prod}"
while read -r service reference; do
  [[ -z "$service" ]] && continue
  pulumi config set --path "depot:images.$service" "$reference" --stack "$stack"
done <"$images"
