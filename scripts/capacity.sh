#!/usr/bin/env bash
# Capacity measurement (docs/capacity.md): what one API replica, one worker and their telemetry
# cost, measured on this machine, turned into a sizing table by scripts/lib/capacity.py.
#
#   1. volume   `vidscope loadgen` (realistic viewers and uploads) against one API and one worker
#               exporting every span (the services' setting in the compose stack; the Collector
#               samples) over OTLP gRPC to otlp-sink, which tallies bytes, items, traces and
#               series per service and dumps the raw protobuf for zstd.
#   2. latency  wrk with --latency at rising connection counts against one API replica: the
#               highest rate whose p99 stays under 250 ms, on a cheap route (GET /api/videos/{id})
#               and on range streaming (GET /api/videos/{filename}, 64 KiB ranges).
#   3. memory   VmRSS / VmHWM of the API and otlp-sink during 200 concurrent connections.
#   4. jobs     N no-op jobs (crm.sync with the CRM off: claim, parse, one log line, record, ack)
#               and M thumbnail jobs (ffmpeg frame -> JPEG -> store) put straight into the Redis
#               stream the way the relay publishes them, timed until one worker has recorded all.
#
# Runs on Postgres (127.0.0.1:5432, a fresh database dropped at the end) and Redis
# (127.0.0.1:6379, a key prefix of its own, deleted at the end) because the queue and the
# database are what a worker's rate depends on. Not part of scripts/test.sh: a benchmark.
#
# Usage: scripts/capacity.sh            (about 5 minutes with the defaults)
# Knobs (environment): CAP_LOADGEN_SECS (60) CAP_LOADGEN_USERS (20) CAP_STEP_SECS (5, per wrk
#   step) CAP_MAX_CONNS (256) CAP_RSS_SECS (10) CAP_NOOP_JOBS (2000) CAP_THUMB_JOBS (60)
#   CAP_OUT (target/capacity.json) DATABASE_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres)
#   REDIS_HOST (127.0.0.1) REDIS_PORT (6379).
# Writes CAP_OUT (every figure, the machine, the commands) and prints the sizing table; update
# the doc with `python3 scripts/lib/capacity.py doc --write CAP_OUT`.
# Needs: wrk, zstd, ffmpeg, psql, redis-cli, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."

LOADGEN_SECS=${CAP_LOADGEN_SECS:-60}
LOADGEN_USERS=${CAP_LOADGEN_USERS:-20}
STEP_SECS=${CAP_STEP_SECS:-5}
MAX_CONNS=${CAP_MAX_CONNS:-256}
RSS_SECS=${CAP_RSS_SECS:-10}
NOOP_JOBS=${CAP_NOOP_JOBS:-2000}
THUMB_JOBS=${CAP_THUMB_JOBS:-60}
OUT=${CAP_OUT:-target/capacity.json}
PG_ADMIN=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
# The compose stack's metric export interval, span-metrics dimensions and tail sampling's
# latency threshold, read from its files.
read -r span_dimensions slow_trace_ms metric_interval_ms < <(python3 scripts/lib/capacity.py collector)

for tool in wrk zstd ffmpeg psql redis-cli taskset; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install $tool)" >&2; exit 2; }
done
psql "$PG_ADMIN" -Atqc 'select 1' >/dev/null || { echo "no Postgres at $PG_ADMIN" >&2; exit 2; }
[[ $(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping) == PONG ]] || { echo "no Redis at $REDIS_HOST:$REDIS_PORT" >&2; exit 2; }

started=$(date +%s)
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh
cargo build --release --locked --workspace --bins >&2
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
raw=$work/raw
mkdir -p "$raw"
bench_pids=()
db=vidscope_cap_$$
prefix=vidscope-cap-$$:jobs
cleanup() {
  bench_cleanup
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "$prefix*" |
    xargs -r redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del >/dev/null || true
}
trap cleanup EXIT

# The API and the worker get core 0; wrk, loadgen and the receiver share core 1, as in
# scripts/bench-overhead.sh.
CPUS=$(nproc)
app_cpu=0; load_cpu=$(( CPUS > 1 ? 1 : 0 ))
{
  echo "nproc=$CPUS"
  echo "cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates scripts || echo -dirty)"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "app_cpu=$app_cpu"
  echo "load_cpu=$load_cpu"
} >"$raw/machine.env"

psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
database_url="${PG_ADMIN%/*}/$db"
admin_email=capacity@example.com
admin_password=capacity-$$-$RANDOM$RANDOM

# start_sink NAME [otlp-sink args...]: a receiver on the load core; sets $sink_port, $sink_pid.
start_sink() {
  local name=$1; shift
  sink_port=$(free_port)
  taskset -c "$load_cpu" "$bin/otlp-sink" --grpc "127.0.0.1:$sink_port" --http "127.0.0.1:$(free_port)" \
    --interval 3600 "$@" >"$work/$name.log" 2>&1 &
  sink_pid=$!
  bench_pids+=("$sink_pid")
}

# app_env: the environment of the API and the worker (both processes share the database, the
# queue and the object store), exporting every span to the receiver on $sink_port; no
# VIDSCOPE_CRM_URL, so crm.sync is the worker's no-op job.
app_env() {
  env=()
  # shellcheck disable=SC2034 # bench_env's OTLP endpoint
  grpc_port=$sink_port
  bench_env s100 "$api_port"
  env+=(VIDSCOPE_DATA_DIR="$work/data" DATABASE_URL="$database_url"
    REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT" VIDSCOPE_QUEUE_PREFIX="$prefix"
    VIDSCOPE_ADMIN_EMAIL="$admin_email" VIDSCOPE_ADMIN_PASSWORD="$admin_password"
    OTEL_METRIC_EXPORT_INTERVAL="$metric_interval_ms")
}

start_api() {
  api_port=$(free_port)
  app_env
  env "${env[@]}" taskset -c "$app_cpu" "$bin/vidscope-api" >/dev/null 2>"$work/api.err" &
  api_pid=$!
  bench_pids+=("$api_pid")
  bench_wait_healthy "$api_port" 600 0.1 || { echo "the API did not start:" >&2; cat "$work/api.err" >&2; exit 2; }
}

start_worker() {
  app_env
  env "${env[@]}" taskset -c "$app_cpu" "$bin/vidscope-worker" >/dev/null 2>"$work/worker.err" &
  worker_pid=$!
  bench_pids+=("$worker_pid")
  sleep 2
  kill -0 "$worker_pid" 2>/dev/null || { echo "the worker did not start:" >&2; cat "$work/worker.err" >&2; exit 2; }
}

# stop PID: SIGTERM and wait, so the exporters flush.
stop() { kill -TERM "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }

peak_rss() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

echo "== 1/4 telemetry volume: loadgen ${LOADGEN_SECS}s, $LOADGEN_USERS viewers" >&2
mkdir -p "$raw/dump"
start_sink tally --tally "$raw/tally.json" --span-dimensions "$span_dimensions" \
  --slow-trace-ms "$slow_trace_ms" --dump "$raw/dump"
tally_sink=$sink_pid
start_api
start_worker
loadgen_cmd=("$bin/vidscope" loadgen --target "http://127.0.0.1:$api_port" --duration "${LOADGEN_SECS}s"
  --users "$LOADGEN_USERS" --upload-every 5s --max-uploads 1000 --json)
# The load generator's own spans would be counted as the application's: it exports nothing.
OTEL_SDK_DISABLED=true VIDSCOPE_ADMIN_EMAIL=$admin_email VIDSCOPE_ADMIN_PASSWORD=$admin_password \
  taskset -c "$load_cpu" "${loadgen_cmd[@]}" >"$raw/loadgen.json" 2>"$work/loadgen.err" ||
  { echo "loadgen failed:" >&2; cat "$work/loadgen.err" >&2; exit 2; }
# As recorded: the port varies per run.
# The binaries as a clone has them, whatever CARGO_TARGET_DIR this run used.
loadgen_line="OTEL_SDK_DISABLED=true ${loadgen_cmd[*]/#$bin\//target/release/}"
echo "loadgen_cmd=${loadgen_line//$api_port/<API_PORT>}" >"$raw/commands.env"
# Let the worker finish the last uploads' jobs and both processes export a last metric point.
sleep $(( metric_interval_ms / 1000 + 2 ))
stop "$api_pid"; stop "$worker_pid"
kill -INT "$tally_sink"; wait "$tally_sink" || true
psql "$database_url" -Atc "SELECT count(*) FROM job_results" >"$raw/jobs_during_loadgen"
for signal in traces metrics logs; do
  zstd -q -3 -c "$raw/dump/$signal.pb" | wc -c >"$raw/dump/$signal.zst.bytes"
  stat -c %s "$raw/dump/$signal.pb" >"$raw/dump/$signal.pb.bytes"
done
rm -f "$raw"/dump/*.pb

echo "== 2/4 requests per second at p99 < 250 ms" >&2
start_sink plain
plain_sink=$sink_pid
start_api
cookie=$(curl -fsS -c - -o /dev/null -H 'content-type: application/json' \
  -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" \
  "http://127.0.0.1:$api_port/api/auth/login" |
  awk '{sub(/^#HttpOnly_/, "")} !/^#/ && NF >= 7 {print $6 "=" $7}' | paste -sd';')
[[ -n $cookie ]] || { echo "the admin sign-in set no cookie" >&2; exit 2; }
read -r video_id video_file < <(psql "$database_url" -Atc \
  "SELECT id, filename FROM videos WHERE status = 'ready' ORDER BY created_at LIMIT 1" | tr '|' ' ')
[[ -n ${video_id:-} ]] || { echo "loadgen produced no ready video (see $work/worker.err)" >&2; exit 2; }
declare -A url=([cheap]="http://127.0.0.1:$api_port/api/videos/$video_id"
  [range]="http://127.0.0.1:$api_port/api/videos/$video_file")
route_args() { # route -> the array `args`: wrk's headers and URL for it
  args=(-H "Cookie: $cookie")
  [[ $1 == range ]] && args+=(-H "Range: bytes=0-65535")
  args+=("${url[$1]}")
}
for route in cheap range; do
  route_args "$route"
  # Connection counts double until p99 reaches 250 ms (or the cap): a closed-loop search.
  for conns in 1 2 4 8 16 32 64 128 256 512; do
    (( conns <= MAX_CONNS )) || break
    out=$(taskset -c "$load_cpu" wrk -t1 -c"$conns" -d"${STEP_SECS}s" --latency "${args[@]}")
    read -r rps p99 errors < <(python3 scripts/lib/capacity.py wrk <<<"$out")
    echo "$route $conns $rps $p99 $errors" | tee -a "$raw/wrk.txt" >&2
    (( errors == 0 )) || { echo "$route: failed requests; wrk said:" >&2; echo "$out" >&2; exit 2; }
    awk -v p="$p99" 'BEGIN {exit !(p >= 250)}' && break
  done
  # As recorded: the session, the port and the video vary per run.
  line="wrk -t1 -c<CONNS> -d${STEP_SECS}s --latency"
  for a in "${args[@]}"; do [[ $a == *' '* ]] && line+=" '$a'" || line+=" $a"; done
  line=${line//$cookie/<SESSION>}; line=${line//$api_port/<API_PORT>}
  line=${line//$video_id/<VIDEO_ID>}; line=${line//$video_file/<VIDEO_FILE>}
  echo "wrk_$route=$line" >>"$raw/commands.env"
done

echo "== 3/4 memory at 200 connections" >&2
rss_max=0; sink_rss_max=0
for route in cheap range; do
  route_args "$route"
  taskset -c "$load_cpu" wrk -t1 -c200 -d"${RSS_SECS}s" "${args[@]}" >/dev/null &
  wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$api_pid/status")
    sink_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$plain_sink/status")
    (( rss > rss_max )) && rss_max=$rss
    (( sink_rss > sink_rss_max )) && sink_rss_max=$sink_rss
    sleep 0.5
  done
done
{
  echo "api_rss_kib=$rss_max"
  echo "api_hwm_kib=$(peak_rss "$api_pid")"
  echo "sink_rss_kib=$sink_rss_max"
  echo "sink_hwm_kib=$(peak_rss "$plain_sink")"
} >"$raw/memory.env"
stop "$api_pid"

echo "== 4/4 jobs per second, one worker" >&2
start_worker
user_id=$(psql "$database_url" -Atc "SELECT id FROM users WHERE email = '$admin_email'")
# run_jobs KIND COUNT PAYLOAD -> "seconds": enqueue COUNT jobs with one pipelined redis-cli and
# wait until the worker has recorded them all in job_results.
run_jobs() {
  local kind=$1 count=$2 payload=$3 t0 done_ms n
  before=$(psql "$database_url" -Atc "SELECT count(*) FROM job_results WHERE kind = '$kind'")
  t0=$(date +%s%3N)
  python3 scripts/lib/capacity.py jobs "$prefix:$kind" "$kind" "$count" "$payload" |
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --pipe >/dev/null
  for _ in $(seq 1200); do
    n=$(psql "$database_url" -Atc "SELECT count(*) FROM job_results WHERE kind = '$kind'")
    (( n - before >= count )) && break
    sleep 0.25
  done
  (( n - before >= count )) || { echo "$kind: only $((n - before)) of $count jobs done in 5 min" >&2; exit 2; }
  done_ms=$(psql "$database_url" -Atc "SELECT max(completed_at) FROM job_results WHERE kind = '$kind'")
  awk -v a="$t0" -v b="$done_ms" 'BEGIN {printf "%.3f\n", (b - a) / 1000}'
}
noop_secs=$(run_jobs crm.sync "$NOOP_JOBS" "{\"userId\":\"$user_id\",\"event\":{\"type\":\"registered\"}}")
thumb_secs=$(run_jobs video.thumbnail "$THUMB_JOBS" "{\"videoId\":\"$video_id\"}")
{
  echo "noop_jobs=$NOOP_JOBS"
  echo "noop_secs=$noop_secs"
  echo "thumb_jobs=$THUMB_JOBS"
  echo "thumb_secs=$thumb_secs"
  echo "worker_hwm_kib=$(peak_rss "$worker_pid")"
  echo "worker_concurrency=${VIDSCOPE_WORKER_CONCURRENCY:-2}"
} >"$raw/jobs.env"
stop "$worker_pid"
kill -INT "$plain_sink"; wait "$plain_sink" || true

{
  echo "step_secs=$STEP_SECS"
  echo "rss_secs=$RSS_SECS"
  echo "metric_interval_ms=$metric_interval_ms"
  echo "elapsed_secs=$(( $(date +%s) - started ))"
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$raw/machine.env"
mkdir -p "$(dirname "$OUT")"
python3 scripts/lib/capacity.py measure "$raw" >"$OUT"
python3 scripts/lib/capacity.py table "$OUT"
echo "wrote $OUT" >&2
