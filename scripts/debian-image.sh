#!/usr/bin/env bash
# Builds a Debian root with debootstrap (about a minute and ~300 MB from the Debian mirror), packs it
# as an OCI image with umoci, then imports and unpacks it with sluice-image on 2 cores and prints the
# timings (JSON from the `import` example). Everything goes to the ignored out/ folder; the root file
# system and the layout are kept between runs (delete $OUT to start over), the store is rebuilt.
#
#   sudo scripts/debian-image.sh            # SUITE=bookworm INCLUDE=python3 OUT=out/debian-image
#
# Needs root (debootstrap), and the Debian packages debootstrap and umoci.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/debian-image}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
INCLUDE=${INCLUDE:-python3}
CPUS=${CPUS:-0,1}

need() {
    command -v "$1" >/dev/null || { echo "debian-image.sh: '$1' is missing (apt-get install $2)" >&2; exit 2; }
}
need debootstrap debootstrap
need umoci umoci
[ "$(id -u)" = 0 ] || { echo "debian-image.sh: debootstrap needs root" >&2; exit 2; }
mkdir -p "$OUT"

if [ ! -f "$OUT/rootfs/etc/debian_version" ]; then
    rm -rf "$OUT/rootfs" "$OUT/layout"
    start=$(date +%s.%N)
    debootstrap --include="$INCLUDE" "$SUITE" "$OUT/rootfs" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 \
        || { tail -20 "$OUT/debootstrap.log" >&2; exit 1; }
    echo "debootstrap: $(echo "$(date +%s.%N) - $start" | bc) s, $(du -sm "$OUT/rootfs" | cut -f1) MB"
fi
if [ ! -f "$OUT/layout/index.json" ]; then
    start=$(date +%s.%N)
    umoci init --layout "$OUT/layout"
    umoci new --image "$OUT/layout:debian"
    umoci insert --image "$OUT/layout:debian" "$OUT/rootfs" /
    umoci config --image "$OUT/layout:debian" --config.cmd /bin/bash --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    echo "umoci pack: $(echo "$(date +%s.%N) - $start" | bc) s, $(du -sm "$OUT/layout" | cut -f1) MB of blobs"
fi

cargo build --release --quiet -p sluice-image --example import
# A fresh store each run; the old ones are deleted only after measuring, because ext4 allocates
# inodes slowly right after many were deleted nearby (it skips "recently deleted" ones).
store="$OUT/store-$(date +%s)"
sync
echo "import + unpack on CPUs $CPUS into $store:"
/usr/bin/time -f "(%e s wall, %U s user, %S s system)" \
    taskset -c "$CPUS" ./target/release/examples/import "$store" "oci-layout:$OUT/layout" debian
root=$(ls -d "$store"/roots/*/ | head -1)
if command -v bwrap >/dev/null; then
    bwrap --ro-bind "$root" / --proc /proc --dev /dev --tmpfs /tmp --unshare-all \
        /bin/sh -c '. /etc/os-release; echo "runs on the root: $PRETTY_NAME"; command -v python3 >/dev/null && python3 -c "import sys; print(\"python\", sys.version.split()[0])" || true'
fi
find "$OUT" -maxdepth 1 -name 'store-*' ! -path "$store" -exec rm -rf {} +

# COMPARE=1: the same tree as `umoci unpack`? (paths, types, modes, link targets, contents;
# directories compared at least 0555 and files without setuid/setgid, as sluice-image writes them)
if [ "${COMPARE:-0}" = 1 ]; then
    rm -rf "$OUT/umoci-ref"
    umoci unpack --image "$OUT/layout:debian" "$OUT/umoci-ref" >/dev/null
    python3 - "$root" "$OUT/umoci-ref/rootfs" <<'PY'
import hashlib, os, stat, sys
def tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n); st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode): v = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode): v = ("dir", oct((st.st_mode | 0o555) & 0o1777))
            elif stat.S_ISREG(st.st_mode):
                v = ("file", oct(st.st_mode & 0o777), hashlib.sha256(open(p, "rb").read()).hexdigest())
            else: v = ("node",)
            out[os.path.relpath(p, root)] = v
    return out
mine, ref = tree(sys.argv[1]), tree(sys.argv[2])
print("entries: sluice-image", len(mine), "umoci", len(ref))
print("only in sluice-image:", sorted(set(mine) - set(ref)))
print("only in umoci:", sorted(set(ref) - set(mine)))
print("different:", sorted(k for k in set(mine) & set(ref) if mine[k] != ref[k]))
PY
    rm -rf "$OUT/umoci-ref"
fi
