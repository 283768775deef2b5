#!/usr/bin/env bash
# Telemetry overhead benchmark (DESIGN.md "Performance budget"): throughput of
# GET /api/test-otel (server span, one child span around a SQLite query, one log line, one
# metric point) with telemetry off, on at 100 % and on at 10 % sampling, exporting over OTLP
# gRPC to a local receiver (otlp-sink, which decodes and discards). The three configurations
# are interleaved in rounds so drift on the machine hits them alike.
#
# Budget: >= 80 % of "off" throughput at 100 % sampling, >= 95 % at 10 %.
#
# Usage: scripts/bench-overhead.sh [ROUNDS (3)] [SECONDS per run (10)] [CONNECTIONS (16)]
# Needs: wrk (apt-get install wrk), taskset (util-linux). Prints a table and exits 1 if a
# budget is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
SECS=${2:-10}
CONNS=${3:-16}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }

cargo build --release --locked -p vidscope-api -p vidscope-testkit --bin vidscope-api --bin otlp-sink >&2

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# The API gets core 0; the load generator and the receiver share core 1, so the exporter's
# work competes with request handling exactly as it would in production.
CPUS=$(nproc)
api_cpu=0; load_cpu=$(( CPUS > 1 ? 1 : 0 ))

grpc_port=$(free_port); http_port=$(free_port)
taskset -c "$load_cpu" target/release/otlp-sink --grpc "127.0.0.1:$grpc_port" --http "127.0.0.1:$http_port" --interval 3600 >"$work/sink.log" 2>&1 &
pids+=($!)

run_one() { # name -> prints requests/sec
  local name=$1 port dir pid
  port=$(free_port)
  dir="$work/$name-data"; rm -rf "$dir"; mkdir -p "$dir"
  local -a env=(VIDSCOPE_DATA_DIR="$dir" VIDSCOPE_ADDR="127.0.0.1:$port" RUST_LOG=info)
  case $name in
    off)  env+=(OTEL_SDK_DISABLED=true) ;;
    s100) env+=(OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$grpc_port" OTEL_TRACES_SAMPLER=parentbased_always_on) ;;
    s10)  env+=(OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$grpc_port" OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1) ;;
  esac
  env "${env[@]}" taskset -c "$api_cpu" target/release/vidscope-api >/dev/null 2>"$work/$name.err" &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
  # Warm-up, then the measured run.
  taskset -c "$load_cpu" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/api/test-otel" >/dev/null
  local rps
  rps=$(taskset -c "$load_cpu" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$port/api/test-otel" | awk '/Requests\/sec/ {print $2}')
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rps"
}

declare -A results=([off]="" [s100]="" [s10]="")
for r in $(seq "$ROUNDS"); do
  for name in off s100 s10; do
    rps=$(run_one "$name")
    results[$name]+="$rps "
    printf 'round %d %-5s %10.0f req/s\n' "$r" "$name" "$rps" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
off=$(echo "${results[off]}" | median)
s100=$(echo "${results[s100]}" | median)
s10=$(echo "${results[s10]}" | median)

echo
echo "GET /api/test-otel, ${ROUNDS} rounds x ${SECS}s, ${CONNS} connections, API pinned to 1 core (median req/s)"
printf '%-28s %10.0f req/s  100.0 %%\n' "telemetry off" "$off"
awk -v a="$s100" -v o="$off" 'BEGIN {printf "%-28s %10.0f req/s  %5.1f %%  (budget >= 80 %%)\n", "on, 100 % sampled, gRPC", a, 100*a/o}'
awk -v a="$s10" -v o="$off" 'BEGIN {printf "%-28s %10.0f req/s  %5.1f %%  (budget >= 95 %%)\n", "on, 10 % sampled, gRPC", a, 100*a/o}'
kill -INT "${pids[0]}" 2>/dev/null || true; sleep 0.3
echo "receiver: $(tail -n 1 "$work/sink.log")"
awk -v a="$s100" -v b="$s10" -v o="$off" 'BEGIN {exit !(a/o >= 0.80 && b/o >= 0.95)}' || { echo "budget missed" >&2; exit 1; }
