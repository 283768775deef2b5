#!/usr/bin/env bash
# Telemetry overhead benchmark (docs/DESIGN.md "Performance budget", docs/performance.md): throughput of
# GET /api/test-otel (server span, one child span around a SQLite query, one log line, one
# metric point) with telemetry off, on at 100 % and on at 10 % sampling, exporting over OTLP
# gRPC to a local receiver (otlp-sink, which decodes and discards).
#
# Budget: >= 80 % of "off" throughput at 100 % sampling, >= 95 % at 10 %.
#
# How it copes with a shared VM, whose speed drifts within seconds: one API process per
# setting runs for the whole benchmark (all pinned to the same core, the idle ones idle), and
# the load moves from one to the next in short runs, so a round of all settings takes a few
# seconds and each setting's share is computed against "off" in the same round. The order
# rotates each round. The reported share is the median of the per-round shares, with the
# middle half of them next to it as the spread.
#
# Usage: scripts/bench-overhead.sh [ROUNDS (30)] [SECONDS per run (2)] [CONNECTIONS (16)]
#   EXTRA="s0 s0-spans ..." adds settings from scripts/lib/bench.sh (bench_env) to the rounds,
#   reported next to "off" without a budget (e.g. to split the unsampled cost by signal).
# Needs: wrk (apt-get install wrk), taskset (util-linux). Prints a table and exits 1 if a
# budget is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-30}
SECS=${2:-2}
CONNS=${3:-16}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }

# shellcheck source=lib/bench.sh
source scripts/lib/bench.sh

# The API gets core 0; the load generator and the receiver share core 1, so the exporter's
# work competes with request handling exactly as it would in production.
CPUS=$(nproc)
api_cpu=0; load_cpu=$(( CPUS > 1 ? 1 : 0 ))

bench_setup taskset -c "$load_cpu"

read -r -a extra <<<"${EXTRA:-}"
settings=(off s100 s10 "${extra[@]}")
declare -A port=() pid=()
for name in "${settings[@]}"; do
  port[$name]=$(free_port)
  env=()
  bench_env "$name" "${port[$name]}"
  env "${env[@]}" taskset -c "$api_cpu" target/release/vidscope-api >/dev/null 2>"$work/$name.err" &
  pid[$name]=$!
  bench_pids+=("${pid[$name]}")
done
for name in "${settings[@]}"; do
  bench_wait_healthy "${port[$name]}" 200 || { echo "$name did not start:" >&2; cat "$work/$name.err" >&2; exit 2; }
  taskset -c "$load_cpu" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${port[$name]}/api/test-otel" >/dev/null
done

# CPU time of the API process (user + system, all threads: the exporters' included) per
# request, next to the throughput: it does not depend on the load generator keeping up.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_one() { # name -> prints "requests/sec µs-of-CPU-per-request"
  local name=$1 out rps n t0 t1
  t0=$(cpu_ticks "${pid[$name]}")
  out=$(taskset -c "$load_cpu" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:${port[$name]}/api/test-otel")
  t1=$(cpu_ticks "${pid[$name]}")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v r="$rps" -v t="$((t1 - t0))" -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%s %.1f\n", r, t / hz * 1e6 / n}'
}

declare -A rps=() cpu=()
count=${#settings[@]}
for r in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((count - 1))); do
    name=${settings[$(( (i + r) % count ))]}
    read -r rps[$name,$r] cpu[$name,$r] < <(run_one "$name")
  done
  line="round $r"
  for name in "${settings[@]}"; do
    line+=$(printf '  %s %.0f' "$name" "${rps[$name,$r]}")
  done
  echo "$line" >&2
done

# quartiles: numbers on stdin -> "q1 median q3"
quartiles() {
  sort -g | awk '{a[NR]=$1}
    function q(p,  i, f) {i = 1 + (NR - 1) * p; f = int(i); return a[f] + (i - f) * (a[f + 1] - a[f])}
    END {printf "%s %s %s\n", q(0.25), q(0.5), q(0.75)}'
}
column() { # name -> the per-round values of "rps" or "cpu" (the array named by $2)
  local -n arr=$2
  for r in $(seq "$ROUNDS"); do echo "${arr[$1,$r]}"; done
}
shares() { # name -> per-round throughput as a percentage of "off" in the same round
  for r in $(seq "$ROUNDS"); do
    awk -v a="${rps[$1,$r]}" -v o="${rps[off,$r]}" 'BEGIN {print 100 * a / o}'
  done
}

echo
echo "GET /api/test-otel, ${ROUNDS} rounds x ${SECS}s, ${CONNS} connections, API pinned to 1 core"
echo "(medians; share = per-round throughput / 'off' in the same round, with its middle half)"
declare -A share=()
for name in "${settings[@]}"; do
  read -r _ r_med _ < <(column "$name" rps | quartiles)
  read -r _ c_med _ < <(column "$name" cpu | quartiles)
  read -r s_q1 s_med s_q3 < <(shares "$name" | quartiles)
  share[$name]=$s_med
  case $name in
    off) label="telemetry off"; budget="" ;;
    s100) label="on, 100 % sampled, gRPC"; budget="(budget >= 80 %)" ;;
    s10) label="on, 10 % sampled, gRPC"; budget="(budget >= 95 %)" ;;
    *) label=$name; budget="" ;;
  esac
  awk -v l="$label" -v r="$r_med" -v m="$s_med" -v a="$s_q1" -v b="$s_q3" -v c="$c_med" -v bu="$budget" \
    'BEGIN {printf "%-26s %8.0f req/s  %5.1f %% (%5.1f-%5.1f)  %6.1f us CPU/request  %s\n", l, r, m, a, b, c, bu}'
done
kill -INT "$sink_pid" 2>/dev/null || true; sleep 0.3
echo "receiver: $(tail -n 1 "$work/sink.log")"
awk -v a="${share[s100]}" -v b="${share[s10]}" 'BEGIN {exit !(a >= 80 && b >= 95)}' || { echo "budget missed" >&2; exit 1; }
