//! Sequential frame reading over one WAL file, shared by recovery and by log readers.
//!
//! The cursor reads the file through a window of [`WINDOW`] bytes and grows it only for a
//! frame whose length passed its header checksum, the configured maximum and the count of bytes
//! really left in the file. Damage is described, never trusted.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{
    self, FileHeader, FrameHeader, HeaderError, FILE_HEADER_LEN, FRAME_HEADER_LEN,
};
use crate::io::{Fs, FsFile};

/// How many bytes a cursor reads at a time.
const WINDOW: usize = 1 << 20;

/// What stopped a cursor before the clean end of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DamageKind {
    /// The file ends inside a header or a payload: a write that did not finish.
    Incomplete(String),
    /// Only zero bytes from here to the end: space that was never written.
    ZeroFilled,
    /// Bytes are present but wrong.
    Corrupt(String),
}

impl DamageKind {
    /// True for damage that a crash during an append can leave at the end of the log.
    pub(crate) fn is_torn_write(&self) -> bool {
        matches!(self, DamageKind::Incomplete(_) | DamageKind::ZeroFilled)
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            DamageKind::Incomplete(what) => format!("incomplete {what} at end of file"),
            DamageKind::ZeroFilled => "zero-filled tail".into(),
            DamageKind::Corrupt(what) => what.clone(),
        }
    }
}

/// Damage found at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub offset: u64,
    pub kind: DamageKind,
}

/// One step of a cursor.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// A frame whose checksums passed.
    Frame {
        offset: u64,
        header: FrameHeader,
        payload: &'a [u8],
    },
    /// The clean end of the file.
    End,
    /// The file cannot be read past `Damage::offset`.
    Damage(Damage),
}

/// A forward reader of the frames of one file.
#[derive(Debug)]
pub(crate) struct FrameCursor {
    file: Box<dyn FsFile>,
    path: PathBuf,
    len: u64,
    pos: u64,
    window: Vec<u8>,
    window_start: u64,
    max_record_len: usize,
    /// The file was extended with zeros when it was created: zeros to its end are where
    /// writing stopped, not damage.
    preallocated: bool,
}

/// The result of opening a file: a cursor after a sound header, or damage in the header.
pub(crate) enum Opened {
    Ready {
        cursor: FrameCursor,
        header: FileHeader,
    },
    BadHeader(Damage),
}

impl FrameCursor {
    /// Opens `path` and checks its file header.
    pub(crate) fn open(fs: &dyn Fs, path: &Path, max_record_len: usize) -> Result<Opened> {
        FrameCursor::open_bounded(fs, path, max_record_len, None)
    }

    /// [`FrameCursor::open`], reading no further than `limit` bytes if given (a file being
    /// appended to, whose records end before its preallocated length).
    pub(crate) fn open_bounded(
        fs: &dyn Fs,
        path: &Path,
        max_record_len: usize,
        limit: Option<u64>,
    ) -> Result<Opened> {
        let file = fs.open_read(path).map_err(|e| Error::io("open", path, e))?;
        let mut len = file.len().map_err(|e| Error::io("stat", path, e))?;
        if let Some(limit) = limit {
            len = len.min(limit);
        }
        let mut cursor = FrameCursor {
            file,
            path: path.to_owned(),
            len,
            pos: 0,
            window: Vec::new(),
            window_start: 0,
            max_record_len,
            preallocated: false,
        };
        if len < FILE_HEADER_LEN as u64 {
            let kind = if cursor.rest_is_zero(0)? {
                DamageKind::ZeroFilled
            } else {
                DamageKind::Incomplete("file header".into())
            };
            return Ok(Opened::BadHeader(Damage { offset: 0, kind }));
        }
        let mut header = [0u8; FILE_HEADER_LEN];
        header.copy_from_slice(cursor.bytes(0, FILE_HEADER_LEN)?);
        match format::decode_file_header(&header) {
            Ok(header) => {
                cursor.pos = FILE_HEADER_LEN as u64;
                cursor.preallocated = header.preallocated;
                Ok(Opened::Ready { cursor, header })
            }
            Err(detail) => {
                let kind = if cursor.rest_is_zero(0)? {
                    DamageKind::ZeroFilled
                } else {
                    DamageKind::Corrupt(detail)
                };
                Ok(Opened::BadHeader(Damage { offset: 0, kind }))
            }
        }
    }

    /// The file this cursor reads.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The offset of the next frame.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// The file's length when the cursor opened it.
    pub(crate) fn file_len(&self) -> u64 {
        self.len
    }

    /// Reads the next frame.
    pub(crate) fn next_frame(&mut self) -> Result<Step<'_>> {
        let offset = self.pos;
        let remaining = self.len - offset;
        if remaining == 0 {
            return Ok(Step::End);
        }
        if remaining < FRAME_HEADER_LEN as u64 {
            return self.damage_at_tail(offset, "frame header");
        }
        let mut header = [0u8; FRAME_HEADER_LEN];
        header.copy_from_slice(self.bytes(offset, FRAME_HEADER_LEN)?);
        let frame = match format::decode_frame_header(&header) {
            Ok(frame) => frame,
            Err(HeaderError::Zeroed) => return self.damage_at_tail(offset, "frame header"),
            Err(HeaderError::Damaged(detail)) => {
                let header_end = offset + FRAME_HEADER_LEN as u64;
                return self.bad_frame(offset, header_end, detail);
            }
        };
        let len = frame.len as usize;
        if len > self.max_record_len {
            return Ok(corrupt(
                offset,
                format!(
                    "frame claims {len} bytes, more than the maximum record of {} bytes",
                    self.max_record_len
                ),
            ));
        }
        let frame_end = offset + (FRAME_HEADER_LEN + len) as u64;
        if frame_end > self.len {
            return Ok(Step::Damage(Damage {
                offset,
                kind: DamageKind::Incomplete(format!(
                    "frame of {len} bytes with {} bytes left in the file",
                    remaining - FRAME_HEADER_LEN as u64
                )),
            }));
        }
        let bytes = self.bytes(offset, FRAME_HEADER_LEN + len)?;
        let payload = &bytes[FRAME_HEADER_LEN..];
        if !format::payload_matches(&header, &frame, payload) {
            let detail = format!("checksum mismatch in frame of LSN {}", frame.lsn);
            return self.bad_frame(offset, frame_end, detail);
        }
        self.pos = frame_end;
        // Re-borrow so the returned slice lives as long as `self`'s borrow.
        let start = (offset - self.window_start) as usize + FRAME_HEADER_LEN;
        Ok(Step::Frame {
            offset,
            header: frame,
            payload: &self.window[start..start + len],
        })
    }

    /// Classifies a frame at `offset`, ending at `end`, whose checksum failed. In a
    /// preallocated file a crash during an append leaves exactly that when part of the
    /// frame's pages reached the disk and the rest are still zeros, so a bad frame with only
    /// zeros after it (and some) is taken for a torn write there; anywhere else it is damage.
    /// (A bit flip in the very last frame before the zeros looks the same; point-in-time
    /// recovery, the only mode that preallocates, cuts either back to the last whole batch.)
    fn bad_frame(&mut self, offset: u64, end: u64, detail: String) -> Result<Step<'_>> {
        if self.preallocated && end < self.len && self.rest_is_zero(end)? {
            return Ok(Step::Damage(Damage {
                offset,
                kind: DamageKind::Incomplete(format!("frame ({detail}) followed by zeros")),
            }));
        }
        Ok(corrupt(offset, detail))
    }

    /// Classifies bad bytes at `offset` that may be a torn tail: all zeros to the end of the
    /// file are unwritten space (the clean end of a preallocated file); otherwise a short
    /// remainder is an incomplete write and a full header's worth of non-zero garbage is
    /// corruption.
    fn damage_at_tail(&mut self, offset: u64, what: &str) -> Result<Step<'_>> {
        let zeros = self.rest_is_zero(offset)?;
        if zeros && self.preallocated {
            return Ok(Step::End);
        }
        let kind = if zeros {
            DamageKind::ZeroFilled
        } else if self.len - offset < FRAME_HEADER_LEN as u64 {
            DamageKind::Incomplete(what.into())
        } else {
            DamageKind::Corrupt("zeroed frame header followed by data".into())
        };
        Ok(Step::Damage(Damage { offset, kind }))
    }

    /// True if every byte from `offset` to the end of the file is zero. A file that turns
    /// out shorter than it was when opened lost only zeros (a writer trims nothing else), so
    /// what is gone counts as zero.
    pub(crate) fn rest_is_zero(&mut self, mut offset: u64) -> Result<bool> {
        while offset < self.len {
            let take = (self.len - offset).min(WINDOW as u64) as usize;
            let read = self.fill_window(offset, take)?;
            if self.window[..read].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            if read < take {
                return Ok(true);
            }
            offset += take as u64;
        }
        Ok(true)
    }

    /// The end of the last non-zero byte at or after `from` (`from` itself if there is
    /// none): where the written bytes of a preallocated file stop.
    pub(crate) fn written_end(&mut self, from: u64) -> Result<u64> {
        let mut end = from;
        let mut offset = from;
        while offset < self.len {
            let take = (self.len - offset).min(WINDOW as u64) as usize;
            let read = self.fill_window(offset, take)?;
            if let Some(last) = self.window[..read].iter().rposition(|&b| b != 0) {
                end = offset + last as u64 + 1;
            }
            if read < take {
                break;
            }
            offset += take as u64;
        }
        Ok(end)
    }

    /// Returns `len` bytes at `offset`, which the caller has checked lie inside the file.
    fn bytes(&mut self, offset: u64, len: usize) -> Result<&[u8]> {
        let window_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || offset + len as u64 > window_end {
            let want = len.max(WINDOW).min((self.len - offset) as usize);
            let read = self.fill_window(offset, want)?;
            if read < len {
                return Err(Error::io(
                    "read",
                    &self.path,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the file ends {read} bytes past offset {offset}"),
                    ),
                ));
            }
        }
        let start = (offset - self.window_start) as usize;
        Ok(&self.window[start..start + len])
    }

    /// Reads up to `want` bytes at `offset` into the window; returns how many there were
    /// (fewer only if the file has become shorter since it was opened).
    fn fill_window(&mut self, offset: u64, want: usize) -> Result<usize> {
        self.window.resize(want, 0);
        self.window_start = offset;
        let mut read = 0;
        while read < want {
            match self
                .file
                .read_at(&mut self.window[read..], offset + read as u64)
            {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", &self.path, e)),
            }
        }
        self.window.truncate(read);
        Ok(read)
    }
}

fn corrupt<'a>(offset: u64, detail: String) -> Step<'a> {
    Step::Damage(Damage {
        offset,
        kind: DamageKind::Corrupt(detail),
    })
}
