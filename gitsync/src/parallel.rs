//! Splitting CPU-bound work of one commit or merge over the machine's cores.
//!
//! A fold encodes and hashes thousands of state documents and a merge compresses thousands of
//! objects; each item is independent. The work is cut into one contiguous run per thread
//! (scoped threads, at most [`MAX_THREADS`]), and the runs' results come back in order.

/// Most threads one call uses.
pub const MAX_THREADS: usize = 4;

/// `work` applied to `items` cut into runs, one per thread, in order. With fewer than
/// `min_items` items, or one core, it runs once on the calling thread; so does any run whose
/// thread cannot be created. A run whose thread panicked yields `panicked()` instead.
pub fn in_runs<'a, T: Sync, R: Send>(
    items: &'a [T],
    min_items: usize,
    work: impl Fn(&'a [T]) -> R + Sync,
    panicked: impl Fn() -> R,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS);
    if items.len() < min_items.max(2) || threads == 1 {
        return vec![work(items)];
    }
    let per_thread = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per_thread)
            .map(|run| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || work(run))
                    .map_err(|_| run)
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle.join().unwrap_or_else(|_| panicked()),
                Err(run) => work(run),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_come_back_in_order_and_cover_every_item() {
        let items: Vec<u32> = (0..10_001).collect();
        let runs = in_runs(&items, 100, |run| run.to_vec(), Vec::new);
        assert_eq!(runs.concat(), items);
        let small = in_runs(&items[..5], 100, |run| run.len(), || 0);
        assert_eq!(small, vec![5]);
        let none: Vec<usize> = in_runs(&items[..0], 0, |run| run.len(), || 0);
        assert_eq!(none, vec![0]);
    }
}
