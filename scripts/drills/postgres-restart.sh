#!/usr/bin/env bash
# Drill: Postgres restarts (fast shutdown: every connection terminated) while viewers save
# their progress.
#
# Guarantee: every acknowledged progress write is kept; while the database is away requests
# fail as 503 with Retry-After, never 500; service comes back by itself within 30 s.
#
# Setup: its own Postgres and Redis, local store; vidscope-api and vidscope-worker; 8 lessons
# uploaded and processed; one sequential writer per lesson (scripts/drills/client.py progress)
# for DRILL_SECS (30), positions past 95 % of the lesson so that every save is a transaction of
# several statements (the completing kind: what a viewer at the end of a lesson sends), and
# `pg_ctl restart -m fast` DRILL_RESTARTS (3) times, 6 s apart from the 8th second. A write
# counts as acknowledged when it answered 200 with `saved: true`; at the end the database must
# hold, per lesson, a watchTime at least the last acknowledged one.
# Figures: restarts, writes sent, saved, failed, 500s, p99, the longest outage (seconds from a
# failed write to the next successful one), acknowledged writes lost.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
drill_init postgres-restart 240

secs=${DRILL_SECS:-30}
restarts=${DRILL_RESTARTS:-3}
lessons=${DRILL_LESSONS:-8}
drill_start postgres redis api worker

drill_client upload --count "$lessons" --tag pg >"$DRILL_WORK/upload.json"
ids=$(jq -r '.ids | join(",")' "$DRILL_WORK/upload.json")
drill_client wait-ready --ids "$ids" --timeout 60 >"$DRILL_WORK/ready.json"
drill_log "lessons: $(cat "$DRILL_WORK/ready.json")"

drill_client_bg "$DRILL_WORK/progress.json" progress --videos "$ids" --seconds "$secs" \
    --out "$DRILL_WORK/acked.json" --pause 0.002 --near-end
writer=$DRILL_PID
sleep 8
for ((i = 1; i <= restarts; i++)); do
    drill_log "pg_ctl restart -m fast ($i/$restarts)"
    drill_pg_restart
    ((i == restarts)) || sleep 6
done
drill_fig restarts "$restarts"
wait "$writer"

psql "$DATABASE_URL" -Atq -F ' ' -c "SELECT p.video_id, p.watch_time_seconds FROM progress p
    JOIN users u ON u.id = p.user_id WHERE u.email = '$DRILL_ADMIN_EMAIL'" >"$DRILL_WORK/stored.txt"
drill_client compare-progress --acked "$DRILL_WORK/acked.json" --stored "$DRILL_WORK/stored.txt" \
    >"$DRILL_WORK/compare.json"

p=$DRILL_WORK/progress.json
drill_log "writer: $(cat "$p")"
drill_fig writes "$(jq .sent "$p")"
drill_fig saved "$(jq .saved "$p")"
drill_fig failed "$(jq '.sent - .statuses["200"]' "$p")"
drill_fig 500 "$(jq .status_500 "$p")"
drill_fig p99_ms "$(jq .p99_ms "$p")"
drill_fig longest_outage_s "$(jq .longest_outage_seconds "$p")"
drill_fig lost "$(jq .lost "$DRILL_WORK/compare.json")"

drill_check "every acknowledged write kept" test "$(drill_figure lost)" -eq 0
drill_check "writes succeed again after the restart" jq -e .recovered "$p"
drill_check "no 500 (a lost connection is a 503)" test "$(drill_figure 500)" -eq 0
drill_check "every 503 has Retry-After" jq -e '.status_503_without_retry_after == 0' "$p"
drill_check "outage under 30 s" drill_within "$(drill_figure longest_outage_s)" 30
drill_check "API still running" drill_alive "$API_PID"
drill_check "worker still running" drill_alive "$WORKER_PID"
drill_finish
