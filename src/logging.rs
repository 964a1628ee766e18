//! Log output: human lines or JSON objects on stderr, every byte passed through the redactor.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

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

/// Install the global subscriber. `verbosity`: -1 quiet, 0 normal, 1+ verbose.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True when logs are JSON lines (so events carry their fields rather than prose).
pub fn is_json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn init(format: LogFormat, verbosity: i8) {
    use std::io::IsTerminal;
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
    // Host-call events are the JSON log's backbone; in human mode they are noise unless -v.
    // The libraries' own debug output is noise to an operator reading a run's log.
    const QUIET_DEPS: &str =
        "hyper=warn,reqwest=warn,rustls=warn,mongodb=warn,object_store=warn,h2=warn,tokio_postgres=warn";
    let directives = match (format, verbosity) {
        (LogFormat::Json, v) if v >= 0 => format!("{base},mtn::host_call=debug,mtn::run=info"),
        // -q: warnings and errors only, without the run summary (cron mails stay empty on success).
        (_, v) if v < 0 => format!("{base},{QUIET_DEPS}"),
        _ => format!("{base},mtn::run=info,{QUIET_DEPS}"),
    };
    let filter = std::env::var("MTN_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(directives));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr);
    let _ = match format {
        LogFormat::Human => builder
            .with_target(false)
            .with_ansi(io::stderr().is_terminal())
            .compact()
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
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
