#!/usr/bin/env bash
# Live vs simulated: replays the 600-invocation slice of the Ilúvatar trace
# (crates/sluice-cli/tests/data/iluvatar-slice) against a real worker, and simulates the same
# slice with a device model set to match this host, then prints both summaries side by side.
#
# One GPU (default): every trace function maps onto its own registered copy of the `spin`
# function (crates/sluice-fn/examples/spin.rs), which keeps a core busy for the trace's GPU time;
# the worker uses one simulated GPU with D = 2 tokens, so functions run on the CPU under the same
# scheduler the simulator drives.
#
# --gpus N (N > 1): the worker simulates N GPUs of --gpu-gib GiB each, and every trace function is
# a copy of a Python function that sleeps for the trace's GPU time (so 2N tokens fit on a 2-core
# host) and declares --fn-mb MiB of GPU memory; the placement policy spreads them over the
# devices and the memory policy moves their memory, so the comparison adds cold starts and bytes
# moved (the worker's sluice_memory_moved_bytes counters; its cold starts are the calls that started
# cold plus the sandboxes it bought ahead, sluice_sandboxes_bought) against the simulator's, with its copy cost
# and concurrency slowdown set to zero (moves on simulated GPUs are bookkeeping) and each of its
# cold starts drawn from those the live run measured (`device.cold_start_samples_ms`), each call
# as much longer than the trace's time as the live calls were (`device.exec_overhead_ms`); the
# simulated figures are the mean of K (--seeds, default 10) such runs, with their range. Both
# sides count their cold starts by cause (the worker's sluice_cold_starts_total), shown under the table.
#
# Usage: scripts/compare-live-sim.sh [target utilisation, default 0.5] [out file, default
#        out/live-vs-sim.md; docs/results/live-vs-sim.md to update the table the docs quote]
#        [--gpus N] [--gpu-gib G] [--fn-mb M] [--seeds K]
set -euo pipefail
cd "$(dirname "$0")/.."
util=0.5
out=out/live-vs-sim.md
gpus=1
gpu_gib=8
fn_mb=2048
seeds=10
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    --gpus) gpus=$2; shift 2 ;;
    --gpu-gib) gpu_gib=$2; shift 2 ;;
    --fn-mb) fn_mb=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -ge 1 ] && util=${positional[0]}
[ ${#positional[@]} -ge 2 ] && out=${positional[1]}
mkdir -p "$(dirname "$out")"
slice=crates/sluice-cli/tests/data/iluvatar-slice
cargo build --release -q -p sluice-fn --examples
cargo build --release -q -p sluice-cli
sluice=./target/release/sluice
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop; rm -rf "$work"' EXIT
# The builtin catalogue's speedups (so GPU times match), without GPU init: the live run has none.
# Cold start = sandbox start of the function, measured here (~30 ms for spin).
mem=0.0
[ "$gpus" -gt 1 ] && mem=$fn_mb.0
sed -e "s/^gpu_mem_mb = .*/gpu_mem_mb = $mem/" -e 's/^gpu_init_ms = .*/gpu_init_ms = 0.0/' \
    -e 's/^container_start_ms = .*/container_start_ms = 30.0/' config/catalog.toml > "$work/catalog.toml"
# Two spinning functions on two cores do not slow each other (the worker's own CPU is ignored);
# sleeping ones never do.
sed -e 's/^concurrency_slowdown = .*/concurrency_slowdown = 0.0/' config/sim.toml > "$work/sim.toml"
if [ "$gpus" -gt 1 ]; then
  worker_start "$work" '[gpu]' 'force_simulated = true' "simulated_count = $gpus" \
    "simulated_memory_gib = $gpu_gib"
else
  worker_start "$work"
fi
names=()
if [ "$gpus" -gt 1 ]; then
  # Sandboxes have a private /tmp: the function lives under target/.
  fdir=$PWD/target/compare-live-sim
  mkdir -p "$fdir"
  cat > "$fdir/sleep.py" <<'PY'
import time
import sluice_function

def handle(arg):
    ms = float(arg.get("ms", 0))
    time.sleep(ms / 1000.0)
    return {"slept_ms": ms}

sluice_function.serve(handle)
PY
  for i in $(seq 0 20); do
    printf '{"name":"sleep-%s","command":["python3","%s/sleep.py"],"env":{"PYTHONPATH":"%s/sdk/python"},"resources":{"gpu":true,"memory_mb":128,"gpu_memory_mb":%s}}' \
      "$i" "$fdir" "$PWD" "$fn_mb" > "$work/fn-$i.json"
    $sluice fn register "$work/fn-$i.json" >/dev/null
    names+=("sleep-$i")
  done
else
  for i in $(seq 0 20); do
    printf '{"name":"spin-%s","command":["%s"],"resources":{"gpu":true,"memory_mb":64}}' \
      "$i" "$PWD/target/release/examples/spin" > "$work/fn-$i.json"
    $sluice fn register "$work/fn-$i.json" >/dev/null
    names+=("spin-$i")
  done
fi
fns=$(IFS=,; echo "${names[*]}")
$sluice load --trace "iluvatar:$slice" --functions "$fns" --input-from-trace --gpus "$gpus" \
  --target-util "$util" --catalog "$work/catalog.toml" --json --quiet > "$work/live.json"
curl -sf "$SLUICE_URL/metrics" > "$work/metrics.txt"
# The live mean of one latency phase of the worker's histogram, ms (empty if none was observed).
phase_mean_ms() {
  python3 - "$work/metrics.txt" "$1" <<'PY'
import re, sys
s = c = 0.0
for line in open(sys.argv[1]):
    m = re.match(r'sluice_latency_seconds_(sum|count)\{[^}]*phase="' + sys.argv[2] + r'"[^}]*\} ([0-9.e+-]+)', line)
    if m:
        if m.group(1) == "sum": s += float(m.group(2))
        else: c += float(m.group(2))
print(f"{1000 * s / c:.3f}" if c else "")
PY
}
if [ "$gpus" -gt 1 ]; then
  # The simulator gets the live run's cold start, free memory moves and the live GPUs' size.
  cold=$(phase_mean_ms cold_start)
  cold=${cold:-30.0}
  sed -i "s/^container_start_ms = .*/container_start_ms = $cold/" "$work/catalog.toml"
  # Each simulated cold start draws one of the live run's (`x-sluice-cold-start-ms`), as the live
  # sandboxes' starts vary; the simulated figures are the mean over $seeds draws.
  samples=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["cold_start_samples_ms"]))' "$work/live.json")
  sed -i -e 's/^host_device_gbps = .*/host_device_gbps = 1000000.0/' \
      -e "s/^memory_gib = .*/memory_gib = $gpu_gib/" \
      -e "s/^cold_start_samples_ms = .*/cold_start_samples_ms = $samples/" "$work/sim.toml"
  # Each live call keeps its sandbox busy a little longer than the trace's time (the worker's
  # dispatch, the Python helper's I/O): the live mean of the worker's execution phase less the
  # trace's own mean, which a simulation without it reports in its records.
  $sluice sim --trace "iluvatar:$slice" --policies mqfq-sticky --target-util "$util" --gpus "$gpus" \
    --catalog "$work/catalog.toml" --config "$work/sim.toml" --out "$work/own" --records --quiet >/dev/null
  overhead=$(python3 - "$(phase_mean_ms execution)" "$work/own" <<'PY'
import csv, glob, sys
live = float(sys.argv[1]) if sys.argv[1] else None
own = [float(r["solo_ms"]) for f in glob.glob(sys.argv[2] + "/records-*.csv") for r in csv.DictReader(open(f))]
print(f"{max(0.0, live - sum(own) / len(own)):.3f}" if live is not None and own else "0.0")
PY
)
  sed -i "s/^exec_overhead_ms = .*/exec_overhead_ms = $overhead/" "$work/sim.toml"
else
  seeds=1
fi
sims=()
for seed in $(seq "$seeds"); do
  sed -i "s/^cold_start_seed = .*/cold_start_seed = $seed/" "$work/sim.toml"
  $sluice sim --trace "iluvatar:$slice" --policies mqfq-sticky --target-util "$util" --gpus "$gpus" \
    --catalog "$work/catalog.toml" --config "$work/sim.toml" --json --quiet > "$work/sim-$seed.json"
  sims+=("$work/sim-$seed.json")
done
python3 - "$work/live.json" "$work/metrics.txt" "$util" "$gpus" "$out" "${cold:-}" "${overhead:-0}" "${sims[@]}" <<'PY'
import json, re, sys
live = json.load(open(sys.argv[1]))["policies"][0]
runs = [json.load(open(f))["policies"][0] for f in sys.argv[8:]]
def mean_of(values):
    return sum(values) / len(values)
sim = {k: mean_of([r[k] for r in runs]) for k in ("completed", "jain_fairness", "cold_starts",
                                               "bytes_to_device", "bytes_to_host")}
for k in ("latency_ms", "queue_ms"):
    sim[k] = {q: mean_of([r[k][q] for r in runs]) for q in runs[0][k]}
moved = {"to_device": 0, "to_host": 0}
bought = 0
causes = {}
for line in open(sys.argv[2]):
    # The worker's cold starts by cause, as the simulator's scheduler counts them.
    m = re.match(r'sluice_cold_starts_total\{cause="([a-z]+)"\} ([0-9.e+]+)', line)
    if m:
        causes[m.group(1)] = int(float(m.group(2)))
    m = re.match(r'sluice_memory_moved_bytes_total\{name="(to_device|to_host)"\} ([0-9.e+]+)', line)
    if m:
        moved[m.group(1)] = int(float(m.group(2)))
    # The simulator counts every sandbox started, also those bought ahead with no call waiting.
    m = re.match(r'sluice_sandboxes_bought_total ([0-9.e+]+)', line)
    if m:
        bought = int(float(m.group(1)))
        live["cold_starts"] += bought
live["bytes_to_device"], live["bytes_to_host"] = moved["to_device"], moved["to_host"]
util, gpus, out, cold, overhead = sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
rows = [("completed", "completed"), ("mean ms", ("latency_ms", "mean")), ("p50 ms", ("latency_ms", "p50")),
        ("p99 ms", ("latency_ms", "p99")), ("queue mean ms", ("queue_ms", "mean")),
        ("Jain", "jain_fairness"), ("cold starts", "cold_starts")]
if gpus > 1:
    rows += [("GB moved host→device", "bytes_to_device"), ("GB moved device→host", "bytes_to_host")]
def get(d, k):
    v = d[k[0]][k[1]] if isinstance(k, tuple) else d[k]
    return v / 1e9 if k in ("bytes_to_device", "bytes_to_host") else v
what = ("spin (busy CPU)" if gpus == 1 else
        f"sleep (Python), {gpus} simulated GPUs, {cold} ms mean cold start and {overhead} ms per-call "
        f"overhead measured live; simulated: mean of {len(runs)} runs, each cold start drawn from "
        f"the live run's, each call {overhead} ms longer than the trace's (`device.exec_overhead_ms`)")
lines = [f"Ilúvatar slice (600 invocations), offered utilisation {util}, mqfq-sticky, {gpus} GPU(s) (D = 2), {what}", "",
         "| metric | live (`sluice load`) | simulated (`sluice sim`) | sim / live |", "|---|---:|---:|---:|"]
for name, key in rows:
    a, b = get(live, key), get(sim, key)
    ratio = f"{b / a:.2f}" if a else "-"
    show = lambda v: f"{v:.3f}" if isinstance(v, float) and v != int(v) else str(int(v))
    lines.append(f"| {name} | {show(a)} | {show(b)} | {ratio} |")
if len(runs) > 1:
    lines.append("")
    for name, key in (("cold starts", "cold_starts"), ("GB moved host→device", "bytes_to_device")):
        vals = sorted(get(r, key) for r in runs)
        a = get(live, key)
        inside = sum(v <= a for v in vals)
        lines.append(f"Simulated {name} over the {len(runs)} runs: {vals[0]:.3f}–{vals[-1]:.3f} "
                     f"(the live figure {a:.3f} is above {inside} of them)")
lines.append("")
lines.append(f"Live cold starts: {live['cold_starts'] - bought} calls started cold, {bought} sandboxes bought ahead.")
if causes and all("cold_start_causes" in r for r in runs):
    by = [f"{c} {causes.get(c, 0)} / {mean_of([r['cold_start_causes'][c] for r in runs]):.1f}"
          for c in ("first", "gone", "concurrent", "elsewhere", "ahead", "prewarm")]
    lines.append("")
    lines.append("Cold starts by cause, live (`sluice_cold_starts_total`) / simulated: " + ", ".join(by) + ".")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
