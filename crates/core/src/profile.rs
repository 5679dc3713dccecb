//! Per-op wall and CPU time, switched on by `NABLA_PROFILE=1`, printed as a table at exit.
//!
//! What it answers: where a training step keeps fewer cores busy than it has. Each op kind
//! gets its wall time and the process's CPU time (all threads) over the same intervals; on
//! `T` threads, `T · wall − cpu` is the core time left idle while that op ran (the table's
//! "idle" column, sorted on). On a loaded machine the wall time also holds time spent
//! waiting for a core, so read the CPU/wall ratio beside it.
//!
//! How time is split: forward ops call [`mark`] when they record their result (every op
//! does, also under no-grad), which books the time since the previous mark to that op. So a
//! forward op's figure is the time since the op before it ended: code between ops (a model's
//! glue, an op that records nothing) lands on the next op that records. Backward rules and
//! optimizer steps run inside a [`scope`], which books its whole span, the ops inside
//! included, to its own name; time outside every scope and before the first mark lands in
//! "(between ops)" when a scope starts. Rayon workers waiting for work spin for a while
//! before they sleep, and nabla's own helpers linger spinning for the next op (see
//! [`crate::kernels::par`]); that spinning counts as CPU, so a ratio near the thread count
//! is an upper bound on useful work. `NABLA_SPIN_US=0` turns the lingering off for a
//! cleaner ratio.
//!
//! When off, [`mark`] and [`scope`] cost one relaxed atomic load each.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// 0: not read yet; 1: off; 2: on.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Which pass an entry's time belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// An op's forward computation.
    Forward,
    /// A backward rule (the ops inside it included) or the engine's gradient accumulation.
    Backward,
    /// An optimizer step, or other work outside the graph.
    Other,
}

#[derive(Clone, Copy, Default)]
struct Stat {
    calls: u64,
    wall_ns: u64,
    cpu_ns: u64,
}

static TABLE: Mutex<Option<HashMap<(&'static str, Phase), Stat>>> = Mutex::new(None);

thread_local! {
    /// The last mark on this thread: wall clock and process CPU time.
    static LAST: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
    /// Open scopes on this thread: marks inside them are part of the scope.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether profiling is on (`NABLA_PROFILE` set to anything but empty or `0`).
#[inline]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        2 => true,
        1 => false,
        _ => init(),
    }
}

#[cold]
fn init() -> bool {
    let on = std::env::var("NABLA_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
    if STATE
        .compare_exchange(0, if on { 2 } else { 1 }, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
        && on
    {
        register_report();
    }
    on
}

/// The process's CPU time in nanoseconds, all threads together (0 where unsupported).
pub fn process_cpu_ns() -> u64 {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec with the C layout on 64-bit Linux.
        if unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0 {
            return ts.sec as u64 * 1_000_000_000 + ts.nsec as u64;
        }
        0
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    {
        0
    }
}

/// Book the time since the previous mark to `name` and start a new interval.
fn book(name: &'static str, phase: Phase) {
    let now = (Instant::now(), process_cpu_ns());
    if let Some((wall, cpu)) = LAST.with(|l| l.replace(Some(now))) {
        let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let s = t.get_or_insert_with(HashMap::new).entry((name, phase)).or_default();
        s.calls += 1;
        s.wall_ns += now.0.duration_since(wall).as_nanos() as u64;
        s.cpu_ns += now.1.saturating_sub(cpu);
    }
}

/// A forward op named `name` has just computed its result: book the time since the last
/// mark to it (nothing inside a [`scope`], which books its whole span).
#[inline]
pub fn mark(name: &'static str) {
    if enabled() && DEPTH.with(|d| d.get()) == 0 {
        book(name, Phase::Forward);
    }
}

/// Books the span of a [`scope`] when dropped.
pub struct Scope {
    name: Option<(&'static str, Phase)>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some((name, phase)) = self.name {
            let depth = DEPTH.with(|d| {
                d.set(d.get() - 1);
                d.get()
            });
            if depth == 0 {
                book(name, phase);
            }
        }
    }
}

/// Book everything until the returned guard drops to `name` in `phase` (an outer scope,
/// if one is open, takes it instead).
#[inline]
pub fn scope(name: &'static str, phase: Phase) -> Scope {
    if !enabled() {
        return Scope { name: None };
    }
    let depth = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    if depth == 1 {
        book("(between ops)", Phase::Other);
    }
    Scope {
        name: Some((name, phase)),
    }
}

/// The table so far as text: one row per op and phase, most idle core time first.
pub fn report() -> String {
    let threads = rayon::current_num_threads().max(1) as f64;
    let t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = t.iter().flatten().map(|(k, s)| (*k, *s)).collect();
    let idle = |s: &Stat| (threads * s.wall_ns as f64 - s.cpu_ns as f64).max(0.0);
    rows.sort_by(|a, b| idle(&b.1).total_cmp(&idle(&a.1)));
    let total = rows.iter().fold(Stat::default(), |acc, (_, s)| Stat {
        calls: acc.calls + s.calls,
        wall_ns: acc.wall_ns + s.wall_ns,
        cpu_ns: acc.cpu_ns + s.cpu_ns,
    });
    let ms = |ns: f64| ns / 1e6;
    let mut out = format!(
        "nabla profile ({threads} threads; idle = {threads}·wall − cpu)\n{:<28} {:<8} {:>8} {:>10} {:>10} {:>6} {:>10} {:>6}\n",
        "op", "phase", "calls", "wall ms", "cpu ms", "cpu/w", "idle ms", "idle%"
    );
    let tidle = idle(&total).max(1.0);
    for ((name, phase), s) in rows.iter().chain([(("total", Phase::Other), total)].iter()) {
        let w = s.wall_ns as f64;
        out.push_str(&format!(
            "{:<28} {:<8} {:>8} {:>10.1} {:>10.1} {:>6.2} {:>10.1} {:>6.1}\n",
            name,
            format!("{phase:?}").to_lowercase(),
            s.calls,
            ms(w),
            ms(s.cpu_ns as f64),
            if w > 0.0 { s.cpu_ns as f64 / w } else { 0.0 },
            ms(idle(s)),
            100.0 * idle(s) / tidle
        ));
    }
    out
}

/// Print [`report`] to stderr when the process exits.
fn register_report() {
    extern "C" fn at_exit() {
        eprint!("{}", report());
    }
    #[cfg(unix)]
    {
        extern "C" {
            fn atexit(f: extern "C" fn()) -> i32;
        }
        // SAFETY: `at_exit` is a plain function that lives for the whole program.
        unsafe {
            atexit(at_exit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_book_their_span_and_marks_inside_them_are_absorbed() {
        // Force it on for this process's tests: marks then land in the shared table.
        STATE.store(2, Ordering::Relaxed);
        mark("profile_test_first");
        std::thread::sleep(std::time::Duration::from_millis(2));
        mark("profile_test_fwd");
        {
            let _s = scope("profile_test_bwd", Phase::Backward);
            std::thread::sleep(std::time::Duration::from_millis(3));
            mark("profile_test_inner");
        }
        {
            let guard = TABLE.lock().unwrap();
            let t = guard.as_ref().unwrap();
            let fwd = t[&("profile_test_fwd", Phase::Forward)];
            assert!(fwd.calls == 1 && fwd.wall_ns >= 2_000_000, "{}", fwd.wall_ns);
            let bwd = t[&("profile_test_bwd", Phase::Backward)];
            assert!(bwd.calls == 1 && bwd.wall_ns >= 3_000_000, "{}", bwd.wall_ns);
            assert!(!t.contains_key(&("profile_test_inner", Phase::Forward)));
        }
        assert!(report().contains("profile_test_bwd"));
    }
}
