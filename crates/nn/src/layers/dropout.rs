//! Dropout with its own seeded generator.

use crate::functional;
use crate::module::{Children, Mode, Module};
use crate::Result;
use nabla_core::{Generator, Tensor};
use std::sync::Mutex;

/// In training, zeroes each element with probability `p` and scales the rest by 1/(1 − p);
/// in evaluation, the identity. Masks come from the layer's own generator, so a run is
/// reproducible from the seed (and from [`Dropout::rng_state`] after a restart).
#[derive(Debug)]
pub struct Dropout {
    /// Probability of zeroing an element (checked at the first forward pass).
    pub p: f64,
    rng: Mutex<Generator>,
}

impl Dropout {
    /// Dropout with probability `p`, its generator forked from `g`.
    pub fn new(p: f64, g: &mut Generator) -> Dropout {
        Dropout::with_generator(p, g.fork())
    }

    /// Dropout drawing its masks from `rng`.
    pub fn with_generator(p: f64, rng: Generator) -> Dropout {
        Dropout {
            p,
            rng: Mutex::new(rng),
        }
    }

    /// The generator's state, for checkpoints.
    pub fn rng_state(&self) -> [u64; 4] {
        self.rng.lock().unwrap_or_else(|e| e.into_inner()).state()
    }

    /// Resume the generator from a saved state.
    pub fn set_rng_state(&self, state: [u64; 4]) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = Generator::from_state(state);
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut g = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        functional::dropout(x, self.p, mode.is_train(), &mut g)
    }
    fn children(&self, c: &mut Children) {
        c.generator(&self.rng);
    }
    fn describe(&self) -> String {
        format!("Dropout p={}", self.p)
    }
}
