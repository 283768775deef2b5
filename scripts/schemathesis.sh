#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup is called from a trap
#
# scripts/schemathesis.sh — hold the OpenAPI document to what the server does.
#
#   scripts/schemathesis.sh
#
# Builds `vidscope`, starts `vidscope up` on a free loopback port with a throwaway data dir
# (SQLite, local object store, telemetry files, no Redis: every OTEL_*, DATABASE_URL,
# REDIS_URL and S3_* setting of the caller is dropped), creates an admin with
# `vidscope user add`, signs in for a session cookie, then runs schemathesis with every check
# against `/api/openapi.json` twice: anonymous, and signed in as that admin (the cookie as a
# header). Any failure of either run fails the script. Destructive calls are harmless: the data
# dir is deleted at the end.
#
# What the runs leave out, and why, is in scripts/schemathesis.toml and docs/testing.md.
#
# Environment knobs:
#   VIDSCOPE_SCHEMATHESIS_VENV      the venv to install schemathesis into
#                                   (default: target/schemathesis-venv)
#   VIDSCOPE_SCHEMATHESIS_EXAMPLES  test cases per operation and phase (default 30)
#   VIDSCOPE_SCHEMATHESIS_MAX_TIME  time budget of each run, in seconds (default 60)
#   VIDSCOPE_SCHEMATHESIS_SEED      generation seed (default 1: CI runs are reproducible)
#   VIDSCOPE_SCHEMATHESIS_KEEP=1    keep the data dir and the reports (path printed)
#   VIDSCOPE_BIN                    use this vidscope binary instead of building one
#   CARGO_TARGET_DIR                where the binary is built (default: target)

set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$repo_root"

# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

# schemathesis is pinned with its whole dependency tree in scripts/schemathesis-requirements.txt:
# a new release adds checks, and CI must not start failing on a change nobody made here.
requirements=$repo_root/scripts/schemathesis-requirements.txt
venv=${VIDSCOPE_SCHEMATHESIS_VENV:-$repo_root/target/schemathesis-venv}
examples=${VIDSCOPE_SCHEMATHESIS_EXAMPLES:-30}
max_time=${VIDSCOPE_SCHEMATHESIS_MAX_TIME:-60}
seed=${VIDSCOPE_SCHEMATHESIS_SEED:-1}
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}

log() { printf '==> schemathesis: %s\n' "$*" >&2; }

# ------------------------------------------------------------------ schemathesis
install_schemathesis() {
    # The venv keeps a copy of the requirements it was made from: reuse it only if they match.
    if [[ -x $venv/bin/schemathesis ]] && cmp -s -- "$requirements" "$venv/requirements.txt"; then
        return 0
    fi
    log "installing $(grep '^schemathesis==' "$requirements") into $venv"
    rm -rf -- "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 ships venv separately.
        ensure_apt_packages python3-venv
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp -- "$requirements" "$venv/requirements.txt"
}
install_schemathesis
log "$("$venv/bin/schemathesis" --version)"

# ------------------------------------------------------------------ the server
if [[ -n ${VIDSCOPE_BIN:-} ]]; then
    bin=$VIDSCOPE_BIN # scripts/test.sh: the binary its test build made
else
    log "building vidscope"
    cargo build --locked -p vidscope-cli --bin vidscope
    bin=$target_dir/debug/vidscope
fi
[[ -x $bin ]] || {
    log "no vidscope binary at $bin"
    exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/vidscope-schemathesis.XXXXXX")
server_pid=""
cleanup() {
    local rc=$?
    if [[ -n $server_pid ]]; then
        _svc_kill_pid "$server_pid" "vidscope up"
    fi
    if [[ ${VIDSCOPE_SCHEMATHESIS_KEEP:-0} == 1 ]]; then
        log "kept $work"
    else
        rm -rf -- "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT

port=$(_svc_pick_port 29080)
base="http://127.0.0.1:$port"
data_dir=$work/data

# The embedded defaults only: nothing of the caller's services or exporters leaks in. The
# login throttle is raised so that it does not turn most login cases into 429s and hide the
# route's own checks (the throttle has its tests in crates/api/tests/api/auth.rs).
# One command, not a shell function: started in the background, `$!` is then the server's own
# pid (env execs it), which cleanup can stop. A function would run in a subshell of its own,
# and stopping that subshell left `vidscope up` running after every run.
vidscope=(env -u DATABASE_URL -u REDIS_URL -u S3_ENDPOINT -u S3_ACCESS_KEY_ID -u S3_SECRET_ACCESS_KEY
    -u S3_REGION -u S3_BUCKET_NAME -u VIDSCOPE_ADMIN_EMAIL -u VIDSCOPE_ADMIN_PASSWORD)
while IFS= read -r name; do
    vidscope+=(-u "$name")
done < <(env | sed -n 's/^\(OTEL_[A-Z_]*\)=.*/\1/p')
vidscope+=(VIDSCOPE_DATA_DIR="$data_dir" RUST_LOG=warn VIDSCOPE_LOGIN_MAX_FAILURES=1000000 "$bin")

admin_email=schemathesis-admin@example.test
admin_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
VIDSCOPE_USER_PASSWORD=$admin_password "${vidscope[@]}" user add --email "$admin_email" --role admin \
    >"$work/user-add.log" 2>&1 || {
    cat "$work/user-add.log" >&2
    exit 1
}

"${vidscope[@]}" up --addr "127.0.0.1:$port" >"$work/up.log" 2>&1 &
server_pid=$!
_svc_wait_for "vidscope up" "$server_pid" "$work/up.log" -- curl -fsS "$base/healthz"
log "vidscope up on $base (data in $data_dir)"

# The session cookie, from the login answer's Set-Cookie.
cookie=$(curl -fsS -o /dev/null -D - -H 'content-type: application/json' \
    --data "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" \
    "$base/api/auth/login" | sed -n 's/^[Ss]et-[Cc]ookie: \(vidscope_session=[0-9a-f]*\);.*/\1/p')
if [[ -z $cookie ]]; then
    log "signing in as $admin_email gave no session cookie"
    exit 1
fi

# ------------------------------------------------------------------ the runs
# run NAME ARGS...: one schemathesis run with every check, bounded in examples and time, its
# output in $work/NAME.log. `timeout` is the backstop if a request hangs past schemathesis's
# own budget. One worker: with two, hypothesis's lambda descriptions (ast.parse in two
# threads) crashed a run with CPython 3.11.7's "AST constructor recursion depth mismatch", a
# fault of the tool, not the API.
run() {
    local name=$1 config=$2 rc=0 start=$SECONDS
    shift 2
    # From the temp dir: schemathesis keeps a cache in its working directory.
    (cd -- "$work" && timeout --kill-after=10 $((max_time * 2 + 60)) \
        "$venv/bin/schemathesis" --config-file "$config" run \
        "$base/api/openapi.json" \
        --checks all \
        --max-examples "$examples" \
        --max-time "$max_time" \
        --seed "$seed" \
        --workers 1 \
        --request-timeout 10 \
        --no-color \
        --generation-database none \
        --report junit --report-dir "$work/reports/$name" \
        "$@") >"$work/$name.log" 2>&1 || rc=$?
    log "run $name: exit $rc after $((SECONDS - start)) s" 2>>"$work/$name.log"
    return "$rc"
}

# The session goes in as the document's `session` scheme (not a raw Cookie header), so the
# checks that leave it out (ignored_auth, negative data without it) do leave it out.
# Logout and signing out everywhere would end the very session the run signs in with, turning
# every later answer into a 401; the anonymous run calls them (without a session they end
# none).
{
    cat -- "$repo_root/scripts/schemathesis.toml"
    # shellcheck disable=SC2016  # schemathesis expands ${...} itself, from the environment
    printf '\n[auth.openapi.session]\napi_key = "${VIDSCOPE_SCHEMATHESIS_SESSION}"\n'
} >"$work/signed-in.toml"
export VIDSCOPE_SCHEMATHESIS_SESSION=${cookie#vidscope_session=}

# Both runs at once, one core each (schemathesis is one Python thread; each run is bounded by
# time), then their output one after the other.
log "runs: anonymous and signed-in, side by side"
run anonymous "$repo_root/scripts/schemathesis.toml" &
anonymous_pid=$!
run signed-in "$work/signed-in.toml" --exclude-operation-id logout \
    --exclude-operation-id signOutEverywhere &
signed_in_pid=$!
failed=0
wait "$anonymous_pid" || failed=1
wait "$signed_in_pid" || failed=1
for name in anonymous signed-in; do
    log "run: $name"
    cat -- "$work/$name.log" >&2
done

if ! _svc_pid_alive "$server_pid"; then
    log "vidscope up died during the runs"
    _svc_log_tail "$work/up.log"
    failed=1
fi
if ((failed)); then
    _svc_log_tail "$work/up.log"
    log "FAILED"
    exit 1
fi
log "passed"
