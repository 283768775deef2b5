//! tracing spans as OpenTelemetry spans, with the sampling decision made when a span is
//! created.
//!
//! Written by hand instead of using tracing-opentelemetry because of the performance budget
//! (docs/DESIGN.md): tracing-opentelemetry builds a full span (a builder with every field converted
//! into an attribute, a lock, an SDK span) for every tracing span and decides sampling only
//! when it starts that span, so an unsampled span cost nearly as much as a sampled one up to
//! the export. Replacing it (together with hand-written hex for the ids) took the benchmark
//! route from ~108 000 to ~99 000 instructions per request with nothing sampled, and from
//! ~117 000 to ~103 000 at 10 % (callgrind, `scripts/bench-instructions.sh`). Here an unsampled span
//! is a span context in its slot in the span store (`store`): two ids, no attributes, no
//! allocation.
//! A sampled span records into a plain struct, which is queued for the export pipeline
//! ([`crate::fast::pipe`]) when it closes and written to protobuf from there ([`crate::fast::wire`]).
//!
//! The tracing-opentelemetry conventions are kept: `otel.name`, `otel.kind`,
//! `otel.status_code` and `otel.status_description` fields; every other field becomes an
//! attribute; log events are not copied into spans.
//!
//! A remote parent must be known when the span is created, because that is when sampling is
//! decided: create the span inside [`crate::with_remote_parent`]. There is no `set_parent`.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceState,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope as ProtoScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanLinks};
use tracing::field;
use tracing::span::{Attributes, Record};

use crate::config::{SamplerConfig, Signal};
use crate::db_watch::DbWatch;
use crate::fast::pipe::{Payload, Queue, Scoped, group_by_scope, scrub_attributes, unix_nanos};
use crate::fast::wire;
use crate::redact::scrub_string;
use crate::span_policy::{SPAN_LIMITS, sampled};

/// Spans in the export pipeline: queued as [`Finished`] when they close and written to
/// protobuf on the export thread, all under one scope.
pub(crate) struct Spans;

impl Payload for Spans {
    type Item = Finished;
    type Proto = Span;
    type Request = ExportTraceServiceRequest;
    const SIGNAL: Signal = Signal::Traces;

    /// Through the SDK's `SpanData` and `opentelemetry-proto`'s conversion: for JSON, the file
    /// and the fallback file (protobuf goes through [`Spans::encode`]).
    fn scopes(batch: &mut Vec<Finished>) -> Vec<Scoped<Span>> {
        group_by_scope(batch, |f| (f.proto_scope(), Span::from(f.into_span_data())))
    }

    /// Written straight from the recordings (see `wire`); the same bytes as encoding
    /// [`Spans::request`] after [`Spans::scrub`].
    fn encode(resource: &Resource, batch: &[Finished]) -> Result<Vec<u8>, wire::Unencodable> {
        for f in batch {
            if let Some(scope) = &f.scope
                && scope.attributes().next().is_some()
            {
                // Scope attributes are not written by hand.
                return Err(wire::Unencodable {
                    key: format!("scope {}", scope.name()),
                });
            }
            wire::check(&f.r.attributes)?;
            for e in &f.r.events {
                wire::check(&e.attributes)?;
            }
            for l in &f.r.links {
                wire::check(&l.attributes)?;
            }
        }
        Ok(wire::request(
            resource,
            crate::resource::SCHEMA_URL,
            batch,
            Finished::wire_scope,
            |buf, f| f.encode(buf),
        ))
    }

    /// Attributes, event names and attributes, link attributes and the status message.
    fn scrub(span: &mut Span) {
        scrub_attributes(&mut span.attributes);
        for event in &mut span.events {
            scrub_string(&mut event.name);
            scrub_attributes(&mut event.attributes);
        }
        for link in &mut span.links {
            scrub_attributes(&mut link.attributes);
        }
        if let Some(status) = &mut span.status {
            scrub_string(&mut status.message);
        }
    }

    fn request(resource: Resource, scopes: Vec<Scoped<Span>>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: scopes
                    .into_iter()
                    .map(|(scope, spans)| ScopeSpans {
                        scope: Some(scope),
                        spans,
                        schema_url: crate::resource::SCHEMA_URL.to_owned(),
                    })
                    .collect(),
                schema_url: crate::resource::SCHEMA_URL.to_owned(),
            }],
        }
    }
}

/// Every span's scope, as `wire` writes it (the same as [`crate::resource::scope`]).
const SPAN_SCOPE: wire::Scope<'static> = wire::Scope {
    name: crate::resource::SCOPE_NAME,
    version: env!("CARGO_PKG_VERSION"),
    schema_url: crate::resource::SCHEMA_URL,
};

/// The span limits (see `span_policy`).
const MAX_ATTRIBUTES: usize = SPAN_LIMITS.max_attributes_per_span as usize;
const MAX_EVENTS: usize = SPAN_LIMITS.max_events_per_span as usize;
const MAX_LINKS: usize = SPAN_LIMITS.max_links_per_span as usize;

const NAME_FIELD: &str = "otel.name";
const KIND_FIELD: &str = "otel.kind";
const STATUS_CODE_FIELD: &str = "otel.status_code";
const STATUS_DESCRIPTION_FIELD: &str = "otel.status_description";

/// A new span's parent: its span context, and the remote context (with its baggage) when the
/// trace came from elsewhere.
pub(crate) type Parent = (SpanContext, Option<opentelemetry::Context>);

/// The OpenTelemetry side of a tracing span, kept in its slot in the span store (`store`). Only the
/// recording changes after creation; it is locked because a span can be written from any
/// thread holding a handle.
pub(crate) struct OtelSpan {
    pub(crate) cx: SpanContext,
    /// The remote parent's context (its baggage) when the trace came from elsewhere,
    /// inherited by descendants so [`crate::SpanExt::context`] carries it on.
    pub(crate) remote: Option<opentelemetry::Context>,
    recording: Option<Mutex<Box<Recording>>>,
}

/// What a sampled span records until it closes.
#[derive(Debug)]
struct Recording {
    name: Cow<'static, str>,
    kind: SpanKind,
    parent_span_id: SpanId,
    parent_is_remote: bool,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    dropped_attributes: u32,
    events: Vec<Event>,
    dropped_events: u32,
    links: Vec<Link>,
    dropped_links: u32,
    status: Status,
    /// When a span the [`DbWatch`] times started.
    db_started: Option<Instant>,
}

/// A sampled span that has ended, as queued for export.
#[derive(Debug)]
pub(crate) struct Finished {
    cx: SpanContext,
    end: SystemTime,
    r: Box<Recording>,
    /// The scope of a span made through the OpenTelemetry API (see [`QueueExporter`]); the
    /// store's own spans are under [`crate::resource::scope`].
    scope: Option<Box<InstrumentationScope>>,
}

impl Finished {
    fn wire_scope(&self) -> wire::Scope<'_> {
        match &self.scope {
            None => SPAN_SCOPE,
            Some(s) => wire::Scope {
                name: s.name(),
                version: s.version().unwrap_or_default(),
                schema_url: crate::resource::SCHEMA_URL,
            },
        }
    }

    fn proto_scope(&self) -> ProtoScope {
        match &self.scope {
            None => ProtoScope {
                name: crate::resource::SCOPE_NAME.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Default::default()
            },
            Some(s) => ProtoScope::from((s.as_ref().clone(), None)),
        }
    }

    /// The body of its `Span` message, scrubbed as [`Spans::scrub`] scrubs the converted span.
    /// Fields in tag order, as prost writes them.
    fn encode(&self, buf: &mut Vec<u8>) {
        let r = &self.r;
        wire::bytes(buf, 1, &self.cx.trace_id().to_bytes());
        wire::bytes(buf, 2, &self.cx.span_id().to_bytes());
        wire::string(buf, 3, &self.cx.trace_state().header());
        if r.parent_span_id != SpanId::INVALID {
            wire::bytes(buf, 4, &r.parent_span_id.to_bytes());
        }
        wire::string(buf, 5, &r.name);
        wire::uint(buf, 6, kind_number(&r.kind));
        wire::fixed64(buf, 7, unix_nanos(r.start));
        wire::fixed64(buf, 8, unix_nanos(self.end));
        wire::attributes(buf, 9, &r.attributes);
        wire::uint(buf, 10, u64::from(r.dropped_attributes));
        for e in &r.events {
            wire::nested(buf, 11, |buf| {
                wire::fixed64(buf, 1, unix_nanos(e.timestamp));
                wire::scrubbed_string(buf, 2, &e.name);
                wire::attributes(buf, 3, &e.attributes);
                wire::uint(buf, 4, u64::from(e.dropped_attributes_count));
            });
        }
        wire::uint(buf, 12, u64::from(r.dropped_events));
        for l in &r.links {
            let cx = &l.span_context;
            wire::nested(buf, 13, |buf| {
                wire::bytes(buf, 1, &cx.trace_id().to_bytes());
                wire::bytes(buf, 2, &cx.span_id().to_bytes());
                wire::string(buf, 3, &cx.trace_state().header());
                wire::attributes(buf, 4, &l.attributes);
                wire::uint(buf, 5, u64::from(l.dropped_attributes_count));
                wire::fixed32(buf, 6, span_flags(cx, cx.is_remote()));
            });
        }
        wire::uint(buf, 14, u64::from(r.dropped_links));
        wire::nested(buf, 15, |buf| {
            let (message, code) = match &r.status {
                Status::Unset => ("", 0),
                Status::Ok => ("", 1),
                Status::Error { description } => (description.as_ref(), 2),
            };
            wire::scrubbed_string(buf, 2, message);
            wire::uint(buf, 3, code);
        });
        wire::fixed32(buf, 16, span_flags(&self.cx, r.parent_is_remote));
    }

    /// The SDK's form, for `opentelemetry-proto`'s conversion.
    fn into_span_data(self) -> SpanData {
        let r = *self.r;
        SpanData {
            span_context: self.cx,
            parent_span_id: r.parent_span_id,
            parent_span_is_remote: r.parent_is_remote,
            span_kind: r.kind,
            name: r.name,
            start_time: r.start,
            end_time: self.end,
            attributes: r.attributes,
            dropped_attributes_count: r.dropped_attributes,
            events: span_events(r.events, r.dropped_events),
            links: span_links(r.links, r.dropped_links),
            status: r.status,
            instrumentation_scope: self.scope.map_or_else(crate::resource::scope, |s| *s),
        }
    }

    /// A span the SDK recorded (the OpenTelemetry API's tracer on the fast backend, see
    /// [`QueueExporter`]), queued like the store's own.
    fn from_span_data(s: SpanData) -> Self {
        Self {
            cx: s.span_context,
            end: s.end_time,
            r: Box::new(Recording {
                name: s.name,
                kind: s.span_kind,
                parent_span_id: s.parent_span_id,
                parent_is_remote: s.parent_span_is_remote,
                start: s.start_time,
                attributes: s.attributes,
                dropped_attributes: s.dropped_attributes_count,
                events: s.events.events,
                dropped_events: s.events.dropped_count,
                links: s.links.links,
                dropped_links: s.links.dropped_count,
                status: s.status,
                db_started: None,
            }),
            scope: Some(Box::new(s.instrumentation_scope)),
        }
    }
}

/// The exporter behind the OpenTelemetry API's tracer on the fast backend: the SDK's spans
/// join the store's in the span pipeline, so they are scrubbed, counted and sent alike, under
/// their own instrumentation scope.
pub(crate) struct QueueExporter(pub(crate) Queue<Finished>);

impl fmt::Debug for QueueExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueExporter")
    }
}

impl opentelemetry_sdk::trace::SpanExporter for QueueExporter {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        for s in batch {
            self.0.push(Finished::from_span_data(s));
        }
        Ok(())
    }
}

/// The OTLP `SpanKind` number.
fn kind_number(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// OTLP span flags: the W3C flags plus "is the parent remote" (`SpanFlags`
/// `CONTEXT_HAS_IS_REMOTE` and `CONTEXT_IS_REMOTE`), as `opentelemetry-proto`'s conversion
/// sets them.
fn span_flags(cx: &SpanContext, parent_is_remote: bool) -> u32 {
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    u32::from(cx.trace_flags().to_u8())
        | HAS_IS_REMOTE
        | if parent_is_remote { IS_REMOTE } else { 0 }
}

impl OtelSpan {
    pub(crate) fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// The recording, locked, when the span is sampled. A panic while it was held leaves it
    /// usable: a recording has no invariant a half-done write can break.
    fn recording(&self) -> Option<MutexGuard<'_, Box<Recording>>> {
        self.recording
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The span's context as an OpenTelemetry [`Context`](opentelemetry::Context): the
    /// remote parent's baggage, if any, with this span as the active span.
    pub(crate) fn context(&self) -> opentelemetry::Context {
        match &self.remote {
            Some(remote) => remote.with_remote_span_context(self.cx.clone()),
            None => opentelemetry::Context::new().with_remote_span_context(self.cx.clone()),
        }
    }

    pub(crate) fn add_event(&self, event: Event) {
        if let Some(mut r) = self.recording() {
            r.add_event(event);
        }
    }

    pub(crate) fn add_link(&self, cx: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(mut r) = self.recording()
            && cx.is_valid()
        {
            if r.links.len() < MAX_LINKS {
                r.links.push(Link::new(cx, attributes, 0));
            } else {
                r.dropped_links += 1;
            }
        }
    }

    pub(crate) fn set_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        if let Some(mut r) = self.recording() {
            attributes.into_iter().for_each(|kv| r.set_attribute(kv));
        }
    }

    pub(crate) fn set_status(&self, status: Status) {
        if let Some(mut r) = self.recording() {
            r.set_status(status);
        }
    }
}

impl Recording {
    /// An empty recording of a span starting now, as the child of `parent` (a root without).
    fn new(name: &'static str, parent: Option<&SpanContext>, attributes: usize) -> Self {
        Self {
            name: Cow::Borrowed(name),
            kind: SpanKind::Internal,
            parent_span_id: parent.map_or(SpanId::INVALID, |p| p.span_id()),
            parent_is_remote: parent.is_some_and(|p| p.is_remote()),
            start: SystemTime::now(),
            attributes: Vec::with_capacity(attributes),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
            dropped_links: 0,
            status: Status::Unset,
            db_started: None,
        }
    }

    fn add_event(&mut self, event: Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(event);
        } else {
            self.dropped_events += 1;
        }
    }

    /// A repeated key replaces the earlier value, so a field recorded twice is exported once
    /// (the SDK 0.32 span would keep both).
    fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(kv) = self
            .attributes
            .iter_mut()
            .find(|kv| kv.key == attribute.key)
        {
            kv.value = attribute.value;
        } else if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes.push(attribute);
        } else {
            self.dropped_attributes += 1;
        }
    }

    /// Status only moves up: Unset < Error < Ok (the API's rule).
    fn set_status(&mut self, status: Status) {
        if status > self.status {
            self.status = status;
        }
    }
}

/// What the span store (`store::SpanStore`) does with spans: ids and the sampling decision at
/// creation, the recording, and the export at close. `queue` is `None` when traces are not exported: spans
/// then still get ids (for log correlation and propagation) and never record.
pub(crate) struct Tracer {
    sampler: SamplerConfig,
    queue: Option<Queue<Finished>>,
    ids: RandomIdGenerator,
    db: Option<DbWatch>,
}

impl Tracer {
    pub(crate) fn new(sampler: SamplerConfig, queue: Option<Queue<Finished>>) -> Self {
        Self {
            sampler,
            queue,
            ids: RandomIdGenerator::default(),
            db: None,
        }
    }

    /// Times the spans `db` watches and adds its slow-query event when they close.
    pub(crate) fn with_db_watch(mut self, db: DbWatch) -> Self {
        self.db = Some(db);
        self
    }

    /// A new span's OpenTelemetry side, under `parent`.
    pub(crate) fn start(&self, attrs: &Attributes<'_>, parent: Option<Parent>) -> OtelSpan {
        let parent_sc = parent.as_ref().map(|(sc, _)| sc);
        let trace_id = parent_sc.map_or_else(|| self.ids.new_trace_id(), |p| p.trace_id());
        let sampled = self.queue.is_some() && sampled(self.sampler, parent_sc, trace_id);
        let cx = SpanContext::new(
            trace_id,
            self.ids.new_span_id(),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            parent_sc.map_or_else(TraceState::default, |p| p.trace_state().clone()),
        );
        let recording = sampled.then(|| {
            let mut r = Box::new(Recording::new(
                attrs.metadata().name(),
                parent_sc,
                attrs.fields().len(),
            ));
            attrs.record(&mut Visitor(&mut r));
            r.db_started = self
                .db
                .as_ref()
                .and_then(|db| db.start(attrs.metadata().name()));
            Mutex::new(r)
        });
        OtelSpan {
            cx,
            remote: parent.and_then(|(_, remote)| remote),
            recording,
        }
    }

    /// Fields recorded on a span after its creation.
    pub(crate) fn record(&self, span: &OtelSpan, values: &Record<'_>) {
        if let Some(mut r) = span.recording() {
            values.record(&mut Visitor(&mut r));
        }
    }

    /// A closed span: queued for export when it was sampled.
    pub(crate) fn finish(&self, span: OtelSpan) {
        let (Some(r), Some(queue)) = (span.recording, &self.queue) else {
            return;
        };
        let mut r = r.into_inner().unwrap_or_else(PoisonError::into_inner);
        if let (Some(started), Some(db)) = (r.db_started, &self.db)
            && let Some((name, attributes)) = db.slow_query(started)
        {
            r.add_event(Event::new(name, SystemTime::now(), attributes, 0));
        }
        queue.push(Finished {
            cx: span.cx,
            end: SystemTime::now(),
            r,
            scope: None,
        });
    }
}

fn span_events(events: Vec<Event>, dropped_count: u32) -> SpanEvents {
    let mut e = SpanEvents::default();
    e.events = events;
    e.dropped_count = dropped_count;
    e
}

fn span_links(links: Vec<Link>, dropped_count: u32) -> SpanLinks {
    let mut l = SpanLinks::default();
    l.links = links;
    l.dropped_count = dropped_count;
    l
}

fn kind(s: &str) -> Option<SpanKind> {
    [
        ("server", SpanKind::Server),
        ("client", SpanKind::Client),
        ("producer", SpanKind::Producer),
        ("consumer", SpanKind::Consumer),
        ("internal", SpanKind::Internal),
    ]
    .into_iter()
    .find_map(|(n, k)| s.eq_ignore_ascii_case(n).then_some(k))
}

fn status(code: &str) -> Status {
    if code.eq_ignore_ascii_case("ok") {
        Status::Ok
    } else if code.eq_ignore_ascii_case("error") {
        Status::error("")
    } else {
        Status::Unset
    }
}

/// Fields of a sampled span into its recording.
struct Visitor<'a>(&'a mut Recording);

impl Visitor<'_> {
    fn str_field(&mut self, name: &'static str, value: Cow<'_, str>) {
        match name {
            NAME_FIELD => self.0.name = Cow::Owned(value.into_owned()),
            KIND_FIELD => {
                if let Some(k) = kind(&value) {
                    self.0.kind = k;
                }
            }
            STATUS_CODE_FIELD => self.0.status = status(&value),
            STATUS_DESCRIPTION_FIELD => self.0.status = Status::error(value.into_owned()),
            _ => self
                .0
                .set_attribute(KeyValue::new(name, Value::from(value.into_owned()))),
        }
    }
}

impl field::Visit for Visitor<'_> {
    fn record_bool(&mut self, field: &field::Field, value: bool) {
        self.0.set_attribute(KeyValue::new(field.name(), value));
    }
    fn record_f64(&mut self, field: &field::Field, value: f64) {
        self.0.set_attribute(KeyValue::new(field.name(), value));
    }
    fn record_i64(&mut self, field: &field::Field, value: i64) {
        self.0.set_attribute(KeyValue::new(field.name(), value));
    }
    fn record_u64(&mut self, field: &field::Field, value: u64) {
        let v = i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::I64);
        self.0
            .set_attribute(KeyValue::new(Key::from_static_str(field.name()), v));
    }
    fn record_str(&mut self, field: &field::Field, value: &str) {
        self.str_field(field.name(), Cow::Borrowed(value));
    }
    fn record_error(&mut self, field: &field::Field, value: &(dyn std::error::Error + 'static)) {
        self.str_field(field.name(), Cow::Owned(value.to_string()));
    }
    fn record_debug(&mut self, field: &field::Field, value: &dyn fmt::Debug) {
        self.str_field(field.name(), Cow::Owned(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::store::SpanStore;
    use crate::span_ext::SpanExt as _;
    use crate::with_remote_parent;
    use opentelemetry::StringValue;
    use opentelemetry::baggage::BaggageExt as _;
    use opentelemetry::trace::TraceId;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Runs `f` under a span store, then returns the spans it queued for export.
    fn with_store(sampler: SamplerConfig, f: impl FnOnce()) -> Vec<SpanData> {
        let (queue, queued) = crate::fast::pipe::test_queue();
        let store = SpanStore::new(Tracer::new(sampler, Some(queue)));
        let seam = store.seam();
        tracing::subscriber::with_default(store.with(seam), f);
        queued().into_iter().map(Finished::into_span_data).collect()
    }

    fn remote(flags: TraceFlags) -> opentelemetry::Context {
        let sc = SpanContext::new(
            TraceId::from(0xabcd_u128),
            SpanId::from(0x1234_u64),
            flags,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new()
            .with_remote_span_context(sc)
            .with_baggage([KeyValue::new("tenant", "acme")])
    }

    #[test]
    fn a_remote_parent_replaces_the_current_span_and_its_baggage_is_inherited() {
        let mut seen = None;
        let spans = with_store(SamplerConfig::ParentBasedTraceIdRatio(0.0), || {
            let local = tracing::info_span!("local");
            let _entered = local.enter();
            let span = with_remote_parent(remote(TraceFlags::SAMPLED), || {
                tracing::info_span!("server", otel.kind = "server", http.route = "/x")
            });
            let child = span.in_scope(|| tracing::info_span!("child"));
            let cx = child.context();
            seen = Some((
                span.span_context(),
                child.span_context(),
                cx.baggage().get("tenant").map(|v| v.to_string()),
                local.is_sampled(),
            ));
        });
        let (server, child, tenant, local_sampled) = seen.unwrap();
        assert_eq!(server.trace_id(), TraceId::from(0xabcd_u128));
        assert_eq!(child.trace_id(), server.trace_id());
        assert_ne!(child.span_id(), server.span_id());
        assert!(
            server.is_sampled() && child.is_sampled(),
            "the sampled parent is followed"
        );
        assert!(!local_sampled, "ratio 0 for a root");
        assert_eq!(tenant.as_deref(), Some("acme"));
        // Exported: child then server; the server's parent is the remote span.
        let names: Vec<_> = spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["child", "server"]);
        let server_data = &spans[1];
        assert_eq!(server_data.parent_span_id, SpanId::from(0x1234_u64));
        assert!(server_data.parent_span_is_remote);
        assert_eq!(server_data.span_kind, SpanKind::Server);
        assert!(
            server_data
                .attributes
                .contains(&KeyValue::new("http.route", "/x"))
        );
        assert_eq!(spans[0].parent_span_id, server.span_id());
    }

    #[test]
    fn an_unsampled_remote_parent_is_followed_and_nothing_is_exported() {
        let mut ids = None;
        let spans = with_store(SamplerConfig::ParentBasedAlwaysOn, || {
            let span = with_remote_parent(remote(TraceFlags::default()), || {
                tracing::info_span!("server")
            });
            span.set_attribute("ignored", 1);
            ids = Some(span.span_context());
        });
        let sc = ids.unwrap();
        assert_eq!(sc.trace_id(), TraceId::from(0xabcd_u128));
        assert!(!sc.is_sampled());
        assert!(spans.is_empty(), "{spans:?}");
    }

    #[test]
    fn recorded_fields_events_status_and_links_reach_the_exported_span() {
        let spans = with_store(SamplerConfig::AlwaysOn, || {
            let other = tracing::info_span!("other");
            let span = tracing::info_span!(
                "work",
                otel.name = "renamed",
                size = tracing::field::Empty,
                big = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            span.record("size", 7_u64);
            span.record("big", u64::MAX);
            span.add_event("step", vec![KeyValue::new("n", 1)]);
            span.follows_from(&other);
            span.record("otel.status_code", "ERROR");
            drop(span);
        });
        let work = spans
            .iter()
            .find(|s| s.name == "renamed")
            .expect("renamed span");
        assert!(work.attributes.contains(&KeyValue::new("size", 7_i64)));
        assert!(
            work.attributes
                .contains(&KeyValue::new("big", u64::MAX.to_string()))
        );
        assert_eq!(work.events.events.len(), 1);
        assert_eq!(work.events.events[0].name, "step");
        assert_eq!(work.links.links.len(), 1);
        assert_eq!(work.status, Status::error(""));
    }

    #[test]
    fn without_an_export_queue_spans_have_ids_but_are_never_sampled() {
        let store = SpanStore::new(Tracer::new(SamplerConfig::AlwaysOn, None));
        let seam = store.seam();
        tracing::subscriber::with_default(store.with(seam), || {
            let span = tracing::info_span!("x");
            assert!(span.span_context().is_valid());
            assert!(!span.is_sampled());
            assert!(!span.span_context().is_sampled());
        });
    }

    /// A finished span with every kind of value, secrets among them.
    fn finished(parent_remote: bool, status: Status) -> Finished {
        let parent = SpanContext::new(
            TraceId::from(0xabcd_u128),
            SpanId::from(0x1234_u64),
            TraceFlags::SAMPLED,
            parent_remote,
            "vendor=x".parse().unwrap(),
        );
        let at = |secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let mut r = Box::new(Recording::new("work", Some(&parent), 8));
        r.kind = SpanKind::Server;
        r.start = at(1_700_000_000);
        for kv in [
            KeyValue::new("http.route", "/api/x"),
            KeyValue::new("password", "hunter2"),
            KeyValue::new("hasCookie", true),
            KeyValue::new("token.count", -3_i64),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("url.full", "https://s3/x?X-Amz-Signature=sig123&a=1"),
            KeyValue::new("long", "y".repeat(300)),
            KeyValue::new("empty", ""),
            KeyValue::new(
                "list",
                Value::Array(vec![StringValue::from("token=abc"), StringValue::from("ok")].into()),
            ),
            KeyValue::new("ints", Value::Array(vec![1_i64, 2].into())),
        ] {
            r.set_attribute(kv);
        }
        r.events.push(Event::new(
            "login password=hunter2",
            at(1_700_000_001),
            vec![KeyValue::new("authorization", "Bearer abc")],
            1,
        ));
        r.links.push(Link::new(
            parent.clone(),
            vec![KeyValue::new("cookie", "s=1")],
            0,
        ));
        r.dropped_events = 2;
        r.status = status;
        Finished {
            cx: SpanContext::new(
                TraceId::from(0xabcd_u128),
                SpanId::from(0x99_u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            end: at(1_700_000_002),
            r,
            scope: None,
        }
    }

    /// The hand-written protobuf (what gRPC and HTTP protobuf send) is byte for byte what prost
    /// makes of the converted and scrubbed request (what JSON, the file and the fallback use).
    #[test]
    fn spans_written_by_hand_are_prosts_bytes_for_the_scrubbed_request() {
        use prost::Message as _;
        let resource = Resource {
            attributes: opentelemetry_proto::transform::common::tonic::Attributes::from([
                KeyValue::new("service.name", "t"),
            ])
            .0,
            ..Default::default()
        };
        let batch = || {
            vec![
                finished(true, Status::error("password=hunter2 rejected")),
                finished(false, Status::Ok),
                finished(false, Status::Unset),
            ]
        };
        let ours = Spans::encode(&resource, &batch()).unwrap();
        let theirs = Spans::request(
            resource,
            crate::fast::pipe::scrubbed_scopes::<Spans>(&mut batch()),
        )
        .encode_to_vec();
        assert_eq!(ours.len(), theirs.len());
        assert!(ours == theirs, "the encodings differ");
        let text = String::from_utf8_lossy(&ours);
        for secret in ["hunter2", "sig123", "token=abc", "Bearer abc", "s=1"] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
    }

    mod properties {
        use super::*;
        use opentelemetry::Array;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use prost::Message as _;

        use crate::strategies::{key, text};

        fn value() -> impl Strategy<Value = Value> {
            prop_oneof![
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::I64),
                any::<f64>().prop_map(Value::F64),
                text().prop_map(Value::from),
                vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(Array::Bool(v))),
                vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
                vec(any::<f64>(), 0..4).prop_map(|v| Value::Array(Array::F64(v))),
                vec(text(), 0..4).prop_map(|v| {
                    Value::Array(Array::String(
                        v.into_iter().map(StringValue::from).collect(),
                    ))
                }),
            ]
        }

        fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
            vec(
                (key(), value()).prop_map(|(k, v)| KeyValue::new(k, v)),
                0..6,
            )
        }

        fn span_context() -> impl Strategy<Value = SpanContext> {
            (
                any::<u128>(),
                any::<u64>(),
                any::<bool>(),
                any::<bool>(),
                prop::sample::select(vec!["", "vendor=x", "a=1,b=2"]),
            )
                .prop_map(|(t, sp, sampled, remote, state)| {
                    SpanContext::new(
                        TraceId::from(t.max(1)),
                        SpanId::from(sp.max(1)),
                        if sampled {
                            TraceFlags::SAMPLED
                        } else {
                            TraceFlags::default()
                        },
                        remote,
                        state.parse().unwrap(),
                    )
                })
        }

        fn status() -> impl Strategy<Value = Status> {
            prop_oneof![
                Just(Status::Unset),
                Just(Status::Ok),
                text().prop_map(Status::error),
            ]
        }

        prop_compose! {
            fn finished()(
                cx in span_context(),
                parent in proptest::option::of(span_context()),
                name in text(),
                kind in prop::sample::select(vec![
                    SpanKind::Internal, SpanKind::Server, SpanKind::Client,
                    SpanKind::Producer, SpanKind::Consumer,
                ]),
                start in 0u64..4_000_000_000,
                length in 0u64..10_000_000,
                attributes in attributes(),
                events in vec((text(), 0u64..1_000_000, attributes(), 0u32..3), 0..4),
                links in vec((span_context(), attributes(), 0u32..3), 0..3),
                dropped in (0u32..5, 0u32..5, 0u32..5),
                status in status(),
                scope in proptest::option::of(("[a-z.]{1,8}", "[0-9.]{0,5}")),
            ) -> Finished {
                let at = |ns: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
                let mut r = Box::new(Recording::new("x", parent.as_ref(), 0));
                r.name = Cow::Owned(name);
                r.kind = kind;
                r.start = at(start);
                r.attributes = attributes;
                r.events = events
                    .into_iter()
                    .map(|(n, t, a, d)| Event::new(n, at(start + t), a, d))
                    .collect();
                r.links = links.into_iter().map(|(cx, a, d)| Link::new(cx, a, d)).collect();
                (r.dropped_attributes, r.dropped_events, r.dropped_links) = dropped;
                r.status = status;
                let scope = scope.map(|(name, version)| {
                    Box::new(InstrumentationScope::builder(name).with_version(version).build())
                });
                Finished { cx, end: at(start + length), r, scope }
            }
        }

        proptest! {
            /// Any batch of spans, every value type, secrets anywhere: the hand-written bytes
            /// are prost's for the converted, scrubbed request.
            #[test]
            fn spans_written_by_hand_are_prosts_bytes(batch in vec(finished(), 1..5)) {
                let resource = Resource {
                    attributes: opentelemetry_proto::transform::common::tonic::Attributes::from([
                        KeyValue::new("service.name", "p"),
                    ])
                    .0,
                    ..Default::default()
                };
                let clone = |b: &Vec<Finished>| -> Vec<Finished> {
                    b.iter()
                        .map(|f| Finished {
                            cx: f.cx.clone(),
                            end: f.end,
                            r: Box::new(Recording {
                                name: f.r.name.clone(),
                                kind: f.r.kind.clone(),
                                parent_span_id: f.r.parent_span_id,
                                parent_is_remote: f.r.parent_is_remote,
                                start: f.r.start,
                                attributes: f.r.attributes.clone(),
                                dropped_attributes: f.r.dropped_attributes,
                                events: f.r.events.clone(),
                                dropped_events: f.r.dropped_events,
                                links: f.r.links.clone(),
                                dropped_links: f.r.dropped_links,
                                status: f.r.status.clone(),
                                db_started: None,
                            }),
                            scope: f.scope.clone(),
                        })
                        .collect()
                };
                let ours = Spans::encode(&resource, &batch).unwrap();
                let theirs = Spans::request(
                    resource,
                    crate::fast::pipe::scrubbed_scopes::<Spans>(&mut clone(&batch)),
                )
                .encode_to_vec();
                prop_assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn status_only_moves_up() {
        let mut r = Recording::new("x", None, 0);
        r.set_status(Status::error("boom"));
        r.set_status(Status::Unset);
        assert_eq!(r.status, Status::error("boom"));
        r.set_status(Status::Ok);
        assert_eq!(r.status, Status::Ok);
        r.set_attribute(KeyValue::new("a", 1));
        r.set_attribute(KeyValue::new("a", 2));
        assert_eq!(r.attributes, vec![KeyValue::new("a", 2)]);
    }
}
