#!/usr/bin/env python3
"""Generates the Grafana files that are derived from other sources of truth.

  grafana/dashboards/*.json                      the four provisioned dashboards
  grafana/provisioning/alerting/rules.yaml       Grafana-managed copies of prometheus/rules/*.yml
  otel-collector/agent.yaml, gateway.yaml        the two Collector tiers of docker-compose.scale.yml,
                                                 cut from otel-collector/config.yaml (collector_tiers.py)
  prometheus/prometheus.scale.yml                prometheus.yml scraping every Collector of both tiers
  deploy/kubernetes/telemetry/otel-collector-config.yaml   the tiers' ConfigMaps (k8s resolver)

Usage:
  python3 scripts/lib/stack_gen.py          write the files
  python3 scripts/lib/stack_gen.py --check  exit 1 if a committed file differs from what
                                            this script generates (run by check-stack.sh)

Dashboards are written as code here so that every panel gets the same datasource
references, an "Explore" link to the right datasource and consistent units; the metric names
in their queries are checked against what the services emit by stack_check.py.
Needs PyYAML.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path

import yaml

import collector_tiers

ROOT = Path(__file__).resolve().parents[2]

PROM = {"type": "prometheus", "uid": "prometheus"}
TEMPO = {"type": "tempo", "uid": "tempo"}
LOKI = {"type": "loki", "uid": "loki"}

API = 'service_name="vidscope-api"'
WORKER = 'service_name="vidscope-worker"'


# --------------------------------------------------------------------------- helpers


def explore_link(ds: dict, targets: list[dict]) -> dict:
    """A panel link that opens the panel's queries in Explore on the same datasource."""
    queries = []
    for t in targets:
        q = {k: v for k, v in t.items() if k not in ("legendFormat", "exemplar", "interval")}
        q["datasource"] = ds
        queries.append(q)
    panes = {"a": {"datasource": ds["uid"], "queries": queries, "range": {"from": "now-1h", "to": "now"}}}
    url = "/explore?schemaVersion=1&orgId=1&panes=" + urllib.parse.quote(
        json.dumps(panes, separators=(",", ":")), safe=""
    )
    return {"title": f"Explore in {ds['uid'].capitalize()}", "url": url, "targetBlank": False}


class Dash:
    def __init__(self, uid: str, title: str, description: str, tags: list[str]):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels: list[dict] = []
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def _place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append(
            {"type": "row", "id": self.next_id, "title": title, "collapsed": False,
             "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []}
        )
        self.next_id += 1
        self.y += 1

    def _panel(self, kind: str, title: str, ds: dict, targets: list[dict], w: int, h: int,
               description: str = "", field_config: dict | None = None, options: dict | None = None) -> dict:
        for i, t in enumerate(targets):
            t.setdefault("refId", chr(ord("A") + i))
            t["datasource"] = ds
        p = {
            "type": kind,
            "id": self.next_id,
            "title": title,
            "description": description,
            "datasource": ds,
            "gridPos": self._place(w, h),
            "targets": targets,
            "links": [explore_link(ds, targets)],
            "fieldConfig": field_config or {"defaults": {}, "overrides": []},
            "options": options or {},
        }
        self.next_id += 1
        self.panels.append(p)
        return p

    def timeseries(self, title: str, exprs: list[tuple[str, str]], unit: str = "short", w: int = 12,
                   h: int = 8, description: str = "", exemplars: bool = False,
                   threshold: float | None = None) -> None:
        targets = [
            {"expr": e, "legendFormat": legend, "range": True, "exemplar": exemplars, "editorMode": "code"}
            for e, legend in exprs
        ]
        defaults: dict = {"unit": unit, "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                                   "showPoints": "never", "spanNulls": True}}
        if threshold is not None:
            defaults["thresholds"] = {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "red", "value": threshold}]}
            defaults["custom"]["thresholdsStyle"] = {"mode": "line+area"}
        self._panel("timeseries", title, PROM, targets, w, h, description,
                    {"defaults": defaults, "overrides": []},
                    {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                     "tooltip": {"mode": "multi", "sort": "desc"}})

    def stat(self, title: str, expr: str, unit: str = "short", w: int = 6, h: int = 4,
             description: str = "", threshold: float | None = None) -> None:
        defaults: dict = {"unit": unit}
        if threshold is not None:
            defaults["thresholds"] = {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "red", "value": threshold}]}
        self._panel("stat", title, PROM, [{"expr": expr, "instant": True, "range": False, "editorMode": "code"}],
                    w, h, description, {"defaults": defaults, "overrides": []},
                    {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"})

    def table(self, title: str, exprs: list[tuple[str, str]], w: int = 24, h: int = 9,
              description: str = "") -> None:
        targets = [{"expr": e, "legendFormat": legend, "instant": True, "range": False, "format": "table",
                    "editorMode": "code"} for e, legend in exprs]
        self._panel("table", title, PROM, targets, w, h, description)

    def traces(self, title: str, traceql: str, w: int = 12, h: int = 9, description: str = "") -> None:
        self._panel("table", title, TEMPO,
                    [{"queryType": "traceql", "query": traceql, "limit": 20, "tableType": "traces"}],
                    w, h, description)

    def logs(self, title: str, logql: str, w: int = 12, h: int = 9, description: str = "") -> None:
        self._panel("logs", title, LOKI, [{"expr": logql, "queryType": "range", "editorMode": "code"}], w, h,
                    description, options={"showTime": True, "wrapLogMessage": True, "enableLogDetails": True,
                                          "sortOrder": "Descending"})

    def json(self) -> dict:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "editable": False,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": 41,
            "time": {"from": "now-1h", "to": "now"},
            "timezone": "browser",
            "templating": {"list": []},
            "annotations": {"list": []},
            "links": [
                {"title": "vidscope dashboards", "type": "dashboards", "tags": ["vidscope"], "asDropdown": True}
            ],
            "panels": self.panels,
        }


def rate_by(metric: str, sel: str, by: str, window: str = "$__rate_interval") -> str:
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{window}]))"


def q95(metric: str, sel: str, by: str = "", window: str = "$__rate_interval") -> str:
    by_clause = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.95, sum by ({by_clause}) (rate({metric}{{{sel}}}[{window}])))"


# --------------------------------------------------------------------------- dashboards


def api_dashboard() -> dict:
    d = Dash("vidscope-api", "vidscope / API performance",
             "RED per route from the SDK's http.server.request.duration, and from span metrics "
             "(Collector span_metrics connector, computed before tail sampling) with exemplars that "
             "open the trace in Tempo.", ["vidscope", "api"])
    d.row("Requests, errors, duration (SDK histogram)")
    d.timeseries("Request rate by route",
                 [(f"sum by (http_route) (rate(http_server_request_duration_seconds_count{{{API}}}[$__rate_interval]))",
                   "{{http_route}}")], unit="reqps")
    d.timeseries("5xx ratio by route (alert at 5 %)",
                 [(f"sum by (http_route) (rate(http_server_request_duration_seconds_count{{{API}, http_response_status_code=~\"5..\"}}[$__rate_interval]))"
                   f" / sum by (http_route) (rate(http_server_request_duration_seconds_count{{{API}}}[$__rate_interval]))",
                   "{{http_route}}")], unit="percentunit", threshold=0.05)
    d.timeseries("p95 latency by route (alert at 1 s)",
                 [(q95("http_server_request_duration_seconds_bucket", API, "http_route"), "{{http_route}}")],
                 unit="s", threshold=1)
    d.timeseries("Responses by status code",
                 [(f"sum by (http_response_status_code) (rate(http_server_request_duration_seconds_count{{{API}}}[$__rate_interval]))",
                   "{{http_response_status_code}}")], unit="reqps")
    # service.instance.id is promoted to a label (prometheus.yml): one line per API replica, so
    # an unbalanced balancer or one slow replica shows (docs/production.md, "What to watch").
    d.row("Replicas")
    for title, query, unit in [
        ("Request rate by replica", rate_by("http_server_request_duration_seconds_count", API, "service_instance_id"), "reqps"),
        ("p95 latency by replica", q95("http_server_request_duration_seconds_bucket", API, "service_instance_id"), "s"),
    ]:
        d.timeseries(title, [(query, "{{service_instance_id}}")], unit=unit)
    d.row("From spans, with exemplars (click a dot to open the trace)")
    d.timeseries("p95 server span latency by route + exemplars",
                 [(q95("traces_span_metrics_duration_seconds_bucket",
                       'service_name="vidscope-api", span_kind="SPAN_KIND_SERVER"', "http_route"),
                   "{{http_route}}")], unit="s", exemplars=True, w=24,
                 description="Exemplars are attached by the Collector's span_metrics connector and stored "
                             "by Prometheus under trace_id; Grafana links them to Tempo.")
    d.timeseries("Span error rate by operation",
                 [('sum by (span_name) (rate(traces_span_metrics_calls_total{service_name="vidscope-api", '
                   'status_code="STATUS_CODE_ERROR"}[$__rate_interval]))', "{{span_name}}")], unit="reqps")
    d.timeseries("Calls between services (service graph)",
                 [("sum by (client, server) (rate(traces_service_graph_request_total[$__rate_interval]))",
                   "{{client}} → {{server}}"),
                  ("sum by (client, server) (rate(traces_service_graph_request_failed_total[$__rate_interval]))",
                   "failed {{client}} → {{server}}")], unit="reqps")
    d.row("Traces and logs")
    d.traces("Slow or failed API traces",
             '{ resource.service.name = "vidscope-api" && (status = error || duration > 1s) }')
    d.logs("API warnings and errors", '{service_name="vidscope-api"} | detected_level=~"error|warn"')
    return d.json()


def player_dashboard() -> dict:
    d = Dash("vidscope-player", "vidscope / Video player",
             "Seed 000/001 player metrics reported by the player page (POST /api/telemetry/player) "
             "and progress saves (POST /api/progress).", ["vidscope", "player"])
    d.row("Loading and resuming")
    d.stat("p95 video load time (alert at 5 s)",
           q95("video_load_time_ms_milliseconds_bucket", API, window="10m"), unit="ms", threshold=5000)
    d.stat("Resume failure ratio (alert at 10 %)",
           "sum(rate(video_resume_failures_total[10m])) / sum(rate(video_resume_time_ms_milliseconds_count[10m]))",
           unit="percentunit", threshold=0.1)
    d.stat("p95 progress save (alert at 1 s)",
           q95("progress_save_time_ms_milliseconds_bucket", API, window="10m"), unit="ms", threshold=1000)
    d.stat("Buffering events / min", "sum(rate(video_buffering_events_total[5m])) * 60", unit="short")
    d.timeseries("Video load time (p50, p95)",
                 [(q95("video_load_time_ms_milliseconds_bucket", API), "p95"),
                  (f"histogram_quantile(0.5, sum by (le) (rate(video_load_time_ms_milliseconds_bucket{{{API}}}[$__rate_interval])))",
                   "p50")], unit="ms", threshold=5000)
    d.timeseries("Resume time (p95) by success",
                 [(q95("video_resume_time_ms_milliseconds_bucket", API, "success"), "success={{success}}")],
                 unit="ms")
    d.timeseries("Resume failures and buffering events",
                 [("sum(rate(video_resume_failures_total[$__rate_interval]))", "resume failures"),
                  ("sum(rate(video_buffering_events_total[$__rate_interval]))", "buffering events")],
                 unit="short")
    d.row("Progress")
    d.timeseries("Progress save time (p95) by outcome",
                 [(q95("progress_save_time_ms_milliseconds_bucket", API, "outcome"), "{{outcome}}")],
                 unit="ms", threshold=1000)
    d.timeseries("Progress updates by outcome",
                 [("sum by (outcome) (rate(progress_updates_total[$__rate_interval]))", "{{outcome}}")],
                 unit="short")
    d.row("Player sessions")
    d.traces("Player sessions (video.session spans)", '{ name = "video.session" }', w=12)
    d.logs("Player and progress logs", '{service_name="vidscope-api"} |~ "video|progress"', w=12)
    return d.json()


def jobs_dashboard() -> dict:
    d = Dash("vidscope-jobs", "vidscope / Uploads, jobs and workflows",
             "Uploads (API), the job queue and worker (messaging semantic conventions + job.*), "
             "and seed 003's workflow metrics table.", ["vidscope", "jobs", "workflows"])
    d.row("Uploads")
    d.timeseries("Upload requests by status",
                 [(f"sum by (http_response_status_code) (rate(http_server_request_duration_seconds_count{{{API}, http_route=~\"/api/upload.*\"}}[$__rate_interval]))",
                   "{{http_response_status_code}}")], unit="reqps")
    d.timeseries("Upload latency (p95)",
                 [(q95("http_server_request_duration_seconds_bucket", f'{API}, http_route=~"/api/upload.*"',
                       "http_route"), "{{http_route}}")], unit="s")
    d.row("Queue and worker")
    d.timeseries("Jobs published and processed",
                 [("sum by (messaging_destination_name) (rate(messaging_client_sent_messages_total[$__rate_interval]))",
                   "sent {{messaging_destination_name}}"),
                  ("sum by (messaging_destination_name) (rate(messaging_process_duration_seconds_count[$__rate_interval]))",
                   "processed {{messaging_destination_name}}")], unit="short")
    d.timeseries("Jobs processed by worker replica",
                 [(rate_by("messaging_process_duration_seconds_count", WORKER, "service_instance_id"),
                   "{{service_instance_id}}")], unit="short")
    d.timeseries("Processing time (p95) by queue",
                 [(q95("messaging_process_duration_seconds_bucket", WORKER, "messaging_destination_name"),
                   "{{messaging_destination_name}}")], unit="s")
    d.timeseries("Queue wait (p95) by job type",
                 [(q95("job_queue_wait_ms_milliseconds_bucket", WORKER, "job_type"), "{{job_type}}")], unit="ms")
    # Every worker replica samples the one shared queue and outbox: `max`, not `sum`, or two
    # replicas would show twice the backlog.
    d.timeseries("Queue depth by job type and state",
                 [("max by (job_type, state) (job_queue_depth)", "{{job_type}} {{state}}")], unit="short")
    d.timeseries("Failures by job type and class",
                 [("sum by (job_type, error_class) (rate(job_failures_total[$__rate_interval]))",
                   "{{job_type}} {{error_class}}")], unit="short")
    d.timeseries("Dead-lettered jobs (increase)",
                 [("sum by (job_type, error_class) (increase(job_dead_letter_total[$__range]))",
                   "{{job_type}} {{error_class}}")], unit="short")
    d.stat("CRM circuit breaker (0 closed, 1 half-open, 2 open)", "max(crm_circuit_breaker_state)",
           threshold=2, w=6)
    d.stat("Outbox pending", "max(outbox_pending)", w=6)
    d.traces("Failed job traces", '{ resource.service.name = "vidscope-worker" && status = error }', w=12, h=8)
    d.row("Workflows (seed 003)")
    d.table("Seed 003 metrics by workflow (last 1h)", [
        ("sum by (workflow_name) (increase(workflow_run_total[1h]))", "runs"),
        ("sum by (workflow_name) (increase(workflow_run_status_total{status=\"failure\"}[1h]))", "failed runs"),
        (q95("workflow_run_duration_ms_milliseconds_bucket", "", "workflow_name", "1h"), "p95 run ms"),
        ("sum by (workflow_name) (increase(workflow_retry_count_total[1h]))", "retries"),
        ("sum by (workflow_name) (increase(workflow_image_uploaded_total[1h]))", "images"),
        ("sum by (workflow_name) (increase(workflow_db_upsert_total[1h]))", "db upserts"),
    ], description="One row per workflow_name; columns are instant queries merged by the table.")
    d.timeseries("Run status", [("sum by (workflow_name, status) (rate(workflow_run_status_total[$__rate_interval]))",
                                 "{{workflow_name}} {{status}}")], unit="short")
    d.timeseries("Step duration (p95)",
                 [(q95("workflow_step_duration_ms_milliseconds_bucket", "", "workflow_name, step_name"),
                   "{{workflow_name}}/{{step_name}}")], unit="ms")
    d.timeseries("Step status", [("sum by (workflow_name, step_name, status) (rate(workflow_step_status_total[$__rate_interval]))",
                                  "{{workflow_name}}/{{step_name}} {{status}}")], unit="short")
    d.timeseries("Image size (p95)", [(q95("workflow_image_size_bytes_bucket", "", "workflow_name"),
                                       "{{workflow_name}}")], unit="bytes")
    d.timeseries("DB upsert duration (p95)",
                 [(q95("workflow_db_upsert_duration_ms_milliseconds_bucket", "", "workflow_name, table_name"),
                   "{{workflow_name}} {{table_name}}")], unit="ms")
    d.logs("Worker errors", '{service_name="vidscope-worker"} | detected_level="error"', w=12)
    return d.json()


def telemetry_dashboard() -> dict:
    d = Dash("vidscope-telemetry", "vidscope / Telemetry pipeline health",
             "Is telemetry arriving? SDK-side drops (telemetry.export.dropped), the Collector's "
             "receivers, processors and exporters, and what its connectors produce.",
             ["vidscope", "telemetry"])
    d.row("Services (SDK)")
    d.timeseries("Items dropped by the SDK (export failed)",
                 [("sum by (service_name, signal) (rate(telemetry_export_dropped_total[$__rate_interval]))",
                   "{{service_name}} {{signal}}")], unit="short", threshold=0)
    d.timeseries("Items written to the fallback file",
                 [("sum by (service_name, signal) (rate(telemetry_export_fallback_total[$__rate_interval]))",
                   "{{service_name}} {{signal}}")], unit="short")
    d.row("Collector receivers")
    for sig, unit_name in (("spans", "spans"), ("metric_points", "metric points"), ("log_records", "log records")):
        d.timeseries(f"Receiver: {unit_name} accepted / refused / failed", [
            (f"sum(rate(otelcol_receiver_accepted_{sig}_total[$__rate_interval]))", "accepted"),
            (f"sum(rate(otelcol_receiver_refused_{sig}_total[$__rate_interval]))", "refused"),
            (f"sum(rate(otelcol_receiver_failed_{sig}_total[$__rate_interval]))", "failed"),
        ], unit="short", w=8)
    d.row("Collector exporters")
    for sig, unit_name in (("spans", "spans"), ("metric_points", "metric points"), ("log_records", "log records")):
        d.timeseries(f"Exporter: {unit_name} sent / failed / not queued", [
            (f"sum by (exporter) (rate(otelcol_exporter_sent_{sig}_total[$__rate_interval]))", "sent {{exporter}}"),
            (f"sum by (exporter) (rate(otelcol_exporter_send_failed_{sig}_total[$__rate_interval]))",
             "failed {{exporter}}"),
            (f"sum by (exporter) (rate(otelcol_exporter_enqueue_failed_{sig}_total[$__rate_interval]))",
             "dropped (queue full) {{exporter}}"),
        ], unit="short", w=8)
    d.timeseries("Exporter queue fill",
                 [("max by (exporter) (otelcol_exporter_queue_size / otelcol_exporter_queue_capacity)",
                   "{{exporter}}")], unit="percentunit", threshold=0.8)
    d.timeseries("Processor items in / out (tail sampling keeps fewer spans)", [
        ("sum by (processor) (rate(otelcol_processor_incoming_items_total[$__rate_interval]))", "in {{processor}}"),
        ("sum by (processor) (rate(otelcol_processor_outgoing_items_total[$__rate_interval]))", "out {{processor}}"),
    ], unit="short")
    d.row("Collector process and connectors")
    d.stat("Collector up", 'min(up{job="otel-collector"})', w=6)
    d.stat("Collector memory (RSS)", "max(otelcol_process_memory_rss_bytes)", unit="bytes", w=6)
    # With N gateways (docs/full-stack.md, "Scaling out") each series exists once per gateway
    # (label collector_gateway_id): `group` collapses the copies before counting.
    d.stat("Span metrics series (calls)",
           "count(group without (collector_gateway_id) (traces_span_metrics_calls_total))", w=6)
    d.stat("Service graph edges", "count(group by (client, server) (traces_service_graph_request_total))", w=6)
    return d.json()


DASHBOARDS = {
    "vidscope-api.json": api_dashboard,
    "vidscope-player.json": player_dashboard,
    "vidscope-jobs.json": jobs_dashboard,
    "vidscope-telemetry.json": telemetry_dashboard,
}


# --------------------------------------------------------------------------- alert rules


def dur_seconds(d: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(d[:-1]) * units[d[-1]]


def grafana_rules() -> dict:
    """Grafana-managed copies of prometheus/rules/*.yml, so that alerts reach the provisioned
    contact point (the stack runs no Alertmanager). Each expression is wrapped so that every
    firing series has the value 1 and the threshold is simply > 0; no series means OK."""
    groups = []
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for g in doc["groups"]:
            rules = []
            for r in g["rules"]:
                if "alert" not in r:
                    continue
                expr = " ".join(r["expr"].split())
                rules.append({
                    "uid": "vs-" + "".join(c for c in r["alert"].lower() if c.isalnum())[:36],
                    "title": r["alert"],
                    "condition": "B",
                    "data": [
                        {"refId": "A", "relativeTimeRange": {"from": 1800, "to": 0},
                         "datasourceUid": "prometheus",
                         "model": {"refId": "A", "expr": f"(({expr}) * 0) + 1", "instant": True,
                                   "intervalMs": 15000, "maxDataPoints": 43200}},
                        {"refId": "B", "datasourceUid": "__expr__",
                         "model": {"refId": "B", "type": "threshold", "expression": "A",
                                   "conditions": [{"evaluator": {"type": "gt", "params": [0]}}]}},
                    ],
                    "for": r.get("for", "0s"),
                    "noDataState": "OK",
                    "execErrState": "Error",
                    "labels": dict(r.get("labels", {})),
                    "annotations": {**r.get("annotations", {}),
                                    "source": f"prometheus/rules/{path.name} ({g['name']})"},
                    "isPaused": False,
                })
            groups.append({"orgId": 1, "name": g["name"], "folder": "vidscope", "interval": "1m",
                           "rules": rules})
    return {"apiVersion": 1, "groups": groups}


RULES_HEADER = (
    "# GENERATED by scripts/lib/stack_gen.py from prometheus/rules/*.yml -- do not edit.\n"
    "# Grafana-managed copies of the Prometheus alerts, routed to the provisioned contact point.\n"
)


def outputs() -> dict[Path, str]:
    out: dict[Path, str] = {}
    for name, fn in DASHBOARDS.items():
        out[ROOT / "grafana" / "dashboards" / name] = json.dumps(fn(), indent=2, ensure_ascii=False) + "\n"
    # `$` would be read by Grafana as an environment variable in provisioning files; rule
    # annotations use Go templates ({{ $labels.x }}), so escape them as `$$`.
    rules_yaml = yaml.safe_dump(grafana_rules(), sort_keys=False, width=1000, allow_unicode=True)
    out[ROOT / "grafana" / "provisioning" / "alerting" / "rules.yaml"] = RULES_HEADER + rules_yaml.replace("$", "$$")
    out.update(collector_tiers.outputs(ROOT))
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in outputs().items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if not check:
        # The Kubernetes copies of the dashboards and rules are made from the files just
        # written, so one command regenerates everything (check-k8s.sh checks them).
        import k8s_gen
        for path, text in k8s_gen.generate().items():
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        for p in stale:
            print(f"stale generated file: {p} (run python3 scripts/lib/stack_gen.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
