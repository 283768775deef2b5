#!/usr/bin/env python3
"""The telemetry registry: crates/telemetry/registry.yaml, held against what the suite emitted.

The registry lists every service name, resource attribute, span (name or name pattern, kind,
attributes, events, link attributes), span event, attribute key (with its OTLP type), log
record attribute and scope, and metric (unit, type, labels) that vidscope emits. Telemetry that
only tests create (spans of a test's own, the receiver tests' synthetic payloads) is listed in
its `test_only` section with the file that emits it, so the product sections stay strict.

What the suite emitted comes from the capture receiver (crates/testkit/src/seen.rs): with
VIDSCOPE_TELEMETRY_SEEN_DIR=DIR set, every receiver writes the distinct facts it received
(names, kinds, keys, value types; never values) to a JSON file in DIR.

  --check-seen DIR [DIR...]   fail on anything emitted and not registered, and (unless
                              --emitted-only) on anything registered that no capture shows;
                              the union over every file in the given directories counts
  --emitted-only              skip the second direction (a name-filtered run cannot emit
                              everything); said so on stderr
  --update-from DIR [DIR...]  add what the captures show and the registry lacks (descriptions
                              left empty), list what they do not show; --prune removes those
  --write-docs                write docs/telemetry-reference.md from the registry
  --check-docs                fail when docs/telemetry-reference.md is not what --write-docs
                              would write
  --check-catalog             fail when the registry's metrics and the metric catalog
                              (crates/telemetry/src/catalog.rs) disagree on a name, unit, type
                              or label (--check-seen and --check-docs do this too)

Exit status 1 when a check fails; every problem is listed. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "crates/telemetry/registry.yaml"
DOCS = ROOT / "docs/telemetry-reference.md"
SEEN_FORMAT = 2

sys.path.insert(0, str(ROOT / "scripts/lib"))

HEADER = """\
# The telemetry registry: every span, event, attribute, log attribute and metric vidscope
# emits. Checked against what the test suite really exported, on both telemetry backends, by
# scripts/telemetry-registry.py (a phase of scripts/test.sh); docs/telemetry-reference.md is
# generated from it. How to add or change an entry: docs/telemetry-reference.md.
"""

SECTIONS = ("services", "resource_attributes", "spans", "events", "attributes", "logs",
            "metrics")


# ------------------------------------------------------------------------------- loading

def types_of(entry) -> list[str]:
    t = entry.get("type") if isinstance(entry, dict) else None
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


def as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def empty_body() -> dict:
    body = {section: {} for section in SECTIONS}
    body["logs"] = {"scopes": {}, "attributes": [], "event_names": {}}
    return body


def fill(body: dict) -> dict:
    for section in SECTIONS:
        body[section] = body.get(section) or {}
    logs = body["logs"]
    logs["scopes"] = logs.get("scopes") or {}
    logs["attributes"] = list(logs.get("attributes") or [])
    logs["event_names"] = dict(logs.get("event_names") or {})
    return body


def load_registry(path: Path = REGISTRY) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    fill(data)
    data["test_only"] = {f: fill(body or {}) for f, body in (data.get("test_only") or {}).items()}
    return data


def load_registry_empty() -> dict:
    reg = empty_body()
    reg["test_only"] = {}
    return reg


def body_of(reg: dict, origin: str) -> dict:
    return reg if origin == PRODUCT else reg["test_only"][origin]


PRODUCT = "product"


def build_view(reg: dict, files: tuple[str, ...], problems: list[str]) -> dict:
    """The product sections overlaid with the test-only sections of `files` (the test files a
    capture came from). Every entry carries `_origin`: "product" or its test file."""
    view: dict = {section: {} for section in SECTIONS if section != "logs"}
    view["logs"] = {"scopes": {}, "attributes": {}, "event_names": {}}
    # An `isolated` section (the receiver tests' made-up payloads) is all its captures may
    # contain: they are not vidscope's telemetry, so they must not count for or against it.
    isolated = [f for f in files if reg["test_only"][f].get("isolated")]
    for origin in (isolated[:1] or (PRODUCT, *files)):
        body = body_of(reg, origin)
        for section in view:
            if section == "logs":
                continue
            # A test's entry shadows a product one of the same name: the receiver tests send
            # made-up spans named like vidscope's, with made-up attributes.
            for name, entry in body[section].items():
                view[section][name] = dict(entry or {}, _origin=origin)
        for scope, entry in body["logs"]["scopes"].items():
            view["logs"]["scopes"][scope] = dict(entry or {}, _origin=origin)
        for key in body["logs"]["attributes"]:
            view["logs"]["attributes"][key] = origin
        for name, entry in body["logs"]["event_names"].items():
            view["logs"]["event_names"][name] = dict(entry or {}, _origin=origin)
    view["span_patterns"] = []
    for name, entry in view["spans"].items():
        if entry.get("match"):
            try:
                view["span_patterns"].append((name, re.compile(entry["match"])))
            except re.error as err:
                problems.append(f"registry: spans.{name}: bad `match` regex: {err}")
    return view


def source_test(source: str) -> tuple[str, str | None]:
    """(test binary, test name or None) of a capture's source, e.g. `api-0a1b --exact
    backends::x --nocapture` (nextest) -> ("api", "backends::x")."""
    words = source.split(" [", 1)[0].split()
    binary = re.sub(r"-[0-9a-f]{16}$", "", words[0]) if words else ""
    test = None
    if "--exact" in words:
        i = words.index("--exact")
        test = words[i + 1] if i + 1 < len(words) else None
    return binary, test


def file_matches(test_file: str, source: str) -> bool:
    """Whether a test_only `file` can be what emitted a capture. Files outside a `tests/`
    directory (the harness) match every capture; `tests/NAME.rs` and `tests/NAME/main.rs`
    match the test binary NAME; `tests/NAME/MODULE.rs` its tests under `MODULE::`."""
    parts = Path(test_file).parts
    if "tests" not in parts:
        return True
    rest = parts[parts.index("tests") + 1:]
    binary, test = source_test(source)
    if len(rest) == 1:
        return binary == Path(rest[0]).stem
    if binary != rest[0]:
        return False
    module = Path(rest[-1]).stem
    return module == "main" or test is None or test.split("::")[0] == module


def load_seen(dirs: list[Path], problems: list[str]) -> tuple[list[tuple[str, dict]], int]:
    """Each capture file as (source, {fact kind: set of rows})."""
    captures = []
    for d in dirs:
        if not d.is_dir():
            problems.append(f"{d}: no such directory (was VIDSCOPE_TELEMETRY_SEEN_DIR set?)")
            continue
        for f in sorted(d.glob("*.json")):
            try:
                doc = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                problems.append(f"{f}: unreadable capture: {err}")
                continue
            if doc.get("format") != SEEN_FORMAT:
                problems.append(f"{f}: capture format {doc.get('format')!r}, "
                                f"expected {SEEN_FORMAT}")
                continue
            run = f"{doc.get('database') or '?'}/{doc.get('backend') or 'fast'}"
            source = f"{doc.get('source', '?')} [{run}]"
            facts = {kind: {tuple(row) for row in rows}
                     for kind, rows in (doc.get("facts") or {}).items()}
            captures.append((source, facts))
    return captures, len(captures)


def by_context(reg: dict, captures) -> dict[tuple[str, ...], dict]:
    """Captures grouped by the test_only files that apply to them; per group, each fact with
    the sources that showed it."""
    groups: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    for source, facts in captures:
        files = tuple(sorted((f for f in reg["test_only"] if file_matches(f, source)),
                             key=lambda f: ("tests" in Path(f).parts, f)))
        for kind, rows in facts.items():
            for row in rows:
                groups[files][kind][row].add(source)
    return groups


# ----------------------------------------------------------------------------- matching

def span_entry(view: dict, name: str, kind: str) -> str | None:
    """The entry for a span: its exact name, else the first pattern that matches the whole
    name; entries of the span's kind first (the load generator's client spans and the API's
    server spans share names like `GET /api/videos`)."""
    candidates = []
    if name in view["spans"] and not view["spans"][name].get("match"):
        candidates.append(name)
    candidates += [key for key, rx in view["span_patterns"] if rx.fullmatch(name)]
    for key in candidates:
        if kind in as_list(view["spans"][key].get("kind")):
            return key
    # An exact name of another kind is a kind change; a pattern of another kind is another
    # family of spans (the API's `GET /x` server spans, the CRM client's `POST /oauth/token`).
    return name if name in candidates else None


def named_entry(table: dict, name: str) -> str | None:
    """An exact key of `table`, else the first entry whose `match` covers the whole name."""
    if name in table and not (table[name] or {}).get("match"):
        return name
    for key, entry in table.items():
        pattern = (entry or {}).get("match")
        if pattern and re.fullmatch(pattern, name):
            return key
    return None


def where(sources: set[str]) -> str:
    shown = sorted(sources)[:2]
    more = f" (+{len(sources) - 2} more)" if len(sources) > 2 else ""
    return "; seen in: " + ", ".join(shown) + more


def check_emitted(view: dict, facts: dict, problems: list[str], used: dict):
    """Everything emitted must be registered; marks in `used` which registry items it was
    (keys start with the entry's origin, as `registered_items` yields them)."""
    def mark(key: tuple, src: set[str]):
        used.setdefault(key, set()).update(src)

    def fail(text: str, src: set[str]):
        problems.append(text + where(src))

    def attr_type(key: str, typ: str, ctx: str, src: set[str], table: str = "attributes"):
        entry = view[table].get(key)
        if entry is None:
            fail(f"emitted, not registered: attribute {key} ({typ}) on {ctx} (add it to "
                 f"`{table}`)", src)
        elif typ not in types_of(entry):
            fail(f"emitted, not registered: attribute {key} as {typ} on {ctx} (registered as "
                 f"{'/'.join(types_of(entry)) or 'no type'})", src)
        else:
            mark((entry["_origin"], table, key, typ), src)

    for (service, key, typ), src in facts["resource"].items():
        if service not in view["services"]:
            fail(f"emitted, not registered: service {service!r}", src)
        else:
            mark((view["services"][service]["_origin"], "service", service), src)
        attr_type(key, typ, "the resource", src, "resource_attributes")

    for (_service, _scope, name, kind), src in facts["span"].items():
        entry = span_entry(view, name, kind)
        if entry is None:
            fail(f"emitted, not registered: span {name!r} ({kind})", src)
            continue
        origin = view["spans"][entry]["_origin"]
        mark((origin, "span", entry), src)
        kinds = as_list(view["spans"][entry].get("kind"))
        if kind not in kinds:
            fail(f"emitted, not registered: span {name!r} as kind {kind} (registered: "
                 f"{'/'.join(kinds) or 'none'})", src)
        else:
            mark((origin, "span_kind", entry, kind), src)

    for fact, field in (("span_attribute", "attributes"), ("link_attribute", "link_attributes")):
        for (name, kind, key, typ), src in facts[fact].items():
            entry = span_entry(view, name, kind)
            if entry is None:
                continue  # reported with the span
            origin = view["spans"][entry]["_origin"]
            if key not in as_list(view["spans"][entry].get(field)):
                what = "attribute" if field == "attributes" else "link attribute"
                fail(f"emitted, not registered: {what} {key} ({typ}) on span {entry!r}", src)
            else:
                mark((origin, fact, entry, key), src)
            attr_type(key, typ, f"span {entry!r}", src)

    for (name, kind, event), src in facts["span_event"].items():
        entry = span_entry(view, name, kind)
        if entry is None:
            continue
        if event not in view["events"]:
            fail(f"emitted, not registered: event {event!r} (on span {entry!r})", src)
            continue
        mark((view["events"][event]["_origin"], "event", event), src)
        if event not in as_list(view["spans"][entry].get("events")):
            fail(f"emitted, not registered: event {event!r} on span {entry!r}", src)
        else:
            mark((view["spans"][entry]["_origin"], "span_event", entry, event), src)

    for (_name, _kind, event, key, typ), src in facts["event_attribute"].items():
        if event not in view["events"]:
            continue
        if key not in as_list(view["events"][event].get("attributes")):
            fail(f"emitted, not registered: attribute {key} ({typ}) on event {event!r}", src)
        else:
            mark((view["events"][event]["_origin"], "event_attribute", event, key), src)
        attr_type(key, typ, f"event {event!r}", src)

    logs = view["logs"]
    for (_service, scope, event_name), src in facts["log"].items():
        entry = named_entry(logs["scopes"], scope)
        if entry is None:
            fail(f"emitted, not registered: log scope {scope!r}", src)
        else:
            mark((logs["scopes"][entry]["_origin"], "log_scope", entry), src)
        if event_name:
            entry = named_entry(logs["event_names"], event_name)
            if entry is None:
                fail(f"emitted, not registered: log event name {event_name!r}", src)
            else:
                mark((logs["event_names"][entry]["_origin"], "log_event_name", entry), src)
    for (_scope, key, typ), src in facts["log_attribute"].items():
        if key not in logs["attributes"]:
            fail(f"emitted, not registered: log attribute {key} ({typ})", src)
        else:
            mark((logs["attributes"][key], "log_attribute", key), src)
        attr_type(key, typ, "log records", src)

    metrics = view["metrics"]
    for (_service, _scope, name, unit, typ), src in facts["metric"].items():
        entry = metrics.get(name)
        if entry is None:
            fail(f"emitted, not registered: metric {name} ({typ}, unit {unit!r})", src)
            continue
        mark((entry["_origin"], "metric", name), src)
        if (entry.get("unit") or "") != unit:
            fail(f"metric {name}: emitted with unit {unit!r}, registered "
                 f"{entry.get('unit')!r}", src)
        if entry.get("type") != typ:
            fail(f"metric {name}: emitted as {typ}, registered as {entry.get('type')}", src)
    for (name, key, typ), src in facts["metric_label"].items():
        entry = metrics.get(name)
        if entry is None:
            continue
        if key not in as_list(entry.get("labels")):
            fail(f"emitted, not registered: label {key} ({typ}) on metric {name}", src)
        else:
            mark((entry["_origin"], "metric_label", name, key), src)
        attr_type(key, typ, f"metric {name}", src)


def conditional(reg: dict, body: dict, key: str) -> bool:
    """An attribute whose entry says `when:` is emitted only under a condition a test run need
    not meet (a statement slower than sqlx's threshold, say): it must be registered when it is
    seen, and is not required to be seen."""
    entry = body["attributes"].get(key) or reg["attributes"].get(key) or {}
    return isinstance(entry, dict) and bool(entry.get("when"))


def registered_items(reg: dict):
    """Every item the registry claims some test emits: (key as check_emitted marks it, text)."""
    for origin in (PRODUCT, *sorted(reg["test_only"])):
        body = body_of(reg, origin)
        at = "" if origin == PRODUCT else f" (test_only {origin})"
        for service in body["services"]:
            yield (origin, "service", service), f"service {service!r}{at}"
        for table in ("resource_attributes", "attributes"):
            for key, entry in body[table].items():
                if table == "attributes" and conditional(reg, body, key):
                    continue
                for typ in types_of(entry):
                    yield (origin, table, key, typ), f"{table[:-1].replace('_', ' ')} {key} " \
                                                     f"as {typ}{at}"
        for name, entry in body["spans"].items():
            entry = entry or {}
            yield (origin, "span", name), f"span {name!r}{at}"
            for kind in as_list(entry.get("kind")):
                yield (origin, "span_kind", name, kind), f"span {name!r} as kind {kind}{at}"
            for key in as_list(entry.get("attributes")):
                yield (origin, "span_attribute", name, key), f"attribute {key} on span {name!r}{at}"
            for key in as_list(entry.get("link_attributes")):
                yield ((origin, "link_attribute", name, key),
                       f"link attribute {key} on span {name!r}{at}")
            for event in as_list(entry.get("events")):
                yield (origin, "span_event", name, event), f"event {event!r} on span {name!r}{at}"
        for event, entry in body["events"].items():
            yield (origin, "event", event), f"event {event!r}{at}"
            for key in as_list((entry or {}).get("attributes")):
                yield ((origin, "event_attribute", event, key),
                       f"attribute {key} on event {event!r}{at}")
        for scope in body["logs"]["scopes"]:
            yield (origin, "log_scope", scope), f"log scope {scope!r}{at}"
        for key in body["logs"]["attributes"]:
            if not conditional(reg, body, key):
                yield (origin, "log_attribute", key), f"log attribute {key}{at}"
        for name in body["logs"]["event_names"]:
            yield (origin, "log_event_name", name), f"log event name {name!r}{at}"
        for name, entry in body["metrics"].items():
            yield (origin, "metric", name), f"metric {name}{at}"
            for key in as_list((entry or {}).get("labels")):
                yield (origin, "metric_label", name, key), f"label {key} on metric {name}{at}"


def check_registered(reg: dict, used: dict, problems: list[str]):
    for key, text in registered_items(reg):
        if key not in used:
            problems.append(f"registered, never emitted: {text}")


def check_references(reg: dict, problems: list[str]):
    """Every key a span, event, log or metric of a body names is in that body's (or the
    product's) attribute table, and no attribute is listed that nothing names."""
    for origin in (PRODUCT, *sorted(reg["test_only"])):
        body = body_of(reg, origin)
        at = "" if origin == PRODUCT else f"test_only.{origin}."
        referenced = set()
        for name, entry in body["spans"].items():
            entry = entry or {}
            referenced.update(as_list(entry.get("attributes")))
            referenced.update(as_list(entry.get("link_attributes")))
            for event in as_list(entry.get("events")):
                if event not in body["events"] and event not in reg["events"]:
                    problems.append(f"registry: {at}spans.{name} lists event {event!r}, which "
                                    "is not in `events`")
        for entry in body["events"].values():
            referenced.update(as_list((entry or {}).get("attributes")))
        referenced.update(body["logs"]["attributes"])
        for entry in body["metrics"].values():
            referenced.update(as_list((entry or {}).get("labels")))
        known = set(body["attributes"]) | set(reg["attributes"])
        for key in sorted(referenced - known):
            problems.append(f"registry: {at}attribute {key} is used but not in `attributes` "
                            "(give its type there)")
        if origin == PRODUCT:
            for key in sorted(set(body["attributes"]) - referenced):
                problems.append(f"registry: attribute {key} is in `attributes` but no span, "
                                "event, log or metric lists it")
        for table in ("attributes", "resource_attributes"):
            for key, entry in body[table].items():
                if not types_of(entry):
                    problems.append(f"registry: {at}{table}.{key} has no `type`")


def run_checks(reg: dict, captures, emitted_only: bool, problems: list[str]):
    used: dict = {}
    for files, facts in by_context(reg, captures).items():
        view = build_view(reg, files, problems)
        facts = defaultdict(dict, facts)
        check_emitted(view, facts, problems, used)
    if not emitted_only:
        check_registered(reg, used, problems)
    # The same unregistered item is reported once per group of captures; once is enough.
    problems[:] = list(dict.fromkeys(problems))


# ------------------------------------------------------------------------------ catalog

CATALOG_TYPES = {"counter": "counter", "histogram": "histogram", "gauge": "gauge",
                 "updowncounter": "updowncounter"}


def check_catalog(reg: dict, problems: list[str]):
    """The registry's product metrics are exactly the catalog's, with its units, types and
    label allow-lists (the catalog is what the SDK enforces; the registry documents it)."""
    import stack_check  # scripts/lib/stack_check.py: the catalog parser check-stack uses

    catalog = {m["name"]: m for m in stack_check.load_catalog()}
    for err in stack_check.errors:
        problems.append(f"catalog: {err}")
    metrics = reg["metrics"]
    for name, spec in sorted(catalog.items()):
        entry = metrics.get(name)
        if entry is None:
            problems.append(f"catalog: metric {name} is in catalog.rs but not in the registry")
            continue
        if (entry.get("unit") or "") != spec["unit"]:
            problems.append(f"catalog: metric {name}: unit {spec['unit']!r} in catalog.rs, "
                            f"{entry.get('unit')!r} in the registry")
        if entry.get("type") != CATALOG_TYPES.get(spec["type"], spec["type"]):
            problems.append(f"catalog: metric {name}: type {spec['type']} in catalog.rs, "
                            f"{entry.get('type')} in the registry")
        # `labels` is what is emitted (checked against the captures); `catalog_only_labels`
        # what the catalog allows and no code records, said out loud so a dashboard does not
        # group by a label no series has.
        registered = as_list(entry.get("labels")) + as_list(entry.get("catalog_only_labels"))
        if sorted(registered) != sorted(spec["labels"] or []):
            problems.append(f"catalog: metric {name}: labels {sorted(spec['labels'] or [])} "
                            f"in catalog.rs, {sorted(registered)} in the registry (labels + "
                            "catalog_only_labels)")
    for name in sorted(set(metrics) - set(catalog)):
        problems.append(f"catalog: metric {name} is in the registry but not in catalog.rs "
                        "(test-only metrics go under test_only)")


def catalog_descriptions() -> dict[str, str]:
    """Metric descriptions from the catalog (crates/telemetry/catalog.json), to start new
    metric entries with."""
    entries = json.loads((ROOT / "crates/telemetry/catalog.json").read_text(encoding="utf-8"))
    return {e["name"]: e["description"] for e in entries}


# ------------------------------------------------------------------------------- update

def update(reg: dict, captures, prune: bool) -> tuple[list[str], list[str]]:
    """Adds what the captures show and the registry lacks; returns (added, not emitted).

    New items go to the product sections, or, for a capture from a test file that already has
    a test_only section, to that section (so the receiver tests' synthetic payloads stay
    there). Descriptions of new entries are left empty."""
    added: list[str] = []

    def note(text: str, origin: str):
        added.append(text + ("" if origin == PRODUCT else f" (test_only {origin})"))

    # Captures of tests without a test_only section of their own first: what they emit is
    # vidscope's, and a test's own section then only gets what the product does not emit.
    groups = sorted(by_context(reg, captures).items(),
                    key=lambda g: any("tests" in Path(f).parts for f in g[0]))
    for files, facts in groups:
        target = next((f for f in reversed(files) if "tests" in Path(f).parts), PRODUCT)
        view = build_view(reg, files, [])
        facts = defaultdict(dict, facts)

        def owner(section: str, name: str) -> dict:
            return body_of(reg, view[section][name]["_origin"])[section][name]

        # A definition (attribute, event) goes where the entry naming it is: a product span
        # that only one test file's tests exercise still emits product telemetry.
        def attribute(key: str, typ: str, origin: str, table: str = "attributes"):
            if key in view[table]:
                entry = owner(table, key)
                have = types_of(entry)
                if typ not in have:
                    entry["type"] = have + [typ] if have else typ
                    view[table][key]["type"] = entry["type"]
                    note(f"type {typ} of {key}", view[table][key]["_origin"])
                return
            body_of(reg, origin)[table][key] = {"type": typ, "description": ""}
            view[table][key] = {"type": typ, "_origin": origin}
            note(f"attribute {key} ({typ})", origin)

        def listed(entry: dict, field: str, value: str, text: str, origin: str):
            values = as_list(entry.get(field))
            if value not in values:
                entry[field] = sorted(values + [value])
                note(text, origin)

        for (service, key, typ) in sorted(facts["resource"]):
            if service not in view["services"]:
                body_of(reg, target)["services"][service] = {"description": ""}
                view["services"][service] = {"_origin": target}
                note(f"service {service!r}", target)
            attribute(key, typ, view["services"][service]["_origin"], "resource_attributes")
        for (_service, _scope, name, kind) in sorted(facts["span"]):
            entry = span_entry(view, name, kind)
            if entry is None:
                body_of(reg, target)["spans"][name] = {"description": "", "kind": kind}
                view["spans"][name] = {"kind": kind, "_origin": target}
                note(f"span {name!r}", target)
                continue
            kinds = as_list(owner("spans", entry).get("kind"))
            if kind not in kinds:
                owner("spans", entry)["kind"] = kinds + [kind] if kinds else kind
                view["spans"][entry]["kind"] = owner("spans", entry)["kind"]
                note(f"kind {kind} of span {entry!r}", view["spans"][entry]["_origin"])
        for fact, field in (("span_attribute", "attributes"),
                            ("link_attribute", "link_attributes")):
            for (name, kind, key, typ) in sorted(facts[fact]):
                entry = span_entry(view, name, kind)
                listed(owner("spans", entry), field, key, f"{key} on span {entry!r}",
                       view["spans"][entry]["_origin"])
                attribute(key, typ, view["spans"][entry]["_origin"])
        for (name, kind, event) in sorted(facts["span_event"]):
            entry = span_entry(view, name, kind)
            origin = view["spans"][entry]["_origin"]
            if event not in view["events"]:
                body_of(reg, origin)["events"][event] = {"description": ""}
                view["events"][event] = {"_origin": origin}
                note(f"event {event!r}", origin)
            listed(owner("spans", entry), "events", event, f"event {event!r} on {entry!r}",
                   view["spans"][entry]["_origin"])
        for (_name, _kind, event, key, typ) in sorted(facts["event_attribute"]):
            listed(owner("events", event), "attributes", key, f"{key} on event {event!r}",
                   view["events"][event]["_origin"])
            attribute(key, typ, view["events"][event]["_origin"])
        logs = body_of(reg, target)["logs"]
        for (_service, scope, event_name) in sorted(facts["log"]):
            if named_entry(view["logs"]["scopes"], scope) is None:
                logs["scopes"][scope] = {"description": ""}
                view["logs"]["scopes"][scope] = {"_origin": target}
                note(f"log scope {scope!r}", target)
            if event_name and named_entry(view["logs"]["event_names"], event_name) is None:
                logs["event_names"][event_name] = {"description": ""}
                view["logs"]["event_names"][event_name] = {"_origin": target}
                note(f"log event name {event_name!r}", target)
        for (scope, key, typ) in sorted(facts["log_attribute"]):
            scope_entry = named_entry(view["logs"]["scopes"], scope)
            origin = view["logs"]["scopes"][scope_entry]["_origin"] if scope_entry else target
            if key not in view["logs"]["attributes"]:
                owner_logs = body_of(reg, origin)["logs"]
                owner_logs["attributes"] = sorted(owner_logs["attributes"] + [key])
                view["logs"]["attributes"][key] = origin
                note(f"log attribute {key}", origin)
            attribute(key, typ, view["logs"]["attributes"][key])
        for (_service, _scope, name, unit, typ) in sorted(facts["metric"]):
            if name not in view["metrics"]:
                description = catalog_descriptions().get(name, "") if target == PRODUCT else ""
                entry = {"description": description, "unit": unit, "type": typ, "labels": []}
                body_of(reg, target)["metrics"][name] = entry
                view["metrics"][name] = dict(entry, _origin=target)
                note(f"metric {name}", target)
        for (name, key, typ) in sorted(facts["metric_label"]):
            listed(owner("metrics", name), "labels", key, f"label {key} on metric {name}",
                   view["metrics"][name]["_origin"])
            attribute(key, typ, view["metrics"][name]["_origin"])

    # Labels the catalog allows and nothing recorded, so the catalog check holds.
    import stack_check

    for spec in stack_check.load_catalog():
        entry = reg["metrics"].get(spec["name"])
        if entry is not None:
            unused = sorted(set(spec["labels"] or []) - set(as_list(entry.get("labels"))))
            if unused != sorted(as_list(entry.get("catalog_only_labels"))):
                entry["catalog_only_labels"] = unused
                added.append(f"catalog-only labels of {spec['name']}: {unused}")

    # The other direction, on the updated registry.
    used: dict = {}
    for files, facts in by_context(reg, captures).items():
        check_emitted(build_view(reg, files, []), defaultdict(dict, facts), [], used)
    missing = []
    # A list first: pruning changes the tables the generator walks.
    for key, text in list(registered_items(reg)):
        if key not in used:
            missing.append(text)
            if prune:
                prune_item(reg, key)
    if prune:
        prune_unused_attributes(reg)
    return added, missing


def prune_item(reg: dict, key: tuple):
    origin, kind, *names = key
    body = body_of(reg, origin)

    def drop(entry: dict | None, field: str, value: str):
        if entry is not None:
            entry[field] = [v for v in as_list(entry.get(field)) if v != value]

    if kind in ("service", "span", "event", "metric"):
        body[kind + "s"].pop(names[0], None)
    elif kind in ("resource_attributes", "attributes"):
        entry = body[kind].get(names[0])
        if entry is not None:
            rest = [t for t in types_of(entry) if t != names[1]]
            if rest:
                entry["type"] = rest[0] if len(rest) == 1 else rest
            else:
                body[kind].pop(names[0])
    elif kind == "span_kind":
        drop(body["spans"].get(names[0]), "kind", names[1])
    elif kind in ("span_attribute", "link_attribute", "span_event"):
        field = {"span_attribute": "attributes", "link_attribute": "link_attributes",
                 "span_event": "events"}[kind]
        drop(body["spans"].get(names[0]), field, names[1])
    elif kind == "event_attribute":
        drop(body["events"].get(names[0]), "attributes", names[1])
    elif kind == "log_scope":
        body["logs"]["scopes"].pop(names[0], None)
    elif kind == "log_attribute":
        drop(body["logs"], "attributes", names[0])
    elif kind == "log_event_name":
        body["logs"]["event_names"].pop(names[0], None)
    elif kind == "metric_label":
        drop(body["metrics"].get(names[0]), "labels", names[1])


def prune_unused_attributes(reg: dict):
    for origin in (PRODUCT, *reg["test_only"]):
        body = body_of(reg, origin)
        listed = set(body["logs"]["attributes"])
        for other in (reg, *reg["test_only"].values()):
            for span in other["spans"].values():
                listed.update(as_list((span or {}).get("attributes")))
                listed.update(as_list((span or {}).get("link_attributes")))
            for event in other["events"].values():
                listed.update(as_list((event or {}).get("attributes")))
            for metric in other["metrics"].values():
                listed.update(as_list((metric or {}).get("labels")))
            listed.update(other["logs"]["attributes"])
        for key in [k for k in body["attributes"] if k not in listed]:
            del body["attributes"][key]


# ------------------------------------------------------------------------------ writing

class Dumper(yaml.SafeDumper):
    """Block style for mappings, one-line lists of names, no anchors, long lines kept."""

    def ignore_aliases(self, data):
        return True


def _list(dumper, data):
    flow = all(isinstance(v, str) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


Dumper.add_representer(list, _list)


def clean(value):
    """Drops the loader's bookkeeping and empty optional fields; sorts names."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if str(k).startswith("_"):
                continue
            if v in (None, [], {}) and k not in ("description", "labels"):
                continue
            out[k] = clean(v)
        return out
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


ENTRY_ORDER = ("description", "file", "match", "kind", "type", "unit", "labels",
               "catalog_only_labels", "attributes",
               "link_attributes", "events", "examples", "scopes", "event_names")


def ordered(entry: dict) -> dict:
    keys = sorted(entry, key=lambda k: (ENTRY_ORDER.index(k) if k in ENTRY_ORDER else 99, k))
    return {k: entry[k] for k in keys}


def normalized(reg: dict) -> dict:
    def table(t: dict) -> dict:
        return {name: ordered(clean(t[name] or {})) for name in sorted(t)}

    def body(src: dict, with_empty: bool) -> dict:
        out = {}
        if src.get("description"):
            out["description"] = src["description"]
        if src.get("isolated"):
            out["isolated"] = True
        for section in SECTIONS:
            if section == "logs":
                logs = src["logs"]
                value = {}
                if logs.get("description"):
                    value["description"] = logs["description"]
                value["scopes"] = table(logs["scopes"])
                value["attributes"] = sorted(set(logs["attributes"]))
                if logs["event_names"]:
                    value["event_names"] = table(logs["event_names"])
                if with_empty or logs["scopes"] or logs["attributes"]:
                    out["logs"] = value
            elif with_empty or src[section]:
                out[section] = table(src[section])
        return out

    out = {"format": 1}
    out.update(body(reg, True))
    out["test_only"] = {f: body(reg["test_only"][f], False) for f in sorted(reg["test_only"])}
    return out


def dump_registry(reg: dict) -> str:
    text = yaml.dump(normalized(reg), Dumper=Dumper, sort_keys=False, width=100,
                     allow_unicode=True, default_flow_style=False)
    return HEADER + "\n" + text


# --------------------------------------------------------------------------------- docs

def md(text) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ").strip()


def code_list(values) -> str:
    return ", ".join(f"`{v}`" for v in values) if values else "—"


def table_head(*columns: str) -> list[str]:
    """A Markdown table's header row and rule."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def code_list_and(entry: dict, key: str, more_key: str, more: str) -> str:
    """`entry[key]` as a code list, followed by `entry[more_key]` in the `more` template when
    that list is not empty."""
    text = code_list(as_list(entry.get(key)))
    extra = as_list(entry.get(more_key))
    return text + more.format(code_list(extra)) if extra else text


def named_rows(entries: dict, shown) -> list[str]:
    """The `| name | description |` rows of named entries, by name (`shown` formats it); an
    entry with a `match` pattern says so."""
    rows = []
    for name, entry in sorted(entries.items()):
        entry = entry or {}
        cell = f"`{shown(name)}`"
        if entry.get("match"):
            cell += f" (matches `{md(entry['match'])}`)"
        rows.append(f"| {cell} | {md(entry.get('description'))} |")
    return rows


def render_docs(reg: dict) -> str:
    where: dict[str, list[str]] = defaultdict(list)
    for name, entry in sorted(reg["spans"].items()):
        for key in as_list(entry.get("attributes")):
            where[key].append(f"span `{name}`")
        for key in as_list(entry.get("link_attributes")):
            where[key].append(f"links of `{name}`")
    for name, entry in sorted(reg["events"].items()):
        for key in as_list(entry.get("attributes")):
            where[key].append(f"event `{name}`")
    for key in reg["logs"]["attributes"]:
        where[key].append("log records")
    for name, entry in sorted(reg["metrics"].items()):
        for key in as_list(entry.get("labels")):
            where[key].append(f"metric `{name}`")

    out: list[str] = []
    w = out.append
    w("# Telemetry reference")
    w("")
    w("<!-- Generated by `python3 scripts/telemetry-registry.py --write-docs` from")
    w("     crates/telemetry/registry.yaml. Do not edit: edit the registry and regenerate. -->")
    w("")
    w("Every span, span event, attribute, log record attribute and metric vidscope emits, from "
      "the telemetry registry `crates/telemetry/registry.yaml`. `scripts/test.sh` holds the "
      "telemetry its test runs exported (SQLite and PostgreSQL on the default backend, SQLite on "
      "the `sdk` backend) against the registry: anything emitted and not registered fails, "
      "anything registered and never emitted fails, and this page not matching the registry "
      "fails. How the two backends produce it: [telemetry.md](telemetry.md).")
    w("")
    w(f"In the registry: {len(reg['services'])} services, {len(reg['resource_attributes'])} "
      f"resource attributes, {len(reg['spans'])} spans, {len(reg['events'])} span events, "
      f"{len(reg['attributes'])} attributes, {len(reg['logs']['attributes'])} of them on log "
      f"records, {len(reg['metrics'])} metrics.")
    w("")
    w("## How to add or change an entry")
    w("")
    w("1. Emit it where the code does, and make a test emit it: the check runs on what the "
      "suite exported.")
    w("2. Capture a run and let the script add what is new (with empty descriptions) and list "
      "what no capture shows any more:")
    w("")
    w("   ```sh")
    w("   VIDSCOPE_TELEMETRY_SEEN_DIR=$PWD/target/telemetry-seen/manual cargo nextest run --workspace")
    w("   python3 scripts/telemetry-registry.py --update-from target/telemetry-seen/manual")
    w("   ```")
    w("")
    w("   `scripts/test.sh` leaves the captures of its three runs in "
      "`target/telemetry-seen/{sqlite-fast,postgres-fast,sqlite-sdk}`; `--update-from` takes "
      "several directories, and `--prune` also removes what no capture shows.")
    w("3. Describe each new entry in `crates/telemetry/registry.yaml`. A span whose name "
      "carries a value (a route, a SQL table) is one entry: the template as its key and a `match` "
      "regular expression the whole name must match. What only a test creates goes under "
      "`test_only`, keyed by the test file that emits it (it is accepted only from that file's "
      "tests). A metric must also be in the catalog, `crates/telemetry/src/catalog.rs` "
      "([telemetry.md](telemetry.md#how-to-add-a-metric)), with the same unit, type and labels; "
      "a label the catalog allows and no code records is listed under `catalog_only_labels`. "
      "An attribute emitted only under a condition a test run need not meet (sqlx's "
      "slow-statement warning) gets `when:` naming it: it must be registered when seen and "
      "need not be seen.")
    w("4. Regenerate this page: `python3 scripts/telemetry-registry.py --write-docs`.")
    w("")
    w("Types are OTLP value types: `string`, `int`, `double`, `bool`, `bytes`, `map`; arrays "
      "are written `string[]` and so on. Span kinds are OTLP's: `server`, `client`, "
      "`internal`, `producer`, `consumer`. Metric types: `counter` (monotonic sum), "
      "`updowncounter`, `gauge`, `histogram`.")
    w("")

    w("## Services and resource attributes")
    w("")
    out.extend(table_head("service.name", "description"))
    for name, entry in sorted(reg["services"].items()):
        w(f"| `{name}` | {md((entry or {}).get('description'))} |")
    w("")
    out.extend(table_head("resource attribute", "type", "description"))
    for key, entry in sorted(reg["resource_attributes"].items()):
        w(f"| `{key}` | {'/'.join(types_of(entry))} | {md(entry.get('description'))} |")
    w("")

    w("## Spans")
    w("")
    out.extend(table_head("span name", "kind", "attributes", "events", "description"))
    for name, entry in sorted(reg["spans"].items()):
        entry = entry or {}
        shown = f"`{md(name)}`"
        if entry.get("match"):
            shown += f" (name matches `{md(entry['match'])}`)"
        attr_text = code_list_and(entry, "attributes", "link_attributes", "; on links: {}")
        w(f"| {shown} | {'/'.join(as_list(entry.get('kind')))} | {attr_text} | "
          f"{code_list(as_list(entry.get('events')))} | {md(entry.get('description'))} |")
    w("")

    w("## Span events")
    w("")
    out.extend(table_head("event", "attributes", "description"))
    for name, entry in sorted(reg["events"].items()):
        entry = entry or {}
        w(f"| `{name}` | {code_list(as_list(entry.get('attributes')))} | "
          f"{md(entry.get('description'))} |")
    w("")

    w("## Attributes")
    w("")
    out.extend(table_head("attribute", "type", "where", "description"))
    for key, entry in sorted(reg["attributes"].items()):
        places = where.get(key) or ["test-only telemetry"]
        # `md` strips, so the space between the description and the condition goes here.
        when = " " + md(f"Only when {entry['when']}.") if entry.get("when") else ""
        w(f"| `{key}` | {'/'.join(types_of(entry))} | {', '.join(places)} | "
          f"{md(entry.get('description'))}{when} |")
    w("")

    w("## Log records")
    w("")
    if reg["logs"].get("description"):
        w(md(reg["logs"]["description"]))
        w("")
    out.extend(table_head("instrumentation scope", "description"))
    out.extend(named_rows(reg["logs"]["scopes"], lambda scope: md(scope) or "(empty)"))
    w("")
    w(f"Attributes: {code_list(sorted(reg['logs']['attributes']))}.")
    w("")
    if reg["logs"]["event_names"]:
        out.extend(table_head("event name", "description"))
        out.extend(named_rows(reg["logs"]["event_names"], md))
        w("")

    w("## Metrics")
    w("")
    out.extend(table_head("metric", "unit", "type", "labels", "description"))
    for name, entry in sorted(reg["metrics"].items()):
        labels = code_list_and(entry, "labels", "catalog_only_labels",
                               " (allowed by the catalog, never recorded: {})")
        w(f"| `{name}` | `{entry.get('unit') or ''}` | {entry.get('type')} | {labels} | "
          f"{md(entry.get('description'))} |")
    w("")

    w("## Test-only telemetry")
    w("")
    w("Created by tests themselves, never by vidscope; registered so the check stays strict for "
      "the product's telemetry, and accepted only from the file named.")
    w("")
    out.extend(table_head("file", "what"))
    for test_file, body in sorted(reg["test_only"].items()):
        parts = []
        for section, label in (("services", "services"), ("spans", "spans"),
                               ("events", "events"), ("attributes", "attributes"),
                               ("metrics", "metrics")):
            if body[section]:
                parts.append(f"{label} {code_list(sorted(body[section]))}")
        if body["logs"]["scopes"]:
            parts.append(f"log scopes {code_list(sorted(body['logs']['scopes']))}")
        text = "; ".join(parts)
        if body.get("isolated"):
            text = "(isolated: checked against this section alone) " + text
        if body.get("description"):
            text = md(body["description"]) + " " + text
        w(f"| `{test_file}` | {text} |")
    w("")
    return "\n".join(out)


# --------------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", type=Path, default=REGISTRY)
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--check-seen", type=Path, nargs="+", metavar="DIR")
    parser.add_argument("--emitted-only", action="store_true")
    parser.add_argument("--update-from", type=Path, nargs="+", metavar="DIR")
    parser.add_argument("--prune", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--check-docs", action="store_true")
    parser.add_argument("--check-catalog", action="store_true")
    args = parser.parse_args()
    if not (args.check_seen or args.update_from or args.write_docs or args.check_docs
            or args.check_catalog):
        parser.error("nothing to do: give --check-seen, --update-from, --write-docs, "
                     "--check-docs or --check-catalog")

    reg = load_registry(args.registry) if args.registry.exists() else load_registry_empty()
    problems: list[str] = []

    if args.update_from:
        captures, files = load_seen(args.update_from, problems)
        if problems or not files:
            return report(problems or ["no capture files in "
                                       + ", ".join(map(str, args.update_from))])
        added, missing = update(reg, captures, args.prune)
        args.registry.write_text(dump_registry(reg), encoding="utf-8")
        print(f"{args.registry}: read {files} capture file(s); {len(added)} item(s) added",
              file=sys.stderr)
        for item in added:
            print(f"  added: {item}", file=sys.stderr)
        verb = "removed" if args.prune else "not in these captures (--prune removes)"
        for item in missing:
            print(f"  {verb}: {item}", file=sys.stderr)
        print("Describe the new entries, then run --write-docs.", file=sys.stderr)
        return 0

    check_references(reg, problems)
    if args.check_seen:
        captures, files = load_seen(args.check_seen, problems)
        if files == 0 and not args.emitted_only:
            problems.append("no capture files in " + ", ".join(map(str, args.check_seen)))
        if args.emitted_only:
            print("telemetry registry: a filtered run cannot emit everything, so 'registered, "
                  "never emitted' is not checked (only 'emitted, not registered')",
                  file=sys.stderr)
        run_checks(reg, captures, args.emitted_only, problems)
        print(f"telemetry registry: {files} capture file(s) from "
              f"{', '.join(map(str, args.check_seen))}", file=sys.stderr)
    check_catalog(reg, problems)
    if args.write_docs:
        args.docs.write_text(render_docs(reg), encoding="utf-8")
        print(f"wrote {args.docs}", file=sys.stderr)
    if args.check_docs:
        have = args.docs.read_text(encoding="utf-8") if args.docs.exists() else ""
        if render_docs(reg) != have:
            problems.append(f"{args.docs} is stale (not what the registry generates): run "
                            "`python3 scripts/telemetry-registry.py --write-docs`")
    return report(problems)


def report(problems: list[str]) -> int:
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    print(f"telemetry registry: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
