#!/usr/bin/env bash
# The isolation probe's tables (crates/sluice-sandbox/tests/fixtures/probe.py, and its Rust
# counterpart sluice-sandbox-probe inside an image root: tests/image.rs): every escape
# attempt and its result under each isolation this machine has (bubblewrap and unshare, network
# off and on; a plain process for contrast), as markdown for docs/security.md.
# Usage: scripts/probe-isolation.sh   (run as root to see per-sandbox users at work)
set -euo pipefail
cd "$(dirname "$0")/.."
PROBE_MARKDOWN=1 cargo test -q -p sluice-sandbox --test probe --test image -- --nocapture 2>/dev/null \
  | grep -E '^(####|\|)' | awk '/^####/ { print ""; print; print ""; next } { print }'
