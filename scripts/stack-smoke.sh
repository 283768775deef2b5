#!/usr/bin/env bash
#
# scripts/stack-smoke.sh — the compose stack, end to end, on a machine with a Docker engine.
#
#   scripts/stack-smoke.sh            # up, wait healthy, 2 min of load, assert, leave it running
#   KEEP=0 scripts/stack-smoke.sh     # ... and `down -v` at the end
#   SCALE=1 scripts/stack-smoke.sh    # the same on docker-compose.scale.yml (2 API replicas
#                                     # behind api-lb, 2 workers, Collector agent + 2 gateways),
#                                     # tail sampling at 100 %, plus step 5: whole traces
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
#   5. (SCALE=1) each upload trace reached Tempo whole through the two Collector tiers:
#      for every upload trace Tempo finds (at least MIN_TRACES), the trace has the API's
#      POST /api/upload server span AND worker spans, every parent span id names a span of the
#      same trace (no orphan: nothing of it was lost or sent elsewhere), a worker span's parent
#      chain reaches the API's span, and the trace id is in exactly one gateway's traces.json
#      (trace-id routing sent all its spans to one gateway). Tail sampling runs at 100 % here so
#      that every trace must be whole, not just the sampled ones; and both gateways must hold
#      some of the traces (the routing spreads them).
#
# Needs: docker with the compose plugin, curl, jq. Reads the passwords from .env (copy
# .env.example first). Exits non-zero on the first failed assertion, naming it.

set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

COMPOSE=(docker compose -f docker-compose.observability.yml)
TARGET=http://api:8080
SCALE=${SCALE:-0}
if [[ $SCALE == 1 ]]; then
    COMPOSE+=(-f docker-compose.scale.yml)
    TARGET=http://api-lb:8080
    # The API replicas publish no fixed host port (api-lb has 8080); every trace is kept so
    # that step 5 can demand every upload trace whole.
    export VIDSCOPE_API_PORTS=8080 TAIL_SAMPLING_PERCENTAGE=100
fi
MIN_TRACES=${MIN_TRACES:-5}
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
if [[ $SCALE == 1 ]]; then
    for c in agent gateway; do
        docker run --rm -e COLLECTOR_GATEWAY_ID=smoke -v "$PWD/otel-collector:/c:ro" \
            otel/opentelemetry-collector-contrib:0.159.0 validate --config=/c/$c.yaml || die "otelcol validate $c.yaml"
    done
    docker run --rm -v "$PWD/prometheus:/etc/prometheus:ro" --entrypoint promtool prom/prometheus:v3.14.0 \
        check config /etc/prometheus/prometheus.scale.yml || die "promtool v3 check config prometheus.scale.yml"
    # nginx -t resolves the upstream `api` at parse time: give it a network where it exists.
    docker run --rm --add-host api:127.0.0.1 -v "$PWD/nginx/api-lb.conf:/etc/nginx/conf.d/default.conf:ro" \
        nginx:1.28.0-alpine nginx -t || die "nginx -t"
fi

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
"${COMPOSE[@]}" run --rm loadgen loadgen --target "$TARGET" --duration "$LOAD_DURATION" --users 4 ||
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

if [[ $SCALE == 1 ]]; then
    say "5. every upload trace reached Tempo whole (two Collector tiers, trace-id routing)"
    sleep 30 # late worker spans: decision_wait (10 s), then the queues
    now=$(date +%s)
    ids=$(curl -fsS -G "$TEMPO/api/search" \
        --data-urlencode 'q={ resource.service.name = "vidscope-api" && kind = server && span.http.route = "/api/upload" }' \
        --data-urlencode "start=$((now - 1800))" --data-urlencode "end=$now" --data-urlencode limit=50 |
        jq -r '.traces[].traceID')
    mapfile -t id_list < <(grep . <<<"$ids" || true)
    n=${#id_list[@]}
    ((n >= MIN_TRACES)) || die "only $n upload traces in Tempo (want >= $MIN_TRACES)"
    for id in "${id_list[@]}"; do
        # One line of verdicts per trace: server span, worker spans, orphans, worker -> api link.
        verdict=$(curl -fsS "$TEMPO/api/traces/$id" | jq -r '
            [(.batches // .resourceSpans // .trace.resourceSpans)[]
             | (.resource.attributes[] | select(.key == "service.name") | .value.stringValue) as $svc
             | (.scopeSpans // .instrumentationLibrarySpans)[].spans[]
             | {svc: $svc, id: .spanId, parent: (.parentSpanId // ""), kind: (.kind | tostring),
                route: ([.attributes[]? | select(.key == "http.route") | .value.stringValue] | first)}] as $spans
            | ($spans | map({key: .id, value: .}) | from_entries) as $by
            | def root_svcs($s): [$s | recurse(if .parent != "" and $by[.parent] then $by[.parent] else empty end) | .svc];
            [ ($spans | any(.svc == "vidscope-api" and (.kind == "SPAN_KIND_SERVER" or .kind == "2") and .route == "/api/upload")),
              ($spans | map(select(.svc == "vidscope-worker")) | length),
              ($spans | map(select(.parent != "" and ($by[.parent] | not))) | length),
              ($spans | map(select(.svc == "vidscope-worker")) | all(root_svcs(.) | index("vidscope-api") != null)),
              ($spans | length) ] | @tsv')
        read -r has_server workers orphans linked total <<<"$verdict"
        [[ $has_server == true ]] || die "trace $id: no POST /api/upload server span"
        ((workers > 0)) || die "trace $id: no worker span (the job spans went elsewhere or were lost)"
        ((orphans == 0)) || die "trace $id: $orphans of $total spans name a parent that is not in the trace (split or partial trace)"
        [[ $linked == true ]] || die "trace $id: a worker span does not chain up to the API's spans"
        echo "    trace $id: $total spans, $workers from the worker, no orphan" >&2
    done
    # The trace viewer's files: each trace id in exactly one gateway's traces.json.
    # shellcheck disable=SC2016 # expanded by the container's shell
    counts=$("${COMPOSE[@]}" run --rm -T --no-deps otel-collector-volume sh -c '
        for id in "$@"; do
            n=0
            for d in /var/lib/otelcol/otel-gateway-*/; do
                if cat "$d"traces*.json 2>/dev/null | grep -q "$id"; then n=$((n + 1)); fi
            done
            echo "$id $n"
        done' sh "${id_list[@]}")
    while read -r id gws; do
        [[ $gws == 1 ]] || die "trace $id is in $gws gateways' traces.json (want exactly 1: trace-id routing)"
    done <<<"$counts"
    for g in otel-gateway-1 otel-gateway-2; do
        # shellcheck disable=SC2016
        "${COMPOSE[@]}" run --rm -T --no-deps otel-collector-volume sh -c \
            'cat /var/lib/otelcol/'"$g"'/traces*.json 2>/dev/null | grep -q traceId' ||
            die "$g wrote no trace: the load balancer did not spread traces over the gateways"
    done
    echo "    $n upload traces whole, each in exactly one gateway's file; both gateways hold traces" >&2
fi

say "PASSED"
if [[ $KEEP == 0 ]]; then
    "${COMPOSE[@]}" down -v
fi
