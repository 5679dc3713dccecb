//! The `lstm` section: an LSTM's forward and backward at batch 64, sequence 32, input 128,
//! hidden 256, 1 and 2 layers, matching `torch/rnn.py lstm` (the sum of the output, backward
//! to every parameter, the input without a gradient).

use crate::measure::median_secs;
use crate::report::Row;
use nabla_core::{DType, Error, Generator, Result, Tensor};
use nabla_nn::{Mode, Module, RnnOptions, LSTM};

const T: usize = 32;
const N: usize = 64;
const I: usize = 128;
const H: usize = 256;

fn wrap(e: impl std::fmt::Display) -> Error {
    Error::invalid("lstm bench", e.to_string())
}

/// One row per depth: median milliseconds of forward + backward.
pub fn lstm() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for layers in [1, 2] {
        let mut g = Generator::new(0);
        let m = LSTM::with_options(I, H, RnnOptions::default().layers(layers), &mut g);
        let x = Tensor::randn(&[T, N, I], DType::F32, &mut g);
        let params = m.parameters();
        let mut failure = None;
        let secs = median_secs(10, || {
            let step = || -> Result<()> {
                let y = m.forward(&x, Mode::Train).map_err(wrap)?;
                let grads = y.sum_all()?.backward()?;
                if params.iter().any(|p| grads.get(p).is_none()) {
                    return Err(wrap("a parameter got no gradient"));
                }
                Ok(())
            };
            if let Err(e) = step() {
                failure = Some(e);
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let key = format!("lstm b{N} t{T} i{I} h{H} l{layers} fwd+bwd");
        say!("nabla {key}: {:.2} ms", secs * 1e3);
        rows.push(Row::lower(key, "ms", secs * 1e3));
    }
    Ok(rows)
}
