//! The store against hostile input and a hostile environment:
//! - the key attack list (path traversal, absolute paths, NUL, `.git` and `.gitmodules`
//!   variants, Unicode look-alikes, 64 KiB keys) creates no file outside the store, reads back
//!   exactly, and leaves `git fsck --strict` clean;
//! - hooks planted in the cold repository never run, through libgit2 or the `git` command;
//! - a remote URL carrying a token is refused without repeating or storing the token;
//! - files and directories get the documented modes under a umask of 000.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use strata::tiering::clock::Clock;
use strata::{Config, Criticality, Stage, Store, Transport, WriteOptions};

fn attack_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = [
        "../../../../tmp/strata-escape",
        "/etc/passwd",
        "/",
        "..",
        ".",
        "a/../../b",
        "./.git/config",
        ".git",
        ".GIT",
        ".Git/hooks/post-commit",
        ".git\u{200c}",
        "\u{200b}.git",
        ".gitmodules",
        ".GITMODULES",
        "GIT~1",
        "back\\slash\\..\\..\\x",
        "\u{2024}\u{2024}/escape",
        "\u{ff0f}etc\u{ff0f}passwd",
        "con",
        "refs/heads/main",
        "HEAD",
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    keys.push(b"nul\0byte".to_vec());
    keys.push(b"\xff\xfe not utf-8".to_vec());
    keys.push(vec![b'a'; 65_536]);
    keys.push(b"../".repeat(21_845));
    keys.push(vec![b'.'; 300]);
    keys
}

/// The error and its causes, one after another.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Every path under `root`, relative to it.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(root).unwrap().to_owned());
        }
    }
    out.sort();
    out
}

fn open(dir: &Path, config: Config, transport: Transport) -> Store {
    let clock = common::clock();
    Store::builder(dir)
        .config(config)
        .clock(clock as Arc<dyn Clock>)
        .background(false)
        .transport(transport)
        .open()
        .unwrap()
}

#[test]
fn the_key_attack_list_stays_inside_the_store_and_git_stays_clean() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let store = open(&dir, Config::default(), Transport::Auto);
    let keys = attack_keys();
    for (i, key) in keys.iter().enumerate() {
        store
            .put_with(
                key,
                format!("v{i}"),
                WriteOptions::criticality(Criticality::High),
            )
            .unwrap();
    }
    store.sync(Stage::Cold).unwrap();
    store.flush().unwrap();
    for (i, key) in keys.iter().enumerate() {
        let got = store.get(key).unwrap().unwrap();
        assert_eq!(got.as_bytes(), format!("v{i}").as_bytes());
        assert_eq!(
            store.history(key).unwrap().len(),
            1,
            "key {i} reached cold once"
        );
    }
    let outside: Vec<PathBuf> = tree(root.path())
        .into_iter()
        .filter(|p| !p.starts_with("store"))
        .collect();
    assert!(outside.is_empty(), "written outside the store: {outside:?}");
    assert!(!Path::new("/tmp/strata-escape").exists());
    common::git(&dir.join(strata::COLD_DIR), &["fsck", "--strict"]);
    store.close().unwrap();

    let store = common::reopen_real(&dir, &Config::default());
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            store.get(key).unwrap().unwrap().as_bytes(),
            format!("v{i}").as_bytes()
        );
    }
}

fn plant_hooks(hooks: &Path, marker: &Path) {
    std::fs::create_dir_all(hooks).unwrap();
    for name in [
        "pre-commit",
        "post-commit",
        "pre-push",
        "reference-transaction",
        "post-update",
        "pre-auto-gc",
        "post-checkout",
    ] {
        let hook = hooks.join(name);
        std::fs::write(
            &hook,
            format!("#!/bin/sh\necho {name} >> '{}'\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn hooks_planted_in_the_cold_repository_never_run() {
    let root = tempfile::tempdir().unwrap();
    let marker = root.path().join("hook-ran");
    for transport in [Transport::Libgit2, Transport::Command] {
        let dir = root.path().join(format!("store-{transport:?}"));
        let remote = common::bare(&root.path().join(format!("remote-{transport:?}.git")));
        let config = Config {
            remote: Some(remote),
            ..Config::default()
        };
        let store = open(&dir, config.clone(), transport);
        store.close().unwrap();
        let cold = dir.join(strata::COLD_DIR);
        plant_hooks(&cold.join("hooks"), &marker);
        // A planted config pointing elsewhere is overridden too.
        let elsewhere = root.path().join("elsewhere-hooks");
        plant_hooks(&elsewhere, &marker);
        common::git(
            &cold,
            &["config", "core.hooksPath", &elsewhere.display().to_string()],
        );

        let store = open(&dir, config, transport);
        for i in 0..3 {
            store
                .put_with(
                    format!("task:{i}"),
                    "x",
                    WriteOptions::criticality(Criticality::Critical),
                )
                .unwrap();
            store.sync(Stage::Remote).unwrap();
        }
        store.compact().unwrap();
        store.close().unwrap();
        assert!(
            !marker.exists(),
            "{transport:?}: {}",
            std::fs::read_to_string(&marker).unwrap_or_default()
        );
    }
}

#[test]
fn a_token_in_the_remote_url_is_refused_and_never_shown_or_stored() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let secret = "tok-S3CRET-4242";
    let config = Config {
        remote: Some(format!("https://alice:{secret}@127.0.0.1:9/team/tasks.git")),
        ..Config::default()
    };
    // Credentials belong in a credential helper or ssh keys: such a URL is refused at open,
    // before anything is written, and the refusal does not repeat the token.
    let error = Store::builder(&dir)
        .config(config)
        .background(false)
        .open()
        .unwrap_err();
    let shown = format!("{} {error:?}", chain(&error));
    assert!(shown.contains("127.0.0.1"), "the remote is named: {shown}");
    assert!(!shown.contains(secret), "the token leaked: {shown}");
    for path in tree(root.path()) {
        let full = root.path().join(&path);
        if full.is_file() {
            let bytes = std::fs::read(&full).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "the token was stored in {}",
                full.display()
            );
        }
    }

    // A push failure on a remote without credentials names the remote and its failure.
    let config = Config {
        remote: Some("https://127.0.0.1:9/team/tasks.git".into()),
        push_attempts: 1,
        push_retry_secs: 0,
        ..Config::default()
    };
    let store = open(&root.path().join("plain"), config, Transport::Auto);
    store
        .put_with(
            "task:1",
            "x",
            WriteOptions::criticality(Criticality::Critical),
        )
        .unwrap();
    let error = store.sync(Stage::Remote).unwrap_err();
    let shown = chain(&error);
    assert!(shown.contains("127.0.0.1"), "{shown}");
}

const UMASK_CHILD: &str = "STRATA_UMASK_CHILD";

/// Run by `modes_hold_under_a_zero_umask` in a child whose umask is 000.
#[test]
fn umask_child() {
    let Ok(dir) = std::env::var(UMASK_CHILD) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let store = open(&dir.join("store"), Config::default(), Transport::Auto);
    store
        .put_with("doc:1", "x", WriteOptions::criticality(Criticality::High))
        .unwrap();
    store.put("note:1", "y").unwrap();
    store.flush().unwrap();
    store.sync(Stage::Cold).unwrap();
    store.checkpoint(dir.join("backup")).unwrap();
    store.close().unwrap();
}

#[test]
fn modes_hold_under_a_zero_umask() {
    let root = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" --exact umask_child --nocapture --test-threads=1")
        .arg(&exe)
        .env(UMASK_CHILD, root.path())
        .status()
        .unwrap();
    assert!(status.success());
    let store = root.path().join("store");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700);
    assert_eq!(mode(&root.path().join("backup")), 0o700);
    for base in [store.clone(), root.path().join("backup")] {
        for path in tree(&base) {
            if path.starts_with(strata::COLD_DIR) {
                continue;
            }
            let full = base.join(&path);
            let expected = if full.is_dir() {
                0o700
            } else if full.extension().is_some_and(|e| e == "seg") {
                0o400
            } else {
                0o600
            };
            assert_eq!(mode(&full), expected, "{}", full.display());
        }
    }
}
