//! az:// targets against Azurite (tests/env/32-azure.sh). What mtn wrote is read back through
//! Azurite's REST API with tests/env/azure_rest.py (SharedKey, no object_store involved).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

struct Az {
    endpoint: String,
    account: String,
    key: String,
    container: String,
    rest: String,
}

fn az() -> Az {
    Az {
        endpoint: env_var("MTN_TEST_AZURE_ENDPOINT"),
        account: env_var("MTN_TEST_AZURE_ACCOUNT"),
        key: env_var("MTN_TEST_AZURE_KEY"),
        container: env_var("MTN_TEST_AZURE_CONTAINER"),
        rest: env_var("MTN_TEST_AZURE_REST"),
    }
}

impl Az {
    /// azure_rest.py against `endpoint` (this server unless another is given).
    fn rest_at(&self, endpoint: &str, args: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(&self.rest)
            .args([endpoint, &self.account, &self.key])
            .args(args)
            .output()
            .unwrap();
        stdout_of(out, &format!("azure_rest {args:?}"))
    }
    fn rest(&self, args: &[&str]) -> String {
        self.rest_at(&self.endpoint, args)
    }
    fn list(&self, prefix: &str) -> Vec<String> {
        self.rest(&["list", &self.container, prefix])
            .lines()
            .map(str::to_string)
            .collect()
    }
    fn head(&self, blob: &str) -> serde_json::Value {
        serde_json::from_str(&self.rest(&["head", &self.container, blob])).unwrap()
    }
    /// The connection options as a Rhai map literal; the key comes through secret().
    fn opts(&self) -> String {
        format!(
            r#"#{{ endpoint: "{}", account: "{}", account_key: secret("AZ_KEY") }}"#,
            self.endpoint, self.account
        )
    }
    fn run(&self, dir: &Path, text: &str, args: &[&str]) -> Run {
        run_script_env(dir, "az.rhai", text, args, &[("AZ_KEY", &self.key)])
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

#[test]
fn azure_round_trip_small_empty_multipart_read_back_through_rest() {
    let a = az();
    let dir = tempdir();
    let d = dir.path();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("small.txt", b"hello azure\n".to_vec()),
        ("empty", Vec::new()),
        // 3 blocks of 8 MiB and a short one: the Put Block / Put Block List path.
        ("large.bin", random_bytes(26 * 1024 * 1024 + 123)),
    ];
    for (n, data) in &files {
        fs::write(d.join(n), data).unwrap();
    }
    let o = a.opts();
    let prefix = format!("az://{}/rt/", a.container);
    let run = a.run(
        d,
        &format!(
            r#"
let out = [];
for f in ["small.txt", "empty", "large.bin"] {{
    let up = upload(f, "{prefix}", {o});
    let down = download(up.url, "back/" + f, {o});
    out.push(#{{ up: up, down: down }});
}}
let l = list_remote("{prefix}", {o} + #{{ checksums: true }});
let n = newest("{prefix}", {o});
print("JSON:" + #{{ out: out, l: l, n: n }}.to_json());
"#
        ),
        &[],
    );
    let v = json_after(run.expect_code(0), "JSON:");
    for (i, (name, data)) in files.iter().enumerate() {
        let up = &v["out"][i]["up"];
        let sha = sha256_hex(data);
        assert_eq!(up["sha256"], sha.as_str(), "{up}");
        assert_eq!(up["url"], format!("{prefix}{name}").as_str());
        assert_eq!(up["files"][0]["multipart"], *name == "large.bin", "{up}");
        // Independently: the blob's bytes and its x-ms-meta-sha256 through the REST API.
        let got = d.join(format!("rest-{name}"));
        a.rest(&[
            "get",
            &a.container,
            &format!("rt/{name}"),
            got.to_str().unwrap(),
        ]);
        assert_eq!(
            &fs::read(&got).unwrap(),
            data,
            "{name} read back through REST"
        );
        let h = a.head(&format!("rt/{name}"));
        assert_eq!(h["headers"]["x-ms-meta-sha256"], sha.as_str(), "{h}");
        // And mtn's download, verified against that metadata.
        let down = &v["out"][i]["down"];
        assert_eq!(down["verified"], "sha256", "{down}");
        assert_eq!(&fs::read(d.join("back").join(name)).unwrap(), data);
    }
    let listed = keys(&v["l"]);
    assert_eq!(listed, ["rt/empty", "rt/large.bin", "rt/small.txt"]);
    assert_eq!(v["l"][2]["sha256"], sha256_hex(&files[0].1).as_str());
    assert!(
        v["n"]["url"].as_str().unwrap().starts_with(&prefix),
        "{}",
        v["n"]
    );
    assert!(!run.all().contains(&a.key), "the account key leaked");

    // delete_remote removes them: the REST listing is empty afterwards.
    a.run(
        d,
        &format!(r#"delete_remote(list_remote("{prefix}", {o}), {o});"#),
        &[],
    )
    .expect_code(0);
    assert!(a.list("rt/").is_empty(), "{:?}", a.list("rt/"));
}

#[test]
fn azure_blob_uploaded_elsewhere_is_checked_by_size_and_corruption_never_lands() {
    let a = az();
    let dir = tempdir();
    let d = dir.path();
    fs::write(d.join("other.bin"), b"written by another tool").unwrap();
    a.rest(&[
        "put",
        &a.container,
        "ext/other.bin",
        d.join("other.bin").to_str().unwrap(),
    ]);
    let o = a.opts();
    let run = a.run(
        d,
        &format!(
            r#"let r = download("az://{}/ext/other.bin", "got.bin", {o}); print("JSON:" + r.to_json());"#,
            a.container
        ),
        &[],
    );
    let v = json_after(run.expect_code(0), "JSON:");
    assert_eq!(v["verified"], "size", "{v}");
    assert_eq!(
        fs::read(d.join("got.bin")).unwrap(),
        b"written by another tool"
    );

    // Upload through mtn, then replace the bytes behind its back with the same size and the
    // stored sha256 kept: the download must refuse and leave the existing local file alone.
    fs::write(d.join("db.sql.gz"), b"the real backup").unwrap();
    let prefix = format!("az://{}/corrupt/", a.container);
    a.run(d, &format!(r#"upload("db.sql.gz", "{prefix}", {o});"#), &[])
        .expect_code(0);
    let h = a.head("corrupt/db.sql.gz");
    let sha = h["headers"]["x-ms-meta-sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sha, sha256_hex(b"the real backup"));
    fs::write(d.join("evil"), b"the real backuq").unwrap();
    a.rest(&[
        "put",
        &a.container,
        "corrupt/db.sql.gz",
        d.join("evil").to_str().unwrap(),
        &sha,
    ]);
    fs::write(d.join("restore.sql.gz"), b"old local copy").unwrap();
    let run = a.run(
        d,
        &format!(
            r#"try {{ download("{prefix}db.sql.gz", "restore.sql.gz", {o}); }} catch (e) {{ print("JSON:" + e.to_json()); }}"#
        ),
        &[],
    );
    let v = json_after(run.expect_code(0), "JSON:");
    assert_eq!(v["kind"], "verification", "{v}");
    assert_eq!(
        fs::read(d.join("restore.sql.gz")).unwrap(),
        b"old local copy"
    );
}

#[test]
fn azure_wrong_key_is_permission_denied_without_the_key_and_env_forms_work() {
    let a = az();
    let dir = tempdir();
    let d = dir.path();
    fs::write(d.join("f.txt"), b"x").unwrap();
    let wrong = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS0xMjM0NTY3ODkw";
    let run = run_script_env(
        d,
        "w.rhai",
        &format!(
            r#"try {{ upload("f.txt", "az://{}/w/", #{{ endpoint: "{}", account: "{}", account_key: secret("AZ_KEY"), retries: 1 }}); }}
               catch (e) {{ print("JSON:" + e.to_json()); }}"#,
            a.container, a.endpoint, a.account
        ),
        &[],
        &[("AZ_KEY", wrong)],
    );
    let v = json_after(run.expect_code(0), "JSON:");
    assert_eq!(v["kind"], "permission_denied", "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains(&a.endpoint), "{msg}");
    assert!(msg.contains("account key"), "{msg}");
    assert!(!run.all().contains(wrong), "{}", run.all());
    assert!(a.list("w/").is_empty());

    // The connection string the SDKs and az read, from the environment alone.
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
        a.account, a.key, a.endpoint
    );
    let run = run_script_env(
        d,
        "cs.rhai",
        &format!(
            r#"let r = upload("f.txt", "az://{}/cs/"); print("JSON:" + r.to_json());"#,
            a.container
        ),
        &[],
        &[("AZURE_STORAGE_CONNECTION_STRING", &cs)],
    );
    json_after(run.expect_code(0), "JSON:");
    assert_eq!(a.list("cs/"), ["cs/f.txt"]);
    assert!(!run.all().contains(&a.key));

    // use_emulator: Azurite's URL from AZURITE_BLOB_STORAGE_URL and its development account.
    let base = a.endpoint.trim_end_matches(&format!("/{}", a.account));
    let run = run_script_env(
        d,
        "em.rhai",
        &format!(
            r#"let r = list_remote("azure://{}/cs/", #{{ use_emulator: true }}); print("JSON:" + #{{ r: r }}.to_json());"#,
            a.container
        ),
        &[],
        &[("AZURITE_BLOB_STORAGE_URL", base)],
    );
    let v = json_after(run.expect_code(0), "JSON:");
    assert_eq!(
        v["r"][0]["url"],
        format!("az://{}/cs/f.txt", a.container).as_str()
    );

    // An S3 option on an Azure target is refused, not ignored.
    let run = a.run(
        d,
        &format!(
            r#"try {{ list_remote("az://{}/cs/", #{{ region: "eu-west-1" }}); }} catch (e) {{ print("JSON:" + e.to_json()); }}"#,
            a.container
        ),
        &[],
    );
    let v = json_after(run.expect_code(0), "JSON:");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("region does not apply"),
        "{v}"
    );
}

#[test]
fn azure_retention_plans_like_a_local_folder_and_deletes_through_rest_visible() {
    let a = az();
    let dir = tempdir();
    let d = dir.path();
    fs::create_dir_all(d.join("local")).unwrap();
    let names: Vec<String> = (1..=6)
        .map(|i| format!("db_2026-03-0{i}_020000.sql.gz"))
        .collect();
    for n in &names {
        fs::write(d.join("local").join(n), n).unwrap();
        a.rest(&[
            "put",
            &a.container,
            &format!("ret/{n}"),
            d.join("local").join(n).to_str().unwrap(),
        ]);
    }
    let o = a.opts();
    let policy = "#{ keep_last: 2, keep_newest: 1, max_delete_percent: 100 }";
    let run = a.run(
        d,
        &format!(
            r#"let l = retention("local", {policy});
               let r = retention("az://{}/ret/", {policy}, {o});
               print("JSON:" + #{{ l: l, r: r }}.to_json());"#,
            a.container
        ),
        &[],
    );
    let v = json_after(run.expect_code(0), "JSON:");
    let names_of = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names_of(&v["l"]["kept"]), names_of(&v["r"]["kept"]));
    assert_eq!(names_of(&v["l"]["deleted"]), names_of(&v["r"]["deleted"]));
    assert_eq!(names_of(&v["r"]["deleted"]).len(), 4);
    let left = a.list("ret/");
    assert_eq!(
        left,
        [format!("ret/{}", names[4]), format!("ret/{}", names[5])]
    );
}

#[test]
fn azure_server_killed_mid_upload_leaves_no_blob_under_the_final_name() {
    let a = az();
    let dir = tempdir();
    let d = dir.path();
    let port = free_port();
    let ws = d.join("ws");
    let start = || {
        Command::new(env_var("MTN_TEST_AZURITE"))
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&ws)
            .args([
                "--silent",
                "--skipApiVersionCheck",
                "--disableProductStyleUrl",
                "--disableTelemetry",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_up = || {
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("azurite did not start on {port}");
    };
    let mut server = start();
    wait_up();
    let endpoint = format!("http://127.0.0.1:{port}/{}", a.account);
    a.rest_at(&endpoint, &["mkcontainer", "kill"]);
    // Azurite keeps its metadata in memory and saves it every few seconds: wait until the
    // container is on disk, or the restart below would not know it (SIGKILL loses the rest).
    let db = ws.join("__azurite_db_blob__.json");
    for _ in 0..300 {
        if fs::read_to_string(&db).is_ok_and(|t| t.contains("\"kill\"")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fs::read_to_string(&db).is_ok_and(|t| t.contains("\"kill\"")),
        "Azurite did not save the container in {}",
        db.display()
    );
    fs::write(d.join("big.bin"), random_bytes(300 * 1024 * 1024)).unwrap();
    let script = d.join("k.rhai");
    fs::write(
        &script,
        format!(
            r#"try {{ upload("big.bin", "az://kill/x/", #{{ endpoint: "{endpoint}", account: "{}", account_key: secret("AZ_KEY"), retries: 3, retry_timeout: "10s", concurrency: 1 }}); print("JSON:" + #{{ ok: true }}.to_json()); }}
               catch (e) {{ print("JSON:" + e.to_json()); }}"#,
            a.account
        ),
    )
    .unwrap();
    let child = mtn()
        .current_dir(d)
        .env("AZ_KEY", &a.key)
        .arg("run")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once some blocks are in (Azurite keeps them under its workspace), but
    // long before the last one.
    let stored = |dir: &Path| -> u64 {
        let mut total = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
        total
    };
    for _ in 0..600 {
        if stored(&ws) > 24 * 1024 * 1024 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        stored(&ws) < 250 * 1024 * 1024,
        "the upload went too far before the kill"
    );
    server.kill().unwrap();
    server.wait().unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    let v = json_after(&run, "JSON:");
    assert_ne!(v["ok"], true, "the upload cannot have finished: {v}");
    assert!(
        v["kind"] == "network" || v["kind"] == "server",
        "{v}\n{}",
        run.all()
    );
    // After a restart on the same workspace: uncommitted blocks are not a blob.
    let mut server = start();
    wait_up();
    let listed = a.rest_at(&endpoint, &["list", "kill", "x/"]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        listed.trim().is_empty(),
        "a partial blob is visible: {listed}"
    );
}
