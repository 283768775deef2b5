//! The base of the subscriber: where spans live from creation to close, and which span is
//! current on each thread.
//!
//! Written by hand instead of tracing-subscriber's `Registry` because of the performance
//! budget (docs/DESIGN.md). The registry serves any stack of layers, and that has a price on
//! every span: its slot carries a type map of per-layer extensions (the span context went in
//! there as one more boxed value), a per-layer filter map, and a counted reference to its
//! parent that the child's close gives back through a second dispatch; and every layer
//! finds its data by id again on each callback. With nothing sampled, that was ~4 500
//! instructions for the benchmark route's two spans (callgrind). Here a slot holds the span's
//! OpenTelemetry side ([`OtelSpan`]), its metadata and its reference count, nothing else.
//!
//! The layers above (the gate and the log outputs) still sit in tracing-subscriber's
//! `Layered`, which gives their filters the `Context` they need; they read a span's ids from
//! the shared [`SpanTable`]. What this gives up: layers that need `LookupSpan`, such as
//! tracing-subscriber's fmt layer (so `json_log` writes its lines itself), and parents kept
//! alive by their children: a child copies what it needs from its parent when it is created.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

use opentelemetry::trace::{self, SpanContext, Status, TraceContextExt as _};
use sharded_slab::Slab;
use thread_local::ThreadLocal;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_core::span::Current;
use tracing_subscriber::layer::Context;

use crate::fast::spans::{OtelSpan, Parent, Tracer};
use crate::json_log::EventIds;
use crate::propagation::take_remote_parent;
use crate::span_ext::{AttributeIter, SpanOps, SpanSeam};

/// The spans alive in one subscriber, shared with the layers that read their ids.
pub(crate) struct SpanTable {
    slots: Slab<Slot>,
    /// The spans entered on each thread, innermost last. Per table, not one `thread_local!`
    /// for the process: tests run several subscribers side by side.
    stacks: ThreadLocal<RefCell<Vec<Id>>>,
}

struct Slot {
    meta: &'static Metadata<'static>,
    /// Handles to the span (`Span` values and their clones); it closes at zero.
    refs: AtomicUsize,
    span: OtelSpan,
}

/// The id of a slot: its slab key plus one, as ids must not be zero.
fn id_of(key: usize) -> Id {
    Id::from_u64(key as u64 + 1)
}

/// The slab key of an id. An id no slot has (a foreign or stale one) finds nothing: the slab
/// keys carry a generation.
fn key_of(id: &Id) -> usize {
    usize::try_from(id.into_u64() - 1).unwrap_or(usize::MAX)
}

/// Given out when the slab is full (it holds millions of spans): a span with no slot, whose
/// lookups find nothing.
const NO_SLOT: u64 = u64::MAX;

impl SpanTable {
    fn new() -> Self {
        Self {
            slots: Slab::new(),
            stacks: ThreadLocal::new(),
        }
    }

    /// Runs `f` on the span's OpenTelemetry side, if the span is alive.
    pub(crate) fn with<R>(&self, id: &Id, f: impl FnOnce(&OtelSpan) -> R) -> Option<R> {
        self.slots.get(key_of(id)).map(|slot| f(&slot.span))
    }

    /// The innermost span entered on this thread.
    fn current(&self) -> Option<Id> {
        self.stacks.get()?.borrow().last().cloned()
    }

    /// Runs `f` on the span something new belongs to: its explicit parent, else the current
    /// span when it is contextual. Events and spans resolve alike.
    fn with_scope<R>(
        &self,
        explicit: Option<&Id>,
        contextual: bool,
        f: impl FnOnce(&OtelSpan) -> R,
    ) -> Option<R> {
        match explicit {
            Some(id) => self.with(id, f),
            None if contextual => self.with(&self.current()?, f),
            None => None,
        }
    }

    /// Runs `f` on the span an event belongs to.
    pub(crate) fn with_event_span<R>(
        &self,
        event: &Event<'_>,
        f: impl FnOnce(&OtelSpan) -> R,
    ) -> Option<R> {
        self.with_scope(event.parent(), event.is_contextual(), f)
    }

    /// The parent's context for a new span: a remote parent set by
    /// [`crate::with_remote_parent`], else the explicit parent, else the current span.
    fn parent(&self, attrs: &Attributes<'_>) -> Option<Parent> {
        take_remote_parent()
            .map(|remote| (remote.span().span_context().clone(), Some(remote)))
            .or_else(|| {
                self.with_scope(attrs.parent(), attrs.is_contextual(), |s| {
                    (s.cx.clone(), s.remote.clone())
                })
            })
    }
}

/// The base subscriber. See the module documentation.
pub(crate) struct SpanStore {
    table: Arc<SpanTable>,
    tracer: Tracer,
}

impl SpanStore {
    pub(crate) fn new(tracer: Tracer) -> Self {
        Self {
            table: Arc::new(SpanTable::new()),
            tracer,
        }
    }

    /// The table, for layers that read span ids.
    pub(crate) fn table(&self) -> &Arc<SpanTable> {
        &self.table
    }

    /// `SpanExt`'s operations on this store's spans, to be layered over it.
    pub(crate) fn seam(&self) -> SpanSeam {
        SpanSeam::new(StoreSpans(self.table.clone()))
    }
}

/// `SpanExt` on the fast backend: the span's OpenTelemetry side, found in the table by its id
/// (nothing happens on a span that is gone).
struct StoreSpans(Arc<SpanTable>);

impl SpanOps for StoreSpans {
    fn context(&self, _: &tracing::Span, id: &Id) -> opentelemetry::Context {
        self.0.with(id, OtelSpan::context).unwrap_or_default()
    }
    fn set_attributes(&self, _: &tracing::Span, id: &Id, attributes: AttributeIter<'_>) {
        self.0.with(id, |s| s.set_attributes(attributes));
    }
    fn add_event(&self, _: &tracing::Span, id: &Id, event: trace::Event) {
        self.0.with(id, |s| s.add_event(event));
    }
    fn add_link(&self, _: &tracing::Span, id: &Id, cx: SpanContext) {
        self.0.with(id, |s| s.add_link(cx, Vec::new()));
    }
    fn set_status(&self, _: &tracing::Span, id: &Id, status: Status) {
        self.0.with(id, |s| s.set_status(status));
    }
    /// Without building a `Context`.
    fn span_context(&self, _: &tracing::Span, id: &Id) -> SpanContext {
        let cx = self.0.with(id, |s| s.cx.clone());
        cx.unwrap_or_else(SpanContext::empty_context)
    }
    fn is_sampled(&self, _: &tracing::Span, id: &Id) -> bool {
        self.0.with(id, OtelSpan::is_recording).unwrap_or(false)
    }
}

/// The stdout lines' ids on the fast backend: those of the event's span in the table.
impl<S: Subscriber> EventIds<S> for Arc<SpanTable> {
    fn ids(&self, event: &Event<'_>, _: &Context<'_, S>) -> Option<([u8; 16], [u8; 8], bool)> {
        self.with_event_span(event, |span| {
            (
                span.cx.trace_id().to_bytes(),
                span.cx.span_id().to_bytes(),
                span.cx.is_sampled(),
            )
        })
    }
}

impl Subscriber for SpanStore {
    /// Every callsite: the gate above decides which spans and events exist.
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let parent = self.table.parent(attrs);
        let slot = Slot {
            meta: attrs.metadata(),
            refs: AtomicUsize::new(1),
            span: self.tracer.start(attrs, parent),
        };
        self.table
            .slots
            .insert(slot)
            .map_or_else(|| Id::from_u64(NO_SLOT), id_of)
    }

    fn record(&self, id: &Id, values: &Record<'_>) {
        self.table.with(id, |span| self.tracer.record(span, values));
    }

    fn record_follows_from(&self, id: &Id, follows: &Id) {
        if let Some(cx) = self.table.with(follows, |s| s.cx.clone()) {
            self.table.with(id, |span| span.add_link(cx, Vec::new()));
        }
    }

    /// Events go to the layers above.
    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, id: &Id) {
        self.table
            .stacks
            .get_or_default()
            .borrow_mut()
            .push(id.clone());
    }

    /// Removes the innermost entry of `id`, wherever it is: spans may be exited out of order
    /// (almost always it is the last one).
    fn exit(&self, id: &Id) {
        if let Some(stack) = self.table.stacks.get() {
            let mut stack = stack.borrow_mut();
            if stack.last() == Some(id) {
                stack.pop();
            } else if let Some(i) = stack.iter().rposition(|entered| entered == id) {
                stack.remove(i);
            }
        }
    }

    fn clone_span(&self, id: &Id) -> Id {
        if let Some(slot) = self.table.slots.get(key_of(id)) {
            // As `Arc::clone`: a new handle needs no ordering, only the last close does.
            slot.refs.fetch_add(1, Ordering::Relaxed);
        }
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        let key = key_of(&id);
        {
            let Some(slot) = self.table.slots.get(key) else {
                return false;
            };
            if slot.refs.fetch_sub(1, Ordering::Release) > 1 {
                return false;
            }
        }
        // As `Arc::drop`: every other handle's use happens before the span ends.
        fence(Ordering::Acquire);
        // `take` waits for readers on other threads (an event reading the ids) to let go.
        if let Some(slot) = self.table.slots.take(key) {
            self.tracer.finish(slot.span);
        }
        true
    }

    fn current_span(&self) -> Current {
        self.table
            .current()
            .and_then(|id| {
                let meta = self.table.slots.get(key_of(&id))?.meta;
                Some(Current::new(id, meta))
            })
            .unwrap_or_else(Current::none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SamplerConfig;

    /// Runs `f` under a store of its own, with its table (to look spans up) and dispatch.
    fn with_store(f: impl FnOnce(&SpanTable, &tracing::Dispatch)) {
        let store = SpanStore::new(Tracer::new(SamplerConfig::AlwaysOff, None));
        let table = store.table().clone();
        let dispatch = tracing::Dispatch::new(store);
        tracing::dispatcher::with_default(&dispatch, || f(&table, &dispatch));
    }

    fn alive(table: &SpanTable, id: &Id) -> bool {
        table.with(id, |_| ()).is_some()
    }

    /// A span lives while a handle to it does; entering nests and exits may come out of order.
    #[test]
    fn spans_close_with_their_last_handle_and_the_stack_follows_enters_and_exits() {
        with_store(|table, _| {
            let outer = tracing::info_span!("outer");
            let outer_id = outer.id().expect("enabled");
            let copy = outer.clone();
            drop(outer);
            assert!(alive(table, &outer_id), "a clone keeps it");
            let inner = copy.in_scope(|| tracing::info_span!("inner"));
            let inner_id = inner.id().expect("enabled");
            let trace = |id: &Id| table.with(id, |s| s.cx.trace_id()).unwrap();
            assert_eq!(
                trace(&inner_id),
                trace(&outer_id),
                "the current span is the parent"
            );

            let a = copy.enter();
            let b = inner.enter();
            assert_eq!(tracing::Span::current().id(), Some(inner_id.clone()));
            drop(a); // out of order: the outer span leaves, the inner one stays current
            assert_eq!(tracing::Span::current().id(), Some(inner_id.clone()));
            drop(b);
            assert!(tracing::Span::current().is_none());

            drop(copy);
            assert!(!alive(table, &outer_id), "closed");
            assert!(alive(table, &inner_id));
            drop(inner);
            assert!(!alive(table, &inner_id), "closed");
        });
    }

    /// The id of a closed span finds nothing, also once a new span is made, and closing it
    /// again is harmless.
    #[test]
    fn a_stale_id_finds_nothing() {
        with_store(|table, dispatch| {
            let first = tracing::info_span!("first");
            let stale = first.id().expect("enabled");
            drop(first);
            let second = tracing::info_span!("second");
            assert_ne!(second.id(), Some(stale.clone()));
            assert!(!alive(table, &stale));
            assert!(!dispatch.try_close(stale));
            assert!(alive(table, &second.id().unwrap()));
        });
    }
}
