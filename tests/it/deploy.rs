//! The deploy files and docs/deploy.md, tested for real (issue #18 item 4): the install steps run
//! verbatim in a private mount namespace (overlays over /etc, /usr/local and /var, so the machine
//! is left untouched), then the daemon, `mtn trigger`, the timer's `mtn run` and the cron line run
//! with `/` read-only except the state, backup and log folders — what `ProtectSystem=strict` +
//! `ReadWritePaths=` + `StateDirectory=` make of it. The systemd units are checked with
//! `systemd-analyze verify` and the Kubernetes manifest with `kubernetes-validate` (PyPI).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::support::{free_port, mtn_path, repo, tempdir};

/// The first ```sh block after `heading` in docs/deploy.md.
fn doc_block(heading: &str) -> String {
    let doc = std::fs::read_to_string(repo().join("docs/deploy.md")).unwrap();
    let at = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in deploy.md"));
    let rest = &doc[at..];
    let start = rest.find("```sh\n").expect("a sh block") + 6;
    let end = rest[start..].find("\n```").expect("closing fence");
    rest[start..start + end].to_string()
}

#[test]
fn deploy_docs_steps_work_with_a_read_only_root() {
    let tmp = tempdir();
    let t = tmp.path();
    // The checkout the install steps run from: the binary under test and the stdlib.
    let work = t.join("checkout");
    std::fs::create_dir_all(work.join("target/release")).unwrap();
    std::fs::copy(mtn_path(), work.join("target/release/mtn")).unwrap();
    let status = Command::new("cp")
        .args(["-r"])
        .arg(repo().join("stdlib"))
        .arg(repo().join("scripts"))
        .arg(repo().join("deploy"))
        .arg(&work)
        .status()
        .unwrap();
    assert!(status.success());
    let port = free_port();
    // A job that writes a backup, keeps state (track) and logs; the doc's nightly.rhai needs a
    // database, which is not what this test is about.
    let job_script = r#"let ok = write_file("/var/backups/app/backup.txt", "data");
track("nightly-backup", true);
log("backup written");
"#;
    let script = format!(
        r#"set -eu
for d in /etc /usr/local /var; do
  mkdir -p "{t}/ovl$d/u" "{t}/ovl$d/w"
  mount -t overlay overlay -o "lowerdir=$d,upperdir={t}/ovl$d/u,workdir={t}/ovl$d/w" "$d"
done
cd "{work}"
# ---- docs/deploy.md, "Install", verbatim
{install}
# ---- the test's job script and port
cat > /etc/mtn/scripts/nightly.rhai <<'RHAI'
{job_script}RHAI
printf 'listen = "127.0.0.1:{port}"\n' | cat - /etc/mtn/mtn.toml > /etc/mtn/mtn.toml.new
mv /etc/mtn/mtn.toml.new /etc/mtn/mtn.toml
mtn check /etc/mtn/mtn.toml
# ---- the units, as the doc installs them, verified by systemd
cp deploy/mtn-daemon.service deploy/mtn-nightly.service deploy/mtn-nightly.timer /etc/systemd/system/
systemd-analyze verify /etc/systemd/system/mtn-daemon.service /etc/systemd/system/mtn-nightly.service /etc/systemd/system/mtn-nightly.timer
echo "verify ok"
# ---- docs/deploy.md, "From cron", verbatim
{cron_install}
# ---- ProtectSystem=strict: everything read-only but the API file systems and ReadWritePaths=
findmnt -rno TARGET | sort -u | while read -r m; do
  case "$m" in /proc*|/sys*|/dev*) continue;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
for d in /var/lib/mtn /var/backups/app /var/log/app /var/log/mtn; do
  mount --bind "$d" "$d"; mount -o remount,bind,rw "$d"
done
mount -t tmpfs tmpfs /tmp   # PrivateTmp=yes
if touch /etc/mtn/probe 2>/dev/null; then echo "root is writable"; exit 9; fi
# ---- the daemon as User=mtn with StateDirectory=mtn, WorkingDirectory=/var/lib/mtn
cd /var/lib/mtn
STATE_DIRECTORY=/var/lib/mtn setpriv --reuid=mtn --regid=mtn --init-groups \
  /usr/local/bin/mtn daemon --config /etc/mtn/mtn.toml --log-format json 2>/var/log/app/daemon.log &
pid=$!
for i in $(seq 100); do [ -e /var/lib/mtn/trigger.token ] && break; sleep 0.1; done
mtn trigger nightly --config /etc/mtn/mtn.toml
for i in $(seq 100); do [ -s /var/lib/mtn/history/nightly.jsonl ] && break; sleep 0.1; done
kill -TERM $pid; wait $pid || true
# ---- the timer's oneshot: mtn run as User=mtn, state via $STATE_DIRECTORY
rm -f /var/backups/app/backup.txt
STATE_DIRECTORY=/var/lib/mtn setpriv --reuid=mtn --regid=mtn --init-groups \
  /usr/local/bin/mtn run /etc/mtn/scripts/nightly.rhai --allow-path /var/backups/app
echo "oneshot ok"
# ---- the cron line, under cron's bare environment (as root, cwd $HOME)
rm -f /var/backups/app/backup.txt
line=$(grep -v '^#' /etc/cron.d/mtn | grep 'mtn run' | sed 's/^[^/]*root //')
[ -n "$line" ]
cd /root 2>/dev/null || cd /
env -i PATH=/usr/bin:/bin HOME=/root SHELL=/bin/sh LOGNAME=root sh -c "$line"
echo "cron ok"
"#,
        t = t.display(),
        work = work.display(),
        install = doc_block("## Install"),
        cron_install = doc_block("## From cron"),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                Path::new("/usr/local/bin").display()
            ),
        )
        .output()
        .expect("unshare (needs root)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let var = t.join("ovl/var/u");
    let daemon_log = std::fs::read_to_string(var.join("log/app/daemon.log")).unwrap_or_default();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- daemon log\n{daemon_log}");
    assert!(out.status.success(), "{all}");
    for marker in [
        "verify ok",
        "oneshot ok",
        "cron ok",
        "ok: /etc/mtn/mtn.toml",
    ] {
        assert!(stdout.contains(marker), "{marker}: {all}");
    }

    // What the daemon and the runs left, read from the overlay's upper layer.
    let state = var.join("lib/mtn");
    let history = std::fs::read_to_string(state.join("history/nightly.jsonl")).unwrap_or_default();
    let entry: serde_json::Value =
        serde_json::from_str(history.lines().next().unwrap_or("{}")).unwrap();
    assert_eq!(entry["status"], "ok", "{all}\n{history}");
    assert_eq!(entry["trigger"], "manual");
    let token = std::fs::metadata(state.join("trigger.token")).unwrap();
    assert_eq!(token.mode() & 0o777, 0o600);
    assert_ne!(token.uid(), 0, "the token belongs to the daemon's user");
    assert!(
        state.join("track").is_dir(),
        "track() state in /var/lib/mtn: {all}"
    );
    assert!(!daemon_log.contains("cannot write"), "{daemon_log}");
    assert!(!daemon_log.contains("\"ERROR\""), "{daemon_log}");
    let cron_log = std::fs::read_to_string(var.join("log/mtn/nightly.log")).unwrap_or_default();
    assert!(!cron_log.contains("error"), "cron run: {cron_log}");
    assert!(
        var.join("backups/app/backup.txt").exists(),
        "the cron run wrote its backup\n--- cron log\n{cron_log}\n{all}"
    );
    // Nothing was written in the config folder.
    let etc = t.join("ovl/etc/u/mtn");
    let names: Vec<String> = std::fs::read_dir(&etc)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for n in &names {
        assert!(
            ["mtn.toml", "scripts", "secrets", "nightly.env"].contains(&n.as_str()),
            "unexpected {n} in /etc/mtn"
        );
    }
}

#[test]
fn deploy_kubernetes_manifest_matches_the_schemas() {
    let validator = crate::support::env_var("MTN_TEST_KUBERNETES_VALIDATE");
    let manifest = repo().join("deploy/kubernetes-cronjob.yaml");
    let out = Command::new(&validator)
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| {
            panic!("{validator}: {e} (tests/env/55-deploy.sh installs it from PyPI)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("passed for resource cronjob/mtn-nightly"),
        "{text}"
    );
    // The state and temp dirs are writable volumes under the read-only root.
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    assert!(yaml.contains("readOnlyRootFilesystem: true"));
    assert!(yaml.contains("name: MTN_STATE_DIR") && yaml.contains("mountPath: /var/lib/mtn"));
    assert!(yaml.contains("mountPath: /tmp"));
    // A schema error is caught (the validator is not a no-op).
    let dir = tempdir();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        yaml.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
    )
    .unwrap();
    let out = Command::new(&validator)
        .arg("--strict")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
