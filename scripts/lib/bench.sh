# Shared by the benchmark scripts (sourced, not run): build, scratch directory, the OTLP
# receiver and the API's environment per telemetry setting.
#
# After `bench_setup [PREFIX...]`: $work (removed on exit); $grpc_port and $sink_pid, the
# receiver's (started with PREFIX in front, e.g. `taskset -c 1`; it logs to $work/sink.log);
# and the functions free_port, bench_env and bench_wait_healthy.

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

bench_setup() {
  cargo build --release --locked -p vidscope-api -p vidscope-testkit --bin vidscope-api --bin otlp-sink >&2
  work=$(mktemp -d)
  bench_pids=()
  trap bench_cleanup EXIT
  grpc_port=$(free_port)
  local http_port; http_port=$(free_port)
  "$@" target/release/otlp-sink --grpc "127.0.0.1:$grpc_port" --http "127.0.0.1:$http_port" \
    --interval 3600 >"$work/sink.log" 2>&1 &
  sink_pid=$!
  bench_pids+=("$sink_pid")
}

bench_cleanup() {
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# bench_env NAME PORT: fills the array `env` with the API's environment for a setting:
# off (telemetry disabled), s0 (on, nothing sampled), s10 (10 %), s100 (100 %), and s0-nologs,
# s0-nometrics, s0-spans (nothing sampled, logs and/or metrics not exported), s10-spans (10 %,
# spans only); exports go
# over OTLP gRPC to the receiver. Each setting gets a fresh data directory.
bench_env() {
  local name=$1 port=$2 dir="$work/$1-data"
  rm -rf "$dir"; mkdir -p "$dir"
  env=(VIDSCOPE_DATA_DIR="$dir" VIDSCOPE_ADDR="127.0.0.1:$port" RUST_LOG=info
    OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$grpc_port")
  case $name in
    off)  env+=(OTEL_SDK_DISABLED=true) ;;
    s0)   env+=(OTEL_TRACES_SAMPLER=parentbased_always_off) ;;
    s10)  env+=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1) ;;
    s100) env+=(OTEL_TRACES_SAMPLER=parentbased_always_on) ;;
    # Nothing sampled with one signal's exporter off, to split the unsampled cost by signal.
    s0-nologs) env+=(OTEL_TRACES_SAMPLER=parentbased_always_off OTEL_LOGS_EXPORTER=none) ;;
    s0-nometrics) env+=(OTEL_TRACES_SAMPLER=parentbased_always_off OTEL_METRICS_EXPORTER=none) ;;
    s0-spans) env+=(OTEL_TRACES_SAMPLER=parentbased_always_off OTEL_LOGS_EXPORTER=none OTEL_METRICS_EXPORTER=none) ;;
    # Spans alone at 10 %: the budget read as "for spans only" (option (b) in the README).
    s10-spans) env+=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1 OTEL_LOGS_EXPORTER=none OTEL_METRICS_EXPORTER=none) ;;
    *) echo "unknown configuration $name" >&2; exit 2 ;;
  esac
}

# bench_wait_healthy PORT [TRIES] [INTERVAL]: fails when the API never answers.
bench_wait_healthy() {
  for _ in $(seq "${2:-100}"); do
    curl -fs "http://127.0.0.1:$1/healthz" >/dev/null && return 0
    sleep "${3:-0.05}"
  done
  return 1
}
