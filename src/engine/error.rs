//! Rendering script errors the way rustc does:
//!
//! ```text
//! error: dump_db: connection refused (network)
//!   --> scripts/nightly.rhai:12:5
//!    |
//! 12 |     let r = dump_db(url);
//!    |             ^
//! ```
//!
//! Errors raised inside imported modules or script functions are unwrapped to the innermost
//! location, which is shown with that file's own path, followed by the call chain.

use std::path::Path;

use rhai::{EvalAltResult, Position};

use crate::redact::redact;

/// What kind of failure ended a run; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Script,
    Timeout,
    Interrupted,
}

pub struct Rendered {
    pub text: String,
    pub failure: Failure,
    /// The short message (first line), for summaries and run history.
    pub message: String,
}

struct Frame {
    file: Option<String>,
    pos: Position,
    note: Option<String>,
}

/// The message of the innermost error, without location.
fn message_of(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(v, _) => {
            if let Some(map) = v.read_lock::<rhai::Map>() {
                let get = |k: &str| map.get(k).map(|v| v.to_string()).unwrap_or_default();
                let func = get("function");
                let msg = get("message");
                let kind = get("kind");
                let msg = if kind != "failed" && !func.is_empty() && !msg.starts_with(&format!("{func}:")) {
                    format!("{func}: {msg}")
                } else {
                    msg
                };
                if kind.is_empty() || kind == "failed" {
                    msg
                } else {
                    format!("{msg} [{kind}]")
                }
            } else {
                v.to_string()
            }
        }
        EvalAltResult::ErrorTerminated(v, _) => {
            let s = v.to_string();
            if s.is_empty() {
                "script terminated".to_string()
            } else {
                s
            }
        }
        EvalAltResult::ErrorTooManyOperations(_) => {
            "script exceeded its operation limit (an endless loop?); raise it with --max-operations or [limits] max_operations".to_string()
        }
        EvalAltResult::ErrorParsing(p, _) => format!("syntax error: {p}"),
        other => {
            // Rhai's own text, minus its " (line X, position Y)" suffix which we render ourselves.
            let s = other.to_string();
            match s.find(" (line ") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

fn frames(err: &EvalAltResult, current_file: Option<String>, out: &mut Vec<Frame>) -> Failure {
    match err {
        EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
            out.push(Frame {
                file: current_file,
                pos: *pos,
                note: Some(format!("in call to function `{name}`")),
            });
            let next = if src.is_empty() {
                out.last().and_then(|f| f.file.clone())
            } else {
                Some(src.clone())
            };
            frames(inner, next, out)
        }
        EvalAltResult::ErrorInModule(name, inner, pos) => {
            out.push(Frame {
                file: current_file,
                pos: *pos,
                note: Some(format!("while loading module {name}")),
            });
            let next = if name.is_empty() {
                None
            } else {
                Some(name.clone())
            };
            frames(inner, next, out)
        }
        other => {
            out.push(Frame {
                file: current_file,
                pos: other.position(),
                note: None,
            });
            match other {
                EvalAltResult::ErrorTerminated(v, _) => {
                    let s = v.to_string();
                    if s.contains("timed out") {
                        Failure::Timeout
                    } else if s.contains("interrupt") || s.contains("cancel") {
                        Failure::Interrupted
                    } else {
                        Failure::Script
                    }
                }
                _ => Failure::Script,
            }
        }
    }
}

fn innermost(err: &EvalAltResult) -> &EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => innermost(inner),
        other => other,
    }
}

/// Render an error raised while compiling or running `script`.
pub fn render(err: &EvalAltResult, script: &Path) -> Rendered {
    render_with(err, script, None)
}

/// True when `file` lies inside the stdlib folder.
fn in_stdlib(file: Option<&str>, stdlib: Option<&Path>) -> bool {
    let (Some(file), Some(dir)) = (file, stdlib) else {
        return false;
    };
    let abs = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    abs(Path::new(file)).starts_with(abs(dir))
}

/// Like [`render`]; an error raised inside a stdlib module points first at the user's line that
/// called into the stdlib (what the user can change), then at the module line as a note.
pub fn render_with(err: &EvalAltResult, script: &Path, stdlib: Option<&Path>) -> Rendered {
    let mut chain = Vec::new();
    let failure = frames(err, Some(script.to_string_lossy().to_string()), &mut chain);
    let message = redact(&message_of(innermost(err)));
    let mut text = format!("error: {message}\n");
    // The innermost frame is where it happened; outer frames are the call chain. Inside the
    // stdlib, the deepest frame in the user's own files comes first.
    let primary = match chain.last() {
        Some(last) if in_stdlib(last.file.as_deref(), stdlib) => chain
            .iter()
            .rposition(|f| !in_stdlib(f.file.as_deref(), stdlib))
            .unwrap_or(chain.len() - 1),
        _ => chain.len().saturating_sub(1),
    };
    if let Some(f) = chain.get(primary) {
        text.push_str(&snippet(f.file.as_deref(), f.pos));
    }
    if primary + 1 < chain.len() {
        if let Some(last) = chain.last() {
            let loc = location(last.file.as_deref(), last.pos);
            text.push_str(&format!(" = note: raised in the stdlib at {loc}\n"));
        }
    }
    for (i, f) in chain.iter().enumerate().rev().skip(1) {
        if i == primary {
            continue;
        }
        if let Some(note) = &f.note {
            let loc = location(f.file.as_deref(), f.pos);
            text.push_str(&format!(" = note: {note} at {loc}\n"));
        }
    }
    Rendered {
        text: redact(&text),
        failure,
        message,
    }
}

/// Render a parse error of a file.
pub fn render_parse(err: &rhai::ParseError, file: &Path) -> String {
    let msg = redact(&format!("syntax error: {}", err.err_type()));
    format!(
        "error: {msg}\n{}",
        snippet(Some(&file.to_string_lossy()), err.position())
    )
}

/// A free-form error at a location (used by `mtn check`).
pub fn render_at(message: &str, file: &Path, pos: Position, help: Option<&str>) -> String {
    let mut s = format!(
        "error: {}\n{}",
        redact(message),
        snippet(Some(&file.to_string_lossy()), pos)
    );
    if let Some(h) = help {
        s.push_str(&format!(" = help: {h}\n"));
    }
    s
}

fn location(file: Option<&str>, pos: Position) -> String {
    let f = file.unwrap_or("<script>");
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{f}:{l}:{c}"),
        (Some(l), None) => format!("{f}:{l}"),
        _ => f.to_string(),
    }
}

fn snippet(file: Option<&str>, pos: Position) -> String {
    let width = pos.line().map(|l| l.to_string().len()).unwrap_or(1);
    let pad = " ".repeat(width);
    let mut s = format!("{pad}--> {}\n", location(file, pos));
    let (Some(line_no), Some(file)) = (pos.line(), file) else {
        return s;
    };
    let Ok(text) = std::fs::read_to_string(file) else {
        return s;
    };
    let Some(line) = text.lines().nth(line_no.saturating_sub(1)) else {
        return s;
    };
    let col = pos.position().unwrap_or(1).max(1);
    s.push_str(&format!(
        "{pad} |\n{line_no} | {line}\n{pad} | {}^\n",
        " ".repeat(col - 1)
    ));
    s
}
