//! Jobs from `mtn.toml`: their parsed settings, and compiling their scripts into self-contained
//! ASTs (imported modules embedded) together with the list of files they depend on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local};
use rhai::{ASTNode, Engine, Expr, Map, Stmt, AST};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use crate::config::{state_dir, Config, JobConfig, Overlap, StateDefault};
use crate::cron::JobTz;
use crate::ctx::{Limits, LogTail, RunCtx};
use crate::engine::resolver::ScriptResolver;
use crate::policy::{Policy, PolicyConfig};
use crate::units::parse_duration;

/// Lines of a run's log kept in its history entry.
pub const LOG_TAIL_LINES: usize = 40;

/// Settings shared by every job, from the top of mtn.toml.
#[derive(Clone)]
pub struct Settings {
    pub base: PathBuf,
    pub policy: Policy,
    pub limits: Limits,
    pub stdlib_dir: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub shutdown_grace: Duration,
    /// This host's name in the fleet and in `run.host` (`[fleet] host_id`, else the host name).
    pub host_id: String,
    /// `[fleet]`, which makes jobs `once` by default.
    pub fleet: Option<crate::daemon::fleet::FleetConfig>,
}

impl Settings {
    /// `state_flag`: `--state-dir` / `MTN_STATE_DIR`, which beat the config (see [`state_dir`]).
    pub fn from_config(cfg: &Config, config_path: &Path, state_flag: Option<&Path>) -> Settings {
        let base = crate::policy::absolute(&Config::base_dir(config_path));
        let stdlib = cfg.stdlib.as_ref().map(|s| base.join(s));
        Settings {
            policy: Policy::new(&cfg.policy, &base),
            limits: cfg.limits.clone(),
            stdlib_dir: crate::engine::resolver::find_stdlib(
                stdlib.or_else(|| std::env::var_os("MTN_STDLIB").map(PathBuf::from)),
            ),
            state_dir: state_dir(
                state_flag,
                cfg.state_dir.as_deref(),
                &base,
                StateDefault::Service,
            ),
            shutdown_grace: cfg
                .shutdown_grace
                .as_deref()
                .and_then(|g| parse_duration(g).ok())
                .unwrap_or(Duration::from_secs(30)),
            host_id: cfg
                .fleet
                .as_ref()
                .map(|f| f.host())
                .unwrap_or_else(crate::host::core::hostname),
            fleet: cfg.fleet.clone(),
            base,
        }
    }
}

/// A job's settings, checked and resolved.
pub struct JobSpec {
    pub cfg: JobConfig,
    pub script: PathBuf,
    pub cron: crate::cron::Schedule,
    pub tz: JobTz,
    pub timeout: Option<Duration>,
    pub retry_delay: Duration,
    pub jitter: Option<Duration>,
    pub notify_every: Option<Duration>,
    pub overlap: Overlap,
    pub policy: Policy,
    pub vars: Map,
    /// `once` or `each` with `[fleet]`; none without.
    pub fleet: Option<crate::daemon::fleet::FleetMode>,
}

impl JobSpec {
    pub fn new(cfg: &JobConfig, settings: &Settings) -> Result<JobSpec, String> {
        let dur = |v: &Option<String>| -> Result<Option<Duration>, String> {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| e.message))
                .transpose()
        };
        let mut vars = Map::new();
        for (k, v) in &cfg.vars {
            let d = rhai::serde::to_dynamic(v)
                .map_err(|e| format!("job {:?}: vars.{k}: {e}", cfg.name))?;
            vars.insert(k.as_str().into(), d);
        }
        let job_policy = PolicyConfig {
            allow_paths: cfg.allow_paths.clone(),
            allow_exec: cfg.allow_exec.clone(),
            allow_hosts: cfg.allow_hosts.clone(),
        };
        Ok(JobSpec {
            script: crate::policy::normalize(&settings.base.join(&cfg.script)),
            cron: cfg.cron()?,
            tz: cfg.tz()?,
            timeout: dur(&cfg.timeout)?,
            retry_delay: dur(&cfg.retry_delay)?.unwrap_or(Duration::from_secs(10)),
            jitter: dur(&cfg.jitter)?,
            notify_every: dur(&cfg.notify_every)?,
            overlap: cfg.overlap_mode()?,
            policy: settings
                .policy
                .narrowed(&job_policy, &settings.base)
                .map_err(|e| format!("job {:?}: {e}", cfg.name))?,
            vars,
            fleet: crate::config::fleet::mode(settings.fleet.as_ref(), cfg),
            cfg: cfg.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Local>) -> Option<DateTime<Local>> {
        match self.tz {
            JobTz::Local => self.cron.next_after(&t),
            JobTz::Named(tz) => self
                .cron
                .next_after(&t.with_timezone(&tz))
                .map(|n| n.with_timezone(&Local)),
        }
    }

    /// A fresh run context for one run of this job.
    pub fn run_ctx(&self, handle: Handle, settings: &Settings) -> RunCtx {
        let mut ctx = RunCtx::new(handle, self.script.clone(), self.policy.clone());
        ctx.dry_run = self.cfg.dry_run;
        ctx.vars = self.vars.clone();
        ctx.limits = settings.limits.clone();
        ctx.stdlib_dir = settings.stdlib_dir.clone();
        ctx.state_dir = settings.state_dir.clone();
        ctx.job = Some(self.cfg.name.clone());
        ctx.log_tail = LogTail::new(LOG_TAIL_LINES);
        // Checked when the config was loaded.
        let _ = ctx.monitor.set(self.cfg.monitor());
        ctx
    }
}

/// One compiled version of a job's script.
pub struct Compiled {
    pub ast: Arc<AST>,
    /// The script and every module file it imports (directly or not).
    pub files: Vec<PathBuf>,
    /// Short content hash of those files, to tell versions apart.
    pub hash: String,
    pub loaded_at: DateTime<Local>,
}

/// Compile a job's script with its modules embedded, so a run keeps the code it started with
/// even if a module is edited (or broken) while it runs. Errors are rendered with file:line:col.
pub fn compile(spec: &JobSpec, settings: &Settings, handle: Handle) -> Result<Compiled, String> {
    let ctx = Arc::new(spec.run_ctx(handle, settings));
    let engine = crate::engine::build(ctx.clone());
    // A script swapped for a symlink by another user (to /etc/shadow, say) is not read: its
    // lines would be shown in the compile error, in the log and on /status.
    if !crate::atomic::symlinks_trusted(&crate::policy::absolute(&spec.script)) {
        return Err(format!(
            "error: script {} is (or lies behind) a symlink owned by another user; refusing to read it\n",
            spec.script.display()
        ));
    }
    let text = crate::engine::read_script(&spec.script)
        .map_err(|e| crate::engine::error::render(&e, &spec.script).text)?;
    let scope = crate::engine::initial_scope(&ctx);
    let mut ast = engine
        .compile_into_self_contained(&scope, &text)
        .map_err(|e| crate::engine::error::render(&e, &spec.script).text)?;
    // An editor's truncated save (or an emptied file) compiles to nothing: running it would
    // report success for a job that does no work.
    if ast.statements().is_empty() && ast.iter_functions().next().is_none() {
        return Err(format!(
            "error: script {} is empty (no statements): a job that does nothing would report success\n",
            spec.script.display()
        ));
    }
    ast.set_source(spec.script.to_string_lossy().to_string());
    // The same static check as `mtn run`: a version with an unknown function or option key is
    // refused like a syntax error (a reload keeps the previous version).
    let mut checker = crate::engine::check::Checker::new(&engine, &ctx);
    checker.check_script(&spec.script);
    if !checker.problems.is_empty() {
        return Err(checker.problems.concat());
    }

    let resolver = ScriptResolver::new(&ctx.script_dir, ctx.stdlib_dir.as_deref());
    let mut files = vec![spec.script.clone()];
    let mut seen = HashSet::new();
    collect_modules(
        &engine,
        &resolver,
        &spec.script,
        &ast,
        &mut files,
        &mut seen,
    );

    let mut hasher = Sha256::new();
    for f in &files {
        hasher.update(f.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(f).unwrap_or_default());
    }
    let hash = hex::encode(&hasher.finalize()[..6]);
    Ok(Compiled {
        ast: Arc::new(ast),
        files,
        hash,
        loaded_at: Local::now(),
    })
}

/// Every module file imported by `ast` (found the way the resolver finds them), recursively.
fn collect_modules(
    engine: &Engine,
    resolver: &ScriptResolver,
    file: &Path,
    ast: &AST,
    out: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
) {
    let mut imports = Vec::new();
    ast.walk(&mut |nodes: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(x, _))) = nodes.last() {
            if let Expr::StringConstant(path, _) = &x.0 {
                imports.push(path.to_string());
            }
        }
        true
    });
    let source = file.to_string_lossy().to_string();
    for path in imports {
        let Ok(module) = resolver.locate(Some(&source), &path) else {
            continue;
        };
        if !seen.insert(module.clone()) {
            continue;
        }
        out.push(module.clone());
        if let Ok(text) = std::fs::read_to_string(&module) {
            if let Ok(m) = engine.compile(&text) {
                collect_modules(engine, resolver, &module, &m, out, seen);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(schedule: &str, tz: Option<&str>) -> JobSpec {
        let cfg = JobConfig {
            name: "t".into(),
            script: "t.rhai".into(),
            schedule: schedule.into(),
            timezone: tz.map(String::from),
            ..Default::default()
        };
        let settings = Settings::from_config(&Config::default(), Path::new("mtn.toml"), None);
        JobSpec::new(&cfg, &settings).unwrap()
    }

    fn at(s: &str) -> DateTime<Local> {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Local)
    }

    #[test]
    fn schedules_honour_time_zones_and_seconds() {
        let s = spec("0 2 * * *", Some("Asia/Tokyo"));
        let next = s.next_after(at("2024-01-01T00:00:00Z")).unwrap();
        assert_eq!(next, at("2024-01-01T17:00:00Z"));
        let s = spec("*/10 * * * * *", None);
        let next = s.next_after(at("2024-01-01T00:00:05Z")).unwrap();
        assert_eq!(next, at("2024-01-01T00:00:10Z"));
        // Strictly after: a fire time is never returned twice.
        assert_eq!(s.next_after(next).unwrap(), at("2024-01-01T00:00:20Z"));
        let s = spec("@daily", Some("UTC"));
        assert_eq!(
            s.next_after(at("2024-03-05T10:00:00Z")).unwrap(),
            at("2024-03-06T00:00:00Z")
        );
    }
}
