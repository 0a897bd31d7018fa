#!/usr/bin/env bash
# SIGKILL of a worker and of a router during asynchronous load, over several rounds, each on a
# fresh cluster (etcd, nats-server, 3 workers, 2 routers on loopback). Per round: accept N
# invocations of a Python function that sleeps, alternating routers; SIGKILL a random worker
# after a third of them and the first router after two thirds (the rest go to the second);
# then wait until every accepted invocation is done. Lost = accepted but not succeeded.
# Usage: scripts/cluster-chaos.sh [rounds, default 5] [invocations per round, default 60]
# Writes out/cluster-chaos.txt; exits 1 if anything accepted was lost.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
n=${2:-60}
cargo build --release -q -p sluice-cli
bin=$PWD/target/release/sluice
. scripts/cluster-lib.sh
mkdir -p out
total_lost=0; total_accepted=0; total_retried=0
fixture=$PWD/crates/sluice-cli/tests/fixtures/functions/behaviours.py
echo "# scripts/cluster-chaos.sh $rounds $n ($(date -u +%Y-%m-%dT%H:%MZ))" | tee out/cluster-chaos.txt
for round in $(seq "$rounds"); do
  work=$(mktemp -d)
  PIDS=()
  trap 'cleanup 2>/dev/null; rm -rf "$work"' EXIT
  start_etcd "$work"; start_nats "$work"
  wpids=()
  for i in 1 2 3; do start_worker "$bin" "$work" "w$i"; wpids+=("$WORKER_PID"); done
  cfg=$'[async]\nack_wait_s = 2.0\nmax_attempts = 5\n'
  start_router "$bin" "$work" ra "$cfg"; ra=$ROUTER_URL; rapid=$ROUTER_PID
  start_router "$bin" "$work" rb "$cfg"; rb=$ROUTER_URL
  for _ in $(seq 100); do [ "$(workers_seen "$rb")" = 3 ] && break; sleep 0.1; done
  cat > "$work/sleepy.json" <<JSON
{"name": "sleepy", "command": ["python3", "$fixture"], "env": {"SLUICE_SDK": "$PWD/sdk/python"}, "resources": {"memory_mb": 256}}
JSON
  curl -sf -XPOST "$ra/v1/functions" -d @"$work/sleepy.json" >/dev/null
  : > "$work/ids"
  victim=$((RANDOM % 3))
  for i in $(seq "$n"); do
    router=$ra; [ $((i % 2)) = 0 ] && router=$rb
    [ "$i" -gt $((2 * n / 3)) ] && router=$rb
    id="r$round-$i"
    code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H "Idempotency-Key: $id" \
      "$router/v1/functions/sleepy/invoke-async" -d '{"do": "sleep", "seconds": 0.3}' || true)
    [ "$code" = 202 ] && echo "$id" >> "$work/ids"
    [ "$i" = $((n / 3)) ] && kill -9 "${wpids[$victim]}"
    [ "$i" = $((2 * n / 3)) ] && kill -9 "$rapid"
    sleep 0.02
  done
  accepted=$(wc -l < "$work/ids")
  deadline=$((SECONDS + 180))
  while :; do
    summary=$(python3 - "$rb" "$work/ids" <<'PY'
import json, sys, urllib.request
base, ids = sys.argv[1], open(sys.argv[2]).read().split()
done = ok = retried = 0
for i in ids:
    try:
        r = json.load(urllib.request.urlopen(f"{base}/v1/invocations/{i}", timeout=5))
    except Exception:
        continue
    done += r.get("done") is True
    ok += r.get("status") == "succeeded"
    retried += (r.get("attempts") or 0) > 1
print(done, ok, retried)
PY
)
    read -r done ok retried <<< "$summary"
    [ "$done" = "$accepted" ] && break
    [ $SECONDS -gt $deadline ] && break
    sleep 1
  done
  lost=$((accepted - ok))
  total_lost=$((total_lost + lost)); total_accepted=$((total_accepted + accepted)); total_retried=$((total_retried + retried))
  echo "round $round: accepted $accepted, succeeded $ok, ran more than once $retried, lost $lost (killed worker w$((victim + 1)) and router ra)" | tee -a out/cluster-chaos.txt
  cleanup 2>/dev/null; rm -rf "$work"; trap - EXIT
done
echo "total: $rounds rounds, accepted $total_accepted, lost $total_lost, ran more than once $total_retried" | tee -a out/cluster-chaos.txt
[ "$total_lost" = 0 ]
