//! A cache hint for appends into recycled buffers.
//!
//! Under `Never` and `Interval`, a filled append buffer is kept until an fsync covers it (up
//! to `retain_unsynced_bytes`, 8 MiB by default), so the buffer an append writes into next
//! was last touched megabytes of appends ago and has left the caches. Each of an append's
//! stores then waits for its line from memory, and releasing the append lock waits for those
//! stores: at 100-byte records that made an append about a fifth slower. Asking for the lines
//! a little ahead of the appends that will write them hides the wait.

/// How far past the end of the buffered bytes to ask for lines: a few appends of small
/// records ahead, far enough for memory to answer before they arrive.
const AHEAD: usize = 2048;

/// Bytes per cache line on the machines this is tuned for.
const LINE: usize = 64;

/// Asks for the two lines `AHEAD` bytes past the end of `buffer`'s bytes, if its allocation
/// reaches that far: two lines per append keeps pace with records of about a hundred bytes,
/// while larger records are copied in long runs the hardware prefetches by itself.
pub(crate) fn ahead_of_appends(buffer: &Vec<u8>) {
    let start = buffer.len().saturating_add(AHEAD);
    if start.saturating_add(2 * LINE) > buffer.capacity() {
        return;
    }
    let base = buffer.as_ptr();
    hint_line(base.wrapping_add(start));
    hint_line(base.wrapping_add(start + LINE));
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn hint_line(address: *const u8) {
    // SAFETY: a prefetch is only a hint: it never faults and changes nothing the program can
    // read, whatever the address (here always one inside the buffer's allocation), and SSE,
    // which provides it, is part of the x86_64 baseline.
    unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast()) }
}

#[cfg(not(target_arch = "x86_64"))]
fn hint_line(_address: *const u8) {}

#[cfg(test)]
mod tests {
    use super::ahead_of_appends;

    #[test]
    fn any_buffer_is_accepted_and_left_as_it_was() {
        for (len, capacity) in [(0, 0), (0, 100), (10, 4096), (4000, 4096), (0, 1 << 20)] {
            let mut buffer = Vec::with_capacity(capacity);
            buffer.resize(len, 7u8);
            ahead_of_appends(&buffer);
            assert_eq!(buffer, vec![7u8; len]);
        }
    }
}
