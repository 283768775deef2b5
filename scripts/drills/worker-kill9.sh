#!/usr/bin/env bash
# Drill: the worker is killed (-9, with its ffmpeg children) 20 times while it processes.
#
# Guarantee: no job is lost to a crash: every lesson becomes ready without a hand; and a killed
# worker leaves nothing behind: no temporary directory survives the next start.
#
# Setup: its own Postgres and Redis, local store; vidscope-api; 24 lessons uploaded, then
# vidscope-worker started and killed DRILL_KILLS (20) times, 0.4 to 1.2 s apart, each time
# started again at once. ffmpeg and ffprobe wait 0.5 s before running so kills land mid-job;
# VIDSCOPE_JOB_VISIBILITY_SECS=5 so a killed worker's jobs are reclaimed quickly, and
# VIDSCOPE_JOB_MAX_ATTEMPTS above the number of kills: each interrupted delivery counts as an
# attempt, and the drill is about jobs lost, not about the attempt budget (with the default 5, a
# job caught by five kills in a row is dead-lettered by design). The worker's TMPDIR is its own.
# Figures: kills, lessons ready/expected, failed, seconds from the last kill until all were ready,
# leaked temporary directories (`.tmp*`, tempfile's names) under the worker's TMPDIR and data dir
# once all jobs are done.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
drill_init worker-kill9 300

kills=${DRILL_KILLS:-20}
lessons=${DRILL_LESSONS:-24}
drill_start postgres redis api
drill_client upload --count "$lessons" --tag kill9 >"$DRILL_WORK/upload.json"
ids=$(jq -r '.ids | join(",")' "$DRILL_WORK/upload.json")
drill_log "uploaded: $(jq -c '.statuses' "$DRILL_WORK/upload.json")"

worker_tmp=$DRILL_WORK/worker-tmp
mkdir -p "$worker_tmp"
drill_slow_ffmpeg 0.5
worker_env=("${DRILL_FFMPEG_ENV[@]}" TMPDIR="$worker_tmp" VIDSCOPE_JOB_VISIBILITY_SECS=5
    VIDSCOPE_JOB_MAX_ATTEMPTS=$((kills + 5)))
drill_worker "${worker_env[@]}"
for ((k = 1; k <= kills; k++)); do
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.4 + 0.8 * r / 32767 }')"
    drill_kill9 "$WORKER_PID"
    drill_worker "${worker_env[@]}"
done
drill_log "$kills kills done; waiting for every lesson"
last_kill=$SECONDS
drill_client wait-ready --ids "$ids" --timeout 150 >"$DRILL_WORK/ready.json"
all_ready_s=$((SECONDS - last_kill))
r=$DRILL_WORK/ready.json
leaked=$(find "$worker_tmp" "$DRILL_WORK/data" -type d -name '.tmp*' | wc -l)

drill_fig kills "$kills"
drill_fig ready "$(jq .ready "$r")/$(jq .expected "$r")"
drill_fig failed "$(jq .failed "$r")"
drill_fig all_ready_s "$all_ready_s"
drill_fig leaked_tmp_dirs "$leaked"

drill_check "every upload accepted" test "$(jq .created "$DRILL_WORK/upload.json")" -eq "$lessons"
drill_check "every lesson ready" test "$(jq .ready "$r")" -eq "$lessons"
drill_check "no temporary directory leaked" test "$leaked" -eq 0
drill_finish
