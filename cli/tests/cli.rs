//! The `strata` binary, run as scripts run it: exact output, exit codes, one-line errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn strata(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run strata")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = strata(dir, args);
    assert!(
        out.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn bare(path: &Path) {
    let out = Command::new("git")
        .args(["init", "--bare", "-q", "-b", "main"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn put_get_del_scan_keep_their_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    ok(&dir, &["init"]);
    let again = strata(&dir, &["init"]);
    assert_eq!(again.status.code(), Some(2));

    ok(&dir, &["put", "a", "one"]);
    assert_eq!(
        ok(&dir, &["get", "a"]),
        "one",
        "exactly the bytes, nothing added"
    );

    let binary: Vec<u8> = (0..=255u8).collect();
    let out = with_stdin(&dir, &["put", "bin", "-"], &binary);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = strata(&dir, &["get", "bin"]);
    assert_eq!(got.stdout, binary, "standard input in, exact bytes out");

    let missing = strata(&dir, &["get", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    let message = String::from_utf8(missing.stderr).unwrap();
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("nope"), "{message}");

    for key in ["b", "c", "d"] {
        ok(&dir, &["put", key, key]);
    }
    ok(&dir, &["del", "c"]);
    assert_eq!(strata(&dir, &["get", "c"]).status.code(), Some(1));
    assert_eq!(ok(&dir, &["scan"]), "a\nb\nbin\nd\n");
    assert_eq!(ok(&dir, &["scan", "--prefix", "b"]), "b\nbin\n");
    assert_eq!(ok(&dir, &["scan", "--limit", "2"]), "a\nb\n");
    let json = ok(&dir, &["scan", "--json", "--prefix", "b"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["key"], "b");
    assert_eq!(lines[0]["value"], "b");
    assert!(lines[1]["value_base64"].is_string(), "{json}");

    ok(&dir, &["put", "ttl", "x", "--ttl", "3600"]);
    assert_eq!(ok(&dir, &["get", "ttl"]), "x");

    let dump = ok(&dir, &["wal", "dump"]);
    let first: serde_json::Value = serde_json::from_str(dump.lines().next().unwrap()).unwrap();
    assert_eq!(first["key"], "a");
    assert_eq!(first["value"], "one");
    assert_eq!(first["criticality"], "medium");

    let stats: serde_json::Value = serde_json::from_str(&ok(&dir, &["stats", "--json"])).unwrap();
    assert_eq!(stats["level"], "normal");
    assert!(ok(&dir, &["stats"]).contains("breaker"));
    assert!(ok(&dir, &["compact"]).contains("segments"));
    assert_eq!(ok(&dir, &["get", "d"]), "d");
    assert!(ok(&dir, &["verify"]).starts_with("ok:"));
}

#[test]
fn git_commands_commit_push_pull_clone_and_read_the_past() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    bare(&remote);
    let url = remote.display().to_string();
    let dir = tmp.path().join("store");
    ok(&dir, &["init", "--remote", &url]);
    assert!(ok(&dir, &["classify", "task:*", "critical"]).contains("critical"));
    ok(&dir, &["put", "task:1", "{\"v\":1}"]);
    let first = ok(&dir, &["sync"]);
    let commit = first.split_whitespace().nth(1).unwrap().to_owned();
    ok(&dir, &["put", "task:1", "{\"v\":2}"]);
    ok(&dir, &["sync"]);
    let pushed = ok(&dir, &["push"]);
    assert!(pushed.contains("verified"), "{pushed}");

    assert_eq!(ok(&dir, &["get", "task:1"]), "{\"v\":2}");
    assert_eq!(ok(&dir, &["get", "task:1", "--at", &commit]), "{\"v\":1}");
    assert_eq!(
        ok(&dir, &["get", "task:1", "--at", &commit[..10]]),
        "{\"v\":1}"
    );
    assert_eq!(ok(&dir, &["get", "task:1", "--at", "main~1"]), "{\"v\":1}");
    assert_eq!(
        strata(&dir, &["get", "task:1", "--at", "@0"]).status.code(),
        Some(1)
    );
    let history = ok(&dir, &["history", "task:1"]);
    assert_eq!(history.lines().count(), 2, "{history}");
    assert!(history.lines().next().unwrap().starts_with(&commit));

    let copy = tmp.path().join("copy");
    let cloned = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["clone", &url])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        cloned.status.success(),
        "{}",
        String::from_utf8_lossy(&cloned.stderr)
    );
    assert_eq!(ok(&copy, &["get", "task:1"]), "{\"v\":2}");
    ok(&copy, &["put", "task:2", "{}", "--criticality", "critical"]);
    ok(&copy, &["push"]);
    assert!(ok(&dir, &["pull"]).contains("merged"));
    assert_eq!(ok(&dir, &["get", "task:2"]), "{}");
}

#[test]
fn errors_are_one_line_with_a_nonzero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("missing");
    for args in [&["get", "k"][..], &["put", "k", "v"], &["scan"], &["stats"]] {
        let out = strata(&nowhere, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("strata init"), "{err}");
    }
    assert!(!nowhere.exists(), "no command but init creates a store");

    let dir = tmp.path().join("store");
    ok(&dir, &["init"]);
    let push = strata(&dir, &["push"]);
    assert_eq!(push.status.code(), Some(2));
    assert!(String::from_utf8(push.stderr)
        .unwrap()
        .contains("no remote"));
    let bad = strata(&dir, &["classify", "bad\\q", "high"]);
    assert_eq!(bad.status.code(), Some(2));
    let empty = strata(&dir, &["put", "", "v"]);
    assert_eq!(empty.status.code(), Some(2));
}

#[test]
fn verify_exits_nonzero_naming_the_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    ok(&dir, &["init"]);
    for i in 0..50 {
        ok(&dir, &["put", &format!("k{i:02}"), "some value"]);
    }
    ok(&dir, &["compact"]);
    let segment = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[40] ^= 0x08;
    let mut perms = std::fs::metadata(&segment).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&segment, perms).unwrap();
    std::fs::write(&segment, &bytes).unwrap();
    let out = strata(&dir, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("segment"), "{err}");
}

#[test]
fn the_demo_writes_at_every_criticality() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("strata-data");
    let out = ok(&dir, &["demo"]);
    for needle in [
        "memory only",
        "warm segment",
        "git commit",
        "remote, verified",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    assert!(tmp
        .path()
        .join("strata-data-remote.git")
        .join("HEAD")
        .exists());
    // A second run reopens the same store cleanly.
    assert!(ok(&dir, &["demo"]).contains("clean"));
}

#[test]
fn checkpoint_verify_restore_export_and_import() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    ok(&dir, &["init"]);
    ok(&dir, &["classify", "task:*", "high"]);
    ok(&dir, &["put", "task:1", "write the docs"]);
    ok(&dir, &["put", "note", "medium"]);
    ok(&dir, &["sync"]);

    let cp = tmp.path().join("cp");
    let cp_arg = cp.to_str().unwrap();
    let wrote = ok(&dir, &["checkpoint", cp_arg]);
    assert!(wrote.starts_with(&format!("wrote {cp_arg} (")), "{wrote}");
    assert!(ok(&dir, &["verify-backup", cp_arg]).starts_with("ok: "));
    let restored = tmp.path().join("restored");
    let line = ok(&restored, &["restore", cp_arg]);
    assert!(
        line.starts_with(&format!("restored {cp_arg} into ")),
        "{line}"
    );
    assert_eq!(ok(&restored, &["get", "task:1"]), "write the docs");
    assert_eq!(ok(&restored, &["get", "note"]), "medium");
    // A second restore into a store is refused, in one line.
    let again = strata(&restored, &["restore", cp_arg]);
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&again.stderr).lines().count(), 1);

    // Rotation: today's checkpoint, once.
    let root = tmp.path().join("rotating");
    let first = ok(&dir, &["checkpoint", "--rotate", root.to_str().unwrap()]);
    assert_eq!(first.lines().count(), 2, "{first}");
    let second = ok(&dir, &["checkpoint", "--rotate", root.to_str().unwrap()]);
    assert!(second.starts_with("today's checkpoint exists"), "{second}");

    // Damage is named, with exit code 1.
    let bundle = cp.join("cold.bundle");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&bundle, bytes).unwrap();
    let damaged = strata(&dir, &["verify-backup", cp_arg]);
    assert_eq!(damaged.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("cold.bundle"));

    // Export to standard output, import from standard input into a new store.
    let export = ok(&dir, &["export", "-"]);
    assert!(
        export.contains(r#"{"type":"kv","key":"task:1","value":"write the docs"}"#),
        "{export}"
    );
    let graph = concat!(
        r#"{"type":"entity","name":"a","entityType":"t","observations":["x"]}"#,
        "\n",
        r#"{"type":"relation","from":"a","to":"b","relationType":"r"}"#,
        "\n"
    );
    let copy = tmp.path().join("copy");
    ok(&copy, &["init"]);
    let out = with_stdin(
        &copy,
        &["import", "-"],
        format!("{export}{graph}").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("imported 1 entities, 1 relations, 2 values; 1 relations"),
        "{summary}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"b\""));
    assert_eq!(ok(&copy, &["get", "task:1"]), "write the docs");
    // A bad line: its number, exit 2, nothing written.
    let bad = with_stdin(
        &copy,
        &["import", "-"],
        b"{\"type\":\"kv\",\"key\":\"x\",\"value\":\"1\"}\nnot json\n",
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 2"));
    assert_eq!(strata(&copy, &["get", "x"]).status.code(), Some(1));
    // Export to a file never overwrites one.
    let file = tmp.path().join("out.jsonl");
    ok(&dir, &["export", file.to_str().unwrap()]);
    assert_eq!(
        strata(&dir, &["export", file.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn reads_work_beside_a_running_writer_and_writes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    ok(&dir, &["init"]);
    let writer = strata::Store::builder(&dir)
        .background(false)
        .open()
        .unwrap();
    writer.put("a", "one").unwrap();
    writer.put("b", "two").unwrap();

    assert_eq!(ok(&dir, &["get", "a"]), "one");
    assert_eq!(ok(&dir, &["scan"]), "a\nb\n");
    assert!(ok(&dir, &["stats"]).contains("lsn"));
    let dump = ok(&dir, &["wal", "dump"]);
    assert!(dump.contains(r#""key":"b""#), "{dump}");
    assert!(ok(&dir, &["export", "-"]).contains(r#""key":"a""#));
    let put = strata(&dir, &["put", "c", "three"]);
    assert_eq!(put.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&put.stderr).contains("locked"));
    writer.close().unwrap();
    assert!(dir.join(strata::CLOSED_FILE).exists());
}
