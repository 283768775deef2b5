#!/usr/bin/env bash
# Drill: the disk holding the telemetry files fills up, then space comes back.
#
# Guarantee: a full disk never fails a request and never corrupts the files: every line of
# every telemetry file is a whole JSON document (jq reads them to the end); writing resumes by
# itself once there is space again.
#
# Setup: SQLite and local store; vidscope-api writing its telemetry files (OTEL_*_EXPORTER=file)
# to a 1 MiB tmpfs; `vidscope loadgen` (4 viewers) for DRILL_SECS (45). Once the tmpfs is full
# it stays full for 8 s, then grows to 256 MiB. Needs root (mount).
# Figures: requests, failed, 5xx, seconds until the disk was full, telemetry lines, unparsable
# lines, bytes written after space returned.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
((EUID == 0)) || { echo "disk-full needs root: it mounts a tmpfs" >&2; exit 2; }
drill_init disk-full 180

secs=${DRILL_SECS:-45}
telemetry=$DRILL_WORK/data/telemetry
drill_tmpfs "$telemetry" 1
drill_start sqlite api
drill_loadgen "$secs" "$DRILL_WORK/loadgen.json"
loadgen=$DRILL_PID

started=$SECONDS
disk_full() { (($(df --output=avail -B1 "$telemetry" | tail -n 1) < 8192)); }
if drill_until $((secs - 15)) disk_full; then
    full_after=$((SECONDS - started))
else
    full_after=">$((secs - 15))"
fi
drill_log "telemetry disk full after ${full_after}s; space back in 8 s"
sleep 8
used() { du -sb "$telemetry" | cut -f1; }
before_growth=$(used)
mount -o remount,size=256m "$telemetry"
wait "$loadgen" || true
drill_check "API still running" drill_alive "$API_PID"
kill -TERM "$API_PID"
drill_wait_exit "$API_PID" 60 >/dev/null || drill_kill_group "$API_PID" KILL
written_after=$(($(used) - before_growth))

# Every line of every file (rotated ones too) must parse; a last line without its newline is a
# partial line too.
python3 - "$telemetry" >"$DRILL_WORK/lines.json" <<'PY'
import json, os, sys
total = bad = 0
where = []
for name in sorted(os.listdir(sys.argv[1])):
    if not os.path.isfile(os.path.join(sys.argv[1], name)):
        continue
    data = open(os.path.join(sys.argv[1], name), "rb").read()
    if not data:
        continue
    *whole, tail = data.split(b"\n")
    if tail:  # no newline at the end: a partial line
        total, bad = total + 1, bad + 1
        where.append(f"{name}: last line has no newline")
    for i, line in enumerate(whole, 1):
        total += 1
        try:
            json.loads(line)
        except ValueError as e:
            bad += 1
            where.append(f"{name}:{i}: {e}")
print(json.dumps({"lines": total, "bad": bad, "where": where[:5]}))
PY

drill_log "telemetry files: $(cat "$DRILL_WORK/lines.json")"
drill_loadgen_figs "$DRILL_WORK/loadgen.json"
drill_fig full_after_s "$full_after"
drill_fig telemetry_lines "$(jq .lines "$DRILL_WORK/lines.json")"
drill_fig unparsable_lines "$(jq .bad "$DRILL_WORK/lines.json")"
drill_fig bytes_after_space_returned "$written_after"

drill_check "the disk did fill up" drill_within "$full_after" "$secs"
drill_check "0 failed requests" test "$(drill_figure failed)" -eq 0
drill_check "0 5xx" test "$(drill_figure 5xx)" -eq 0
drill_check "every telemetry line parses" test "$(drill_figure unparsable_lines)" -eq 0
drill_check "writing resumes when space returns" test "$written_after" -gt 0
drill_finish
