#!/usr/bin/env bash
# Drill: Redis loses its data in the middle of uploads (a restart without persistence, a
# failover, a FLUSHALL).
#
# Guarantee: the database is the source of truth: every upload becomes ready with no restart of
# anything; and a worker that cannot make progress says so on /healthz.
#
# Setup: its own Redis, SQLite and local store; vidscope-api and vidscope-worker, whose
# ffmpeg/ffprobe wait 1 s so jobs are queued and in flight at the flush; 5 uploads, FLUSHALL,
# 5 more uploads, then up to 90 s for all 10 to be ready.
# Figures: uploads accepted, lessons ready/expected, seconds from the flush until all were ready,
# the worker's /healthz status at the end.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
drill_init redis-flush 240

drill_start sqlite redis sink api
drill_slow_ffmpeg 1
drill_worker "${DRILL_FFMPEG_ENV[@]}"

drill_client upload --count 5 --tag before >"$DRILL_WORK/before.json"
drill_log "FLUSHALL (our own Redis on ${REDIS_URL##*:})"
redis-cli -u "$REDIS_URL" flushall >/dev/null
flushed=$SECONDS
drill_client upload --count 5 --tag after >"$DRILL_WORK/after.json"
ids=$(jq -rs 'map(.ids) | add | join(",")' "$DRILL_WORK/before.json" "$DRILL_WORK/after.json")
drill_client wait-ready --ids "$ids" --timeout 90 >"$DRILL_WORK/ready.json"
r=$DRILL_WORK/ready.json
if jq -e '.ready == .expected' "$r" >/dev/null; then
    all_ready="$((SECONDS - flushed))"
else
    all_ready=">90"
fi
health=$(drill_http_status "http://127.0.0.1:$WORKER_HEALTH_PORT/healthz")

drill_fig uploads "$(jq -s 'map(.created) | add' "$DRILL_WORK/before.json" "$DRILL_WORK/after.json")/10"
drill_fig ready "$(jq .ready "$r")/$(jq .expected "$r")"
drill_fig all_ready_s "$all_ready"
drill_fig worker_healthz "$health"

drill_check "every upload accepted" \
    jq -se 'map(.created) | add == 10' "$DRILL_WORK/before.json" "$DRILL_WORK/after.json"
drill_check "every lesson ready without a restart" jq -e '.ready == .expected' "$r"
health_honest() { [[ $all_ready != ">"* || $health != 200 ]]; }
drill_check "a stuck worker is not healthy" health_honest
drill_check "worker still running" drill_alive "$WORKER_PID"
drill_finish
