#!/usr/bin/env bash
# Worker benchmarks on this machine: control-plane overhead of a warm no-op invocation (one
# client, back to back) and warm throughput (16 clients), with the Rust no-op function
# (crates/sluice-fn/examples/noop.rs) in a sandbox. Prints both results.
# Usage: scripts/bench-worker.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release -q -p sluice-cli -p sluice-fn --examples
cargo build --release -q -p sluice-cli
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SLUICE_URL=http://127.0.0.1:$port
cat > "$work/noop.json" <<JSON
{"name": "noop", "command": ["$PWD/target/release/examples/noop"], "resources": {"memory_mb": 64}}
JSON
SLUICE_LOG=warn ./target/release/sluice worker --listen 127.0.0.1:$port --data-dir "$work/data" --simulate-gpus \
  2> "$work/worker.log" &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "$SLUICE_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
./target/release/sluice fn register "$work/noop.json" >/dev/null
echo "== overhead: 1 client, ${secs}s"
./target/release/sluice load --closed 1 --duration "$secs" --functions noop
echo "== throughput: 16 clients, ${secs}s"
./target/release/sluice load --closed 16 --duration "$secs" --functions noop
