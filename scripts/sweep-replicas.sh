#!/usr/bin/env bash
# Replicas of scripts/sweep-gpus.sh that differ only in the layout of the functions' home devices
# (`sluice sim --key-salt 0..R-1`; salt 0 is the default layout), and what they have in common.
#
# On a trace with exact timestamps (the Ilúvatar trace) every run is deterministic, and a step of
# a few tenths of a percent between two GPU counts can come from nothing more than which two
# functions the hash happened to put on one device. The replicas tell such steps from a policy's
# own effect: for each policy and GPU count the mean over the replicas of the mean and p99
# latency (with their range), the steps where those replica means rose with more GPUs (and in
# how many replicas each rose), and how many steps rose in each replica on its own.
# Writes <out>/salt-<k>/ (each a sweep-gpus.sh output), <out>/replicas.json and
# <out>/replicas.md.
# Usage: scripts/sweep-replicas.sh [--replicas R] [--bin PATH] [--config FILE] [--gpus LIST]
#                                  [--seed S] --trace SPEC --out DIR
set -euo pipefail
cd "$(dirname "$0")/.."
replicas=8
pass=()
trace=
out=
while [ $# -gt 0 ]; do
  case $1 in
    --replicas) replicas=$2; shift 2 ;;
    --bin|--config|--gpus|--seed) pass+=("$1" "$2"); shift 2 ;;
    --trace) trace=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$trace" ] && [ -n "$out" ] && [ "$replicas" -ge 2 ] 2>/dev/null || {
  echo "usage: $0 [--replicas R (>= 2)] [--bin PATH] [--config FILE] [--gpus LIST] [--seed S] --trace SPEC --out DIR" >&2
  exit 2
}
# Without --bin the sweeps run this checkout's release build: make sure it is current.
[[ " ${pass[*]} " == *" --bin "* ]] || cargo build --release -q -p sluice-cli
for ((k = 0; k < replicas; k++)); do
  scripts/sweep-gpus.sh "${pass[@]}" --key-salt "$k" --trace "$trace" --out "$out/salt-$k"
done
python3 - "$out" "$replicas" "$trace" <<'PY'
import glob, json, os, re, sys
out, replicas, trace = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = []  # per replica: {gpus: {policy: (mean, p99)}}
for k in range(replicas):
    rep = {}
    for path in glob.glob(f"{out}/salt-{k}/g*.json"):
        g = int(re.search(r"g(\d+)\.json$", path).group(1))
        rep[g] = {p["policy"]: (p["latency_ms"]["mean"], p["latency_ms"]["p99"])
                  for p in json.load(open(path))["policies"]}
    runs.append(rep)
gpus = sorted(runs[0])
policies = list(runs[0][gpus[0]])
def avg(xs):
    return sum(xs) / len(xs)
agg = {pol: {g: {m: [r[g][pol][i] for r in runs] for i, m in enumerate(("mean", "p99"))}
             for g in gpus} for pol in policies}
rises, per_replica = [], [0] * replicas
for pol in policies:
    for a, b in zip(gpus, gpus[1:]):
        for m in ("mean", "p99"):
            xa, xb = agg[pol][a][m], agg[pol][b][m]
            rose = [k for k in range(replicas) if xb[k] > xa[k]]
            for k in rose:
                per_replica[k] += 1
            if avg(xb) > avg(xa):
                rises.append({"policy": pol, "from": a, "to": b, "metric": m,
                              "change": avg(xb) / avg(xa) - 1, "replicas_rising": len(rose)})
summary = {
    "trace": trace, "replicas": replicas, "gpus": gpus,
    "latency_ms": {pol: {str(g): {m: avg(v) for m, v in agg[pol][g].items()} for g in gpus}
                   for pol in policies},
    "rises_of_replica_means": rises,
    "rising_figures_per_replica": per_replica,
}
json.dump(summary, open(f"{out}/replicas.json", "w"), indent=1)
with open(f"{out}/replicas.md", "w") as f:
    w = lambda s="": print(s, file=f)
    w(f"Trace `{trace}` at its recorded rate, {replicas} layouts of the home devices "
      f"(`--key-salt 0..{replicas - 1}`; salt 0 is the default layout).\n")
    for m, title in (("mean", "mean latency, s"), ("p99", "p99 latency, s")):
        w(f"**{title}: mean over the replicas (lowest–highest)**\n")
        w("| policy | " + " | ".join(f"{g} GPU" + ("s" if g != 1 else "") for g in gpus) + " |")
        w("|---|" + "---:|" * len(gpus))
        for pol in policies:
            cells = [f"{avg(v)/1000:,.3g} ({min(v)/1000:,.3g}–{max(v)/1000:,.3g})"
                     for v in (agg[pol][g][m] for g in gpus)]
            w(f"| {pol} | " + " | ".join(cells) + " |")
        w()
    steps = len(policies) * (len(gpus) - 1) * 2
    w(f"**figures (a policy's mean or p99 at a step) whose replica mean rose with more GPUs: "
      f"{len(rises)} of {steps}**\n")
    if rises:
        w("| policy | GPUs | figure | change | replicas in which it rose |")
        w("|---|---|---|---:|---:|")
        for r in rises:
            w(f"| {r['policy']} | {r['from']} → {r['to']} | {r['metric']} | "
              f"{r['change'] * 100:+.2g}% | {r['replicas_rising']} of {replicas} |")
        w()
    w("Rising figures in each replica on its own (salt 0, 1, …): "
      + ", ".join(str(n) for n in per_replica) + ".")
print(f"wrote {out}/replicas.md", file=sys.stderr)
PY
