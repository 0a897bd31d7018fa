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
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop; rm -rf "$work"' EXIT
cat > "$work/noop.json" <<JSON
{"name": "noop", "command": ["$PWD/target/release/examples/noop"], "resources": {"memory_mb": 64}}
JSON
# Port 0: the worker picks a free port and writes it to <data_dir>/listen.addr.
worker_start "$work"
./target/release/sluice fn register "$work/noop.json" >/dev/null
echo "== overhead: 1 client, ${secs}s"
./target/release/sluice load --closed 1 --duration "$secs" --functions noop
echo "== throughput: 16 clients, ${secs}s"
./target/release/sluice load --closed 16 --duration "$secs" --functions noop
