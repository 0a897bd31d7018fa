#!/usr/bin/env bash
# Runs the workspace's tests as a user other than root, as someone without root would run them:
# the README promises that the worker and the tests work for any user, and what only root has
# (a writable cgroup, /dev/shm/sluice, /usr/sbin on the PATH, dropping supplementary groups) is
# easy to depend on without noticing while every other run is as root.
#
# Run as root. It copies the working tree (tracked files and untracked ones git does not ignore,
# so uncommitted changes are tested too) to a new directory under /tmp, builds the tests there
# (`cargo test --no-run`), hands the copy to the user and runs every test binary as that user,
# from its package's directory as cargo would, with a user's PATH (no sbin directories) and a
# home of its own (the user needs no toolchain: the no-op example the image tests build is built
# first and named in SLUICE_TEST_NOOP). Exits 1 if any binary fails, printing its output's end.
# Usage: scripts/test-as-user.sh [--user NAME (default nobody)] [--keep] [-- ARGS for every
#        test binary, e.g. a name filter]
set -euo pipefail
cd "$(dirname "$0")/.."
user=nobody
keep=false
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --user) [ $# -ge 2 ] || { echo "--user needs a user name" >&2; exit 2; }; user=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    --) shift; args=("$@"); break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root: the tests are built as root, then run as --user" >&2; exit 2; }
uid=$(id -u "$user" 2>/dev/null) || { echo "no user $user" >&2; exit 2; }
[ "$uid" != 0 ] || { echo "--user must not be root" >&2; exit 2; }
work=$(mktemp -d /tmp/sluice-as-user.XXXXXX)
$keep || trap 'rm -rf "$work"' EXIT
mkdir "$work/repo" "$work/home"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work/repo"
cd "$work/repo"
echo "building the tests in $work/repo" >&2
cargo test --workspace --locked --no-run --message-format=json 2>"$work/build.log" \
  | python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"].get("test"):
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
' > "$work/tests.tsv" || { tail -30 "$work/build.log" >&2; exit 1; }
# Tests that build the no-op example with cargo use this one instead: the user has no toolchain.
cargo build --locked --quiet -p sluice-fn --example noop
chown -R "$user" "$work"
chmod 755 "$work"
failed=0
total=0
while IFS=$'\t' read -r dir exe; do
  total=$((total + 1))
  log="$work/$(basename "$exe").log"
  if (cd "$dir" && runuser -u "$user" -- env -i HOME="$work/home" PATH=/usr/local/bin:/usr/bin:/bin \
      LANG=C.UTF-8 CARGO_MANIFEST_DIR="$dir" SLUICE_TEST_NOOP="$work/repo/target/debug/examples/noop" \
      "$exe" "${args[@]}") > "$log" 2>&1; then
    grep -h '^test result' "$log" | sed "s|^|$(basename "$exe"): |" >&2 || true
  else
    failed=$((failed + 1))
    echo "FAILED as $user: $exe" >&2
    tail -60 "$log" >&2
  fi
done < "$work/tests.tsv"
echo "$((total - failed)) of $total test binaries passed as $user (uid $uid)" >&2
[ "$failed" = 0 ]
