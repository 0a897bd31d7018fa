#!/usr/bin/env bash
# 10x overload of a 50 ms function: open-loop Poisson arrivals at 10x the worker's capacity
# (cpu_slots = 2, so 40 invocations/s; offered 400/s for 20 s), first synchronous, then
# asynchronous submissions. Prints one JSON object per run (scripts/reliability/loadgen.py):
# admitted p50/p99, the 429 share and Retry-After values; for async, how every accepted
# invocation ended. The function's timeout_ms is 2000, so its max_queue_ms (default: the
# timeout) is 2 s.
# Usage: scripts/overload.sh [rate, default 400] [seconds, default 20]   (SLUICE=binary to test)
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-400}
secs=${2:-20}
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop KILL; rm -rf "$work"' EXIT
for mode in sync async; do
  worker_start "$work/$mode" 'cpu_slots = 2'
  register s50 '"timeout_ms": 2000'
  # Two warm sandboxes (one per slot) and a measured estimate before the burst.
  curl -sf -o /dev/null -X POST "$SLUICE_URL/v1/functions/s50/prewarm?count=2"
  for _ in $(seq 100); do
    curl -sf "$SLUICE_URL/v1/status" | grep -q '"idle":2' && break
    sleep 0.1
  done
  for _ in 1 2 3 4; do
    curl -sf -o /dev/null -X POST "$SLUICE_URL/v1/functions/s50/invoke" -d '{"do":"sleep","seconds":0.05}'
  done
  echo "== $mode: ${rate}/s for ${secs}s against 40/s of capacity"
  python3 scripts/reliability/loadgen.py overload --url "$SLUICE_URL" --mode "$mode" \
    --rate "$rate" --duration "$secs" --function s50
  worker_stop TERM
done
