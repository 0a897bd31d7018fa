#!/usr/bin/env bash
# Live vs simulated: replays the 600-invocation slice of the Ilúvatar trace
# (crates/sluice-cli/tests/data/iluvatar-slice) against a real worker, and simulates the same
# slice with a device model set to match this host, then prints both summaries side by side.
# Every trace function maps onto its own registered copy of the `spin` function
# (crates/sluice-fn/examples/spin.rs), which keeps a core busy for the trace's GPU time; the
# worker uses one simulated GPU with D = 2 tokens, so functions run on the CPU under the same
# scheduler the simulator drives.
# Usage: scripts/compare-live-sim.sh [target utilisation, default 0.5] [out file, default
#        out/live-vs-sim.md; docs/results/live-vs-sim.md to update the table the docs quote]
set -euo pipefail
cd "$(dirname "$0")/.."
util=${1:-0.5}
out=${2:-out/live-vs-sim.md}
mkdir -p "$(dirname "$out")"
slice=crates/sluice-cli/tests/data/iluvatar-slice
cargo build --release -q -p sluice-fn --examples
cargo build --release -q -p sluice-cli
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop; rm -rf "$work"' EXIT
# The builtin catalogue's speedups (so GPU times match), without GPU memory or GPU init: the
# live run has neither. Cold start = sandbox start of the spin function measured here (~30 ms).
sed -e 's/^gpu_mem_mb = .*/gpu_mem_mb = 0.0/' -e 's/^gpu_init_ms = .*/gpu_init_ms = 0.0/' \
    -e 's/^container_start_ms = .*/container_start_ms = 30.0/' config/catalog.toml > "$work/catalog.toml"
# Two spinning functions on two cores do not slow each other (the worker's own CPU is ignored).
sed -e 's/^concurrency_slowdown = .*/concurrency_slowdown = 0.0/' config/sim.toml > "$work/sim.toml"
worker_start "$work"
names=()
for i in $(seq 0 20); do
  printf '{"name":"spin-%s","command":["%s"],"resources":{"gpu":true,"memory_mb":64}}' \
    "$i" "$PWD/target/release/examples/spin" > "$work/spin-$i.json"
  ./target/release/sluice fn register "$work/spin-$i.json" >/dev/null
  names+=("spin-$i")
done
fns=$(IFS=,; echo "${names[*]}")
./target/release/sluice load --trace "iluvatar:$slice" --functions "$fns" --input-from-trace \
  --target-util "$util" --catalog "$work/catalog.toml" --json --quiet > "$work/live.json"
./target/release/sluice sim --trace "iluvatar:$slice" --policies mqfq-sticky --target-util "$util" \
  --catalog "$work/catalog.toml" --config "$work/sim.toml" --json --quiet > "$work/sim.json"
python3 - "$work/live.json" "$work/sim.json" "$util" "$out" <<'PY'
import json, sys
live = json.load(open(sys.argv[1]))["policies"][0]
sim = json.load(open(sys.argv[2]))["policies"][0]
rows = [("completed", "completed"), ("mean ms", ("latency_ms", "mean")), ("p50 ms", ("latency_ms", "p50")),
        ("p99 ms", ("latency_ms", "p99")), ("queue mean ms", ("queue_ms", "mean")),
        ("Jain", "jain_fairness"), ("cold starts", "cold_starts")]
def get(d, k):
    return d[k[0]][k[1]] if isinstance(k, tuple) else d[k]
lines = [f"Ilúvatar slice (600 invocations), offered utilisation {sys.argv[3]}, mqfq-sticky, 1 GPU (D = 2)", "",
         "| metric | live (`sluice load`) | simulated (`sluice sim`) | sim / live |", "|---|---:|---:|---:|"]
for name, key in rows:
    a, b = get(live, key), get(sim, key)
    ratio = f"{b / a:.2f}" if a else "-"
    lines.append(f"| {name} | {a:.3f} | {b:.3f} | {ratio} |" if isinstance(a, float) else f"| {name} | {a} | {b} | {ratio} |")
text = "\n".join(lines) + "\n"
open(sys.argv[4], "w").write(text)
print(text)
PY
