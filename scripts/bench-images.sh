#!/usr/bin/env bash
# Image functions against host functions, side by side in one worker on this machine:
#  - warm invocation: the Rust no-op from the host (target/release/examples/noop) and the same
#    binary from an image (it and the libraries ldd lists, in an OCI layout), invoked
#    alternately N times each over one keep-alive connection; p50/p90 of each and the ratio;
#  - cold start (root already unpacked): each function re-registered before each invocation
#    (a new sandbox), alternately, x-sluice-cold-start-ms; medians and the ratio;
#  - import + unpack through the API of the Debian image scripts/debian-image.sh builds (when
#    out/debian-image/layout exists, or DEBIAN=1 to build it: root, about a minute, ~300 MB), the
#    worker pinned to 2 cores (CPUS, default 0,1); then re-registering it (no unpack).
# Usage: scripts/bench-images.sh [N warm, default 2000] [N cold, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
warm=${1:-2000}
cold=${2:-30}
CPUS=${CPUS:-0,1}
cargo build --release -q -p sluice-cli
cargo build --release -q -p sluice-fn --examples
if [ "${DEBIAN:-0}" = 1 ] && [ ! -f out/debian-image/layout/index.json ]; then
  scripts/debian-image.sh >/dev/null
fi
work=$(mktemp -d)
chmod 755 "$work"
debian_dir=""
[ -f out/debian-image/layout/index.json ] && debian_dir="$PWD/out/debian-image"
SLUICE=target/release/sluice
. scripts/reliability/worker.sh
trap 'worker_stop TERM; rm -rf "$work"' EXIT
mkdir -p "$work/imports"
dirs="\"$work/imports\""
[ -n "$debian_dir" ] && dirs="$dirs, \"$debian_dir\""
worker_start "$work" 'start_timeout_ms = 20000' '[images]' "import_dirs = [$dirs]"
taskset -apc "$CPUS" "$WORKER_PID" >/dev/null
python3 - "$SLUICE_URL" "$PWD/target/release/examples/noop" "$work/imports/noop" "$warm" "$cold" "$debian_dir" "$work/data" <<'PY'
import hashlib, http.client, io, json, os, statistics, subprocess, sys, tarfile, time, urllib.parse

url, noop, layout_dir, n_warm, n_cold, debian, data = sys.argv[1:8]
n_warm, n_cold = int(n_warm), int(n_cold)
host, port = urllib.parse.urlparse(url).netloc.split(":")
conn = http.client.HTTPConnection(host, int(port), timeout=600)

def call(method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status, data, {k.lower(): v for k, v in r.getheaders()}

def blob(d, data):
    h = hashlib.sha256(data).hexdigest()
    os.makedirs(f"{d}/blobs/sha256", exist_ok=True)
    open(f"{d}/blobs/sha256/{h}", "wb").write(data)
    return "sha256:" + h

def layer(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, dereference=True) as t:
        for path, src in files:
            t.add(src, arcname=path)
    return buf.getvalue()

libs = [l.split("=>")[-1].split()[0] for l in subprocess.check_output(["ldd", noop], text=True).splitlines()
        if "/" in l]
libs = [l for l in libs if l.startswith("/")]
base = layer([(l.lstrip("/"), l) for l in libs])
fn = layer([("usr/local/bin/noop", noop)])
diff = [blob(layout_dir, base), blob(layout_dir, fn)]
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff},
                  "config": {"Entrypoint": ["/usr/local/bin/noop"]}}).encode()
man = json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": blob(layout_dir, cfg), "size": len(cfg)}, "layers": [
    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(b)}
    for d, b in zip(diff, [base, fn])]}).encode()
md = blob(layout_dir, man)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "noop"}}]},
    open(f"{layout_dir}/index.json", "w"))
open(f"{layout_dir}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')

s, b, _ = call("POST", "/v1/images", {"source": "oci-layout:noop", "ref": "noop"})
assert s in (200, 201), b
digest = json.loads(b)["digest"]

def spec(name, image, run=0):
    s = {"name": name, "env": {"RUN": str(run)}, "resources": {"memory_mb": 64}}
    if image:
        s["image"] = {"digest": digest}
    else:
        s["command"] = [noop]
    return s

for name, image in [("host", False), ("img", True)]:
    s, b, _ = call("POST", "/v1/functions", spec(name, image))
    assert s in (200, 201), b
    s, b, _ = call("POST", f"/v1/functions/{name}/invoke", {})
    assert s == 200, b

def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]

# Warm: alternate host and image invocations over one connection.
lat = {"host": [], "img": []}
for i in range(n_warm):
    for name in ("host", "img") if i % 2 == 0 else ("img", "host"):
        t = time.perf_counter()
        s, b, _ = call("POST", f"/v1/functions/{name}/invoke", {})
        lat[name].append((time.perf_counter() - t) * 1e3)
        assert s == 200, b
h50, i50 = statistics.median(lat["host"]), statistics.median(lat["img"])
print(f"warm invocation, {n_warm} each, alternating, end to end over HTTP: host p50 {h50:.3f} ms "
      f"(p90 {pct(lat['host'], .9):.3f}), image p50 {i50:.3f} ms (p90 {pct(lat['img'], .9):.3f}); "
      f"image/host p50 = {i50 / h50:.3f}")

# Cold: re-register (a new spec retires the old sandbox), invoke, read the cold start.
cs = {"host": [], "img": []}
for i in range(n_cold):
    for name, image in ([("host", False), ("img", True)] if i % 2 == 0 else [("img", True), ("host", False)]):
        s, b, _ = call("POST", "/v1/functions", spec(name, image, i + 1))
        assert s == 200, b
        s, b, h = call("POST", f"/v1/functions/{name}/invoke", {})
        assert s == 200, b
        cs[name].append(float(h["x-sluice-cold-start-ms"]))
hc, ic = statistics.median(cs["host"]), statistics.median(cs["img"])
print(f"cold start, {n_cold} each, alternating (root already unpacked): host median {hc:.1f} ms "
      f"(p90 {pct(cs['host'], .9):.1f}), image median {ic:.1f} ms (p90 {pct(cs['img'], .9):.1f}); "
      f"image/host = {ic / hc:.3f}")

if debian:
    t = time.perf_counter()
    s, b, _ = call("POST", "/v1/images", {"source": f"oci-layout:{debian}/layout", "ref": "debian"})
    imp = time.perf_counter() - t
    assert s in (200, 201), b
    d = json.loads(b)["digest"]
    roots = f"{data}/images/roots"
    before = set(os.listdir(roots))
    t = time.perf_counter()
    s, b, _ = call("POST", "/v1/functions", {"name": "deb", "image": {"digest": d}, "command": ["/bin/true"]})
    reg = time.perf_counter() - t
    assert s in (200, 201), b
    unpacked = set(os.listdir(roots)) - before
    t = time.perf_counter()
    s, b, _ = call("POST", "/v1/functions", {"name": "deb", "image": {"source": f"oci-layout:{debian}/layout",
                                                              "ref": "debian"}, "command": ["/bin/sh"]})
    again = time.perf_counter() - t
    assert s == 200, b
    print(f"debian image through the API (worker on CPUs {os.environ.get('CPUS', '0,1')}): import {imp:.2f} s, "
          f"register with unpack {reg:.2f} s (new roots: {len(unpacked)}), total {imp + reg:.2f} s; "
          f"re-register by source {again:.3f} s (new roots: {len(set(os.listdir(roots)) - before - unpacked)})")
else:
    print("debian image: SKIPPED (no out/debian-image/layout; DEBIAN=1 builds it with scripts/debian-image.sh)")
PY
