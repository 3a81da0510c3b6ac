//! Iterating the log from an LSN.
//!
//! A reader is fixed when it is created: it holds open handles to the files it needs (so a
//! later `truncate_before` cannot pull a file from under it) and stops at the last LSN that had
//! been written by then, which is always the end of a batch. It therefore sees a consistent
//! prefix of the log, however the log changes while it runs.

use std::path::Path;

use crate::cursor::{FrameCursor, Opened, Step};
use crate::error::{Error, Result};
use crate::format::FileHeader;
use crate::io::Fs;
use crate::Lsn;

/// One file a reader will go through.
#[derive(Debug)]
pub(crate) struct ReaderFile {
    cursor: FrameCursor,
    header: FileHeader,
    /// First LSN of the following file: this file's records stop before it.
    next_first: Option<Lsn>,
}

impl ReaderFile {
    /// Opens `path` for reading, no further than `limit` bytes if given.
    pub(crate) fn open(
        fs: &dyn Fs,
        path: &Path,
        next_first: Option<Lsn>,
        max_record_len: usize,
        limit: Option<u64>,
    ) -> Result<ReaderFile> {
        match FrameCursor::open_bounded(fs, path, max_record_len, limit)? {
            Opened::Ready { cursor, header } => Ok(ReaderFile {
                cursor,
                header,
                next_first,
            }),
            Opened::BadHeader(damage) => Err(Error::Corruption {
                path: path.to_owned(),
                offset: damage.offset,
                detail: damage.kind.describe(),
            }),
        }
    }
}

/// The iterator returned by `Log::read_from` on a [`Wal`](crate::Wal).
#[derive(Debug)]
pub struct LogReader {
    files: std::collections::VecDeque<ReaderFile>,
    from: Lsn,
    upto: Lsn,
    /// LSN the next frame must carry; `None` before the first file.
    next: Option<Lsn>,
    done: bool,
}

impl LogReader {
    pub(crate) fn new(files: Vec<ReaderFile>, from: Lsn, upto: Lsn) -> LogReader {
        LogReader {
            files: files.into(),
            from,
            upto,
            next: None,
            done: false,
        }
    }

    fn fail(&mut self, error: Error) -> Option<Result<(Lsn, Vec<u8>)>> {
        self.done = true;
        Some(Err(error))
    }
}

impl Iterator for LogReader {
    type Item = Result<(Lsn, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done || self.next.is_some_and(|next| next > self.upto) {
                self.done = true;
                return None;
            }
            let Some(file) = self.files.front_mut() else {
                self.done = true;
                return None;
            };
            let first = file.header.first_lsn;
            match self.next {
                None => self.next = Some(first),
                Some(next) if next == file.next_first.unwrap_or(Lsn::MAX) => {
                    // Reached the next file's first LSN: the rest of this file is superseded.
                    self.files.pop_front();
                    continue;
                }
                _ => {}
            }
            let expected = self.next.unwrap_or(first);
            let step = match file.cursor.next_frame() {
                Ok(step) => step,
                Err(error) => return self.fail(error),
            };
            match step {
                Step::End => {
                    self.files.pop_front();
                    if let Some(following) = self.files.front() {
                        let start = following.header.first_lsn;
                        if start != expected && !(following.header.follows_gap && start > expected)
                        {
                            let path = following.cursor.path().to_owned();
                            return self.fail(Error::Corruption {
                                path,
                                offset: 0,
                                detail: format!(
                                    "LSN gap: expected LSN {expected}, file starts at {start}"
                                ),
                            });
                        }
                        self.next = Some(start);
                    }
                }
                Step::Damage(damage) => {
                    let path = file.cursor.path().to_owned();
                    return self.fail(Error::Corruption {
                        path,
                        offset: damage.offset,
                        detail: damage.kind.describe(),
                    });
                }
                Step::Frame {
                    offset,
                    header,
                    payload,
                } => {
                    if header.lsn != expected || header.lsn == Lsn::MAX {
                        let path = file.cursor.path().to_owned();
                        return self.fail(Error::Corruption {
                            path,
                            offset,
                            detail: format!("expected LSN {expected}, found LSN {}", header.lsn),
                        });
                    }
                    self.next = Some(expected + 1);
                    if header.lsn >= self.from && header.lsn <= self.upto {
                        return Some(Ok((header.lsn, payload.to_vec())));
                    }
                }
            }
        }
    }
}
