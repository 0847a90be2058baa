#!/usr/bin/env bash
# Post BODY_FILE as the PR's depot-diff comment, or update the one AUTHOR posted before.
# AUTHOR is the login the token comments as: `github-actions[bot]` for the workflow's
# GITHUB_TOKEN. A comment is ours only when it carries the marker AND AUTHOR wrote it: anyone
# may paste the marker into a comment of theirs, and editing that one would put our diff under
# their name. AUTHOR is passed in, not asked of the API: GET /user refuses a GITHUB_TOKEN
# ("Resource not accessible by integration") and GraphQL's viewer names a bot without the
# `[bot]` suffix that the REST comments carry. No person's login can contain `[`.
set -euo pipefail
repository="$1" pr="$2" body_file="$3" author="${4:?usage: pr-comment.sh REPOSITORY PR BODY_FILE AUTHOR}"
marker="<!-- depot-diff -->"
# Only a body scripts/pr-diff.sh finished: the marker first, its closing </sub> line last (a
# run that stopped half-way, or an empty file, is never posted over the last good comment).
if [[ ! -s "$body_file" || "$(head -n 1 "$body_file")" != "$marker" ||
  "$(tail -n 1 "$body_file")" != *"</sub>" ]]; then
  echo "pr-comment.sh: $body_file is not a finished depot diff; nothing posted" >&2
  exit 2
fi
# --paginate prints one JSON array per page: slurp them into one list, take the first match.
existing=$(gh api "repos/$repository/issues/$pr/comments" --paginate |
  jq --raw-output --slurp --arg marker "$marker" --arg author "$author" '
    add // [] | map(select(.user.login == $author and (.body // "" | startswith($marker))))
    | first | .id // empty')
if [[ -n "$existing" ]]; then
  gh api --method PATCH "repos/$repository/issues/comments/$existing" -F "body=@$body_file" >/dev/null
  echo "updated comment $existing"
else
  gh api --method POST "repos/$repository/issues/$pr/comments" -F "body=@$body_file" >/dev/null
  echo "posted a new comment"
fi
