//! Step time of data-parallel training: LeNet-5 and ResNet-18 (28×28 inputs, small-input
//! stem) at global batch 32, forward + backward + averaged SGD step, on however many ranks
//! `mpirun` started (one process without it). On several ranks each model runs with the
//! all-reduce after backward (blocking) and overlapping backward, alternating, and rank 0
//! prints per step: the step, backward, the all-reduce time (blocking: in the step;
//! overlapped: on the communication thread) and what the step still waited for; the hidden
//! part is 1 − (overlapped step − compute) / blocking all-reduce, compute being the blocking
//! step less its all-reduce.
//!
//! `RAYON_NUM_THREADS=2 mpi_speed` against `mpirun -n 2 env RAYON_NUM_THREADS=1 mpi_speed`.

use nabla_core::{DType, Generator, Tensor};
use nabla_distributed::{allreduce_seconds, comm_thread_seconds, Comm, DistributedOptimizer, Local, Mpi};
use nabla_models::{build, ModelConfig};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions};
use nabla_nn::optim::{Optimizer, Sgd, SgdOptions};
use nabla_nn::{Mode, Module};
use std::rc::Rc;
use std::time::Instant;

fn main() {
    let comm: Rc<dyn Comm> = match std::env::var("OMPI_COMM_WORLD_SIZE") {
        Ok(_) => Rc::new(Mpi::init().expect("MPI initializes once")),
        Err(_) => Rc::new(Local),
    };
    let (rank, size) = (comm.rank(), comm.size());
    let global = 32;
    for (name, steps) in [("lenet5", 30), ("resnet18", 4)] {
        let cfg = ModelConfig {
            small_input: true,
            ..Default::default()
        };
        let model = build(name, &cfg).unwrap();
        let mut g = Generator::new(rank as u64);
        let b = global / size;
        let x = Tensor::randn(&[b, 1, 28, 28], DType::F32, &mut g);
        let labels: Vec<usize> = (0..b).map(|i| i % 10).collect();
        let params: usize = model.parameters().iter().map(|p| p.numel()).sum();
        let modes: &[bool] = if size > 1 {
            &[false, true, false, true]
        } else {
            &[false]
        };
        // Per mode: [step, backward, all-reduce, waited] seconds summed, and rounds.
        let mut sums = [[0.0f64; 4]; 2];
        for &overlap in modes {
            let sgd = Sgd::new(
                model.parameters(),
                SgdOptions {
                    lr: 0.01,
                    momentum: 0.9,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut opt = DistributedOptimizer::new(Box::new(sgd), comm.clone(), 25 << 20, None).with_overlap(overlap);
            let backward = std::cell::Cell::new(0.0);
            let mut step = || {
                let out = model.forward(&x, Mode::Train).unwrap();
                let loss = cross_entropy(&out, &labels[..], &CrossEntropyOptions::default()).unwrap();
                let t = Instant::now();
                let grads = loss.backward().unwrap();
                backward.set(backward.get() + t.elapsed().as_secs_f64());
                opt.step(&grads).unwrap();
            };
            step();
            comm.barrier();
            backward.set(0.0);
            let (t0, c0, h0) = (Instant::now(), allreduce_seconds(), comm_thread_seconds());
            for _ in 0..steps {
                step();
            }
            comm.barrier();
            let n = steps as f64;
            let (waited, thread) = (allreduce_seconds() - c0, comm_thread_seconds() - h0);
            let s = &mut sums[usize::from(overlap)];
            s[0] += t0.elapsed().as_secs_f64() / n;
            s[1] += backward.get() / n;
            s[2] += if overlap { thread } else { waited } / n;
            s[3] += waited / n;
        }
        if rank == 0 {
            let rounds = (modes.len() / if size > 1 { 2 } else { 1 }) as f64;
            let ms = |v: f64| v / rounds * 1e3;
            let mb = params as f64 * 4.0 / 1e6;
            let threads = rayon::current_num_threads();
            let [st, bw, ar, _] = sums[0];
            println!(
                "{name}: {size} rank(s) × {threads} thread(s), global batch {global}, {mb:.1} MB of f32 gradients: \
                 blocking: {:.1} ms per step, backward {:.1} ms, all-reduce {:.1} ms",
                ms(st),
                ms(bw),
                ms(ar)
            );
            if size > 1 {
                let [ost, obw, oar, owait] = sums[1];
                let compute = st - ar;
                let hidden = 1.0 - ((ost - compute) / ar).clamp(0.0, 1.0);
                println!(
                    "{name}: overlapped: {:.1} ms per step, backward {:.1} ms, all-reduce (thread) {:.1} ms, \
                     step waited {:.1} ms; hidden {:.0}% of the blocking all-reduce",
                    ms(ost),
                    ms(obw),
                    ms(oar),
                    ms(owait),
                    hidden * 100.0
                );
            }
        }
    }
}
