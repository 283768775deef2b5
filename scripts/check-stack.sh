#!/usr/bin/env bash
#
# scripts/check-stack.sh — static checks of the observability stack (issue 5).
#
# No Docker engine, Collector, Tempo, Loki or Grafana runs here, so the stack is NOT run end to
# end. What can be checked without them is:
#   1. docker-compose.observability.yml passes `docker-compose config -q` (Debian's 1.29), and
#      refuses to start without the passwords from .env (no default credentials); the same for
#      it merged with docker-compose.scale.yml (which also refuses to start without
#      VIDSCOPE_API_PORTS), whose merged model goes to stack_check.py
#   2. promtool check config (Prometheus v3 promtool if one is available, else promtool 2.x on
#      a copy without the v3-only `otlp:` section, which stack_check.py validates instead),
#      promtool check rules, promtool test rules
#   3. generated files are up to date: Grafana dashboards and alert rules, the Collector tiers
#      (otel-collector/agent.yaml, gateway.yaml) and their Kubernetes ConfigMaps, and
#      prometheus/prometheus.scale.yml
#   4. scripts/lib/stack_check.py: Collector/Tempo/Loki/Prometheus/Grafana config checks, the
#      trace viewer's wiring (the Collector's traces.json volume is mounted read-only into the
#      API at the path the Collector writes, and VIDSCOPE_TRACE_VIEWER_FILES names it), and the
#      metric consistency check (every queried metric is emitted or produced by the stack); the
#      Collector tiers; the scaled-out topology (replicas vs host ports, gateway identities,
#      resolver vs gateway services, both tiers scraped); queries sum across gateways
#
# Environment:
#   VIDSCOPE_EMITTED_METRICS=PATH  metrics the services really emitted (name, unit, type; see
#                                  stack_check.py). Unset: falls back to reading the metric
#                                  catalog crates/telemetry/catalog.json, and says so.
#   PROMTOOL_V3=PATH               a Prometheus v3 promtool to use for `check config`
#   VIDSCOPE_STACK_NO_INSTALL=1    do not apt-get install missing tools (fail instead)
#
# Needs (installed with apt-get when missing): docker-compose, prometheus (for promtool),
# python3-yaml. Takes a few seconds once those are installed.

set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$repo_root"

failures=()
unvalidated=()
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
# The scaled-out topology (docker-compose.scale.yml over the single-node file), rendered by
# docker-compose's own merge; stack_check.py checks the merged model (section 4).
scale=(-f docker-compose.observability.yml -f docker-compose.scale.yml)
if VIDSCOPE_API_PORTS=8080 docker-compose "${scale[@]}" --env-file "$tmp/check.env" config >"$tmp/compose-scale.yml"; then
    ok "scale override merges and is valid (docker-compose.scale.yml)"
else
    bad "docker-compose config on docker-compose.observability.yml + docker-compose.scale.yml"
    : >"$tmp/compose-scale.yml"
fi
if docker-compose "${scale[@]}" --env-file .env.example config -q >/dev/null 2>&1 ||
    VIDSCOPE_API_PORTS=8080 docker-compose "${scale[@]}" --env-file .env.example config -q >/dev/null 2>&1; then
    bad "the scale files start with .env.example's empty passwords (they must be required)"
else
    ok "the scale files refuse to start without passwords"
fi
# Without VIDSCOPE_API_PORTS both API replicas and api-lb would bind host port 8080.
if docker-compose "${scale[@]}" --env-file "$tmp/check.env" config -q >/dev/null 2>&1; then
    bad "the scale files start without VIDSCOPE_API_PORTS (host port 8080 would be bound three times)"
else
    ok "the scale files refuse to start without VIDSCOPE_API_PORTS"
fi
if grep -nE '(:latest\b|image: [^:]+$)' docker-compose.observability.yml docker-compose.scale.yml; then
    bad "unpinned image tag in a compose file"
else
    ok "every image has a pinned tag (both compose files)"
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
# prometheus.yml (single node) and prometheus.scale.yml (docker-compose.scale.yml).
for prom_cfg in prometheus/prometheus.yml prometheus/prometheus.scale.yml; do
    copy="$tmp/$(basename "$prom_cfg")"
    if [[ -n $promtool_v3 ]]; then
        # Rules live at /etc/prometheus/rules in the container; check a copy pointing here.
        sed "s#/etc/prometheus/rules/#$repo_root/prometheus/rules/#" "$prom_cfg" >"$copy"
        if "$promtool_v3" check config "$copy" >&2; then
            ok "promtool $("$promtool_v3" --version 2>&1 | head -1 | awk '{print $3}') check config $prom_cfg (full file)"
        else
            bad "promtool check config $prom_cfg"
        fi
    else
        "$PY" scripts/lib/stack_check.py --promtool-config "$copy" --promtool-source "$prom_cfg"
        if promtool check config "$copy" >&2; then
            ok "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}') check config $prom_cfg (without the v3-only otlp: section; stack_check.py checks that)"
        else
            bad "promtool check config $prom_cfg"
        fi
    fi
done
if promtool check rules prometheus/rules/*.yml >&2; then ok "promtool check rules"; else bad "promtool check rules"; fi
if (cd prometheus && promtool test rules tests/*.yml) >&2; then ok "promtool test rules"; else bad "promtool test rules"; fi

if [[ -z $promtool_v3 ]]; then
    unvalidated+=("prometheus/prometheus.yml and prometheus.scale.yml by promtool v3 (no v3 promtool here: GitHub releases unreachable; checked by promtool 2.x without otlp:) -- on a Docker machine: for f in prometheus.yml prometheus.scale.yml; do docker run --rm -v \$PWD/prometheus:/p --entrypoint promtool prom/prometheus:v3.14.0 check config /p/\$f; done")
fi

# ------------------------------------------------------------------ 2b. component validators
# Each config checked by the pinned component itself, when its binary can be had: on PATH,
# named by an env var, cached from an earlier run, or fetched from the project's GitHub
# release (only when github.com answers). Otherwise it is listed as NOT VALIDATED, with the
# command that validates it on a machine with Docker (scripts/stack-smoke.sh runs them).
step "component validators (Collector, Tempo, Loki)"
# fetch_release NAME URL MEMBER: prints a path to the binary, or nothing.
fetch_release() {
    local name=$1 url=$2 member=$3 cache=${XDG_CACHE_HOME:-$HOME/.cache}/vidscope/$1
    if [[ -x $cache/$member ]]; then
        printf '%s\n' "$cache/$member"
        return 0
    fi
    curl -fsS --max-time 5 -o /dev/null -I https://github.com 2>/dev/null || return 0
    mkdir -p "$cache"
    if [[ $url == *.tar.gz ]]; then
        curl -fsSL --max-time 300 "$url" | tar -xz -C "$cache" "$member" 2>/dev/null || return 0
    else
        curl -fsSL --max-time 300 -o "$tmp/$name.zip" "$url" &&
            python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
                "$tmp/$name.zip" "$member" "$cache" 2>/dev/null || return 0
        chmod +x "$cache/$member"
    fi
    [[ -x $cache/$member ]] && printf '%s\n' "$cache/$member"
}
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
otelcol=${OTELCOL_BIN:-$(command -v otelcol-contrib || true)}
[[ -n $otelcol ]] || otelcol=$(fetch_release otelcol \
    "https://github.com/open-telemetry/opentelemetry-collector-releases/releases/download/v0.159.0/otelcol-contrib_0.159.0_linux_$arch.tar.gz" otelcol-contrib)
# The single node, and the two tiers of docker-compose.scale.yml (the gateway's file path
# names COLLECTOR_GATEWAY_ID). The Kubernetes ConfigMaps hold the same gateway text and an
# agent that differs only in its resolver (k8s), which validate cannot resolve off-cluster.
if [[ -n $otelcol ]]; then
    for c in config agent gateway; do
        if COLLECTOR_GATEWAY_ID=check "$otelcol" validate --config="otel-collector/$c.yaml" >&2; then
            ok "otelcol-contrib validate otel-collector/$c.yaml"
        else
            bad "otelcol-contrib validate otel-collector/$c.yaml"
        fi
    done
else
    unvalidated+=("otel-collector/config.yaml, agent.yaml, gateway.yaml by otelcol-contrib 0.159.0 validate (no binary: not on PATH, OTELCOL_BIN unset, GitHub releases unreachable) -- on a Docker machine: for c in config agent gateway; do docker run --rm -e COLLECTOR_GATEWAY_ID=check -v \$PWD/otel-collector:/c otel/opentelemetry-collector-contrib:0.159.0 validate --config=/c/\$c.yaml; done")
fi
# nginx (the API round robin of docker-compose.scale.yml): Debian's nginx is 1.22, older than
# the upstream `resolve` parameter (1.27.3) the config uses, so only the pinned image can say.
unvalidated+=("nginx/api-lb.conf by nginx 1.28 -t (no nginx >= 1.27.3 here) -- on a Docker machine: docker run --rm -v \$PWD/nginx/api-lb.conf:/etc/nginx/conf.d/default.conf:ro nginx:1.28.0-alpine nginx -t")
tempo=${TEMPO_BIN:-$(command -v tempo || true)}
[[ -n $tempo ]] || tempo=$(fetch_release tempo \
    "https://github.com/grafana/tempo/releases/download/v3.0.3/tempo_3.0.3_linux_$arch.tar.gz" tempo)
if [[ -n $tempo ]]; then
    if "$tempo" -config.file=tempo/tempo.yaml -config.verify >&2; then ok "tempo -config.verify"; else bad "tempo -config.verify tempo/tempo.yaml"; fi
else
    unvalidated+=("tempo/tempo.yaml by tempo 3.0.3 -config.verify (no binary: not on PATH, TEMPO_BIN unset, GitHub releases unreachable) -- on a Docker machine: docker run --rm -v \$PWD/tempo:/t grafana/tempo:3.0.3 -config.file=/t/tempo.yaml -config.verify")
fi
loki=${LOKI_BIN:-$(command -v loki || true)}
[[ -n $loki ]] || loki=$(fetch_release loki \
    "https://github.com/grafana/loki/releases/download/v3.7.6/loki-linux-$arch.zip" "loki-linux-$arch")
if [[ -n $loki ]]; then
    if "$loki" -config.file=loki/loki.yaml -verify-config >&2; then ok "loki -verify-config"; else bad "loki -verify-config loki/loki.yaml"; fi
else
    unvalidated+=("loki/loki.yaml by loki 3.7.6 -verify-config (no binary: not on PATH, LOKI_BIN unset, GitHub releases unreachable) -- on a Docker machine: docker run --rm -v \$PWD/loki:/l grafana/loki:3.7.6 -config.file=/l/loki.yaml -verify-config")
fi
for u in "${unvalidated[@]}"; do printf '    NOT VALIDATED: %s\n' "$u" >&2; done

# ------------------------------------------------------------------ 3. generated files
step "generated files are up to date"
if "$PY" scripts/lib/stack_gen.py --check; then
    ok "dashboards, Grafana alert rules, Collector tiers (otel-collector/agent.yaml, gateway.yaml), their Kubernetes ConfigMaps and prometheus.scale.yml match scripts/lib/stack_gen.py"
else
    bad "stale generated files"
fi

# ------------------------------------------------------------------ 4. configs and metric names
step "stack_check.py (Collector, trace viewer wiring, Tempo, Loki, Prometheus, Grafana, metric names)"
if "$PY" scripts/lib/stack_check.py --compose-scale "$tmp/compose-scale.yml"; then ok "static checks"; else bad "stack_check.py"; fi

printf '\ncheck-stack: %ds, ' "$((SECONDS - start))" >&2
if ((${#unvalidated[@]})); then
    printf '%d config(s) NOT VALIDATED by their own component (see above):\n' "${#unvalidated[@]}" >&2
    printf '  - %s\n' "${unvalidated[@]}" >&2
fi
if ((${#failures[@]})); then
    printf '%d failure(s):\n' "${#failures[@]}" >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
printf 'all run checks passed (static only: the stack itself was not started; %d config(s) not validated by their component)\n' "${#unvalidated[@]}" >&2
