#!/usr/bin/env bash
# The simulated evaluation of the pipeline planners (docs/pipelines.md, "Simulated evaluation"): every policy and
# baseline on the Gpu-let `traffic` and `game` applications and, when its profile exists, the OCR
# pipeline, on 1, 2 and 4 GPUs; peak load at the p99 target and resources at low load. Writes
# out/pipelines/{pipelines.json,pipelines.md} (OUT=docs/results/pipelines to update the figures the
# docs quote) and prints the markdown; a failed run leaves earlier results as they were.
# Usage: scripts/eval-pipelines.sh [extra `sluice sim-pipeline eval` flags, e.g. --requests 5000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sluice-cli
out=${OUT:-out/pipelines}
mkdir -p "$out" out
tmp=$(mktemp -d out/.eval-pipelines.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
./target/release/sluice sim-pipeline eval --gpulet data/gpulet-2080ti --out "$tmp" "$@"
cp "$tmp"/* "$out"/
echo "evaluation took $(( $(date +%s) - start )) s; results in $out/" >&2
