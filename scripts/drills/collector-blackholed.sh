#!/usr/bin/env bash
# Drill: the collector hangs: it accepts connections and never answers (`otlp-sink --black-hole`).
#
# Guarantee: no request waits on telemetry: 0 failed requests, 0 5xx, the slowest route's p95
# under 2 s (an export blocked on the collector would add its 10 s timeout); and shutdown does
# not hang on the last flush: the API and the worker exit within 30 s of SIGTERM (Kubernetes'
# grace period).
#
# Setup: its own Postgres and Redis, local store; vidscope-api and vidscope-worker exporting over
# OTLP/gRPC; `vidscope loadgen` (4 viewers, uploads) for DRILL_SECS (30) against the black hole.
# Figures: requests, failed, 5xx, p95, connections the black hole took, seconds to exit.
set -euo pipefail
# shellcheck source=scripts/drills/lib.sh
source "$(dirname "$0")/lib.sh"
drill_init collector-blackholed 240

secs=${DRILL_SECS:-30}
drill_start postgres redis
drill_sink --black-hole
drill_start api worker
drill_loadgen "$secs" "$DRILL_WORK/loadgen.json"
wait "$DRILL_PID" || true
drill_loadgen_figs "$DRILL_WORK/loadgen.json"
sleep 1 # one more count line from the sink
drill_fig connections "$(drill_sink_last connections)"

drill_log "SIGTERM to the API and the worker"
kill -TERM "$API_PID" "$WORKER_PID"
api_exit=$(drill_wait_exit "$API_PID" 60) || api_exit=">60"
worker_exit=$(drill_wait_exit "$WORKER_PID" 60) || worker_exit=">60"
drill_fig api_exit_s "$api_exit"
drill_fig worker_exit_s "$worker_exit"

drill_check "0 failed requests" test "$(drill_figure failed)" -eq 0
drill_check "0 5xx" test "$(drill_figure 5xx)" -eq 0
drill_check "p95 under 2 s" test "$(drill_figure p95_ms)" -lt 2000
drill_check "the exporters did reach the black hole" test "$(drill_figure connections)" -gt 0
drill_check "API exits within 30 s of SIGTERM" drill_within "$api_exit" 30
drill_check "worker exits within 30 s of SIGTERM" drill_within "$worker_exit" 30
drill_finish
