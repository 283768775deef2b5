//! JSON log lines on stdout carrying `trace_id` and `span_id`.
//!
//! tracing-subscriber's JSON format knows nothing of OpenTelemetry ids, so this wraps the stock formatter and splices the ids of the active
//! OpenTelemetry context (attached per event by [`crate::event_context::WithSpanContext`]) before
//! the closing brace. Outside a span the ids are `null`.

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::propagation::push_hex;

pub struct OtelJson {
    inner: Format<Json>,
}

impl Default for OtelJson {
    fn default() -> Self {
        Self {
            inner: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        }
    }
}

/// The field formatter that goes with [`OtelJson`].
pub fn fields() -> JsonFields {
    JsonFields::new()
}

impl<S, N> FormatEvent<S, N> for OtelJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let trimmed = line.trim_end();
        let Some(body) = trimmed.strip_suffix('}') else {
            return writer.write_str(&line);
        };
        let sc = opentelemetry::Context::map_current(|cx| cx.span().span_context().clone());
        writer.write_str(body)?;
        if sc.is_valid() {
            let mut ids = String::with_capacity(96);
            ids.push_str(",\"trace_id\":\"");
            push_hex(&mut ids, &sc.trace_id().to_bytes());
            ids.push_str("\",\"span_id\":\"");
            push_hex(&mut ids, &sc.span_id().to_bytes());
            ids.push_str(if sc.is_sampled() {
                "\",\"trace_sampled\":true}"
            } else {
                "\",\"trace_sampled\":false}"
            });
            writer.write_str(&ids)?;
        } else {
            writer.write_str(",\"trace_id\":null,\"span_id\":null}")?;
        }
        writer.write_str("\n")
    }
}
