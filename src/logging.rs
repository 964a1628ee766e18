//! Log output: human lines or JSON objects on stderr, every byte passed through the redactor.
//!
//! A daemon run happens inside a `job_run` span ([`run_span`]); every event inside it (script
//! prints and logs, host-call events, errors) is labelled with the job and the run id:
//! `[nightly#42]` in human lines, `"job"` and `"run"` fields in JSON lines.

use std::fmt;
use std::io::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// A stderr writer that masks secrets. tracing-subscriber formats each event into one buffer
/// and writes it in one call, so redaction sees whole lines.
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut clean = crate::redact::redact(&text);
        if !is_json() {
            clean = defang(&clean);
        }
        io::stderr().lock().write_all(clean.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// One event must read as one event: a file name with a newline or a carriage return in it
/// must not forge a log line. Inside an event, lines after the first are indented (so they can
/// never look like a new timestamped line) and other control characters are shown escaped; tabs
/// and the terminal's colour escapes are kept.
fn defang(event: &str) -> String {
    let (body, end) = match event.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (event, ""),
    };
    let mut out = String::with_capacity(event.len() + 8);
    for c in body.chars() {
        match c {
            '\n' => out.push_str("\n    "),
            '\t' | '\u{1b}' => out.push(c),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out.push_str(end);
    out
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True when logs are JSON lines (so events carry their fields rather than prose).
pub fn is_json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

const RUN_SPAN: &str = "job_run";

/// The span a job's run executes in. ERROR level so that no filter (`-q` included) drops it:
/// a span's level only decides whether it exists, and the label must be on warnings too.
pub fn run_span(job: &str, run: u64) -> tracing::Span {
    tracing::error_span!(target: "mtn::run", "job_run", job = job, run = run)
}

/// `--color`: whether the human log on stderr carries ANSI colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

static COLOR: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Record the command line's choice; read by [`init`] (set before any command starts logging).
pub fn set_color(choice: ColorChoice) {
    COLOR.store(choice as u8, std::sync::atomic::Ordering::Relaxed);
}

/// `auto` follows https://no-color.org: a non-empty NO_COLOR turns colour off; an explicit
/// `--color always` still wins, as the user asked for it on this very command line.
fn color_enabled() -> bool {
    use std::io::IsTerminal;
    match COLOR.load(std::sync::atomic::Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stderr().is_terminal()
        }
    }
}

/// Install the global subscriber. `verbosity`: -1 quiet, 0 normal, 1+ verbose. JSON and human
/// logs follow the same levels: host-call events are DEBUG, so they need `-v` in both.
pub fn init(format: LogFormat, verbosity: i8) {
    JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let base = match verbosity {
        i8::MIN..=-1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // The libraries' own debug output is noise to an operator reading a run's log.
    const QUIET_DEPS: &str =
        "hyper=warn,reqwest=warn,rustls=warn,mongodb=warn,object_store=warn,h2=warn,tokio_postgres=warn";
    let directives = if verbosity < 0 {
        // -q: warnings and errors only, without the run summary (cron mails stay empty on success).
        format!("{base},{QUIET_DEPS}")
    } else {
        format!("{base},mtn::run=info,{QUIET_DEPS}")
    };
    let filter = std::env::var("MTN_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(directives));
    let registry = tracing_subscriber::registry().with(filter).with(RunLabels);
    let _ = match format {
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(RedactingStderr)
                    .with_ansi(color_enabled())
                    .event_format(Human),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(RedactingStderr)
                    .event_format(JsonWithRun(
                        tracing_subscriber::fmt::format()
                            .json()
                            .flatten_event(true)
                            .with_current_span(false)
                            .with_span_list(false),
                    ))
                    .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new()),
            )
            .try_init(),
    };
}

/// The job and run id of a `job_run` span, kept in the span's extensions.
#[derive(Debug, Clone, Default)]
struct RunLabel {
    job: String,
    run: u64,
}

impl Visit for RunLabel {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "job" {
            self.job = value.to_string();
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "run" {
            self.run = value;
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "job" {
            self.job = format!("{value:?}").trim_matches('"').to_string();
        }
    }
}

struct RunLabels;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RunLabels {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if attrs.metadata().name() != RUN_SPAN {
            return;
        }
        let mut label = RunLabel::default();
        attrs.record(&mut label);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(label);
        }
    }
}

fn label_of<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<RunLabel>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    ctx.event_scope()?
        .from_root()
        .find_map(|s| s.extensions().get::<RunLabel>().cloned())
}

/// `2026-11-29T05:10:42.123456Z  INFO [nightly#42] message key=value`
struct Human;

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        if writer.has_ansi_escapes() {
            let color = match level {
                tracing::Level::ERROR => "31",
                tracing::Level::WARN => "33",
                tracing::Level::INFO => "32",
                tracing::Level::DEBUG => "34",
                tracing::Level::TRACE => "35",
            };
            write!(
                writer,
                "\x1b[2m{time}\x1b[0m \x1b[{color}m{level:>5}\x1b[0m "
            )?;
        } else {
            write!(writer, "{time} {level:>5} ")?;
        }
        if let Some(l) = label_of(ctx) {
            write!(writer, "[{}#{}] ", l.job, l.run)?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The JSON formatter's object with `job` and `run` added inside a `job_run` span.
struct JsonWithRun<F>(F);

impl<S, N, F> FormatEvent<S, N> for JsonWithRun<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(label) = label_of(ctx) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut buf = String::new();
        self.0.format_event(ctx, Writer::new(&mut buf), event)?;
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(buf.trim_end()) {
            Ok(mut obj) => {
                obj.insert("job".into(), label.job.into());
                obj.insert("run".into(), label.run.into());
                writeln!(writer, "{}", serde_json::Value::Object(obj))
            }
            Err(_) => writer.write_str(&buf),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_cannot_forge_a_line() {
        let forged = "deleted a.log\n2026-11-29T00:00:00Z  INFO run ok\r\n";
        assert_eq!(
            super::defang(forged),
            "deleted a.log\n    2026-11-29T00:00:00Z  INFO run ok\\r\n"
        );
    }
}
