//! The plain-git baseline of the cold-tier benchmark, and ways to size a repository.
//!
//! [`PlainGit`] is what one would do without a cold tier: a repository with a work tree, one
//! file per key, and for each batch the files written, `git add -A` and `git commit`, each a
//! `git` process. It runs with the same durability settings the cold store gives its own
//! repository ([`FSYNC_SETTINGS`]), with hooks, signing and automatic gc off, and with the
//! user's and the system's git configuration ignored, so nothing outside the run changes it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The fsync settings of every plain `git` process: those the cold store sets in its own
/// repository's config, so both sides pay for durability the same way.
pub const FSYNC_SETTINGS: [&str; 2] = ["core.fsync=all", "core.fsyncMethod=fsync"];

/// Settings that keep anything but the measured work out of the plain `git` processes.
const QUIET_SETTINGS: [&str; 6] = [
    "core.hooksPath=/dev/null",
    "user.name=strata-bench",
    "user.email=bench@strata.invalid",
    "commit.gpgSign=false",
    // The cold store never gcs on its own either; a background gc would blur the timings.
    "gc.auto=0",
    "maintenance.auto=false",
];

/// A `git` command with the isolated environment and settings of the baseline.
fn git() -> Command {
    let mut command = Command::new("git");
    command
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for setting in FSYNC_SETTINGS.iter().chain(&QUIET_SETTINGS) {
        command.args(["-c", setting]);
    }
    command
}

/// Runs `command` and turns a failure into an error carrying what git printed.
fn run(command: &mut Command) -> io::Result<Vec<u8>> {
    let output = command.stdout(Stdio::piped()).output()?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(io::Error::other(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A non-bare repository with a work tree, committed to by `git` processes.
#[derive(Debug)]
pub struct PlainGit {
    work: PathBuf,
}

impl PlainGit {
    /// Creates a repository with branch `main` in `work`, which must not exist yet.
    pub fn init(work: &Path) -> io::Result<PlainGit> {
        run(git().args(["init", "-q", "-b", "main"]).arg(work))?;
        Ok(PlainGit {
            work: work.to_owned(),
        })
    }

    /// The work tree (its `.git` directory is the repository).
    pub fn work_tree(&self) -> &Path {
        &self.work
    }

    /// Writes `files` (paths relative to the work tree, parent directories created as
    /// needed), stages everything with `git add -A`, and commits it with `message`.
    pub fn commit(&self, files: &[(String, Vec<u8>)], message: &str) -> io::Result<()> {
        for (path, content) in files {
            let path = self.work.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, content)?;
        }
        run(git().arg("-C").arg(&self.work).args(["add", "-A"]))?;
        run(git()
            .arg("-C")
            .arg(&self.work)
            .args(["commit", "-q", "-m", message]))?;
        Ok(())
    }
}

/// Apparent size in bytes of every file under `path`, recursively (symbolic links not
/// followed).
pub fn dir_bytes(path: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// The number and total size of the blobs in the tree of `rev`, as `git ls-tree -r -l`
/// reports them, for the repository (bare or not) at `git_dir`.
pub fn tree_blob_bytes(git_dir: &Path, rev: &str) -> io::Result<(u64, u64)> {
    let listing = run(git()
        .arg("--git-dir")
        .arg(git_dir)
        .args(["ls-tree", "-r", "-l", rev]))?;
    let (mut count, mut bytes) = (0, 0);
    // Each line: `<mode> blob <id> <size>\t<path>`.
    for line in String::from_utf8_lossy(&listing).lines() {
        let fields: Vec<&str> = line
            .split('\t')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if let [_, "blob", _, size] = fields.as_slice() {
            count += 1;
            bytes += size
                .parse::<u64>()
                .map_err(|_| io::Error::other(format!("unexpected ls-tree line {line:?}")))?;
        }
    }
    Ok((count, bytes))
}

/// The number and total size of every blob in the object database of `git_dir`, reachable or
/// not, as `git cat-file --batch-all-objects` reports them: the uncompressed bytes of every
/// version of every file the history holds.
pub fn all_blob_bytes(git_dir: &Path) -> io::Result<(u64, u64)> {
    let listing = run(git().arg("--git-dir").arg(git_dir).args([
        "cat-file",
        "--batch-all-objects",
        "--batch-check=%(objecttype) %(objectsize)",
    ]))?;
    let (mut count, mut bytes) = (0, 0);
    for line in String::from_utf8_lossy(&listing).lines() {
        if let Some(size) = line.strip_prefix("blob ") {
            count += 1;
            bytes += size
                .parse::<u64>()
                .map_err(|_| io::Error::other(format!("unexpected cat-file line {line:?}")))?;
        }
    }
    Ok((count, bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_commits_land_and_are_sized() {
        let dir = tempfile::tempdir().unwrap();
        let repo = PlainGit::init(&dir.path().join("plain")).unwrap();
        let files = vec![
            ("a/b/one".to_owned(), b"{\"n\":1}".to_vec()),
            ("a/c/two".to_owned(), b"{\"n\":22}".to_vec()),
        ];
        repo.commit(&files, "first").unwrap();
        repo.commit(&files[..1], "nothing new").unwrap_err();
        let git_dir = repo.work_tree().join(".git");
        assert_eq!(tree_blob_bytes(&git_dir, "main").unwrap(), (2, 15));
        assert_eq!(all_blob_bytes(&git_dir).unwrap(), (2, 15));
        assert!(dir_bytes(&git_dir).unwrap() > 15);
    }
}
