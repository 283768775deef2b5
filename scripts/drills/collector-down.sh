#!/usr/bin/env bash
# Drill: the OpenTelemetry Collector dies under load and comes back.
#
# Guarantee: telemetry never fails a request (0 failed, 0 5xx while the collector is gone), and
# export resumes by itself once it is back (within 30 s, no restart of the API or the worker).
#
# Setup: its own Postgres and Redis, local store; vidscope-api and vidscope-worker exporting over
# OTLP/gRPC to otlp-sink; `vidscope loadgen` (4 viewers, uploads). The collector is up for
# DRILL_UP_SECS (10), killed (-9) for DRILL_DOWN_SECS (20), then started again on the same ports.
# Figures: requests, failed, 5xx, p95 of the slowest route, seconds from the collector's return
# to the first spans it receives.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
drill_init collector-down 240

up=${DRILL_UP_SECS:-10}
down=${DRILL_DOWN_SECS:-20}
drill_start postgres redis sink api worker
drill_loadgen $((up + down + up)) "$DRILL_WORK/loadgen.json"
loadgen=$DRILL_PID

sleep "$up"
drill_log "collector down (kill -9) for ${down}s"
drill_kill9 "$SINK_PID"
sleep "$down"

drill_log "collector back on the same ports"
lines_before=$(wc -l <"$DRILL_WORK/sink.log")
back=$SECONDS
drill_spawn sink "$DRILL_BIN/otlp-sink" --grpc "127.0.0.1:$SINK_GRPC_PORT" \
    --http "127.0.0.1:$SINK_HTTP_PORT" --interval 0.5
spans_after_return() {
    tail -n "+$((lines_before + 1))" "$DRILL_WORK/sink.log" | grep '^{' | tail -n 1 |
        jq -e '.spans > 0' >/dev/null
}
if drill_until 30 spans_after_return; then
    recovery=$((SECONDS - back))
else
    recovery=">30"
fi

wait "$loadgen" || true
drill_loadgen_figs "$DRILL_WORK/loadgen.json"
drill_fig recovery_s "$recovery"

drill_check "0 failed requests" test "$(drill_figure failed)" -eq 0
drill_check "0 5xx" test "$(drill_figure 5xx)" -eq 0
drill_check "export resumes within 30 s of the collector's return" test "$recovery" != ">30"
drill_check "API still running" drill_alive "$API_PID"
drill_check "worker still running" drill_alive "$WORKER_PID"
drill_finish
