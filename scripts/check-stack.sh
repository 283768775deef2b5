#!/usr/bin/env bash
#
# scripts/check-stack.sh — static checks of the observability stack (issue 5).
#
# No Docker engine, Collector, Tempo, Loki or Grafana runs here, so the stack is NOT run end to
# end. What can be checked without them is:
#   1. docker-compose.observability.yml passes `docker-compose config -q` (Debian's 1.29), and
#      refuses to start without the passwords from .env (no default credentials)
#   2. promtool check config (Prometheus v3 promtool if one is available, else promtool 2.x on
#      a copy without the v3-only `otlp:` section, which stack_check.py validates instead),
#      promtool check rules, promtool test rules
#   3. generated Grafana files (dashboards, Grafana-managed alert rules) are up to date
#   4. scripts/lib/stack_check.py: Collector/Tempo/Loki/Prometheus/Grafana config checks and the
#      metric consistency check (every queried metric is emitted or produced by the stack)
#
# Environment:
#   VIDSCOPE_EMITTED_METRICS=PATH  metrics the services really emitted (name, unit, type; see
#                                  stack_check.py). Unset: falls back to parsing the metric
#                                  catalog crates/telemetry/src/catalog.rs, and says so.
#   PROMTOOL_V3=PATH               a Prometheus v3 promtool to use for `check config`
#   VIDSCOPE_STACK_NO_INSTALL=1    do not apt-get install missing tools (fail instead)
#
# Needs (installed with apt-get when missing): docker-compose, prometheus (for promtool),
# python3-yaml. Takes a few seconds once those are installed.

set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$repo_root"

failures=()
start=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

step() { printf '\n--> %s\n' "$1" >&2; }
ok() { printf '    ok: %s\n' "$1" >&2; }
bad() {
    printf '    FAIL: %s\n' "$1" >&2
    failures+=("$1")
}

# ------------------------------------------------------------------ tools
python_with_yaml() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import yaml' 2>/dev/null; then
            printf '%s\n' "$py"
            return 0
        fi
    done
    return 1
}

need_apt=()
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
python_with_yaml >/dev/null || need_apt+=(python3 python3-yaml)
if ((${#need_apt[@]})); then
    if [[ ${VIDSCOPE_STACK_NO_INSTALL:-} == 1 ]]; then
        printf 'check-stack: missing %s (VIDSCOPE_STACK_NO_INSTALL=1)\n' "${need_apt[*]}" >&2
        exit 1
    fi
    step "installing ${need_apt[*]}"
    sudo_cmd=()
    ((EUID == 0)) || sudo_cmd=(sudo)
    # Refresh the package lists only if they are missing (a fresh machine).
    if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
        "${sudo_cmd[@]}" apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi
PY=$(python_with_yaml) || {
    echo "check-stack: no python3 with PyYAML" >&2
    exit 1
}

# ------------------------------------------------------------------ 1. compose
step "docker-compose config -q (docker-compose $(docker-compose version --short 2>/dev/null || echo '?'))"
cat >"$tmp/check.env" <<'EOF'
GRAFANA_ADMIN_PASSWORD=check-stack-not-a-secret
POSTGRES_PASSWORD=check-stack-not-a-secret
S3_SECRET_ACCESS_KEY=check-stack-not-a-secret
VIDSCOPE_ADMIN_PASSWORD=check-stack-not-a-secret
VIDSCOPE_CRM_CLIENT_SECRET=check-stack-not-a-secret
EOF
if docker-compose -f docker-compose.observability.yml --env-file "$tmp/check.env" config -q; then
    ok "compose file is valid"
else
    bad "docker-compose config -q"
fi
# The example env file has empty passwords on purpose: compose must refuse it.
if docker-compose -f docker-compose.observability.yml --env-file .env.example config -q >/dev/null 2>&1; then
    bad "compose starts with .env.example's empty passwords (they must be required)"
else
    ok "compose refuses to start without passwords (no default credentials)"
fi
if grep -nE '(:latest\b|image: [^:]+$)' docker-compose.observability.yml; then
    bad "unpinned image tag in docker-compose.observability.yml"
else
    ok "every image has a pinned tag"
fi

# ------------------------------------------------------------------ 2. prometheus
step "promtool"
promtool_v3=${PROMTOOL_V3:-}
if [[ -z $promtool_v3 ]]; then
    # Prometheus v3's promtool reads the `otlp:` section; fetch it when the network allows.
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/vidscope
    ver=3.14.0
    arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
    cached="$cache/prometheus-$ver.linux-$arch/promtool"
    if [[ -x $cached ]]; then
        promtool_v3=$cached
    elif curl -fsS --max-time 5 -o /dev/null -I https://github.com 2>/dev/null; then
        mkdir -p "$cache"
        if curl -fsSL --max-time 180 -o "$tmp/prom.tgz" \
            "https://github.com/prometheus/prometheus/releases/download/v$ver/prometheus-$ver.linux-$arch.tar.gz" &&
            tar -xzf "$tmp/prom.tgz" -C "$cache" "prometheus-$ver.linux-$arch/promtool"; then
            promtool_v3=$cached
        fi
    fi
fi
if [[ -n $promtool_v3 ]]; then
    # Rules live at /etc/prometheus/rules in the container; check a copy pointing here.
    sed "s#/etc/prometheus/rules/#$repo_root/prometheus/rules/#" prometheus/prometheus.yml >"$tmp/prometheus.yml"
    if "$promtool_v3" check config "$tmp/prometheus.yml" >&2; then
        ok "promtool $("$promtool_v3" --version 2>&1 | head -1 | awk '{print $3}') check config (full file)"
    else
        bad "promtool check config"
    fi
else
    "$PY" scripts/lib/stack_check.py --promtool-config "$tmp/prometheus.yml"
    if promtool check config "$tmp/prometheus.yml" >&2; then
        ok "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}') check config (without the v3-only otlp: section; stack_check.py checks that)"
    else
        bad "promtool check config"
    fi
fi
if promtool check rules prometheus/rules/*.yml >&2; then ok "promtool check rules"; else bad "promtool check rules"; fi
if (cd prometheus && promtool test rules tests/*.yml) >&2; then ok "promtool test rules"; else bad "promtool test rules"; fi

# ------------------------------------------------------------------ 3. generated files
step "generated Grafana files are up to date"
if "$PY" scripts/lib/stack_gen.py --check; then ok "dashboards and Grafana alert rules match scripts/lib/stack_gen.py"; else bad "stale generated files"; fi

# ------------------------------------------------------------------ 4. configs and metric names
step "stack_check.py (Collector, Tempo, Loki, Prometheus, Grafana, metric names)"
if "$PY" scripts/lib/stack_check.py; then ok "static checks"; else bad "stack_check.py"; fi

printf '\ncheck-stack: %ds, ' "$((SECONDS - start))" >&2
if ((${#failures[@]})); then
    printf '%d failure(s):\n' "${#failures[@]}" >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
printf 'all passed (static only: the stack itself was not started)\n' >&2
