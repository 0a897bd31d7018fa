#!/usr/bin/env bash
# Router overhead and throughput, side by side in one run on this machine: etcd, nats-server,
# 3 workers and 1 router (all on loopback, sharing the machine's cores with the load
# generator), the Rust no-op function (crates/sluice-fn/examples/noop.rs).
#   1. latency of a warm no-op, 1 client, straight to a worker, then through the router
#      (the router's added p50 is the difference);
#   2. warm throughput with N clients straight to one worker, then through the router to 3,
#      and in each run where the CPU went per invocation (scripts/cpu-per-call.py: the router,
#      each worker, its sandboxes, the load generator, etcd, NATS, and everything else), which
#      says what the router would carry on cores of its own.
# Usage: scripts/cluster-bench.sh [seconds per run, default 10] [clients, default 32]
# SLUICE_BIN=path runs that sluice binary and NOOP_BIN=path that no-op function (default: this
# tree's, built) without building anything, to compare builds side by side in alternating runs.
# Writes out/cluster-bench.txt, or $OUT (and prints it).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
clients=${2:-32}
if [ -z "${SLUICE_BIN:-}" ]; then
  cargo build --release -q -p sluice-cli -p sluice-fn --examples
  cargo build --release -q -p sluice-cli
fi
bin=${SLUICE_BIN:-$PWD/target/release/sluice}
noop=${NOOP_BIN:-$PWD/target/release/examples/noop}
. scripts/cluster-lib.sh
work=$(mktemp -d)
trap 'cleanup 2>/dev/null; rm -rf "$work"' EXIT
start_etcd "$work"; start_nats "$work"
urls=()
roles=("etcd=$ETCD_PID" "nats=$NATS_PID")
for i in 1 2 3; do
  start_worker "$bin" "$work" "w$i"; urls+=("$WORKER_URL"); roles+=("worker $i=$WORKER_PID")
done
start_router "$bin" "$work" r1
roles+=("router=$ROUTER_PID")
# measured OUT ARGS...: a load run, with where the CPU went per invocation.
measured() { local out=$1; shift; python3 scripts/cpu-per-call.py "$out" "${roles[@]}" -- "$@"; }
for _ in $(seq 100); do [ "$(workers_seen "$ROUTER_URL")" = 3 ] && break; sleep 0.1; done
cat > "$work/noop.json" <<JSON
{"name": "noop", "command": ["$noop"], "resources": {"memory_mb": 64}}
JSON
SLUICE_URL=$ROUTER_URL "$bin" fn register "$work/noop.json" >/dev/null
for u in "${urls[@]}"; do
  for _ in $(seq 100); do curl -sf "$u/v1/functions/noop" >/dev/null && break; sleep 0.1; done
  curl -sf -XPOST "$u/v1/functions/noop/prewarm?count=2" >/dev/null
done
sleep 1
mkdir -p out
{
  echo "# scripts/cluster-bench.sh $secs $clients ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
  echo "== 1 client, straight to a worker (${secs}s)"
  SLUICE_URL=${urls[0]} "$bin" load --closed 1 --duration "$secs" --functions noop
  echo "== 1 client, through the router (${secs}s)"
  SLUICE_URL=$ROUTER_URL "$bin" load --closed 1 --duration "$secs" --functions noop
  echo "== $clients clients, straight to one worker (${secs}s)"
  measured "$work/direct.txt" env SLUICE_URL="${urls[0]}" "$bin" load --closed "$clients" --duration "$secs" --functions noop
  echo "== $clients clients, through the router to 3 workers (${secs}s)"
  measured "$work/through.txt" env SLUICE_URL="$ROUTER_URL" "$bin" load --closed "$clients" --duration "$secs" --functions noop
  python3 - "$work/through.txt" <<'PY'
import re, sys
per = float(re.search(r"router +[0-9.]+ s +([0-9.]+) us", open(sys.argv[1]).read())[1])
print(f"router alone: {per:.1f} us per invocation; one core would carry {1e6 / per:.0f}/s, two {2e6 / per:.0f}/s")
PY
  echo "== router view"
  curl -sf "$ROUTER_URL/v1/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); [print(w["member"]["id"], "load", w["load"], "warm", w["warm"]) for w in s["workers"]]'
} | tee "${OUT:-out/cluster-bench.txt}"
