#!/usr/bin/env bash
# Schemathesis (property-based API testing from the OpenAPI document) against a live worker:
# installs schemathesis 4 with pip into out/schemathesis-venv if missing, starts a worker on port
# 0 with a temporary data directory and an auth token, runs every check with the settings in
# scripts/schemathesis.toml (bounded examples and time), stops the worker. Exits non-zero on any
# failure. `POST /v1/drain` is left out: it would turn every later call into 503.
# Usage: scripts/schemathesis.sh   (SLUICE=binary to test; default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=out/schemathesis-venv
if ! [ -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi
if [ -z "${SLUICE:-}" ]; then
  cargo build -q -p sluice-cli
  SLUICE=target/debug/sluice
fi
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop KILL; rm -rf "$work"' EXIT
token=schemathesis-$RANDOM$RANDOM
worker_start "$work" "auth_token = \"$token\"" 'start_timeout_ms = 2000'
status=0
"$venv/bin/st" --config-file scripts/schemathesis.toml run "$SLUICE_URL/openapi.json" \
  -H "Authorization: Bearer $token" --exclude-path /v1/drain --seed 1 --no-color || status=$?
if [ "$status" != 0 ]; then
  echo "== the worker's log (last 40 lines)"
  tail -40 "$work/worker.log"
fi
exit "$status"
