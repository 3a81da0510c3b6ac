//! The health probes of the warm, cold and remote tiers (the Router probes the log itself).
//!
//! Each runs on the Router's health schedule (every 30 s by default, and on every tick while
//! its breaker is half-open) and its result feeds that tier's breaker.

use std::sync::{Arc, Weak};

use strata_gitsync::{ColdStore, Remote};
use strata_segment::SegmentTier;
use strata_tiering::router::Probe;
use strata_tiering::{Error, ErrorKind};

/// Checks every block of every live segment; a damaged one is quarantined and fails the
/// probe, naming it.
pub(crate) struct WarmProbe(Weak<SegmentTier>);

impl WarmProbe {
    pub fn new(warm: &Arc<SegmentTier>) -> WarmProbe {
        WarmProbe(Arc::downgrade(warm))
    }
}

impl Probe for WarmProbe {
    fn probe(&self) -> Result<(), Error> {
        let Some(warm) = self.0.upgrade() else {
            return Ok(());
        };
        let quarantined = warm.verify().map_err(|e| e.into_tier_error("warm"))?;
        if quarantined.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = quarantined.iter().map(u64::to_string).collect();
        Err(Error::tier(
            "warm",
            ErrorKind::Corruption,
            format!(
                "segments {} failed their checksums and were quarantined",
                ids.join(", ")
            ),
        ))
    }
}

/// Reads the cold repository's head commit and tree back.
pub(crate) struct ColdProbe(Weak<ColdStore>);

impl ColdProbe {
    pub fn new(cold: &Arc<ColdStore>) -> ColdProbe {
        ColdProbe(Arc::downgrade(cold))
    }
}

impl Probe for ColdProbe {
    fn probe(&self) -> Result<(), Error> {
        match self.0.upgrade() {
            Some(cold) => cold.check().map_err(Error::from),
            None => Ok(()),
        }
    }
}

/// Asks the remote for its branch (`git ls-remote`).
pub(crate) struct RemoteProbe(Weak<Remote>);

impl RemoteProbe {
    pub fn new(remote: &Arc<Remote>) -> RemoteProbe {
        RemoteProbe(Arc::downgrade(remote))
    }
}

impl Probe for RemoteProbe {
    fn probe(&self) -> Result<(), Error> {
        match self.0.upgrade() {
            Some(remote) => remote.remote_head().map(|_| ()).map_err(Error::from),
            None => Ok(()),
        }
    }
}
