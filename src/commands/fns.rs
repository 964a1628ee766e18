//! `mtn fns`: every host function, read from the engine's registration metadata.

use crate::commands::{exit, runtime};
use crate::engine::registry::{host_functions, FnInfo};

pub fn all_functions() -> Result<Vec<FnInfo>, String> {
    let rt = runtime().map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    let engine = crate::engine::metadata_engine(rt.handle().clone());
    Ok(host_functions(&engine))
}

pub fn run(word: Option<String>, json: bool, category: Option<String>) -> i32 {
    let fns = match all_functions() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let fns: Vec<FnInfo> = fns
        .into_iter()
        .filter(|f| category.as_ref().is_none_or(|c| &f.category == c))
        .filter(|f| word.as_deref().is_none_or(|w| mentions(f, w)))
        .collect();
    if fns.is_empty() {
        if let Some(w) = &word {
            eprintln!("no function matches {w:?} (try `mtn fns` for the full list)");
            return exit::FAILED;
        }
    }
    if json {
        match serde_json::to_string_pretty(&fns) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILED;
            }
        }
    } else {
        let mut last = String::new();
        for f in &fns {
            if f.category != last {
                if !last.is_empty() {
                    println!();
                }
                println!("[{}]", f.category);
                last = f.category.clone();
            }
            println!("  {:<60} {}", f.signature, f.summary);
        }
    }
    exit::OK
}

/// `mtn fns WORD`: the word in the name or the one-line summary, any case.
fn mentions(f: &FnInfo, word: &str) -> bool {
    let w = word.to_lowercase();
    f.name.to_lowercase().contains(&w) || f.summary.to_lowercase().contains(&w)
}
