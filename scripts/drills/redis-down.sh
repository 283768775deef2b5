#!/usr/bin/env bash
# Drill: Redis is down for a while, then comes back empty.
#
# Guarantee: Redis is optional for serving: the API stays ready (/readyz 200, Redis shown as
# degraded in the body) and accepts every upload (the outbox holds the jobs); the worker, which
# cannot claim, says so: /readyz at its first failed claim, /healthz (liveness) once it has made
# no progress for VIDSCOPE_WORKER_LIVENESS_SECS (default 120 s; 20 s here so the drill stays
# short); when Redis is back every upload becomes ready with no restart.
#
# Setup: its own Redis, SQLite and local store; vidscope-api and vidscope-worker; Redis shut
# down (no save), 5 uploads, Redis started again on the same port, up to 90 s for the lessons.
# Figures: /readyz during the outage, uploads accepted, seconds until the worker's /readyz and
# /healthz failed, lessons ready/expected after Redis returned, seconds until all were.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
drill_init redis-down 240

liveness=20
drill_start sqlite redis sink api
drill_worker VIDSCOPE_WORKER_LIVENESS_SECS=$liveness
worker_health=http://127.0.0.1:$WORKER_HEALTH_PORT/healthz
worker_ready=http://127.0.0.1:$WORKER_HEALTH_PORT/readyz
drill_check "ready before the outage" drill_http_ok "$API_URL/readyz"

drill_log "Redis down"
drill_redis_stop
down=$SECONDS
sleep 3
ready=$(drill_http_status "$API_URL/readyz")
curl -s -m 5 "$API_URL/readyz" >"$DRILL_WORK/readyz.json" || true
drill_client upload --count 5 --tag outage >"$DRILL_WORK/upload.json"
worker_unready() { [[ $(drill_http_status "$worker_ready") != 200 ]]; }
if drill_until $((10 - (SECONDS - down))) worker_unready; then
    unready_after=$((SECONDS - down))
else
    unready_after=">10"
fi
# The window, plus the claim loop's own wait (up to 15 s, see crates/worker/src/health.rs).
limit=$((liveness + 15))
worker_unhealthy() { [[ $(drill_http_status "$worker_health") != 200 ]]; }
if drill_until $((limit - (SECONDS - down))) worker_unhealthy; then
    unhealthy_after=$((SECONDS - down))
else
    unhealthy_after=">$limit"
fi

drill_log "Redis back (empty)"
drill_redis_start
back=$SECONDS
ids=$(jq -r '.ids | join(",")' "$DRILL_WORK/upload.json")
drill_client wait-ready --ids "$ids" --timeout 90 >"$DRILL_WORK/ready.json"
r=$DRILL_WORK/ready.json
if jq -e '.ready == .expected and .expected > 0' "$r" >/dev/null; then
    all_ready=$((SECONDS - back))
else
    all_ready=">90"
fi

drill_fig readyz_during_outage "$ready"
drill_fig uploads "$(jq .created "$DRILL_WORK/upload.json")/5"
drill_fig worker_unready_after_s "$unready_after"
drill_fig worker_unhealthy_after_s "$unhealthy_after"
drill_fig ready "$(jq .ready "$r")/$(jq .expected "$r")"
drill_fig all_ready_s "$all_ready"

drill_check "/readyz 200 while Redis is down" test "$ready" = 200
drill_check "every upload accepted during the outage" jq -e '.created == 5' "$DRILL_WORK/upload.json"
drill_check "the worker's /readyz fails within 10 s" drill_within "$unready_after" 10
drill_check "the worker's /healthz fails within its liveness window (+15 s)" \
    drill_within "$unhealthy_after" "$limit"
drill_check "every lesson ready once Redis is back" jq -e '.ready == 5' "$r"
drill_finish
