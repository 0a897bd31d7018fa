"""Profiles each OCR stage: latency per batch size and CPU share, and the stage's memory.

``python3 profile_stages.py [--batches 1,2,4,8] [--threads 1,2] [--reps 5] [--clock wall|cpu]
[SAMPLE...]`` prints CSV ``stage,batch,share,latency_ms,mem_mb`` (default samples: ``samples/*.png``).

Each (stage, thread count) runs in a fresh child process that loads only that stage's model with
``SLUICE_OCR_THREADS`` threads, runs one warm-up batch, then for each batch size ``reps`` timed calls
of the stage's batch handler (the same function the stage process serves; the HTTP hop is not
included). Rep ``r`` of batch size ``b`` takes samples ``r*b .. r*b+b-1`` cyclically, so every sample
appears equally often; ``latency_ms`` is the mean over the reps. cls and rec get the det and cls
outputs of the samples, computed beforehand in this (parent) process. ``--clock cpu`` reports CPU
time instead of elapsed time (see ``CLOCKS``).

``share`` = threads / the cores of this machine: with no GPU here, a CPU quota stands in for the
SM share Camelot gives a stage on an MPS-shared GPU (1 thread of 2 cores = 0.5).
``mem_mb`` = the child's peak resident set (``ru_maxrss``) after that batch size: the memory one
instance of the stage needs, Python, onnxruntime and the model included.
The machine's core count and load average go to stderr: other work on the cores skews the figures.
"""

import argparse
import glob
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ocr.stages import STAGES, make_handler  # noqa: E402

# wall: elapsed time (the latency); cpu: CPU seconds of the process, all threads summed (with one
# thread, the latency on an otherwise idle core: a steadier figure on a shared machine).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def child(stage, threads, batches, reps, input_dir, clock):
    """Runs in the child process: prints one CSV row per batch size."""
    names = sorted(os.listdir(input_dir))
    inputs = []
    for name in names:
        with open(os.path.join(input_dir, name), "rb") as f:
            inputs.append(f.read())
    handler = make_handler(stage, n_threads=threads)
    share = threads / os.cpu_count()
    for b in batches:
        handler([[inputs[k % len(inputs)]] for k in range(b)])  # warm-up at this shape mix
        total = 0.0
        for r in range(reps):
            items = [[inputs[(r * b + k) % len(inputs)]] for k in range(b)]
            t0 = clock()
            outs = handler(items)
            total += clock() - t0
            failed = [o for o in outs if isinstance(o, Exception)]
            if failed:
                raise RuntimeError("%s failed on a sample: %s" % (stage, failed[0]))
        mem_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("%s,%d,%.3f,%.1f,%.0f" % (stage, b, share, total / reps * 1000, mem_mb), flush=True)


def stage_inputs(samples, workdir):
    """Writes each stage's inputs (image bytes, det payloads, cls payloads) under ``workdir``."""
    blobs = []
    for path in samples:
        with open(path, "rb") as f:
            blobs.append(f.read())
    dirs = {}
    for stage in STAGES:
        dirs[stage] = os.path.join(workdir, stage)
        os.mkdir(dirs[stage])
        for i, blob in enumerate(blobs):
            with open(os.path.join(dirs[stage], "%03d" % i), "wb") as f:
                f.write(blob)
        if stage != STAGES[-1]:
            outs = make_handler(stage)([[b] for b in blobs])
            bad = [(p, o) for p, o in zip(samples, outs, strict=True) if isinstance(o, Exception)]
            if bad:
                raise SystemExit("%s failed on %s: %s" % (stage, bad[0][0], bad[0][1]))
            blobs = outs
    return dirs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("samples", nargs="*")
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    ap.add_argument("--child", nargs=3, metavar=("STAGE", "THREADS", "INPUT_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.reps < 1 or min(batches) < 1:
        ap.error("--reps and --batches must be positive")
    if args.child:
        stage, threads, input_dir = args.child
        child(stage, int(threads), batches, args.reps, input_dir, CLOCKS[args.clock])
        return
    stages = args.stages.split(",")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        ap.error("unknown stage(s) %s" % ", ".join(unknown))
    samples = args.samples or sorted(glob.glob(os.path.join(HERE, "samples", "*.png")))
    print("# %d cores, load average %.2f at start" % (os.cpu_count(), os.getloadavg()[0]), file=sys.stderr)
    print("stage,batch,share,latency_ms,mem_mb", flush=True)
    with tempfile.TemporaryDirectory() as work:
        dirs = stage_inputs(samples, work)
        for stage in stages:
            for threads in (int(t) for t in args.threads.split(",")):
                cmd = [sys.executable, os.path.abspath(__file__), "--child", stage, str(threads), dirs[stage]]
                cmd += ["--batches", args.batches, "--reps", str(args.reps), "--clock", args.clock]
                subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    print("# load average %.2f at the end" % os.getloadavg()[0], file=sys.stderr)


if __name__ == "__main__":
    main()
