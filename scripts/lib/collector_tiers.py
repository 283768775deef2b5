"""The two Collector tiers of the scaled-out topology, cut from the single-node config.

otel-collector/config.yaml (one Collector doing everything) stays the one hand-written source.
Every component the tiers share is copied from it, so a change there (a sampling policy, a span
metrics dimension, an exporter's queue) reaches the tiers the next time stack_gen.py runs, and
check-stack.sh fails until it has. What this module adds is only what a tier needs and the
single node does not: the agents' trace-id load balancing, and the gateways' identity.

  agent     OTLP in (4317, 4318 with CORS), memory_limiter, health-probe filter, resource
            detection; metrics -> Prometheus and logs -> Loki straight from here; traces ->
            `load_balancing` exporter keyed by trace id -> one gateway per trace.
            No tail sampling, no span metrics, no service graph: an agent sees only the spans of
            its own clients, so none of those could be computed right here.
  gateway   OTLP gRPC in from the agents; span metrics and service graph over every span, then
            tail sampling; Tempo, its own traces.json, and the connectors' metrics -> Prometheus.

Used by stack_gen.py (writes the files) and stack_check.py (knows the roles' names).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

SOURCE = "otel-collector/config.yaml"

# Resource attribute naming the gateway that produced a span-metric / service-graph series.
# Promoted to a Prometheus label by prometheus/prometheus.yml.
GATEWAY_ID_ATTR = "collector.gateway.id"
GATEWAY_ID_ENV = "COLLECTOR_GATEWAY_ID"
LB_EXPORTER = "load_balancing/gateways"
GATEWAY_PORT = 4317

# compose: every gateway service carries the network alias `otel-gateway`, so Docker's DNS
# returns one A record per gateway. Kubernetes: the headless Service of the gateway
# StatefulSet, watched through the API (endpoints follow pods without DNS caching).
RESOLVERS = {
    "compose": {"dns": {"hostname": "otel-gateway", "port": str(GATEWAY_PORT), "interval": "5s", "timeout": "1s"}},
    "kubernetes": {"k8s": {"service": "otel-collector-gateway.vidscope", "ports": [GATEWAY_PORT]}},
}

# Where the backends are. compose: the service names. Kubernetes: the Services the upstream
# charts create for the release names in deploy/kubernetes/README.md (tempo-distributed's
# distributor, Loki's gateway, the Prometheus server), all in the namespace `vidscope`.
BACKENDS = {
    "compose": {},
    "kubernetes": {
        "otlp_grpc/tempo": "tempo-distributor:4317",
        "otlp_http/loki": "http://loki-gateway:80/otlp",
        "otlp_http/prometheus": "http://prometheus-server:80/api/v1/otlp",
    },
}


def _point_at_backends(exporters: dict, platform: str) -> dict:
    for name, endpoint in BACKENDS[platform].items():
        if name in exporters:
            exporters[name]["endpoint"] = endpoint
    return exporters


# Components that run on the agents only (before the hop) and so are not repeated on the
# gateways: the gateway gets spans that already went through them.
AGENT_ONLY_PROCESSORS = ("filter", "resource_detection")


def ctype(cid: str) -> str:
    return cid.split("/", 1)[0]


def _pick(section: dict, names) -> dict:
    return {n: copy.deepcopy(section[n]) for n in names}


def _pipeline(source: dict, name: str) -> dict:
    return copy.deepcopy(source["service"]["pipelines"][name])


def agent(source: dict, platform: str) -> dict:
    """The agent tier. `platform` chooses the gateway resolver (compose or kubernetes)."""
    traces_in = _pipeline(source, "traces/in")
    metrics = _pipeline(source, "metrics")
    connectors = set(source.get("connectors") or {})
    metrics["receivers"] = [r for r in metrics["receivers"] if r not in connectors]
    # collector.instance.id is only stamped by the connectors, which do not run here.
    metrics["processors"] = [p for p in metrics["processors"] if not p.startswith("resource/drop_collector_instance")]
    traces = {"receivers": traces_in["receivers"], "processors": traces_in["processors"], "exporters": [LB_EXPORTER]}
    pipelines = {"traces": traces, "metrics": metrics, "logs": _pipeline(source, "logs")}
    used = {k: set() for k in ("receivers", "processors", "exporters")}
    for p in pipelines.values():
        for k in used:
            used[k].update(p.get(k) or [])
    exporters = _point_at_backends(_pick(source["exporters"], sorted(used["exporters"] - {LB_EXPORTER})), platform)
    exporters[LB_EXPORTER] = {
        # Every span of a trace goes to the same gateway: tail sampling decides on whole
        # traces, and the service graph pairs each client span with its server span.
        "routing_key": "traceID",
        "protocol": {"otlp": {"tls": {"insecure": True}, "timeout": "5s"}},
        "resolver": copy.deepcopy(RESOLVERS[platform]),
        # A gateway restart or a resolver change must not lose spans: queue and retry here,
        # in front of the per-gateway OTLP clients.
        "timeout": "10s",
        "sending_queue": {"enabled": True, "queue_size": 5000},
        "retry_on_failure": {"enabled": True, "initial_interval": "1s", "max_interval": "10s",
                             "max_elapsed_time": "2m"},
    }
    return {
        "extensions": copy.deepcopy(source["extensions"]),
        "receivers": _pick(source["receivers"], sorted(used["receivers"])),
        "processors": _pick(source["processors"], sorted(used["processors"])),
        "exporters": exporters,
        "service": {"extensions": list(source["service"]["extensions"]), "pipelines": pipelines,
                    "telemetry": copy.deepcopy(source["service"]["telemetry"])},
    }


def gateway(source: dict, platform: str) -> dict:
    """The gateway tier; `platform` (compose or kubernetes) only moves the backend endpoints."""
    connectors = set(source.get("connectors") or {})
    traces_in = _pipeline(source, "traces/in")
    traces_in["processors"] = [p for p in traces_in["processors"] if ctype(p) not in AGENT_ONLY_PROCESSORS]
    traces_out = _pipeline(source, "traces/out")
    metrics = _pipeline(source, "metrics")
    # App metrics reach Prometheus from the agents; here only what the connectors make.
    metrics["receivers"] = [r for r in metrics["receivers"] if r in connectors]
    metrics["processors"] = [p for p in metrics["processors"] if ctype(p) not in AGENT_ONLY_PROCESSORS]
    metrics["processors"].append("resource/gateway_identity")
    pipelines = {"traces/in": traces_in, "traces/out": traces_out, "metrics": metrics}
    used = {k: set() for k in ("receivers", "processors", "exporters")}
    for p in pipelines.values():
        for k in used:
            used[k].update(x for x in p.get(k) or [] if x not in connectors)
    processors = _pick(source["processors"], sorted(used["processors"] - {"resource/gateway_identity"}))
    processors["resource/gateway_identity"] = {
        "attributes": [{"key": GATEWAY_ID_ATTR, "value": "${env:%s}" % GATEWAY_ID_ENV, "action": "upsert"}],
    }
    exporters = _point_at_backends(_pick(source["exporters"], sorted(used["exporters"])), platform)
    for name, exp in exporters.items():
        if ctype(name) == "file":
            # One file per gateway, in a directory named after it: two gateways never write
            # the same file, and the API lists each one in VIDSCOPE_TRACE_VIEWER_FILES.
            path = Path(exp["path"])
            exp["path"] = str(path.parent / ("${env:%s}" % GATEWAY_ID_ENV) / path.name)
    receivers = _pick(source["receivers"], sorted(used["receivers"]))
    # Only agents talk to a gateway, over gRPC: no OTLP/HTTP listener, no CORS.
    otlp = receivers.get("otlp") or {}
    otlp["protocols"] = {"grpc": otlp["protocols"]["grpc"]}
    return {
        "extensions": copy.deepcopy(source["extensions"]),
        "receivers": receivers,
        "processors": processors,
        "connectors": copy.deepcopy(source["connectors"]),
        "exporters": exporters,
        "service": {"extensions": list(source["service"]["extensions"]), "pipelines": pipelines,
                    "telemetry": copy.deepcopy(source["service"]["telemetry"])},
    }


COMMON_HEADER = f"""\
# GENERATED by scripts/lib/stack_gen.py from {SOURCE} -- do not edit.
# Edit that file (its comments explain every shared component) or
# scripts/lib/collector_tiers.py, then run `python3 scripts/lib/stack_gen.py`;
# scripts/check-stack.sh fails while this file is stale.
#
"""

AGENT_HEADER = COMMON_HEADER + """\
# AGENT tier of the scaled-out Collector (docs/full-stack.md, "Scaling out").
# Receives OTLP from the services; metrics and logs go straight to Prometheus and Loki; traces
# go to the gateways through the load_balancing exporter keyed by trace id, so every span of
# one trace -- the API's request, the worker's jobs minutes later -- reaches the same gateway.
# No tail sampling, span metrics or service graph here: they need whole traces.
"""

GATEWAY_HEADER = COMMON_HEADER + """\
# GATEWAY tier of the scaled-out Collector (docs/full-stack.md, "Scaling out").
# Receives whole traces from the agents (routed by trace id): span metrics and service graph
# over every span, then tail sampling, then Tempo and this gateway's own traces.json.
#
# Why trace-id routing keeps the numbers right with N gateways: the tail sampler and its
# decision cache see every span of a trace on one gateway, and the servicegraph connector pairs
# a client span with its server span, which belong to the same trace, so each edge is counted
# once, by one gateway.
#
# Why resource/gateway_identity: the spans of one API instance are spread over all gateways,
# so each gateway produces its own span-metric and service-graph series for the same
# service.name / service.instance.id. Without a label telling the writers apart, N gateways
# would push N different cumulative counts into one Prometheus series, and its rate would be
# garbage. collector.instance.id cannot be that label: it is new on every restart (the
# single-node config drops it, and so does this one). COLLECTOR_GATEWAY_ID is stable: the
# compose service name, or the StatefulSet pod name (downward API) on Kubernetes. Prometheus
# promotes it to the label collector_gateway_id; dashboards and alerts sum across it.
"""


def _dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, width=1000)


K8S_HEADER = f"""\
# GENERATED by scripts/lib/stack_gen.py from {SOURCE} -- do not edit (see
# otel-collector/agent.yaml and gateway.yaml, which carry the same configs with the compose
# resolver). The agent here finds the gateways through the Kubernetes API (resolver k8s,
# headless Service otel-collector-gateway); Tempo, Loki and Prometheus are the Services of the
# Helm releases in deploy/kubernetes/README.md (BACKENDS in scripts/lib/collector_tiers.py).
"""


def configmap(name: str, component: str, text: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "vidscope",
                     "labels": {"app.kubernetes.io/name": "otel-collector",
                                "app.kubernetes.io/component": component,
                                "app.kubernetes.io/part-of": "vidscope"}},
        "data": {"config.yaml": text},
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so a ConfigMap's embedded config reads as YAML."""


_BlockDumper.add_representer(
    str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def outputs(root: Path) -> dict[Path, str]:
    source = yaml.safe_load((root / SOURCE).read_text())
    gw = _dump(gateway(source, "compose"))
    out = {
        root / "otel-collector" / "agent.yaml": AGENT_HEADER + _dump(agent(source, "compose")),
        root / "otel-collector" / "gateway.yaml": GATEWAY_HEADER + gw,
    }
    maps = [configmap("otel-collector-agent", "agent", _dump(agent(source, "kubernetes"))),
            configmap("otel-collector-gateway", "gateway", _dump(gateway(source, "kubernetes")))]
    out[root / "deploy" / "kubernetes" / "telemetry" / "otel-collector-config.yaml"] = (
        K8S_HEADER + "---\n".join(yaml.dump(m, Dumper=_BlockDumper, sort_keys=False, width=1000) for m in maps))
    out[root / "prometheus" / "prometheus.scale.yml"] = prometheus_scale(root)
    return out


# --------------------------------------------------------------------------- prometheus

PROM_HEADER = """\
# GENERATED by scripts/lib/stack_gen.py from prometheus/prometheus.yml -- do not edit.
# Used by docker-compose.scale.yml: the same config, but job otel-collector scrapes every
# Collector of both tiers, found by DNS (the agent service `otel-collector`, and the network
# alias `otel-gateway` that every gateway service carries), labelled collector="<dns name>".
"""


def prometheus_scale(root: Path) -> str:
    cfg = yaml.safe_load((root / "prometheus" / "prometheus.yml").read_text())
    for job in cfg.get("scrape_configs") or []:
        if job.get("job_name") == "otel-collector":
            job.pop("static_configs", None)
            job["dns_sd_configs"] = [{"names": ["otel-collector", "otel-gateway"], "type": "A", "port": 8888,
                                      "refresh_interval": "15s"}]
            job["relabel_configs"] = [{"source_labels": ["__meta_dns_name"], "target_label": "collector"}]
    return PROM_HEADER + yaml.safe_dump(cfg, sort_keys=False, width=1000)
