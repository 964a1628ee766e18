//! `mtn fns`: every host function, read from the engine's registration metadata.

use crate::exit;
use crate::host::registry::{host_functions, FnInfo};

pub fn all_functions() -> Result<Vec<FnInfo>, exit::CommandError> {
    let rt = exit::runtime()?;
    let engine = crate::engine::metadata_engine(rt.handle().clone());
    Ok(host_functions(&engine))
}

pub fn run(word: Option<String>, json: bool, category: Option<String>) -> exit::Result {
    let fns = all_functions()?;
    let fns: Vec<FnInfo> = fns
        .into_iter()
        .filter(|f| category.as_ref().is_none_or(|c| &f.category == c))
        .filter(|f| word.as_deref().is_none_or(|w| mentions(f, w)))
        .collect();
    if fns.is_empty() {
        if let Some(w) = &word {
            return Err(exit::CommandError::failed(format!(
                "no function matches {w:?} (try `mtn fns` for the full list)"
            )));
        }
    }
    if json {
        match serde_json::to_string_pretty(&fns) {
            Ok(s) => println!("{s}"),
            Err(e) => return Err(exit::CommandError::failed(e.to_string())),
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
    Ok(exit::OK)
}

/// `mtn fns WORD`: the word in the name or the one-line summary, any case.
fn mentions(f: &FnInfo, word: &str) -> bool {
    let w = word.to_lowercase();
    f.name.to_lowercase().contains(&w) || f.summary.to_lowercase().contains(&w)
}
