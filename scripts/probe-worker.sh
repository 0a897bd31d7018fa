#!/usr/bin/env bash
# The isolation probe through a real worker: starts `sluice worker` (the binary given, default
# this checkout's release build) with a config holding an auth token and a 0600 secret beside
# it, registers a victim function and the probe (crates/sluice-sandbox/tests/fixtures/probe.py,
# with network off and on), and prints the probe's table as markdown. The targets are the
# worker's own: its store file, the victim's sandbox directory and socket, its TCP port on
# 127.0.0.1. Run it against an older build to see what changed.
# Usage: scripts/probe-worker.sh [path/to/sluice]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p sluice-cli
  bin=$repo/target/release/sluice
fi
# Outside /tmp, which the sandboxes of older builds covered with their private one.
work=$(mktemp -d -p /var/tmp)
chmod 755 "$work"
cp crates/sluice-sandbox/tests/fixtures/probe.py "$work/probe.py"
mkdir -p "$work/etc"
# Port 0: the worker picks a free port and writes it to <data_dir>/listen.addr.
printf 'listen = "127.0.0.1:0"\ndata_dir = "%s/data"\nauth_token = "s3cret-token"\n[gpu]\nforce_simulated = true\n' \
  "$work" > "$work/etc/worker.toml"
chmod 600 "$work/etc/worker.toml"
echo "s3cret" > "$work/etc/secret" && chmod 600 "$work/etc/secret"
SLUICE=$bin . scripts/reliability/worker.sh
SLUICE_LOG=warn "$bin" worker --config "$work/etc/worker.toml" 2> "$work/worker.log" &
WORKER_PID=$!
trap 'worker_stop; rm -rf "$work"' EXIT
await_address "$work/data" "$work/worker.log"
url=http://$WORKER_ADDR
port=${WORKER_ADDR##*:}
auth=(-H "Authorization: Bearer s3cret-token" -H 'Content-Type: application/json')
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
register() { curl -sf "${auth[@]}" -X POST -d "$1" "$url/v1/functions" >/dev/null; }
register "{\"name\":\"victim\",\"command\":[\"python3\",\"$work/probe.py\"],\"resources\":{\"memory_mb\":256}}"
curl -sf "${auth[@]}" -X POST -d '{"op":"echo"}' "$url/v1/functions/victim/invoke" >/dev/null
victim=$(ls -d "$work"/data/sandboxes/*/ | head -1)
socket=$(find "$victim" -name sluice.sock | head -1)
vpid=$(pgrep -f "$work/probe.py" | head -1 || true)
for net in false true; do
  register "{\"name\":\"probe-$net\",\"command\":[\"python3\",\"$work/probe.py\"],\"resources\":{\"memory_mb\":256,\"pids\":64,\"network\":$net}}"
  targets=$(python3 -c 'import json,sys; print(json.dumps({"op":"probe","secret":sys.argv[1],"store":sys.argv[2],
    "other_tmp":sys.argv[3]+"tmp","other_socket_dir":sys.argv[4],"other_socket":sys.argv[5],
    "other_pid":int(sys.argv[6] or 0),"port":int(sys.argv[7]),"tmp_mb":64,"pids":64}))' \
    "$work/etc/secret" "$work/data/sluice.redb" "$victim" "$(dirname "$socket")" "$socket" "$vpid" "$port")
  echo
  echo "#### $("$bin" --version), network $net"
  echo
  curl -sf "${auth[@]}" -X POST -d "$targets" "$url/v1/functions/probe-$net/invoke" | python3 -c '
import json, sys
t = json.load(sys.stdin)
print("| attempt | result | detail |\n|---|---|---|")
for k, r in t.items():
    d = r["detail"].replace("|", "/").replace("\n", " ")
    verdict = "**escaped**" if r["escaped"] else "blocked"
    print("| %s | %s | %s |" % (k, verdict, d))'
done
