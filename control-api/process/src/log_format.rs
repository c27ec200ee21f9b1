//! Log lines that name the trace and span they were written in, so a log and
//! the trace of the same request can be found from each other.

use opentelemetry::trace::TraceContextExt as _;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The default log format, with `trace_id=… span_id=…` appended when the event
/// happened inside a sampled span (such lines are written without colour).
#[derive(Default)]
pub(crate) struct WithTraceIds {
    inner: Format<Full>,
}

impl<S, N> FormatEvent<S, N> for WithTraceIds
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
        let ids = ctx.lookup_current().and_then(|span| {
            tracing::dispatcher::get_default(|dispatch| {
                tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
            })
        });
        let Some(cx) = ids.filter(|cx| cx.span().span_context().is_valid()) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let span = cx.span();
        let context = span.span_context();
        let line = line.trim_end_matches('\n');
        writeln!(
            writer,
            "{line} trace_id={} span_id={}",
            context.trace_id(),
            context.span_id()
        )
    }
}
