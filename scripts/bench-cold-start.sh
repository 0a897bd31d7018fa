#!/usr/bin/env bash
# Cold start of a no-op sandbox through the worker, on this machine: N times, register (update)
# the Rust no-op function (crates/sluice-fn/examples/noop.rs) so that its next invocation needs
# a new sandbox, invoke it, and read the worker's x-sluice-cold-start-ms (sandbox start until
# /ready answers). Prints the median, p90 and mean in ms.
# Usage: [NOOP=path/to/noop] scripts/bench-cold-start.sh [N, default 30] [isolation: auto|bubblewrap|unshare, default auto]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-30}
iso=${2:-auto}
cargo build --release -q -p sluice-cli -p sluice-fn --examples
cargo build --release -q -p sluice-cli
. scripts/reliability/worker.sh
work=$(mktemp -d)
chmod 755 "$work"
trap 'worker_stop; rm -rf "$work"' EXIT
worker_start "$work" "isolation = \"$iso\""
url=$SLUICE_URL
noop=${NOOP:-$PWD/target/release/examples/noop}
for i in $(seq "$n"); do
  body="{\"name\":\"noop\",\"command\":[\"$noop\"],\"env\":{\"RUN\":\"$i\"},\"resources\":{\"memory_mb\":64}}"
  curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "$url/v1/functions" >/dev/null
  curl -sf -D - -o /dev/null -X POST -d '{}' "$url/v1/functions/noop/invoke" \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="x-sluice-cold-start-ms" {print $2}'
done | sort -g | awk -v iso="$(grep -o 'sandboxes: [a-z ]*' "$work/worker.log" | head -1)" '
  { v[NR] = $1; s += $1 }
  END { if (NR == 0) { print "no cold starts measured"; exit 1 }
        printf "cold start of a no-op sandbox (%d runs, %s): median %.1f ms, p90 %.1f ms, mean %.1f ms\n",
               NR, iso, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], s / NR }'
