#!/usr/bin/env bash
# Drill: SIGTERM (a rollout, a scale-down) while work is in flight, for the worker and the API.
#
# Guarantee: each process exits within 30 s (Kubernetes' default grace period) however slow
# its in-flight work, leaving nothing half done: the worker leaves no child running and its
# interrupted job runs again after a restart; the API fails none of the requests it was serving
# when the signal came and leaves no half-written object and no object without its row.
#
# Setup: its own Postgres and Redis, local store, otlp-sink as the collector.
#   worker: ffmpeg/ffprobe that hang for 120 s before working; one lesson uploaded; SIGTERM once
#           its probe runs; then a worker with plain ffmpeg must make the lesson ready.
#   API:    `vidscope loadgen` (4 viewers) plus an upload of DRILL_SLOW_MB (6 MB) trickling at
#           100 KB/s; after 3 s of it the load generator is stopped and the API gets SIGTERM.
# Figures: seconds to exit, child processes left, the lesson ready after the restart, requests,
# failed, how the slow upload ended, half-written objects, orphan objects.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
drill_init sigterm 300

drill_start postgres redis sink api

# --- the worker ---------------------------------------------------------------------------
drill_slow_ffmpeg 120
drill_worker "${DRILL_FFMPEG_ENV[@]}"
drill_client upload --count 1 --tag sigterm >"$DRILL_WORK/upload.json"
lesson=$(jq -r '.ids[0] // ""' "$DRILL_WORK/upload.json")
drill_until 30 test -s "$DRILL_WORK/ffmpeg-starts" || drill_log "the probe never started"
drill_log "SIGTERM to the worker with its probe in flight"
kill -TERM "$WORKER_PID"
worker_exit=$(drill_wait_exit "$WORKER_PID" 60) || worker_exit=">60"
left=$(pgrep -g "$WORKER_PID" | wc -l) || true
drill_kill_group "$WORKER_PID" KILL
drill_fig worker_exit_s "$worker_exit"
drill_fig worker_children_left "$left"
drill_worker
drill_client wait-ready --ids "$lesson" --timeout 60 >"$DRILL_WORK/ready.json"
drill_fig lesson_ready_after_restart "$(jq .ready "$DRILL_WORK/ready.json")/1"

# --- the API ------------------------------------------------------------------------------
drill_loadgen 120 "$DRILL_WORK/loadgen.json"
loadgen=$DRILL_PID
sleep 5
slow_bytes=$((${DRILL_SLOW_MB:-6} * 1000 * 1000))
drill_client_bg "$DRILL_WORK/slow.json" slow-upload --bytes "$slow_bytes" --rate 100000 \
    --limit 120 --tag sigterm
slow=$DRILL_PID
sleep 3
drill_log "loadgen stopped, SIGTERM to the API with a slow upload in flight"
kill -INT "$loadgen"
sleep 0.2
kill -TERM "$API_PID"
api_exit=$(drill_wait_exit "$API_PID" 90) || {
    api_exit=">90"
    drill_kill_group "$API_PID" KILL
}
wait "$slow" || true
wait "$loadgen" || true
drill_fig api_exit_s "$api_exit"
drill_loadgen_figs "$DRILL_WORK/loadgen.json"
drill_fig slow_upload \
    "$(jq -r '"\(.outcome) \(.status // "-") after \(.seconds)s"' "$DRILL_WORK/slow.json")"
drill_client store-audit --objects "$DRILL_WORK/data/objects" --database "$DATABASE_URL" \
    >"$DRILL_WORK/audit.json"
drill_fig half_written "$(jq .half_written "$DRILL_WORK/audit.json")"
drill_fig orphan_objects "$(jq .orphans "$DRILL_WORK/audit.json")"

drill_check "worker exits within 30 s" drill_within "$worker_exit" 30
drill_check "no worker child left running" test "$left" -eq 0
drill_check "the interrupted lesson is ready after a restart" \
    jq -e '.ready == 1' "$DRILL_WORK/ready.json"
drill_check "API exits within 30 s" drill_within "$api_exit" 30
drill_check "0 failed requests" test "$(drill_figure failed)" -eq 0
drill_check "no half-written object" test "$(drill_figure half_written)" -eq 0
drill_check "no object without its row" test "$(drill_figure orphan_objects)" -eq 0
drill_finish
