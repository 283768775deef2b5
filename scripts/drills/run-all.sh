#!/usr/bin/env bash
# Runs every fault drill (docs/reliability.md#drills) one after the other and prints one table:
# drill, result (ok, BROKEN, TIMEOUT), figures, the guarantees that did not hold.
#
#   scripts/drills/run-all.sh                 # all of them, about 10 minutes (7 min 22 s with the build on 2026-12-07)
#   scripts/drills/run-all.sh redis-flush sigterm
#
# Builds the binaries once (cargo build --workspace --bins, niced), then runs each drill under
# a time limit; each drill's own output goes to $DRILL_LOG_DIR/<drill>.log
# (default target/drills). Exits 1 when any guarantee was broken or a drill did not finish.
# Needs root for disk-full (it mounts a tmpfs).
set -euo pipefail
cd "$(dirname "$0")/../.."

drills=(collector-down collector-blackholed postgres-restart worker-kill9 sigterm redis-flush
    redis-down disk-full oversized-upload)
(($#)) && drills=("$@")
for d in "${drills[@]}"; do
    [[ -x scripts/drills/$d.sh ]] || { echo "no drill $d (scripts/drills/$d.sh)" >&2; exit 2; }
done

log_dir=${DRILL_LOG_DIR:-${CARGO_TARGET_DIR:-target}/drills}
mkdir -p "$log_dir"
flags=()
[[ ${DRILL_PROFILE:-debug} == release ]] && flags=(--release)
echo "==> cargo build --workspace --bins ${flags[*]}" >&2
nice -n 10 cargo build --workspace --bins "${flags[@]}" >&2
export DRILL_NO_BUILD=1

rows=()
failed=0
for d in "${drills[@]}"; do
    echo "==> $d (log: $log_dir/$d.log)" >&2
    rc=0
    # Each drill stops itself at its own limit; this outer one only guards against a hung trap.
    timeout --kill-after=30 600 "scripts/drills/$d.sh" >"$log_dir/$d.out" 2>"$log_dir/$d.log" || rc=$?
    row=$(grep '^| ' "$log_dir/$d.out" | tail -n 1) || true
    [[ -n $row ]] || row="| $d | FAILED TO RUN (exit $rc) | - | see $log_dir/$d.log |"
    ((rc == 0)) || failed=1
    echo "$row" >&2
    rows+=("$row")
done

echo "| drill | result | figures | broken guarantees |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit "$failed"
