#!/usr/bin/env bash
# `make up`: deploy the $STACK stack (default dev) to the local Docker daemon with `pulumi up`.
#
# State stays on this machine (Pulumi's file backend under .pulumi-state/), never Pulumi Cloud,
# unless PULUMI_BACKEND_URL says otherwise. Secrets in that state are encrypted with a passphrase:
# PULUMI_CONFIG_PASSPHRASE(_FILE) if set, else one generated once into .pulumi-state/passphrase.
set -euo pipefail

stack="${STACK:-dev}"
cd "$(dirname "$0")/.."

# The host first (`depot doctor`): a newcomer without the crates, the console build or a free
# port is told exactly that, before anything is created.
depot="${DEPOT:-$PWD/.venv/bin/depot}"
doctor_status=0
missing=()
if [[ -x "$depot" ]]; then
  "$depot" doctor --stack "$stack" || doctor_status=$?
else
  missing+=("the project's environment with the depot command (\`make setup\`)")
fi
command -v pulumi >/dev/null 2>&1 || missing+=("the Pulumi CLI (https://www.pulumi.com/docs/install/)")
if ! command -v docker >/dev/null 2>&1; then
  missing+=("Docker (https://docs.docker.com/engine/install/)")
elif ! docker info >/dev/null 2>&1; then
  missing+=("a running Docker daemon (\`docker info\` cannot reach one)")
fi
if ((${#missing[@]})); then
  {
    echo "make up: cannot run \`pulumi up --stack $stack\` on this machine. Missing:"
    printf '  - %s\n' "${missing[@]}"
    echo "Nothing was deployed. What runs without them:"
    echo "  make test    the whole program under Pulumi's mocks: every resource, input and option"
  } >&2
  exit 1
fi
if ((doctor_status)); then
  echo "make up: \`depot doctor --stack $stack\` found what is above; fix it and run make up again. Nothing was deployed." >&2
  exit 1
fi

mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}"
if [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
  passphrase_file=.pulumi-state/passphrase
  if [[ ! -s "$passphrase_file" ]]; then
    (umask 077 && head -c 32 /dev/urandom | base64 >"$passphrase_file")
    echo "make up: generated a state passphrase in $passphrase_file (keep it; it decrypts your secrets)"
  fi
  export PULUMI_CONFIG_PASSPHRASE_FILE="$PWD/$passphrase_file"
fi

pulumi stack select "$stack" 2>/dev/null || pulumi stack init "$stack" --secrets-provider passphrase
pulumi up --stack "$stack" "$@"
