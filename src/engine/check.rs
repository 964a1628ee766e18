//! Static checks behind `mtn check`: syntax, imports, and calls of functions that do not exist.
//!
//! Rhai resolves function calls at run time, so a typo like `dump_bd(...)` would only fail when
//! that line runs — perhaps at 2 AM, after the backup it was meant to take. `mtn check` walks
//! the compiled AST and reports every call whose name is neither a host function, a Rhai
//! built-in, nor a function defined in the script or the module it names.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rhai::{ASTNode, Engine, Expr, Position, Stmt, AST};

use crate::engine::ctx::RunCtx;
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

pub struct Checker<'a> {
    engine: &'a Engine,
    ctx: &'a RunCtx,
    resolver: ScriptResolver,
    known: HashSet<String>,
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
        Checker {
            engine,
            ctx,
            resolver: ScriptResolver::new(&ctx.script_dir, ctx.stdlib_dir.as_deref()),
            known,
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
        let mut modules: HashMap<String, Option<HashSet<String>>> = HashMap::new();
        for (path, alias, pos) in imports {
            let source = file.to_string_lossy().to_string();
            match self.resolver.locate(Some(&source), &path) {
                Ok(module_file) => {
                    let fns = self.check_module(&module_file).map(|m| {
                        m.iter_functions()
                            .filter(|f| f.access != rhai::FnAccess::Private)
                            .map(|f| f.name.to_string())
                            .collect::<HashSet<_>>()
                    });
                    modules.insert(alias, fns);
                }
                Err(msg) => {
                    self.problems.push(render_at(&msg, file, pos, None));
                    modules.insert(alias, None);
                }
            }
        }

        let local: HashSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
        let mut calls: Vec<(String, Option<String>, Position)> = Vec::new();
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
                    Some(Some(fns)) => {
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
    }
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
