//! `import "x" as y;` resolution, confined to the script's folder and the stdlib folder.
//!
//! A bare module name (`import "backup"`) is looked up in the stdlib folder, then beside the
//! importing file, then in the script's folder; `./x` and `../x` only beside the importing file. The file found is
//! canonicalized and must still lie inside one of the roots, so neither `../` nor a symlink can
//! pull code in from elsewhere. Every module file resolved is recorded, so the daemon knows
//! which scripts to recompile when a module changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared, AST};

pub struct ScriptResolver {
    roots: Vec<PathBuf>,
    stdlib: Option<PathBuf>,
    cache: Mutex<HashMap<PathBuf, Shared<Module>>>,
    deps: Mutex<Vec<PathBuf>>,
}

impl ScriptResolver {
    pub fn new(script_dir: &Path, stdlib_dir: Option<&Path>) -> Self {
        let mut roots = Vec::new();
        for r in [Some(script_dir), stdlib_dir].into_iter().flatten() {
            if let Ok(c) = r.canonicalize() {
                if !roots.contains(&c) {
                    roots.push(c);
                }
            }
        }
        let stdlib = stdlib_dir.and_then(|d| d.canonicalize().ok());
        ScriptResolver {
            stdlib,
            roots,
            cache: Mutex::new(HashMap::new()),
            deps: Mutex::new(Vec::new()),
        }
    }

    /// Module files resolved so far.
    pub fn dependencies(&self) -> Vec<PathBuf> {
        crate::sync::lock(&self.deps).clone()
    }

    /// Find the file for `path` as imported from `source` (the importing file, if known).
    pub fn locate(&self, source: Option<&str>, path: &str) -> Result<PathBuf, String> {
        if path.is_empty() || Path::new(path).is_absolute() {
            return Err(format!(
                "module path {path:?} must be relative (a name like \"backup\" or \"lib/util\")"
            ));
        }
        let file = if path.ends_with(".rhai") {
            path.to_string()
        } else {
            format!("{path}.rhai")
        };
        // "./x" and "../x" are the importing file's neighbours; a bare name is a stdlib module
        // first (so scripts/logs.rhai can `import "logs"` and get stdlib/logs.rhai), then a file
        // beside the importer or the script.
        let importer_dir = source
            .and_then(|src| Path::new(src).parent().and_then(|p| p.canonicalize().ok()))
            .filter(|parent| self.roots.iter().any(|r| parent.starts_with(r)));
        let relative = path.starts_with("./") || path.starts_with("../");
        let mut search: Vec<PathBuf> = Vec::new();
        if relative {
            search.extend(importer_dir.clone().or_else(|| self.roots.first().cloned()));
        } else {
            search.extend(self.stdlib.clone());
            search.extend(importer_dir);
            search.extend(self.roots.iter().cloned());
        }
        // A file never imports itself: scripts/cleanup.rhai importing "cleanup" means the stdlib
        // module of that name, not the script.
        let importer = source.and_then(|s| Path::new(s).canonicalize().ok());
        for dir in &search {
            let candidate = dir.join(&file);
            if let Ok(real) = candidate.canonicalize() {
                if importer.as_ref() == Some(&real) {
                    continue;
                }
                if self.roots.iter().any(|r| real.starts_with(r)) {
                    return Ok(real);
                }
                return Err(format!(
                    "module {path:?} resolves to {} which is outside the script and stdlib folders",
                    real.display()
                ));
            }
        }
        let looked: Vec<String> = search.iter().map(|d| d.display().to_string()).collect();
        Err(format!(
            "module {path:?} not found (looked for {file} in {})",
            looked.join(", ")
        ))
    }

    fn record(&self, p: &Path) {
        let mut deps = crate::sync::lock(&self.deps);
        if !deps.iter().any(|d| d == p) {
            deps.push(p.to_path_buf());
        }
    }
}

/// Compile a file, tagging the AST with its path so errors name it.
pub fn compile_file(engine: &Engine, path: &Path) -> Result<AST, Box<EvalAltResult>> {
    let text = crate::engine::read_script(path)?;
    let mut ast = engine.compile(&text).map_err(Box::<EvalAltResult>::from)?;
    ast.set_source(path.to_string_lossy().to_string());
    Ok(ast)
}

impl ModuleResolver for ScriptResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let file = self
            .locate(source, path)
            .map_err(|msg| Box::new(EvalAltResult::ErrorRuntime(msg.into(), pos)))?;
        if let Some(m) = crate::sync::lock(&self.cache).get(&file) {
            return Ok(m.clone());
        }
        self.record(&file);
        let shown = file.to_string_lossy().to_string();
        let ast = compile_file(engine, &file)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(shown.clone(), e, pos)))?;
        let mut module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(shown.clone(), e, pos)))?;
        module.build_index();
        let shared: Shared<Module> = module.into();
        crate::sync::lock(&self.cache).insert(file, shared.clone());
        Ok(shared)
    }
}

/// Find the stdlib folder: explicit, else beside the binary (an install puts it in
/// `../share/mtn/stdlib`), else in the source repository (a `cargo build` binary).
pub fn find_stdlib(explicit: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p);
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let candidates = [
        dir.join("stdlib"),
        dir.join("../share/mtn/stdlib"),
        dir.join("../../stdlib"),
        dir.join("../../../stdlib"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("stdlib"),
    ];
    candidates.into_iter().find(|c| c.is_dir())
}
