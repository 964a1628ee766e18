//! Hot reload: watch the folders holding mtn.toml, the job scripts and the modules they import
//! (folders, not files, so an editor's write-temp-then-rename is seen), debounce, and recompile
//! what changed. A version that fails to compile is reported and the previous one keeps running.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::daemon::jobs::{compile, JobSpec, Settings};
use crate::daemon::scheduler::{Daemon, Job, JobState};
use crate::sync::{lock, read, write};

/// Quiet time after the last event before reloading: long enough to coalesce an editor's
/// burst of writes, short enough that a change is live well within a second.
const DEBOUNCE: Duration = Duration::from_millis(60);

/// The name a changed file is known by: canonical folder + file name (the file itself may
/// have just been replaced or not exist any more).
pub fn watch_key(p: &Path) -> PathBuf {
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or_else(|_| p.to_path_buf()),
        _ => p.to_path_buf(),
    }
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

pub struct Watcher {
    debouncer: Mutex<Debouncer>,
    watched: Mutex<BTreeSet<PathBuf>>,
}

impl Watcher {
    /// Start watching; changed paths arrive on the returned channel.
    pub fn start() -> Result<(Watcher, mpsc::UnboundedReceiver<Vec<PathBuf>>), String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| match res {
            Ok(events) => {
                let paths: Vec<PathBuf> = events
                    .into_iter()
                    .filter(|e| !e.kind.is_access())
                    .flat_map(|e| e.event.paths)
                    .collect();
                if !paths.is_empty() {
                    let _ = tx.send(paths);
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!(target: "mtn::daemon", "file watcher: {e}");
                }
            }
        })
        .map_err(|e| format!("cannot start the file watcher: {e}"))?;
        Ok((
            Watcher {
                debouncer: Mutex::new(debouncer),
                watched: Mutex::new(BTreeSet::new()),
            },
            rx,
        ))
    }

    /// Make sure the folder of every file in `files` is watched.
    pub fn watch_files(&self, files: impl IntoIterator<Item = PathBuf>) {
        let dirs: BTreeSet<PathBuf> = files
            .into_iter()
            .filter_map(|f| watch_key(&f).parent().map(Path::to_path_buf))
            .collect();
        let mut watched = lock(&self.watched);
        let mut deb = lock(&self.debouncer);
        for d in dirs {
            if watched.contains(&d) {
                continue;
            }
            match deb.watch(&d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(d);
                }
                Err(e) => {
                    tracing::warn!(target: "mtn::daemon", "cannot watch {}: {e}", d.display())
                }
            }
        }
    }
}

impl Daemon {
    /// Every file the daemon depends on: mtn.toml, scripts, modules.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config_path.clone()];
        for job in read(&self.jobs).values() {
            files.push(job.spec.script.clone());
            if let Some(c) = job.compiled() {
                files.extend(c.files.iter().cloned());
            }
        }
        files
    }

    /// Build a job from its config, compiling its script. `old` (same name, previous config)
    /// lends its state and, if the new script does not compile, its last good version.
    pub fn make_job(&self, spec: JobSpec, settings: &Settings, old: Option<&Arc<Job>>) -> Arc<Job> {
        let state = old
            .map(|o| o.state.clone())
            .unwrap_or_else(|| Arc::new(Mutex::new(JobState::default())));
        let job = Arc::new(Job {
            spec,
            script: Default::default(),
            state,
            ticker: Mutex::new(None),
        });
        let fallback = old.and_then(|o| o.compiled());
        self.compile_job(&job, settings, fallback);
        job
    }

    /// Compile a job's script; on failure keep `fallback` (the previous good version).
    fn compile_job(
        &self,
        job: &Arc<Job>,
        settings: &Settings,
        fallback: Option<Arc<crate::daemon::jobs::Compiled>>,
    ) {
        let name = job.spec.name();
        match compile(&job.spec, settings, self.handle.clone()) {
            Ok(c) => {
                let hash = c.hash.clone();
                let previous = write(&job.script).replace(Arc::new(c));
                if lock(&job.state).reload_error.take().is_some() {
                    tracing::info!(target: "mtn::daemon", "job {name}: script fixed, compiles again (version {hash})");
                }
                match (previous, fallback) {
                    (Some(p), _) | (None, Some(p)) if p.hash != hash => {
                        self.metrics.reload(name, true);
                        tracing::info!(target: "mtn::daemon", "job {name}: reloaded {} (version {hash})", job.spec.script.display());
                    }
                    (None, None) => {
                        tracing::debug!(target: "mtn::daemon", "job {name}: loaded {} (version {hash})", job.spec.script.display())
                    }
                    _ => {}
                }
            }
            Err(text) => {
                if read(&job.script).is_none() {
                    *write(&job.script) = fallback;
                }
                let keeping = read(&job.script)
                    .as_ref()
                    .map(|c| format!("keeping version {}", c.hash))
                    .unwrap_or_else(|| "no good version to run".into());
                self.metrics.reload(name, false);
                tracing::error!(target: "mtn::daemon", "job {name}: script does not compile ({keeping})\n{text}");
                lock(&job.state).reload_error = Some(text);
            }
        }
    }

    /// Load (or reload) mtn.toml. On error the running config stays and the error is reported.
    pub fn reload_config(self: &Arc<Self>) -> Result<(), String> {
        let cfg = match Config::load_checked(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                self.metrics.config_reload_error();
                tracing::error!(target: "mtn::daemon", "{e} (keeping the previous config)");
                *lock(&self.config_error) = Some(e.clone());
                return Err(e);
            }
        };
        let mut settings =
            Settings::from_config(&cfg, &self.config_path, self.state_flag.as_deref());
        self.pin_fleet(&mut settings);
        let mut specs = Vec::new();
        for jc in &cfg.jobs {
            match JobSpec::new(jc, &settings) {
                Ok(s) => specs.push(s),
                Err(e) => {
                    let e = format!("invalid config {}: {e}", self.config_path.display());
                    self.metrics.config_reload_error();
                    tracing::error!(target: "mtn::daemon", "{e} (keeping the previous config)");
                    *lock(&self.config_error) = Some(e.clone());
                    return Err(e);
                }
            }
        }
        if lock(&self.config_error).take().is_some() {
            tracing::info!(target: "mtn::daemon", "config {}: fixed, now valid ({} job(s))", self.config_path.display(), cfg.jobs.len());
        }
        let globals_same = {
            let old = read(&self.settings);
            old.policy_debug() == settings.policy_debug()
                && format!("{:?}", old.limits) == format!("{:?}", settings.limits)
                && old.stdlib_dir == settings.stdlib_dir
                && old.state_dir == settings.state_dir
        };
        *write(&self.settings) = settings.clone();
        let old_jobs = read(&self.jobs).clone();
        let mut new_jobs = BTreeMap::new();
        for spec in specs {
            let name = spec.name().to_string();
            let old = old_jobs.get(&name);
            if let Some(o) = old.filter(|o| globals_same && o.spec.cfg == spec.cfg) {
                new_jobs.insert(name, o.clone());
                continue;
            }
            let job = self.make_job(spec, &settings, old);
            if let Some(o) = old {
                if let Some(t) = lock(&o.ticker).take() {
                    t.abort();
                }
                tracing::info!(target: "mtn::daemon", "job {name}: settings changed");
            }
            new_jobs.insert(name, job);
        }
        for (name, o) in &old_jobs {
            if !new_jobs.contains_key(name) {
                if let Some(t) = lock(&o.ticker).take() {
                    t.abort();
                }
                tracing::info!(target: "mtn::daemon", "job {name}: removed from the config");
            }
        }
        let started: Vec<Arc<Job>> = new_jobs
            .values()
            .filter(|j| lock(&j.ticker).is_none())
            .cloned()
            .collect();
        *write(&self.jobs) = new_jobs;
        for j in started {
            self.start_ticker(&j);
        }
        Ok(())
    }

    /// Recompile every job that uses one of `changed` (script or module).
    pub fn reload_files(self: &Arc<Self>, changed: &HashSet<PathBuf>) {
        let settings = read(&self.settings).clone();
        let jobs: Vec<Arc<Job>> = read(&self.jobs).values().cloned().collect();
        for job in jobs {
            let mut files = vec![watch_key(&job.spec.script)];
            if let Some(c) = job.compiled() {
                files.extend(c.files.iter().map(|f| watch_key(f)));
            }
            if files.iter().any(|f| changed.contains(f)) {
                self.compile_job(&job, &settings, None);
            }
        }
    }

    /// SIGHUP: reread the config and recompile every script.
    pub fn reload_all(self: &Arc<Self>) {
        tracing::info!(target: "mtn::daemon", "SIGHUP: reloading config and scripts");
        let _ = self.reload_config();
        let settings = read(&self.settings).clone();
        let jobs: Vec<Arc<Job>> = read(&self.jobs).values().cloned().collect();
        for job in jobs {
            self.compile_job(&job, &settings, None);
        }
    }

    /// Consume file change batches until shutdown.
    pub async fn watch_loop(
        self: Arc<Self>,
        watcher: Arc<Watcher>,
        mut rx: mpsc::UnboundedReceiver<Vec<PathBuf>>,
    ) {
        let config_key = watch_key(&self.config_path);
        loop {
            let batch = tokio::select! {
                b = rx.recv() => b,
                _ = self.shutdown.cancelled() => return,
            };
            let Some(batch) = batch else { return };
            let mut changed: HashSet<PathBuf> = batch.iter().map(|p| watch_key(p)).collect();
            while let Ok(more) = rx.try_recv() {
                changed.extend(more.iter().map(|p| watch_key(p)));
            }
            let d = self.clone();
            let w = watcher.clone();
            let config_key = config_key.clone();
            // Compiling is CPU work: keep it off the runtime's async threads.
            let _ = tokio::task::spawn_blocking(move || {
                if changed.contains(&config_key) {
                    let _ = d.reload_config();
                }
                d.reload_files(&changed);
                w.watch_files(d.watched_files());
            })
            .await;
        }
    }
}

impl Settings {
    fn policy_debug(&self) -> String {
        format!("{:?}", self.policy)
    }
}
