//! Splitting a product's tiles over threads with a cheap hand-off.
//!
//! The calling thread starts on the tiles at once and helpers (rayon jobs) join in when
//! they wake up, claiming tiles from a shared counter. When the caller runs out of tiles it
//! closes the work: a helper that has not started by then never touches it, so the caller
//! does not wait for a sleeping worker to wake (that wake-up costs tens of microseconds,
//! as much as a small product). Each tile is computed the same way whoever runs it, so the
//! result does not depend on the thread count.
//!
//! The caller claims tiles from the low end and helpers from the high end. With two threads
//! the split point then sits near the middle in every call, so consecutive operations over
//! the same rows (a layer's forward product, its weight gradient, the optimizer's update)
//! mostly find their data in the cache of the core that last touched it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Set in [`Shared::state`] once the caller has finished; the low bits count helpers inside.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// One tile job; `Sync` because helpers call it concurrently.
pub type Work<'a> = dyn Fn(usize) + Sync + 'a;

struct Shared {
    /// Unclaimed tiles `lo..hi`, packed as `lo << 32 | hi`.
    range: AtomicU64,
    state: AtomicUsize,
    panicked: AtomicBool,
    /// The caller's job with its lifetime erased; only called by a helper that entered
    /// before [`CLOSED`] was set, and the caller waits for those to leave before returning.
    work: *const Work<'static>,
}

// SAFETY: `work` points to a `Sync` closure, dereferenced only under the protocol above.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The next unclaimed tile from the low end (the caller) or the high end (helpers).
    fn claim(&self, low: bool) -> Option<usize> {
        let mut r = self.range.load(Ordering::Relaxed);
        loop {
            let (lo, hi) = (r >> 32, r & 0xFFFF_FFFF);
            if lo >= hi {
                return None;
            }
            let (next, t) = if low { (r + (1 << 32), lo) } else { (r - 1, hi - 1) };
            match self
                .range
                .compare_exchange_weak(r, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(t as usize),
                Err(now) => r = now,
            }
        }
    }

    fn claim_all(&self, low: bool, work: &Work<'_>) {
        while let Some(t) = self.claim(low) {
            work(t);
        }
    }

    fn help(&self) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & CLOSED != 0 {
                return;
            }
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        // SAFETY: we entered before the caller closed, so it is still inside `run_tiles`
        // (it waits for the count to drop to zero) and the closure is alive.
        let work = unsafe { &*self.work };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.claim_all(false, work)));
        if r.is_err() {
            self.panicked.store(true, Ordering::Relaxed);
        }
        self.state.fetch_sub(1, Ordering::Release);
    }
}

/// Closes the work and waits for helpers inside it, also when the caller's tile panics.
struct Close<'a>(&'a Shared);

impl Drop for Close<'_> {
    fn drop(&mut self) {
        let st = &self.0.state;
        st.fetch_or(CLOSED, Ordering::AcqRel);
        // A helper inside finishes at most the tile it holds: a short wait.
        let mut spins = 0u32;
        while st.load(Ordering::Acquire) & !CLOSED != 0 {
            spins += 1;
            if spins < 1 << 12 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Run `work(t)` for every `t < tiles` on the calling thread and all of rayon's threads as
/// helpers (see [`run_tiles`]); for elementwise work such as optimizer updates.
pub fn for_each_tile(tiles: usize, work: &Work<'_>) {
    run_tiles(tiles, rayon::current_num_threads(), work)
}

/// Run `work(t)` for every `t < tiles`, on the calling thread and up to `threads − 1` helpers
/// that join when they wake; the caller never waits for a helper that has not started.
pub fn run_tiles(tiles: usize, threads: usize, work: &Work<'_>) {
    let helpers = threads.min(tiles).saturating_sub(1);
    if helpers == 0 || tiles > u32::MAX as usize {
        (0..tiles).for_each(work);
        return;
    }
    // SAFETY: only the lifetime changes; see `Shared::work` for why it is never outlived.
    let erased: *const Work<'static> = unsafe { std::mem::transmute::<*const Work<'_>, *const Work<'static>>(work) };
    let shared = Arc::new(Shared {
        range: AtomicU64::new(tiles as u64),
        state: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        work: erased,
    });
    for _ in 0..helpers {
        let s = shared.clone();
        rayon::spawn(move || s.help());
    }
    {
        let _close = Close(&shared);
        shared.claim_all(true, work);
    }
    if shared.panicked.load(Ordering::Relaxed) {
        panic!("a matrix product tile panicked on a helper thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tile_runs_once_whatever_the_threads() {
        for threads in [1, 2, 3, 8] {
            let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
            run_tiles(hits.len(), threads, &|t| {
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn a_panicking_tile_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            run_tiles(64, 2, &|t| {
                if t == 40 {
                    panic!("tile 40");
                }
            })
        });
        assert!(r.is_err());
    }
}
