#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions called indirectly (trap, run_phase) look unreachable to shellcheck 0.9
#
# scripts/test.sh — the one test command of vidscope.
#
#   scripts/test.sh [ARGS...]
#
# Installs what the tests need (Debian packages, s3s-fs), starts or reuses
# PostgreSQL, Redis and an S3 store on loopback, checks the formatting, builds the
# tests once, then runs the whole suite three times: against SQLite, against
# PostgreSQL, and against SQLite on the stock OpenTelemetry backend
# (VIDSCOPE_TELEMETRY_BACKEND=sdk), then schemathesis against the OpenAPI document
# of a running `vidscope up` (scripts/schemathesis.sh), then each fuzz target for a few
# seconds (scripts/fuzz.sh). clippy's lints run inside the test build (clippy-driver as the
# workspace's rustc); the fuzz build runs in the background beside the test runs.
# ARGS go to the test runner unchanged (e.g. `scripts/test.sh otlp` runs only
# tests whose name contains "otlp").
#
# Environment knobs:
#   VIDSCOPE_TEST_SKIP_LINT=1   skip `cargo fmt --check` and `cargo clippy`
#   VIDSCOPE_TEST_SKIP_FUZZ=1   skip the fuzz smoke phase (scripts/fuzz.sh)
#   VIDSCOPE_TEST_FUZZ_SECONDS  seconds each fuzz target runs in that phase (default 5)
#   (target/telemetry-seen/<run>/ keeps what each run emitted, for the registry check:
#    python3 scripts/telemetry-registry.py --update-from target/telemetry-seen/*)
#   DATABASE_URL / REDIS_URL    reuse these servers if they answer (else we start our own)
#   VIDSCOPE_SVC_DIR, VIDSCOPE_KEEP_SVC_DIR, VIDSCOPE_*_PORT: see scripts/lib/services.sh
#
# Exits non-zero if any phase failed; prints a summary with per-phase timings.

set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$repo_root"

# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

# ---------------------------------------------------------------- bookkeeping
phase_names=()
phase_results=()
phase_secs=()
db_results=() # e.g. "sqlite: ok"
current_phase=""
current_start=0
failed=0
script_start=$SECONDS

# Start timing a phase.
phase_begin() {
    current_phase=$1
    current_start=$SECONDS
    printf '\n==> [%s]\n' "$1" >&2
}

# Record the result of the current phase ("ok", "skipped", or a failure text).
phase_end() {
    phase_names+=("$current_phase")
    phase_results+=("$1")
    phase_secs+=("$((SECONDS - current_start))")
    case $1 in
    ok | skipped*) ;;
    *) failed=1 ;;
    esac
    current_phase=""
}

# Record a phase that did not run.
phase_skip() {
    current_phase=$1
    current_start=$SECONDS
    phase_end "skipped${2:+ ($2)}"
}

# run_phase NAME CMD... — run a phase whose failure does not stop the script.
# Returns CMD's status, so callers must add `|| ...` (set -e is on).
run_phase() {
    local name=$1 rc=0
    shift
    phase_begin "$name"
    "$@" || rc=$?
    if ((rc == 0)); then
        phase_end ok
    else
        phase_end "FAIL (exit $rc)"
        printf '==> [%s] FAILED (exit %d)\n' "$name" "$rc" >&2
    fi
    return "$rc"
}

print_summary() {
    local i d joined=""
    for d in "${db_results[@]}"; do
        joined+="${joined:+, }$d"
    done
    {
        printf '\n==> summary\n'
        printf '    %-28s %-36s %7s\n' PHASE RESULT SECONDS
        for i in "${!phase_names[@]}"; do
            printf '    %-28s %-36s %7s\n' "${phase_names[i]}" "${phase_results[i]}" "${phase_secs[i]}"
        done
        printf '    %-28s %-36s %7s\n' total "" "$((SECONDS - script_start))"
        printf '    databases: %s\n' "${joined:-none ran}"
    } >&2
}

# EXIT trap: mark an interrupted phase failed, stop our services, print the summary.
finish() {
    local rc=$?
    # The background builds have their own process groups (setsid): cargo and its rustc
    # processes go with them.
    local pid
    for pid in ${fuzz_build_pid:-} ${prepare_pid:-} ${k8s_pid:-}; do
        kill -- -"$pid" 2>/dev/null || true
    done
    if [[ -n $current_phase ]]; then
        phase_end "FAIL (exit $rc)"
    fi
    stop_services || true
    print_summary
    if ((rc == 0 && failed)); then
        rc=1
    fi
    if ((rc == 0)); then
        printf '==> PASSED\n' >&2
    else
        printf '==> FAILED (exit %d)\n' "$rc" >&2
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ toolchain
# Fail fast, before any slow install. rustup puts cargo in ~/.cargo/bin, which
# a non-login shell (CI) may not have on PATH.
phase_begin "rust toolchain"
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    cat >&2 <<'EOF'
==> ERROR: cargo not found.
    Install the Rust toolchain with rustup (https://rustup.rs):
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    then open a new shell (or `source ~/.cargo/env`) and re-run scripts/test.sh.
EOF
    exit 1
fi
printf '==> %s; %s\n' "$(cargo --version)" "$(rustc --version 2>/dev/null || echo 'rustc: ?')" >&2
phase_end ok

# ------------------------------------------------------------------- services
# Failures here are fatal (set -e); the EXIT trap records the failed phase.
# What the build needs is installed first. The rest (Chromium, ffmpeg, Prometheus, ... and the
# s3s-fs build: about 40 s and 95 s on a fresh machine) installs in the background beside the
# test build; the phase after the build waits for it. The downloads overlap the build for
# free; s3s-fs's build competes with it for the cores (the build took 80 s longer), so the
# saving is mostly the apt time.
phase_begin "debian packages (build)"
ensure_apt_packages curl ca-certificates gcc libc6-dev
phase_end ok

prepare_pid=""
prepare_log="$repo_root/target/prepare.log"
mkdir -p -- "$repo_root/target"
# jq and ffmpeg are called by the tests; chromium and chromium-driver run the browser tests
# (crates/cli/tests/browser.rs) headless; docker-compose, prometheus and python3-yaml the stack
# checks. The start_* functions install their own servers/clients only when needed.
setsid bash -c 'source scripts/lib/services.sh && ensure_apt_packages "$@" && _svc_s3s_fs_bin >/dev/null' \
    _ jq ffmpeg redis-server docker-compose prometheus python3-yaml chromium chromium-driver \
    >"$prepare_log" 2>&1 &
prepare_pid=$!

phase_begin "start postgres"
start_postgres
# The SQLite runs unset DATABASE_URL; tests that need a server database in every run (several
# processes on one database: crates/cli/tests/replicas.rs) find it here.
export VIDSCOPE_TEST_POSTGRES_URL=$DATABASE_URL
phase_end ok

phase_begin "start redis"
start_redis
phase_end ok

# --------------------------------------------------------- test environment
# The test processes inherit: REDIS_URL, S3_ENDPOINT, S3_ACCESS_KEY_ID,
# S3_SECRET_ACCESS_KEY, S3_REGION (exported by start_*), VIDSCOPE_TEST_DB (set
# per run below), DATABASE_URL (Postgres run only) and RUST_BACKTRACE.
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
# With a committed sqlx query cache, compile against it: the build runs before
# any migration, so sqlx macros must not look at the live (empty) database.
if [[ -d .sqlx ]]; then
    export SQLX_OFFLINE=${SQLX_OFFLINE:-true}
fi

if cargo nextest --version >/dev/null 2>&1; then
    use_nextest=1
    runner=(cargo nextest run --workspace --locked)
    # Like `cargo test`, do not fail when a name filter matches nothing.
    no_tests_flag=1
    for arg in "$@"; do
        [[ $arg == --no-tests* ]] && no_tests_flag=0
    done
    ((no_tests_flag)) && runner+=(--no-tests=warn)
    # The second and third runs leave out the test binaries whose result cannot depend on the
    # run's database or backend (.config/nextest.toml, profile `rerun`).
    rerunner=("${runner[@]}" --profile rerun)
else
    use_nextest=0
    runner=(cargo test --workspace --locked)
    rerunner=("${runner[@]}")
fi
printf '==> test runner: %s\n' "${runner[*]}" >&2

# -------------------------------------------------------------------- lint
lint_fmt() {
    cargo fmt --version >/dev/null 2>&1 || {
        printf '==> ERROR: rustfmt missing; run: rustup component add rustfmt\n' >&2
        return 1
    }
    cargo fmt --all -- --check
}
# clippy lints inside the test build: cargo compiles the workspace's own crates through
# clippy-driver (RUSTC_WORKSPACE_WRAPPER, which is what `cargo clippy` sets), and clippy-driver
# is rustc with clippy's lints, so one build makes the test binaries and lints every target
# `--all-targets` would (lib, bins, tests; there are no benches or examples). A separate
# `cargo clippy` checks every dependency again: 10 min 46 s on a background core here. The
# variable stays exported, so no later cargo command rebuilds the workspace without it (the
# fuzz build, on nightly, unsets it). The build's diagnostics of the workspace's crates go to
# $lint_log; the "cargo clippy" phase fails when there are any, as `-D warnings` would.
lint_log="$repo_root/target/clippy.log"
clippy_driver=""
if [[ ${VIDSCOPE_TEST_SKIP_LINT:-0} != 1 ]]; then
    clippy_driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
fi
if [[ -n $clippy_driver ]]; then
    export RUSTC_WORKSPACE_WRAPPER=$clippy_driver
fi
build_tests() {
    rm -f -- "$lint_log"
    cargo test --workspace --locked --no-run --message-format json \
        | python3 scripts/lib/cargo_diagnostics.py "$lint_log"
}
lint_clippy() {
    if [[ -z $clippy_driver ]]; then
        printf '==> ERROR: clippy missing; run: rustup component add clippy\n' >&2
        return 1
    fi
    if [[ ! -f $lint_log ]]; then
        # The test build did not finish: lint on its own.
        cargo clippy --workspace --all-targets --locked -- -D warnings
        return
    fi
    if [[ -s $lint_log ]]; then
        printf '==> clippy and rustc found these in the workspace (shown during the build too):\n' >&2
        cat -- "$lint_log" >&2
        return 1
    fi
    printf '==> no warnings (clippy ran inside the test build)\n' >&2
}
if [[ ${VIDSCOPE_TEST_SKIP_LINT:-0} == 1 ]]; then
    phase_skip "cargo fmt --check" "VIDSCOPE_TEST_SKIP_LINT=1"
else
    run_phase "cargo fmt --check" lint_fmt || true
fi

# -------------------------------------------------------------------- tests
# The fuzz phase's build (several minutes from cold) starts as soon as the tests are built, at
# `nice 19`, beside the test runs, which leave much of the two cores idle (they wait on
# servers, ffmpeg and browsers: the SQLite run's processes took 57 s of CPU in 159 s here, the
# servers' own not counted); at that niceness it takes little more than what the tests leave.
# The fuzz phase waits for it, then builds nothing, or shows the error if the build failed.
fuzz_build_pid=""
fuzz_build_log="$repo_root/target/fuzz-build.log"
fuzz_wanted() {
    [[ ${VIDSCOPE_TEST_SKIP_FUZZ:-0} != 1 ]] && cargo +nightly --version >/dev/null 2>&1
}
start_fuzz_build() {
    fuzz_wanted || return 0
    FUZZ_PROFILE=smoke FUZZ_NICE=19 FUZZ_BUILD_ONLY=1 setsid scripts/fuzz.sh >"$fuzz_build_log" 2>&1 &
    fuzz_build_pid=$!
    printf '==> building the fuzz targets in the background (log: %s)\n' "${fuzz_build_log#"$repo_root"/}" >&2
}
# The fuzz phase: the background build finished first, then the targets run.
fuzz_smoke() {
    if [[ -n $fuzz_build_pid ]]; then
        local waited=$SECONDS rc=0
        wait "$fuzz_build_pid" || rc=$?
        fuzz_build_pid=""
        printf '==> the background fuzz build ended (exit %d; waited %d s for it); its last line: %s\n' \
            "$rc" "$((SECONDS - waited))" "$(tail -n 1 "$fuzz_build_log")" >&2
    fi
    FUZZ_PROFILE=smoke scripts/fuzz.sh "${VIDSCOPE_TEST_FUZZ_SECONDS:-5}"
}

# crates/cli/tests/loadgen.rs writes the metric names, units and types the services really
# exported under load here; check-stack then checks dashboards and rules against them.
emitted_metrics="$repo_root/target/emitted-metrics.json"
mkdir -p -- "$(dirname -- "$emitted_metrics")"
rm -f -- "$emitted_metrics"
export VIDSCOPE_EMITTED_METRICS="$emitted_metrics"

# Every OTLP capture receiver writes the shape of what it received (names, kinds, keys,
# types; crates/testkit/src/seen.rs) under this directory, one subdirectory per run; the
# "telemetry registry" phase holds it against crates/telemetry/registry.yaml.
seen_root="$repo_root/target/telemetry-seen"
rm -rf -- "$seen_root"
mkdir -p -- "$seen_root"
seen_dirs=()

# Build once; both runs below reuse the artifacts (nextest builds with the same
# profile and flags, so it does not rebuild).
build_ok=0
run_phase "build tests" build_tests && build_ok=1
if [[ ${VIDSCOPE_TEST_SKIP_LINT:-0} == 1 ]]; then
    phase_skip "cargo clippy" "VIDSCOPE_TEST_SKIP_LINT=1"
else
    run_phase "cargo clippy" lint_clippy || true
fi
((build_ok)) && start_fuzz_build
# The background installs must be done before any test: their failure stops the script.
phase_begin "debian packages, s3s-fs (background)"
prepare_rc=0
wait "$prepare_pid" || prepare_rc=$?
prepare_pid=""
cat -- "$prepare_log" >&2
((prepare_rc == 0)) || exit "$prepare_rc"
phase_end ok

phase_begin "start s3 (s3s-fs)"
start_s3
phase_end ok

# The Kubernetes checks need nothing the tests make: they run beside the tests (their first run
# installs the validators from npm and PyPI, most of their time), and their phase at the end
# shows what they printed.
k8s_log="$repo_root/target/check-k8s.log"
setsid scripts/check-k8s.sh >"$k8s_log" 2>&1 &
k8s_pid=$!
check_k8s() {
    local rc=0
    wait "$k8s_pid" || rc=$?
    k8s_pid=""
    cat -- "$k8s_log" >&2
    return "$rc"
}

if ((build_ok)); then
    seen_dirs=("$seen_root/sqlite-fast" "$seen_root/postgres-fast" "$seen_root/sqlite-sdk")
    mkdir -p -- "${seen_dirs[@]}"
    if run_phase "tests (sqlite)" env -u DATABASE_URL VIDSCOPE_TEST_DB=sqlite \
        VIDSCOPE_TELEMETRY_SEEN_DIR="${seen_dirs[0]}" "${runner[@]}" "$@"; then
        db_results+=("sqlite: ok")
    else
        db_results+=("sqlite: FAIL")
    fi
    if run_phase "tests (postgres)" env VIDSCOPE_TEST_DB=postgres \
        VIDSCOPE_TELEMETRY_SEEN_DIR="${seen_dirs[1]}" "${rerunner[@]}" "$@"; then
        db_results+=("postgres: ok")
    else
        db_results+=("postgres: FAIL")
    fi
    # The same suite on the stock OpenTelemetry path (tracing-opentelemetry, the appender
    # bridge, the SDK's batch processors and OTLP exporters; docs/telemetry.md), SQLite only:
    # every assertion on exported telemetry then holds for both backends.
    if run_phase "tests (sqlite, sdk backend)" env -u DATABASE_URL VIDSCOPE_TEST_DB=sqlite \
        VIDSCOPE_TELEMETRY_BACKEND=sdk VIDSCOPE_TELEMETRY_SEEN_DIR="${seen_dirs[2]}" \
        "${rerunner[@]}" "$@"; then
        db_results+=("sqlite + sdk backend: ok")
    else
        db_results+=("sqlite + sdk backend: FAIL")
    fi
    if ((use_nextest)); then
        # nextest does not run doctests. Pass ARGS along only if they are plain
        # name filters: nextest's own options would confuse `cargo test`.
        doc_args=("$@")
        for arg in "$@"; do
            if [[ $arg == -* ]]; then
                doc_args=()
                printf '==> doctests: not passing runner options (%s) to cargo test --doc\n' "$*" >&2
                break
            fi
        done
        run_phase "doctests" env -u DATABASE_URL VIDSCOPE_TEST_DB=sqlite \
            cargo test --workspace --locked --doc "${doc_args[@]}" || true
    fi
    # The OpenAPI document against the server: schemathesis (pinned, from PyPI, in a venv under
    # target/) with every check, anonymous and signed in, on `vidscope up` with a throwaway
    # data dir. It reuses the binary the test build made (cargo uplifts it to target/debug).
    run_phase "schemathesis (openapi)" env VIDSCOPE_BIN="${CARGO_TARGET_DIR:-$repo_root/target}/debug/vidscope" \
        scripts/schemathesis.sh || true
else
    phase_skip "tests (sqlite)" "build failed"
    phase_skip "tests (postgres)" "build failed"
    phase_skip "schemathesis (openapi)" "build failed"
fi

# ------------------------------------------------------------------ fuzzing
# Every fuzz target of fuzz/ for a few seconds from its committed seeds (scripts/fuzz.sh,
# docs/reliability.md#fuzzing), so that a parser that panics again on or near its seeds (the
# crashes found so far are among them) fails here. The `smoke` build is unoptimised: quick to
# build from cold, and a few seconds do not need speed. The build needs the nightly toolchain,
# which a machine may not have: then the phase is skipped and says so.
if [[ ${VIDSCOPE_TEST_SKIP_FUZZ:-0} == 1 ]]; then
    phase_skip "fuzz (smoke)" "VIDSCOPE_TEST_SKIP_FUZZ=1"
elif ! cargo +nightly --version >/dev/null 2>&1; then
    printf '==> fuzz (smoke): SKIPPED, the nightly toolchain is missing: the fuzz targets did not run (rustup toolchain install nightly)\n' >&2
    phase_skip "fuzz (smoke)" "no nightly toolchain"
else
    run_phase "fuzz (smoke)" fuzz_smoke || true
fi

# ------------------------------------------------------------- docs checks
run_phase "docs links" python3 scripts/check-docs.py || true
# docs/capacity.md's tables are what scripts/lib/capacity.py makes of docs/capacity.json (the
# measurements of the last scripts/capacity.sh run; the benchmark itself is not part of this).
run_phase "capacity doc" python3 scripts/lib/capacity.py doc --check || true

# ------------------------------------------------------- telemetry registry
# Everything the three runs emitted must be in crates/telemetry/registry.yaml, everything in it
# must have been emitted by some run, its metrics must match the catalog, and
# docs/telemetry-reference.md must be what the registry generates. With ARGS (a name filter,
# or runner options that may filter) not every test ran, so the second direction is skipped.
registry_args=(--check-docs)
if ((${#seen_dirs[@]})); then
    registry_args+=(--check-seen "${seen_dirs[@]}")
    if (($#)); then
        printf '==> telemetry registry: test.sh was given arguments (%s): not checking that every registered item was emitted\n' \
            "$*" >&2
        registry_args+=(--emitted-only)
    fi
else
    printf '==> telemetry registry: no test run, checking the catalog and the generated doc only\n' >&2
fi
run_phase "telemetry registry" python3 scripts/telemetry-registry.py "${registry_args[@]}" || true

# ---------------------------------------------------------- stack checks
if [[ -x scripts/check-stack.sh ]]; then
    if [[ -s $emitted_metrics ]]; then
        run_phase "scripts/check-stack.sh" scripts/check-stack.sh || true
    elif (($# > 0)); then
        # A name filter skipped the loadgen test: check against the catalog, and say so.
        printf '==> check-stack: %s was not written (name filter); metric names fall back to the catalog\n' \
            "$emitted_metrics" >&2
        run_phase "scripts/check-stack.sh" env -u VIDSCOPE_EMITTED_METRICS scripts/check-stack.sh || true
    else
        # A whole run must check the dashboards against what a loadgen run with failures
        # really emitted: the catalog lists names that may never reach Prometheus.
        phase_begin "scripts/check-stack.sh"
        printf '==> check-stack: %s was not written: the loadgen test did not pass\n' "$emitted_metrics" >&2
        phase_end "FAIL (no emitted metrics)"
    fi
elif [[ -e scripts/check-stack.sh ]]; then
    printf '==> WARNING: scripts/check-stack.sh exists but is not executable; not run\n' >&2
    phase_skip "scripts/check-stack.sh" "not executable"
fi

# ------------------------------------------------------- kubernetes
# Every manifest under deploy/kubernetes/ against the Kubernetes API schemas (kubernetes-models,
# kubernetes-validate --strict), checkov with zero failed checks, the generated ConfigMaps up
# to date; tools pinned in deploy/kubernetes/validate/, installed under target/.
run_phase "scripts/check-k8s.sh" check_k8s || true

exit "$failed"
