//! Everything that changes while training and what a checkpoint captures of it: the
//! optimizers and their schedules, the position (epoch, step, batch within the epoch), the
//! running sums of a part-done epoch, the best score so far and the models' generators.
//!
//! A task with one model and one optimizer writes the layout `nabla train` always wrote
//! (model tensors under their own names, the optimizer's state unprefixed); with several,
//! model tensors go under `<model name>.` and optimizer and schedule entries under `opt<i>.`.

use crate::{Optim, Result, Task, TrainError};
use nabla_nn::checkpoint::Checkpoint;
use nabla_nn::module::join;
use nabla_nn::optim::OptimizerState;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Per-sample sums of an epoch's training steps, in the order the task first reported them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    /// Samples seen in the epoch.
    pub seen: u64,
    /// Seconds of training in the epoch before the latest resume.
    pub seconds: f64,
    /// The sums by name (`loss`: the sum over samples of the loss, ...).
    pub values: Vec<(String, f64)>,
}

impl Sums {
    /// The sum under `name` (0 if none was reported).
    pub fn get(&self, name: &str) -> f64 {
        self.values.iter().find(|(k, _)| k == name).map_or(0.0, |(_, v)| *v)
    }

    /// Every sum divided by the samples seen (at least 1).
    pub fn means(&self) -> Vec<(String, f64)> {
        let n = self.seen.max(1) as f64;
        self.values.iter().map(|(k, v)| (k.clone(), v / n)).collect()
    }

    /// Add one step's sums.
    pub fn add(&mut self, samples: u64, sums: &[(&str, f64)]) {
        self.seen += samples;
        for &(k, v) in sums {
            match self.values.iter_mut().find(|(n, _)| n == k) {
                Some((_, s)) => *s += v,
                // Added to zero as a running sum would be (so a -0.0 sums to 0.0).
                None => self.values.push((k.to_string(), 0.0 + v)),
            }
        }
    }

    fn to_json(&self) -> String {
        // Sums as shortest round-trip text, so a resumed epoch adds to the same bits.
        let values: Vec<Value> = self.values.iter().map(|(k, v)| json!([k, format!("{v:?}")])).collect();
        json!({"seen": self.seen, "seconds": self.seconds, "sums": values}).to_string()
    }

    fn from_json(s: &str) -> Option<Sums> {
        let v: Value = serde_json::from_str(s).ok()?;
        let pair = |p: &Value| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_str()?.parse().ok()?));
        Some(Sums {
            seen: v["seen"].as_u64()?,
            seconds: v["seconds"].as_f64()?,
            values: v["sums"].as_array()?.iter().map(pair).collect::<Option<_>>()?,
        })
    }
}

/// The loop's state besides the task's models.
pub(crate) struct State {
    pub optims: Vec<Optim>,
    pub epoch: u64,
    pub step: u64,
    pub batch: usize,
    pub partial: Sums,
    pub best: Option<(f64, u64)>,
}

/// The prefix of optimizer `i`'s entries when there are `n`.
fn opt_prefix(i: usize, n: usize) -> String {
    if n == 1 {
        String::new()
    } else {
        format!("opt{i}")
    }
}

/// The entries of `map` under `prefix` (all of them for an empty prefix), without it.
fn under<T: Clone>(items: impl IntoIterator<Item = (String, T)>, prefix: &str) -> Vec<(String, T)> {
    if prefix.is_empty() {
        return items.into_iter().collect();
    }
    let p = format!("{prefix}.");
    items
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(&p).map(|s| (s.to_string(), v)))
        .collect()
}

impl State {
    /// Write a checkpoint of `task` and this state to `path` (atomically: the checkpoint
    /// writer goes through a temporary file and a rename).
    pub fn save(&self, task: &dyn Task, path: &Path) -> Result<()> {
        let mut tensors = Vec::new();
        let mut gens = Vec::new();
        for (name, m) in task.models() {
            tensors.extend(m.state_dict().into_iter().map(|(k, t)| (join(name, &k), t)));
            gens.extend(m.generator_states().into_iter().map(|(k, s)| (join(name, &k), s)));
        }
        let n = self.optims.len();
        let first = self
            .optims
            .first()
            .ok_or_else(|| TrainError::msg("the task configured no optimizer"))?;
        let mut ck = Checkpoint::capture(&tensors, first.optimizer.as_ref(), self.epoch, self.step)?;
        if n > 1 {
            ck.optimizer = OptimizerState::default();
        }
        for (i, o) in self.optims.iter().enumerate() {
            let p = opt_prefix(i, n);
            if n > 1 {
                let s = o.optimizer.state_dict()?;
                ck.optimizer
                    .tensors
                    .extend(s.tensors.into_iter().map(|(k, t)| (join(&p, &k), t)));
                ck.optimizer
                    .scalars
                    .extend(s.scalars.into_iter().map(|(k, v)| (join(&p, &k), v)));
            }
            ck.scheduler
                .extend(o.schedule.state().into_iter().map(|(k, v)| (join(&p, &k), v)));
        }
        ck.extra = task.checkpoint_extra();
        ck.extra.insert("batch".into(), self.batch.to_string());
        ck.extra.insert("partial".into(), self.partial.to_json());
        if let Some((m, e)) = self.best {
            ck.extra.insert("best_metric".into(), format!("{m:?}"));
            ck.extra.insert("best_epoch".into(), e.to_string());
        }
        if !gens.is_empty() {
            ck.extra.insert("generators".into(), encode_generators(&gens));
        }
        Ok(ck.save(path)?)
    }

    /// Continue from a checkpoint loaded from `path`.
    pub fn restore(&mut self, task: &dyn Task, ck: &Checkpoint, path: &Path) -> Result<()> {
        let fit = |e: String| TrainError::Resume {
            path: path.to_path_buf(),
            msg: e,
        };
        let n = self.optims.len();
        for (i, o) in self.optims.iter_mut().enumerate() {
            // The schedule first: making it took its step 0, which the optimizer's state undoes.
            let p = opt_prefix(i, n);
            let sched: BTreeMap<String, f64> = under(ck.scheduler.clone(), &p).into_iter().collect();
            o.schedule.load(&sched).map_err(|e| fit(e.to_string()))?;
            let state = OptimizerState {
                tensors: under(ck.optimizer.tensors.clone(), &p),
                scalars: under(ck.optimizer.scalars.clone(), &p).into_iter().collect(),
            };
            o.optimizer.load_state_dict(&state).map_err(|e| fit(e.to_string()))?;
        }
        load_weights(task, ck, path)?;
        let models = task.models();
        let num = |k: &str| ck.extra.get(k).and_then(|v| v.parse::<f64>().ok());
        (self.epoch, self.step) = (ck.epoch, ck.step);
        self.batch = num("batch").unwrap_or(0.0) as usize;
        self.partial = match ck.extra.get("partial").and_then(|s| Sums::from_json(s)) {
            Some(sums) => sums,
            None => {
                if self.batch > 0 {
                    eprintln!(
                        "note: {} holds no running sums of its part-done epoch (written by an older nabla); \
                         this epoch's training averages count only the batches after the resume",
                        path.display()
                    );
                }
                Sums::default()
            }
        };
        self.best = num("best_metric").zip(num("best_epoch").map(|e| e as u64));
        // Dropout's (and any other module's) generators, so random draws go on as in an
        // uninterrupted run (checkpoints of models without any have none).
        let has_gens = models.iter().any(|(_, m)| !m.generator_states().is_empty());
        match ck.extra.get("generators") {
            Some(text) => {
                let states =
                    decode_generators(text).ok_or_else(|| fit(format!("unreadable generator states {text:?}")))?;
                for (name, m) in &models {
                    m.load_generator_states(&under(states.clone(), name))
                        .map_err(|e| fit(e.to_string()))?;
                }
            }
            None if has_gens => eprintln!(
                "note: {} holds no dropout generator states (written before they were saved); \
                 the resumed run draws other masks than an uninterrupted one would",
                path.display()
            ),
            None => {}
        }
        Ok(())
    }
}

/// Generator states as checkpoint text: `name:s0,s1,s2,s3` in hex, separated by spaces.
/// Copy the weights of every model of `task` from a checkpoint loaded from `path` (the
/// optimizers, the schedule and the run's position are left as they are).
pub(crate) fn load_weights(task: &dyn Task, ck: &Checkpoint, path: &Path) -> Result<()> {
    let mut tensors = Vec::new();
    for (name, m) in &task.models() {
        tensors.extend(m.state_dict().into_iter().map(|(k, t)| (join(name, &k), t)));
    }
    ck.restore_model(&tensors).map_err(|e| TrainError::Resume {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

fn encode_generators(states: &[(String, [u64; 4])]) -> String {
    let one = |(n, s): &(String, [u64; 4])| format!("{n}:{:x},{:x},{:x},{:x}", s[0], s[1], s[2], s[3]);
    states.iter().map(one).collect::<Vec<_>>().join(" ")
}

/// The states [`encode_generators`] wrote, or `None` if the text is not in its form (or
/// holds an all-zero state, which no generator reaches and which would draw only zeros).
fn decode_generators(text: &str) -> Option<Vec<(String, [u64; 4])>> {
    text.split_whitespace()
        .map(|entry| {
            let (name, words) = entry.rsplit_once(':')?;
            let words: Vec<u64> = words
                .split(',')
                .map(|w| u64::from_str_radix(w, 16).ok())
                .collect::<Option<_>>()?;
            let state: [u64; 4] = words.try_into().ok()?;
            (state != [0; 4]).then(|| (name.to_string(), state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_states_round_trip_as_text_and_bad_text_is_refused() {
        let states = vec![
            ("classifier.0".to_string(), [1, u64::MAX, 0, 42]),
            ("aux1.dropout".to_string(), [7, 8, 9, 10]),
        ];
        assert_eq!(decode_generators(&encode_generators(&states)), Some(states));
        for bad in ["x:1,2,3", "x:1,2,3,4,5", "x:1,2,z,4", "x1,2,3,4", "x:0,0,0,0"] {
            assert_eq!(decode_generators(bad), None, "{bad}");
        }
    }

    #[test]
    fn sums_round_trip_bit_for_bit_in_order() {
        let mut s = Sums::default();
        s.add(3, &[("loss", 0.1 + 0.2), ("acc", 2.0)]);
        s.add(2, &[("loss", 1e-17), ("acc", 1.0)]);
        let back = Sums::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.values[0].1.to_bits(), (0.1 + 0.2 + 1e-17f64).to_bits());
        assert_eq!(back.means()[1], ("acc".to_string(), 3.0 / 5.0));
    }

    #[test]
    fn entries_under_a_prefix_lose_it_and_others_are_dropped() {
        let items = vec![
            ("opt0.a".to_string(), 1),
            ("opt1.a".to_string(), 2),
            ("b".to_string(), 3),
        ];
        assert_eq!(under(items.clone(), "opt1"), vec![("a".to_string(), 2)]);
        assert_eq!(under(items.clone(), "").len(), 3);
    }
}
