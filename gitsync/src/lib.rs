//! `strata-gitsync`: the cold and remote tiers of the Strata store.
//!
//! ```text
//!   Log (strata-wal) ──tail from the committed watermark──► [cold: bare git repository]
//!                                                               └──push + verify──► remote
//! ```
//!
//! It will write index-free commits (a `state/` tree of the latest values, append-only
//! `chunks/` change logs), debounce them, fold and repack, and push to a remote with
//! verification, implementing `strata_tiering::Tier`. The crate depends on `strata-tiering`
//! and `strata-wal`. It has no code yet: the cold and remote tiers land with their own issue.
