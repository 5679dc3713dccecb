//! The timing the layer examples share (`#[path]`-included: a folder without `main.rs` is
//! not an example of its own).

/// Best of `reps` runs of `f` after one warm-up, in milliseconds: the wall clock, or with
/// `CPU=1` the process's CPU time (all threads together; steadier on a shared machine).
pub fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    let cpu = std::env::var("CPU").is_ok_and(|v| v == "1");
    let start = std::time::Instant::now();
    let now = || {
        if cpu {
            nabla_core::profile::process_cpu_ns() as f64 / 1e6
        } else {
            start.elapsed().as_secs_f64() * 1e3
        }
    };
    f();
    (0..reps)
        .map(|_| {
            let t = now();
            f();
            now() - t
        })
        .fold(f64::INFINITY, f64::min)
}
