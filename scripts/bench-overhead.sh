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
#   EXTRA="s0 s0-spans ..." adds settings from scripts/lib/bench.sh (bench_env) to the rounds,
#   reported next to "off" without a budget (e.g. to split the unsampled cost by signal).
# Needs: wrk (apt-get install wrk), taskset (util-linux). Prints a table and exits 1 if a
# budget is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
SECS=${2:-10}
CONNS=${3:-16}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }

# shellcheck source=lib/bench.sh
source scripts/lib/bench.sh

# The API gets core 0; the load generator and the receiver share core 1, so the exporter's
# work competes with request handling exactly as it would in production.
CPUS=$(nproc)
api_cpu=0; load_cpu=$(( CPUS > 1 ? 1 : 0 ))

bench_setup taskset -c "$load_cpu"

run_one() { # name -> prints requests/sec
  local name=$1 port pid
  port=$(free_port)
  local -a env
  bench_env "$name" "$port"
  env "${env[@]}" taskset -c "$api_cpu" target/release/vidscope-api >/dev/null 2>"$work/$name.err" &
  pid=$!
  bench_wait_healthy "$port"
  # Warm-up, then the measured run.
  taskset -c "$load_cpu" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/api/test-otel" >/dev/null
  # CPU time of the API process (user + system, all threads: the exporters' included) per
  # request, next to the throughput: it does not depend on the load generator keeping up.
  local out rps n t0 t1
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(taskset -c "$load_cpu" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$port/api/test-otel")
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v r="$rps" -v t="$((t1 - t0))" -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%s %.1f\n", r, t / hz * 1e6 / n}'
}

read -r -a extra <<<"${EXTRA:-}"
declare -A results=() cpu=()
for r in $(seq "$ROUNDS"); do
  for name in off s100 s10 "${extra[@]}"; do
    read -r rps us < <(run_one "$name")
    results[$name]+="$rps "
    cpu[$name]+="$us "
    printf 'round %d %-5s %10.0f req/s %8.1f us CPU/request\n' "$r" "$name" "$rps" "$us" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
off=$(echo "${results[off]}" | median)
s100=$(echo "${results[s100]}" | median)
s10=$(echo "${results[s10]}" | median)

echo
c_off=$(echo "${cpu[off]}" | median)
c_s100=$(echo "${cpu[s100]}" | median)
c_s10=$(echo "${cpu[s10]}" | median)

echo "GET /api/test-otel, ${ROUNDS} rounds x ${SECS}s, ${CONNS} connections, API pinned to 1 core (medians)"
printf '%-28s %10.0f req/s  100.0 %%  %6.1f us CPU/request\n' "telemetry off" "$off" "$c_off"
awk -v a="$s100" -v o="$off" -v c="$c_s100" 'BEGIN {printf "%-28s %10.0f req/s  %5.1f %%  %6.1f us CPU/request  (budget >= 80 %%)\n", "on, 100 % sampled, gRPC", a, 100*a/o, c}'
awk -v a="$s10" -v o="$off" -v c="$c_s10" 'BEGIN {printf "%-28s %10.0f req/s  %5.1f %%  %6.1f us CPU/request  (budget >= 95 %%)\n", "on, 10 % sampled, gRPC", a, 100*a/o, c}'
for name in "${extra[@]}"; do
  x=$(echo "${results[$name]}" | median)
  c=$(echo "${cpu[$name]}" | median)
  awk -v n="$name" -v a="$x" -v o="$off" -v c="$c" 'BEGIN {printf "%-28s %10.0f req/s  %5.1f %%  %6.1f us CPU/request\n", n, a, 100*a/o, c}'
done
kill -INT "$sink_pid" 2>/dev/null || true; sleep 0.3
echo "receiver: $(tail -n 1 "$work/sink.log")"
awk -v a="$s100" -v b="$s10" -v o="$off" 'BEGIN {exit !(a/o >= 0.80 && b/o >= 0.95)}' || { echo "budget missed" >&2; exit 1; }
