#!/usr/bin/env bash
# Build one Rust service with BuildKit, push it tagged with its commit, print its reference by
# digest. Used by .github/workflows/deploy.yml; runs the same on any machine with buildx:
#   scripts/build-image.sh discovery ../discovery registry.example.com 0123abc [1.4.0]
set -euo pipefail
service="$1" context="$2" registry="$3" commit="$4" version="${5:-}"
cd "$(dirname "$0")/.."
repository="$registry/depot-$service"
tags=(--tag "$repository:$commit")
[[ -n "$version" ]] && tags+=(--tag "$repository:$version")
metadata=$(mktemp)
docker buildx build \
  --file docker/rust-service.Dockerfile \
  --build-arg "BINARY=$service" \
  "${tags[@]}" \
  --cache-from "type=registry,ref=$repository:buildcache" \
  --cache-to "type=registry,ref=$repository:buildcache,mode=max" \
  --metadata-file "$metadata" \
  --push \
  "$context" >&2
digest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$metadata")
echo "$repository@$digest"
