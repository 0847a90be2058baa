#!/usr/bin/env bash
# Post BODY_FILE as the PR's depot-diff comment, or update the one already there.
set -euo pipefail
repository="$1" pr="$2" body_file="$3"
marker="<!-- depot-diff -->"
existing=$(gh api "repos/$repository/issues/$pr/comments" --paginate \
  --jq ".[] | select(.body | startswith(\"$marker\")) | .id" | head -n 1)
if [[ -n "$existing" ]]; then
  gh api --method PATCH "repos/$repository/issues/comments/$existing" -F "body=@$body_file" >/dev/null
  echo "updated comment $existing"
else
  gh api --method POST "repos/$repository/issues/$pr/comments" -F "body=@$body_file" >/dev/null
  echo "posted a new comment"
fi
