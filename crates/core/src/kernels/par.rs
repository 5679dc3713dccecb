//! Splitting work (a product's tiles, blocks of an elementwise op) over threads with a
//! cheap hand-off.
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
//!
//! Helpers run their tiles at the caller's instruction-set level ([`cpu::isa`] read when the
//! work starts), so a test's [`cpu::with_isa`] override reaches every tile.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::cpu::{self, Isa};

/// Set in [`Shared::state`] once the caller has finished; the low bits count helpers inside.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// One tile job; `Sync` because helpers call it concurrently.
pub type Work<'a> = dyn Fn(usize) + Sync + 'a;

struct Shared {
    /// Unclaimed tiles `lo..hi`, packed as `lo << 32 | hi`.
    range: AtomicU64,
    state: AtomicUsize,
    panicked: AtomicBool,
    /// The caller's level, which helpers take on for the tiles they run.
    level: Isa,
    /// The caller's job with its lifetime erased; only called by a helper that entered
    /// before [`CLOSED`] was set, and the caller waits for those to leave before returning.
    work: *const Work<'static>,
}

// SAFETY: `work` points to a `Sync` closure, dereferenced only under the protocol above.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`; the other fields are atomics.
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
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cpu::with_isa(self.level, || self.claim_all(false, work))
        }));
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

/// All of rayon's threads for `work` of at least `min` (elements, multiply-adds), else
/// the caller alone: below it a hand-off costs more than it saves.
pub fn threads_for(work: usize, min: usize) -> usize {
    if work >= min {
        rayon::current_num_threads()
    } else {
        1
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
        level: cpu::isa(),
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
        panic!("a parallel tile panicked on a helper thread");
    }
}

/// A base pointer shared by tiles that each write their own range behind it.
pub(crate) struct Disjoint<T>(*mut T);

impl<T> Clone for Disjoint<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Disjoint<T> {}
// SAFETY: the users hand each range to one tile only (see `Disjoint::range`).
unsafe impl<T: Send> Send for Disjoint<T> {}
// SAFETY: as for `Send`: shared use only hands out disjoint ranges.
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// The start of `s`.
    pub(crate) fn new(s: &mut [T]) -> Self {
        Disjoint(s.as_mut_ptr())
    }

    /// `len` elements from `at`.
    ///
    /// # Safety
    /// The range must lie inside the slice given to [`Disjoint::new`], which must outlive
    /// the result, and no other live reference may overlap it.
    pub(crate) unsafe fn range<'a>(self, at: usize, len: usize) -> &'a mut [T] {
        // SAFETY: the caller guarantees the range lies inside the live slice from `new`
        // (so the offset pointer and the slice stay in bounds) and that nothing overlaps it.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }
}

/// Run `f(i, chunk)` for the `i`-th `size`-element chunk of `out` (the last may be shorter),
/// like `par_chunks_mut(size).enumerate()` but on the calling thread and the helpers that are
/// awake (see [`run_tiles`]): the caller starts at once and never waits for a sleeping worker.
pub fn for_each_chunk<T: Send>(out: &mut [T], size: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    for_each_chunk_on(rayon::current_num_threads(), out, size, f)
}

/// [`for_each_chunk`] on at most `threads` threads (the caller included).
pub fn for_each_chunk_on<T: Send>(threads: usize, out: &mut [T], size: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let (n, size) = (out.len(), size.max(1));
    let base = Disjoint::new(out);
    run_tiles(n.div_ceil(size), threads, &|t| {
        let start = t * size;
        // SAFETY: chunk t is `start..min(start + size, n)`, inside `out`; tiles are disjoint
        // and each runs once, while `out` stays mutably borrowed by this call.
        f(t, unsafe { base.range(start, size.min(n - start)) })
    });
}

/// [`for_each_chunk`] over two slices at once: chunk `i` of `a` (`sa` elements) with chunk
/// `i` of `b` (`sb` elements); both must hold the same number of chunks.
pub fn for_each_chunk2<A: Send, B: Send>(
    a: &mut [A],
    sa: usize,
    b: &mut [B],
    sb: usize,
    f: &(impl Fn(usize, &mut [A], &mut [B]) + Sync),
) {
    let (na, nb, sa, sb) = (a.len(), b.len(), sa.max(1), sb.max(1));
    let tiles = na.div_ceil(sa);
    assert_eq!(
        tiles,
        nb.div_ceil(sb),
        "for_each_chunk2: the slices hold different chunk counts"
    );
    let (pa, pb) = (Disjoint::new(a), Disjoint::new(b));
    for_each_tile(tiles, &|t| {
        let (ia, ib) = (t * sa, t * sb);
        // SAFETY: as in `for_each_chunk`, for each slice separately.
        let (ca, cb) = unsafe { (pa.range(ia, sa.min(na - ia)), pb.range(ib, sb.min(nb - ib))) };
        f(t, ca, cb)
    });
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
    fn chunks_cover_the_slice_once_with_their_index() {
        for n in [0, 1, 15, 16, 17, 1000] {
            let mut v = vec![0usize; n];
            for_each_chunk(&mut v, 16, &|i, c| c.iter_mut().for_each(|x| *x += i + 1));
            assert!(v.iter().enumerate().all(|(j, &x)| x == j / 16 + 1), "n = {n}");
            let (mut a, mut b) = (vec![0usize; n], vec![0u8; n.div_ceil(16) * 3]);
            for_each_chunk2(&mut a, 16, &mut b, 3, &|i, ca, cb| {
                ca.iter_mut().for_each(|x| *x = i);
                cb.iter_mut().for_each(|x| *x += 1);
            });
            assert!(a.iter().enumerate().all(|(j, &x)| x == j / 16));
            assert!(b.iter().all(|&x| x == 1));
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
