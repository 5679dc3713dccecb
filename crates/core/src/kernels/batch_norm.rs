//! Batch normalization in training mode over `[n, c, p]` data (`p` values per image and
//! channel), channel by channel: statistics in two passes (mean, then squared deviations,
//! with the mean corrected by the deviations' sum), the output in one, and the three
//! gradients in two. Channels are split over threads; each channel's sums run in a fixed
//! order, so results do not depend on the thread count.

use super::conv_direct::Disjoint;
use super::elementwise::{vectorized, Loop};
use super::par::run_tiles;
use super::PAR_THRESHOLD;
use crate::Element;

/// Independent accumulators (two AVX-512 registers of f32), widened to f64 every `RUN`.
const LANES: usize = 32;
const RUN: usize = 16;

/// `(Σ g, Σ g·(x − m))` over one plane, or `(Σ (x − m), Σ (x − m)²)` without `g`.
struct Sums<'a, T> {
    g: Option<&'a [T]>,
    x: &'a [T],
    m: T,
}

impl<T: Element> Loop for Sums<'_, T> {
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let (mut s1, mut s2) = ([0f64; LANES], [0f64; LANES]);
        let m = self.m;
        let n = self.x.len();
        let g = self.g.unwrap_or(self.x);
        let whole = n / (LANES * RUN) * (LANES * RUN);
        for start in (0..whole).step_by(LANES * RUN) {
            let (mut a1, mut a2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
            for c in (start..start + LANES * RUN).step_by(LANES) {
                let (xs, gs) = (&self.x[c..c + LANES], &g[c..c + LANES]);
                for i in 0..LANES {
                    let d = xs[i] - m;
                    let u = if self.g.is_some() { gs[i] } else { d };
                    a1[i] += u;
                    a2[i] += u * d;
                }
            }
            for i in 0..LANES {
                s1[i] += a1[i].to_f64();
                s2[i] += a2[i].to_f64();
            }
        }
        let (mut t1, mut t2): (f64, f64) = (s1.iter().sum(), s2.iter().sum());
        for (&x, &g) in self.x[whole..].iter().zip(&g[whole..]) {
            let d = (x - m).to_f64();
            let u = if self.g.is_some() { g.to_f64() } else { d };
            t1 += u;
            t2 += u * d;
        }
        (t1, t2)
    }
}

/// `y = a·x + b·g + c` over one plane (`g` absent: `b` unused).
struct Affine<'a, T> {
    x: &'a [T],
    g: Option<&'a [T]>,
    y: &'a mut [T],
    abc: [T; 3],
}

impl<T: Element> Loop for Affine<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let [a, b, c] = self.abc;
        match self.g {
            Some(g) => {
                for ((y, &x), &g) in self.y.iter_mut().zip(self.x).zip(g) {
                    *y = a * x + b * g + c;
                }
            }
            None => {
                for (y, &x) in self.y.iter_mut().zip(self.x) {
                    *y = a * x + c;
                }
            }
        }
    }
}

/// Threads for `len` elements of work.
fn threads(len: usize) -> usize {
    if len >= PAR_THRESHOLD {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// Run `f(channel, planes)` for every channel, `planes(i)` giving image `i`'s plane.
fn per_channel(n: usize, c: usize, p: usize, f: &(dyn Fn(usize) + Sync)) {
    let per = (super::BLOCK / (n * p).max(1)).clamp(1, c.max(1));
    run_tiles(c.div_ceil(per), threads(n * c * p), &|t| {
        for ch in t * per..((t + 1) * per).min(c) {
            f(ch)
        }
    });
}

/// Training-mode forward: per channel the mean and biased variance of `x` (`[n, c, p]`),
/// and `y = (x − mean)/√(var + eps)·w + b`. Returns (mean, var) per channel.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Element>(
    x: &[T],
    [n, c, p]: [usize; 3],
    w: &[T],
    b: &[T],
    eps: f64,
    y: &mut [T],
) -> (Vec<f64>, Vec<f64>) {
    let (mut mean, mut var) = (vec![0f64; c], vec![0f64; c]);
    let cnt = (n * p).max(1) as f64;
    let (md, vd, yd) = (Disjoint::new(&mut mean), Disjoint::new(&mut var), Disjoint::new(y));
    per_channel(n, c, p, &|ch| {
        let plane = |i: usize| &x[(i * c + ch) * p..][..p];
        let s: f64 = (0..n)
            .map(|i| {
                vectorized(Sums {
                    g: None,
                    x: plane(i),
                    m: T::ZERO,
                })
                .0
            })
            .sum();
        let m0 = T::from_f64(s / cnt);
        let (mut d1, mut d2) = (0f64, 0f64);
        for i in 0..n {
            let (a, b) = vectorized(Sums {
                g: None,
                x: plane(i),
                m: m0,
            });
            d1 += a;
            d2 += b;
        }
        // The deviations' sum corrects the rounding of the first mean.
        let (mu, v) = (m0.to_f64() + d1 / cnt, (d2 - d1 * d1 / cnt).max(0.0) / cnt);
        let scale = w[ch].to_f64() / (v + eps).sqrt();
        let abc = [T::from_f64(scale), T::ZERO, T::from_f64(b[ch].to_f64() - mu * scale)];
        for i in 0..n {
            // SAFETY: this channel alone writes its planes and its statistics.
            let out = unsafe { yd.range((i * c + ch) * p, p) };
            vectorized(Affine {
                x: plane(i),
                g: None,
                y: out,
                abc,
            });
        }
        unsafe {
            md.range(ch, 1)[0] = mu;
            vd.range(ch, 1)[0] = v;
        }
    });
    (mean, var)
}

/// Training-mode backward of [`forward`]: with `xhat = (x − mean)·inv`, `inv = 1/√(var+eps)`,
/// `db = Σ gy`, `dw = Σ gy·xhat` and `dx = w·inv·(gy − db/cnt − xhat·dw/cnt)`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Element>(
    x: &[T],
    gy: &[T],
    [n, c, p]: [usize; 3],
    mean: &[f64],
    inv: &[f64],
    w: &[T],
    dx: &mut [T],
) -> (Vec<T>, Vec<T>) {
    let (mut dw, mut db) = (vec![T::ZERO; c], vec![T::ZERO; c]);
    let cnt = (n * p).max(1) as f64;
    let (dwd, dbd, dxd) = (Disjoint::new(&mut dw), Disjoint::new(&mut db), Disjoint::new(dx));
    per_channel(n, c, p, &|ch| {
        let at = |i: usize| (i * c + ch) * p;
        let m = T::from_f64(mean[ch]);
        let (mut sg, mut sgx) = (0f64, 0f64);
        for i in 0..n {
            let (a, b) = vectorized(Sums {
                g: Some(&gy[at(i)..][..p]),
                x: &x[at(i)..][..p],
                m,
            });
            sg += a;
            sgx += b;
        }
        let (inv, wc) = (inv[ch], w[ch].to_f64());
        let dwc = sgx * inv;
        // dx = k·gy + kx·(x − m) − k·db/cnt, k = w·inv, kx = −k·inv·dw/cnt.
        let k = wc * inv;
        let kx = -k * inv * dwc / cnt;
        let abc = [
            T::from_f64(kx),
            T::from_f64(k),
            T::from_f64(-k * sg / cnt - kx * m.to_f64()),
        ];
        for i in 0..n {
            // SAFETY: this channel alone writes its planes and its gradients.
            let out = unsafe { dxd.range(at(i), p) };
            vectorized(Affine {
                x: &x[at(i)..][..p],
                g: Some(&gy[at(i)..][..p]),
                y: out,
                abc,
            });
        }
        unsafe {
            dwd.range(ch, 1)[0] = T::from_f64(dwc);
            dbd.range(ch, 1)[0] = T::from_f64(sg);
        }
    });
    (dw, db)
}
