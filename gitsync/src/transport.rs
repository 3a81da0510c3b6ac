//! Moving commits between the cold repository and a remote: read the remote's branch, fetch
//! it, and update it by compare-and-swap.
//!
//! ```text
//!   local path, file://   objects copied as one pack; the remote ref moves by compare-and-swap
//!                         under git's ref lock (libgit2's own local push would overwrite it)
//!   git://                libgit2's smart protocol; the server checks the old value it was sent
//!   ssh://, https://, …   the `git` command, so the user's ssh settings and credential helpers
//!                         apply; it never prompts (GIT_TERMINAL_PROMPT=0)
//! ```
//!
//! Every push names the old value it expects, so two writers racing for the same remote can
//! never overwrite each other: the loser is told and merges. A URL's user name and password
//! are never written to the repository's config (remotes are anonymous) nor shown in an error
//! ([`redact`]).

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use git2::{
    AutotagOption, Buf, ErrorCode, FetchOptions, Oid, PushOptions, RemoteCallbacks, Repository,
};

use crate::error::{Error, Result};
use crate::repo::BRANCH;

/// Where a fetched remote head is kept in the local repository.
pub const TRACKING: &str = "refs/strata/remote";

/// The commit being pushed, named so that libgit2 can push it.
const PUSHING: &str = "refs/strata/pushing";

/// How to reach a remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// By the URL: local paths and `file://` directly, `git://` with libgit2, anything else with
    /// the `git` command.
    #[default]
    Auto,
    /// libgit2 for every URL.
    Libgit2,
    /// The `git` command for every URL.
    Command,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The remote's branch now points at the pushed commit.
    Updated,
    /// Another writer moved the branch first (or holds its lock): fetch, merge, push again.
    Raced(String),
    /// The remote refused for its own reasons: a hook declined, or a rule forbids.
    Rejected(String),
}

impl Pushed {
    /// Sorts a refusal the remote reported by its reason.
    fn refused(reason: String) -> Pushed {
        let race = [
            "fetch first",
            "non-fast-forward",
            "stale info",
            "lock",
            "failed to update ref",
        ];
        if race.iter().any(|r| reason.contains(r)) {
            Pushed::Raced(reason)
        } else {
            Pushed::Rejected(reason)
        }
    }
}

/// A remote and the way to reach it.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Local(PathBuf),
    Libgit2(String),
    Command(String),
}

impl Endpoint {
    pub fn new(url: &str, transport: Transport) -> Endpoint {
        let local = local_path(url);
        match (transport, local) {
            (Transport::Libgit2, _) => Endpoint::Libgit2(url.to_owned()),
            (Transport::Command, _) => Endpoint::Command(url.to_owned()),
            (Transport::Auto, Some(path)) => Endpoint::Local(path),
            (Transport::Auto, None) if url.starts_with("git://") => {
                Endpoint::Libgit2(url.to_owned())
            }
            (Transport::Auto, None) => Endpoint::Command(url.to_owned()),
        }
    }

    fn url(&self) -> String {
        match self {
            Endpoint::Local(path) => path.display().to_string(),
            Endpoint::Libgit2(url) | Endpoint::Command(url) => url.clone(),
        }
    }

    fn failure(&self, op: &str, detail: impl std::fmt::Display) -> Error {
        let url = self.url();
        Error::Remote {
            url: redact(&url),
            op: op.to_owned(),
            detail: redact_in(&detail.to_string(), &url),
        }
    }

    /// The commit the remote's branch points at, read from the remote itself.
    pub fn remote_head(&self) -> Result<Option<Oid>> {
        match self {
            Endpoint::Local(path) => {
                let remote = open_remote(self, path)?;
                crate::repo::head(&remote).map_err(|e| self.failure("read the branch", e))
            }
            Endpoint::Libgit2(url) => {
                let heads = crate::advertised::advertised_refs(url)
                    .map_err(|e| self.failure("list refs", e))?;
                Ok(heads
                    .into_iter()
                    .find(|(name, _)| name == BRANCH)
                    .map(|(_, oid)| oid))
            }
            Endpoint::Command(url) => {
                let out = git(self, None, &["ls-remote", url, BRANCH])?;
                let Some(line) = out.lines().find(|l| l.ends_with(BRANCH)) else {
                    return Ok(None);
                };
                let id = line.split_whitespace().next().unwrap_or_default();
                Oid::from_str(id)
                    .map(Some)
                    .map_err(|_| self.failure("ls-remote", format!("unexpected output {line:?}")))
            }
        }
    }

    /// Fetches the remote's branch into `TRACKING` of the repository at `local`; returns the
    /// fetched commit, or `None` if the remote has no branch yet.
    pub fn fetch(&self, local: &Path) -> Result<Option<Oid>> {
        let repo = Repository::open_bare(local).map_err(|e| Error::git("open for fetch", e))?;
        let tip = match self {
            Endpoint::Local(path) => {
                let remote = open_remote(self, path)?;
                let Some(tip) =
                    crate::repo::head(&remote).map_err(|e| self.failure("read the branch", e))?
                else {
                    return Ok(None);
                };
                copy_objects(&remote, &repo, tip).map_err(|e| self.failure("fetch", e))?;
                tip
            }
            Endpoint::Libgit2(url) => {
                let Some(tip) = self.remote_head()? else {
                    return Ok(None);
                };
                if has_commit(&repo, tip) {
                    // Nothing new there (the usual case for a writer that pushes): skip the
                    // transfer and its connection.
                    return record_tip(&repo, tip).map(Some);
                }
                let mut remote = repo
                    .remote_anonymous(url)
                    .map_err(|e| self.failure("fetch", e))?;
                let mut options = FetchOptions::new();
                options
                    .download_tags(AutotagOption::None)
                    .update_fetchhead(false);
                let spec = format!("+{BRANCH}:{TRACKING}");
                remote
                    .fetch(&[spec.as_str()], Some(&mut options), Some("strata: fetch"))
                    .map_err(|e| self.failure("fetch", e))?;
                return crate::repo::head_of(&repo, TRACKING).map_err(|e| self.failure("fetch", e));
            }
            Endpoint::Command(url) => {
                let Some(tip) = self.remote_head()? else {
                    return Ok(None);
                };
                if has_commit(&repo, tip) {
                    return record_tip(&repo, tip).map(Some);
                }
                let spec = format!("+{BRANCH}:{TRACKING}");
                git(
                    self,
                    Some(local),
                    &[
                        "fetch",
                        "--quiet",
                        "--no-tags",
                        "--no-write-fetch-head",
                        url,
                        &spec,
                    ],
                )?;
                return crate::repo::head_of(&repo, TRACKING).map_err(|e| self.failure("fetch", e));
            }
        };
        record_tip(&repo, tip).map(Some)
    }

    /// Moves the remote's branch from `expected` (what the last fetch saw) to `to`, sending the
    /// objects it lacks. Never forces.
    pub fn push(&self, local: &Path, expected: Option<Oid>, to: Oid) -> Result<Pushed> {
        // Only the local transport needs `expected`: the others learn it from the remote's
        // advertisement and send it with the update.
        let repo = Repository::open_bare(local).map_err(|e| Error::git("open for push", e))?;
        match self {
            Endpoint::Local(path) => {
                let remote = open_remote(self, path)?;
                copy_objects(&repo, &remote, to).map_err(|e| self.failure("send objects", e))?;
                let message = "strata: push";
                // Compared under the branch's lock; the zero id means "must not exist" (a
                // non-forced create checks before locking, so two first pushes could both win).
                let from = expected.unwrap_or_else(Oid::zero);
                let moved = remote.reference_matching(BRANCH, to, true, from, message);
                match moved {
                    Ok(_) => Ok(Pushed::Updated),
                    Err(e)
                        if matches!(
                            e.code(),
                            ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked
                        ) =>
                    {
                        Ok(Pushed::Raced(
                            "the remote branch moved (fetch first)".into(),
                        ))
                    }
                    Err(e) => Err(self.failure("update the branch", e)),
                }
            }
            Endpoint::Libgit2(url) => {
                let mut remote = repo
                    .remote_anonymous(url)
                    .map_err(|e| self.failure("push", e))?;
                let rejection = RefCell::new(None);
                let mut callbacks = RemoteCallbacks::new();
                callbacks.push_update_reference(|_, status| {
                    if let Some(reason) = status {
                        *rejection.borrow_mut() = Some(reason.to_owned());
                    }
                    Ok(())
                });
                let mut options = PushOptions::new();
                options.remote_callbacks(callbacks);
                // Push exactly `to`, even if the branch moves on meanwhile.
                repo.reference(PUSHING, to, true, "strata: push")
                    .map_err(|e| Error::git("name the commit to push", e))?;
                let spec = format!("{PUSHING}:{BRANCH}");
                match remote.push(&[spec.as_str()], Some(&mut options)) {
                    Ok(()) => {}
                    Err(e) if e.code() == ErrorCode::NotFastForward => {
                        return Ok(Pushed::Raced("non-fast-forward (fetch first)".into()))
                    }
                    Err(e) => return Err(self.failure("push", e)),
                }
                drop(options);
                // A server can refuse a ref (a hook, a lock lost to another pusher) while the
                // transfer itself succeeds: that is only reported here.
                Ok(match rejection.into_inner() {
                    Some(reason) => Pushed::refused(redact_in(&reason, url)),
                    None => Pushed::Updated,
                })
            }
            Endpoint::Command(url) => {
                // Not forced: git refuses anything but a fast-forward of what the remote
                // advertises, and the remote's receive-pack updates the branch only from the
                // old value the client saw.
                let spec = format!("{to}:{BRANCH}");
                let out = git_output(self, Some(local), &["push", "--porcelain", url, &spec])?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                if let Some(line) = stdout.lines().find(|l| l.starts_with('!')) {
                    let reason = line.split('\t').nth(2).unwrap_or(line);
                    return Ok(Pushed::refused(redact_in(reason, url)));
                }
                if !out.status.success() {
                    return Err(self.failure("push", String::from_utf8_lossy(&out.stderr).trim()));
                }
                Ok(Pushed::Updated)
            }
        }
    }
}

fn has_commit(repo: &Repository, id: Oid) -> bool {
    repo.find_commit(id).is_ok()
}

fn record_tip(repo: &Repository, tip: Oid) -> Result<Oid> {
    repo.reference(TRACKING, tip, true, "strata: fetch")
        .map_err(|e| Error::git("record the fetched head", e))?;
    Ok(tip)
}

/// The directory a URL names, if it is a local path or a `file://` URL.
fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    if url.contains("://") {
        return None;
    }
    // `host:path` (scp-like ssh) has a colon before any slash; a path does not.
    let colon = url.find(':');
    let slash = url.find('/');
    match (colon, slash) {
        (Some(c), Some(s)) if c < s => None,
        (Some(_), None) => None,
        _ => Some(PathBuf::from(url)),
    }
}

fn open_remote(endpoint: &Endpoint, path: &Path) -> Result<Repository> {
    Repository::open(path).map_err(|e| endpoint.failure("open", e))
}

/// Writes the objects reachable from `tip` that `to` lacks into `to` as one pack.
fn copy_objects(
    from: &Repository,
    to: &Repository,
    tip: Oid,
) -> std::result::Result<(), git2::Error> {
    let target = to.odb()?;
    if target.exists(tip) {
        return Ok(());
    }
    let mut walk = from.revwalk()?;
    walk.push(tip)?;
    // Commits the target already has need not be sent, nor anything they reach.
    for reference in to.references()? {
        if let Some(id) = reference?.target() {
            if from.find_commit(id).is_ok() {
                walk.hide(id)?;
            }
        }
    }
    let mut builder = from.packbuilder()?;
    builder.set_threads(1);
    builder.insert_walk(&mut walk)?;
    let mut pack = Buf::new();
    builder.write_buf(&mut pack)?;
    let mut writer = target.packwriter()?;
    writer
        .write_all(&pack)
        .map_err(|e| git2::Error::from_str(&format!("write the pack: {e}")))?;
    writer.commit()?;
    Ok(())
}

/// Runs `git` (in the repository at `local`, if given) and returns its standard output.
fn git(endpoint: &Endpoint, local: Option<&Path>, args: &[&str]) -> Result<String> {
    let out = git_output(endpoint, local, args)?;
    if !out.status.success() {
        let op = args.first().copied().unwrap_or("git");
        return Err(endpoint.failure(op, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn git_output(
    endpoint: &Endpoint,
    local: Option<&Path>,
    args: &[&str],
) -> Result<std::process::Output> {
    let mut command = Command::new("git");
    // Even if the repository's own config was changed to point somewhere, no hook runs.
    command.args(["-c", "core.hooksPath=/dev/null"]);
    if let Some(local) = local {
        command.arg("--git-dir").arg(local);
    }
    command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    command.output().map_err(|e| endpoint.failure("run git", e))
}

/// `url` with any password or token removed: `https://user:secret@host/x` becomes
/// `https://***@host/x`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &rest[at..]),
        None => url.to_owned(),
    }
}

/// `text` with every occurrence of `url`, and of anything that looks like credentials in a
/// URL, redacted.
pub fn redact_in(text: &str, url: &str) -> String {
    let mut out = if url.is_empty() {
        text.to_owned()
    } else {
        text.replace(url, &redact(url))
    };
    // Credentials may also appear in a form other than the URL given (git rewrites URLs).
    let mut from = 0;
    while let Some(found) = out[from..].find("://") {
        let start = from + found + 3;
        let end = out[start..]
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@') {
            if &out[start..start + at] != "***" {
                out.replace_range(start..start + at, "***");
            }
        }
        from = start.min(out.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_redaction() {
        assert_eq!(
            redact("https://alice:s3cret@example.com/r.git"),
            "https://***@example.com/r.git"
        );
        assert_eq!(
            redact("https://token@example.com/r.git"),
            "https://***@example.com/r.git"
        );
        assert_eq!(
            redact("git://127.0.0.1:9418/r.git"),
            "git://127.0.0.1:9418/r.git"
        );
        assert_eq!(redact("/srv/repo.git"), "/srv/repo.git");
        let text = "fatal: unable to access 'https://alice:s3cret@example.com/r.git/': 403";
        let clean = redact_in(text, "https://alice:s3cret@example.com/r.git");
        assert!(
            !clean.contains("s3cret") && !clean.contains("alice"),
            "{clean}"
        );
        let other = redact_in("see http://bob:pw@host/x and https://c:d@e/f", "");
        assert!(!other.contains("pw") && !other.contains(":d@"), "{other}");
    }

    #[test]
    fn urls_pick_their_transport() {
        assert!(matches!(
            Endpoint::new("/srv/r.git", Transport::Auto),
            Endpoint::Local(_)
        ));
        assert!(matches!(
            Endpoint::new("file:///srv/r.git", Transport::Auto),
            Endpoint::Local(_)
        ));
        assert!(matches!(
            Endpoint::new("relative/r.git", Transport::Auto),
            Endpoint::Local(_)
        ));
        assert!(matches!(
            Endpoint::new("git://h/r.git", Transport::Auto),
            Endpoint::Libgit2(_)
        ));
        assert!(matches!(
            Endpoint::new("ssh://h/r.git", Transport::Auto),
            Endpoint::Command(_)
        ));
        assert!(matches!(
            Endpoint::new("git@h:r.git", Transport::Auto),
            Endpoint::Command(_)
        ));
        assert!(matches!(
            Endpoint::new("https://h/r", Transport::Auto),
            Endpoint::Command(_)
        ));
        assert!(matches!(
            Endpoint::new("/srv/r.git", Transport::Command),
            Endpoint::Command(_)
        ));
    }
}
