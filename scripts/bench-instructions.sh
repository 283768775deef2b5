#!/usr/bin/env bash
# Instructions per request of the overhead benchmark's route (GET /api/test-otel), counted by
# valgrind's callgrind over every thread of the API (exporters included), for telemetry off,
# on with nothing sampled, on at 10 % and on at 100 % (OTLP gRPC to a local receiver).
#
# Why next to bench-overhead.sh: throughput and CPU time on a shared 2-core VM move by up to
# 30 % between runs of the same binary, which hides changes of a few percent. Instruction
# counts repeat to within ~1 % (~3 % at 10 %, where the sampled share varies), so they show
# what a change did.
# They do not count the kernel (socket I/O), so "off" looks cheaper here than in CPU time, and
# the shares are not the budget's: bench-overhead.sh measures the budget.
#
# Usage: scripts/bench-instructions.sh [SECONDS per configuration (6)] [CONFIGS...]
#   CONFIGS: off s0 s10 s100 (default: all four)
#   KEEP_PROFILES=DIR keeps the callgrind files (DIR/NAME.callgrind.*) for callgrind_annotate.
# Needs: valgrind, wrk, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-6}
shift || true
CONFIGS=("$@")
[[ ${#CONFIGS[@]} -gt 0 ]] || CONFIGS=(off s0 s10 s100)

for tool in valgrind callgrind_control wrk python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install -y valgrind wrk python3)" >&2; exit 2; }
done

# shellcheck source=lib/bench.sh
source scripts/lib/bench.sh
bench_setup

count() { # name -> prints "requests instructions-per-request"
  local name=$1 port pid out n total f
  port=$(free_port)
  local -a env
  bench_env "$name" "$port"
  out="$work/$name.callgrind"
  # Instrumentation starts after start-up and a warm-up, so only requests are counted.
  env "${env[@]}" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    target/release/vidscope-api >/dev/null 2>"$work/$name.err" &
  pid=$!
  bench_wait_healthy "$port" 600 0.1 || { echo "$name did not start:" >&2; cat "$work/$name.err" >&2; exit 2; }
  wrk -t1 -c4 -d3s "http://127.0.0.1:$port/api/test-otel" >/dev/null
  sleep 1
  callgrind_control -i on "$pid" >/dev/null
  n=$(wrk -t1 -c4 -d"${SECS}s" "http://127.0.0.1:$port/api/test-otel" | awk '/requests in/ {print $1}')
  # The batch processors export what these requests produced (500 ms schedule).
  sleep 1.5
  callgrind_control -d "$pid" >/dev/null
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  if [[ -n ${KEEP_PROFILES:-} ]]; then
    mkdir -p "$KEEP_PROFILES"
    rm -f "$KEEP_PROFILES/$name.callgrind".*
    cp "$out".* "$KEEP_PROFILES/"
  fi
  total=0
  for f in "$out".*; do
    total=$((total + $(awk '/^(summary|totals):/ {print $2; exit}' "$f")))
  done
  echo "$n $((total / n))"
}

printf '%-6s %8s %14s %10s\n' config requests instr/request vs-off
off=""
for name in "${CONFIGS[@]}"; do
  read -r n per < <(count "$name")
  [[ $name == off ]] && off=$per
  if [[ -n $off && $name != off ]]; then
    rel=$(awk -v a="$per" -v b="$off" 'BEGIN {printf "+%.0f%%", (a - b) * 100 / b}')
  else
    rel=""
  fi
  printf '%-6s %8d %14d %10s\n' "$name" "$n" "$per" "$rel"
done
