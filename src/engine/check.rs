//! Static checks behind `mtn check`, and run by `mtn run` and the daemon before anything runs:
//! syntax, imports, calls of functions that do not exist, and unknown keys in literal option maps.
//!
//! Rhai resolves function calls at run time, so a typo like `dump_bd(...)` would only fail when
//! that line runs — perhaps at 2 AM, after the backup it was meant to take. The checker walks
//! the compiled AST and reports every call whose name is neither a host function, a Rhai
//! built-in, nor a function defined in the script or the module it names; and every key of a
//! literal map passed as options that the function does not accept (host functions: the keys of
//! the serde structs that decode them, see `host::options`; stdlib functions: the list given
//! to their `check_options(...)` call).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rhai::{ASTNode, Engine, Expr, Position, Stmt, AST};

use crate::ctx::RunCtx;
use crate::engine::error::{render_at, render_parse};
use crate::engine::resolver::ScriptResolver;

/// Rhai keywords that look like calls but are not registered functions.
const KEYWORD_CALLS: &[&str] = &[
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "type_of",
    "print",
    "debug",
    "this",
    "global",
    "eval",
];

/// What the checker knows about an imported module.
struct ModuleInfo {
    /// Public function names.
    fns: HashSet<String>,
    /// Function name → the option keys it accepts (from its `check_options` call).
    options: HashMap<String, Vec<String>>,
}

/// A literal option map in a call: its keys with their positions.
type LiteralKeys = Vec<(String, Position)>;

/// The literal maps inside a literal map, by the key that holds them (`policy: #{ ... }`).
type NestedKeys = Vec<(String, LiteralKeys)>;

/// A call with literal maps among its arguments: (function, namespace, argument count, the
/// literal maps by argument index with the maps nested in them).
type CallWithMaps = (
    String,
    Option<String>,
    usize,
    Vec<(usize, LiteralKeys, NestedKeys)>,
);

pub struct Checker<'a> {
    engine: &'a Engine,
    ctx: &'a RunCtx,
    resolver: ScriptResolver,
    known: HashSet<String>,
    /// Host function (name, argument count) → parameter names.
    host_params: HashMap<(String, usize), Vec<String>>,
    visited: HashSet<PathBuf>,
    pub problems: Vec<String>,
}

impl<'a> Checker<'a> {
    pub fn new(engine: &'a Engine, ctx: &'a RunCtx) -> Self {
        let mut known: HashSet<String> = engine
            .gen_fn_signatures(true)
            .iter()
            .filter_map(|s| s.split('(').next())
            .map(|n| n.rsplit("::").next().unwrap_or(n).trim().to_string())
            .collect();
        known.extend(KEYWORD_CALLS.iter().map(|s| s.to_string()));
        let host_params = crate::host::registry::host_functions(engine)
            .into_iter()
            .map(|f| {
                let names: Vec<String> = f
                    .params
                    .iter()
                    .map(|p| p.split(':').next().unwrap_or(p).trim().to_string())
                    .collect();
                ((f.name, names.len()), names)
            })
            .collect();
        Checker {
            engine,
            ctx,
            resolver: ScriptResolver::new(&ctx.script_dir, ctx.stdlib_dir.as_deref()),
            known,
            host_params,
            visited: HashSet::new(),
            problems: Vec::new(),
        }
    }

    /// Check a script file (and every module it imports). Returns the AST when it compiled.
    pub fn check_script(&mut self, path: &Path) -> Option<AST> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.problems
                    .push(format!("error: cannot read {}: {e}\n", path.display()));
                return None;
            }
        };
        let scope = crate::engine::initial_scope(self.ctx);
        match self.engine.compile_with_scope(&scope, &text) {
            Ok(ast) => {
                self.check_ast(&ast, path);
                Some(ast)
            }
            Err(e) => {
                self.problems.push(render_parse(&e, path));
                for later in later_syntax_errors(self.engine, &scope, &text, &e) {
                    self.problems.push(render_parse(&later, path));
                }
                None
            }
        }
    }

    fn check_module(&mut self, file: &Path) -> Option<AST> {
        let text = std::fs::read_to_string(file).ok()?;
        match self.engine.compile(&text) {
            Ok(ast) => {
                if self.visited.insert(file.to_path_buf()) {
                    self.check_ast(&ast, file);
                }
                Some(ast)
            }
            Err(e) => {
                if self.visited.insert(file.to_path_buf()) {
                    self.problems.push(render_parse(&e, file));
                }
                None
            }
        }
    }

    fn check_ast(&mut self, ast: &AST, file: &Path) {
        // Imports first: alias → the module's public function names.
        let mut imports: Vec<(String, String, Position)> = Vec::new();
        ast.walk(&mut |nodes: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Import(x, pos))) = nodes.last() {
                if let Expr::StringConstant(path, _) = &x.0 {
                    imports.push((path.to_string(), x.1.name.to_string(), *pos));
                }
            }
            true
        });
        let mut modules: HashMap<String, Option<ModuleInfo>> = HashMap::new();
        for (path, alias, pos) in imports {
            let source = file.to_string_lossy().to_string();
            match self.resolver.locate(Some(&source), &path) {
                Ok(module_file) => {
                    let info = self.check_module(&module_file).map(|m| ModuleInfo {
                        fns: m
                            .iter_functions()
                            .filter(|f| f.access != rhai::FnAccess::Private)
                            .map(|f| f.name.to_string())
                            .collect(),
                        options: declared_options(&m),
                    });
                    modules.insert(alias, info);
                }
                Err(msg) => {
                    self.problems.push(render_at(&msg, file, pos, None));
                    modules.insert(alias, None);
                }
            }
        }

        let local: HashSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
        let mut calls: Vec<(String, Option<String>, Position)> = Vec::new();
        // (function, namespace, argument count, literal option maps by argument index)
        let mut literal_maps: Vec<CallWithMaps> = Vec::new();
        ast.walk(&mut |nodes: &[ASTNode]| {
            match nodes.last() {
                Some(ASTNode::Expr(Expr::FnCall(x, pos)))
                | Some(ASTNode::Stmt(Stmt::FnCall(x, pos)))
                    if x.op_token.is_none() =>
                {
                    let ns = if x.namespace.is_empty() {
                        None
                    } else {
                        Some(x.namespace.root().to_string())
                    };
                    let maps: Vec<(usize, LiteralKeys, NestedKeys)> = x
                        .args
                        .iter()
                        .enumerate()
                        .filter_map(|(i, a)| literal_keys(a).map(|k| (i, k, nested_keys(a))))
                        .collect();
                    if !maps.is_empty() {
                        literal_maps.push((x.name.to_string(), ns.clone(), x.args.len(), maps));
                    }
                    calls.push((x.name.to_string(), ns, *pos));
                }
                Some(ASTNode::Expr(Expr::MethodCall(x, pos))) => {
                    calls.push((x.name.to_string(), None, *pos));
                }
                _ => {}
            }
            true
        });
        for (name, ns, pos) in calls {
            if !name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
            {
                continue; // operators
            }
            match ns {
                None => {
                    if self.known.contains(&name) || local.contains(&name) {
                        continue;
                    }
                    let candidates = self.known.iter().chain(local.iter());
                    let help = closest(&name, candidates).map(|c| format!("a function with a similar name exists: `{c}`"));
                    self.problems.push(render_at(
                        &format!("function `{name}` not found"),
                        file,
                        pos,
                        help.as_deref(),
                    ));
                }
                Some(alias) => match modules.get(&alias) {
                    Some(Some(ModuleInfo { fns, .. })) => {
                        if !fns.contains(&name) {
                            let help = closest(&name, fns.iter()).map(|c| format!("a function with a similar name exists: `{alias}::{c}`"));
                            self.problems.push(render_at(
                                &format!("function `{alias}::{name}` not found in module `{alias}`"),
                                file,
                                pos,
                                help.as_deref(),
                            ));
                        }
                    }
                    Some(None) => {} // import already reported
                    None => self.problems.push(render_at(
                        &format!("module `{alias}` is not imported (add `import \"{alias}\" as {alias};`)"),
                        file,
                        pos,
                        None,
                    )),
                },
            }
        }
        for (name, ns, nargs, maps) in literal_maps {
            let (function, allowed): (String, Vec<String>) = match &ns {
                None if local.contains(&name) => continue,
                None => {
                    let Some(params) = self.host_params.get(&(name.clone(), nargs)).cloned() else {
                        continue;
                    };
                    for (i, keys, nested) in &maps {
                        let Some(param) = params.get(*i) else {
                            continue;
                        };
                        if let Some(allowed) = crate::host::options::allowed_keys(&name, param) {
                            let allowed: Vec<String> =
                                allowed.iter().map(|s| s.to_string()).collect();
                            self.check_keys(&name, keys, &allowed, file);
                        }
                        for (key, inner) in nested {
                            if let Some(allowed) =
                                crate::host::options::nested_keys(&name, param, key)
                            {
                                let allowed: Vec<String> =
                                    allowed.iter().map(|s| s.to_string()).collect();
                                self.check_keys(&name, inner, &allowed, file);
                            }
                        }
                    }
                    continue;
                }
                Some(alias) => match modules.get(alias) {
                    Some(Some(info)) => match info.options.get(&name) {
                        Some(keys) => (format!("{alias}::{name}"), keys.clone()),
                        None => continue,
                    },
                    _ => continue,
                },
            };
            // A stdlib function checks its one options map: every literal map argument.
            for (_, keys, _) in &maps {
                self.check_keys(&function, keys, &allowed, file);
            }
        }
    }
}

impl Checker<'_> {
    fn check_keys(&mut self, function: &str, keys: &LiteralKeys, allowed: &[String], file: &Path) {
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        for (key, pos) in keys {
            if !allowed.contains(&key.as_str()) {
                let msg = crate::host::options::unknown_option(function, key, &allowed);
                self.problems.push(render_at(&msg, file, *pos, None));
            }
        }
    }
}

/// The literal maps held by the keys of a literal map (`#{ policy: #{ keep_daily: 7 } }`).
fn nested_keys(e: &Expr) -> NestedKeys {
    match e {
        Expr::Map(x, _) => {
            x.0.iter()
                .filter_map(|(ident, v)| literal_keys(v).map(|k| (ident.name.to_string(), k)))
                .collect()
        }
        Expr::DynamicConstant(v, pos) => v
            .read_lock::<rhai::Map>()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        v.read_lock::<rhai::Map>().map(|inner| {
                            (
                                k.to_string(),
                                inner.keys().map(|ik| (ik.to_string(), *pos)).collect(),
                            )
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The keys of a literal map (`#{ a: 1 }`, or a map the optimizer folded into a constant).
fn literal_keys(e: &Expr) -> Option<LiteralKeys> {
    match e {
        Expr::Map(x, _) => Some(
            x.0.iter()
                .map(|(ident, _)| (ident.name.to_string(), ident.pos))
                .collect(),
        ),
        Expr::DynamicConstant(v, pos) => v
            .read_lock::<rhai::Map>()
            .map(|m| m.keys().map(|k| (k.to_string(), *pos)).collect()),
        _ => None,
    }
}

/// `check_options("backup::run", o, ["url", "dir", ...])` calls in a module: the stdlib's way
/// of declaring (and, at run time, enforcing) the keys each function's options map accepts.
fn declared_options(ast: &AST) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    ast.walk(&mut |nodes: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::FnCall(x, _)) | ASTNode::Stmt(Stmt::FnCall(x, _))) =
            nodes.last()
        {
            if x.name.as_str() == "check_options" && x.args.len() == 3 {
                let name = match &x.args[0] {
                    Expr::StringConstant(s, _) => s.to_string(),
                    _ => return true,
                };
                let keys = match &x.args[2] {
                    Expr::Array(items, _) => items
                        .iter()
                        .filter_map(|i| match i {
                            Expr::StringConstant(s, _) => Some(s.to_string()),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                    Expr::DynamicConstant(v, _) => v
                        .read_lock::<rhai::Array>()
                        .map(|a| a.iter().map(|k| k.to_string()).collect())
                        .unwrap_or_default(),
                    _ => return true,
                };
                let function = name.rsplit("::").next().unwrap_or(&name).to_string();
                out.insert(function, keys);
            }
        }
        true
    });
    out
}

/// Rhai's parser stops at the first syntax error. To report the others in one `mtn check`, blank
/// the offending line and parse again, keeping only errors further down the file (so one mistake
/// is never reported twice) and stopping at an end-of-input error (an unclosed block makes every
/// later line look wrong; the first error already points at it).
fn later_syntax_errors(
    engine: &Engine,
    scope: &rhai::Scope,
    text: &str,
    first: &rhai::ParseError,
) -> Vec<rhai::ParseError> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut out = Vec::new();
    let mut last = first.position().line().unwrap_or(0);
    if is_end_of_input(&lines, first.position()) {
        return out;
    }
    for _ in 0..20 {
        if last == 0 || last > lines.len() {
            break;
        }
        lines[last - 1] = String::new();
        match engine.compile_with_scope(scope, lines.join("\n")) {
            Ok(_) => break,
            Err(e) => match e.position().line() {
                Some(l) if l > last && !is_end_of_input(&lines, e.position()) => {
                    out.push(e);
                    last = l;
                }
                _ => break,
            },
        }
    }
    out
}

/// True when `pos` lies past the last character of the (remaining) source.
fn is_end_of_input(lines: &[String], pos: rhai::Position) -> bool {
    let Some(line) = pos.line() else { return true };
    let last = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    line > last
        || (line == last
            && pos.position().unwrap_or(0) > lines[last - 1].trim_end().chars().count())
}

fn closest<'b>(name: &str, candidates: impl Iterator<Item = &'b String>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.clone())
}
