#!/usr/bin/env bash
# Where spans start being dropped with a healthy collector (issue 27, defect 10).
#
# span-load (crates/testkit/src/bin/span-load) emits the two spans of GET /api/test-otel per
# request, at a steady rate, through vidscope's telemetry to otlp-sink over OTLP gRPC (every
# request decoded, then discarded: a collector that is never the bottleneck). For each
# configuration the rate rises until spans are dropped; the ceiling is the highest rate that
# dropped none. Results go to docs/performance.md by hand.
#
# Usage: scripts/bench-span-ceiling.sh [SECONDS per rate (10)] [RATES in spans/s...]
#   CONFIGS="default queue64k batch2048" picks configurations (see config_env below).
#   BACKEND=sdk measures the stock backend (default fast).
#   PIN=0 leaves the processes unpinned (default: the load and its export thread on CPU 0,
#   the sink on CPU 1, as scripts/bench-overhead.sh pins the API).
# Needs: python3 (free ports), taskset unless PIN=0.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
shift || true
RATES=("$@")
[[ ${#RATES[@]} -gt 0 ]] || RATES=(5000 10000 15000 20000 30000 40000 60000 80000 120000)
read -r -a CONFIGS <<<"${CONFIGS:-default queue64k batch2048}"
BACKEND=${BACKEND:-fast}
PIN=${PIN:-1}

# free_port
# shellcheck source=lib/bench.sh
source scripts/lib/bench.sh

load_cpu=() sink_cpu=()
if [[ $PIN == 1 ]]; then
  command -v taskset >/dev/null || { echo "taskset is missing (or PIN=0)" >&2; exit 2; }
  load_cpu=(taskset -c 0) sink_cpu=(taskset -c 1)
fi

cargo build --release --locked -p vidscope-testkit --bin otlp-sink --bin span-load >&2
work=$(mktemp -d)
sink_pid=""
cleanup() {
  [[ -n $sink_pid ]] && kill "$sink_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
grpc_port=$(free_port)
"${sink_cpu[@]}" target/release/otlp-sink --grpc "127.0.0.1:$grpc_port" \
  --http "127.0.0.1:$(free_port)" --interval 3600 >"$work/sink.log" 2>&1 &
sink_pid=$!
sleep 1

# config_env NAME: fills `env` with the span settings of a configuration.
config_env() {
  env=(OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$grpc_port"
    OTEL_LOGS_EXPORTER=none OTEL_METRICS_EXPORTER=none RUST_LOG=warn
    VIDSCOPE_TELEMETRY_BACKEND="$BACKEND")
  case $1 in
    default) ;;                                     # queue 4 096, batch 512, delay 500 ms
    queue64k) env+=(OTEL_BSP_MAX_QUEUE_SIZE=65536) ;;
    batch2048) env+=(OTEL_BSP_MAX_QUEUE_SIZE=65536 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2048) ;;
    *) echo "unknown configuration $1" >&2; exit 2 ;;
  esac
}

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

printf '%-10s %8s %10s %10s %10s %8s %8s\n' config rate achieved exported dropped "drop %" "RSS MiB"
summary=()
for name in "${CONFIGS[@]}"; do
  config_env "$name"
  ceiling=0 misses=0 bound=""
  for rate in "${RATES[@]}"; do
    line=$(env "${env[@]}" "${load_cpu[@]}" target/release/span-load --rate "$rate" --seconds "$SECS" | tail -n 1)
    achieved=$(field "$line" achieved); spans=$(field "$line" spans)
    exported=$(field "$line" exported); dropped=$(field "$line" dropped)
    rss=$(field "$line" max_rss_mib)
    pct=$(awk -v d="$dropped" -v n="$spans" 'BEGIN {printf "%.1f", n ? d * 100 / n : 0}')
    printf '%-10s %8d %10.0f %10d %10d %8s %8.0f\n' "$name" "$rate" "$achieved" "$exported" "$dropped" "$pct" "$rss"
    # The load generator itself could not keep up: the rate was not really offered.
    if awk -v a="$achieved" -v r="$rate" 'BEGIN {exit !(a < 0.95 * r)}'; then
      bound=" (load-bound at $rate: $(printf '%.0f' "$achieved") spans/s achieved)"
      break
    fi
    if [[ $dropped == 0 ]]; then
      ceiling=$rate misses=0
    else
      misses=$((misses + 1))
      [[ $misses -ge 2 ]] && break
    fi
  done
  summary+=("$name: no drops up to $ceiling spans/s$bound")
done
echo
echo "backend $BACKEND, $SECS s per rate, $(nproc) CPUs:"
printf '  %s\n' "${summary[@]}"
