//! The LSTM cell's pointwise work, one pass each way: pre-activation gates (i, f, g, o)
//! and the cell state to the new `h` and `c`, and the gradients back.

use crate::Element;

pub(crate) fn sigmoid<T: Element>(x: T) -> T {
    // Split by sign so exp never overflows.
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// tanh through one exp, `1 − 2/(e^{2|x|} + 1)` with x's sign: the library tanh (through
/// expm1) was the largest single cost of an LSTM step. Exact to a few units in the last
/// place near 1, and to a few ulp of 1 in absolute terms near 0.
pub(crate) fn tanh<T: Element>(x: T) -> T {
    let two = T::ONE + T::ONE;
    let t = T::ONE - two / ((two * x.abs()).exp() + T::ONE);
    if x < T::ZERO {
        -t
    } else {
        t
    }
}

/// `gates` `[n, 4h]` (rows i | f | g | o) and `c` `[n, h]` to `out` `[2, n, h]` (the new
/// `h`, then the new `c`), keeping the activated gates in `act` `[n, 4h]` and `tanh(c')`
/// in `tc` `[n, h]` for the backward pass.
pub fn forward<T: Element>(h: usize, gates: &[T], c: &[T], out: &mut [T], act: &mut [T], tc: &mut [T]) {
    let n = c.len() / h.max(1);
    let (h_out, c_out) = out.split_at_mut(n * h);
    for r in 0..n {
        let gr = &gates[r * 4 * h..(r + 1) * 4 * h];
        let ar = &mut act[r * 4 * h..(r + 1) * 4 * h];
        for j in 0..h {
            let i = sigmoid(gr[j]);
            let f = sigmoid(gr[h + j]);
            let g = tanh(gr[2 * h + j]);
            let o = sigmoid(gr[3 * h + j]);
            let cn = f * c[r * h + j] + i * g;
            let t = tanh(cn);
            ar[j] = i;
            ar[h + j] = f;
            ar[2 * h + j] = g;
            ar[3 * h + j] = o;
            c_out[r * h + j] = cn;
            tc[r * h + j] = t;
            h_out[r * h + j] = o * t;
        }
    }
}

/// The gradients of `gates` (`dgates` `[n, 4h]`) and `c` (`dc` `[n, h]`) from the upstream
/// `grad` `[2, n, h]` (of the new `h`, then the new `c`), with what [`forward`] kept.
pub fn backward<T: Element>(h: usize, grad: &[T], act: &[T], tc: &[T], c: &[T], dgates: &mut [T], dc: &mut [T]) {
    let n = c.len() / h.max(1);
    let (gh, gc) = grad.split_at(n * h);
    for r in 0..n {
        let ar = &act[r * 4 * h..(r + 1) * 4 * h];
        let dr = &mut dgates[r * 4 * h..(r + 1) * 4 * h];
        for j in 0..h {
            let k = r * h + j;
            let (i, f, g, o) = (ar[j], ar[h + j], ar[2 * h + j], ar[3 * h + j]);
            let t = tc[k];
            // The new c reaches the loss directly and through h = o·tanh(c').
            let dct = gc[k] + gh[k] * o * (T::ONE - t * t);
            dr[j] = dct * g * i * (T::ONE - i);
            dr[h + j] = dct * c[k] * f * (T::ONE - f);
            dr[2 * h + j] = dct * i * (T::ONE - g * g);
            dr[3 * h + j] = gh[k] * t * o * (T::ONE - o);
            dc[k] = dct * f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tanh;

    #[test]
    fn one_exp_tanh_is_close_to_the_library_one() {
        for k in -4000..=4000 {
            let x = k as f32 * 0.005;
            let (a, b) = (tanh(x), x.tanh());
            assert!((a - b).abs() <= 2.5e-7, "tanh({x}): {a} vs {b}");
        }
        assert_eq!(tanh(1e30f32), 1.0);
        assert_eq!(tanh(-1e30f32), -1.0);
        assert!((tanh(1e-3f64) - 1e-3f64.tanh()).abs() < 5e-16);
    }
}
