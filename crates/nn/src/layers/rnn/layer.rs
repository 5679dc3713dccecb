//! The multi-layer, optionally bidirectional recurrent stack behind [`super::RNN`],
//! [`super::LSTM`] and [`super::GRU`]: parameters, checks, the loop over layers and
//! directions, and variable lengths.

use super::step::{step, CellKind, CellWeights};
use super::RnnOptions;
use crate::module::{Children, Mode, Param};
use crate::{functional, Result};
use nabla_core::{DType, Generator, Tensor};
use std::sync::Mutex;

/// The shared stack: `params[(layer·dirs + dir)·4 + k]` for k = w_ih, w_hh, b_ih, b_hh
/// (the biases only when `opts.bias`), named as PyTorch names them.
#[derive(Debug)]
pub(crate) struct Stack {
    pub kind: CellKind,
    pub input_size: usize,
    pub hidden_size: usize,
    pub opts: RnnOptions,
    names: Vec<String>,
    params: Vec<Param>,
    rng: Mutex<Generator>,
}

/// What a forward pass over a sequence returns: the output and the final `h` (and `c`).
pub(crate) struct Run {
    pub output: Tensor,
    pub h: Tensor,
    pub c: Option<Tensor>,
}

impl Stack {
    /// A stack initialized as PyTorch does: every weight and bias from U(−1/√H, 1/√H).
    pub fn new(kind: CellKind, input_size: usize, hidden_size: usize, opts: RnnOptions, g: &mut Generator) -> Stack {
        let dirs = opts.directions();
        let gh = kind.gates() * hidden_size;
        let k = if hidden_size > 0 {
            1.0 / (hidden_size as f64).sqrt()
        } else {
            0.0
        };
        let (mut names, mut params) = (Vec::new(), Vec::new());
        for layer in 0..opts.num_layers {
            for dir in 0..dirs {
                let sfx = if dir == 1 { "_reverse" } else { "" };
                let in_l = if layer == 0 { input_size } else { hidden_size * dirs };
                let mut add = |name: &str, shape: &[usize]| {
                    names.push(format!("{name}_l{layer}{sfx}"));
                    params.push(Param::new(Tensor::uniform(shape, -k, k, opts.dtype, g)));
                };
                add("weight_ih", &[gh, in_l]);
                add("weight_hh", &[gh, hidden_size]);
                if opts.bias {
                    add("bias_ih", &[gh]);
                    add("bias_hh", &[gh]);
                }
            }
        }
        Stack {
            kind,
            input_size,
            hidden_size,
            opts,
            names,
            params,
            rng: Mutex::new(g.fork()),
        }
    }

    pub fn children(&self, c: &mut Children) {
        for (n, p) in self.names.iter().zip(&self.params) {
            c.param(n, p);
        }
        if self.opts.dropout > 0.0 && self.opts.num_layers > 1 {
            c.generator(&self.rng);
        }
    }

    fn per_cell(&self) -> usize {
        if self.opts.bias {
            4
        } else {
            2
        }
    }

    /// The weights of `layer`, direction `dir`: (w_ih, w_hh, b_ih, b_hh).
    fn weights(&self, layer: usize, dir: usize) -> (Tensor, Tensor, Option<Tensor>, Option<Tensor>) {
        let base = (layer * self.opts.directions() + dir) * self.per_cell();
        let p = |k: usize| self.params[base + k].tensor();
        let (bi, bh) = if self.opts.bias {
            (Some(p(2)), Some(p(3)))
        } else {
            (None, None)
        };
        (p(0), p(1), bi, bh)
    }

    fn err(&self, msg: String) -> crate::Error {
        nabla_core::Error::invalid(self.kind.layer_name(), msg).into()
    }

    fn dtype(&self) -> DType {
        self.params[0].leaf().dtype()
    }

    /// Run the stack over `x` (`[T, N, I]`, or `[N, T, I]` with `batch_first`; an unbatched
    /// `[T, I]` too) from `h0` (and `c0`), `[layers·dirs, N, H]` (zeros when absent).
    pub fn run(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        lengths: Option<&[usize]>,
        mode: Mode,
    ) -> Result<Run> {
        let (name, hs) = (self.kind.layer_name(), self.hidden_size);
        if hs == 0 {
            return Err(self.err("hidden_size is 0; it must be at least 1".into()));
        }
        if x.rank() == 2 {
            // Unbatched: a batch of one, with states of [layers·dirs, H].
            let un = |t: Option<&Tensor>| t.map(|t| t.unsqueeze(1)).transpose();
            let (h0, c0) = (un(h0)?, un(c0)?);
            let xb = x.unsqueeze(if self.opts.batch_first { 0 } else { 1 })?;
            let r = self.run(&xb, h0.as_ref(), c0.as_ref(), lengths, mode)?;
            let sq = if self.opts.batch_first { 0 } else { 1 };
            return Ok(Run {
                output: r.output.squeeze(sq)?,
                h: r.h.squeeze(1)?,
                c: r.c.map(|c| c.squeeze(1)).transpose()?,
            });
        }
        if x.rank() != 3 || x.shape()[2] != self.input_size {
            let want = if self.opts.batch_first {
                "[N, T, I]"
            } else {
                "[T, N, I]"
            };
            return Err(self.err(format!(
                "expects input {want} with I = input_size {}, got shape {:?}",
                self.input_size,
                x.shape()
            )));
        }
        let x = if self.opts.batch_first {
            x.transpose(0, 1)?
        } else {
            x.clone()
        };
        let (t_len, n) = (x.shape()[0], x.shape()[1]);
        if t_len == 0 {
            return Err(self.err(format!("got a sequence of length 0 (input shape {:?})", x.shape())));
        }
        if n == 0 {
            return Err(self.err(format!("got a batch of 0 sequences (input shape {:?})", x.shape())));
        }
        if x.dtype() != self.dtype() {
            return Err(self.err(format!(
                "input is {:?} but the weights are {:?}",
                x.dtype(),
                self.dtype()
            )));
        }
        let dirs = self.opts.directions();
        let want = [self.opts.num_layers * dirs, n, hs];
        for (what, s) in [("h0", h0), ("c0", c0)] {
            if let Some(s) = s.filter(|s| s.shape() != want) {
                return Err(self.err(format!(
                    "{what} must have shape {want:?} (layers·directions, batch, hidden_size), got {:?}",
                    s.shape()
                )));
            }
        }
        let lengths = match lengths {
            Some(l) => {
                check_lengths(name, l, t_len, n)?;
                // All full: the plain path, no masks.
                (!l.iter().all(|&v| v == t_len)).then_some(l)
            }
            None => None,
        };
        let masks = lengths.map(|l| Masks::new(l, t_len, self.dtype())).transpose()?;
        let zeros = Tensor::zeros(&[n, hs], self.dtype());
        let state = |s: Option<&Tensor>, i: usize| s.map_or(Ok(zeros.clone()), |s| s.narrow(0, i, 1)?.squeeze(0));
        let (mut hn, mut cn) = (Vec::new(), Vec::new());
        let mut input = x;
        for layer in 0..self.opts.num_layers {
            let mut outs = Vec::with_capacity(dirs);
            for dir in 0..dirs {
                let i = layer * dirs + dir;
                let h = state(h0, i)?;
                let c = (self.kind == CellKind::Lstm).then(|| state(c0, i)).transpose()?;
                let (o, h, c) = self.direction(&input, layer, dir, h, c, masks.as_ref())?;
                outs.push(o);
                hn.push(h);
                cn.extend(c);
            }
            input = if dirs == 1 {
                outs.pop().expect("one direction")
            } else {
                Tensor::cat(&[&outs[0], &outs[1]], 2)?
            };
            if layer + 1 < self.opts.num_layers && self.opts.dropout > 0.0 && mode.is_train() {
                let mut g = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                input = functional::dropout(&input, self.opts.dropout, true, &mut g)?;
            }
        }
        let stack = |v: &[Tensor]| Tensor::stack(&v.iter().collect::<Vec<_>>(), 0);
        let output = if self.opts.batch_first {
            input.transpose(0, 1)?
        } else {
            input
        };
        Ok(Run {
            output,
            h: stack(&hn)?,
            c: (!cn.is_empty()).then(|| stack(&cn)).transpose()?,
        })
    }

    /// One direction of one layer over `input` `[T, N, in]`: output `[T, N, H]`, final h, c.
    fn direction(
        &self,
        input: &Tensor,
        layer: usize,
        dir: usize,
        mut h: Tensor,
        mut c: Option<Tensor>,
        masks: Option<&Masks>,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let (t_len, n) = (input.shape()[0], input.shape()[1]);
        let (w_ih, w_hh, b_ih, b_hh) = self.weights(layer, dir);
        let folded = self.kind.folds_hidden_bias();
        let bias = match (&b_ih, &b_hh) {
            (Some(a), Some(b)) if folded => Some(a.add(b)?),
            _ => b_ih,
        };
        // The input's share of every gate at every step in one product: [T·N, gates·H].
        let rows = input.reshape([t_len * n, input.shape()[2]].as_slice())?;
        // W_ih as a view of its transpose stored row-major: the product then reads whole
        // rows of `W_ihᵀ` (the outer-product kernel) rather than dot products along rows
        // of W_ih, at half the speed for these shapes; the copy is a few microseconds.
        let w_in = w_ih.t()?.contiguous()?.t()?;
        let mut xg = rows.linear(&w_in, bias.as_ref())?;
        let reverse = dir == 1;
        if let (true, Some(m)) = (reverse, masks) {
            // Each sequence reversed within its own length, so the reverse direction starts
            // at its own last element; the same permutation puts the outputs back.
            xg = xg.index_select(0, &m.reverse_rows)?;
        }
        if self.kind == CellKind::Lstm {
            // The whole sequence in one op (core's lstm_seq): no graph node per step.
            let c0 = c.expect("an LSTM has a cell state");
            let gh = xg.shape()[1];
            let xg = xg.reshape([t_len, n, gh].as_slice())?;
            let lengths = masks.map(|m| m.lengths.as_slice());
            // Padded sequences were reversed in place above, so they run forward in time.
            let backwards = reverse && masks.is_none();
            let (mut out, h, c) = Tensor::lstm_seq(&xg, &h, &c0, &w_hh, lengths, backwards)?;
            if let (true, Some(m)) = (reverse, masks) {
                out = unreverse(&out, m, self.hidden_size)?;
            }
            return Ok((out, h, Some(c)));
        }
        let cw = CellWeights {
            w_hh: &w_hh,
            b_hh: if folded { None } else { b_hh.as_ref() },
        };
        let steps = halves(&xg, n, t_len)?;
        let mut outs: Vec<Tensor> = Vec::with_capacity(t_len);
        for s in 0..t_len {
            // Padded sequences were reversed in place above, so they run forward in time.
            let t = if reverse && masks.is_none() { t_len - 1 - s } else { s };
            let xt = &steps[t];
            let (h_new, c_new) = step(self.kind, xt, &h, c.as_ref(), &cw)?;
            match masks.and_then(|m| m.at(t)) {
                Some(m) => {
                    // Past a sequence's end its state stays and its output is zero.
                    outs.push(h_new.mul(m)?);
                    h = Tensor::where_cond(m, &h_new, &h)?;
                    if let (Some(cn), Some(co)) = (c_new, &c) {
                        c = Some(Tensor::where_cond(m, &cn, co)?);
                    }
                }
                None => {
                    outs.push(h_new.clone());
                    h = h_new;
                    c = c_new;
                }
            }
        }
        if reverse && masks.is_none() {
            outs.reverse();
        }
        let mut out = Tensor::stack(&outs.iter().collect::<Vec<_>>(), 0)?;
        if let (true, Some(m)) = (reverse, masks) {
            out = unreverse(&out, m, self.hidden_size)?;
        }
        Ok((out, h, c))
    }
}

/// The outputs `[T, N, H]` of sequences reversed within their lengths put back in time
/// order (the permutation is its own inverse).
fn unreverse(out: &Tensor, m: &Masks, hs: usize) -> Result<Tensor> {
    let (t_len, n) = (out.shape()[0], out.shape()[1]);
    let flat = out.reshape([t_len * n, hs].as_slice())?;
    Ok(flat
        .index_select(0, &m.reverse_rows)?
        .reshape([t_len, n, hs].as_slice())?)
}

/// The `count` blocks of `n` rows of `x`, cut in halves recursively. Each cut's backward
/// writes its piece into zeros of its parent's size, so cutting all steps straight from
/// `x` would fill and add a full-size gradient per step (T full passes); halving costs
/// log₂ T of them.
fn halves(x: &Tensor, n: usize, count: usize) -> Result<Vec<Tensor>> {
    if count == 1 {
        return Ok(vec![x.clone()]);
    }
    let mid = count / 2;
    let mut out = halves(&x.narrow(0, 0, mid * n)?, n, mid)?;
    out.extend(halves(&x.narrow(0, mid * n, (count - mid) * n)?, n, count - mid)?);
    Ok(out)
}

/// Per-step masks `[N, 1]` (1 where the sequence is still running) and the row permutation
/// that reverses each sequence within its length.
struct Masks {
    steps: Vec<Option<Tensor>>,
    reverse_rows: Vec<usize>,
    lengths: Vec<usize>,
}

impl Masks {
    fn new(lengths: &[usize], t_len: usize, dtype: DType) -> Result<Masks> {
        let n = lengths.len();
        let steps = (0..t_len)
            .map(|t| {
                if lengths.iter().all(|&l| l > t) {
                    return Ok(None);
                }
                let m: Vec<f64> = lengths.iter().map(|&l| f64::from(u8::from(l > t))).collect();
                Ok(Some(Tensor::from_vec(m, &[n, 1])?.to_dtype(dtype)?))
            })
            .collect::<Result<_>>()?;
        let mut reverse_rows = Vec::with_capacity(t_len * n);
        for t in 0..t_len {
            for (b, &l) in lengths.iter().enumerate() {
                let src = if t < l { l - 1 - t } else { t };
                reverse_rows.push(src * n + b);
            }
        }
        Ok(Masks {
            steps,
            reverse_rows,
            lengths: lengths.to_vec(),
        })
    }

    fn at(&self, t: usize) -> Option<&Tensor> {
        self.steps[t].as_ref()
    }
}

/// Lengths must be one per sequence, each in 1..=T.
pub(crate) fn check_lengths(layer: &'static str, lengths: &[usize], t_len: usize, n: usize) -> Result<()> {
    let bad = |msg: String| -> crate::Error { nabla_core::Error::invalid(layer, msg).into() };
    if lengths.len() != n {
        return Err(bad(format!(
            "{} lengths given for a batch of {n} sequences",
            lengths.len()
        )));
    }
    if let Some((i, &l)) = lengths.iter().enumerate().find(|(_, &l)| l == 0 || l > t_len) {
        return Err(bad(format!(
            "length {l} of sequence {i} is outside 1..={t_len} (the input's sequence length)"
        )));
    }
    Ok(())
}
