//! `strata-segment`: the warm tier of the Strata store.
//!
//! ```text
//!   hot (frozen memtable) ──flush──► [warm: immutable mmap-ed sorted segments + manifest]
//!                                          └──compaction──► fewer, larger segments
//! ```
//!
//! It will hold the segment file format (data blocks, block index, bloom filter, footer, each
//! with a CRC32), the memory-mapped reader, the manifest of live segments and the flushed LSN,
//! and compaction, implementing `strata_tiering::Tier`. Its file I/O goes through the seam in
//! `strata_wal::io`. The crate depends only on `strata-tiering`. It has no code yet: the warm
//! tier lands with its own issue.
