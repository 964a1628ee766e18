//! snapshot_dir / restore_snapshot against real restic repositories (restic from
//! tests/env/34-restic.sh), read back with the restic CLI itself, not only through mtn.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::*;

const PW: &str = "restic-test-pw-4711";

fn json_out(run: &Run) -> serde_json::Value {
    json_after(run, "JSON:")
}

/// `restic snapshots --json` of `repo` with the CLI itself.
fn snapshots(repo: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(env_var("MTN_TEST_RESTIC"))
        .args(["snapshots", "--json", "--no-cache"])
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PW)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restic snapshots: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_default()
}

fn run_restic_script(dir: &Path, text: &str, args: &[&str]) -> Run {
    let _ = env_var("MTN_TEST_RESTIC");
    run_script_env(dir, "r.rhai", text, args, &[("RP", PW)])
}

fn tree(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push((
                p.display().to_string(),
                e.metadata().map(|m| m.len()).unwrap_or(0),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn restic_snapshots_forget_with_a_policy_and_restore_one_file() {
    let dir = tempdir();
    let d = dir.path();
    fs::create_dir_all(d.join("uploads/img")).unwrap();
    let logo: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(d.join("uploads/img/logo.png"), &logo).unwrap();
    fs::write(d.join("uploads/a.txt"), "first\n").unwrap();
    let repo = d.join("repo");
    let snap = r#"let r = snapshot_dir("uploads", "repo", #{ password: secret("RP"), init: true,
        tags: ["uploads", "nightly"] }); print("JSON:" + r.to_json());"#;

    let first = json_out(run_restic_script(d, snap, &[]).expect_code(0));
    assert_eq!(first["initialized"], true, "{first}");
    assert_eq!(first["files_new"], 2, "{first}");
    assert!(first["bytes_added"].as_u64().unwrap() > 0, "{first}");
    let id1 = first["snapshot_id"].as_str().unwrap().to_string();
    let listed = snapshots(&repo);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["short_id"], id1.as_str());
    assert_eq!(listed[0]["tags"], serde_json::json!(["uploads", "nightly"]));
    let src = fs::canonicalize(d.join("uploads")).unwrap();
    assert_eq!(listed[0]["paths"][0], src.display().to_string().as_str());

    fs::write(d.join("uploads/a.txt"), "second, longer\n").unwrap();
    let second = json_out(run_restic_script(d, snap, &[]).expect_code(0));
    assert_eq!(second["initialized"], false);
    assert_eq!(second["files_changed"], 1, "{second}");
    assert_eq!(second["files_unmodified"], 1, "{second}");
    let id2 = second["snapshot_id"].as_str().unwrap().to_string();
    assert_ne!(id1, id2);
    assert_eq!(snapshots(&repo).len(), 2);

    // The default floor (max_delete_percent 50) allows forgetting 1 of 3, not 2 of 3.
    fs::write(d.join("uploads/b.txt"), "third\n").unwrap();
    let refused = run_restic_script(
        d,
        r#"try { snapshot_dir("uploads", "repo", #{ password: secret("RP"), policy: #{ keep_last: 1 } }); }
           catch (e) { print("JSON:" + e.to_json()); }"#,
        &[],
    );
    let e = json_out(refused.expect_code(0));
    assert_eq!(e["kind"], "refused", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("max_delete_percent"),
        "{e}"
    );
    assert_eq!(snapshots(&repo).len(), 3, "a refused plan forgets nothing");

    let forget = run_restic_script(
        d,
        r#"let r = snapshot_dir("uploads", "repo", #{ password: secret("RP"),
            policy: #{ keep_last: 2, max_delete_percent: 100 }, check: true });
           print("JSON:" + r.to_json());"#,
        &[],
    );
    let f = json_out(forget.expect_code(0));
    assert_eq!(f["kept"].as_array().unwrap().len(), 2, "{f}");
    assert_eq!(f["pruned"], true);
    assert_eq!(f["checked"], true);
    let forgotten: Vec<&str> = f["forgotten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(forgotten.contains(&id1.as_str()), "{f}");
    assert!(forgotten.contains(&id2.as_str()), "{f}");
    let left: Vec<String> = snapshots(&repo)
        .iter()
        .map(|s| s["short_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&id1) && !left.contains(&id2), "{left:?}");

    // Restore one file of the newest snapshot and compare it byte for byte.
    let inside = src.join("img/logo.png");
    let restore = run_restic_script(
        d,
        &format!(
            r#"let r = restore_snapshot("repo", "restored", #{{ password: secret("RP"),
                include: ["{}"] }}); print("JSON:" + r.to_json());"#,
            inside.display()
        ),
        &[],
    );
    let r = json_out(restore.expect_code(0));
    assert_eq!(r["snapshot"], "latest");
    let back = d.join("restored").join(inside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(&back).unwrap(), logo);
    let other = d
        .join("restored")
        .join(src.join("a.txt").strip_prefix("/").unwrap());
    assert!(!other.exists(), "only the included file is restored");
    assert!(!forget.all().contains(PW) && !restore.all().contains(PW));
}

#[test]
fn restic_wrong_password_missing_repo_typos_and_dry_run() {
    let dir = tempdir();
    let d = dir.path();
    fs::create_dir_all(d.join("src")).unwrap();
    fs::write(d.join("src/f.txt"), "data\n").unwrap();

    // Dry run against a missing repository creates nothing.
    let dry = run_restic_script(
        d,
        r#"let r = snapshot_dir("src", "repo", #{ password: secret("RP"), init: true }); print("JSON:" + r.to_json());"#,
        &["--dry-run"],
    );
    let v = json_out(dry.expect_code(0));
    assert_eq!(
        (v["dry_run"].clone(), v["initialized"].clone()),
        (true.into(), true.into())
    );
    assert!(!d.join("repo").exists(), "a dry run created the repository");

    // Without init, a missing repository is not_found and says how to create one.
    let missing = run_restic_script(
        d,
        r#"try { snapshot_dir("src", "repo", #{ password: secret("RP") }); } catch (e) { print("JSON:" + e.to_json()); }"#,
        &[],
    );
    let e = json_out(missing.expect_code(0));
    assert_eq!(e["kind"], "not_found", "{e}");
    assert!(e["message"].as_str().unwrap().contains("init: true"), "{e}");

    let init = r#"let r = snapshot_dir("src", "repo", #{ password: secret("RP"), init: true }); print("JSON:" + r.to_json());"#;
    json_out(run_restic_script(d, init, &[]).expect_code(0));
    let before = tree(&d.join("repo"));

    // A second dry run with a policy: restic's plan is reported, nothing is written or forgotten.
    fs::write(d.join("src/g.txt"), "more\n").unwrap();
    let dry = run_restic_script(
        d,
        r#"let r = snapshot_dir("src", "repo", #{ password: secret("RP"),
             policy: #{ keep_last: 1, max_delete_percent: 100 } }); print("JSON:" + r.to_json());"#,
        &["--dry-run"],
    );
    let v = json_out(dry.expect_code(0));
    assert_eq!(v["snapshot_id"], serde_json::Value::Null, "{v}");
    assert_eq!(v["files_new"], 1, "{v}");
    assert_eq!(snapshots(&d.join("repo")).len(), 1);
    let after: Vec<_> = tree(&d.join("repo"))
        .into_iter()
        .filter(|(p, _)| !p.contains("/locks"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.contains("/locks"))
        .collect();
    assert_eq!(before, after, "a dry run changed the repository");

    // Wrong password: permission_denied, and the password tried is nowhere in the output.
    let wrong = "not-the-password-9931";
    let run = run_script_env(
        d,
        "w.rhai",
        r#"try { snapshot_dir("src", "repo", #{ password: secret("RP") }); } catch (e) { print("JSON:" + e.to_json()); }"#,
        &[],
        &[("RP", wrong)],
    );
    let e = json_out(run.expect_code(0));
    assert_eq!(e["kind"], "permission_denied", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("password is wrong"),
        "{e}"
    );
    assert!(!run.all().contains(wrong), "{}", run.all());

    // A policy typo is refused the way retention refuses it (same field list, same words): by
    // the static check when the map is written out, at run time when it is built.
    let said = "unknown option `keep_dialy` (did you mean `keep_daily`?); allowed options: keep_last, keep_hourly, keep_daily";
    let checked = run_restic_script(
        d,
        r#"snapshot_dir("src", "repo", #{ password: secret("RP"), policy: #{ keep_dialy: 7 } });"#,
        &[],
    );
    assert!(
        checked.code != 0 && checked.all().contains(&format!("snapshot_dir: {said}")),
        "{}",
        checked.all()
    );
    let typo = run_restic_script(
        d,
        r#"let p = #{}; p.keep_dialy = 7;
           try { snapshot_dir("src", "repo", #{ password: secret("RP"), policy: p }); } catch (e) { print("JSON:" + e.to_json()); }"#,
        &[],
    );
    let e = json_out(typo.expect_code(0));
    assert_eq!(e["kind"], "invalid_input", "{e}");
    assert_eq!(e["function"], "snapshot_dir", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with("in the policy map: unknown option `keep_dialy` (did you mean `keep_daily`?); allowed options: keep_last, keep_hourly, keep_daily"),
        "{msg}"
    );
    let ret = run_restic_script(d, r#"retention("src", #{ keep_dialy: 7 });"#, &[]);
    assert!(
        ret.all().contains(&format!("retention: {said}")),
        "{}",
        ret.all()
    );
    assert_eq!(snapshots(&d.join("repo")).len(), 1);

    // Without restic in PATH: missing_tool naming the Debian package.
    let mut c = mtn();
    fs::write(d.join("m.rhai"), r#"try { snapshot_dir("src", "repo", #{ password: "x" }); } catch (e) { print("JSON:" + e.to_json()); }"#).unwrap();
    c.current_dir(d)
        .env("PATH", "/nonexistent")
        .args(["run", "m.rhai"]);
    let e = json_out(Run::from(c.output().unwrap()).expect_code(0));
    assert_eq!(e["kind"], "missing_tool", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("apt-get install restic"),
        "{e}"
    );
}

#[test]
fn restic_uploads_snapshot_script_keeps_history_of_the_uploads_folder() {
    let dir = tempdir();
    let d = dir.path();
    fs::create_dir_all(d.join("uploads")).unwrap();
    fs::write(d.join("uploads/photo.jpg"), "jpeg bytes").unwrap();
    let script = repo().join("scripts/uploads_snapshot.rhai");
    let run = |args: &[&str]| {
        let _ = env_var("MTN_TEST_RESTIC");
        let mut c = mtn();
        c.current_dir(d)
            .env("RESTIC_PASSWORD", PW)
            .arg("run")
            .arg(&script)
            .args(args);
        Run::from(c.output().unwrap())
    };
    run(&["--dry-run"]).expect_code(0);
    assert!(
        !d.join("backups/restic").exists(),
        "dry run made a repository"
    );
    let r = run(&[]);
    r.expect_code(0);
    assert!(r.all().contains("1 new"), "{}", r.all());
    fs::remove_file(d.join("uploads/photo.jpg")).unwrap();
    run(&[]).expect_code(0);
    // The deleted file is still in the first snapshot.
    let snaps = snapshots(&d.join("backups/restic"));
    assert_eq!(snaps.len(), 2);
    let out = Command::new(env_var("MTN_TEST_RESTIC"))
        .args(["ls", "--no-cache", snaps[0]["short_id"].as_str().unwrap()])
        .env("RESTIC_REPOSITORY", d.join("backups/restic"))
        .env("RESTIC_PASSWORD", PW)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("photo.jpg"));
}

#[test]
fn restic_repository_on_the_sftp_server_snapshot_forget_restore() {
    let host = env_var("MTN_TEST_SFTP_HOST");
    let port = env_var("MTN_TEST_SFTP_PORT");
    let user = env_var("MTN_TEST_SFTP_USER");
    let server_dir = env_var("MTN_TEST_SFTP_DIR");
    let key = env_var("MTN_TEST_SFTP_KEY");
    let known = env_var("MTN_TEST_SFTP_KNOWN_HOSTS");
    let dir = tempdir();
    let d = dir.path();
    fs::create_dir_all(d.join("site")).unwrap();
    fs::write(d.join("site/index.html"), "<h1>v1</h1>").unwrap();
    let name = format!("restic-{}", std::process::id());
    let repo = format!("sftp://{user}@{host}:{port}/{server_dir}/{name}");
    let opts =
        format!(r#"#{{ password: secret("RP"), ssh_key: "{key}", known_hosts: "{known}" }}"#);
    let snap = format!(
        r#"let r = snapshot_dir("site", "{repo}", {opts} + #{{ init: true,
              policy: #{{ keep_last: 1, max_delete_percent: 100 }} }}); print("JSON:" + r.to_json());"#
    );
    let first = json_after(run_restic_script(d, &snap, &[]).expect_code(0), "JSON:");
    assert_eq!(first["initialized"], true, "{first}");
    // The repository is on the server, in the sftp user's folder (same machine: read it here).
    let on_server = Path::new(&server_dir).join(&name);
    assert!(
        on_server.join("config").exists(),
        "no repository at {}",
        on_server.display()
    );
    fs::write(d.join("site/index.html"), "<h1>v2</h1>").unwrap();
    let second = json_after(run_restic_script(d, &snap, &[]).expect_code(0), "JSON:");
    assert_eq!(second["files_changed"], 1, "{second}");
    assert_eq!(
        second["forgotten"],
        serde_json::json!([first["snapshot_id"]]),
        "{second}"
    );
    // The restic CLI itself, on the server's folder, sees the one snapshot left.
    let left = snapshots(&on_server);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["short_id"], second["snapshot_id"]);

    let src = fs::canonicalize(d.join("site")).unwrap();
    let file = src.join("index.html");
    let run = run_restic_script(
        d,
        &format!(
            r#"restore_snapshot("{repo}", "back", {opts} + #{{ include: ["{}"] }});"#,
            file.display()
        ),
        &[],
    );
    run.expect_code(0);
    let back = d.join("back").join(file.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(back).unwrap(), "<h1>v2</h1>");

    // A known_hosts without the server's key: refused, saying so.
    fs::write(d.join("empty_known_hosts"), "").unwrap();
    let run = run_restic_script(
        d,
        &format!(
            r#"try {{ snapshot_dir("site", "{repo}", #{{ password: secret("RP"), ssh_key: "{key}", known_hosts: "{}" }}); }}
               catch (e) {{ print("JSON:" + e.to_json()); }}"#,
            d.join("empty_known_hosts").display()
        ),
        &[],
    );
    let e = json_after(run.expect_code(0), "JSON:");
    // `refused` when restic passed ssh's "Host key verification failed." on before exiting;
    // it forwards it from a goroutine and sometimes exits first (then `network`, same hint).
    assert!(e["kind"] == "refused" || e["kind"] == "network", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("known_hosts"),
        "{e}"
    );
    let _ = fs::remove_dir_all(on_server);
}
