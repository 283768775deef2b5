#!/usr/bin/env python3
"""Static checks of the observability stack's configuration (run by scripts/check-stack.sh).

Nothing here starts a Collector, Tempo, Loki or Grafana: none can be installed on the machines
the tests run on. What can be checked without them is checked:

  collector   YAML parses; no removed or deprecated component names; every pipeline component
              is defined; span metrics / service graph are computed before tail sampling with
              exemplars on; seed 000's file rotation; health_check and own metrics exposed
  trace viewer  the Collector's traces file exporter writes into a named volume that the api
              service mounts read-only at the same path and names in
              VIDSCOPE_TRACE_VIEWER_FILES, and the API runs as the uid that owns the files
  tempo/loki  YAML parses; no blocks Tempo 3 / Loki 3 removed; 7-day retention; structured
              metadata on; Tempo's exemplar label is one Grafana links to Tempo
  prometheus  the `otlp:` section (which promtool 2.x cannot read) is checked here; the rest
              goes to promtool in check-stack.sh
  grafana     datasource UIDs fixed and unique; every UID referenced by a dashboard, a panel
              link, an alert rule or another datasource is provisioned; every panel links to
              Explore on its own datasource; every alert in prometheus/rules has a firing and a
              not-firing promtool test case
  metrics     every metric queried by a dashboard, an alert rule (Prometheus or Grafana) or a
              datasource link is either emitted by the services (translated to its Prometheus
              name the way prometheus.yml configures OTLP translation) or produced by the
              Collector (connectors, own telemetry), Tempo or Prometheus itself; and, for the
              services' metrics whose labels are known, every label a query filters or groups
              on is one the metric carries (or a promoted resource attribute, job, instance, le).

Emitted metrics come from --emitted PATH or $VIDSCOPE_EMITTED_METRICS: JSON (a list, or
{"metrics": [...]}, of {"name", "unit", "type"[, "monotonic"]}) or text lines
"name unit type" (unit "-" for none); an optional "labels" list (OTel attribute names) in the
JSON enables the label check; type is one of histogram, exponential_histogram,
counter (monotonic sum), updowncounter (non-monotonic sum), sum (+ "monotonic"), gauge,
summary. Without it, the metric catalog crates/telemetry/catalog.json is read instead
(a FALLBACK: it says what the code declares, not what a running service exported).

Exit status 1 if any check fails; every failure is listed.
Needs PyYAML.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.parse
from pathlib import Path

import yaml

import collector_tiers

ROOT = Path(__file__).resolve().parents[2]

errors: list[str] = []
notes: list[str] = []


def fail(where: str, msg: str) -> None:
    errors.append(f"{where}: {msg}")


def load_yaml(rel: str):
    p = ROOT / rel
    try:
        return yaml.safe_load(p.read_text())
    except FileNotFoundError:
        fail(rel, "missing")
    except yaml.YAMLError as e:
        fail(rel, f"invalid YAML: {e}")
    return None


def walk(obj, path=()):
    """Yields (path, key, value) for every mapping entry in a nested structure."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path, k, v
            yield from walk(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, path + (i,))


# =========================================================================== collector

# Component types that were removed, or renamed with the old name kept only as a deprecated
# alias. Key: (kind, type) -> why.
COLLECTOR_DENY = {
    ("exporters", "logging"): "removed; use `debug`",
    ("exporters", "loki"): "removed; Loki ingests OTLP natively: otlp_http -> http://loki:3100/otlp",
    ("exporters", "jaeger"): "removed; Jaeger and Tempo ingest OTLP",
    ("exporters", "jaeger_thrift"): "removed; use OTLP",
    ("exporters", "opencensus"): "removed",
    ("receivers", "opencensus"): "removed",
    ("processors", "spanmetrics"): "removed; use the span_metrics connector",
    ("processors", "servicegraph"): "removed; use the servicegraph connector",
    ("processors", "logstransform"): "removed; use transform",
    ("exporters", "otlp"): "deprecated alias since 0.144; use otlp_grpc",
    ("exporters", "otlphttp"): "deprecated alias since 0.144; use otlp_http",
    ("processors", "resourcedetection"): "deprecated alias; use resource_detection",
    ("connectors", "spanmetrics"): "deprecated alias; use span_metrics",
    ("processors", "memorylimiter"): "not a component; use memory_limiter",
    ("extensions", "healthcheck"): "deprecated alias; use health_check",
    ("exporters", "loadbalancing"): "deprecated alias since 0.153; use load_balancing",
}
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")


def ctype(cid: str) -> str:
    return cid.split("/", 1)[0]


COLLECTOR_CONFIGS = {"otel-collector/config.yaml": "single", "otel-collector/agent.yaml": "agent",
                     "otel-collector/gateway.yaml": "gateway"}


def check_collector(where: str = "otel-collector/config.yaml", role: str = "single") -> dict:
    """role: single (one Collector doing everything), agent or gateway (the two tiers of the
    scaled-out topology, collector_tiers.py)."""
    cfg = load_yaml(where) or {}
    for kind in KINDS:
        for cid in (cfg.get(kind) or {}):
            why = COLLECTOR_DENY.get((kind, ctype(cid)))
            if why:
                fail(where, f"{kind}.{cid}: {why}")
    svc = cfg.get("service") or {}
    defined = {k: set((cfg.get(k) or {}).keys()) for k in KINDS}
    for ext in svc.get("extensions") or []:
        if ext not in defined["extensions"]:
            fail(where, f"service.extensions uses undefined {ext}")
    pipelines = svc.get("pipelines") or {}
    if not pipelines:
        fail(where, "no pipelines")
    connectors = defined["connectors"]
    used_as_exporter, used_as_receiver = set(), set()
    for name, p in pipelines.items():
        for r in p.get("receivers") or []:
            if r not in defined["receivers"] and r not in connectors:
                fail(where, f"pipeline {name}: undefined receiver {r}")
            if r in connectors:
                used_as_receiver.add(r)
        for pr in p.get("processors") or []:
            if pr not in defined["processors"]:
                fail(where, f"pipeline {name}: undefined processor {pr}")
        for e in p.get("exporters") or []:
            if e not in defined["exporters"] and e not in connectors:
                fail(where, f"pipeline {name}: undefined exporter {e}")
            if e in connectors:
                used_as_exporter.add(e)
        procs = p.get("processors") or []
        if "memory_limiter" in defined["processors"] and procs and procs[0] != "memory_limiter" \
                and not all(ctype(x) == "tail_sampling" for x in procs):
            fail(where, f"pipeline {name}: memory_limiter must come first (got {procs})")
    for c in connectors:
        if c not in used_as_exporter or c not in used_as_receiver:
            fail(where, f"connector {c} must be an exporter of one pipeline and a receiver of another")
    readers = (((svc.get("telemetry") or {}).get("metrics") or {}).get("readers")) or []
    if not any("pull" in r for r in readers):
        fail(where, "service.telemetry.metrics needs a pull (Prometheus) reader for the scrape job")
    if role == "agent":
        check_agent(where, cfg, pipelines)
        return cfg
    if role == "gateway":
        check_gateway(where, cfg, pipelines)
    # Span metrics and service graph see every span: their pipeline has no tail sampling and
    # tail sampling only runs downstream of them.
    conn_types = {ctype(c): c for c in connectors}
    for needed in ("span_metrics", "servicegraph"):
        if needed not in conn_types:
            fail(where, f"no {needed} connector")
    for name, p in pipelines.items():
        exps = p.get("exporters") or []
        procs = p.get("processors") or []
        if any(ctype(e) in ("span_metrics", "servicegraph") for e in exps):
            if any(ctype(x) in ("tail_sampling", "probabilistic_sampler") for x in procs):
                fail(where, f"pipeline {name}: span metrics/service graph computed after sampling")
        if any(ctype(x) == "tail_sampling" for x in procs):
            if not all(r in connectors for r in p.get("receivers") or []):
                fail(where, f"pipeline {name}: tail sampling must be fed by a connector after the span metrics")
    sm = (cfg.get("connectors") or {}).get(conn_types.get("span_metrics", ""), {}) or {}
    if not (sm.get("exemplars") or {}).get("enabled"):
        fail(where, "span_metrics.exemplars.enabled must be true (metric -> trace links)")
    ts = next((v for k, v in (cfg.get("processors") or {}).items() if ctype(k) == "tail_sampling"), None)
    if ts is None:
        fail(where, "no tail_sampling processor")
    else:
        types = {p.get("type") for p in ts.get("policies") or []}
        for t in ("status_code", "latency", "probabilistic"):
            if t not in types:
                fail(where, f"tail_sampling has no {t} policy (errors, > 1 s, 10 % of the rest)")
    files = [v for k, v in (cfg.get("exporters") or {}).items() if ctype(k) == "file"]
    if not files:
        fail(where, "no file exporter (traces.json)")
    for f in files:
        rot = f.get("rotation") or {}
        if not str(f.get("path", "")).endswith("traces.json"):
            fail(where, "file exporter must write traces.json (seed 000)")
        if rot.get("max_megabytes") != 10 or rot.get("max_backups") != 3 or rot.get("localtime") is not True:
            fail(where, "file exporter rotation must be 10 MB, 3 backups, local time (seed 000)")
    check_otlp_receiver(where, cfg, http=(role == "single"))
    wanted = [("prometheus:9090/api/v1/otlp", "Prometheus native OTLP"), ("tempo:4317", "Tempo OTLP")]
    if role == "single":
        wanted.append(("loki:3100/otlp", "Loki native OTLP"))
    check_exporter_endpoints(where, cfg, wanted)
    return cfg


def check_otlp_receiver(where: str, cfg: dict, http: bool) -> None:
    recv = (cfg.get("receivers") or {}).get("otlp", {}) or {}
    protos = recv.get("protocols") or {}
    if not str((protos.get("grpc") or {}).get("endpoint", "")).endswith(":4317"):
        fail(where, "OTLP gRPC must listen on 4317")
    if not http:
        return
    http_cfg = protos.get("http") or {}
    if not str(http_cfg.get("endpoint", "")).endswith(":4318"):
        fail(where, "OTLP HTTP must listen on 4318")
    if not (http_cfg.get("cors") or {}).get("allowed_origins"):
        fail(where, "OTLP HTTP needs CORS allowed_origins for the player page")


def check_exporter_endpoints(where: str, cfg: dict, wanted) -> None:
    exp_endpoints = [str(v.get("endpoint", "")) for v in (cfg.get("exporters") or {}).values() if isinstance(v, dict)]
    for want, why in wanted:
        if not any(want in e for e in exp_endpoints):
            fail(where, f"no exporter to {why} ({want})")


def _pipelines_of(pipelines: dict, signal: str) -> list[tuple[str, dict]]:
    return [(n, p) for n, p in pipelines.items() if n.split("/")[0] == signal]


def check_agent(where: str, cfg: dict, pipelines: dict) -> None:
    """The agent tier: traces leave only through a trace-id load balancer; metrics and logs go
    straight to Prometheus and Loki; nothing that needs whole traces runs here."""
    procs = cfg.get("processors") or {}
    exporters = cfg.get("exporters") or {}
    for pid in procs:
        if ctype(pid) in ("tail_sampling", "probabilistic_sampler"):
            fail(where, f"processors.{pid}: an agent sees only its own clients' spans; sampling belongs on the gateways")
    for cid in cfg.get("connectors") or {}:
        if ctype(cid) in ("span_metrics", "servicegraph"):
            fail(where, f"connectors.{cid}: span metrics / service graph belong on the gateways (they need whole traces)")
    traces = _pipelines_of(pipelines, "traces")
    if not traces:
        fail(where, "no traces pipeline")
    for name, p in traces:
        for e in p.get("exporters") or []:
            if ctype(e) != "load_balancing":
                fail(where, f"pipeline {name}: exports to {e}; an agent's traces must go to the gateways "
                            "through a load_balancing exporter only")
    lbs = {e for _, p in traces for e in p.get("exporters") or [] if ctype(e) == "load_balancing"}
    if traces and not lbs:
        fail(where, "no load_balancing exporter in the traces pipeline")
    for e in sorted(lbs):
        lb = exporters.get(e) or {}
        if lb.get("routing_key", "traceID") != "traceID":
            fail(where, f"exporters.{e}.routing_key must be traceID (one trace -> one gateway), got {lb.get('routing_key')!r}")
        if "routing_key" not in lb:
            fail(where, f"exporters.{e}.routing_key is not set: say traceID explicitly")
        res = lb.get("resolver") or {}
        if not ((res.get("dns") or {}).get("hostname") or (res.get("k8s") or {}).get("service")):
            fail(where, f"exporters.{e}.resolver needs dns.hostname (compose) or k8s.service (Kubernetes)")
        if not (lb.get("sending_queue") or {}).get("enabled"):
            fail(where, f"exporters.{e}.sending_queue must be enabled (a gateway restart must not drop spans)")
        if not (lb.get("retry_on_failure") or {}).get("enabled"):
            fail(where, f"exporters.{e}.retry_on_failure must be enabled")
    for signal, want in (("metrics", "prometheus:9090/api/v1/otlp"), ("logs", "loki:3100/otlp")):
        ps = _pipelines_of(pipelines, signal)
        ends = {str((exporters.get(e) or {}).get("endpoint", "")) for _, p in ps for e in p.get("exporters") or []}
        if not any(want in x for x in ends):
            fail(where, f"the agent's {signal} must go straight to {want}")
    check_otlp_receiver(where, cfg, http=True)


def check_gateway(where: str, cfg: dict, pipelines: dict) -> None:
    """The gateway tier: the connectors' series carry a stable gateway identity (promoted to a
    Prometheus label), never collector.instance.id."""
    procs = cfg.get("processors") or {}
    connectors = set(cfg.get("connectors") or {})
    metrics = _pipelines_of(pipelines, "metrics")
    if not metrics:
        fail(where, "no metrics pipeline for the connectors' output")
    for name, p in metrics:
        chain = p.get("processors") or []
        for r in p.get("receivers") or []:
            if r not in connectors:
                fail(where, f"pipeline {name}: receives {r}; app metrics go straight from the agents, "
                            "a gateway only exports what its connectors make")
        sets_id = [x for x in chain if any(
            a.get("key") == collector_tiers.GATEWAY_ID_ATTR and a.get("action") in ("upsert", "insert")
            and "${env:" in str(a.get("value", ""))
            for a in ((procs.get(x) or {}).get("attributes") or []))]
        if not sets_id:
            fail(where, f"pipeline {name}: no resource processor sets {collector_tiers.GATEWAY_ID_ATTR} from the "
                        "environment: N gateways would write the same Prometheus series")
        drops = [x for x in chain if any(a.get("key") == "collector.instance.id" and a.get("action") == "delete"
                                         for a in ((procs.get(x) or {}).get("attributes") or []))]
        if not drops:
            fail(where, f"pipeline {name}: collector.instance.id is not deleted (a new value on every restart)")


# =========================================================================== tempo, loki


def check_tempo() -> dict:
    where = "tempo/tempo.yaml"
    cfg = load_yaml(where) or {}
    for k in ("ingester", "ingester_client", "compactor", "metrics_generator_client"):
        if k in cfg:
            fail(where, f"top-level `{k}` was removed in Tempo 3")
    procs = ((((cfg.get("overrides") or {}).get("defaults") or {}).get("metrics_generator") or {}).get("processors")) or []
    if "local-blocks" in procs:
        fail(where, "the local-blocks processor was removed in Tempo 3")
    ver = str(((((cfg.get("storage") or {}).get("trace") or {}).get("block") or {}).get("version")) or "")
    if ver and ver.lower() in ("v2", "vparquet", "vparquet2", "vparquet3"):
        fail(where, f"block version {ver} is not supported by Tempo 3 (vParquet4+)")
    ret = str((((cfg.get("backend_worker") or {}).get("compaction") or {}).get("block_retention")) or "")
    if ret not in ("168h", "7d"):
        fail(where, f"backend_worker.compaction.block_retention must be 7 days (seed 004), got {ret!r}")
    return cfg


def tempo_exemplar_label(tempo: dict) -> str:
    mg = (((tempo.get("overrides") or {}).get("defaults") or {}).get("metrics_generator") or {})
    return mg.get("trace_id_label_name") or "traceID"


def tempo_generated_metrics(tempo: dict) -> dict[str, str]:
    mg = (((tempo.get("overrides") or {}).get("defaults") or {}).get("metrics_generator") or {})
    out = {}
    procs = mg.get("processors") or []
    if "span-metrics" in procs:
        for n in ("traces_spanmetrics_calls_total", "traces_spanmetrics_size_total",
                  "traces_spanmetrics_latency_bucket", "traces_spanmetrics_latency_sum",
                  "traces_spanmetrics_latency_count", "traces_spanmetrics_latency"):
            out[n] = "Tempo metrics-generator span-metrics"
    if "service-graphs" in procs:
        for n in SERVICE_GRAPH_NAMES:
            out[n] = "Tempo metrics-generator service-graphs"
    return out


def check_loki() -> dict:
    where = "loki/loki.yaml"
    cfg = load_yaml(where) or {}
    limits = cfg.get("limits_config") or {}
    if limits.get("allow_structured_metadata") is False:
        fail(where, "allow_structured_metadata must not be false (OTLP ingestion needs it)")
    if str(limits.get("retention_period", "")) not in ("168h", "7d"):
        fail(where, "limits_config.retention_period must be 7 days")
    if not (cfg.get("compactor") or {}).get("retention_enabled"):
        fail(where, "compactor.retention_enabled must be true or retention is not applied")
    for c in ((cfg.get("schema_config") or {}).get("configs") or []):
        if c.get("store") != "tsdb" or c.get("schema") != "v13":
            fail(where, "schema must be tsdb/v13 (structured metadata needs it)")
    for _, k, _v in walk(cfg):
        if k in ("shared_store", "enforce_metric_name", "boltdb_shipper"):
            fail(where, f"`{k}` was removed in Loki 3")
    return cfg


# =========================================================================== prometheus

STRATEGIES = {"UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes",
              "NoUTF8EscapingWithSuffixes", "NoTranslation"}


def check_prometheus(where: str = "prometheus/prometheus.yml") -> dict:
    cfg = load_yaml(where) or {}
    otlp = cfg.get("otlp")
    if not isinstance(otlp, dict):
        fail(where, "no `otlp:` section")
        return cfg
    known = {"promote_resource_attributes", "translation_strategy", "keep_identifying_resource_attributes",
             "convert_histograms_to_nhcb", "promote_all_resource_attributes", "ignore_resource_attributes",
             "promote_scope_metadata", "label_name_underscore_sanitization", "label_name_preserve_multiple_underscores"}
    for k in otlp:
        if k not in known:
            fail(where, f"unknown otlp.{k}")
    strat = otlp.get("translation_strategy", "UnderscoreEscapingWithSuffixes")
    if strat not in STRATEGIES:
        fail(where, f"otlp.translation_strategy {strat!r} is not one of {sorted(STRATEGIES)}")
    promoted = otlp.get("promote_resource_attributes") or []
    if "service.name" not in promoted:
        fail(where, "otlp.promote_resource_attributes must include service.name (dashboards filter on service_name)")
    if collector_tiers.GATEWAY_ID_ATTR not in promoted:
        fail(where, f"otlp.promote_resource_attributes must include {collector_tiers.GATEWAY_ID_ATTR}: "
                    "without it N gateways write the same span-metric series")
    if not ((cfg.get("storage") or {}).get("tsdb") or {}).get("out_of_order_time_window"):
        fail(where, "storage.tsdb.out_of_order_time_window is not set")
    jobs = {j.get("job_name") for j in cfg.get("scrape_configs") or []}
    if "otel-collector" not in jobs:
        fail(where, "no scrape job for the Collector's own metrics (job otel-collector)")
    return cfg


def write_promtool_copy(out: Path, source: str = "prometheus/prometheus.yml") -> None:
    """A Prometheus config without the v3-only `otlp:` section and with rule_files pointing at
    the repository, for promtool 2.x `check config`."""
    cfg = yaml.safe_load((ROOT / source).read_text())
    cfg.pop("otlp", None)
    cfg["rule_files"] = [str(ROOT / "prometheus" / "rules" / "*.yml")]
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))


# =========================================================================== metric names

UNIT_MAP = {"d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
            "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
            "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tibibytes", "KBy": "kilobytes",
            "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes", "m": "meters", "V": "volts",
            "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz",
            "1": "", "%": "percent"}
PER_UNIT_MAP = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}


def _clean_unit(u: str) -> str:
    u = re.sub(r"[^a-zA-Z0-9:]", "_", u)
    u = re.sub(r"__+", "_", u)
    return u.lstrip("_")


def _unit_suffixes(unit: str) -> tuple[str, str]:
    parts = unit.split("/", 1)
    main = per = ""
    m = parts[0].strip()
    if m and not re.search(r"[{}]", m):
        main = UNIT_MAP.get(m, m)
    if len(parts) > 1 and parts[1]:
        p = parts[1].strip()
        if p and not re.search(r"[{}]", p):
            per = PER_UNIT_MAP.get(p, p)
        if per:
            per = "per_" + per
    return main, per


def prom_name(name: str, unit: str, mtype: str, strategy: str) -> str:
    """Prometheus' OTLP metric name translation (prometheus/otlptranslator, normalizeName /
    buildCompliantMetricName). mtype: counter | updowncounter | gauge | histogram |
    exponential_histogram | summary."""
    with_suffixes = strategy.endswith("WithSuffixes")
    escape = strategy.startswith("Underscore")
    if strategy == "NoTranslation":
        return name
    if not escape:
        # UTF-8 names: suffixes appended without escaping.
        n = name
        main, per = _unit_suffixes(unit)
        if mtype == "gauge" and unit == "1":
            n = re.sub(r"_ratio$", "", n) + "_ratio"
        if per and not n.endswith(per):
            n = n + "_" + per
        if main and not n.endswith(main):
            n = n + "_" + main
        if mtype == "counter":
            n = re.sub(r"_total$", "", n) + "_total"
        return n
    if not with_suffixes:
        n = "_".join(t for t in re.split(r"[^a-zA-Z0-9:_]+", name) if t)
        n = re.sub(r"[^a-zA-Z0-9:]+", "_", n)
        return "_" + n if n[:1].isdigit() else n
    tokens = [t for t in re.split(r"[^a-zA-Z0-9:]+", name) if t]
    main, per = _unit_suffixes(unit)
    main, per = _clean_unit(main), _clean_unit(per)
    if main in tokens:
        main = ""
    if per == "per_":
        per = ""
    else:
        per = per.rstrip("_")
        if per in tokens:
            per = ""
    if per:
        main = main.rstrip("_")
    if main:
        tokens.append(main)
    if per:
        tokens.append(per)
    if mtype == "counter":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and mtype == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    n = "_".join(tokens)
    return "_" + n if n[:1].isdigit() else n


def series_names(base: str, mtype: str) -> list[str]:
    if mtype == "histogram":
        return [base + "_bucket", base + "_sum", base + "_count"]
    if mtype == "exponential_histogram":
        return [base]  # a native histogram
    if mtype == "summary":
        return [base, base + "_sum", base + "_count"]
    return [base]


def norm_type(t: str, monotonic=None) -> str:
    t = (t or "").strip().lower().replace("-", "_")
    aliases = {"observablecounter": "counter", "observable_counter": "counter", "monotonic_sum": "counter",
               "upDownCounter".lower(): "updowncounter", "up_down_counter": "updowncounter",
               "observable_gauge": "gauge", "observablegauge": "gauge", "exponentialhistogram": "exponential_histogram",
               "exphistogram": "exponential_histogram"}
    t = aliases.get(t, t)
    if t == "sum":
        return "counter" if monotonic in (True, None, "true") else "updowncounter"
    if t not in ("counter", "updowncounter", "gauge", "histogram", "exponential_histogram", "summary"):
        raise ValueError(f"unknown metric type {t!r}")
    return t


def load_emitted(path: str) -> list[dict]:
    text = Path(path).read_text()
    out = []
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("metrics", [])
        for m in data:
            out.append({"name": m["name"], "unit": m.get("unit") or "",
                        "type": norm_type(m.get("type") or m.get("kind"), m.get("monotonic")),
                        "labels": m.get("labels")})
    except json.JSONDecodeError:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) < 3:
                raise ValueError(f"{path}: expected `name unit type`, got {line!r}")
            out.append({"name": parts[0], "unit": "" if parts[1] == "-" else parts[1],
                        "type": norm_type(parts[2]), "labels": None})
    return out


def load_catalog() -> list[dict]:
    """FALLBACK: the instruments of the metric catalog, from crates/telemetry/catalog.json (the
    catalog as data; a test of the telemetry crate keeps it equal to catalog.rs's CATALOG)."""
    rel = "crates/telemetry/catalog.json"
    try:
        entries = json.loads((ROOT / rel).read_text())
    except (OSError, json.JSONDecodeError) as e:
        fail(rel, f"cannot read the metric catalog: {e}")
        return []
    types = {"counter": "counter", "observable_counter": "counter", "histogram": "histogram",
             "gauge": "gauge"}
    out = []
    for e in entries:
        if e.get("kind") not in types:
            fail(rel, f"{e.get('name')}: unknown kind {e.get('kind')!r}")
            continue
        out.append({"name": e["name"], "unit": e["unit"], "type": types[e["kind"]],
                    "labels": list(e.get("labels") or [])})
    if not out:
        fail(rel, "no instruments found")
    return out


SERVICE_GRAPH_NAMES = [
    "traces_service_graph_request_total", "traces_service_graph_request_failed_total",
    *[f"traces_service_graph_request_{side}_seconds{s}" for side in ("server", "client")
      for s in ("_bucket", "_sum", "_count")],
]

# The Collector's own telemetry, scraped from :8888 (Prometheus exporter: counters end in _total).
COLLECTOR_OWN = [
    *[f"otelcol_receiver_{v}_{s}_total" for v in ("accepted", "refused", "failed")
      for s in ("spans", "metric_points", "log_records")],
    *[f"otelcol_exporter_{v}_{s}_total" for v in ("sent", "send_failed", "enqueue_failed")
      for s in ("spans", "metric_points", "log_records")],
    "otelcol_exporter_queue_size", "otelcol_exporter_queue_capacity",
    "otelcol_processor_incoming_items_total", "otelcol_processor_outgoing_items_total",
    "otelcol_process_uptime_seconds_total", "otelcol_process_cpu_seconds_total",
    "otelcol_process_memory_rss_bytes", "otelcol_process_runtime_heap_alloc_bytes",
]
PROMETHEUS_OWN = ["up", "scrape_duration_seconds", "scrape_samples_scraped", "target_info", "ALERTS",
                  "ALERTS_FOR_STATE"]


def produced_by_stack(collector: dict, tempo: dict, strategy: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, cfg in (collector.get("connectors") or {}).items():
        cfg = cfg or {}
        if ctype(name) in ("span_metrics", "spanmetrics"):
            ns = cfg.get("namespace", "traces.span.metrics")
            unit = (cfg.get("histogram") or {}).get("unit", "ms")
            pre = f"{ns}." if ns else ""
            for n, u, t in ((pre + "calls", "", "counter"), (pre + "duration", unit, "histogram")):
                for s in series_names(prom_name(n, u, t, strategy), t):
                    out[s] = f"Collector {name} connector"
            if (cfg.get("events") or {}).get("enabled"):
                out[prom_name(pre + "events", "", "counter", strategy)] = f"Collector {name} connector"
        if ctype(name) == "servicegraph":
            for s in SERVICE_GRAPH_NAMES:
                out[s] = f"Collector {name} connector"
    for s in COLLECTOR_OWN:
        out[s] = "Collector own telemetry (scrape job otel-collector)"
    for s in PROMETHEUS_OWN:
        out[s] = "Prometheus"
    out.update(tempo_generated_metrics(tempo))
    return out


# ---- PromQL metric extraction

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                "and", "or", "unless", "atan2", "inf", "nan", "start", "end"}


def promql_metrics(expr: str) -> tuple[set[str], list[str]]:
    problems = []
    e = expr.replace("$$", "$")
    e = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', e)
    if "__name__" in e:
        problems.append("selects metrics by __name__; name them explicitly so they can be checked")
    e = re.sub(r"\$\{[^}]*\}|\$\w+", " ", e)
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?[a-zA-Z]*\b", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue
        if word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names, problems


def promql_labels(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """Label names used per metric selector (`name{a="x"}`) and in by/without clauses."""
    e = expr.replace("$$", "$")
    e = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', e)
    e = re.sub(r"\$\{[^}]*\}|\$\w+", " ", e)
    per_metric: dict[str, set[str]] = {}
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^{}]*)\}", e):
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)))
        per_metric.setdefault(m.group(1), set()).update(labels)
    grouping = set()
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", e):
        grouping.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return per_metric, grouping


def prom_label(attr: str) -> str:
    n = re.sub(r"[^a-zA-Z0-9_]", "_", attr)
    n = re.sub(r"__+", "_", n)
    return "key_" + n if n[:1].isdigit() else n


# =========================================================================== grafana


def check_grafana(tempo: dict) -> tuple[dict, list[tuple[str, str]]]:
    """Returns the provisioned datasources by UID and the PromQL queries found in Grafana
    files as (where, expr)."""
    where = "grafana/provisioning/datasources/datasources.yaml"
    ds_doc = load_yaml(where) or {}
    ds = {}
    for d in ds_doc.get("datasources") or []:
        uid = d.get("uid")
        if not uid:
            fail(where, f"datasource {d.get('name')} has no fixed uid")
            continue
        if uid in ds:
            fail(where, f"duplicate uid {uid}")
        ds[uid] = d
    for uid, typ in (("prometheus", "prometheus"), ("tempo", "tempo"), ("loki", "loki")):
        if ds.get(uid, {}).get("type") != typ:
            fail(where, f"no {typ} datasource with uid {uid}")
    queries: list[tuple[str, str]] = []
    # cross-datasource references
    for uid, d in ds.items():
        for _, k, v in walk(d.get("jsonData") or {}):
            if k in ("datasourceUid",) and isinstance(v, str) and v not in ds:
                fail(where, f"{uid}: references unprovisioned datasource {v}")
    prom = (ds.get("prometheus") or {}).get("jsonData") or {}
    dests = {x.get("name") for x in prom.get("exemplarTraceIdDestinations") or [] if x.get("datasourceUid") == "tempo"}
    if "trace_id" not in dests:
        fail(where, "Prometheus exemplarTraceIdDestinations must link `trace_id` (Prometheus OTLP exemplars) to tempo")
    if tempo_exemplar_label(tempo) not in dests:
        fail(where, f"Tempo's exemplar label {tempo_exemplar_label(tempo)!r} is not an exemplar destination")
    tj = (ds.get("tempo") or {}).get("jsonData") or {}
    t2l = tj.get("tracesToLogsV2") or {}
    if t2l.get("datasourceUid") != "loki":
        fail(where, "tempo.tracesToLogsV2 must point at loki")
    q = str(t2l.get("query", ""))
    if t2l.get("customQuery") and "| trace_id=" not in q.replace(" ", "").replace("|trace_id=", "| trace_id="):
        fail(where, 'tracesToLogsV2 query must filter structured metadata with `| trace_id="..."`')
    if '|= "$${__trace' in q or "|=" in q:
        fail(where, "tracesToLogsV2 must not use a line filter for the trace id (Loki OTLP keeps it in metadata)")
    t2m = tj.get("tracesToMetrics") or {}
    if t2m.get("datasourceUid") != "prometheus" or not t2m.get("queries"):
        fail(where, "tempo.tracesToMetrics must query prometheus")
    for qq in t2m.get("queries") or []:
        queries.append((f"{where} tracesToMetrics {qq.get('name')}", qq.get("query", "")))
    for key in ("serviceMap", "lokiSearch"):
        if not (tj.get(key) or {}).get("datasourceUid"):
            fail(where, f"tempo.{key} is not set")
    if not (tj.get("nodeGraph") or {}).get("enabled"):
        fail(where, "tempo.nodeGraph.enabled must be true")
    lj = (ds.get("loki") or {}).get("jsonData") or {}
    dfs = lj.get("derivedFields") or []
    if not any(f.get("matcherType") == "label" and f.get("matcherRegex") == "trace_id" and f.get("datasourceUid") == "tempo" for f in dfs):
        fail(where, "loki needs a derived field from structured metadata trace_id (matcherType: label)")
    if not any(f.get("matcherType", "regex") == "regex" and "trace_id" in str(f.get("matcherRegex")) and f.get("datasourceUid") == "tempo" for f in dfs):
        fail(where, "loki needs a regex derived field for trace_id in JSON bodies")

    # dashboards
    dash_dir = ROOT / "grafana" / "dashboards"
    dash_files = sorted(dash_dir.glob("*.json"))
    if len(dash_files) < 4:
        fail("grafana/dashboards", f"expected 4 dashboards, found {len(dash_files)}")
    uids = set()
    for f in dash_files:
        rel = f"grafana/dashboards/{f.name}"
        try:
            dash = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            fail(rel, f"invalid JSON: {e}")
            continue
        if dash.get("uid") in uids:
            fail(rel, f"duplicate dashboard uid {dash.get('uid')}")
        uids.add(dash.get("uid"))
        panels = []
        for p in dash.get("panels") or []:
            panels.append(p)
            panels.extend(p.get("panels") or [])
        for p in panels:
            pw = f"{rel} panel {p.get('id')} {p.get('title')!r}"
            if p.get("type") == "row":
                continue
            pds = p.get("datasource")
            puid = pds.get("uid") if isinstance(pds, dict) else pds
            if not puid:
                fail(pw, "no datasource")
            for _, k, v in walk(p):
                if k == "datasource":
                    u = v.get("uid") if isinstance(v, dict) else v
                    if u and not str(u).startswith("$") and u not in ds and u not in ("-- Mixed --", "-- Grafana --", "__expr__"):
                        fail(pw, f"references unprovisioned datasource {u}")
            explore = [lk for lk in p.get("links") or [] if "/explore" in str(lk.get("url", ""))]
            if not explore:
                fail(pw, "no link to Explore")
            for lk in explore:
                qs = urllib.parse.parse_qs(urllib.parse.urlparse(lk["url"]).query)
                try:
                    panes = json.loads(qs["panes"][0])
                    target_ds = {pane.get("datasource") for pane in panes.values()}
                except (KeyError, json.JSONDecodeError):
                    fail(pw, "Explore link has no parsable panes")
                    continue
                if target_ds != {puid}:
                    fail(pw, f"Explore link opens {target_ds}, the panel uses {puid}")
            if puid and ds.get(puid, {}).get("type") == "prometheus":
                for t in p.get("targets") or []:
                    if t.get("expr"):
                        queries.append((pw, t["expr"]))
    # Grafana-managed alert rules
    rules_rel = "grafana/provisioning/alerting/rules.yaml"
    rules = load_yaml(rules_rel) or {}
    for g in rules.get("groups") or []:
        for r in g.get("rules") or []:
            for dq in r.get("data") or []:
                u = dq.get("datasourceUid")
                if u != "__expr__" and u not in ds:
                    fail(f"{rules_rel} {r.get('title')}", f"references unprovisioned datasource {u}")
                if u in ds and ds[u].get("type") == "prometheus":
                    queries.append((f"{rules_rel} {r.get('title')}", (dq.get("model") or {}).get("expr", "")))
    for rel in ("grafana/provisioning/alerting/contact-points.yaml", "grafana/provisioning/alerting/policies.yaml",
                "grafana/provisioning/dashboards/dashboards.yaml"):
        load_yaml(rel)
    cps = {c.get("name") for c in (load_yaml("grafana/provisioning/alerting/contact-points.yaml") or {}).get("contactPoints") or []}
    for pol in (load_yaml("grafana/provisioning/alerting/policies.yaml") or {}).get("policies") or []:
        for _, k, v in walk(pol):
            if k == "receiver" and v not in cps:
                fail("grafana/provisioning/alerting/policies.yaml", f"receiver {v} is not a provisioned contact point")
        if pol.get("receiver") not in cps:
            fail("grafana/provisioning/alerting/policies.yaml", "the root policy has no provisioned receiver")
    return ds, queries


def check_rule_tests() -> list[tuple[str, str]]:
    """Every alert has a firing and a not-firing promtool case; returns the rules' queries."""
    queries = []
    alerts = {}
    for f in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        doc = load_yaml(f"prometheus/rules/{f.name}") or {}
        for g in doc.get("groups") or []:
            for r in g.get("rules") or []:
                queries.append((f"prometheus/rules/{f.name} {r.get('alert') or r.get('record')}", r.get("expr", "")))
                if r.get("alert"):
                    alerts[r["alert"]] = {"fires": False, "quiet": False}
    for f in sorted((ROOT / "prometheus" / "tests").glob("*.yml")):
        doc = load_yaml(f"prometheus/tests/{f.name}") or {}
        for t in doc.get("tests") or []:
            for a in t.get("alert_rule_test") or []:
                st = alerts.get(a.get("alertname"))
                if st is None:
                    fail(f"prometheus/tests/{f.name}", f"tests unknown alert {a.get('alertname')}")
                    continue
                if a.get("exp_alerts"):
                    st["fires"] = True
                else:
                    st["quiet"] = True
    for name, st in alerts.items():
        if not st["fires"]:
            fail("prometheus/tests", f"{name} has no test case where it fires")
        if not st["quiet"]:
            fail("prometheus/tests", f"{name} has no test case where it stays quiet")
    return queries


# =========================================================================== main


# What each pinned image can run as a healthcheck, and where that comes from. The Loki and
# Tempo entries were read from their sources at the pinned tags; entries marked "assumed" were
# not, and are the first suspects when a healthcheck never passes. An image missing
# here, or a healthcheck whose command is not in its set, fails the check: a healthcheck that
# cannot run keeps its service unhealthy for ever, and everything that depends on it never
# starts (Loki's `wget` in a distroless image did exactly that).
IMAGE_COMMANDS: dict[str, tuple[set[str], str]] = {
    "grafana/loki:3.7.6": ({"/usr/bin/loki"},
        "distroless/static:nonroot, only /usr/bin/loki; `-health` probes /ready (cmd/loki/Dockerfile, cmd/loki/health.go at v3.7.6)"),
    "grafana/tempo:3.0.3": ({"/tempo"},
        "distroless, only /tempo; `-health` probes /ready (cmd/tempo/Dockerfile, cmd/tempo/main.go at v3.0.3)"),
    "prom/prometheus:v3.14.0": ({"wget", "/bin/wget", "sh", "/bin/sh", "promtool", "prometheus"},
        "busybox base with wget (the image's usual base; its Dockerfile was not read when this entry was written)"),
    "grafana/grafana:13.2.0": ({"wget", "curl", "sh", "/bin/sh", "grafana"},
        "alpine base with busybox wget (assumed; packaging/docker/Dockerfile was not read when this entry was written)"),
    "busybox:1.37.0": ({"wget", "sh", "/bin/sh", "sleep"}, "busybox applets"),
    "nginx:1.28.0-alpine": ({"wget", "sh", "/bin/sh", "nginx"},
        "alpine base with busybox wget (assumed from the -alpine tag; the image's Dockerfile was not read)"),
    "postgres:18.4": ({"pg_isready", "sh", "/bin/sh", "psql"}, "Debian base with the PostgreSQL client tools (the official image's documented pg_isready)"),
    "ghcr.io/valkey-io/valkey:9.0.4-alpine3.23": ({"valkey-cli", "sh", "/bin/sh"}, "alpine with valkey-cli (assumed from the -alpine tag; not read)"),
    "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z": ({"mc", "curl", "sh", "/bin/sh"}, "the minio image ships mc (assumed; not read)"),
    "vidscope-api:local": ({"curl", "sh", "/bin/sh"}, "our Dockerfile's runtime stage installs curl"),
    "vidscope-worker:local": ({"curl", "sh", "/bin/sh"}, "our Dockerfile's runtime stage installs curl"),
}


def check_healthchecks(compose: dict, where_file: str) -> None:
    checked = 0
    for name, svc in (compose.get("services") or {}).items():
        hc = (svc or {}).get("healthcheck")
        if not hc or hc.get("disable"):
            continue
        test = hc.get("test")
        where = f"{where_file}: services.{name}.healthcheck"
        if isinstance(test, str):
            kind, argv = "CMD-SHELL", [test]
        elif isinstance(test, list) and test:
            kind, argv = test[0], test[1:]
        else:
            fail(where, f"unreadable test {test!r}")
            continue
        image = svc.get("image", "")
        if image not in IMAGE_COMMANDS:
            fail(where, f"image {image!r} has no entry in IMAGE_COMMANDS (scripts/lib/stack_check.py): "
                        "say which commands it has, and where that is documented")
            continue
        have, source = IMAGE_COMMANDS[image]
        if kind == "CMD-SHELL":
            if not ({"sh", "/bin/sh"} & have):
                fail(where, f"CMD-SHELL needs /bin/sh, which {image} does not have ({source})")
                continue
            command = argv[0].split()[0] if argv and argv[0].split() else ""
        elif kind == "CMD":
            command = argv[0] if argv else ""
        else:
            fail(where, f"test must start with CMD or CMD-SHELL, not {kind!r}")
            continue
        if command not in have:
            fail(where, f"runs {command!r}, which {image} does not have ({source})")
        checked += 1
    notes.append(f"healthchecks ({where_file}): {checked} checked against their images' documented commands")


# =========================================================================== trace viewer wiring


def _compose_mounts(svc: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of a compose service's volumes, short or long syntax."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) == 1:
                continue
            opts = parts[2].split(",") if len(parts) > 2 else []
            out.append((parts[0], parts[1], "ro" in opts))
        elif isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v.get("target", "")), bool(v.get("read_only"))))
    return out


def _in_volume(path: str, mounts, named: set[str]):
    """(volume, path inside it) for an absolute container path under a named-volume mount."""
    best = None
    for src, target, ro in mounts:
        t = target.rstrip("/")
        if src in named and (path == t or path.startswith(t + "/")):
            if best is None or len(t) > len(best[2]):
                best = (src, path[len(t):].lstrip("/"), t, ro)
    return best


def _dockerfile_user(stage: str) -> str | None:
    """The USER in effect in a Dockerfile stage, following `FROM <earlier stage>`."""
    stages: dict[str, tuple[str, str | None]] = {}
    current, base, user = None, None, None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        m = re.match(r"\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            if current:
                stages[current] = (base, user)
            base, current, user = m.group(1), (m.group(2) or "").lower() or None, None
            continue
        m = re.match(r"\s*USER\s+(\S+)", line, re.I)
        if m:
            user = m.group(1)
    if current:
        stages[current] = (base, user)
    seen = set()
    while stage in stages and stage not in seen:
        seen.add(stage)
        base, user = stages[stage]
        if user:
            return user
        stage = base.lower()
    return None


def _env_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(x.split("=", 1) if "=" in x else (x, "") for x in env)
    return {str(k): str(v) for k, v in env.items()}


def _collector_config_of(svc: dict) -> str | None:
    """The repository file a Collector service runs: its --config path, followed through the
    bind mount that puts it there (relative to the repo, or absolute as `config` renders it)."""
    cmd = [str(c) for c in svc.get("command") or []]
    conf = next((c.split("=", 1)[1] for c in cmd if c.startswith("--config=")), None)
    for src, target, _ in _compose_mounts(svc):
        if conf and target == conf:
            host = Path(src) if src.startswith("/") else ROOT / src
            try:
                return str(host.resolve().relative_to(ROOT))
            except ValueError:
                return None
    return None


def _expand_env(text: str, env: dict[str, str]) -> str | None:
    """${env:X} / ${env:X:-default} as the Collector expands them; None if X is unset."""
    missing = []

    def sub(m):
        name, default = m.group(1), m.group(3)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""
    out = re.sub(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", sub, text)
    return None if missing else out


def check_trace_viewer_wiring(compose: dict, where: str) -> None:
    """Issue 24, defect 7: under compose the trace viewer reads the Collectors' file exporter
    output. For every Collector service of the compose model (the single node; or the agent and
    each gateway of the scaled-out one), every `file` exporter in a traces pipeline of the config
    it runs writes (${env:...} expanded with that service's environment) into a named volume,
    the API mounts that volume read-only, and VIDSCOPE_TRACE_VIEWER_FILES names the same file
    (the same path in both containers); and the API's user can read what the Collector writes.
    A Collector tier without a file exporter (the agent) is fine as long as some Collector
    writes one the API reads; two Collectors writing the same file is a failure."""
    services = compose.get("services") or {}
    named = set((compose.get("volumes") or {}).keys())
    api = services.get("api") or {}
    collectors = {n: s for n, s in services.items() if "opentelemetry-collector" in str((s or {}).get("image", ""))}
    if not collectors or not api:
        fail(where, "no Collector or api service")
        return
    api_mounts = _compose_mounts(api)
    viewer_files = [x.strip() for x in _env_of(api).get("VIDSCOPE_TRACE_VIEWER_FILES", "").split(",") if x.strip()]
    if not viewer_files:
        fail(where, "services.api.environment.VIDSCOPE_TRACE_VIEWER_FILES is not set: the trace viewer is empty under compose")
    api_reads = {}
    for f in viewer_files:
        loc = _in_volume(f, api_mounts, named)
        if loc is None:
            fail(where, f"services.api reads {f} (VIDSCOPE_TRACE_VIEWER_FILES), which is on no named volume it mounts")
            continue
        vol, inner, _, ro = loc
        if not ro:
            fail(where, f"services.api mounts {vol} read-write: the Collector's output must be mounted read-only (:ro)")
        api_reads[(vol, inner)] = f
    written: dict[tuple[str, str], str] = {}
    file_vols = set()
    for col_name, svc in sorted(collectors.items()):
        conf = _collector_config_of(svc)
        if conf is None:
            fail(where, f"services.{col_name}: cannot tell which repository config it runs (--config and its bind mount)")
            continue
        collector = load_yaml(conf) or {}
        pipelines = ((collector.get("service") or {}).get("pipelines")) or {}
        exporters = collector.get("exporters") or {}
        trace_files = sorted({e for name, p in pipelines.items() if name.split("/")[0] == "traces"
                              for e in p.get("exporters") or [] if ctype(e) == "file"})
        col_mounts = _compose_mounts(svc)
        for e in trace_files:
            raw = str((exporters.get(e) or {}).get("path", ""))
            if not (exporters.get(e) or {}).get("rotation"):
                fail(conf, f"exporters.{e} has no rotation")
            path = _expand_env(raw, _env_of(svc))
            if path is None:
                fail(where, f"services.{col_name} runs {conf}, whose exporters.{e} path {raw} uses a variable "
                            "the service does not set")
                continue
            loc = _in_volume(path, col_mounts, named)
            if loc is None:
                fail(where, f"services.{col_name} writes {path} (exporters.{e}) outside any named volume: the API cannot mount it")
                continue
            vol, inner, _, _ = loc
            file_vols.add(vol)
            if (vol, inner) in written:
                fail(where, f"services.{col_name} and services.{written[(vol, inner)]} both write {path} in volume {vol}")
            written[(vol, inner)] = col_name
            read_as = api_reads.get((vol, inner))
            if read_as is None:
                fail(where, f"services.{col_name} writes {path} into volume {vol}, which the API does not read "
                            f"(VIDSCOPE_TRACE_VIEWER_FILES={','.join(viewer_files) or 'unset'})")
            elif read_as != path:
                fail(where, f"the API reads {col_name}'s {path} as {read_as}: mount {vol} at the same path in both")
            else:
                notes.append(f"trace viewer ({where}): services.{col_name} ({conf}) writes {path} (exporters.{e}) "
                             f"into volume {vol}, which services.api mounts read-only at the same path and names in "
                             "VIDSCOPE_TRACE_VIEWER_FILES")
    if not written:
        fail(where, "no Collector writes a file exporter in a traces pipeline: the trace viewer has nothing to read")
    for key, f in api_reads.items():
        if key not in written:
            fail(where, f"services.api reads {f}, which no Collector writes")
    # The exporter creates its files for the Collector's user; the API must run as that user.
    # The image runs as a fixed uid, which the one-shot that prepares the volume chowns to.
    chown = ""
    for s in services.values():
        cmd = " ".join(map(str, (s or {}).get("command") or []))
        if "chown" in cmd and any(src in file_vols for src, _, _ in _compose_mounts(s or {})):
            chown = cmd
    m = re.search(r"chown\s+(?:-R\s+)?(\d+)", chown)
    col_uid = m.group(1) if m else None
    api_target = str(((api.get("build") or {}).get("target")) or "")
    api_user = str(api.get("user") or _dockerfile_user(api_target) or "")
    if col_uid is None:
        fail(where, "no chown one-shot gives the Collector's volume to its user (uid unknown)")
    elif api_user.split(":")[0] != col_uid:
        fail(where, f"the API runs as {api_user or 'root?'} but the Collector's files belong to uid {col_uid}: "
                    "the trace viewer could not read them")


# =========================================================================== scaled-out topology

AGGREGATORS = {"sum", "avg", "min", "max", "count", "group", "topk", "bottomk", "quantile", "stddev", "stdvar",
               "count_values", "limitk", "limit_ratio"}


def _enclosing_aggregations(expr: str, name: str) -> list[list[str]]:
    """For each occurrence of metric `name` in `expr`, the aggregation operators around it,
    innermost first."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr.replace("$$", "$"))
    # `sum by (x) (...)` -> `sum(...)`; `sum(...) by (x)` -> `sum(...)`.
    e = re.sub(r"\b([a-z_]+)\s*(?:by|without)\s*\([^)]*\)\s*\(", r"\1(", e)
    e = re.sub(r"\)\s*(?:by|without)\s*\([^)]*\)", ")", e)
    out = []
    for m in re.finditer(rf"(?<![A-Za-z0-9_:]){re.escape(name)}(?![A-Za-z0-9_:])", e):
        stack = []
        for t in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)?\s*(\()|(\))", e[:m.start()]):
            if t.group(2):
                stack.append(t.group(1) or "")
            elif stack:
                stack.pop()
        out.append([f for f in reversed(stack) if f in AGGREGATORS])
    return out


def check_gateway_label_aggregation(queries: list[tuple[str, str]], connector_metrics: set[str]) -> None:
    """With N gateways every span-metric / service-graph series exists once per gateway
    (label collector_gateway_id). A query must sum across them: the innermost aggregation around
    such a metric is `sum` (or `group`), never a bare selector, a `max`/`avg` of partial rates, or
    a `count` that counts each gateway's copy; and no `by (...)` keeps the gateway label."""
    label = prom_label(collector_tiers.GATEWAY_ID_ATTR)
    checked = 0
    for where, expr in queries:
        names = promql_metrics(expr)[0] & connector_metrics
        if not names:
            continue
        checked += 1
        if re.search(rf"\bby\s*\([^)]*\b{label}\b", expr):
            fail(where, f"groups by {label}: the gateways' partial series must be summed, not shown apart")
        for n in sorted(names):
            for aggs in _enclosing_aggregations(expr, n):
                if not aggs:
                    fail(where, f"{n} is not aggregated: with N gateways it has one series per gateway ({label})")
                elif aggs[0] not in ("sum", "group"):
                    fail(where, f"{n}: innermost aggregation is {aggs[0]}; with N gateways each holds part of the "
                                f"count, so sum across {label} first (sum, or group to count distinct series)")
    notes.append(f"gateway label: {checked} queries on connector metrics sum across {label}")


def check_scale(compose: dict, where: str, prom_scale: dict) -> None:
    """docker-compose.scale.yml merged onto the single-node file (rendered by docker-compose
    config): replicas never fight over a host port; the agent's resolver finds exactly the
    gateway services; each gateway has its own identity; Prometheus scrapes both tiers."""
    services = compose.get("services") or {}
    published: dict[str, str] = {}
    for name, svc in services.items():
        replicas = int(((svc or {}).get("deploy") or {}).get("replicas") or 1)
        for port in (svc or {}).get("ports") or []:
            pub = str(port.get("published", "")) if isinstance(port, dict) else (
                str(port).rsplit(":", 1)[0] if ":" in str(port) else "")
            if not pub:
                continue
            if replicas > 1 and "-" not in pub:
                fail(where, f"services.{name} has {replicas} replicas and publishes host port {pub}: "
                            "all but one replica would fail to bind it")
            if pub in published:
                fail(where, f"services.{name} and services.{published[pub]} both publish host port {pub}")
            published[pub] = name
    roles: dict[str, list[str]] = {"agent": [], "gateway": []}
    for name, svc in services.items():
        conf = _collector_config_of(svc or {}) if "opentelemetry-collector" in str((svc or {}).get("image", "")) else None
        role = COLLECTOR_CONFIGS.get(conf or "")
        if role in roles:
            roles[role].append(name)
    if len(roles["gateway"]) < 2:
        fail(where, f"expected at least 2 gateway services (running otel-collector/gateway.yaml), found {roles['gateway']}")
    if len(roles["agent"]) != 1:
        fail(where, f"expected 1 agent service (running otel-collector/agent.yaml), found {roles['agent']}")
    ids = {}
    for g in roles["gateway"]:
        gid = _env_of(services[g]).get(collector_tiers.GATEWAY_ID_ENV)
        if not gid:
            fail(where, f"services.{g} does not set {collector_tiers.GATEWAY_ID_ENV}: its series would collide with another gateway's")
        elif gid in ids:
            fail(where, f"services.{g} and services.{ids[gid]} share {collector_tiers.GATEWAY_ID_ENV}={gid}")
        else:
            ids[gid] = g
    agent_cfg = load_yaml("otel-collector/agent.yaml") or {}
    hosts = {str(((v.get("resolver") or {}).get("dns") or {}).get("hostname"))
             for k, v in (agent_cfg.get("exporters") or {}).items() if ctype(k) == "load_balancing"}
    for h in sorted(hosts):
        carriers = sorted(n for n, s in services.items()
                          if h == n or any(h in ((net or {}).get("aliases") or [])
                                           for net in ((s or {}).get("networks") or {}).values()
                                           if isinstance(net, dict)))
        if sorted(roles["gateway"]) != carriers:
            fail(where, f"the agent's DNS resolver looks up {h!r}, which resolves to {carriers}, "
                        f"not to the gateways {sorted(roles['gateway'])}")
    prom = services.get("prometheus") or {}
    if not any(src.endswith("prometheus/prometheus.scale.yml") and t == "/etc/prometheus/prometheus.yml"
               for src, t, _ in _compose_mounts(prom)):
        fail(where, "services.prometheus does not run prometheus/prometheus.scale.yml: the gateways are not scraped")
    job = next((j for j in prom_scale.get("scrape_configs") or [] if j.get("job_name") == "otel-collector"), {})
    sd_names = {n for sd in job.get("dns_sd_configs") or [] for n in sd.get("names") or []}
    static = {t.split(":")[0] for sc in job.get("static_configs") or [] for t in sc.get("targets") or []}
    found = sd_names | static
    for n in roles["agent"] + roles["gateway"]:
        aliases = {a for net in ((services[n] or {}).get("networks") or {}).values() if isinstance(net, dict)
                   for a in net.get("aliases") or []}
        if not ({n} | aliases) & found:
            fail("prometheus/prometheus.scale.yml", f"job otel-collector does not scrape services.{n}")
    notes.append(f"scale ({where}): agent {roles['agent']}, gateways {roles['gateway']} "
                 f"({', '.join(f'{k}={v}' for v, k in ids.items())}), all scraped by job otel-collector")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--emitted", default=os.environ.get("VIDSCOPE_EMITTED_METRICS"))
    ap.add_argument("--promtool-config", help="write a promtool-2.x-readable prometheus.yml here and exit")
    ap.add_argument("--promtool-source", default="prometheus/prometheus.yml",
                    help="the config --promtool-config copies (default prometheus/prometheus.yml)")
    ap.add_argument("--compose-scale", metavar="PATH",
                    help="docker-compose.observability.yml + docker-compose.scale.yml merged by "
                         "`docker-compose config`; checked like the single-node file, plus the scale checks")
    args = ap.parse_args()
    if args.promtool_config:
        write_promtool_copy(Path(args.promtool_config), args.promtool_source)
        return 0

    collector = {}
    for conf, role in COLLECTOR_CONFIGS.items():
        cfg = check_collector(conf, role)
        if role == "single":
            collector = cfg
    base_where = "docker-compose.observability.yml"
    base = load_yaml(base_where) or {}
    check_trace_viewer_wiring(base, base_where)
    check_healthchecks(base, base_where)
    prom = check_prometheus()
    prom_scale = check_prometheus("prometheus/prometheus.scale.yml")
    if args.compose_scale:
        scale_where = "docker-compose.observability.yml + docker-compose.scale.yml"
        try:
            merged = yaml.safe_load(Path(args.compose_scale).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            fail(scale_where, f"cannot read the merged model {args.compose_scale}: {e}")
            merged = {}
        check_trace_viewer_wiring(merged, scale_where)
        check_healthchecks(merged, scale_where)
        check_scale(merged, scale_where, prom_scale)
    else:
        notes.append("scale: --compose-scale not given, the merged scale topology was NOT checked")
    tempo = check_tempo()
    check_loki()
    _, grafana_queries = check_grafana(tempo)
    rule_queries = check_rule_tests()

    strategy = ((prom.get("otlp") or {}).get("translation_strategy")) or "UnderscoreEscapingWithSuffixes"
    if args.emitted:
        source = f"emitted by the services ({args.emitted})"
        emitted = load_emitted(args.emitted)
    else:
        source = "FALLBACK: declared in the catalog, crates/telemetry/catalog.json (set VIDSCOPE_EMITTED_METRICS to check what the services really export)"
        emitted = load_catalog()
    known: dict[str, str] = {}
    for m in emitted:
        base = prom_name(m["name"], m["unit"], m["type"], strategy)
        for s in series_names(base, m["type"]):
            known[s] = f"{m['name']} ({m['type']}, unit {m['unit'] or '-'})"
    labels_of: dict[str, set[str]] = {}
    promoted = {prom_label(a) for a in ((prom.get("otlp") or {}).get("promote_resource_attributes") or [])}
    always = promoted | {"job", "instance", "otel_scope_name", "otel_scope_version"}
    for m in emitted:
        if m.get("labels") is None:
            continue
        base = prom_name(m["name"], m["unit"], m["type"], strategy)
        for s in series_names(base, m["type"]):
            extra = {"le"} if s.endswith("_bucket") else set()
            labels_of[s] = {prom_label(x) for x in m["labels"]} | always | extra
    stack_made = produced_by_stack(collector, tempo, strategy)
    known.update(stack_made)
    check_gateway_label_aggregation(grafana_queries + rule_queries,
                                    {n for n, why in stack_made.items() if why.startswith("Collector") and "connector" in why})

    bad = 0
    checked = 0
    for where, expr in grafana_queries + rule_queries:
        names, problems = promql_metrics(expr)
        for p in problems:
            fail(where, p)
        for n in sorted(names):
            checked += 1
            if n not in known:
                bad += 1
                hint = ""
                close = [k for k in known if k.split("_")[:2] == n.split("_")[:2]]
                if close:
                    hint = f" (known with that prefix: {', '.join(sorted(close)[:4])})"
                fail(where, f"queries {n}, which nothing emits{hint}")
        # Label names: a filter or grouping on a label a metric never carries shows "No data".
        per_metric, grouping = promql_labels(expr)
        for n, labs in per_metric.items():
            if n in labels_of:
                for lab in sorted(labs - labels_of[n]):
                    fail(where, f"filters {n} on label {lab!r}, which it does not carry "
                                f"(has: {', '.join(sorted(labels_of[n] - always))})")
        app = [n for n in names if n in labels_of]
        if app and len(app) == len(names):
            allowed = set().union(*(labels_of[n] for n in app))
            for lab in sorted(grouping - allowed):
                fail(where, f"groups by label {lab!r}, which none of {', '.join(sorted(app))} carries")
    notes.append(f"metric names: {len(emitted)} instruments {source}; translation {strategy}; "
                 f"{checked} metric references in {len(grafana_queries) + len(rule_queries)} queries, {bad} unknown")

    for n in notes:
        print(f"  note: {n}")
    if errors:
        print(f"stack_check: {len(errors)} problem(s):", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    print("stack_check: all static checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
