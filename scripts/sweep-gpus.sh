#!/usr/bin/env bash
# Every queueing policy on one trace at its recorded rate on 1, 2, 4, 8 and 16 simulated GPUs:
# mean and p99 latency, cold starts and bytes moved host->device per invocation, each policy's
# mean over the ideal bound's (when the binary reports one), and every step between consecutive
# GPU counts where a policy's mean or p99 rose (--gpus "$(seq -s ' ' 1 16)" for single steps).
# Writes <out>/g<N>.json and <out>/sweep.md; nothing is written to <out> unless every run
# succeeded.
# Usage: scripts/sweep-gpus.sh [--bin PATH] [--config FILE] [--gpus "1 2 4 8 16"] [--seed S]
#                              [--key-salt K] --trace SPEC --out DIR
# --bin runs another build (e.g. an older commit's) with the same arguments. --key-salt picks
# another layout of the functions' home devices (scripts/sweep-replicas.sh runs several).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/sluice
config=()
salt=()
gpus="1 2 4 8 16"
seed=1
trace=
out=
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --config) config=(--config "$2"); shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --key-salt) salt=(--key-salt "$2"); shift 2 ;;
    --trace) trace=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$trace" ] && [ -n "$out" ] || { echo "usage: $0 [--bin PATH] [--config FILE] [--gpus LIST] [--seed S] [--key-salt K] --trace SPEC --out DIR" >&2; exit 2; }
policies=fcfs,sjf,eedf,batch,paella,mqfq,mqfq-sticky
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for g in $gpus; do
  "$bin" sim --trace "$trace" --policies "$policies" --gpus "$g" --seed "$seed" "${config[@]}" "${salt[@]}" \
    --quiet --json > "$work/g$g.json"
done
python3 - "$work" "$trace" "$gpus" > "$work/sweep.md" <<'PY'
import json, sys
work, trace, gpus = sys.argv[1], sys.argv[2], sys.argv[3].split()
runs = {g: json.load(open(f"{work}/g{g}.json")) for g in gpus}
policies = [p["policy"] for p in runs[gpus[0]]["policies"]]
def cell(p, k):
    lat = p["latency_ms"]
    mb = p["bytes_to_device"] / max(p["invocations"], 1) / 1e6
    extra = f" ({p['vs_ideal']['mean']:.1f}×)" if "vs_ideal" in p else ""
    return {"mean": f"{lat['mean']/1000:,.2f}{extra}", "p99": f"{lat['p99']/1000:,.1f}",
            "cold": f"{p['cold_starts']:,}", "mb": f"{mb:,.1f}"}[k]
print(f"Trace `{trace}` at its recorded rate; offered GPU utilisation on 1 GPU "
      f"{runs[gpus[0]]['policies'][0]['offered_util'] * int(gpus[0]):.3f}.\n")
for title, k in [("mean latency, s (× the ideal bound's mean)", "mean"), ("p99 latency, s", "p99"),
                 ("cold starts", "cold"), ("MB moved host→device per invocation", "mb")]:
    print(f"**{title}**\n")
    print("| policy | " + " | ".join(f"{g} GPU" + ("s" if g != "1" else "") for g in gpus) + " |")
    print("|---|" + "---:|" * len(gpus))
    for name in policies:
        row = [cell(next(p for p in runs[g]["policies"] if p["policy"] == name), k) for g in gpus]
        print(f"| {name} | " + " | ".join(row) + " |")
    if k == "mean" and "ideal" in runs[gpus[0]]:
        ideal = [f"{runs[g]['ideal'][0]['latency_ms']['mean']/1000:,.2f}" for g in gpus]
        print("| *ideal bound* | " + " | ".join(ideal) + " |")
    print()
# Adding GPUs should never raise latency: every step between consecutive counts where a policy's
# mean or p99 rose.
rises = []
for name in policies:
    for a, b in zip(gpus, gpus[1:]):
        x, y = (next(p for p in runs[g]["policies"] if p["policy"] == name)["latency_ms"] for g in (a, b))
        if y["mean"] > x["mean"] or y["p99"] > x["p99"]:
            rises.append(f"| {name} | {a} → {b} | {(y['mean'] / x['mean'] - 1) * 100:+.2f}% "
                         f"| {(y['p99'] / x['p99'] - 1) * 100:+.2f}% |")
steps = len(policies) * (len(gpus) - 1)
print(f"**steps where a policy's mean or p99 rose with more GPUs: {len(rises)} of {steps}**\n")
if rises:
    print("| policy | GPUs | mean | p99 |")
    print("|---|---|---:|---:|")
    print("\n".join(rises))
    print()
PY
mkdir -p "$out"
cp "$work"/g*.json "$work/sweep.md" "$out/"
echo "wrote $out/sweep.md" >&2
