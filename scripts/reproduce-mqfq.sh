#!/usr/bin/env bash
# Reproduces the figures of docs/mqfq-results.md: every queueing policy on the bundled traces at
# their recorded rate on 1-16 simulated GPUs (scripts/sweep-gpus.sh), the capacity table (the
# fewest GPUs meeting p99 <= 10 s), and the one-GPU overload stress case at offered utilisation
# 0.5, 0.8 and 0.95. Writes to out/mqfq/ (ignored by git); with --update-docs to docs/results/.
# A directory is replaced only after everything written to it succeeded, so a failed or
# interrupted run never leaves a truncated result behind.
# Usage: scripts/reproduce-mqfq.sh [--update-docs] [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dest=out/mqfq
data=data
while [ $# -gt 0 ]; do
  case $1 in
    --update-docs) dest=docs/results; shift ;;
    --data) data=$2; shift 2 ;;
    *) echo "usage: $0 [--update-docs] [--data DIR]" >&2; exit 2 ;;
  esac
done
for f in "$data/azure2019-sample/100_inv.csv" "$data/iluvatar-paper-trace/trace.csv"; do
  [ -f "$f" ] || { echo "missing $f: nothing written" >&2; exit 1; }
done
cargo build --release -q -p sluice-cli
sluice=./target/release/sluice
policies=fcfs,sjf,eedf,batch,paella,mqfq,mqfq-sticky
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
azure="azure2019:$data/azure2019-sample/100"
azure_class="azure2019:$data/azure2019-sample/100;timing=class"
iluvatar="iluvatar:$data/iluvatar-paper-trace"

# 1. GPU sweeps at the recorded rate.
scripts/sweep-gpus.sh --trace "$iluvatar" --out "$stage/gpus-iluvatar"
scripts/sweep-gpus.sh --trace "$azure_class" --out "$stage/gpus-azure100-class"
scripts/sweep-gpus.sh --trace "$azure" --gpus "4 8 16" --out "$stage/gpus-azure100"

# 2. Capacity: the fewest GPUs meeting p99 <= 10 s at the recorded rate.
for t in iluvatar:"$iluvatar" azure100-class:"$azure_class" azure100:"$azure"; do
  name=${t%%:*} spec=${t#*:}
  "$sluice" sim --trace "$spec" --policies "$policies" --capacity --slo p99=10000 --max-gpus 16 \
    --quiet --json > "$stage/capacity-$name.json"
done

# 3. Stress: one GPU far beyond its capacity (the old tables).
for t in azure100:"$azure" iluvatar:"$iluvatar"; do
  name=${t%%:*} spec=${t#*:}
  mkdir -p "$stage/stress-$name"
  "$sluice" sim --trace "$spec" --policies "$policies" --target-util 0.5,0.8,0.95 --gpus 1 \
    --quiet --out "$stage/stress-$name" > "$stage/stress-$name/table.txt"
done

# Everything succeeded: replace the results.
mkdir -p "$dest"
for d in "$stage"/*; do
  name=$(basename "$d")
  rm -rf "${dest:?}/$name"
  cp -r "$d" "$dest/$name"
done
echo "results in $dest/" >&2
