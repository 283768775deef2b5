#!/usr/bin/env bash
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables the drills that source this file read
#
# scripts/drills/lib.sh — shared by the fault drills (docs/reliability.md#drills). Source it:
#
#     source "$(dirname "$0")/lib.sh"
#     drill_init collector-down 180      # name, time limit in seconds
#     drill_start sqlite redis sink api worker
#     ... provoke the fault, measure ...
#     drill_fig requests 1234
#     drill_check "0 failed requests" test "$failed" -eq 0
#     drill_finish                        # prints the table row, exits 1 if a check failed
#
# Every drill gets its own services on free ports: Postgres and Redis through
# scripts/lib/services.sh (never the shared ones on 5432/6379), a local object store and the
# telemetry files in its own directory, and `otlp-sink` as the collector. The processes run
# under `nice` in their own process groups; the EXIT trap stops them all and removes the
# directory. A watchdog ends the drill (result TIMEOUT) at its time limit.
#
# Knobs: DRILL_NO_BUILD=1 (the binaries are built; run-all.sh builds once), DRILL_PROFILE
# (debug or release, default debug), DRILL_KEEP=1 (keep the work directory for a post-mortem).

set -euo pipefail

DRILL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DRILL_BIN=${CARGO_TARGET_DIR:-$DRILL_ROOT/target}/${DRILL_PROFILE:-debug}
DRILL_CLIENT=$DRILL_ROOT/scripts/drills/client.py
DRILL_SAMPLE=$DRILL_ROOT/crates/cli/assets/loadgen-lesson.mp4
DRILL_ADMIN_EMAIL=drill-admin@example.com
DRILL_ADMIN_PASSWORD=drill-admin-password-$$

# Own services only, below the ephemeral port range like scripts/test.sh's (services.sh picks
# the next free port when one is taken).
export VIDSCOPE_SVC_FRESH=1
export VIDSCOPE_PG_PORT=${VIDSCOPE_PG_PORT:-27432}
export VIDSCOPE_REDIS_PORT=${VIDSCOPE_REDIS_PORT:-27379}
# shellcheck source=scripts/lib/services.sh
source "$DRILL_ROOT/scripts/lib/services.sh"

DRILL_NAME=""
DRILL_WORK=""
DRILL_STARTED=$SECONDS
DRILL_GROUPS=()  # process groups we started (their leaders' PIDs)
DRILL_CHILDREN=() # plain children (drill_run), killed at exit if still running
DRILL_MOUNTS=()  # tmpfs mounts to undo
DRILL_FIGS=()    # "key value" in the order they were measured
DRILL_BROKEN=()  # guarantees that did not hold
DRILL_WATCHDOG=""
DRILL_DONE=0
DRILL_ENV=()     # environment of the API and the worker (drill_app_env)
DRILL_PID=""     # the last process drill_spawn started
DRILL_FFMPEG_ENV=() # drill_slow_ffmpeg's variables for the worker
API_PORT=""
API_URL=""
API_PID=""
WORKER_PID=""
WORKER_HEALTH_PORT=""
SINK_PID=""
SINK_GRPC_PORT=""
SINK_HTTP_PORT=""

drill_log() { printf '[%s %3ds] %s\n' "$DRILL_NAME" $((SECONDS - DRILL_STARTED)) "$*" >&2; }

# drill_init NAME LIMIT_SECONDS — work directory, traps, watchdog, binaries.
drill_init() {
    DRILL_NAME=$1
    local limit=$2
    DRILL_WORK=$(mktemp -d "${TMPDIR:-/tmp}/vidscope-drill-$DRILL_NAME.XXXXXX")
    # The postgres user must be able to reach the cluster below it.
    chmod 0711 "$DRILL_WORK"
    export VIDSCOPE_SVC_DIR=$DRILL_WORK/svc
    mkdir -p "$DRILL_WORK/data" "$DRILL_WORK/tmp"
    # The table row goes to the drill's stdout even when the time limit interrupts a command
    # whose output is redirected.
    exec 3>&1
    trap drill_cleanup EXIT
    trap 'drill_timeout' TERM
    trap 'drill_log "interrupted"; exit 130' INT
    setsid bash -c "sleep $limit; kill -TERM $$" >/dev/null 2>&1 </dev/null &
    DRILL_WATCHDOG=$!
    disown "$DRILL_WATCHDOG"
    drill_log "work dir $DRILL_WORK, limit ${limit}s"
    drill_build
}

drill_build() {
    if [[ ${DRILL_NO_BUILD:-0} != 1 ]]; then
        local flags=()
        [[ ${DRILL_PROFILE:-debug} == release ]] && flags=(--release)
        drill_log "cargo build --workspace --bins ${flags[*]}"
        (cd "$DRILL_ROOT" && nice -n 10 cargo build --workspace --bins "${flags[@]}" >&2)
    fi
    local b
    for b in vidscope-api vidscope-worker vidscope otlp-sink; do
        [[ -x $DRILL_BIN/$b ]] || { drill_log "missing $DRILL_BIN/$b"; exit 2; }
    done
}

drill_timeout() {
    drill_log "time limit reached"
    DRILL_BROKEN+=("finished within its time limit")
    drill_finish TIMEOUT
}

# drill_port — a free TCP port on loopback.
drill_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# drill_spawn NAME CMD... — start CMD niced in a process group of its own, output in
# $DRILL_WORK/NAME.log (appended); its PID (= group id) in DRILL_PID.
drill_spawn() {
    local name=$1
    shift
    setsid nice -n 10 "$@" >>"$DRILL_WORK/$name.log" 2>&1 </dev/null &
    DRILL_PID=$!
    # Out of the job table, so bash does not report each process the drill kills on purpose.
    disown "$DRILL_PID"
    DRILL_GROUPS+=("$DRILL_PID")
}

drill_alive() { kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]; }

# drill_kill_group PID [SIGNAL] — signal a whole group we started (a process and its children).
drill_kill_group() { kill "-${2:-TERM}" -- "-$1" 2>/dev/null || true; }

# drill_kill9 PID — SIGKILL the group and wait until its leader is gone.
drill_kill9() {
    drill_kill_group "$1" KILL
    drill_until 10 drill_gone "$1"
}

drill_gone() { ! drill_alive "$1"; }

# drill_wait_exit PID SECONDS — wait for PID to exit; prints the seconds it took (two decimals)
# and fails when it was still running at the limit.
drill_wait_exit() {
    local pid=$1 limit=$2 start now
    start=$(date +%s.%N)
    while drill_alive "$pid"; do
        now=$(date +%s.%N)
        if awk -v s="$start" -v n="$now" -v l="$limit" 'BEGIN { exit !(n - s >= l) }'; then
            printf '%s\n' "$limit"
            return 1
        fi
        sleep 0.05
    done
    awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", n - s }'
}

# drill_until SECONDS CMD... — poll CMD every 0.2 s until it succeeds; fails at the limit.
drill_until() {
    local limit=$1 deadline
    shift
    deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# drill_http_status URL — the status code (000 when nothing answered within 5 s).
drill_http_status() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" || true; }

drill_http_ok() { [[ $(drill_http_status "$1") == 200 ]]; }

drill_sqlite() { export DATABASE_URL="sqlite://$DRILL_WORK/data/vidscope.db"; }

# drill_start SERVICE... — start, in the order given: postgres, sqlite (a database file in the
# work directory), redis, sink (the collector double), api, worker (the last three with their
# defaults; call drill_sink, drill_api or drill_worker for options).
drill_start() {
    local service
    for service in "$@"; do
        case $service in
            postgres) start_postgres >&2 ;;
            sqlite) drill_sqlite ;;
            redis) start_redis >&2 ;;
            sink) drill_sink ;;
            api) drill_api ;;
            worker) drill_worker ;;
            *) drill_log "drill_start: unknown service $service"; exit 2 ;;
        esac
    done
}

# drill_sink [otlp-sink flags...] — the collector double on two free ports.
drill_sink() {
    SINK_GRPC_PORT=$(drill_port)
    SINK_HTTP_PORT=$(drill_port)
    drill_spawn sink "$DRILL_BIN/otlp-sink" --grpc "127.0.0.1:$SINK_GRPC_PORT" \
        --http "127.0.0.1:$SINK_HTTP_PORT" --interval 0.5 "$@"
    SINK_PID=$DRILL_PID
    drill_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SINK_GRPC_PORT" ||
        { drill_log "otlp-sink did not start"; tail -n 20 "$DRILL_WORK/sink.log" >&2; exit 2; }
}

# drill_sink_last KEY — KEY of the sink's last count line (0 before the first).
drill_sink_last() {
    local line
    line=$(grep '^{' "$DRILL_WORK/sink.log" | tail -n 1) || true
    if [[ -z $line ]]; then
        echo 0
    else
        jq -r --arg k "$1" '.[$k] // 0' <<<"$line"
    fi
}

# drill_app_env [VAR=value...] — the environment of the API and the worker: the services
# started so far, the data directory, the admin account, OTLP gRPC to the sink (when there is
# one) or telemetry files, and the extra variables given.
drill_app_env() {
    DRILL_ENV=(PATH="$PATH" HOME="$HOME" TMPDIR="$DRILL_WORK/tmp" RUST_LOG=info
        VIDSCOPE_DATA_DIR="$DRILL_WORK/data" DATABASE_URL="$DATABASE_URL"
        VIDSCOPE_ADMIN_EMAIL="$DRILL_ADMIN_EMAIL" VIDSCOPE_ADMIN_PASSWORD="$DRILL_ADMIN_PASSWORD")
    [[ -n ${REDIS_URL:-} ]] && DRILL_ENV+=(REDIS_URL="$REDIS_URL")
    if [[ -n $SINK_GRPC_PORT ]]; then
        DRILL_ENV+=(OTEL_EXPORTER_OTLP_PROTOCOL=grpc
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_GRPC_PORT")
    else
        DRILL_ENV+=(OTEL_TRACES_EXPORTER=file OTEL_METRICS_EXPORTER=file OTEL_LOGS_EXPORTER=file
            VIDSCOPE_TELEMETRY_DIR="$DRILL_WORK/data/telemetry")
    fi
    DRILL_ENV+=("$@")
}

# drill_api [VAR=value...] — start vidscope-api on a free port and wait for /healthz.
drill_api() {
    API_PORT=$(drill_port)
    API_URL=http://127.0.0.1:$API_PORT
    drill_app_env VIDSCOPE_ADDR="127.0.0.1:$API_PORT" "$@"
    drill_spawn api env -i "${DRILL_ENV[@]}" "$DRILL_BIN/vidscope-api"
    API_PID=$DRILL_PID
    drill_until 60 drill_http_ok "$API_URL/healthz" ||
        { drill_log "vidscope-api did not start"; tail -n 20 "$DRILL_WORK/api.log" >&2; exit 2; }
    drill_log "vidscope-api pid $API_PID on $API_URL"
}

# drill_worker [VAR=value...] — start vidscope-worker with its health endpoint on a free port
# (kept across restarts) and wait until /healthz answers.
drill_worker() {
    WORKER_HEALTH_PORT=${WORKER_HEALTH_PORT:-$(drill_port)}
    drill_app_env VIDSCOPE_WORKER_HEALTH_ADDR="127.0.0.1:$WORKER_HEALTH_PORT" "$@"
    drill_spawn worker env -i "${DRILL_ENV[@]}" "$DRILL_BIN/vidscope-worker"
    WORKER_PID=$DRILL_PID
    drill_until 60 curl -s -o /dev/null -m 2 "http://127.0.0.1:$WORKER_HEALTH_PORT/healthz" ||
        { drill_log "vidscope-worker did not start"; tail -n 20 "$DRILL_WORK/worker.log" >&2; exit 2; }
}

# drill_slow_ffmpeg SECONDS — ffmpeg and ffprobe that wait SECONDS before running (real ffmpeg
# then does the work), so a drill can act while a job is in flight. Each start appends a line
# to $DRILL_WORK/ffmpeg-starts. The worker's variables that select them go to DRILL_FFMPEG_ENV.
drill_slow_ffmpeg() {
    local dir=$DRILL_WORK/slow-$1 tool real
    mkdir -p "$dir"
    for tool in ffmpeg ffprobe; do
        real=$(command -v "$tool")
        # One process from start to end (python sleeps, then becomes ffmpeg), so a kill of the
        # worker's child really ends it.
        printf '#!/bin/sh\necho "$$" >>%q\nexec python3 -c %q %s %q "$@"\n' \
            "$DRILL_WORK/ffmpeg-starts" \
            'import os, sys, time; time.sleep(float(sys.argv[1])); os.execv(sys.argv[2], sys.argv[2:])' \
            "$1" "$real" >"$dir/$tool"
        chmod +x "$dir/$tool"
    done
    DRILL_FFMPEG_ENV=(VIDSCOPE_FFMPEG="$dir/ffmpeg" VIDSCOPE_FFPROBE="$dir/ffprobe")
}

# drill_client COMMAND ARGS... — scripts/drills/client.py signed in as the drill's admin.
drill_client() {
    drill_run python3 "$DRILL_CLIENT" --base "$API_URL" --email "$DRILL_ADMIN_EMAIL" \
        --password "$DRILL_ADMIN_PASSWORD" "$@"
}

# drill_client_bg OUT COMMAND ARGS... — the same in the background, its JSON to OUT; its PID in
# DRILL_PID.
drill_client_bg() {
    local out=$1
    shift
    python3 "$DRILL_CLIENT" --base "$API_URL" --email "$DRILL_ADMIN_EMAIL" \
        --password "$DRILL_ADMIN_PASSWORD" "$@" >"$out" &
    DRILL_PID=$!
    DRILL_CHILDREN+=("$DRILL_PID")
}

# drill_run CMD... — run CMD to its end, but as a child the time limit can interrupt (bash
# runs a trap only once a foreground command has finished; `wait` it interrupts at once).
drill_run() {
    "$@" &
    DRILL_CHILDREN+=($!)
    wait "$!"
}

# drill_loadgen SECONDS OUT_JSON [flags...] — `vidscope loadgen` in the background (niced, a
# few viewers, an upload every 5 s); its PID in DRILL_PID. It exports no telemetry.
drill_loadgen() {
    local secs=$1 out=$2
    shift 2
    setsid nice -n 10 env OTEL_SDK_DISABLED=true VIDSCOPE_ADMIN_EMAIL="$DRILL_ADMIN_EMAIL" \
        VIDSCOPE_ADMIN_PASSWORD="$DRILL_ADMIN_PASSWORD" \
        "$DRILL_BIN/vidscope" loadgen --target "$API_URL" --duration "${secs}s" \
        --users "${DRILL_USERS:-4}" --upload-every 5s --max-uploads 6 --progress-interval 2s \
        --json "$@" >"$out" 2>>"$DRILL_WORK/loadgen.log" </dev/null &
    DRILL_PID=$!
    DRILL_GROUPS+=("$DRILL_PID")
}

# drill_loadgen_figs JSON — requests, failed (unexpected statuses and transport errors), 5xx,
# and the slowest route's p95 from a loadgen summary, as figures. The p95 leaves out sign-in,
# registration (password hashing, ~0.3 s by design) and uploads (bodies).
drill_loadgen_figs() {
    local json=$1
    if ! jq -e .requests "$json" >/dev/null 2>&1; then
        drill_log "no loadgen summary"
        tail -n 20 "$DRILL_WORK/loadgen.log" >&2
        drill_fig requests 0
        DRILL_BROKEN+=("the load generator ran")
        return 0
    fi
    drill_fig requests "$(jq .requests "$json")"
    drill_fig failed "$(jq .unexpected "$json")"
    drill_fig 5xx "$(jq '[.routes[].statuses | to_entries[] | select(.key >= "500") | .value]
        | add // 0' "$json")"
    drill_fig p95_ms "$(jq '[.routes[] | select(.route | test("/api/auth/|/api/upload") | not)
        | .p95_ms] | max // 0 | round' "$json")"
}

# drill_redis_stop / drill_redis_start — take our Redis away and bring it back, empty, on the
# same port (services.sh started it without persistence).
drill_redis_stop() {
    redis-cli -u "$REDIS_URL" shutdown nosave >/dev/null 2>&1 || true
    drill_until 10 bash -c "! redis-cli -u '$REDIS_URL' ping" || true
}

drill_redis_start() {
    local port=${REDIS_URL##*:} dir=$VIDSCOPE_SVC_DIR/redis
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes --daemonize yes \
        --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" --save '' \
        --appendonly no >/dev/null
    drill_until 10 _svc_redis_pong "$REDIS_URL"
}

# drill_pg_restart — a fast restart of our Postgres (every connection is terminated).
drill_pg_restart() {
    _svc_as_pg "$_VIDSCOPE_PG_CTL" -D "$_VIDSCOPE_PG_DATA" -m fast -w -t 60 restart >/dev/null
}

# drill_tmpfs DIR MIB — mount a tmpfs of MIB MiB on DIR (unmounted at exit).
drill_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=${2}m" tmpfs "$1"
    DRILL_MOUNTS+=("$1")
}

drill_fig() { DRILL_FIGS+=("$1 $2"); }

# drill_within SECONDS LIMIT — SECONDS (a number, or ">N" for "still running at N") <= LIMIT.
drill_within() { [[ $1 != ">"* ]] && awk -v v="$1" -v l="$2" 'BEGIN { exit !(v <= l) }'; }

# drill_figure KEY — the value recorded for KEY.
drill_figure() {
    local f
    for f in "${DRILL_FIGS[@]}"; do
        [[ $f == "$1 "* ]] && { printf '%s\n' "${f#* }"; return 0; }
    done
    return 1
}

# drill_check "guarantee" CMD... — record the guarantee as broken when CMD fails.
drill_check() {
    local what=$1
    shift
    if "$@" >&2; then
        drill_log "holds: $what"
    else
        drill_log "BROKEN: $what"
        DRILL_BROKEN+=("$what")
    fi
}

# drill_finish [RESULT] — the figures, then the table row `| drill | result | figures |
# broken guarantees |` as the last line; exits 0 when every guarantee held.
drill_finish() {
    ((DRILL_DONE)) && return 0
    DRILL_DONE=1
    local result=${1:-}
    [[ -z $result ]] && { ((${#DRILL_BROKEN[@]})) && result=BROKEN || result=ok; }
    local figs="" broken="" f
    for f in "${DRILL_FIGS[@]}"; do figs+="${figs:+, }$f"; done
    for f in "${DRILL_BROKEN[@]}"; do broken+="${broken:+; }$f"; done
    printf '| %s | %s | %s | %s |\n' "$DRILL_NAME" "$result" "$figs" "${broken:--}" >&3
    [[ $result == ok ]] && exit 0
    [[ $result == TIMEOUT ]] && exit 124
    exit 1
}

drill_cleanup() {
    local rc=$? pid m i
    trap - TERM INT
    [[ -n $DRILL_WATCHDOG ]] && drill_kill_group "$DRILL_WATCHDOG" KILL
    for pid in "${DRILL_CHILDREN[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${DRILL_GROUPS[@]}"; do drill_kill_group "$pid" TERM; done
    for pid in "${DRILL_GROUPS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            drill_alive "$pid" || break
            sleep 0.1
        done
        drill_kill_group "$pid" KILL
    done
    stop_services >/dev/null 2>&1 || true
    for m in "${DRILL_MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    if [[ ${DRILL_KEEP:-0} == 1 ]]; then
        drill_log "kept $DRILL_WORK"
    elif [[ -n $DRILL_WORK ]]; then
        rm -rf -- "$DRILL_WORK"
    fi
    return "$rc"
}
