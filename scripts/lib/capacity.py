#!/usr/bin/env python3
"""The arithmetic of scripts/capacity.sh and the tables of docs/capacity.md.

Subcommands:
  collector        the stack settings the measurement needs, from otel-collector/config.yaml and
                   docker-compose.observability.yml: "span-dimensions slow-trace-ms interval-ms"
  wrk              wrk --latency output on stdin -> "requests/s p99-ms errors"
  jobs KEY KIND N PAYLOAD   N job messages for KEY (a Redis stream) as redis-cli --pipe input
  measure RAW_DIR  the script's raw files -> the measured figures as JSON (stdout)
  table JSON       the sizing table for a capacity.json, as Markdown (stdout)
  doc --write JSON | --check
                   --write copies JSON to docs/capacity.json and regenerates the generated parts
                   of docs/capacity.md; --check fails when docs/capacity.md does not match
                   docs/capacity.json (so the doc's figures are the measured ones)
"""

import json
import math
import pathlib
import re
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "capacity.md"
DOC_JSON = ROOT / "docs" / "capacity.json"
RATES = (10, 100, 1000)
SAMPLING = (1.0, 0.1)
DAY = 86400
RETENTION_DAYS = 7
P99_LIMIT_MS = 250
# Prometheus's storage documentation: "on average, Prometheus uses only around 1-2 bytes per
# sample". The upper end, so the estimate errs on the large side.
PROM_BYTES_PER_SAMPLE = 2.0
# Seed 002, "Success Metrics": "Storage: < 1GB/day of trace data with sampling"; its rollout
# plan deploys "to production with 10% sampling".
SEED_002_LIMIT_BYTES = 1e9
SEED_002_SAMPLING = 0.1


def collector():
    """Settings of the compose stack that the sizing depends on."""
    config = (ROOT / "otel-collector" / "config.yaml").read_text()
    compose = (ROOT / "docker-compose.observability.yml").read_text()
    span_metrics = config[config.index("  span_metrics:"):config.index("  servicegraph:")]
    dims = re.findall(r"- name: ([\w.]+)", span_metrics)
    buckets = re.search(r"buckets: \[([^\]]*)\]", span_metrics).group(1).split(",")
    flush = re.search(r"metrics_flush_interval: (\d+)s", span_metrics).group(1)
    slow = re.search(r"TAIL_SAMPLING_LATENCY_MS:-(\d+)", config).group(1)
    interval = re.search(r'OTEL_METRIC_EXPORT_INTERVAL: "(\d+)"', compose).group(1)
    return {
        "span_dimensions": dims,
        "span_metric_buckets": len(buckets),
        "span_metric_flush_secs": int(flush),
        "slow_trace_ms": int(slow),
        "metric_export_interval_ms": int(interval),
    }


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    return rps, p99, errors


def resp(*args):
    out = [f"*{len(args)}\r\n"]
    for a in args:
        b = a.encode()
        out.append(f"${len(b)}\r\n{a}\r\n")
    return "".join(out)


def jobs(key, kind, count, payload):
    """Messages shaped as vidscope_core::jobs::JobMessage, XADDed the way the relay does."""
    now = int(time.time() * 1000)
    payload = json.loads(payload)
    for _ in range(int(count)):
        message = {"id": str(uuid.uuid4()), "kind": kind, "payload": payload, "trace": {},
                   "enqueued_at": now, "available_at": now, "attempt": 0}
        sys.stdout.write(resp("XADD", key, "*", "job", json.dumps(message)))


def read_env(path):
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def measure(raw):
    raw = pathlib.Path(raw)
    env = {}
    for name in ("machine.env", "commands.env", "memory.env", "jobs.env"):
        env.update(read_env(raw / name))
    tally = json.loads((raw / "tally.json").read_text())
    loadgen = json.loads((raw / "loadgen.json").read_text())
    cfg = collector()
    services = tally["services"]
    api = next(k for k in services if k.endswith("-api"))
    worker = next(k for k in services if k.endswith("-worker"))
    requests = loadgen["requests"]

    def total(signal, field):
        return sum(s[signal][field] for s in services.values())

    wire = {}
    for signal in ("traces", "logs", "metrics"):
        pb = int((raw / "dump" / f"{signal}.pb.bytes").read_text())
        zst = int((raw / "dump" / f"{signal}.zst.bytes").read_text())
        wire[signal] = {"bytes": total(signal, "bytes"), "items": total(signal, "items"),
                        "requests": total(signal, "requests"),
                        "zstd_ratio": round(zst / pb, 4) if pb else None}
    spans, span_bytes = wire["traces"]["items"], wire["traces"]["bytes"]
    logs = wire["logs"]

    latency = {}
    for line in (raw / "wrk.txt").read_text().splitlines():
        route, conns, rps, p99, errors = line.split()
        latency.setdefault(route, []).append(
            {"connections": int(conns), "rps": float(rps), "p99_ms": float(p99), "errors": int(errors)})
    capacity = {}
    for route, steps in latency.items():
        ok = [s for s in steps if s["p99_ms"] < P99_LIMIT_MS]
        best = max(ok, key=lambda s: s["rps"]) if ok else None
        capacity[route] = {"rps": best["rps"] if best else 0,
                           "connections": best["connections"] if best else None, "steps": steps}

    jobs_done = int((raw / "jobs_during_loadgen").read_text())
    return {
        "machine": {k: env[k] for k in ("date", "commit", "nproc", "cpu_model", "loadavg_start",
                                        "loadavg_end", "app_cpu", "load_cpu", "elapsed_secs")},
        "backend": "Postgres 127.0.0.1:5432, Redis 127.0.0.1:6379 (queue), local object store",
        "commands": {
            "script": "scripts/capacity.sh",
            "loadgen": env["loadgen_cmd"],
            "wrk_cheap": env["wrk_cheap"],
            "wrk_range": env["wrk_range"],
            "wrk_step_secs": int(env["step_secs"]),
            "rss_secs": int(env["rss_secs"]),
        },
        "collector": cfg,
        "loadgen": {"requests": requests, "elapsed_secs": loadgen["elapsed_secs"],
                    "uploads": loadgen["uploads"], "unexpected": loadgen["unexpected"],
                    "jobs_run": jobs_done},
        "telemetry": {
            "services": services,
            "wire": wire,
            "per_request": {
                "spans": spans / requests,
                "span_bytes": span_bytes / requests,
                "log_records": logs["items"] / requests,
                "log_bytes": logs["bytes"] / requests,
                "jobs": jobs_done / requests,
            },
            "bytes_per_span": span_bytes / spans,
            "bytes_per_trace": span_bytes / tally["trace_ids"],
            "spans_per_trace": spans / tally["trace_ids"],
            "traces": tally["trace_ids"],
            "bytes_per_log_record": logs["bytes"] / logs["items"],
            "bytes_per_metric_point": wire["metrics"]["bytes"] / wire["metrics"]["items"],
            "always_kept_traces": tally["always_kept_traces"],
            "always_kept_share": tally["always_kept_span_bytes"] / tally["span_bytes"],
            "series": {name: {"metric_streams": s["metric_streams"],
                              "prometheus_series": s["prometheus_series"],
                              "span_metric_keys": s["span_metric_keys"]}
                       for name, s in services.items()},
            "api_service": api,
            "worker_service": worker,
        },
        "api": {
            "cheap_route": "GET /api/videos/{id}",
            "range_route": "GET /api/videos/{filename} with Range: bytes=0-65535",
            "capacity": capacity,
            "rss_kib_200_connections": int(env["api_rss_kib"]),
            "hwm_kib": int(env["api_hwm_kib"]),
        },
        "otlp_sink": {"rss_kib_200_connections": int(env["sink_rss_kib"]),
                      "hwm_kib": int(env["sink_hwm_kib"])},
        "worker": {
            "concurrency": int(env["worker_concurrency"]),
            "noop_kind": "crm.sync with VIDSCOPE_CRM_URL unset",
            "noop_jobs": int(env["noop_jobs"]),
            "noop_per_sec": int(env["noop_jobs"]) / float(env["noop_secs"]),
            "thumbnail_jobs": int(env["thumb_jobs"]),
            "thumbnail_per_sec": int(env["thumb_jobs"]) / float(env["thumb_secs"]),
            "hwm_kib": int(env["worker_hwm_kib"]),
        },
    }


# Replicas run at half the rate measured at p99 < 250 ms, so a spike or one lost replica keeps
# the rest under the target; and never fewer than 2 of either, the manifests' minimum (one pod
# may be down in a rollout or a node drain: the PodDisruptionBudgets allow it).
TARGET_UTILISATION = 0.5
MIN_REPLICAS = 2


def sizing(m):
    """One row per (rate, sampling): bytes per day per backend and replicas."""
    t = m["telemetry"]
    cfg = m["collector"]
    per = t["per_request"]
    wire = t["wire"]
    api_cap = min(m["api"]["capacity"]["cheap"]["rps"], m["api"]["capacity"]["range"]["rps"])
    thumb = m["worker"]["thumbnail_per_sec"]
    api_series = t["series"][t["api_service"]]
    worker_series = t["series"][t["worker_service"]]
    span_metric_series = 1 + cfg["span_metric_buckets"] + 1 + 2
    rows = []
    for rate in RATES:
        api_replicas = max(MIN_REPLICAS, math.ceil(rate / (api_cap * TARGET_UTILISATION)))
        worker_replicas = max(MIN_REPLICAS, math.ceil(rate * per["jobs"] / (thumb * TARGET_UTILISATION)))
        for s in SAMPLING:
            kept = t["always_kept_share"] + s * (1 - t["always_kept_share"])
            tempo = rate * per["span_bytes"] * DAY * kept * wire["traces"]["zstd_ratio"]
            loki = rate * per["log_bytes"] * DAY * wire["logs"]["zstd_ratio"]
            series = (api_replicas * (api_series["prometheus_series"]
                                      + api_series["span_metric_keys"] * span_metric_series)
                      + worker_replicas * (worker_series["prometheus_series"]
                                           + worker_series["span_metric_keys"] * span_metric_series))
            samples = DAY / (cfg["metric_export_interval_ms"] / 1000)
            prom = series * samples * PROM_BYTES_PER_SAMPLE
            rows.append({
                "rps": rate, "sampling": s, "kept_share": kept,
                "tempo_bytes_day": tempo, "loki_bytes_day": loki, "prometheus_bytes_day": prom,
                "prometheus_series": series,
                "collector_in": {"spans_s": rate * per["spans"], "logs_s": rate * per["log_records"]},
                "api_replicas": api_replicas, "worker_replicas": worker_replicas,
                "seed_002_holds": tempo < SEED_002_LIMIT_BYTES if s == SEED_002_SAMPLING else None,
            })
    return rows


def human(n):
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g} B"


def table(m):
    out = ["| req/s | sampling (kept) | Tempo /day (7 d) | Loki /day (7 d) | Prometheus /day (7 d), series "
           "| spans/s, logs/s into the Collector | API replicas | worker replicas | seed 002 (< 1 GB/day) |",
           "|---:|---|---|---|---|---|---:|---:|---|"]
    for r in sizing(m):
        seed = "" if r["seed_002_holds"] is None else ("**holds**" if r["seed_002_holds"] else "**missed**")
        out.append(
            f"| {r['rps']:,} | {r['sampling']:.0%} ({r['kept_share']:.0%}) "
            f"| {human(r['tempo_bytes_day'])} ({human(r['tempo_bytes_day'] * RETENTION_DAYS)}) "
            f"| {human(r['loki_bytes_day'])} ({human(r['loki_bytes_day'] * RETENTION_DAYS)}) "
            f"| {human(r['prometheus_bytes_day'])} ({human(r['prometheus_bytes_day'] * RETENTION_DAYS)}), "
            f"{r['prometheus_series']:,} "
            f"| {r['collector_in']['spans_s']:,.0f}, {r['collector_in']['logs_s']:,.0f} "
            f"| {r['api_replicas']} | {r['worker_replicas']} | {seed} |")
    return "\n".join(out)


def figures(m):
    """The measured figures the table is built from."""
    t, a, w, mach = m["telemetry"], m["api"], m["worker"], m["machine"]
    wire = t["wire"]
    cap = a["capacity"]
    ser = t["series"]
    lines = [
        f"Measured {mach['date']} at commit `{mach['commit']}` on {mach['nproc']} × {mach['cpu_model']} "
        f"(load average {mach['loadavg_start']} at start, {mach['loadavg_end']} at the end; the API and "
        f"the worker pinned to CPU {mach['app_cpu']}, wrk, loadgen and otlp-sink to CPU {mach['load_cpu']}); "
        f"{m['backend']}; the script took {mach['elapsed_secs']} s.",
        "",
        "| figure | value | how |",
        "|---|---|---|",
        f"| requests in the loadgen run | {m['loadgen']['requests']:,} in {m['loadgen']['elapsed_secs']:.0f} s, "
        f"{m['loadgen']['uploads']} uploads, {m['loadgen']['jobs_run']} jobs run | `{m['commands']['loadgen']}` |",
        f"| spans per request | {t['per_request']['spans']:.2f} | API + worker spans / loadgen requests |",
        f"| OTLP bytes per span | {t['bytes_per_span']:.0f} B (zstd: {t['bytes_per_span'] * wire['traces']['zstd_ratio']:.0f} B) "
        f"| protobuf bytes of all trace exports / spans; zstd -3 of all trace requests concatenated |",
        f"| OTLP bytes per trace | {t['bytes_per_trace']:.0f} B, {t['spans_per_trace']:.2f} spans "
        f"| / distinct trace ids ({t['traces']:,}) |",
        f"| traces kept whatever the sampling | {t['always_kept_traces']:,} of {t['traces']:,}, "
        f"{t['always_kept_share']:.1%} of span bytes | an ERROR span or longer than "
        f"{m['collector']['slow_trace_ms']} ms (the tail-sampling policies) |",
        f"| OTLP bytes per log record | {t['bytes_per_log_record']:.0f} B "
        f"(zstd: {t['bytes_per_log_record'] * wire['logs']['zstd_ratio']:.0f} B); "
        f"{t['per_request']['log_records']:.2f} records per request | log exports / records |",
        f"| OTLP bytes per metric point | {t['bytes_per_metric_point']:.0f} B "
        f"(zstd: {t['bytes_per_metric_point'] * wire['metrics']['zstd_ratio']:.0f} B) | metric exports / data points, "
        f"every {m['collector']['metric_export_interval_ms'] / 1000:.0f} s |",
    ]
    for role in ("api_service", "worker_service"):
        name = t[role]
        s = ser[name]
        lines.append(f"| series of one `{name}` | {s['metric_streams']} OTLP streams → {s['prometheus_series']} "
                     f"Prometheus series; {s['span_metric_keys']} span-metrics keys | distinct streams over the run |")
    for route, label in (("cheap", a["cheap_route"]), ("range", a["range_route"])):
        c = cap[route]
        last = c["steps"][-1]
        bound = (f"; p99 {last['p99_ms']:.0f} ms at {last['connections']}, the cap: throughput-bound"
                 if last["p99_ms"] < P99_LIMIT_MS else "")
        lines.append(f"| API req/s at p99 < {P99_LIMIT_MS} ms, `{label}` | {c['rps']:,.0f} (at {c['connections']} "
                     f"connections{bound}) | `{m['commands']['wrk_' + route]}`, connections doubled from 1 |")
    lines += [
        f"| worker jobs/s, no-op (`{w['noop_kind']}`) | {w['noop_per_sec']:.0f} | {w['noop_jobs']} jobs XADDed at once, "
        f"until all are in `job_results`; concurrency {w['concurrency']} |",
        f"| worker jobs/s, `video.thumbnail` | {w['thumbnail_per_sec']:.1f} | {w['thumbnail_jobs']} jobs on the sample lesson |",
        f"| RSS at 200 connections | API {a['rss_kib_200_connections'] / 1024:.0f} MiB (peak {a['hwm_kib'] / 1024:.0f}), "
        f"otlp-sink {m['otlp_sink']['rss_kib_200_connections'] / 1024:.0f} MiB; worker peak {w['hwm_kib'] / 1024:.0f} MiB "
        f"over the job runs | VmRSS every 0.5 s during `wrk -c200 -d{m['commands']['rss_secs']}s` per route; VmHWM |",
    ]
    return "\n".join(lines)


MARKERS = {"figures": figures, "table": table}


def render_doc(text, m):
    for name, fn in MARKERS.items():
        start, end = f"<!-- capacity:{name} -->", f"<!-- /capacity:{name} -->"
        a, b = text.index(start) + len(start), text.index(end)
        text = text[:a] + "\n" + fn(m) + "\n" + text[b:]
    return text


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "collector":
        c = collector()
        print(','.join(c['span_dimensions']), c['slow_trace_ms'], c['metric_export_interval_ms'])
    elif cmd == "wrk":
        rps, p99, errors = parse_wrk(sys.stdin.read())
        print(f"{rps:.0f} {p99:.2f} {errors}")
    elif cmd == "jobs":
        jobs(*argv[2:6])
    elif cmd == "measure":
        json.dump(measure(argv[2]), sys.stdout, indent=2)
        print()
    elif cmd == "table":
        m = json.loads(pathlib.Path(argv[2]).read_text())
        print(figures(m) + "\n\n" + table(m))
    elif cmd == "doc" and argv[2:3] == ["--write"]:
        m = json.loads(pathlib.Path(argv[3]).read_text())
        DOC_JSON.write_text(json.dumps(m, indent=2) + "\n")
        DOC.write_text(render_doc(DOC.read_text(), m))
    elif cmd == "doc" and argv[2:3] == ["--check"]:
        m = json.loads(DOC_JSON.read_text())
        text = DOC.read_text()
        if render_doc(text, m) != text:
            print(f"{DOC.relative_to(ROOT)} does not match {DOC_JSON.relative_to(ROOT)}: "
                  f"run python3 scripts/lib/capacity.py doc --write {DOC_JSON.relative_to(ROOT)}",
                  file=sys.stderr)
            return 1
        print(f"{DOC.relative_to(ROOT)}: the tables match {DOC_JSON.relative_to(ROOT)}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
