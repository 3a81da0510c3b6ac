//! The one place this crate maps a file into memory, and why that is sound here.
//!
//! # What could go wrong
//!
//! [`memmap2::Mmap::map`] is `unsafe` because the `&[u8]` a mapping hands out promises two things
//! the compiler cannot check: the bytes do not change while they are borrowed, and reading them
//! does not fault. A mapped file that is written in place breaks the first (for Rust that is
//! undefined behaviour, not merely a surprising value); a mapped file that is truncated breaks
//! the second: touching a page past the new end of the file raises `SIGBUS`, which kills the
//! process. Nothing inside a program can rule either out, which is why redb, after years with
//! an mmap backend, first added a `read`/`write` backend beside it and then dropped mmap
//! altogether, and why a safe wrapper around a map of a file others may change has drawn
//! RustSec advisories.
//!
//! # Why it holds here
//!
//! 1. **Immutable files.** A segment is written whole under a temporary name, fsynced and only
//!    then renamed to its `.seg` name ([`SegmentWriter`](crate::SegmentWriter)). No code path of
//!    this crate opens a `.seg` file for writing again: compaction writes new files and unlinks
//!    old ones, quarantine renames them. Unlinking or renaming a mapped file leaves the mapping
//!    intact (the inode lives until the last mapping goes), so readers still holding an old
//!    segment keep valid bytes.
//! 2. **Read-only files.** Installed segments have mode 0400, so a stray `open(O_WRONLY)` by
//!    another program of the same user fails with `EACCES` rather than writing into a mapping.
//! 3. **The store's exclusive lock.** The store holds an exclusive `flock` on `<dir>/LOCK` for as
//!    long as it is open, so no second Strata process compacts, quarantines or deletes files in
//!    the same directory.
//! 4. **The length checked against the footer before any access.** The mapping covers the
//!    file's length when it was mapped. Before any other byte is read, the footer at the end of
//!    the mapping must state that same length, and its sections must add up to it; every later
//!    access goes through bounds-checked slicing of the mapping. So this crate never touches a
//!    byte outside the mapping, and a file that was already short or long when it was mapped is
//!    rejected as corrupt instead of faulting.
//! 5. The mapping is read-only (`PROT_READ`) and nothing in this crate writes through it.
//!
//! # What stays outside our control
//!
//! Someone who ignores both the lock and the permissions (root, a process that `chmod`s first,
//! a backup tool restoring files in place, a filesystem bug):
//!
//! - **truncating** a mapped segment makes the next read of a page past the new end raise
//!   `SIGBUS` and the process dies. We accept that: it cannot return wrong data, and the store
//!   is built to survive a crash at any instant (the WAL and the manifest recover it). We do not
//!   install a `SIGBUS` handler; turning the fault into an error would need process-global
//!   signal state that a library must not take over.
//! - **rewriting** a mapped segment in place can show changed bytes to a reader. A block's CRC
//!   is checked on its first read only, so bytes changed later are not caught until
//!   [`Segment::verify`](crate::Segment::verify) runs again.
//!
//! Where that risk is not acceptable (files on a network filesystem, directories other programs
//! write to), [`ReadMode::Read`](crate::ReadMode::Read) reads each segment into memory through the
//! I/O seam instead of mapping it; test filesystems ([`Fs::is_os_filesystem`] false) always do.
//!
//! [`Fs::is_os_filesystem`]: strata_tiering::io::Fs::is_os_filesystem

use std::fs::File;
use std::io;

/// Maps the whole of `file` read-only.
#[allow(unsafe_code)]
pub(crate) fn map_read_only(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: `file` is an installed segment of a store directory: immutable since its rename,
    // read-only (0400), and guarded by the store's exclusive lock (points 1-3 of the module
    // docs). The caller checks the mapping's length against the footer before reading any other
    // byte and reads only through bounds-checked slices of it (point 4). What remains is an
    // outside actor defeating the lock and the permissions, discussed above.
    unsafe { memmap2::MmapOptions::new().map(file) }
}
