#!/usr/bin/env bash
# Hand-off inside a running worker: the two-stage pipeline examples/pipelines/passthrough (gen makes
# a payload, sum reads every byte) deployed twice on one (simulated) GPU, once handing over in shared
# memory, once by copy through the worker; for each payload size, REPEATS sequential requests to each.
# Prints the median end-to-end latency and the median time spent in `sum` (queue + service, which
# includes reading the payload) per size and path.
# Usage: scripts/bench-handoff-live.sh [repeats, default 15] [sizes in bytes, default 64KiB..64MiB]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-15}
sizes=${2:-65536,1048576,16777216,67108864}
cargo build --release -q -p sluice-cli
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop; rm -rf "$work"' EXIT
worker_start "$work" 'max_body_bytes = 134217728' 'max_response_bytes = 134217728'
for kind in shm copy; do
  ./target/release/sluice pipeline create examples/pipelines/passthrough/pipeline-$kind.yaml >/dev/null
done
python3 - "$SLUICE_URL" "$repeats" "$sizes" <<'PY'
import http.client, statistics, sys, time, urllib.parse, zlib
url, repeats, sizes = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")]
u = urllib.parse.urlparse(url)
pattern = bytes(range(256)) * 4096

def call(pipeline, n):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    t = time.perf_counter()
    c.request("POST", "/v1/pipelines/%s/invoke" % pipeline, body=str(n).encode())
    r = c.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t) * 1e3
    if r.status != 200:
        raise SystemExit("%s %d: %s" % (pipeline, r.status, body[:300]))
    stages = dict(p.split("=") for p in r.getheader("x-sluice-stages").split(","))
    sum_ms = float(stages["sum"].split("/")[1])
    return ms, sum_ms, body

print("| payload | shm e2e ms | copy e2e ms | copy / shm | shm `sum` ms | copy `sum` ms |")
print("|---:|---:|---:|---:|---:|---:|")
for n in sizes:
    whole, rest = divmod(n, len(pattern))
    want = b"%d %d" % (n, zlib.crc32(pattern * whole + pattern[:rest]))
    res = {}
    for kind in ("shm", "copy"):
        call("pass-" + kind, n)
        runs = [call("pass-" + kind, n) for _ in range(repeats)]
        assert all(b == want for _, _, b in runs), (kind, runs[0][2], want)
        res[kind] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    label = "%d KiB" % (n >> 10) if n < 1 << 20 else "%d MiB" % (n >> 20)
    print("| %s | %.2f | %.2f | %.2f× | %.2f | %.2f |" % (
        label, res["shm"][0], res["copy"][0], res["copy"][0] / res["shm"][0], res["shm"][1], res["copy"][1]))
PY
curl -s "$SLUICE_URL/metrics" | grep '^sluice_pipeline_handoffs_total' || true
