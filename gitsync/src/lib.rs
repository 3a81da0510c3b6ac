//! `strata-gitsync`: the cold and remote tiers of the Strata store.
//!
//! ```text
//!   Log (strata-wal) ──tail from the committed watermark──► [cold: bare git repository]
//!                                                               └──push + verify──► remote
//! ```
//!
//! Every change to a HIGH or CRITICAL key ends up in an ordinary bare git repository that
//! people can `git log`, `git show`, clone and push anywhere. Its layout (see [`store`]):
//!
//! ```text
//! <dir>/cold.git  (bare)
//!   refs/heads/main
//!   tree:
//!     chunks/<hybrid-logical-clock>-<writer>.jsonl   one file per commit batch, one change a line
//!     state/<abc>/<escaped key>                      latest value of every key, one blob each
//! ```
//!
//! - Names: keys are escaped reversibly into names that cannot escape or confuse git
//!   ([`names`]); the state tree fans out by the key's CRC32.
//! - Documents: JSON values stay readable JSON; other bytes are base64 with a marker field
//!   ([`codec`]).
//! - Commits are index-free: trees are edited in memory, a commit's objects go out as one
//!   fsynced pack, and the branch moves by compare-and-swap ([`repo`]).
//!
//! The crate depends on `strata-tiering` (the `Tier` contract, record format, clock) and
//! `strata-wal` (the `Log` it tails), and on no other tier.

mod advertised;
mod branch;
pub mod bundle;
pub mod codec;
mod committer;
mod consolidate;
mod delta;
mod error;
pub mod hlc;
mod locks;
mod maintain;
mod merge;
pub mod names;
mod packfile;
pub mod packread;
mod packstream;
mod parallel;
mod read;
mod reclaim;
mod remote;
pub mod repo;
mod staging;
pub mod store;
mod tier;
mod transport;
mod verify;

pub use crate::bundle::BundleInfo;
pub use crate::committer::{CommitMetrics, Committer, CommitterOptions};
pub use crate::error::{Error, Result};
pub use crate::hlc::Stamp;
pub use crate::remote::{
    clone_store, PushReport, Remote, RemoteMetrics, RemoteOptions, PUSHED_REF,
};
pub use crate::store::{At, ColdOptions, ColdStore, CommitInfo, Trigger, Version};
pub use crate::tier::ColdTier;
pub use crate::transport::{redact, Transport};
pub use crate::verify::VerifyReport;
pub use git2::Oid;
