#!/usr/bin/env bash
#
# scripts/fuzz.sh — builds the fuzz targets of fuzz/ (libFuzzer, through libfuzzer-sys) and
# runs them one after the other, each for a set time, and prints executions and crashes per
# target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default: $FUZZ_SECONDS, else 60); TARGETs default to every target.
# Environment knobs:
#   FUZZ_SECONDS   seconds per target when no argument gives them
#   FUZZ_RUNS      stop each target after this many executions instead (-runs), whichever
#                  comes first with the time
#   FUZZ_PROFILE   `release` (default): optimised as cargo-fuzz builds it, for long runs;
#                  `smoke`: unoptimised, several times quicker to build from cold and slower
#                  to run, for runs of a few seconds (scripts/test.sh)
#   FUZZ_NICE      niceness of the build and the fuzzing processes (default 19: the machine
#                  may be shared)
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_REPORT    also append one TSV line per target (target, executions, seconds, crashes,
#                  new corpus inputs) to this file
#   FUZZ_BUILD_ONLY=1  build, then stop (scripts/test.sh builds ahead, beside the tests)
#
# Needs the nightly toolchain (`rustup toolchain install nightly`), as cargo-fuzz does.
# cargo-fuzz itself is not needed: its build is one cargo command with coverage flags, which
# this script runs itself (the flags below are those of cargo-fuzz 0.13's `cargo fuzz build
# --sanitizer none`), and a target is libFuzzer's own program, run directly. Installing
# cargo-fuzz took 1 to 6.5 minutes on every fresh machine (CI has one each run) for that.
# Without a sanitizer: the project's crates forbid `unsafe`, and without AddressSanitizer a
# target runs several times faster (overflow checks and debug assertions stay on). The inputs
# a run finds go to fuzz/corpus-run/<target>/ (not committed); the committed seeds in
# fuzz/corpus/<target>/ are read, never written. A crash leaves its input in
# fuzz/artifacts/<target>/ and the command that replays it in the output.
#
# Exits 1 when a target crashed (or hung, or ran out of memory), 2 when it could not run.

set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$repo_root"
# scripts/test.sh compiles the main workspace through the stable toolchain's clippy-driver; the
# fuzz workspace builds on nightly, whose crates that driver cannot read.
unset RUSTC_WORKSPACE_WRAPPER

seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true
nice_level=${FUZZ_NICE:-19}
timeout=${FUZZ_TIMEOUT:-10}
profile=${FUZZ_PROFILE:-release}

if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
    printf 'fuzz.sh: SECONDS must be a positive integer (got %q)\n' "$seconds" >&2
    exit 2
fi
# cargo-fuzz's flags for `--sanitizer none`: coverage counters, comparison tracing and stack
# depth for libFuzzer, `cfg(fuzzing)`, debug assertions (and with them overflow checks), no
# branch folding (it hides branches from the coverage).
rustflags=(
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    --cfg fuzzing
    -Cllvm-args=-simplifycfg-branch-fold-threshold=0
    -Cllvm-args=-sanitizer-coverage-stack-depth
    -Cdebug-assertions
)
case $profile in
# cargo-fuzz builds release with one codegen unit: the coverage pass otherwise keeps ThinLTO
# from inlining anything, and the targets run about 3 times slower. Slow to build.
release) rustflags+=(-Ccodegen-units=1) ;;
smoke) ;;
*)
    printf 'fuzz.sh: FUZZ_PROFILE must be release or smoke (got %q)\n' "$profile" >&2
    exit 2
    ;;
esac
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    printf 'fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly\n' >&2
    exit 2
fi
# An explicit target triple keeps RUSTFLAGS off build scripts and proc macros.
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="$repo_root/fuzz/target/$triple/$profile"

mapfile -t all_targets < <(cargo +nightly metadata --manifest-path fuzz/Cargo.toml --no-deps \
    --format-version 1 | python3 -c '
import json, sys
for target in json.load(sys.stdin)["packages"][0]["targets"]:
    if "bin" in target["kind"]:
        print(target["name"])
')
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    if [[ " ${all_targets[*]} " != *" $t "* ]]; then
        printf 'fuzz.sh: no fuzz target %q (there are: %s)\n' "$t" "${all_targets[*]}" >&2
        exit 2
    fi
done

printf '==> building %d fuzz targets (profile %s, no sanitizer)\n' "${#all_targets[@]}" "$profile" >&2
build_start=$SECONDS
if ! RUSTFLAGS="${rustflags[*]} ${RUSTFLAGS:-}" nice -n "$nice_level" \
    cargo +nightly build --manifest-path fuzz/Cargo.toml --locked --target "$triple" \
    --profile "$profile" --bins >&2; then
    printf 'fuzz.sh: the fuzz targets did not build\n' >&2
    exit 2
fi
printf '==> built in %d s\n' "$((SECONDS - build_start))" >&2
[[ ${FUZZ_BUILD_ONLY:-0} == 1 ]] && exit 0

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
    nice -n "$nice_level" "$bin_dir/$t" "$run_dir" "$seeds" \
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
            printf '==> replay: %s %s\n' "${bin_dir#"$repo_root"/}/$t" "$artifact" >&2
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
