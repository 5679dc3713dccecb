//! A seedable random generator: the same seed gives the same numbers on any thread count.

/// xoshiro256++ seeded through SplitMix64; small, fast and with a state that can be saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    s: [u64; 4],
}

impl Generator {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Generator {
            s: [next(), next(), next(), next()],
        }
    }

    /// The full state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator resumed from a saved state.
    pub fn from_state(s: [u64; 4]) -> Self {
        Generator { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        self.normal_pair().0
    }

    /// Two independent standard normal samples from one Box–Muller step (half the cost
    /// per sample of [`Generator::normal`], for bulk fills).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        // 1 - u lies in (0, 1], so the log is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        (r * c, r * s)
    }

    /// Shuffle a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }

    /// An independent generator derived from this one (e.g. one per worker).
    pub fn fork(&mut self) -> Generator {
        Generator::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Generator::new(7);
        let mut b = Generator::new(7);
        let va: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(Generator::new(8).next_u64(), va[0]);
        let resumed = Generator::from_state(a.state());
        assert_eq!(resumed, a);
    }

    #[test]
    fn normal_pair_halves_are_uncorrelated_unit_normals() {
        let mut g = Generator::new(3);
        let n = 100_000;
        let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for _ in 0..n {
            let (a, b) = g.normal_pair();
            (sa, sb, saa, sbb, sab) = (sa + a, sb + b, saa + a * a, sbb + b * b, sab + a * b);
        }
        let n = n as f64;
        for (mean, sq) in [(sa / n, saa / n), (sb / n, sbb / n)] {
            assert!(mean.abs() < 0.02 && (sq - 1.0).abs() < 0.02, "mean {mean}, E[x²] {sq}");
        }
        assert!((sab / n).abs() < 0.02, "correlation {}", sab / n);
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut g = Generator::new(1);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| g.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }
}
