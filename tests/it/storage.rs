//! Tests for the storage capability, against a real SeaweedFS started by tests/env/30-s3.sh,
//! with the real `aws`, `age` and `age-keygen` CLIs as independent readers and writers.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::*;

struct S3 {
    endpoint: String,
    bucket: String,
    key: String,
    secret: String,
}

fn s3() -> S3 {
    S3 {
        endpoint: env_var("MTN_TEST_S3_ENDPOINT"),
        bucket: env_var("MTN_TEST_S3_BUCKET"),
        key: env_var("MTN_TEST_S3_ACCESS_KEY"),
        secret: env_var("MTN_TEST_S3_SECRET_KEY"),
    }
}

impl S3 {
    /// Environment for mtn and aws: credentials the usual AWS way.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }
    fn url(&self, rest: &str) -> String {
        format!("s3://{}/{rest}", self.bucket)
    }
    fn aws(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("/usr/bin/aws");
        c.arg("--endpoint-url").arg(&self.endpoint).args(args);
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c.env_remove("AWS_CA_BUNDLE").stdin(Stdio::null());
        c.output().expect("run aws")
    }
}

fn run_env(dir: &Path, text: &str, args: &[&str], env: &[(&'static str, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_script_env(dir, "t.rhai", text, args, &env)
}

/// The JSON a script printed after `JSON:`.
fn json_out(run: &Run) -> serde_json::Value {
    json_after(run, "JSON:")
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn random_file(path: &Path, mib: usize) {
    let st = Command::new("head")
        .arg("-c")
        .arg(format!("{}", mib * 1024 * 1024))
        .arg("/dev/urandom")
        .stdout(std::fs::File::create(path).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn storage_round_trip_small_empty_large() {
    let s = s3();
    let dir = tempdir();
    std::fs::write(dir.path().join("small.txt"), b"hello off-site\n").unwrap();
    std::fs::write(dir.path().join("empty"), b"").unwrap();
    random_file(&dir.path().join("large.bin"), 200);
    let run = run_env(
        dir.path(),
        &format!(
            r#"
let out = [];
for f in ["small.txt", "empty", "large.bin"] {{
    let up = upload(f, "{0}", #{{ concurrency: 4 }});
    let down = download(up.url, "back/" + f);
    out.push(#{{ up: up, down: down }});
}}
print("JSON:" + #{{ out: out }}.to_json());
"#,
            s.url("rt/")
        ),
        &[],
        &s.env(),
    );
    run.expect_code(0);
    let v = json_out(&run)["out"].clone();
    for (i, f) in ["small.txt", "empty", "large.bin"].iter().enumerate() {
        let local = sha256_of(&dir.path().join(f));
        let back = sha256_of(&dir.path().join("back").join(f));
        assert_eq!(local, back, "{f} changed in the round trip");
        assert_eq!(v[i]["up"]["sha256"], local.as_str());
        assert_eq!(v[i]["down"]["sha256"], local.as_str());
        assert_eq!(v[i]["down"]["verified"], "sha256");
        assert_eq!(v[i]["up"]["url"], s.url(&format!("rt/{f}")).as_str());
    }
    assert_eq!(v[2]["up"]["bytes"], 200 * 1024 * 1024);
    assert_eq!(v[2]["up"]["files"][0]["multipart"], true);
    assert_eq!(v[0]["up"]["files"][0]["multipart"], false);
    // The checksum is in the object's metadata for every other S3 client to see.
    let head = s.aws(&[
        "s3api",
        "head-object",
        "--bucket",
        &s.bucket,
        "--key",
        "rt/large.bin",
    ]);
    let head = String::from_utf8_lossy(&head.stdout);
    assert!(
        head.contains(&sha256_of(&dir.path().join("large.bin"))),
        "{head}"
    );
    assert!(temp_of(&dir.path().join("back/large.bin")).is_none());
}

#[test]
fn storage_aws_cli_reads_mtn_objects_and_vice_versa() {
    let s = s3();
    let dir = tempdir();
    random_file(&dir.path().join("mine.bin"), 20);
    random_file(&dir.path().join("theirs.bin"), 3);
    let up = s.aws(&[
        "s3",
        "cp",
        dir.path().join("theirs.bin").to_str().unwrap(),
        &s.url("interop/theirs.bin"),
    ]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let run = run_env(
        dir.path(),
        &format!(
            r#"
upload("mine.bin", "{0}");
let d = download("{1}", "got/");
print("JSON:" + d.to_json());
"#,
            s.url("interop/"),
            s.url("interop/theirs.bin")
        ),
        &[],
        &s.env(),
    );
    run.expect_code(0);
    let v = json_out(&run);
    // No stored checksum on aws's object: checked by size, and said so.
    assert_eq!(v["verified"], "size");
    assert_eq!(
        sha256_of(&dir.path().join("got/theirs.bin")),
        sha256_of(&dir.path().join("theirs.bin"))
    );
    let fetched = dir.path().join("fetched.bin");
    let down = s.aws(&[
        "s3",
        "cp",
        &s.url("interop/mine.bin"),
        fetched.to_str().unwrap(),
    ]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(sha256_of(&fetched), sha256_of(&dir.path().join("mine.bin")));
}

#[test]
fn storage_wrong_secret_names_endpoint_not_secret() {
    let s = s3();
    let dir = tempdir();
    std::fs::write(dir.path().join("a.txt"), b"x").unwrap();
    let wrong = "WrongSecretValue123";
    let run = run_env(
        dir.path(),
        &format!(
            r#"
try {{
    upload("a.txt", "{0}", #{{ access_key_id: "{1}", secret_access_key: "{2}", retries: 1 }});
    print("JSON:\"uploaded\"");
}} catch (e) {{
    print("JSON:" + e.to_json());
}}
"#,
            s.url("auth/"),
            s.key,
            wrong
        ),
        &[],
        &[("AWS_ENDPOINT_URL", s.endpoint.clone())],
    );
    run.expect_code(0);
    let v = json_out(&run);
    let msg = v["message"].as_str().unwrap_or_default().to_string();
    assert_eq!(v["kind"], "permission_denied", "{v}");
    assert!(msg.contains(&s.endpoint), "endpoint not named: {msg}");
    assert!(msg.contains("secret key is wrong"), "{msg}");
    assert!(!run.all().contains(wrong), "secret leaked:\n{}", run.all());
}

/// A SeaweedFS of this test's own (so the shared one stays up), on free ports.
fn start_weed(data: &Path, s3_port: u16) -> Child {
    let weed = env_var("MTN_TEST_WEED");
    let mut c = Command::new(weed);
    c.arg("mini")
        .arg(format!("-dir={}", data.display()))
        .arg("-ip=127.0.0.1")
        .arg("-ip.bind=127.0.0.1")
        .arg(format!("-s3.config={}", env_var("MTN_TEST_S3_CONFIG")))
        .arg("-admin.ui=false")
        .arg("-s3.port.iceberg=0")
        .arg("-s3.port.lance=0")
        .arg(format!("-s3.port={s3_port}"));
    for flag in [
        "s3.port.grpc",
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "webdav.port",
        "admin.port",
        "admin.port.grpc",
    ] {
        c.arg(format!("-{flag}={}", free_port()));
    }
    std::fs::create_dir_all(data).unwrap();
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start weed")
}

fn wait_bucket(s: &S3, bucket: &str) {
    for _ in 0..200 {
        let mb = s.aws(&["s3", "mb", &format!("s3://{bucket}")]);
        let hb = s.aws(&["s3api", "head-bucket", "--bucket", bucket]);
        if mb.status.success() || hb.status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    panic!("private SeaweedFS never became ready at {}", s.endpoint);
}

#[test]
fn storage_server_stopped_mid_upload_retries_then_fails_cleanly() {
    let base = s3();
    let dir = tempdir();
    let port = free_port();
    let data = dir.path().join("weed");
    let s = S3 {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: "crash".into(),
        key: base.key.clone(),
        secret: base.secret.clone(),
    };
    let mut weed = start_weed(&data, port);
    wait_bucket(&s, "crash");
    random_file(&dir.path().join("big.bin"), 300);
    let script = dir.path().join("t.rhai");
    std::fs::write(
        &script,
        format!(
            r#"let r = upload("big.bin", "{0}", #{{ retries: 3, retry_timeout: "6s", request_timeout: "10s" }});"#,
            s.url("big.bin")
        ),
    )
    .unwrap();
    let mut cmd = mtn();
    cmd.current_dir(dir.path()).arg("run").arg(&script);
    for (k, v) in s.env() {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the multipart upload get going, then take the server away.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    weed.kill().unwrap();
    weed.wait().unwrap();
    let started = std::time::Instant::now();
    let run = Run::from(child.wait_with_output().unwrap());
    run.expect_code(1);
    let err = run.all();
    eprintln!("mid-upload failure as reported: {err}");
    assert!(err.contains(&s.endpoint), "{err}");
    assert!(
        err.contains("retries") || err.contains("retry"),
        "no sign of retrying: {err}"
    );
    assert!(started.elapsed().as_secs() < 90, "gave up too late");
    // Bring the same server back: nothing may exist under the final key.
    let mut weed = start_weed(&data, port);
    wait_bucket(&s, "crash");
    let head = s.aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "crash",
        "--key",
        "big.bin",
    ]);
    assert!(
        !head.status.success(),
        "an object was left under the final key"
    );
    let ls = s.aws(&["s3", "ls", "s3://crash/"]);
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("big.bin"));
    let _ = weed.kill();
    let _ = weed.wait();
}

#[test]
fn storage_download_never_leaves_partial_file() {
    let s = s3();
    let dir = tempdir();
    random_file(&dir.path().join("obj.bin"), 5);
    // An object whose stored checksum does not match its bytes (a corrupted copy).
    let bad = "0".repeat(64);
    let up = s.aws(&[
        "s3api",
        "put-object",
        "--bucket",
        &s.bucket,
        "--key",
        "partial/obj.bin",
        "--body",
        dir.path().join("obj.bin").to_str().unwrap(),
        "--metadata",
        &format!("sha256={bad}"),
    ]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    std::fs::write(dir.path().join("dest.bin"), b"previous good copy").unwrap();
    let run = run_env(
        dir.path(),
        &format!(r#"download("{0}", "dest.bin");"#, s.url("partial/obj.bin")),
        &[],
        &s.env(),
    );
    run.expect_code(1);
    assert!(run.all().contains("stored checksum"), "{}", run.all());
    assert_eq!(
        std::fs::read(dir.path().join("dest.bin")).unwrap(),
        b"previous good copy"
    );
    assert!(temp_of(&dir.path().join("dest.bin")).is_none());
    // A missing object: clear not_found, nothing created.
    let run = run_env(
        dir.path(),
        &format!(
            r#"try {{ download("{0}", "none.bin"); }} catch (e) {{ print("JSON:" + e.to_json()); }}"#,
            s.url("partial/nope.bin")
        ),
        &[],
        &s.env(),
    );
    assert_eq!(json_out(&run)["kind"], "not_found");
    assert!(!dir.path().join("none.bin").exists());
}

#[test]
fn storage_age_encrypted_upload_decrypts_with_age_cli() {
    let s = s3();
    let dir = tempdir();
    let key = dir.path().join("key.txt");
    let kg = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age-keygen");
    assert!(kg.status.success());
    let text = std::fs::read_to_string(&key).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    random_file(&dir.path().join("db.dump"), 12);
    let run = run_env(
        dir.path(),
        &format!(
            r#"
let up = upload("db.dump", "{0}", #{{ encrypt: #{{ recipients: ["{1}"] }} }});
let d = download(up.url, "restored/", #{{ decrypt: #{{ identity_file: "key.txt" }} }});
print("JSON:" + #{{ up: up, d: d }}.to_json());
"#,
            s.url("enc/"),
            recipient
        ),
        &[],
        &s.env(),
    );
    run.expect_code(0);
    let v = json_out(&run);
    assert_eq!(v["up"]["url"], s.url("enc/db.dump.age").as_str());
    assert_eq!(v["up"]["encrypted"], true);
    let fetched = dir.path().join("fetched.age");
    let down = s.aws(&[
        "s3",
        "cp",
        &s.url("enc/db.dump.age"),
        fetched.to_str().unwrap(),
    ]);
    assert!(down.status.success());
    assert_eq!(sha256_of(&fetched), v["up"]["sha256"].as_str().unwrap());
    let plain = dir.path().join("plain");
    let dec = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg(&plain)
        .arg(&fetched)
        .output()
        .expect("age");
    assert!(
        dec.status.success(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    assert_eq!(sha256_of(&plain), sha256_of(&dir.path().join("db.dump")));
    assert_eq!(
        sha256_of(&dir.path().join("restored/db.dump")),
        sha256_of(&dir.path().join("db.dump"))
    );
}

fn backup_names() -> Vec<String> {
    // 45 days of nightly backups plus a few extra same-day runs; a seeded spread.
    let mut names = Vec::new();
    let base = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut x: u64 = 7;
    for d in 0..45 {
        let day = base + chrono::Duration::days(d);
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let runs = 1 + (x >> 61) as usize % 2;
        for r in 0..runs {
            names.push(format!(
                "db_{}_{:02}{:02}00.sql.gz",
                day.format("%Y-%m-%d"),
                2 + r * 10,
                (x >> 40) % 60
            ));
        }
    }
    names
}

#[test]
fn storage_retention_same_plan_local_and_s3() {
    let s = s3();
    let dir = tempdir();
    let local = dir.path().join("backups");
    std::fs::create_dir(&local).unwrap();
    for n in backup_names() {
        std::fs::write(local.join(&n), n.as_bytes()).unwrap();
    }
    std::fs::write(local.join("notes.txt"), b"not a backup").unwrap();
    let sync = s.aws(&[
        "s3",
        "sync",
        "--quiet",
        local.to_str().unwrap(),
        &s.url("ret/"),
    ]);
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let policy = r#"#{ keep_daily: 7, keep_weekly: 4, keep_monthly: 3, max_delete_percent: 90 }"#;
    let opts = r#"#{ pattern: "db_*.sql.gz", time_from: "name" }"#;
    let plan = |args: &[&str]| {
        let run = run_env(
            dir.path(),
            &format!(
                r#"
let l = retention("backups", {policy}, {opts});
let r = retention("{0}", {policy}, {opts});
print("JSON:" + #{{ l: l, r: r }}.to_json());
"#,
                s.url("ret/")
            ),
            args,
            &s.env(),
        );
        run.expect_code(0);
        json_out(&run)
    };
    let v = plan(&["--dry-run"]);
    assert_eq!(v["l"]["kept"], v["r"]["kept"], "plans differ");
    assert_eq!(v["l"]["deleted"], v["r"]["deleted"], "plans differ");
    assert_eq!(v["l"]["dry_run"], true);
    let kept = v["l"]["kept"].as_array().unwrap().len();
    let deleted = v["l"]["deleted"].as_array().unwrap().len();
    assert!(kept >= 7 && deleted > 0, "{kept} kept, {deleted} deleted");
    assert_eq!(
        std::fs::read_dir(&local).unwrap().count(),
        backup_names().len() + 1,
        "dry run deleted"
    );

    // For real: what remains is exactly the plan's kept list, on both sides.
    let v2 = plan(&[]);
    assert_eq!(v2["l"]["deleted"], v["l"]["deleted"]);
    let mut left: Vec<String> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("db_"))
        .collect();
    left.sort();
    let mut want: Vec<String> = v["l"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(left, want);
    assert!(local.join("notes.txt").exists());
    let ls = s.aws(&["s3", "ls", &s.url("ret/")]);
    let mut remote: Vec<String> = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(|s| s.to_string()))
        .filter(|n| n.starts_with("db_"))
        .collect();
    remote.sort();
    assert_eq!(remote, want);

    // A plan past the floor is refused and deletes nothing.
    let before = std::fs::read_dir(&local).unwrap().count();
    let run = run_env(
        dir.path(),
        &format!(r#"retention("{0}", #{{ keep_last: 1 }});"#, s.url("ret/")),
        &[],
        &s.env(),
    );
    run.expect_code(1);
    assert!(run.all().contains("max_delete_percent"), "{}", run.all());
    let ls2 = s.aws(&["s3", "ls", &s.url("ret/")]);
    assert_eq!(
        String::from_utf8_lossy(&ls2.stdout)
            .lines()
            .filter(|l| l.contains("db_"))
            .count(),
        want.len()
    );
    let run = run_env(
        dir.path(),
        r#"retention("backups", #{ keep_daily: 3, require_fresh: "2d" });"#,
        &[],
        &[],
    );
    run.expect_code(1);
    assert!(run.all().contains("require_fresh"), "{}", run.all());
    assert_eq!(std::fs::read_dir(&local).unwrap().count(), before);
}

#[test]
fn storage_file_target_dry_run_and_policy() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("dump")).unwrap();
    std::fs::write(dir.path().join("dump/a.bson"), b"aaa").unwrap();
    std::fs::create_dir(dir.path().join("dump/sub")).unwrap();
    std::fs::write(dir.path().join("dump/sub/b.bson"), b"bb").unwrap();
    let mirror = dir.path().join("mirror");
    let url = format!("file://{}/", mirror.display());
    let run = run_script(
        dir.path(),
        "t.rhai",
        &format!(r#"let r = upload("dump", "{url}"); print("JSON:" + r.to_json());"#),
        &["--dry-run"],
    );
    run.expect_code(0);
    assert_eq!(json_out(&run)["dry_run"], true);
    assert!(!mirror.exists(), "dry run wrote");
    let run = run_script(
        dir.path(),
        "t.rhai",
        &format!(
            r#"let r = upload("dump", "{url}");
let l = list_remote("{url}", #{{ checksums: true }});
let d = delete_remote(l[0]);
print("JSON:" + #{{ r: r, l: l, d: d }}.to_json());"#
        ),
        &[],
    );
    run.expect_code(0);
    let v = json_out(&run);
    assert_eq!(v["r"]["files"].as_array().unwrap().len(), 2);
    assert_eq!(v["r"]["bytes"], 5);
    assert_eq!(
        v["l"].as_array().unwrap().len(),
        2,
        "sidecars are not listed: {}",
        v["l"]
    );
    assert_eq!(
        v["l"][1]["sha256"].as_str().unwrap(),
        sha256_of(&mirror.join("dump/sub/b.bson"))
    );
    assert!(mirror.join("dump/sub/b.bson.sha256").exists());
    assert!(!mirror.join("dump/a.bson").exists() && !mirror.join("dump/a.bson.sha256").exists());
    // Writing outside the allowed roots is refused.
    let run = run_script(
        dir.path(),
        "t.rhai",
        r#"upload("dump/a.bson", "file:///etc/mtn-test/");"#,
        &[],
    );
    run.expect_code(1);
    assert!(run.all().contains("refused"), "{}", run.all());
    assert!(!Path::new("/etc/mtn-test").exists());
}

/// A machine set up for `aws s3 cp` (credentials and endpoint in ~/.aws) works with mtn as is.
#[test]
fn storage_reads_the_aws_shared_profile_files() {
    let s = s3();
    let home = tempdir();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[backup]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s.key, s.secret
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        // Both profiles point at the local server: nothing here may reach a real AWS endpoint.
        format!(
            "[default]\nendpoint_url = {ep}\n\n[profile backup]\nregion = us-east-1\nendpoint_url = {ep}\n",
            ep = s.endpoint
        ),
    )
    .unwrap();
    let dir = tempdir();
    std::fs::write(dir.path().join("f.txt"), "profile data").unwrap();
    let target = s.url("profile/");
    let script =
        format!("let r = upload(\"f.txt\", \"{target}\"); assert(r.bytes == 12, `${{r}}`);");
    std::fs::write(dir.path().join("p.rhai"), &script).unwrap();
    let run = |profile: &str| {
        let mut c = mtn();
        for v in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
        ] {
            c.env_remove(v);
        }
        c.env("HOME", home.path()).env("AWS_PROFILE", profile);
        Run::from(
            c.current_dir(dir.path())
                .args(["run", "p.rhai"])
                .output()
                .unwrap(),
        )
    };
    run("backup").expect_code(0);
    // The default profile's keys are wrong: a clear failure, never a silent use of another profile.
    let r = run("default");
    r.expect_code(1);
    assert!(!r.all().contains(&s.secret), "{}", r.all());
}
