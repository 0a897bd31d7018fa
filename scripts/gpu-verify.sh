#!/usr/bin/env bash
# Verifies the real-GPU paths (managed-memory shim, NVML/MIG, MPS, CUDA IPC) on a machine with an NVIDIA GPU (CUDA 12 driver,
# python3 with torch; cupy optional) and writes every reading to one file.
# NOT YET RUN on a GPU: docs/gpu.md lists what each step checks.
#
#   scripts/gpu-verify.sh [results-file]      (default: out/gpu-verify-results.txt)
#
# Steps: build; the shim's tests and the worker's device tests; PyTorch (and CuPy) under the
# shim with STATS checked; prefetch time per GB both ways; oversubscription (1.5x device memory
# through the shim); MPS at 25/50/100 % SM share; NVML readings in the worker's /metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/gpu-verify-results.txt}
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
log() { echo "$*" | tee -a "$OUT"; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log "# gpu-verify $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_mode --format=csv | tee -a "$OUT"

cargo build --release -p sluice-cli -p sluice-shim
SHIM=$PWD/target/release/libsluice_shim.so
cargo test -p sluice-shim 2>&1 | grep -E '^test result' | tee -a "$OUT"
cargo test -p sluice-worker devices:: 2>&1 | grep -E '^test result' | tee -a "$OUT"

# One control request to a shim socket, from Python (no socat needed).
cat > "$WORK/ctl.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((sys.argv[2] + "\n").encode())
print(s.makefile().readline().strip())
PY

# PyTorch under the shim: allocations are recorded, prefetch both ways, per-GB timing.
cat > "$WORK/torch_shim.py" <<'PY'
import os, subprocess, sys, time, torch
sock, ctl, gib = os.environ["SLUICE_SHIM_SOCKET"], sys.argv[1], int(sys.argv[2])
def cmd(c): return subprocess.run([sys.executable, ctl, sock, c], capture_output=True, text=True).stdout.strip()
x = torch.ones(gib << 28, device="cuda")          # gib GiB of float32
torch.cuda.synchronize()
print("alloc", gib, "GiB; torch mem_get_info", torch.cuda.mem_get_info())
print("STATS", cmd("STATS"))
for direction in ["host", "device", "host", "device"]:
    t = time.perf_counter(); r = cmd("PREFETCH " + direction); dt = time.perf_counter() - t
    print("PREFETCH", direction, r, "client_s=%.3f" % dt)
print("ADVISE device", cmd("ADVISE device"))
t = time.perf_counter(); y = (x * 2).sum().item(); torch.cuda.synchronize()
print("compute after prefetch ok", y == 2 * x.numel(), "s=%.3f" % (time.perf_counter() - t))
PY
for GIB in 1 4; do
  log "## torch under the shim, ${GIB} GiB"
  SLUICE_SHIM_SOCKET=$WORK/torch.sock SLUICE_SHIM_BUDGET_BYTES=$((16 << 30)) LD_PRELOAD=$SHIM \
    python3 "$WORK/torch_shim.py" "$WORK/ctl.py" "$GIB" 2>&1 | tee -a "$OUT"
done

log "## cupy under the shim"
SLUICE_SHIM_SOCKET=$WORK/cupy.sock LD_PRELOAD=$SHIM python3 - "$WORK/ctl.py" <<'PY' 2>&1 | tee -a "$OUT" || true
import os, subprocess, sys, cupy
a = cupy.arange(1 << 26, dtype=cupy.float32); print("cupy sum", float(a.sum()))
print("STATS", subprocess.run([sys.executable, sys.argv[1], os.environ["SLUICE_SHIM_SOCKET"], "STATS"], capture_output=True, text=True).stdout.strip())
PY

# Oversubscription: 1.5x the device's memory through the shim, touched in turn.
log "## oversubscription 1.5x"
LD_PRELOAD=$SHIM SLUICE_SHIM_SOCKET=$WORK/over.sock python3 - <<'PY' 2>&1 | tee -a "$OUT"
import time, torch
free, total = torch.cuda.mem_get_info()
chunk = 1 << 30; n = int(total * 1.5) // chunk
t = time.perf_counter(); xs = [torch.ones(chunk // 4, device="cuda") for _ in range(n)]
for x in xs: x.mul_(2)
torch.cuda.synchronize()
print("allocated %d GiB on a %.1f GiB device; touch-all s=%.2f; ok=%s" % (n, total / 2**30, time.perf_counter() - t, all(bool((x == 2).all()) for x in xs)))
PY

# MPS: one matmul loop per SM share, throughput relative to 100 %.
log "## MPS SM shares"
export CUDA_MPS_PIPE_DIRECTORY=$WORK/mps/pipe CUDA_MPS_LOG_DIRECTORY=$WORK/mps/log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
nvidia-cuda-mps-control -d
for PCT in 100 50 25; do
  CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=$PCT python3 - "$PCT" <<'PY' 2>&1 | tee -a "$OUT"
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda"); torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(50): a @ a
torch.cuda.synchronize(); dt = time.perf_counter() - t
print("mps share %s%%: %.1f TFLOP/s" % (sys.argv[1], 50 * 2 * 8192**3 / dt / 1e12))
PY
done
echo quit | nvidia-cuda-mps-control
unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY

# NVML readings in the worker's /metrics while a GPU process runs.
log "## worker /metrics (NVML)"
cat > "$WORK/worker.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$WORK/data"
[gpu]
shim = true
shim_path = "$SHIM"
TOML
./target/release/sluice worker --config "$WORK/worker.toml" > "$WORK/worker.log" 2>&1 &
WPID=$!
python3 -c 'import torch,time; x=torch.ones(1<<28, device="cuda"); time.sleep(8)' &
sleep 5
# Port 0: the worker wrote the port it bound to <data_dir>/listen.addr.
ADDR=$(cat "$WORK/data/listen.addr" 2>/dev/null || echo 127.0.0.1:0)
curl -s "$ADDR/metrics" | grep -E '^sluice_gpu_' | tee -a "$OUT"
curl -s "$ADDR/v1/status" 2>/dev/null | head -c 2000 | tee -a "$OUT" || true
kill "$WPID"; wait || true
log "# done; results in $OUT"
