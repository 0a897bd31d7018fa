#!/usr/bin/env bash
# Router overhead and throughput, side by side in one run on this machine: etcd, nats-server,
# 3 workers and 1 router (all on loopback, sharing the machine's cores with the load
# generator), the Rust no-op function (crates/sluice-fn/examples/noop.rs).
#   1. latency of a warm no-op, 1 client, straight to a worker, then through the router
#      (the router's added p50 is the difference);
#   2. warm throughput with N clients straight to one worker, then through the router to 3,
#      and the router's own CPU time per invocation in that run (/proc/PID/stat), which says
#      what it would carry on cores of its own.
# Usage: scripts/cluster-bench.sh [seconds per run, default 10] [clients, default 32]
# Writes out/cluster-bench.txt (and prints it).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
clients=${2:-32}
cargo build --release -q -p sluice-cli -p sluice-fn --examples
cargo build --release -q -p sluice-cli
bin=$PWD/target/release/sluice
. scripts/cluster-lib.sh
work=$(mktemp -d)
trap 'cleanup 2>/dev/null; rm -rf "$work"' EXIT
start_etcd "$work"; start_nats "$work"
urls=()
for i in 1 2 3; do start_worker "$bin" "$work" "w$i"; urls+=("$WORKER_URL"); done
start_router "$bin" "$work" r1
router_pid=$ROUTER_PID
# CPU seconds a process has used (user + system).
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
for _ in $(seq 100); do [ "$(workers_seen "$ROUTER_URL")" = 3 ] && break; sleep 0.1; done
cat > "$work/noop.json" <<JSON
{"name": "noop", "command": ["$PWD/target/release/examples/noop"], "resources": {"memory_mb": 64}}
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
  SLUICE_URL=${urls[0]} "$bin" load --closed "$clients" --duration "$secs" --functions noop
  echo "== $clients clients, through the router to 3 workers (${secs}s)"
  before=$(cpu_s "$router_pid")
  SLUICE_URL=$ROUTER_URL "$bin" load --closed "$clients" --duration "$secs" --functions noop | tee "$work/through.txt"
  after=$(cpu_s "$router_pid")
  done_n=$(grep -o '[0-9]* ok' "$work/through.txt" | head -1 | cut -d' ' -f1)
  python3 -c "import sys; cpu=$after-$before; n=$done_n; per=cpu/n*1e6 if n else 0
print(f'router CPU: {cpu:.2f} s for {n} invocations = {per:.1f} us each; one core would carry {1e6/per if per else 0:.0f}/s, two {2e6/per if per else 0:.0f}/s')"
  echo "== router view"
  curl -sf "$ROUTER_URL/v1/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); [print(w["member"]["id"], "load", w["load"], "warm", w["warm"]) for w in s["workers"]]'
} | tee out/cluster-bench.txt
