//! The Winograd transform sets of [`super::winograd2`]'s stride-1 2×2 convolutions:
//! F(4×4, 2×2) (points 0, ±1, 2, ∞) and F(7×7, 2×2) (points 0, ±1, ±2, ±1/2, ∞), and the
//! rule choosing between them.
//!
//! Both follow from their points `a_p` (`n = m + 1` of them, the last ∞) by one rule. The
//! correlation `y_i = Σ_k g_k d_{i+k}` is the transpose of the polynomial product
//! `z(x) = g(x) · h(x)` (`deg h = m − 1`), which Toom–Cook computes as values at the points
//! (`h(a_p)`, `g(a_p)`; at ∞ the leading coefficients) multiplied, then interpolated:
//! `z = C [(G g) ⊙ (A' h)]` with `C` the inverse of the `n × n` Vandermonde matrix. So
//! `y = A'ᵀ [(G g) ⊙ (Cᵀ d)]`, and
//! - `Aᵀ[i][p] = a_p^i` (m × n; the ∞ column is `e_{m−1}`);
//! - `Bᵀ = Cᵀ`, row `p` the coefficients of the Lagrange polynomial of `a_p`, scaled by
//!   `|f_p|`, `f_p = Π_{l≠p} (a_p − a_l)`, into those of `± Π_{l≠p} (x − a_l)` (finite `l`
//!   only, the sign of `f_p`); the ∞ row is the coefficients of `Π_l (x − a_l)`;
//! - `G[p][k] = a_p^k / |f_p|` (n × 2; the ∞ row is `(0, 1)`), taking the scale back.
//!
//! The test `constants_follow_from_the_points` rebuilds every constant from the points so;
//! the fractions sit in `G`, applied once per weight, not per input tile. The transforms
//! run as written-out formulas ([`Formulas`]), checked against the constants.

use crate::Element;

/// Channels transformed together, one per vector lane.
pub(crate) const LANES: usize = 16;

/// A vector of lanes: one value per channel.
pub(crate) type Lanes<T> = [T; LANES];

/// The matrices of F(M×M, 2×2) with `A = M + 1` points. `G` is applied as it stands (once
/// per weight); the tile transforms `Aᵀ` and `Bᵀ` run as [`Formulas`], and the matrices
/// are what the tests check those against.
pub(crate) trait Set<const M: usize, const A: usize>: Sync {
    /// `Aᵀ` (M × A): output tile from the products.
    #[cfg(test)]
    const AT: [[f64; A]; M];
    /// `G` (A × 2): weight transform.
    const G: [[f64; 2]; A];
    /// `Bᵀ` (A × A): input transform.
    #[cfg(test)]
    const BT: [[f64; A]; A];
}

/// F(4×4, 2×2): 25 products per 4×4 output tile.
pub(crate) struct F4;

impl Set<4, 5> for F4 {
    #[cfg(test)]
    const AT: [[f64; 5]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, 1.0],
    ];
    const G: [[f64; 2]; 5] = [
        [0.5, 0.0],
        [0.5, 0.5],
        [1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 6.0, 1.0 / 3.0],
        [0.0, 1.0],
    ];
    #[cfg(test)]
    const BT: [[f64; 5]; 5] = [
        [2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 2.0, 1.0, -1.0, 0.0],
        [0.0, -2.0, 3.0, -1.0, 0.0],
        [0.0, -1.0, 0.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0],
    ];
}

/// F(7×7, 2×2): 64 products per 7×7 output tile (one tile covers DCGAN's 7×7 maps, where
/// F(4×4) needs four, 100 products).
pub(crate) struct F7;

impl Set<7, 8> for F7 {
    #[cfg(test)]
    const AT: [[f64; 8]; 7] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.25, 0.25, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 0.0],
        [0.0, 1.0, 1.0, 16.0, 16.0, 1.0 / 16.0, 1.0 / 16.0, 0.0],
        [0.0, 1.0, -1.0, 32.0, -32.0, 1.0 / 32.0, -1.0 / 32.0, 0.0],
        [0.0, 1.0, 1.0, 64.0, 64.0, 1.0 / 64.0, 1.0 / 64.0, 1.0],
    ];
    const G: [[f64; 2]; 8] = [
        [1.0, 0.0],
        [2.0 / 9.0, 2.0 / 9.0],
        [2.0 / 9.0, -2.0 / 9.0],
        [1.0 / 90.0, 1.0 / 45.0],
        [1.0 / 90.0, -1.0 / 45.0],
        [32.0 / 45.0, 16.0 / 45.0],
        [32.0 / 45.0, -16.0 / 45.0],
        [0.0, 1.0],
    ];
    #[cfg(test)]
    const BT: [[f64; 8]; 8] = [
        [1.0, 0.0, -5.25, 0.0, 5.25, 0.0, -1.0, 0.0],
        [0.0, -1.0, -1.0, 4.25, 4.25, -1.0, -1.0, 0.0],
        [0.0, 1.0, -1.0, -4.25, 4.25, 1.0, -1.0, 0.0],
        [0.0, 0.5, 0.25, -2.5, -1.25, 2.0, 1.0, 0.0],
        [0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0],
        [0.0, 2.0, 4.0, -2.5, -5.0, 0.5, 1.0, 0.0],
        [0.0, -2.0, 4.0, 2.5, -5.0, -0.5, 1.0, 0.0],
        [0.0, -1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0],
    ];
}

/// A set's transforms as written-out formulas over vectors of lanes, so they compile to a
/// few vector operations on registers, using the pairs of points ±a. Loops over the
/// matrices' entries made the weight gradient 40% slower, and the forward and input
/// gradient slower too (DCGAN's 64 ↔ 128 layer, one thread, CPU time, loops → formulas:
/// forward 9.9–10.6 → 8.8–9.3 ms, input gradient 12.6–13.3 → 11.8–12.3). The test
/// `formulas_are_the_matrices` checks each against the constants.
pub(crate) trait Formulas<const M: usize, const A: usize>: Set<M, A> {
    /// `Bᵀ d` (the input transform) for the `A` rows `d`, each a vector of lanes.
    fn x_points<T: Element>(d: &[Lanes<T>; A], o: &mut [Lanes<T>; A]);
    /// `A e` for the `M` rows `e`, `A` (`A × M`) being the set's `Aᵀ` transposed.
    fn dy_points<T: Element>(e: &[Lanes<T>; M], o: &mut [Lanes<T>; A]);
    /// `Gᵀ p` for the `A` rows `p`: 2 taps from the points, `G` being the weight transform.
    /// Its fractions apply once, after the sums.
    fn taps_from_points<T: Element>(p: &[Lanes<T>; A], o: &mut [Lanes<T>; 2]);
    /// `Aᵀ m` (the output transform) for the `A` rows `m`, lane `l` of row `k` being
    /// `m(k, l)` (read in place: a column of a tile as well as a row).
    fn y_points<T: Element>(m: impl Fn(usize, usize) -> T, o: &mut [Lanes<T>; M]);
    /// `B v` (the adjoint of the input transform) for the `A` rows `v`, read in place as in
    /// [`Formulas::y_points`].
    fn x_adjoint<T: Element>(v: impl Fn(usize, usize) -> T, o: &mut [Lanes<T>; A]);
}

impl Formulas<4, 5> for F4 {
    #[inline(always)]
    fn x_points<T: Element>(d: &[Lanes<T>; 5], o: &mut [Lanes<T>; 5]) {
        let (two, three) = (T::from_f64(2.0), T::from_f64(3.0));
        for l in 0..LANES {
            let (d0, d1, d2, d3, d4) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l]);
            o[0][l] = two * (d0 - d2) + (d3 - d1);
            o[1][l] = two * d1 + (d2 - d3);
            o[2][l] = three * d2 - two * d1 - d3;
            o[3][l] = d3 - d1;
            o[4][l] = two * (d1 - d3) - d2 + d4;
        }
    }

    #[inline(always)]
    fn dy_points<T: Element>(e: &[Lanes<T>; 4], o: &mut [Lanes<T>; 5]) {
        let (two, four, eight) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(8.0));
        for l in 0..LANES {
            let (e0, e1, e2, e3) = (e[0][l], e[1][l], e[2][l], e[3][l]);
            let (even, odd) = (e0 + e2, e1 + e3);
            o[0][l] = e0;
            o[1][l] = even + odd;
            o[2][l] = even - odd;
            o[3][l] = e0 + two * e1 + four * e2 + eight * e3;
            o[4][l] = e3;
        }
    }

    #[inline(always)]
    fn taps_from_points<T: Element>(p: &[Lanes<T>; 5], o: &mut [Lanes<T>; 2]) {
        let (half, sixth, two) = (T::from_f64(0.5), T::from_f64(1.0 / 6.0), T::from_f64(2.0));
        for l in 0..LANES {
            let (p0, p1, p2, p3, p4) = (p[0][l], p[1][l], p[2][l], p[3][l], p[4][l]);
            o[0][l] = half * (p0 + p1) + sixth * (p2 + p3);
            o[1][l] = half * p1 + sixth * (two * p3 - p2) + p4;
        }
    }

    // Lane l of every output row: the rows are several arrays, not one to iterate.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn y_points<T: Element>(m: impl Fn(usize, usize) -> T, o: &mut [Lanes<T>; 4]) {
        let (two, four, eight) = (T::from_f64(2.0), T::from_f64(4.0), T::from_f64(8.0));
        for l in 0..LANES {
            let [m0, m1, m2, m3, m4] = std::array::from_fn(|k| m(k, l));
            let (s, d) = (m1 + m2, m1 - m2);
            o[0][l] = m0 + s + m3;
            o[1][l] = d + two * m3;
            o[2][l] = s + four * m3;
            o[3][l] = d + eight * m3 + m4;
        }
    }

    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn x_adjoint<T: Element>(v: impl Fn(usize, usize) -> T, o: &mut [Lanes<T>; 5]) {
        let (two, three) = (T::from_f64(2.0), T::from_f64(3.0));
        for l in 0..LANES {
            let [v0, v1, v2, v3, v4] = std::array::from_fn(|k| v(k, l));
            o[0][l] = two * v0;
            o[1][l] = two * (v1 - v2 + v4) - v0 - v3;
            o[2][l] = v1 + three * v2 - two * v0 - v4;
            o[3][l] = v0 - v1 - v2 + v3 - two * v4;
            o[4][l] = v4;
        }
    }
}

/// Points 0, 1, −1, 2, −2, ½, −½, ∞: the pairs ±a share their even and odd parts.
impl Formulas<7, 8> for F7 {
    #[inline(always)]
    fn x_points<T: Element>(d: &[Lanes<T>; 8], o: &mut [Lanes<T>; 8]) {
        let c = |v: f64| T::from_f64(v);
        let (c525, c425, c25, c125, c4, c5) = (c(5.25), c(4.25), c(2.5), c(1.25), c(4.0), c(5.0));
        let (half, quarter, two) = (c(0.5), c(0.25), c(2.0));
        for l in 0..LANES {
            let [d0, d1, d2, d3, d4, d5, d6, d7] = std::array::from_fn(|k| d[k][l]);
            o[0][l] = d0 - d6 + c525 * (d4 - d2);
            o[7][l] = d7 - d1 + c525 * (d3 - d5);
            let (e, f) = (c425 * d4 - d2 - d6, c425 * d3 - d1 - d5);
            o[1][l] = e + f;
            o[2][l] = e - f;
            let (e, f) = (quarter * d2 - c125 * d4 + d6, half * d1 - c25 * d3 + two * d5);
            o[3][l] = e + f;
            o[4][l] = e - f;
            let (e, f) = (c4 * d2 - c5 * d4 + d6, two * d1 - c25 * d3 + half * d5);
            o[5][l] = e + f;
            o[6][l] = e - f;
        }
    }

    #[inline(always)]
    fn dy_points<T: Element>(e: &[Lanes<T>; 7], o: &mut [Lanes<T>; 8]) {
        let c = |v: f64| T::from_f64(v);
        let (c2, c4, c8, c16, c32, c64) = (c(2.0), c(4.0), c(8.0), c(16.0), c(32.0), c(64.0));
        let (h, q, h3, h4, h5, h6) = (c(0.5), c(0.25), c(0.125), c(1.0 / 16.0), c(1.0 / 32.0), c(1.0 / 64.0));
        for l in 0..LANES {
            let [e0, e1, e2, e3, e4, e5, e6] = std::array::from_fn(|k| e[k][l]);
            o[0][l] = e0;
            o[7][l] = e6;
            let (ev, od) = (e0 + e2 + e4 + e6, e1 + e3 + e5);
            o[1][l] = ev + od;
            o[2][l] = ev - od;
            let (ev, od) = (e0 + c4 * e2 + c16 * e4 + c64 * e6, c2 * e1 + c8 * e3 + c32 * e5);
            o[3][l] = ev + od;
            o[4][l] = ev - od;
            let (ev, od) = (e0 + q * e2 + h4 * e4 + h6 * e6, h * e1 + h3 * e3 + h5 * e5);
            o[5][l] = ev + od;
            o[6][l] = ev - od;
        }
    }

    #[inline(always)]
    fn taps_from_points<T: Element>(p: &[Lanes<T>; 8], o: &mut [Lanes<T>; 2]) {
        let c = |v: f64| T::from_f64(v);
        let (a, b, b2, e, e2) = (
            c(2.0 / 9.0),
            c(1.0 / 90.0),
            c(1.0 / 45.0),
            c(32.0 / 45.0),
            c(16.0 / 45.0),
        );
        for l in 0..LANES {
            let [p0, p1, p2, p3, p4, p5, p6, p7] = std::array::from_fn(|k| p[k][l]);
            o[0][l] = p0 + a * (p1 + p2) + b * (p3 + p4) + e * (p5 + p6);
            o[1][l] = a * (p1 - p2) + b2 * (p3 - p4) + e2 * (p5 - p6) + p7;
        }
    }

    // Lane l of every output row: the rows are several arrays, not one to iterate.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn y_points<T: Element>(m: impl Fn(usize, usize) -> T, o: &mut [Lanes<T>; 7]) {
        let c = |v: f64| T::from_f64(v);
        let (c2, c4, c8, c16, c32, c64) = (c(2.0), c(4.0), c(8.0), c(16.0), c(32.0), c(64.0));
        let (h, q, h3, h4, h5, h6) = (c(0.5), c(0.25), c(0.125), c(1.0 / 16.0), c(1.0 / 32.0), c(1.0 / 64.0));
        for l in 0..LANES {
            let [m0, m1, m2, m3, m4, m5, m6, m7] = std::array::from_fn(|k| m(k, l));
            let (s1, d1, s2, d2, s3, d3) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4, m5 + m6, m5 - m6);
            o[0][l] = m0 + s1 + s2 + s3;
            o[1][l] = d1 + c2 * d2 + h * d3;
            o[2][l] = s1 + c4 * s2 + q * s3;
            o[3][l] = d1 + c8 * d2 + h3 * d3;
            o[4][l] = s1 + c16 * s2 + h4 * s3;
            o[5][l] = d1 + c32 * d2 + h5 * d3;
            o[6][l] = s1 + c64 * s2 + h6 * s3 + m7;
        }
    }

    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn x_adjoint<T: Element>(v: impl Fn(usize, usize) -> T, o: &mut [Lanes<T>; 8]) {
        let c = |v: f64| T::from_f64(v);
        let (c525, c425, c25, c125, c4, c5) = (c(5.25), c(4.25), c(2.5), c(1.25), c(4.0), c(5.0));
        let (half, quarter, two) = (c(0.5), c(0.25), c(2.0));
        for l in 0..LANES {
            let [v0, v1, v2, v3, v4, v5, v6, v7] = std::array::from_fn(|k| v(k, l));
            let (s1, d1, s2, d2, s3, d3) = (v1 + v2, v1 - v2, v3 + v4, v3 - v4, v5 + v6, v5 - v6);
            o[0][l] = v0;
            o[1][l] = half * d2 + two * d3 - d1 - v7;
            o[2][l] = quarter * s2 + c4 * s3 - c525 * v0 - s1;
            o[3][l] = c425 * d1 - c25 * (d2 + d3) + c525 * v7;
            o[4][l] = c525 * v0 + c425 * s1 - c125 * s2 - c5 * s3;
            o[5][l] = two * d2 + half * d3 - d1 - c525 * v7;
            o[6][l] = s2 + s3 - v0 - s1;
            o[7][l] = v7;
        }
    }
}

/// Whether an `oh × ow` stride-1 output takes [`F7`]: when its tiles need fewer products
/// than [`F4`]'s (7×7: 64 against 100; 8×8: 256 against 100).
pub(crate) fn use_f7(oh: usize, ow: usize) -> bool {
    oh.div_ceil(7) * ow.div_ceil(7) * 64 < oh.div_ceil(4) * ow.div_ceil(4) * 25
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix by rows.
    type Rows = Vec<Vec<f64>>;

    /// `(Aᵀ, G, Bᵀ)` rebuilt from the finite points by the rule of the module doc.
    fn from_points(pts: &[f64]) -> (Rows, Rows, Rows) {
        let (n, m) = (pts.len() + 1, pts.len());
        let mul = |poly: &[f64], root: f64| {
            // poly · (x − root), coefficients lowest first.
            let mut out = vec![0.0; poly.len() + 1];
            for (i, &c) in poly.iter().enumerate() {
                out[i] -= c * root;
                out[i + 1] += c;
            }
            out
        };
        let mut at: Vec<Vec<f64>> = (0..m).map(|i| pts.iter().map(|p| p.powi(i as i32)).collect()).collect();
        for (i, row) in at.iter_mut().enumerate() {
            row.push(if i == m - 1 { 1.0 } else { 0.0 });
        }
        let (mut g, mut bt) = (vec![], vec![]);
        for (p, &a) in pts.iter().enumerate() {
            let (mut f, mut poly) = (1.0, vec![1.0]);
            for (l, &b) in pts.iter().enumerate() {
                if l != p {
                    f *= a - b;
                    poly = mul(&poly, b);
                }
            }
            poly.resize(n, 0.0);
            bt.push(poly.iter().map(|c| c * f.signum()).collect());
            g.push(vec![1.0 / f.abs(), a / f.abs()]);
        }
        bt.push(pts.iter().fold(vec![1.0], |poly, &b| mul(&poly, b)));
        g.push(vec![0.0, 1.0]);
        (at, g, bt)
    }

    fn check<const M: usize, const A: usize, S: Set<M, A>>(pts: &[f64]) {
        let (at, g, bt) = from_points(pts);
        let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-15);
        assert!(at.len() == M && at.iter().zip(&S::AT).all(|(a, b)| same(a, b)), "Aᵀ");
        assert!(g.len() == A && g.iter().zip(&S::G).all(|(a, b)| same(a, b)), "G");
        assert!(bt.len() == A && bt.iter().zip(&S::BT).all(|(a, b)| same(a, b)), "Bᵀ");
    }

    #[test]
    fn constants_follow_from_the_points() {
        check::<4, 5, F4>(&[0.0, 1.0, -1.0, 2.0]);
        check::<7, 8, F7>(&[0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5]);
    }

    /// `Aᵀ[(G g) ⊙ (Bᵀ d)]` against the correlation, in one dimension.
    fn one_d<const M: usize, const A: usize, S: Set<M, A>>() {
        for seed in 0..5 {
            let g = [0.3 + seed as f64, -1.7 + 0.5 * seed as f64];
            let d: [f64; A] = std::array::from_fn(|i| ((i * 7 + seed) as f64 * 0.61).sin() * 3.0);
            let gg: [f64; A] = std::array::from_fn(|p| S::G[p][0] * g[0] + S::G[p][1] * g[1]);
            let bd: [f64; A] = std::array::from_fn(|p| (0..A).map(|k| S::BT[p][k] * d[k]).sum());
            for (i, row) in S::AT.iter().enumerate() {
                let got: f64 = (0..A).map(|p| row[p] * gg[p] * bd[p]).sum();
                let want = g[0] * d[i] + g[1] * d[i + 1];
                assert!(
                    (got - want).abs() < 1e-12 * (1.0 + want.abs()),
                    "{M}: y[{i}] {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn transforms_compute_the_correlation() {
        one_d::<4, 5, F4>();
        one_d::<7, 8, F7>();
    }

    #[test]
    fn f7_where_it_needs_fewer_products() {
        assert!(use_f7(7, 7));
        assert!(use_f7(5, 6));
        assert!(use_f7(14, 14));
        assert!(!use_f7(4, 4));
        assert!(!use_f7(8, 8));
        assert!(!use_f7(3, 7));
    }

    /// Each formula against its matrix, lane by lane (lanes of different data).
    #[allow(clippy::needless_range_loop)]
    fn formulas<const M: usize, const A: usize, S: Formulas<M, A>>() {
        let v = |k: usize, l: usize| ((k * 31 + l * 7) as f64 * 0.37).sin() * (1.0 + l as f64);
        let close =
            |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()), "{M} {what}: {a} vs {b}");
        let rows = |n: usize| -> Vec<Lanes<f64>> { (0..n).map(|k| std::array::from_fn(|l| v(k, l))).collect() };
        let (da, dm) = (rows(A), rows(M));
        let mut xa = [[0.0; LANES]; A];
        S::x_points(&da.clone().try_into().unwrap(), &mut xa);
        let mut ym = [[0.0; LANES]; M];
        S::y_points(|k, l| da[k][l], &mut ym);
        let mut pa = [[0.0; LANES]; A];
        S::dy_points(&dm.clone().try_into().unwrap(), &mut pa);
        let mut t2 = [[0.0; LANES]; 2];
        S::taps_from_points(&da.clone().try_into().unwrap(), &mut t2);
        let mut ba = [[0.0; LANES]; A];
        S::x_adjoint(|k, l| da[k][l], &mut ba);
        for l in 0..LANES {
            for p in 0..A {
                close(xa[p][l], (0..A).map(|k| S::BT[p][k] * da[k][l]).sum(), "Bᵀ d");
                close(pa[p][l], (0..M).map(|i| S::AT[i][p] * dm[i][l]).sum(), "A e");
                close(ba[p][l], (0..A).map(|k| S::BT[k][p] * da[k][l]).sum(), "B v");
            }
            for i in 0..M {
                close(ym[i][l], (0..A).map(|p| S::AT[i][p] * da[p][l]).sum(), "Aᵀ m");
            }
            for j in 0..2 {
                close(t2[j][l], (0..A).map(|p| S::G[p][j] * da[p][l]).sum(), "Gᵀ p");
            }
        }
    }

    #[test]
    fn formulas_are_the_matrices() {
        formulas::<4, 5, F4>();
        formulas::<7, 8, F7>();
    }
}
