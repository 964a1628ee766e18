//! `newest(location, #{ pattern })`: the newest backup of a local folder and of an S3 prefix (the
//! SeaweedFS of tests/env/30-s3.sh), with sidecars, temporary files and sub-folders ignored.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn file(path: &Path, minutes_ago: u32) {
    std::fs::write(path, b"backup").unwrap();
    let ok = Command::new("touch")
        .arg("-d")
        .arg(format!("{minutes_ago} minutes ago"))
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn newest_picks_the_newest_backup_of_a_folder_and_of_a_bucket() {
    let dir = tempdir();
    let b = dir.path().join("backups");
    std::fs::create_dir_all(b.join("sub")).unwrap();
    file(&b.join("app-1.sql.gz"), 30);
    file(&b.join("app-2.sql.gz"), 20);
    file(&b.join("other-3.sql.gz"), 5);
    // Newer, but not backups: a sidecar, a temporary file, a hidden file, a file in a sub-folder.
    file(&b.join("app-2.sql.gz.sha256"), 1);
    file(&b.join(".app-9.sql.gz.mtn-1234.tmp"), 1);
    file(&b.join(".hidden"), 1);
    file(&b.join("sub/app-8.sql.gz"), 1);

    let r = run_script(
        dir.path(),
        "n.rhai",
        r#"print(newest("./backups", #{ pattern: "app-*" }).path);
print(newest("./backups").path);"#,
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].ends_with("/backups/app-2.sql.gz"), "{lines:?}");
    assert!(lines[1].ends_with("/backups/other-3.sql.gz"), "{lines:?}");

    let r = run_script(
        dir.path(),
        "m.rhai",
        r#"newest("./backups", #{ pattern: "nope-*" });"#,
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("no backup matching \"nope-*\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("[not_found]"), "{}", r.stderr);

    // The same rule on S3: upload two, the later one is the newest; its sidecar-free listing.
    let endpoint = env_var("MTN_TEST_S3_ENDPOINT");
    let bucket = env_var("MTN_TEST_S3_BUCKET");
    let prefix = format!("newest-{}", std::process::id());
    let env = [
        ("AWS_ACCESS_KEY_ID", env_var("MTN_TEST_S3_ACCESS_KEY")),
        ("AWS_SECRET_ACCESS_KEY", env_var("MTN_TEST_S3_SECRET_KEY")),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let script = format!(
        r#"upload("./backups/app-1.sql.gz", "s3://{bucket}/{prefix}/");
sleep(1.1);
upload("./backups/app-2.sql.gz", "s3://{bucket}/{prefix}/");
upload("./backups/other-3.sql.gz", "s3://{bucket}/{prefix}/sub/");
let n = newest("s3://{bucket}/{prefix}", #{{ pattern: "*.sql.gz" }});
print(n.url);
print(n.path);"#
    );
    let r = run_script_env(dir.path(), "s.rhai", &script, &[], &env);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("s3://{bucket}/{prefix}/app-2.sql.gz"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "", "no local path for a bucket: {lines:?}");
}
