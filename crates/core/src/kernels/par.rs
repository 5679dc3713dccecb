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
//! A helper that has finished its tiles lingers for a short while ([`linger_time`]) instead
//! of going back to sleep: it spins on the slot where callers post new work and picks up
//! the next call within a microsecond, where waking a sleeping worker takes tens of
//! microseconds, often longer than an elementwise op. Without this, a training step kept
//! about 1.5 of 2 cores busy: the caller ran most of each short op alone while the helper
//! woke up. While lingering it also runs any pending rayon work, so `par_iter` users never
//! wait on it. At most `threads − 1` helpers linger, so they never crowd out the caller.
//!
//! Helpers run their tiles at the caller's instruction-set level ([`cpu::isa`] read when the
//! work starts), so a test's [`cpu::with_isa`] override reaches every tile.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// The latest work posted by [`run_tiles`], for lingering helpers to pick up.
static POSTED: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

/// Bumped each time work is posted.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Helpers spinning for the next work right now.
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// How long a helper waits, spinning, for the next work before it goes back to rayon:
/// 200 µs, or `NABLA_SPIN_US` microseconds (0 turns lingering off). Most gaps between a
/// step's parallel ops are far shorter. Waits of 0, 200, 500 and 1000 µs gave fcn_small
/// 20 batches in 3.2, 3.1, 3.1–3.2 and 3.06 s, but 1000 µs slowed ResNet-18's step by
/// about 8% (its serial stretches are long, and a spinning core still costs the machine).
pub fn linger_time() -> Duration {
    static T: OnceLock<Duration> = OnceLock::new();
    *T.get_or_init(|| {
        let us = std::env::var("NABLA_SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        Duration::from_micros(us)
    })
}

/// Post `shared` for lingering helpers; returns its epoch and how many are lingering now.
fn post(shared: &Arc<Shared>) -> (u64, usize) {
    *POSTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(shared.clone());
    // SeqCst pairs with `help_and_linger`'s exit: either the caller sees the helper still
    // lingering or the helper sees the new epoch, so posted work never lacks its helper.
    let epoch = EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
    (epoch, LINGERING.load(Ordering::SeqCst))
}

/// Take the posted work out of the slot if it is still `shared` (it must not outlive the
/// call; a helper that took a copy finds it closed).
fn unpost(shared: &Arc<Shared>) {
    let mut slot = POSTED.lock().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, shared)) {
        *slot = None;
    }
}

/// Help with `shared`, then keep helping with whatever is posted next until nothing new
/// comes for [`linger_time`] (run on a rayon worker).
fn help_and_linger(shared: Arc<Shared>, seen: u64) {
    shared.help();
    drop(shared);
    let wait = linger_time();
    if wait.is_zero() {
        return;
    }
    let mut seen = seen;
    loop {
        let cap = rayon::current_num_threads().saturating_sub(1).max(1);
        if LINGERING.fetch_add(1, Ordering::SeqCst) >= cap {
            LINGERING.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let found = spin_for_work(seen, wait);
        LINGERING.fetch_sub(1, Ordering::SeqCst);
        // Posted just as the wait ran out: the caller may have counted on us.
        let now = EPOCH.load(Ordering::SeqCst);
        if !found && now == seen {
            return;
        }
        seen = now;
        let work = POSTED.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = work {
            w.help();
        }
    }
}

/// Spin until the epoch moves past `seen` (true) or `wait` passes with nothing new (false),
/// running pending rayon jobs meanwhile.
fn spin_for_work(seen: u64, wait: Duration) -> bool {
    let mut since = Instant::now();
    loop {
        for _ in 0..64 {
            if EPOCH.load(Ordering::Relaxed) != seen {
                return true;
            }
            std::hint::spin_loop();
        }
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            since = Instant::now();
        } else if since.elapsed() >= wait {
            return false;
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
    let (seen, lingering) = post(&shared);
    for _ in lingering.min(helpers)..helpers {
        let s = shared.clone();
        rayon::spawn(move || help_and_linger(s, seen));
    }
    {
        let _close = Close(&shared);
        shared.claim_all(true, work);
    }
    unpost(&shared);
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
    fn callers_on_several_threads_each_get_their_own_tiles() {
        // Lingering helpers pick up whatever was posted last: with four callers posting
        // at once, every call must still run each of its own tiles exactly once.
        std::thread::scope(|s| {
            for c in 0..4usize {
                s.spawn(move || {
                    for round in 0..200 {
                        let hits: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
                        run_tiles(hits.len(), 2, &|t| {
                            hits[t].fetch_add(c + 1, Ordering::Relaxed);
                        });
                        let ok = hits.iter().all(|h| h.load(Ordering::Relaxed) == c + 1);
                        assert!(ok, "caller {c}, round {round}");
                    }
                });
            }
        });
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
