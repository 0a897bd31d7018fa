# Helpers shared by the cluster scripts (sourced, not run): start etcd and nats-server on free
# loopback ports with temporary data, workers and routers from a built sluice binary, and stop
# everything on exit. Every wait is bounded.

# Debian installs nats-server in /usr/sbin, which is not on a user's PATH unless they are root.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL SECONDS: until URL answers 2xx, or fail.
wait_http() {
  local url=$1 secs=${2:-20} i
  for i in $(seq $((secs * 10))); do curl -sf "$url" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "no answer from $url within ${secs}s" >&2; return 1
}

PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; sleep 0.2; }

# start_etcd DIR: sets ETCD_URL, ETCD_PID (tries up to 8 port pairs).
start_etcd() {
  local dir=$1 try c p
  for try in $(seq 8); do
    c=$(free_port); p=$(free_port)
    etcd --name c --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$c" \
      --advertise-client-urls "http://127.0.0.1:$c" --listen-peer-urls "http://127.0.0.1:$p" \
      --initial-advertise-peer-urls "http://127.0.0.1:$p" --initial-cluster "c=http://127.0.0.1:$p" \
      > "$dir/etcd.log" 2>&1 &
    ETCD_PID=$!; disown "$ETCD_PID"; PIDS+=("$ETCD_PID")
    if wait_http "http://127.0.0.1:$c/health" 10 2>/dev/null; then ETCD_URL="http://127.0.0.1:$c"; return 0; fi
    kill -9 "$ETCD_PID" 2>/dev/null || true
  done
  echo "etcd did not start" >&2; return 1
}

# start_nats DIR: sets NATS_URL, NATS_PID.
start_nats() {
  local dir=$1 try port i
  for try in $(seq 8); do
    port=$(free_port)
    nats-server -js -sd "$dir/nats" -a 127.0.0.1 -p "$port" > "$dir/nats.log" 2>&1 &
    NATS_PID=$!; disown "$NATS_PID"; PIDS+=("$NATS_PID")
    for i in $(seq 50); do
      if grep -q "Server is ready" "$dir/nats.log" 2>/dev/null; then NATS_URL="nats://127.0.0.1:$port"; return 0; fi
      sleep 0.1
    done
    kill -9 "$NATS_PID" 2>/dev/null || true
  done
  echo "nats-server did not start" >&2; return 1
}

# start_worker BIN DIR NAME [extra TOML lines]: sets WORKER_URL, WORKER_PID.
start_worker() {
  local bin=$1 dir=$2 name=$3 extra=${4:-} i addr
  mkdir -p "$dir/$name"
  printf 'listen = "127.0.0.1:0"\ndata_dir = "%s"\n%s\n[gpu]\nforce_simulated = true\n[cluster]\netcd = ["%s"]\nlease_ttl_s = %s\n' \
    "$dir/$name/data" "$extra" "$ETCD_URL" "${LEASE_TTL:-3}" > "$dir/$name/worker.toml"
  SLUICE_LOG=${SLUICE_LOG:-warn} "$bin" worker --config "$dir/$name/worker.toml" 2> "$dir/$name/worker.log" &
  WORKER_PID=$!; disown "$WORKER_PID"; PIDS+=("$WORKER_PID")
  for i in $(seq 300); do
    addr=$(grep -o 'sluice worker on http://[0-9.:]*' "$dir/$name/worker.log" 2>/dev/null | head -1 | sed 's|.*http://||; s|:$||' || true)
    [ -n "$addr" ] && { WORKER_URL="http://$addr"; return 0; }
    sleep 0.1
  done
  echo "worker $name did not start: $(tail -5 "$dir/$name/worker.log")" >&2; return 1
}

# start_router BIN DIR NAME [extra TOML]: sets ROUTER_URL, ROUTER_PID.
start_router() {
  local bin=$1 dir=$2 name=$3 extra=${4:-} i
  mkdir -p "$dir/$name"
  printf 'listen = "127.0.0.1:0"\netcd = ["%s"]\nnats = "%s"\nid = "%s"\n%s\n' "$ETCD_URL" "$NATS_URL" "$name" "$extra" \
    > "$dir/$name/router.toml"
  rm -f "$dir/$name/addr"
  SLUICE_LOG=${SLUICE_LOG:-warn} "$bin" router --config "$dir/$name/router.toml" --addr-file "$dir/$name/addr" \
    2> "$dir/$name/router.log" &
  ROUTER_PID=$!; disown "$ROUTER_PID"; PIDS+=("$ROUTER_PID")
  for i in $(seq 400); do
    [ -s "$dir/$name/addr" ] && { ROUTER_URL="http://$(cat "$dir/$name/addr")"; return 0; }
    sleep 0.1
  done
  echo "router $name did not start: $(tail -5 "$dir/$name/router.log")" >&2; return 1
}

# workers_seen URL: how many workers the router routes to.
workers_seen() { curl -sf "$1/v1/status" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))' 2>/dev/null || echo 0; }
