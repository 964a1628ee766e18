//! Tests of the host functions as a built engine shows them (their docs, option maps, errors
//! and name collisions): they need the whole engine, so they live above the host layer.

use std::collections::{BTreeMap, BTreeSet};

use rhai::Dynamic;

use crate::host::options::{allowed_keys, FREE_FORM};
use crate::host::registry::host_functions;

/// Functions whose options map is required, so they have no arity without it.
const REQUIRED_OPTS: &[&str] = &["monitor"];

/// A parameter name that tells the reader nothing (`_x`, `arg1`, `p`, `x`). `f` is the
/// usual name of a closure parameter and stays allowed for `FnPtr`.
fn placeholder(name: &str, ty: &str) -> bool {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    name.is_empty()
        || name.starts_with('_')
        || matches!(stem, "arg" | "param" | "value" | "val" | "unnamed")
        || (name.chars().count() == 1 && !(name == "f" && ty == "FnPtr"))
}

#[test]
fn every_host_function_has_an_example_real_names_and_its_arity_without_options() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = super::metadata_engine(rt.handle().clone());
    let fns = host_functions(&engine);
    assert!(fns.len() > 100, "only {} host functions found", fns.len());
    let mut problems = Vec::new();
    for f in &fns {
        if !f.doc.contains("```rhai") {
            problems.push(format!("{}: no ```rhai example in its doc", f.signature));
        }
        for p in &f.params {
            let (name, ty) = p.split_once(": ").unwrap_or((p.as_str(), ""));
            if placeholder(name, ty) {
                problems.push(format!(
                    "{}: placeholder parameter name `{name}`",
                    f.signature
                ));
            }
        }
        let options_last = f
            .params
            .last()
            .is_some_and(|p| p == "opts: Map" || p == "options: Map");
        if options_last && !REQUIRED_OPTS.contains(&f.name.as_str()) {
            let without = &f.params[..f.params.len() - 1];
            if !fns.iter().any(|g| g.name == f.name && g.params == without) {
                problems.push(format!("{}: no arity without the options map", f.signature));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn placeholders_are_recognised() {
    for (name, ty) in [
        ("_x", "?"),
        ("arg1", "?"),
        ("p", "&str"),
        ("f", "&str"),
        ("", "?"),
    ] {
        assert!(placeholder(name, ty), "{name}: {ty}");
    }
    for (name, ty) in [("url", "&str"), ("f", "FnPtr"), ("path_or_glob", "&str")] {
        assert!(!placeholder(name, ty), "{name}: {ty}");
    }
}

/// Every option map a host function takes is either listed in `allowed_keys` (and its
/// structs can be probed) or declared free-form.
#[test]
fn every_option_map_is_known() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = super::metadata_engine(rt.handle().clone());
    let mut missing = Vec::new();
    for f in host_functions(&engine) {
        for p in &f.params {
            let Some((name, ty)) = p.split_once(':') else {
                continue;
            };
            if ty.trim() != "Map" {
                continue;
            }
            let key = (f.name.as_str(), name.trim());
            if FREE_FORM.contains(&key) {
                continue;
            }
            if allowed_keys(key.0, key.1).is_none_or(|k| k.is_empty()) {
                missing.push(format!("{}({})", key.0, key.1));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "option maps without allowed keys: {missing:?}"
    );
}

/// The wrapper is the one place a function's name goes on its error: the caught message has
/// none, the rendered one has it once.
#[test]
fn a_failing_call_is_named_once() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = super::metadata_engine(rt.handle().clone());
    for (args, caught, shown) in [
        (
            r#"#{ sortt: "name" }"#,
            "unknown option `sortt` (did you mean `sort`?)",
            "list: unknown option `sortt`",
        ),
        (
            r#"#{ sort: "colour" }"#,
            "unknown sort \"colour\"",
            "list: unknown sort \"colour\"",
        ),
    ] {
        let call = format!(r#"list(".", {args})"#);
        let message: String = engine
            .eval(&format!(
                "let m = \"\"; try {{ {call}; }} catch (e) {{ m = e.message; }} m"
            ))
            .unwrap();
        assert!(message.starts_with(caught), "{message}");
        let err = engine.eval::<Dynamic>(&call).unwrap_err();
        let rendered = super::error::render(&err, std::path::Path::new("t.rhai"));
        assert!(rendered.message.starts_with(shown), "{}", rendered.message);
        assert_eq!(
            rendered.message.matches("list:").count(),
            1,
            "{}",
            rendered.message
        );
    }
}

/// Every mtn host function whose name Rhai's standard library also uses must cover each of
/// Rhai's argument types with an exact overload, or Rhai's version runs instead of mtn's
/// (`log(1.5)` was Rhai's logarithm). A new collision fails here until it is handled.
#[test]
fn mtn_wins_every_builtin_collision() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mtn = super::metadata_engine(rt.handle().clone());
    let host = host_functions(&mtn);
    let host_names: BTreeSet<&str> = host.iter().map(|f| f.name.as_str()).collect();
    let plain = rhai::Engine::new();
    // Rhai's signatures: "log(x: f64, base: f64) -> f64" → name → [param types].
    let mut builtin: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for sig in plain.gen_fn_signatures(true) {
        let Some((name, rest)) = sig.split_once('(') else {
            continue;
        };
        let name = name.rsplit("::").next().unwrap_or(name).trim().to_string();
        if !host_names.contains(name.as_str()) {
            continue;
        }
        let params = rest.split(')').next().unwrap_or("");
        let types: Vec<String> = params
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.rsplit(':').next().unwrap_or(p).trim().to_string())
            .collect();
        builtin.entry(name).or_default().insert(types);
    }
    let names: Vec<&str> = builtin.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["log", "sleep"],
        "collisions changed: handle and list them"
    );
    for (name, sigs) in &builtin {
        for types in sigs {
            let covered = host.iter().any(|f| {
                &f.name == name
                    && f.params.len() == types.len()
                    && f.params.iter().zip(types).all(|(p, t)| {
                        let ours = p.rsplit(':').next().unwrap_or(p).trim();
                        ours == t
                            || (ours == "f64" && t.contains("f64"))
                            || (ours == "i64" && t.contains("i64"))
                    })
            });
            assert!(
                covered,
                "Rhai's {name}({}) is not overridden by mtn",
                types.join(", ")
            );
        }
    }
}
