#!/usr/bin/env bash
# Schemathesis (property-based API testing from the OpenAPI document) against a live worker:
# installs schemathesis 4 with pip into out/schemathesis-venv if missing, starts a worker on port
# 0 with a temporary data directory and an auth token, runs every check with the settings in
# scripts/schemathesis.toml (bounded examples and time), stops the worker. Exits non-zero on any
# failure. `POST /v1/drain` is left out: it would turn every later call into 503.
# Usage: scripts/schemathesis.sh   (SLUICE=binary to test; default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
# schemathesis 4: in a venv under out/, else (no venv module) in the user site.
venv=out/schemathesis-venv
st=("$venv/bin/python3" -c 'import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())')
if ! [ -x "$venv/bin/st" ]; then
  if python3 -m venv "$venv" 2>/dev/null; then
    "$venv/bin/pip" install -q 'schemathesis>=4,<5'
  else
    rm -rf "$venv"
    python3 -m pip install -q --user 'schemathesis>=4,<5'
    st=(python3 -c 'import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())')
  fi
fi
if [ -z "${SLUICE:-}" ]; then
  cargo build -q -p sluice-cli
  SLUICE=target/debug/sluice
fi
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop TERM; rm -rf "$work"' EXIT
token=schemathesis-$RANDOM$RANDOM
worker_start "$work" "auth_token = \"$token\"" 'start_timeout_ms = 2000'
status=0
"${st[@]}" --config-file scripts/schemathesis.toml run "$SLUICE_URL/openapi.json" \
  -H "Authorization: Bearer $token" --exclude-path /v1/drain --seed 1 --no-color || status=$?
if [ "$status" != 0 ]; then
  echo "== the worker's log (last 40 lines)"
  tail -40 "$work/worker.log"
fi
exit "$status"
