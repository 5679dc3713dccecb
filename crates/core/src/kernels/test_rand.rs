//! Pseudo-random test data from one xorshift64 stream, so the kernels' tests share a generator
//! (and a test's data never depends on another crate's sequence).

/// The xorshift64 stream of `seed` (any seed: it is spread over the bits and made odd, never 0).
fn stream(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// `len` f32 values in [-1, 1), 24 random bits each.
pub(crate) fn uniform_f32(len: usize, seed: u64) -> Vec<f32> {
    let mut next = stream(seed);
    (0..len)
        .map(|_| (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

/// `len` f64 values in [-s, s), 53 random bits each.
pub(crate) fn uniform_f64(len: usize, seed: u64, s: f64) -> Vec<f64> {
    let mut next = stream(seed);
    (0..len)
        .map(|_| ((next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ranges hold, the values spread over them, and a seed gives the same values twice
    /// while another seed gives others.
    #[test]
    fn values_cover_their_range_and_follow_the_seed() {
        let a = uniform_f32(10_000, 7);
        assert!(a.iter().all(|&v| (-1.0..1.0).contains(&v)));
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!(a.iter().any(|&v| v < -0.9) && a.iter().any(|&v| v > 0.9));
        assert_eq!(a, uniform_f32(10_000, 7));
        assert_ne!(a, uniform_f32(10_000, 8));
        let b = uniform_f64(10_000, 7, 0.5);
        assert!(b.iter().all(|&v| (-0.5..0.5).contains(&v)));
        assert!(b.iter().any(|&v| v < -0.45) && b.iter().any(|&v| v > 0.45));
        assert_ne!(b, uniform_f64(10_000, 8, 0.5));
    }
}
