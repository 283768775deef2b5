//! JSON log lines on stdout carrying `trace_id` and `span_id`.
//!
//! tracing-subscriber's JSON format knows nothing of OpenTelemetry ids, so this wraps the stock
//! formatter and splices the ids of the event's span (from the span layer's extension) before
//! the closing brace. Outside a span the ids are `null`.

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::propagation::push_hex;
use crate::spans::OtelSpan;

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
        // The ids straight from the event's span (no OpenTelemetry context is attached).
        let ids = ctx.parent_span().and_then(|span| {
            let ext = span.extensions();
            ext.get::<OtelSpan>().map(|o| {
                (
                    o.cx.trace_id().to_bytes(),
                    o.cx.span_id().to_bytes(),
                    o.cx.is_sampled(),
                )
            })
        });
        writer.write_str(body)?;
        if let Some((trace_id, span_id, sampled)) = ids {
            let mut ids = String::with_capacity(96);
            ids.push_str(",\"trace_id\":\"");
            push_hex(&mut ids, &trace_id);
            ids.push_str("\",\"span_id\":\"");
            push_hex(&mut ids, &span_id);
            ids.push_str(if sampled {
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
