//! Data-parallel training against one process: run under `mpirun -n 2` with a scratch
//! folder. For an MLP, LeNet-5 and a small ResNet (batch norm synchronized with
//! `sync_bn`), 50 steps of SGD with momentum at global batch 16 on every rank, then on
//! rank 0 the same 50 steps in one process at batch 16: parameters and buffers must agree
//! within `TOL` (‖Δ‖₂/‖θ‖₂; the sums are taken in another order; `TOL_BN` for the
//! ResNet), and so must every epoch's validation loss (validation
//! is sharded unevenly, 50 samples). A ResNet with per-rank batch norm must instead differ
//! by more than 5 times what the synchronized one did (each rank normalizes its own 8
//! samples). Exits 1 if any check fails.

use nabla_core::{DType, Generator, Tensor};
use nabla_data::{Batch, DataLoader, TensorDataset};
use nabla_distributed::{broadcast_tensors, install_sync_batch_norm, Comm, DistributedOptimizer, Mpi};
use nabla_models::resnet::{BlockKind, ResNetSpec};
use nabla_models::{build, ModelConfig, ResNet};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
use nabla_nn::optim::Optimizer;
use nabla_nn::optim::{Sgd, SgdOptions};
use nabla_nn::{Mode, Module};
use nabla_train::{fit, Distributed, FitOptions, Optim, Record, StepOutput, Task};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;

/// Largest distance allowed between the two runs' states, relative to the state's size.
const TOL: f64 = 1e-5;
/// The same for the ResNet: batch norm over 8×8 maps (1×1 in the last stage) magnifies the
/// rounding differences from step to step (the first epoch's mean loss agrees to 1e-7).
const TOL_BN: f64 = 1e-2;
const STEPS: u64 = 50;

struct Classify {
    model: Box<dyn Module>,
    lr: f64,
    val: (f64, usize, usize),
}

impl Task for Classify {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        vec![("", self.model.as_ref())]
    }
    fn configure_optimizers(&mut self) -> nabla_train::Result<Vec<Optim>> {
        let opts = SgdOptions {
            lr: self.lr,
            momentum: 0.5,
            ..Default::default()
        };
        Ok(vec![Optim::constant(Box::new(Sgd::new(
            self.model.parameters(),
            opts,
        )?))])
    }
    fn training_step(&mut self, b: &Batch, _: u64, opt: &mut [Optim]) -> nabla_train::Result<StepOutput> {
        let out = self.model.forward(&b.inputs, Mode::Train)?;
        let loss = cross_entropy(&out, &b.labels[..], &CrossEntropyOptions::default())?;
        opt[0].optimizer.step(&loss.backward()?)?;
        let rows = b.labels.len() as u64;
        Ok(StepOutput::new(rows).sum("loss", loss.item()? * rows as f64))
    }
    fn validation_step(&mut self, b: &Batch) -> nabla_train::Result<()> {
        let out = self.model.forward(&b.inputs, Mode::Eval)?;
        let loss = cross_entropy(&out, &b.labels[..], &CrossEntropyOptions::default())?.item()?;
        let right = out
            .argmax(1, false)?
            .iter()
            .zip(&b.labels)
            .filter(|(p, t)| p == t)
            .count();
        let n = b.labels.len();
        self.val = (self.val.0 + loss * n as f64, self.val.1 + right, self.val.2 + n);
        Ok(())
    }
    fn validation_end(&mut self) -> nabla_train::Result<Vec<(String, f64)>> {
        let (s, r, n) = std::mem::take(&mut self.val);
        Ok(vec![
            ("loss".into(), s / n.max(1) as f64),
            ("acc".into(), r as f64 / n.max(1) as f64),
        ])
    }
}

/// `n` samples of `[1, hw, hw]` whose class shifts their mean (written here, seeded).
fn data(n: usize, hw: usize, seed: u64) -> TensorDataset {
    let mut g = Generator::new(seed);
    let labels: Vec<usize> = (0..n).map(|i| (i * 7 + seed as usize) % 10).collect();
    let noise = Tensor::randn(&[n, 1, hw, hw], DType::F32, &mut g);
    let shift: Vec<f32> = labels.iter().flat_map(|&l| vec![l as f32 * 0.1; hw * hw]).collect();
    let x = noise.add(&Tensor::from_vec(shift, &[n, 1, hw, hw]).unwrap()).unwrap();
    TensorDataset::new(&x, labels).unwrap()
}

fn model(name: &str) -> (Box<dyn Module>, usize) {
    match name {
        "resnet" => {
            let spec = ResNetSpec {
                block: BlockKind::Basic,
                layers: [1, 1, 1, 1],
                se: false,
                small_input: true,
            };
            (Box::new(ResNet::new(&spec, 1, 10, &mut Generator::new(1)).unwrap()), 8)
        }
        _ => {
            // Each rank seeds differently: rank 0's weights must reach the others.
            let seed = std::env::var("OMPI_COMM_WORLD_RANK").map_or(0, |r| r.parse().unwrap_or(0));
            let cfg = ModelConfig {
                hidden: vec![64],
                seed,
                ..Default::default()
            };
            (build(name, &cfg).unwrap(), 28)
        }
    }
}

/// 50 steps (5 epochs of 160 samples at batch 16); the model's state and the records.
fn train(name: &str, dist: Option<Distributed>, out: &Path) -> (Vec<(String, Tensor)>, Vec<Record>) {
    let (m, hw) = model(name);
    // The ResNet at a small rate: faster, it overfits 160 samples within 20 steps and its
    // trajectory turns chaotic (rounding differences grow without bound).
    let lr = if name == "resnet" { 0.002 } else { 0.01 };
    let mut task = Classify {
        model: m,
        lr,
        val: (0.0, 0, 0),
    };
    let train = DataLoader::new(data(160, hw, 1), 16).unwrap();
    let val = DataLoader::new(data(50, hw, 2), 20).unwrap();
    let opts = FitOptions {
        epochs: STEPS / 10,
        seed: 7,
        out: out.to_path_buf(),
        distributed: dist,
        ..Default::default()
    };
    fit(&mut task, train, Some(&val), &opts, &AtomicBool::new(false)).unwrap();
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap_or_default();
    let records = text.lines().filter_map(|l| Record::from_json(l).ok()).collect();
    (task.model.state_dict(), records)
}

/// How far apart two states are: ‖a − b‖₂ / ‖b‖₂ over every tensor together, and the
/// tensor whose own relative distance is largest.
fn rel_diff(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> (f64, String) {
    let (mut num, mut den, mut worst) = (0.0f64, 0.0f64, (0.0f64, String::new()));
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let (x, y) = (x.to_vec_f64(), y.to_vec_f64());
        let d: f64 = x.iter().zip(&y).map(|(p, q)| (p - q) * (p - q)).sum();
        let n: f64 = y.iter().map(|q| q * q).sum();
        (num, den) = (num + d, den + n);
        let own = (d / n.max(1e-30)).sqrt();
        if own > worst.0 || own.is_nan() {
            worst = (own, name.clone());
        }
    }
    ((num / den.max(1e-30)).sqrt(), worst.1)
}

/// The parameters after 10 SGD steps on this rank's batches of `name`, the gradients
/// averaged with the all-reduce overlapping backward or after it (rank 0's initial state).
fn overlap_run(comm: &Rc<dyn Comm>, name: &str, sync: bool, overlap: bool) -> Vec<Vec<f64>> {
    let (m, hw) = model(name);
    let state: Vec<Tensor> = m.state_dict().into_iter().map(|(_, t)| t).collect();
    broadcast_tensors(comm.as_ref(), &state, 0).unwrap();
    install_sync_batch_norm(sync.then(|| comm.clone()));
    let sgd = Sgd::new(
        m.parameters(),
        SgdOptions {
            lr: 0.01,
            momentum: 0.9,
            ..Default::default()
        },
    )
    .unwrap();
    // Small buckets: several per step, so buckets start during backward.
    let mut opt = DistributedOptimizer::new(Box::new(sgd), comm.clone(), 64 * 1024, None).with_overlap(overlap);
    let data = data(80, hw, 3 + comm.rank() as u64);
    let loader = DataLoader::new(data, 8).unwrap();
    for b in loader.epoch(0).take(10) {
        let b = b.unwrap();
        let out = m.forward(&b.inputs, Mode::Train).unwrap();
        let loss = cross_entropy(&out, &b.labels[..], &CrossEntropyOptions::default()).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    install_sync_batch_norm(None);
    m.state_dict().iter().map(|(_, t)| t.to_vec_f64()).collect()
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: mpi_equivalence DIR"));
    let comm: Rc<dyn Comm> = Rc::new(Mpi::init().expect("MPI initializes once"));
    let (rank, size) = (comm.rank(), comm.size());
    let mut failed = 0u64;
    let mut synced = TOL_BN;
    // A second argument runs only the models whose names contain it.
    let only = std::env::args().nth(2).unwrap_or_default();
    let cases = [
        ("mlp", false, true),
        ("lenet5", false, true),
        ("resnet", true, true),
        ("resnet", false, false),
    ];
    let cases: Vec<_> = cases.into_iter().filter(|c| c.0.contains(&only)).collect();
    for &(name, sync, same) in &cases {
        let label = format!(
            "{name}{}",
            if sync {
                " --sync-bn"
            } else if name == "resnet" {
                " per-rank BN"
            } else {
                ""
            }
        );
        let dist = Distributed {
            comm: comm.clone(),
            // Small buckets, so one step takes several all-reduces.
            bucket_bytes: 256 * 1024,
            sync_bn: sync,
        };
        let t0 = std::time::Instant::now();
        let (got, got_rec) = train(name, Some(dist), &dir.join(format!("{name}-{sync}-dist")));
        let secs = t0.elapsed().as_secs_f64();
        install_sync_batch_norm(None);
        if rank == 0 {
            let (want, want_rec) = train(name, None, &dir.join(format!("{name}-{sync}-one")));
            let (d, at) = rel_diff(&got, &want);
            let val = |r: &[Record]| r.iter().map(|r| r.get("val_loss")).collect::<Vec<_>>();
            let (gv, wv) = (val(&got_rec), val(&want_rec));
            let dv = gv
                .iter()
                .zip(&wv)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs() / b.abs().max(1e-12)));
            let tol = if name == "resnet" { TOL_BN } else { TOL };
            let ok = if same {
                d <= tol && dv <= tol && gv.len() == wv.len() && gv.len() as u64 == STEPS / 10
            } else {
                d > 5.0 * synced
            };
            if sync {
                synced = d;
            }
            let bound = if same {
                format!("≤ {tol:.0e}")
            } else {
                format!("> 5 × {synced:.2e} (--sync-bn's)")
            };
            let verdict = if ok { "ok" } else { "FAILED" };
            println!(
                "{label}: {size} ranks vs 1 process after {STEPS} steps: relative distance of the states \
                 {d:.2e} (most apart: {at}), of the validation losses {dv:.2e}; expected {bound}; {size}-rank run {secs:.1} s: {verdict}"
            );
            failed += u64::from(!ok);
        }
        comm.barrier();
    }
    // The overlapped all-reduce (buckets summed on a thread during backward) against the
    // blocking one after backward: the same bucket sums in the same order, so bitwise equal.
    for (name, sync) in [("lenet5", false), ("resnet", true)] {
        if !name.contains(&only) {
            continue;
        }
        let a = overlap_run(&comm, name, sync, true);
        let b = overlap_run(&comm, name, sync, false);
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        if rank == 0 {
            let ok = moved == 0;
            println!(
                "{name}{}: overlapped and blocking all-reduce, 10 steps on {size} ranks: {moved} of {} tensors differ \
                 (expected bitwise equal): {}",
                if sync { " --sync-bn" } else { "" },
                a.len(),
                if ok { "ok" } else { "FAILED" }
            );
            failed += u64::from(!ok);
        }
        comm.barrier();
    }
    let verdicts = comm.all_gather_u64(failed);
    if rank == 0 {
        println!("{} failed", verdicts[0]);
    }
    if verdicts[0] > 0 {
        std::process::exit(1);
    }
}
