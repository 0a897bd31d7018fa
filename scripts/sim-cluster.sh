#!/usr/bin/env bash
# The cluster in the simulator (docs/simulator.md "Cluster", docs/cluster.md): every router on
# the synthetic Azure-shaped day, on 1,000 workers x 4 GPUs, and a smaller cluster with churn.
# Writes out/sim-cluster/<run>/cluster.{json,md} (rows with wall_s) and <run>/time.txt.
# Usage: scripts/sim-cluster.sh [--quick]   (--quick: only the 100-worker runs)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sluice-cli >/dev/null
bin=./target/release/sluice
out=out/sim-cluster
mkdir -p "$out"
routers=ch-bl,ch-rlu,random,round-robin,least-loaded,p2c

run() { # <name> <trace> <workers> <routers> [extra sluice sim args...]
  local name=$1 trace=$2 workers=$3 rs=$4
  shift 4
  mkdir -p "$out/$name"
  echo "== $name: --workers $workers --routers $rs $*" >&2
  /usr/bin/time -f "%e s wall, %M KB max RSS" -o "$out/$name/time.txt" \
    "$bin" sim --trace "$trace" --workers "$workers" --gpus 4 --routers "$rs" \
    --out "$out/$name" "$@"
  cat "$out/$name/time.txt"
}

# 100 workers, 1,000 functions, a day of 1.5 M invocations (offered GPU utilisation ~0.49).
small='synthetic:functions=1000;invocations=1500000;seed=1;median_ms=5000'
run small-plain "$small" 100 "$routers" --hint-slack 0
# The former defaults: epsilon 0.25 with the bound rounded at random, and rounded up.
run small-eps025 "$small" 100 ch-bl --hint-slack 0 --epsilon 0.25
run small-ceiling "$small" 100 ch-bl --hint-slack 0 --epsilon 0.25 --fractional false
run small-slack1 "$small" 100 ch-bl,ch-rlu --hint-slack 1
# The device level's walk of 8 probes: the bound-blind fallback places a fifth of the arrivals.
run small-probes8 "$small" 100 ch-bl --hint-slack 0 --probes 8
# CH-RLU with the paper's unbounded popularity gate (no ceiling): long unpopular functions queue at home.
run small-paper-gate "$small" 100 ch-rlu --hint-slack 0 --gate-ceiling 0
run small-churn "$small" 100 "$routers" --hint-slack 0 --churn 'leave:10@21600,join:10@43200'
[ "${1:-}" = --quick ] && exit 0

# 1,000 workers x 4 GPUs, 10,000 functions, a whole day.
# 15 M invocations: offered GPU utilisation ~0.50 (the load of the measured table).
run day-15m 'synthetic:functions=10000;invocations=15000000;seed=1;median_ms=5000' 1000 "$routers" --hint-slack 0
run day-15m-paper-gate 'synthetic:functions=10000;invocations=15000000;seed=1;median_ms=5000' 1000 ch-rlu --hint-slack 0 --gate-ceiling 0
# CH-BL at the former defaults (epsilon 0.25; rounded at random, and rounded up) and at
# epsilon 0.1 and 0: balance traded against cold starts.
run day-15m-eps025 'synthetic:functions=10000;invocations=15000000;seed=1;median_ms=5000' 1000 ch-bl --hint-slack 0 --epsilon 0.25
run day-15m-ceiling 'synthetic:functions=10000;invocations=15000000;seed=1;median_ms=5000' 1000 ch-bl --hint-slack 0 --epsilon 0.25 --fractional false
run day-15m-eps01 'synthetic:functions=10000;invocations=15000000;seed=1;median_ms=5000' 1000 ch-bl --hint-slack 0 --epsilon 0.1
run day-15m-eps0 'synthetic:functions=10000;invocations=15000000;seed=1;median_ms=5000' 1000 ch-bl --hint-slack 0 --epsilon 0
# The same day with another seed (the balance margin is not one day's luck), and with 8 probes.
run day-15m-seed2 'synthetic:functions=10000;invocations=15000000;seed=2;median_ms=5000' 1000 ch-bl,random --hint-slack 0
run day-15m-probes8 'synthetic:functions=10000;invocations=15000000;seed=1;median_ms=5000' 1000 ch-bl --hint-slack 0 --probes 8
# Exact loads (no report window): the window's effect on the rows; slower (one thread).
run day-15m-exact 'synthetic:functions=10000;invocations=15000000;seed=1;median_ms=5000' 1000 ch-bl --hint-slack 0 --report-ms 0
# 6 M invocations: a lighter day (utilisation 0.20).
run day-6m 'synthetic:functions=10000;invocations=6000000;seed=1;median_ms=5000' 1000 ch-bl,random --hint-slack 0
