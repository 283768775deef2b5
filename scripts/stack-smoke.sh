#!/usr/bin/env bash
#
# scripts/stack-smoke.sh — the compose stack, end to end, on a machine with a Docker engine.
#
#   scripts/stack-smoke.sh            # up, wait healthy, 2 min of load, assert, leave it running
#   KEEP=0 scripts/stack-smoke.sh     # ... and `down -v` at the end
#
# Steps:
#   1. validates the Collector, Tempo, Loki and Prometheus configs with the pinned images
#      themselves (what check-stack.sh cannot do without their binaries);
#   2. `docker compose up -d --build`, waits until every service with a healthcheck is healthy;
#   3. runs the load generator for LOAD_DURATION (2m);
#   4. asserts through the HTTP APIs (Loki, Tempo, Prometheus, Grafana):
#      - a log line in Loki carries a trace_id, and that trace opens in Tempo;
#      - the service graph has loadgen -> api, api -> {worker, postgresql, redis, s3},
#        worker -> crm-sandbox;
#      - a span-metrics exemplar in Prometheus names a trace that Tempo has;
#      - Grafana is healthy and its Tempo, Loki and Prometheus datasources answer.
#
# Needs: docker with the compose plugin, curl, jq. Reads the passwords from .env (copy
# .env.example first). Exits non-zero on the first failed assertion, naming it.

set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

COMPOSE=(docker compose -f docker-compose.observability.yml)
LOAD_DURATION=${LOAD_DURATION:-2m}
KEEP=${KEEP:-1}
GRAFANA=${GRAFANA_URL:-http://localhost:3000}
LOKI=http://localhost:3100
TEMPO=http://localhost:3200
PROM=http://localhost:9090

say() { printf '\n==> %s\n' "$*" >&2; }
die() {
    printf '==> FAILED: %s\n' "$*" >&2
    exit 1
}
for tool in docker curl jq; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"
[[ -f .env ]] || die "no .env: cp .env.example .env and set its passwords"
# shellcheck disable=SC1091
set -a && source .env && set +a

say "1. configs, validated by the pinned components"
docker run --rm -v "$PWD/otel-collector:/c:ro" otel/opentelemetry-collector-contrib:0.159.0 \
    validate --config=/c/config.yaml || die "otelcol validate"
docker run --rm -v "$PWD/tempo:/t:ro" grafana/tempo:3.0.3 \
    -config.file=/t/tempo.yaml -config.verify || die "tempo -config.verify"
docker run --rm -v "$PWD/loki:/l:ro" grafana/loki:3.7.6 \
    -config.file=/l/loki.yaml -verify-config || die "loki -verify-config"
docker run --rm -v "$PWD/prometheus:/etc/prometheus:ro" --entrypoint promtool prom/prometheus:v3.14.0 \
    check config /etc/prometheus/prometheus.yml || die "promtool v3 check config"

say "2. up, and wait until every healthcheck passes"
"${COMPOSE[@]}" up -d --build
deadline=$((SECONDS + 600))
while :; do
    unhealthy=$("${COMPOSE[@]}" ps --format json | jq -rs 'flatten | map(select(.Health != "" and .Health != "healthy")) | map(.Service + "=" + .Health) | join(" ")')
    [[ -z $unhealthy ]] && break
    ((SECONDS < deadline)) || die "not healthy after 10 min: $unhealthy"
    sleep 5
done

say "3. load for $LOAD_DURATION"
"${COMPOSE[@]}" run --rm loadgen loadgen --target http://api:8080 --duration "$LOAD_DURATION" --users 4 ||
    die "loadgen"
sleep 30 # span metrics flush (15 s), exporters' batches, Tempo's ingest

say "4a. a trace id found in Loki opens in Tempo"
now=$(date +%s)
trace=$(curl -fsS -G "$LOKI/loki/api/v1/query_range" \
    --data-urlencode 'query={service_name="vidscope-api"} | trace_id != ""' \
    --data-urlencode "start=$((now - 900))000000000" --data-urlencode "end=${now}000000000" \
    --data-urlencode limit=50 |
    jq -r '[.data.result[] | (.stream.trace_id // empty)] | first // empty')
[[ -n $trace ]] || die "no log line with a trace_id in Loki"
curl -fsS "$TEMPO/api/traces/$trace" | jq -e '(.batches // .resourceSpans) | length > 0' >/dev/null ||
    die "trace $trace (from Loki) not in Tempo (sampled out? see docs/full-stack.md, Sampling)"
echo "    trace $trace: in Loki and in Tempo" >&2

say "4b. the service graph's edges"
edges=$(curl -fsS -G "$PROM/api/v1/query" \
    --data-urlencode 'query=sum by (client, server) (increase(traces_service_graph_request_total[15m]))' |
    jq -r '.data.result[] | .metric.client + " -> " + .metric.server')
printf '%s\n' "$edges" | sed 's/^/    /' >&2
for want in "vidscope-loadgen -> vidscope-api" "vidscope-api -> vidscope-worker" \
    "vidscope-api -> postgresql" "vidscope-api -> redis" \
    "vidscope-api -> s3" "vidscope-worker -> vidscope-crm-sandbox"; do
    grep -qxF "$want" <<<"$edges" || die "service graph has no edge $want"
done

say "4c. an exemplar resolves to a trace"
ex=$(curl -fsS -G "$PROM/api/v1/query_exemplars" \
    --data-urlencode 'query=traces_span_metrics_duration_seconds_bucket' \
    --data-urlencode "start=$((now - 900))" --data-urlencode "end=$(date +%s)" |
    jq -r '[.data[].exemplars[].labels | (.trace_id // .traceID // empty)] | first // empty')
[[ -n $ex ]] || die "no exemplar on traces_span_metrics_duration_seconds_bucket"
curl -fsS "$TEMPO/api/traces/$ex" >/dev/null ||
    echo "    note: exemplar trace $ex not in Tempo: span metrics see every trace, Tempo only the sampled ones" >&2

say "4d. Grafana and its datasources"
auth=("${GRAFANA_ADMIN_USER:-admin}:$GRAFANA_ADMIN_PASSWORD")
curl -fsS "$GRAFANA/api/health" | jq -e '.database == "ok"' >/dev/null || die "Grafana health"
for uid in prometheus tempo loki; do
    curl -fsS -u "${auth[0]}" "$GRAFANA/api/datasources/uid/$uid/health" | jq -e '.status == "OK"' >/dev/null ||
        die "Grafana datasource $uid is not healthy"
done

say "PASSED"
if [[ $KEEP == 0 ]]; then
    "${COMPOSE[@]}" down -v
fi
