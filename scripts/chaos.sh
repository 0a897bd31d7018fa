#!/usr/bin/env bash
# Chaos against real worker processes: ROUNDS rounds (default 10) of SIGKILL and SIGTERM, each
# round once while SUBMIT asynchronous invocations (default 60) are being submitted and once
# while a restarted worker recovers them; the worker keeps its default async_max_attempts (3).
# Prints one line: invocations accepted, how they ended, lost, failed by the restarts, and extra
# attempts charged. It is the CI test crates/sluice-cli/tests/chaos.rs, scaled up.
# Usage: scripts/chaos.sh [ROUNDS] [SUBMIT]   (SLUICE=binary measures another build)
set -euo pipefail
cd "$(dirname "$0")/.."
export SLUICE_CHAOS_ROUNDS=${1:-10} SLUICE_CHAOS_SUBMIT=${2:-60} SLUICE_CHAOS_MAX_ATTEMPTS=3
[ -n "${SLUICE:-}" ] && export SLUICE_TEST_WORKER=$SLUICE
cargo test -q -p sluice-cli --test chaos -- --nocapture 2>&1 | grep -E '^chaos:|panicked|failed by|vanished|extra attempts'
