//! Progress of long transfers (dump, restore, upload, download, compress) on a terminal.
//!
//! Only `mtn run` turns it on, and only when stderr is a terminal, the log is human and not `-q`:
//! a cron mail, a log file, JSON logs and the daemon never see a progress bar. The bar is drawn
//! on stderr through indicatif (rate-limited, so a fast copy costs nothing) and erased when the
//! transfer ends; the log line that follows says what was done.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Called by `mtn run` once logging is set up: `human_log` and not quiet.
pub fn enable_if_terminal(human_log: bool, quiet: bool) {
    use std::io::IsTerminal;
    let on = human_log && !quiet && io::stderr().is_terminal();
    ENABLED.store(on, Ordering::Relaxed);
}

/// One transfer's bar; a no-op when progress is off. Dropping it erases the bar.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// `label`: what is moving ("dumping app.sql.gz"); `total`: bytes expected, when known.
    pub fn start(label: &str, total: Option<u64>) -> Progress {
        if !ENABLED.load(Ordering::Relaxed) {
            return Progress(None);
        }
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        // Decimal units, as in mtn's messages (`82.3 MB`).
        let template = if total.is_some() {
            "{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} {elapsed}"
        } else {
            "{msg} {spinner} {decimal_bytes} {decimal_bytes_per_sec} {elapsed}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    pub fn off() -> Progress {
        Progress(None)
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

/// A reader that moves a bar by the bytes read through it.
pub struct Reader<R> {
    inner: R,
    progress: Progress,
}

impl<R> Reader<R> {
    pub fn new(inner: R, progress: Progress) -> Self {
        Reader { inner, progress }
    }
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// A writer that moves a bar by the bytes written through it.
pub struct Writer<W> {
    inner: W,
    progress: Progress,
}

impl<W> Writer<W> {
    pub fn new(inner: W, progress: Progress) -> Self {
        Writer { inner, progress }
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
