#!/usr/bin/env bash
# shellcheck shell=bash
#
# scripts/lib/services.sh — start the backing services vidscope's tests need
# (PostgreSQL, Redis, an S3-compatible store) on loopback, and stop them again.
#
# Source it; do not execute it:
#
#     source scripts/lib/services.sh
#     trap stop_services EXIT
#     start_postgres; start_redis; start_s3
#
# Functions:
#   ensure_apt_packages PKG...  install the Debian packages that are missing
#   start_postgres              reuse $DATABASE_URL if it answers, else start our own
#   start_redis                 reuse $REDIS_URL if it answers, else start our own
#   start_s3                    always start our own s3s-fs (installing it if needed)
#   stop_services               stop only what start_* started; remove the temp dir
#
# Exports on success: DATABASE_URL, REDIS_URL, S3_ENDPOINT, S3_ACCESS_KEY_ID,
# S3_SECRET_ACCESS_KEY, S3_REGION.
#
# Knobs (all optional):
#   VIDSCOPE_SVC_DIR        where our services keep data and logs (default: mktemp -d)
#   VIDSCOPE_KEEP_SVC_DIR=1 do not delete VIDSCOPE_SVC_DIR in stop_services (debugging)
#   VIDSCOPE_SVC_FRESH=1    never reuse a running Postgres/Redis: always start our own (the
#                           fault drills, which restart, flush and stop what they start)
#   VIDSCOPE_PG_PORT        port for our own Postgres  (default 25432)
#   VIDSCOPE_REDIS_PORT     port for our own Redis     (default 26379)
#   VIDSCOPE_S3_PORT        port for our own s3s-fs    (default 28014)
#   VIDSCOPE_SVC_TIMEOUT    seconds to wait for a service to become ready (default 60)
#
# Every function reports failure through its return status and never relies on
# `set -e`: bash ignores errexit inside a function that is called from an `if`,
# `||` or `&&`, so each step that can fail is checked explicitly.

set -euo pipefail

# Sourcing twice must not forget what the first copy started.
if [[ -n ${_VIDSCOPE_SERVICES_SH:-} ]]; then
    return 0
fi
_VIDSCOPE_SERVICES_SH=1

# Pinned: s3s-fs 0.17 needs a newer rustc than the project's 1.95.
_VIDSCOPE_S3S_FS_VERSION=0.14.1

# Internal state (what *we* started), consumed by stop_services.
_VIDSCOPE_SVC_DIR_CREATED=0 # 1 if we made VIDSCOPE_SVC_DIR with mktemp
_VIDSCOPE_PG_CTL=""         # pg_ctl of the cluster we started
_VIDSCOPE_PG_DATA=""        # its data directory
_VIDSCOPE_REDIS_PIDFILE=""  # pidfile of the redis-server we started
_VIDSCOPE_S3_PID=""         # PID of the s3s-fs we started
_VIDSCOPE_APT_UPDATED=0     # apt-get update runs at most once per shell
_VIDSCOPE_SVC_PATHS=()      # paths we made inside a caller-chosen VIDSCOPE_SVC_DIR

_svc_log() { printf '==> %s\n' "$*" >&2; }
_svc_err() { printf '==> ERROR: %s\n' "$*" >&2; }

# Print the last lines of one or more log files (those that exist) to stderr.
_svc_log_tail() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        printf -- '---- last 30 lines of %s ----\n' "$f" >&2
        tail -n 30 -- "$f" >&2 || true
        printf -- '----\n' >&2
    done
}

# Run a command as root: directly when we are root, else through sudo.
_svc_as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -- "$@"
    else
        _svc_err "need root (or sudo) to run: $*"
        return 1
    fi
}

# Run a command as the postgres OS user (initdb and postgres refuse to run as root).
_svc_as_pg() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@" # a non-root caller runs the cluster as itself
    fi
}

# Create VIDSCOPE_SVC_DIR on first use (mktemp -d unless the caller chose one).
_svc_dir() {
    if [[ -z ${VIDSCOPE_SVC_DIR:-} ]]; then
        VIDSCOPE_SVC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vidscope-svc.XXXXXX") || {
            _svc_err "mktemp -d failed"
            return 1
        }
        _VIDSCOPE_SVC_DIR_CREATED=1
        # mktemp makes it 0700; the postgres user must be able to traverse it.
        chmod 0711 "$VIDSCOPE_SVC_DIR" || return 1
        _svc_log "service dir: $VIDSCOPE_SVC_DIR"
    else
        mkdir -p -- "$VIDSCOPE_SVC_DIR" || return 1
    fi
}

# Succeeds if something accepts TCP connections on 127.0.0.1:$1.
# Whether a server could listen on 127.0.0.1:$1. A bind test, not a connect test: a port
# held by a client connection or a TIME_WAIT socket accepts no connection but still refuses
# the bind (s3s-fs died with "Address already in use" on a port the connect test called free,
# right after a benchmark had opened thousands of connections).
_svc_port_in_use() {
    ! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

# Print $1 if it can be bound, else the next such port above it. The defaults sit below
# Linux's ephemeral range (32768-60999), where client connections take their local ports.
_svc_pick_port() {
    local port=$1 last=$(($1 + 100))
    while ((port <= last)); do
        if ! _svc_port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
        port=$((port + 1))
    done
    _svc_err "no free port in $1..$last on 127.0.0.1"
    return 1
}

# _svc_wait_for NAME PID LOG... -- CMD...
# Poll CMD until it succeeds, at most VIDSCOPE_SVC_TIMEOUT seconds. Fails early if
# PID (unless empty or 0) dies. On failure, names the service and shows its logs.
_svc_wait_for() {
    local name=$1 pid=$2
    shift 2
    local logs=()
    while (($#)) && [[ $1 != -- ]]; do
        logs+=("$1")
        shift
    done
    shift # the --
    local timeout=${VIDSCOPE_SVC_TIMEOUT:-60}
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [[ -n $pid && $pid != 0 ]] && ! _svc_pid_alive "$pid"; then
            _svc_err "$name exited during startup (pid $pid)"
            _svc_log_tail "${logs[@]}"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            _svc_err "$name did not become ready within ${timeout}s"
            _svc_log_tail "${logs[@]}"
            return 1
        fi
        sleep 0.1 # polling interval, not a readiness guess
    done
}

# ensure_apt_packages PKG... — install the Debian packages that are not installed.
ensure_apt_packages() {
    local missing=() pkg status
    for pkg in "$@"; do
        # `dpkg -s` also succeeds for removed packages that left config files,
        # so look for the "install ok installed" status explicitly. (Capture,
        # don't pipe into `grep -q`: with pipefail, dpkg's SIGPIPE would count
        # as "missing".)
        status=$(dpkg -s "$pkg" 2>/dev/null) || status=""
        if [[ $'\n'$status$'\n' != *$'\nStatus: install ok installed\n'* ]]; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0

    _svc_log "installing Debian packages: ${missing[*]}"
    # Wait for a concurrent apt/dpkg instead of failing on its lock.
    local apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    if ((_VIDSCOPE_APT_UPDATED == 0)); then
        _svc_as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get "${apt_opts[@]}" update -qq || {
            _svc_err "apt-get update failed"
            return 1
        }
        _VIDSCOPE_APT_UPDATED=1
    fi
    # dpkg is chatty (hundreds of lines for ffmpeg): keep its output in a log
    # and show the tail only if the install fails.
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/vidscope-apt.XXXXXX") || return 1
    if ! _svc_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" \
        >"$log" 2>&1; then
        _svc_err "apt-get install ${missing[*]} failed"
        _svc_log_tail "$log"
        rm -f -- "$log"
        return 1
    fi
    rm -f -- "$log"
    _svc_log "installed: ${missing[*]}"
}

# Ensure command $1 exists, installing Debian package $2 if it does not.
_svc_need_cmd() {
    command -v "$1" >/dev/null 2>&1 && return 0
    ensure_apt_packages "$2" || return 1
    command -v "$1" >/dev/null 2>&1 || {
        _svc_err "$1 still missing after installing $2"
        return 1
    }
}

# Directory of the newest PostgreSQL server binaries (/usr/lib/postgresql/N/bin).
_svc_pg_bindir() {
    local d best="" best_v=-1 v
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb && -x $d/pg_ctl ]] || continue
        v=${d#/usr/lib/postgresql/}
        v=${v%%/*}
        [[ $v =~ ^[0-9]+$ ]] || continue
        if ((v > best_v)); then
            best_v=$v
            best=$d
        fi
    done
    [[ -n $best ]] || return 1
    printf '%s\n' "$best"
}

# _svc_reuse VAR NAME URL CHECK... — when `CHECK... URL` succeeds, export VAR=URL and
# return 0 (a running NAME is reused); else return 1, saying so when a set VAR is overridden.
_svc_reuse() {
    local var=$1 name=$2 url=$3
    shift 3
    [[ ${VIDSCOPE_SVC_FRESH:-0} == 1 ]] && return 1
    if "$@" "$url"; then
        export "$var=$url"
        _svc_log "using running ${name} at ${url}"
        return 0
    fi
    if [[ -n ${!var:-} ]]; then
        _svc_log "${var}=${!var} does not answer; starting our own ${name} and overriding ${var}"
    fi
    return 1
}

_svc_redis_answers() {
    [[ $(timeout 5 redis-cli -u "$1" ping 2>/dev/null) == PONG ]]
}

# start_postgres — export a DATABASE_URL that answers.
start_postgres() {
    local default_url=postgres://postgres@127.0.0.1:5432/postgres
    local url=${DATABASE_URL:-$default_url}

    _svc_need_cmd pg_isready postgresql-client || return 1
    _svc_reuse DATABASE_URL postgres "$url" pg_isready -q -t 3 -d && return 0
    if [[ -n $_VIDSCOPE_PG_DATA ]]; then
        _svc_err "postgres was already started by this shell (${_VIDSCOPE_PG_DATA}) but does not answer"
        return 1
    fi

    local bindir
    if ! bindir=$(_svc_pg_bindir); then
        ensure_apt_packages postgresql || return 1
        bindir=$(_svc_pg_bindir) || {
            _svc_err "no initdb/pg_ctl under /usr/lib/postgresql/*/bin after installing postgresql"
            return 1
        }
    fi
    _svc_dir || return 1
    local port
    port=$(_svc_pick_port "${VIDSCOPE_PG_PORT:-25432}") || return 1

    local pgroot=$VIDSCOPE_SVC_DIR/pg
    local data=$pgroot/data log=$pgroot/postgres.log
    if [[ -e $data ]]; then
        _svc_err "$data already exists (left over from an earlier run?); remove it or use another VIDSCOPE_SVC_DIR"
        return 1
    fi
    _VIDSCOPE_SVC_PATHS+=("$pgroot")
    if ((EUID == 0)); then
        install -d -o postgres -g postgres -m 0700 "$pgroot" || return 1
        if ! runuser -u postgres -- test -x "$pgroot"; then
            _svc_err "the postgres user cannot reach $pgroot; make its parent directories world-traversable or choose another VIDSCOPE_SVC_DIR"
            return 1
        fi
    else
        install -d -m 0700 "$pgroot" || return 1
    fi

    _svc_log "starting postgres ($bindir) on 127.0.0.1:$port"
    _svc_as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale >"$pgroot/initdb.log" 2>&1 || {
        _svc_err "initdb failed"
        _svc_log_tail "$pgroot/initdb.log"
        return 1
    }
    # Settings go into postgresql.conf rather than `pg_ctl -o`, which would be
    # re-split by a shell. No Unix socket: tests use TCP, and this avoids
    # socket-path length limits and clashes with the system cluster.
    cat >>"$data/postgresql.conf" <<EOF || return 1

# --- vidscope test cluster (scripts/lib/services.sh) ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF

    # Record before starting so that stop_services cleans up even if the wait fails.
    _VIDSCOPE_PG_CTL=$bindir/pg_ctl
    _VIDSCOPE_PG_DATA=$data
    local timeout=${VIDSCOPE_SVC_TIMEOUT:-60}
    _svc_as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t "$timeout" start >/dev/null || {
        _svc_err "postgres failed to start on 127.0.0.1:$port"
        _svc_log_tail "$log"
        return 1
    }
    url=postgres://postgres@127.0.0.1:$port/postgres
    _svc_wait_for postgres "" "$log" -- pg_isready -q -t 2 -d "$url" || return 1
    export DATABASE_URL=$url
    _svc_log "postgres ready: DATABASE_URL=$DATABASE_URL"
}

# start_redis — export a REDIS_URL that answers PING.
start_redis() {
    local default_url=redis://127.0.0.1:6379
    local url=${REDIS_URL:-$default_url}

    _svc_need_cmd redis-cli redis-tools || return 1
    _svc_reuse REDIS_URL redis "$url" _svc_redis_answers && return 0
    if [[ -n $_VIDSCOPE_REDIS_PIDFILE ]]; then
        _svc_err "redis was already started by this shell but does not answer"
        return 1
    fi

    _svc_need_cmd redis-server redis-server || return 1
    _svc_dir || return 1
    local port
    port=$(_svc_pick_port "${VIDSCOPE_REDIS_PORT:-26379}") || return 1
    local dir=$VIDSCOPE_SVC_DIR/redis
    _VIDSCOPE_SVC_PATHS+=("$dir")
    mkdir -p -- "$dir" || return 1

    _svc_log "starting redis on 127.0.0.1:$port"
    _VIDSCOPE_REDIS_PIDFILE=$dir/redis.pid
    # --daemonize: the launcher returns once the server has forked; config errors
    # make it exit non-zero first (its output goes to start.log).
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
        --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" \
        --logfile "$dir/redis.log" --save '' --appendonly no \
        >"$dir/start.log" 2>&1 || {
        _svc_err "redis-server failed to start on 127.0.0.1:$port"
        _svc_log_tail "$dir/start.log" "$dir/redis.log"
        return 1
    }
    url=redis://127.0.0.1:$port
    _svc_wait_for redis "" "$dir/start.log" "$dir/redis.log" -- \
        _svc_redis_pong "$url" || return 1
    export REDIS_URL=$url
    _svc_log "redis ready: REDIS_URL=$REDIS_URL (pid $(cat "$dir/redis.pid" 2>/dev/null || echo '?'))"
}

_svc_redis_pong() {
    [[ $(timeout 2 redis-cli -u "$1" ping 2>/dev/null) == PONG ]]
}

# Print the path of an s3s-fs binary, installing it with cargo if there is none.
_svc_s3s_fs_bin() {
    local cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs
    if command -v s3s-fs >/dev/null 2>&1; then
        command -v s3s-fs
        return 0
    fi
    if [[ -x $cargo_bin ]]; then
        printf '%s\n' "$cargo_bin"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || {
        _svc_err "s3s-fs is not installed and cargo is not on PATH to install it"
        return 1
    }
    # Later runs find it in ~/.cargo/bin. At opt-level 1 rather than release's 3: a test store
    # serving kilobytes does not need the speed, and CI builds it on every run (3 min 18 s of
    # CPU here at opt-level 1).
    _svc_log "installing s3s-fs ${_VIDSCOPE_S3S_FS_VERSION} with cargo install (a few minutes, once)"
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
        cargo install "s3s-fs@${_VIDSCOPE_S3S_FS_VERSION}" --features binary --locked >&2 || {
        _svc_err "cargo install s3s-fs@${_VIDSCOPE_S3S_FS_VERSION} failed"
        return 1
    }
    [[ -x $cargo_bin ]] || {
        _svc_err "cargo install finished but $cargo_bin is missing"
        return 1
    }
    printf '%s\n' "$cargo_bin"
}

_svc_http_answers() {
    local code
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1") || true
    [[ -n $code && $code != 000 ]]
}

# start_s3 — start our own s3s-fs and export S3_* for it.
start_s3() {
    if [[ -n $_VIDSCOPE_S3_PID ]] && _svc_pid_alive "$_VIDSCOPE_S3_PID"; then
        _svc_log "s3s-fs already running: S3_ENDPOINT=${S3_ENDPOINT:-?}"
        return 0
    fi
    _svc_need_cmd curl curl || return 1
    local bin
    bin=$(_svc_s3s_fs_bin) || return 1
    local version
    version=$("$bin" --version 2>/dev/null || true)
    if [[ $version != "s3s-fs ${_VIDSCOPE_S3S_FS_VERSION}" ]]; then
        _svc_log "note: $bin reports '${version:-no version}', tested with ${_VIDSCOPE_S3S_FS_VERSION}"
    fi
    _svc_dir || return 1
    local port
    port=$(_svc_pick_port "${VIDSCOPE_S3_PORT:-28014}") || return 1
    local root=$VIDSCOPE_SVC_DIR/s3 log=$VIDSCOPE_SVC_DIR/s3s-fs.log
    _VIDSCOPE_SVC_PATHS+=("$root" "$log")
    mkdir -p -- "$root" || return 1

    local access_key=vidscope-test secret_key=vidscope-test-secret
    if [[ -n ${S3_ENDPOINT:-} ]]; then
        _svc_log "ignoring S3_ENDPOINT=${S3_ENDPOINT}; tests always get their own s3s-fs"
    fi
    _svc_log "starting s3s-fs on 127.0.0.1:$port (root $root)"
    "$bin" --host 127.0.0.1 --port "$port" \
        --access-key "$access_key" --secret-key "$secret_key" \
        "$root" >"$log" 2>&1 </dev/null &
    _VIDSCOPE_S3_PID=$!
    # Any HTTP status means it is serving (unauthenticated requests get 403).
    _svc_wait_for s3s-fs "$_VIDSCOPE_S3_PID" "$log" -- \
        _svc_http_answers "http://127.0.0.1:$port/" || return 1

    export S3_ENDPOINT=http://127.0.0.1:$port
    export S3_ACCESS_KEY_ID=$access_key
    export S3_SECRET_ACCESS_KEY=$secret_key
    export S3_REGION=us-east-1
    _svc_log "s3s-fs ready: S3_ENDPOINT=$S3_ENDPOINT (pid $_VIDSCOPE_S3_PID)"
}

# Succeeds if PID is running. A zombie (exited, waiting to be reaped by init,
# which can take a moment for daemons) counts as gone.
_svc_pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
    stat=${stat##*) } # drop "pid (comm) "; the state letter comes next
    [[ ${stat:0:1} != Z ]]
}

# Send SIGTERM to PID, wait up to 10 s, then SIGKILL.
_svc_kill_pid() {
    local pid=$1 name=$2 i
    _svc_pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        _svc_pid_alive "$pid" || return 0
        sleep 0.1
    done
    _svc_log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# stop_services — stop what start_* started, remove the temp dir. Safe to call
# more than once and from a `trap ... EXIT`: it never fails and keeps $?.
stop_services() {
    local rc=$?
    local pid

    if [[ -n $_VIDSCOPE_S3_PID ]]; then
        if _svc_pid_alive "$_VIDSCOPE_S3_PID"; then
            _svc_log "stopping s3s-fs (pid $_VIDSCOPE_S3_PID)"
            _svc_kill_pid "$_VIDSCOPE_S3_PID" s3s-fs
        fi
        wait "$_VIDSCOPE_S3_PID" 2>/dev/null || true # reap our child quietly
        _VIDSCOPE_S3_PID=""
    fi

    if [[ -n $_VIDSCOPE_REDIS_PIDFILE ]]; then
        pid=$(cat "$_VIDSCOPE_REDIS_PIDFILE" 2>/dev/null || true)
        if [[ $pid =~ ^[0-9]+$ ]] && _svc_pid_alive "$pid"; then
            _svc_log "stopping redis (pid $pid)"
            _svc_kill_pid "$pid" redis
        fi
        _VIDSCOPE_REDIS_PIDFILE=""
    fi

    if [[ -n $_VIDSCOPE_PG_DATA ]]; then
        if [[ -f $_VIDSCOPE_PG_DATA/postmaster.pid ]]; then
            pid=$(head -n 1 "$_VIDSCOPE_PG_DATA/postmaster.pid" 2>/dev/null || true)
            _svc_log "stopping postgres (pid ${pid:-?})"
            # Fast shutdown; if that hangs or fails, kill the postmaster by its PID.
            if ! _svc_as_pg "$_VIDSCOPE_PG_CTL" -D "$_VIDSCOPE_PG_DATA" -m fast -w -t 30 \
                stop >/dev/null 2>&1; then
                [[ $pid =~ ^[0-9]+$ ]] && _svc_kill_pid "$pid" postgres
            fi
        fi
        _VIDSCOPE_PG_DATA=""
        _VIDSCOPE_PG_CTL=""
    fi

    if [[ ${VIDSCOPE_KEEP_SVC_DIR:-0} == 1 ]]; then
        [[ -n ${VIDSCOPE_SVC_DIR:-} ]] && _svc_log "keeping service dir $VIDSCOPE_SVC_DIR"
    elif ((_VIDSCOPE_SVC_DIR_CREATED)); then
        # Our own mktemp dir: remove all of it.
        rm -rf -- "$VIDSCOPE_SVC_DIR" || true
    else
        # A caller-chosen dir: remove only what we put there.
        local p
        for p in "${_VIDSCOPE_SVC_PATHS[@]}"; do
            rm -rf -- "$p" || true
        done
    fi
    _VIDSCOPE_SVC_PATHS=()
    if ((_VIDSCOPE_SVC_DIR_CREATED)); then
        _VIDSCOPE_SVC_DIR_CREATED=0
        unset VIDSCOPE_SVC_DIR
    fi
    return "$rc"
}
