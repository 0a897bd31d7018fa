#!/usr/bin/env bash
# Idle-connection floods: (1) 4,000 idle TCP connections held for 60 s against a worker with the
# default descriptor limit; (2) 600 idle connections against a worker limited to 512 descriptors.
# Each prints how many connections the worker still holds after 1, 5, 15, 30 and 60 s and how
# /healthz (probed once a second, 5 s timeout) fared meanwhile; then a slow-loris head and body:
# when the worker cuts them off.
# Usage: scripts/idle-flood.sh [connections, default 4000] [seconds, default 60]  (SLUICE=binary)
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-4000}
secs=${2:-60}
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop KILL; rm -rf "$work"' EXIT
gen=scripts/reliability/loadgen.py
echo "== $conns idle connections for ${secs}s"
worker_start "$work/a"
python3 "$gen" idle-flood --url "$SLUICE_URL" --conns "$conns" --hold "$secs"
echo "== slow-loris head and body (one byte a second)"
register s50
python3 "$gen" slow --url "$SLUICE_URL" --function s50 --limit 90
worker_stop TERM
echo "== 600 idle connections, worker limited to 512 descriptors"
WORKER_NOFILE=512 worker_start "$work/b"
python3 "$gen" idle-flood --url "$SLUICE_URL" --conns 600 --hold 20 --marks 1 5 15
worker_stop TERM
