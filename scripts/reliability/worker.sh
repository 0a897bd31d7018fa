# Sourced by scripts/overload.sh, idle-flood.sh, faults.sh, chaos.sh, the bench-*.sh scripts,
# compare-live-sim.sh and probe-worker.sh: start a worker on port 0 with a private data
# directory, find the address it bound (`<data_dir>/listen.addr`), stop it.
#
# SLUICE names the binary under test (default: target/release/sluice, built if missing), so the
# same scripts measure an older build: SLUICE=/path/to/old/sluice scripts/overload.sh.

SLUICE=${SLUICE:-}
if [ -z "$SLUICE" ]; then
  cargo build --release -q -p sluice-cli
  SLUICE=target/release/sluice
fi
FIXTURE="$PWD/crates/sluice-cli/tests/fixtures/functions/behaviours.py"
SDK="$PWD/sdk/python"

# worker_start WORKDIR [TOML LINE]...: writes WORKDIR/worker.toml (top-level keys first, then
# tables, as given), starts the worker with simulated GPUs, waits for its address (the
# `listen.addr` file in the data directory, or the start line of builds without it) and exports
# WORKER_PID, WORKER_ADDR and SLUICE_URL. The worker's stderr goes to WORKDIR/worker.log.
worker_start() {
  local work=$1
  shift
  mkdir -p "$work"
  {
    echo 'listen = "127.0.0.1:0"'
    echo "data_dir = \"$work/data\""
    printf '%s\n' "$@"
  } >"$work/worker.toml"
  rm -f "$work/data/listen.addr"
  touch "$work/worker.log"
  local log_start
  log_start=$(stat -c %s "$work/worker.log")
  # WORKER_NOFILE, if set, is the worker's descriptor limit (ulimit -n).
  SLUICE_LOG=${SLUICE_LOG:-warn} bash -c 'ulimit -n "${WORKER_NOFILE:-$(ulimit -n)}" && exec "$@"' _ \
    "$SLUICE" worker --config "$work/worker.toml" --simulate-gpus 2>>"$work/worker.log" &
  WORKER_PID=$!
  await_address "$work/data" "$work/worker.log" "$log_start" || return 1
  export SLUICE_URL=http://$WORKER_ADDR WORKER_PID WORKER_ADDR
  for _ in $(seq 100); do
    curl -sf -o /dev/null "$SLUICE_URL/healthz" && return 0
    sleep 0.1
  done
  echo "the worker does not answer /healthz" >&2
  worker_stop KILL
  return 1
}

# await_address DATA_DIR LOG [LOG_START]: waits (up to 60 s) until the worker WORKER_PID has
# written DATA_DIR/listen.addr (builds without it: its start line in LOG after byte LOG_START)
# and sets WORKER_ADDR; stops the worker and fails if it exits or never reports an address.
await_address() {
  local data=$1 log=$2 log_start=${3:-0}
  WORKER_ADDR=
  for _ in $(seq 600); do
    if [ -s "$data/listen.addr" ]; then
      WORKER_ADDR=$(cat "$data/listen.addr")
    else
      WORKER_ADDR=$(tail -c +$((log_start + 1)) "$log" | grep -o 'sluice worker on http://[0-9.:]*' |
        tail -1 | sed -e 's|.*http://||' -e 's|:$||' || true)
    fi
    [ -n "$WORKER_ADDR" ] && return 0
    if ! kill -0 "$WORKER_PID" 2>/dev/null; then
      echo "the worker exited: $(tail -5 "$log")" >&2
      wait "$WORKER_PID" 2>/dev/null || true
      WORKER_PID=
      return 1
    fi
    sleep 0.1
  done
  echo "the worker did not report its address" >&2
  worker_stop KILL
  return 1
}

# worker_stop [SIGNAL]: signals the worker (TERM by default) and waits up to 60 s for it to exit.
worker_stop() {
  local sig=${1:-TERM}
  [ -n "${WORKER_PID:-}" ] || return 0
  kill -"$sig" "$WORKER_PID" 2>/dev/null || true
  for _ in $(seq 600); do
    kill -0 "$WORKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$WORKER_PID" 2>/dev/null || true
  wait "$WORKER_PID" 2>/dev/null || true
  WORKER_PID=
}

# register NAME [JSON FIELDS] [RESOURCES]: registers a behaviours.py test function (sleep, crash,
# echo, ...) with extra top-level spec fields and resources, e.g.
# register s50 '"timeout_ms": 2000' '{"gpu": true, "gpu_memory_mb": 100}'.
register() {
  local name=$1 extra=${2:-} resources=${3:-'{"memory_mb": 256}'}
  [ -n "$extra" ] && extra=", $extra"
  curl -sf -o /dev/null -X POST "$SLUICE_URL/v1/functions" -H 'content-type: application/json' \
    -d "{\"name\": \"$name\", \"command\": [\"python3\", \"$FIXTURE\"], \"env\": {\"SLUICE_SDK\": \"$SDK\"},
         \"resources\": $resources$extra}"
}
