//! Timing with the reference script's method: two warm-up calls, then the median of
//! `reps` timed calls.

use std::time::Instant;

/// Median wall time of `f` in seconds over `reps` calls, after two untimed warm-ups.
pub fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    // The upper median for even counts, as `sorted(t)[len(t) // 2]` in the script.
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn median_ignores_warmups_and_outliers() {
        let mut calls = 0;
        let s = median_secs(5, || {
            calls += 1;
            // The two warm-ups and one timed call are slow; the median must not see them.
            let ms = if calls <= 3 { 30 } else { 1 };
            std::thread::sleep(Duration::from_millis(ms));
        });
        assert_eq!(calls, 7);
        assert!(s < 0.02, "median {s} s");
    }
}
