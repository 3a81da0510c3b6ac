//! Settings of a [`SegmentTier`](crate::SegmentTier).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::segment::ReadMode;
use crate::writer::WriterOptions;

/// Where compaction reads the time from, in unix milliseconds, to decide what has expired.
///
/// Tests use [`Clock::manual`] so expiry never depends on the wall clock or on sleeping.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        }))
    }

    /// A clock that reads `now` (unix milliseconds), which the caller moves.
    pub fn manual(now: Arc<AtomicU64>) -> Clock {
        Clock(Arc::new(move || now.load(Ordering::Relaxed)))
    }

    /// The current time in unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({} ms)", self.now_ms())
    }
}

/// When compaction merges segments (size-tiered; see the crate docs).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionOptions {
    /// The fewest segments a size-ratio merge takes. Default: 4.
    pub min_merge_width: usize,
    /// The most segments one merge takes, except a full merge. Default: 16.
    pub max_merge_width: usize,
    /// A segment joins a run of newer segments when it is at most `1 + size_ratio` times the
    /// run's total size. Default: 1.0.
    pub size_ratio: f64,
    /// Merge everything when the segments above the oldest add up to more than this many times
    /// its size. Default: 2.0.
    pub max_space_amplification: f64,
    /// Whether a merge at the bottom may drop a tombstone (or an expired version) that is its
    /// key's newest version below the GC horizon. Default: true. An owner with a tier below
    /// this one turns it off: that tier may still hold an older value the tombstone hides, so
    /// the tombstone must stay until it is archived there. Archival markers are dropped at the
    /// bottom either way, as what they stand for already lives below.
    pub drop_bottom_tombstones: bool,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            min_merge_width: 4,
            max_merge_width: 16,
            size_ratio: 1.0,
            max_space_amplification: 2.0,
            drop_bottom_tombstones: true,
        }
    }
}

/// Settings of a [`SegmentTier`](crate::SegmentTier).
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    /// The tier's name in errors, logs and metrics. Default: `warm`.
    pub name: String,
    /// How segment files are written.
    pub writer: WriterOptions,
    /// How segment files are read. Default: memory-mapped where the filesystem allows.
    pub read_mode: ReadMode,
    /// When segments are merged.
    pub compaction: CompactionOptions,
    /// Run compaction on a background thread after each ingest. Default: true. Without it,
    /// compaction runs only when [`SegmentTier::compact`](crate::SegmentTier::compact) is called.
    pub background_compaction: bool,
    /// Check every block of every segment when opening (slower; catches damage at once).
    /// Default: false: blocks are checked when first read.
    pub verify_on_open: bool,
    /// The clock compaction judges expiry by. Default: the system clock.
    pub clock: Clock,
    /// Open the directory as a reader beside the process that owns it: nothing on disk is
    /// created, removed, moved or rewritten, damage is fenced in memory only, no compaction
    /// runs, and every change is refused with [`SegmentError::ReadOnly`]. The view is the
    /// segment set at the open. Default: false.
    ///
    /// [`SegmentError::ReadOnly`]: crate::SegmentError::ReadOnly
    pub read_only: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            name: "warm".into(),
            writer: WriterOptions::default(),
            read_mode: ReadMode::Mmap,
            compaction: CompactionOptions::default(),
            background_compaction: true,
            verify_on_open: false,
            clock: Clock::system(),
            read_only: false,
        }
    }
}
