//! Incremental push of the remote tier (`strata-gitsync`) to a loopback `git daemon`, beside
//! the `git push` command pushing the same increment in the same run.
//!
//! A cold store first pushes a history of 20 commits of 1,000 changes (so the remote is not
//! trivially small); then, 15 times, one more 1,000-change commit is made and pushed. Timed:
//!
//! - strata: `Remote::push` over `git://127.0.0.1` (libgit2): fetch the remote branch, find it
//!   contained in the local history, push, read the remote branch back to verify;
//! - baseline: `git push git://127.0.0.1/… main`, from the same repository to a second bare
//!   repository served by the same daemon, right after; it only pushes, it does not verify.
//!
//! The medians are printed with their ratio. Target: an incremental push under 100 ms.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_gitsync::{ColdOptions, ColdStore, Remote, RemoteOptions, Trigger};
use strata_tiering::clock::SystemClock;
use strata_tiering::{Change, Key};

const HISTORY: usize = 20;
const PUSHES: usize = 15;
const BATCH: u64 = 1_000;

fn bare(path: &Path) {
    let status = Command::new("git")
        .args(["init", "--bare", "--quiet", "--initial-branch=main"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn daemon(base: &Path) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The `git-daemon` program itself: `git daemon` would run it as a child of its own, which
    // killing `git` leaves running.
    let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
    let program = Path::new(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon");
    let mut child = Command::new(program)
        .args(["--reuseaddr", "--listen=127.0.0.1", "--export-all"])
        .arg("--enable=receive-pack")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("git daemon did not start");
}

fn batch(seqno: &mut u64) -> Vec<Change> {
    (0..BATCH)
        .map(|i| {
            *seqno += 1;
            let key = format!("task:{}", (*seqno * 7 + i) % 50_000);
            let value = format!("{{\"title\":\"task {seqno}\",\"done\":false,\"n\":{i}}}");
            Change::put(
                Key::new(key.as_bytes()).unwrap(),
                *seqno,
                value.into_bytes(),
            )
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    bare(&served.join("strata.git"));
    bare(&served.join("plain.git"));
    let (mut child, port) = daemon(&served);
    let cold = dir.path().join("cold.git");
    let store =
        Arc::new(ColdStore::open(&cold, ColdOptions::default(), Arc::new(SystemClock)).unwrap());
    let url = format!("git://127.0.0.1:{port}/strata.git");
    let plain_url = format!("git://127.0.0.1:{port}/plain.git");
    let remote = Remote::new(
        store.clone(),
        RemoteOptions::new(&url),
        Arc::new(SystemClock),
    )
    .unwrap();
    let git_push = || {
        let start = Instant::now();
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&cold)
            .args(["push", "--quiet", &plain_url, "main"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        start.elapsed()
    };
    let mut seqno = 0;
    for _ in 0..HISTORY {
        store
            .commit(&batch(&mut seqno), Trigger::Manual, None)
            .unwrap();
    }
    remote.push().unwrap();
    git_push();
    let (mut strata, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..PUSHES {
        store
            .commit(&batch(&mut seqno), Trigger::Manual, None)
            .unwrap();
        let start = Instant::now();
        let report = remote.push().unwrap();
        strata.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(Some(report.head), store.head());
        plain.push(git_push().as_secs_f64() * 1e3);
    }
    let _ = child.kill();
    let _ = child.wait();
    let (strata, plain) = (median(strata), median(plain));
    println!("incremental push of one 1,000-change commit to a loopback git daemon ({PUSHES} pushes, medians):");
    println!("  strata Remote::push (fetch, push, verify): {strata:.1} ms");
    println!("  git push (push only):                      {plain:.1} ms");
    println!("  ratio strata / git push: {:.2}x", strata / plain);
    println!(
        "target incremental push < 100 ms: {}",
        if strata < 100.0 { "met" } else { "NOT met" }
    );
}
