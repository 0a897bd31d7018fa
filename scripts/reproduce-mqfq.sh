#!/usr/bin/env bash
# Reproduces docs/results/: every queueing policy on the Azure 2019 100-function day and on the
# Ilúvatar paper trace, at offered GPU utilisation 0.5, 0.8 and 0.95, on one simulated GPU.
# Writes to out/results/ (OUT=docs/results to update the figures the docs quote).
# Usage: scripts/reproduce-mqfq.sh [data dir, default data]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
out=${OUT:-out/results}
cargo build --release -q -p sluice-cli
policies=fcfs,sjf,eedf,batch,paella,mqfq,mqfq-sticky
run() {
  local name=$1 trace=$2
  ./target/release/sluice sim --trace "$trace" --policies "$policies" \
    --target-util 0.5,0.8,0.95 --gpus 1 --quiet --out "$out/$name" | tee "$out/$name/table.txt"
}
mkdir -p "$out/azure100" "$out/iluvatar"
run azure100 "azure2019:$data/azure2019-sample/100"
run iluvatar "iluvatar:$data/iluvatar-paper-trace"
