#!/usr/bin/env bash
# Faults and attacks on one worker, each printed as one line "name: what happened". Measures any
# build (SLUICE=binary), so the same command gives the before and after figures of
# docs/reliability.md and docs/security.md:
#   poison       a function whose gpu_memory_mb fits no device: registration, its invocations,
#                and whether another GPU function still starts behind it; after DELETE; after
#                a restart
#   abandon      1,000 sync clients hang up after 0.5 s: how many of their invocations still ran,
#                and how long fresh calls then took
#   dead-idle    a sandbox exits while idle: the next two calls
#   restarts     60 queued async invocations (1 s each, one slot), three graceful restarts
#   store        a 0-byte store file; a second worker on the same data directory
#   api          100,000 nested arrays; a 100 MB Content-Length with no body; auth edge cases
# Usage: scripts/faults.sh [check...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/reliability/worker.sh
work=$(mktemp -d)
trap 'worker_stop KILL; rm -rf "$work"' EXIT
checks=${*:-poison abandon dead-idle restarts store api}
gen=scripts/reliability/loadgen.py

# code METHOD PATH [BODY] [MAX SECONDS] [CURL ARGS...]: the HTTP status (000 when none came).
code() {
  local m=$1 p=$2 b=${3:-} t=${4:-10}
  : >"$work/body"
  shift $(($# < 4 ? $# : 4))
  curl -s -o "$work/body" -w '%{http_code}' -m "$t" -X "$m" "$SLUICE_URL$p" \
    -H 'content-type: application/json' ${b:+-d "$b"} "$@" || true
}
body() { head -c 300 "$work/body" | tr '\n' ' '; }
queued() { curl -sf "$SLUICE_URL/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])'; }
async_id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <"$work/body"; }
status_of() {
  code GET "/v1/invocations/$1" >/dev/null
  python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["status"], r.get("attempts"), (r.get("error") or "")[:90])' <"$work/body"
}

poison() {
  worker_start "$work/poison"
  echo "poison: register gpu_memory_mb=10000000 on a 24 GiB device -> $(code POST /v1/functions \
    "{\"name\":\"big\",\"command\":[\"python3\",\"$FIXTURE\"],\"env\":{\"SLUICE_SDK\":\"$SDK\"},\"resources\":{\"gpu\":true,\"gpu_memory_mb\":10000000}}") $(body)"
  echo "poison: sync invoke of it (5 s client timeout) -> $(code POST /v1/functions/big/invoke '{}' 5) $(body)"
  local c id=
  c=$(code POST /v1/functions/big/invoke-async '{}')
  [ "$c" = 202 ] && id=$(async_id)
  echo "poison: async invoke -> $c${id:+ ($id)}"
  register small '' '{"gpu": true, "gpu_memory_mb": 100, "memory_mb": 256}'
  echo "poison: another GPU function behind it (20 s client timeout) -> $(code POST /v1/functions/small/invoke '{}' 20)"
  echo "poison: DELETE big -> $(code DELETE /v1/functions/big); queued afterwards: $(queued)"
  sleep 1
  [ -n "$id" ] && echo "poison: the async invocation after DELETE: $(status_of "$id")"
  worker_stop TERM
  worker_start "$work/poison" || { echo "poison: the restart failed"; return 0; }
  sleep 2
  [ -n "$id" ] && echo "poison: after a restart: $(status_of "$id"); queued: $(queued)"
  worker_stop TERM
}

abandon() {
  worker_start "$work/abandon" 'cpu_slots = 2'
  register s200
  code POST /v1/functions/s200/invoke '{}' 30 >/dev/null
  echo "abandon: $(python3 "$gen" abandon --url "$SLUICE_URL" --function s200 --count 1000 \
    --after-ms 500 --probe 3 --client-timeout 30 --input '{"do":"sleep","seconds":0.2}' | tr -d '\n ')"
  worker_stop KILL
}

dead_idle() {
  worker_start "$work/dead"
  register d
  echo "dead-idle: first call (the sandbox exits 0.2 s after answering) -> $(code POST /v1/functions/d/invoke '{"do":"exit_after","seconds":0.2}' 30)"
  sleep 1
  local a b
  a=$(code POST /v1/functions/d/invoke '{}' 30)
  b=$(code POST /v1/functions/d/invoke '{}' 30)
  echo "dead-idle: the next two calls -> $a $b"
  worker_stop TERM
}

restarts() {
  worker_start "$work/restarts" 'cpu_slots = 1'
  register s1
  local ids=() i
  for i in $(seq 60); do
    [ "$(code POST /v1/functions/s1/invoke-async '{"do":"sleep","seconds":1}')" = 202 ] && ids+=("$(async_id)")
  done
  for i in 1 2 3; do
    sleep 1
    worker_stop TERM
    worker_start "$work/restarts" 'cpu_slots = 1'
  done
  local deadline=$((SECONDS + 240)) left
  while :; do
    left=0
    for i in "${ids[@]}"; do
      code GET "/v1/invocations/$i" >/dev/null
      grep -q '"done":true' "$work/body" || left=$((left + 1))
    done
    [ "$left" = 0 ] || [ $SECONDS -gt $deadline ] && break
    sleep 2
  done
  local ok=0 failed=0 why=
  for i in "${ids[@]}"; do
    read -r st rest <<<"$(status_of "$i")"
    case $st in succeeded) ok=$((ok + 1)) ;; failed) failed=$((failed + 1)) why=$rest ;; esac
  done
  echo "restarts: ${#ids[@]} accepted, 3 graceful restarts: $ok succeeded, $failed failed, $left not done${why:+ (e.g. $why)}"
  worker_stop TERM
}

store() {
  worker_start "$work/store"
  register keep
  worker_stop TERM
  : >"$work/store/data/sluice.redb"
  if worker_start "$work/store" 2>/dev/null; then
    echo "store: 0-byte store file -> the worker started; functions: $(curl -s "$SLUICE_URL/v1/functions")"
    worker_stop TERM
  else
    echo "store: 0-byte store file -> refused: $(grep -i -m1 'error' "$work/store/worker.log" | cut -c1-220)"
  fi
  rm -rf "$work/store/data"
  worker_start "$work/store"
  local first=$WORKER_PID second
  SLUICE_LOG=warn "$SLUICE" worker --config "$work/store/worker.toml" --simulate-gpus 2>"$work/second.log" &
  second=$!
  sleep 3
  if kill -0 "$second" 2>/dev/null; then
    echo "store: a second worker on the same data directory -> still running after 3 s"
    kill -9 "$second"
  else
    echo "store: a second worker on the same data directory -> exited: $(grep -i -m1 'error' "$work/second.log" | cut -c1-200)"
  fi
  wait "$second" 2>/dev/null || true
  WORKER_PID=$first
  worker_stop TERM
}

api() {
  worker_start "$work/api" 'auth_token = " "' || echo "api: blank auth_token -> refused at start: $(grep -i -m1 'token' "$work/api/worker.log" | cut -c1-160)"
  if [ -n "${WORKER_PID:-}" ]; then
    echo "api: blank auth_token -> started; GET /v1/status with 'Bearer  ' -> $(code GET /v1/status '' 5 -H 'authorization: Bearer  ')"
    worker_stop TERM
  fi
  rm -rf "$work/api"
  worker_start "$work/api2" 'auth_token = "s3cret"'
  register e '' 2>/dev/null || true
  echo "api: 'bearer s3cret' (lower-case scheme) -> $(code GET /v1/status '' 5 -H 'authorization: bearer s3cret')"
  echo "api: unknown route without a token -> $(code GET /v1/nope '' 5)"
  echo "api: Content-Length 100000000, no body, no token -> $(code POST /v1/functions/e/invoke '' 5 -H 'content-length: 100000000')"
  worker_stop TERM
  SLUICE_AUTH_TOKEN=fromenv worker_start "$work/api3"
  echo "api: SLUICE_AUTH_TOKEN=fromenv, no token sent -> $(code GET /v1/status '' 5)"
  worker_stop TERM
  worker_start "$work/api4"
  register e
  python3 -c 'print("["*100000 + "]"*100000)' >"$work/deep.json"
  echo "api: 100,000 nested arrays to a Python function -> $(code POST /v1/functions/e/invoke '' 30 --data-binary "@$work/deep.json") $(body | cut -c1-120)"
  echo "api: Content-Length 100000000, no body -> $(code POST /v1/functions/e/invoke '' 5 -H 'content-length: 100000000')"
  echo "api: the function afterwards -> $(code POST /v1/functions/e/invoke '{}' 30)"
  worker_stop TERM
}

for c in $checks; do
  case $c in
  poison) poison ;;
  abandon) abandon ;;
  dead-idle) dead_idle ;;
  restarts) restarts ;;
  store) store ;;
  api) api ;;
  *) echo "unknown check $c" >&2 && exit 2 ;;
  esac
done
