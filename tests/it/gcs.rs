//! gs:// targets against fake-gcs-server (tests/env/36-gcs.sh). Objects are seeded and checked
//! through the emulator's JSON API, independently of object_store. Upstream fake-gcs-server has
//! no plain XML-API PUT, which object_store's upload uses, so `upload` is not exercised here.

use std::fs;
use std::process::Command;

use crate::support::*;

struct Gcs {
    endpoint: String,
    bucket: String,
    key: String,
}

fn gcs() -> Gcs {
    Gcs {
        endpoint: env_var("MTN_TEST_GCS_ENDPOINT"),
        bucket: env_var("MTN_TEST_GCS_BUCKET"),
        key: env_var("MTN_TEST_GCS_KEY"),
    }
}

/// One JSON-API request with the Python standard library; the response body.
fn api(method: &str, url: &str, body: &[u8], content_type: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request as u\n\
             r = u.Request(sys.argv[2], data=sys.stdin.buffer.read() or None, method=sys.argv[1], headers={'Content-Type': sys.argv[3]})\n\
             sys.stdout.write(u.urlopen(r).read().decode())",
            method,
            url,
            content_type,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body)?;
            c.wait_with_output()
        })
        .unwrap();
    stdout_of(out, &format!("{method} {url}"))
}

impl Gcs {
    /// Store `data` as `name`, with `sha256` in its metadata when given (as `upload` stores it).
    fn put(&self, name: &str, data: &[u8], sha256: Option<&str>) {
        let enc = name.replace('/', "%2F");
        api(
            "POST",
            &format!(
                "{}/upload/storage/v1/b/{}/o?uploadType=media&name={enc}",
                self.endpoint, self.bucket
            ),
            data,
            "application/octet-stream",
        );
        if let Some(s) = sha256 {
            api(
                "PATCH",
                &format!("{}/storage/v1/b/{}/o/{enc}", self.endpoint, self.bucket),
                format!(r#"{{"metadata": {{"sha256": "{s}"}}}}"#).as_bytes(),
                "application/json",
            );
        }
    }
    fn names(&self, prefix: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&api(
            "GET",
            &format!(
                "{}/storage/v1/b/{}/o?prefix={prefix}",
                self.endpoint, self.bucket
            ),
            b"",
            "application/json",
        ))
        .unwrap();
        let mut out: Vec<String> = v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| o["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
    fn opts(&self) -> String {
        format!(
            r#"#{{ endpoint: "{}", service_account_key: secret("GCS_KEY") }}"#,
            self.endpoint
        )
    }
}

#[test]
fn gcs_lists_downloads_verified_applies_retention_and_deletes() {
    let g = gcs();
    let dir = tempdir();
    let d = dir.path();
    let names: Vec<String> = (1..=4)
        .map(|i| format!("db_2026-03-0{i}_020000.sql.gz"))
        .collect();
    for n in &names {
        let data = format!("dump {n}");
        g.put(
            &format!("ret/{n}"),
            data.as_bytes(),
            Some(&sha256_hex(data.as_bytes())),
        );
    }
    // The newest one's bytes are replaced under its stored sha256: a download must refuse it.
    let bad = &names[3];
    g.put(
        &format!("bad/{bad}"),
        b"tampered",
        Some(&sha256_hex(b"original")),
    );
    fs::write(d.join("restore.gz"), "old local copy").unwrap();

    let o = g.opts();
    let b = &g.bucket;
    let run = run_script_env(
        d,
        "g.rhai",
        &format!(
            r#"
let l = list_remote("gs://{b}/ret/", {o} + #{{ checksums: true }});
let n = newest("gs://{b}/ret/", {o});
let ok = download(n.url, "newest.gz", {o});
let bad = ();
try {{ download("gs://{b}/bad/{bad}", "restore.gz", {o}); }} catch (e) {{ bad = e; }}
let r = retention("gs://{b}/ret/", #{{ keep_last: 2, max_delete_percent: 100 }}, {o});
delete_remote("gs://{b}/bad/{bad}", {o});
print("JSON:" + #{{ l: l, n: n, ok: ok, bad: bad, r: r }}.to_json());
"#
        ),
        &[],
        &[("GCS_KEY", &g.key)],
    );
    let v = json_after(run.expect_code(0), "JSON:");
    let listed = keys(&v["l"]);
    assert_eq!(listed.len(), 4, "{v}");
    assert_eq!(
        v["l"][0]["sha256"],
        sha256_hex(format!("dump {}", names[0]).as_bytes()).as_str()
    );
    assert_eq!(v["n"]["url"], format!("gs://{b}/ret/{}", names[3]).as_str());
    assert_eq!(v["ok"]["verified"], "sha256", "{v}");
    assert_eq!(
        fs::read_to_string(d.join("newest.gz")).unwrap(),
        format!("dump {}", names[3])
    );
    assert_eq!(v["bad"]["kind"], "verification", "{v}");
    assert_eq!(
        fs::read_to_string(d.join("restore.gz")).unwrap(),
        "old local copy"
    );
    assert_eq!(v["r"]["deleted"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        g.names("ret/"),
        [format!("ret/{}", names[2]), format!("ret/{}", names[3])]
    );
    assert!(g.names("bad/").is_empty());
}
