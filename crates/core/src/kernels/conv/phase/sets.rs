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
//! the fractions sit in `G`, applied once per weight, not per input tile.

/// The matrices of F(M×M, 2×2) with `A = M + 1` points, as constants so the transforms
/// compile with their coefficients folded in (from a runtime table, the zero tests and
/// loads stayed in the loops: no faster than F(4×4) at DCGAN's layer).
pub(crate) trait Set<const M: usize, const A: usize>: Sync {
    /// `Aᵀ` (M × A): output tile from the products.
    const AT: [[f64; A]; M];
    /// `G` (A × 2): weight transform.
    const G: [[f64; 2]; A];
    /// `Bᵀ` (A × A): input transform.
    const BT: [[f64; A]; A];
}

/// F(4×4, 2×2): 25 products per 4×4 output tile.
pub(crate) struct F4;

impl Set<4, 5> for F4 {
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
}
