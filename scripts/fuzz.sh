#!/usr/bin/env bash
#
# scripts/fuzz.sh — runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer), one after the
# other, each for a set time, and prints executions and crashes per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default: $FUZZ_SECONDS, else 60); TARGETs default to every target.
# Environment knobs:
#   FUZZ_SECONDS   seconds per target when no argument gives them
#   FUZZ_RUNS      stop each target after this many executions instead (-runs), whichever
#                  comes first with the time
#   FUZZ_NICE      niceness of the fuzzing processes (default 19: the machine may be shared)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_REPORT    also append one TSV line per target (target, executions, seconds, crashes,
#                  new corpus inputs) to this file
#
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed
# here with `cargo install --locked` when missing). Builds once, without a sanitizer: the
# project's crates forbid `unsafe`, and without AddressSanitizer a target runs several times
# faster (overflow checks and debug assertions stay on). The inputs a run finds go to
# fuzz/corpus-run/<target>/ (not committed); the committed seeds in fuzz/corpus/<target>/ are
# read, never written. A crash leaves its input in fuzz/artifacts/<target>/ and the command
# that replays it in the output.
#
# Exits 1 when a target crashed (or hung, or ran out of memory), 2 when it could not run.

set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$repo_root"

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true
nice_level=${FUZZ_NICE:-19}
timeout=${FUZZ_TIMEOUT:-10}

if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
    printf 'fuzz.sh: SECONDS must be a positive integer (got %q)\n' "$seconds" >&2
    exit 2
fi
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    printf 'fuzz.sh: the nightly toolchain is missing (cargo-fuzz needs it): rustup toolchain install nightly\n' >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    printf '==> installing cargo-fuzz %s\n' "$CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" >&2
fi

mapfile -t all_targets < <(cargo fuzz list)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

printf '==> building %d fuzz targets (cargo +nightly fuzz build, no sanitizer)\n' "${#all_targets[@]}" >&2
build_start=$SECONDS
if ! nice -n "$nice_level" cargo +nightly fuzz build --sanitizer none >&2; then
    printf 'fuzz.sh: the fuzz targets did not build\n' >&2
    exit 2
fi
printf '==> built in %d s\n' "$((SECONDS - build_start))" >&2

extra=()
[[ -n ${FUZZ_RUNS:-} ]] && extra+=("-runs=$FUZZ_RUNS")

declare -A execs secs crashes added
failed=0
for t in "${targets[@]}"; do
    run_dir="fuzz/corpus-run/$t"
    seeds="fuzz/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p -- "$run_dir" "$seeds" "$artifacts"
    before=$(find "$run_dir" -type f | wc -l)
    log=$(mktemp)
    printf '==> %s: %d s\n' "$t" "$seconds" >&2
    start=$SECONDS
    rc=0
    # The first corpus directory gets what the run finds; the seeds are only read.
    nice -n "$nice_level" cargo +nightly fuzz run --sanitizer none "$t" "$run_dir" "$seeds" -- \
        -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${extra[@]}" >"$log" 2>&1 || rc=$?
    secs[$t]=$((SECONDS - start))
    execs[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    [[ -n ${execs[$t]} ]] || execs[$t]=$(sed -n 's/.*Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n1)
    [[ -n ${execs[$t]} ]] || execs[$t]=0
    added[$t]=$(($(find "$run_dir" -type f | wc -l) - before))
    if ((rc == 0)); then
        crashes[$t]=0
    else
        crashes[$t]=1
        failed=1
        printf '==> %s CRASHED (exit %d); the end of its output:\n' "$t" "$rc" >&2
        grep -v '^#[0-9]' "$log" | tail -n 40 >&2
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
        [[ -n $artifact ]] &&
            printf '==> replay: cargo +nightly fuzz run --sanitizer none %s %s\n' "$t" "$artifact" >&2
    fi
    rm -f -- "$log"
    if [[ -n ${FUZZ_REPORT:-} ]]; then
        printf '%s\t%s\t%s\t%s\t%s\n' "$t" "${execs[$t]}" "${secs[$t]}" "${crashes[$t]}" "${added[$t]}" >>"$FUZZ_REPORT"
    fi
done

printf '\n%-14s %14s %8s %10s %8s %12s\n' TARGET EXECUTIONS SECONDS EXEC/S CRASHES NEW-INPUTS
for t in "${targets[@]}"; do
    rate=$((execs[$t] / (secs[$t] > 0 ? secs[$t] : 1)))
    printf '%-14s %14s %8s %10s %8s %12s\n' "$t" "${execs[$t]}" "${secs[$t]}" "$rate" "${crashes[$t]}" "${added[$t]}"
done
if ((failed)); then
    printf '==> FAILED: a target crashed (inputs in fuzz/artifacts/)\n' >&2
    exit 1
fi
printf '==> no crash\n' >&2
