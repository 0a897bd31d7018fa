#!/usr/bin/env bash
# The OCR pipeline (examples/pipelines/ocr) in a real worker under `sluice load`: deploys it with
# each plan in turn (min-resources at the spec's load, then max-load) from the measured
# profile.csv, offers Poisson load at each rate, and writes per-rate end-to-end and per-stage
# p50/p99 to out/ocr/<policy>.json (and prints the tables). Results are written to a temporary
# file first and moved into place only when a run succeeds.
# Usage: scripts/bench-ocr.sh [seconds per rate, default 30] [rates, default 1,2,4,6]
#        (POLICIES="min-resources" to run only some plans; OUT=docs/results/ocr to update the
#        figures the docs quote)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
rates=${2:-1,2,4,6}
cargo build --release -q -p sluice-cli
work=$(mktemp -d)
out=${OUT:-out/ocr}
mkdir -p "$out"
. scripts/reliability/worker.sh
trap 'worker_stop; rm -rf "$work"' EXIT
worker_start "$work"
spec=examples/pipelines/ocr/pipeline.yaml
samples=(examples/pipelines/ocr/samples/*.png)
first=1
for policy in ${POLICIES:-min-resources max-load}; do
  if [ $first = 1 ]; then verb=create; first=0; else verb=update; fi
  ./target/release/sluice pipeline $verb "$spec" --policy "$policy" --json > "$work/$policy-plan.json"
  mv "$work/$policy-plan.json" "$out/$policy-plan.json"
  echo "== $policy: $(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["status"]["plan"]; print(", ".join("%s %d%% b%d" % (["det","cls","rec"][i["stage"]], i["sm_share"], i["batch"]) for i in p["instances"]), "| predicted capacity %.2f req/s, %.2f GPUs" % (p["predicted"]["capacity_rps"], p["predicted"]["gpus_used"]))' "$out/$policy-plan.json")"
  sleep 2
  ./target/release/sluice load --pipeline ocr --rates "$rates" --duration "$secs" --inputs "${samples[@]}" --json \
    > "$work/$policy.json"
  mv "$work/$policy.json" "$out/$policy.json"
  python3 - "$out/$policy.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    print("rate %.1f: ok %d/%d, e2e p50 %.0f ms p99 %.0f ms | %s" % (
        r["rate_rps"], r["ok"], r["sent"], r["e2e"]["p50_ms"], r["e2e"]["p99_ms"],
        ", ".join("%s p50 %.0f p99 %.0f" % (s["stage"], s["p50_ms"], s["p99_ms"]) for s in r["stages"])))
PY
done
