//! Step time of data-parallel training: LeNet-5 and ResNet-18 (28×28 inputs, small-input
//! stem) at global batch 32, forward + backward + averaged SGD step, on however many ranks
//! `mpirun` started (one process without it). Prints rank 0's mean step time and the part
//! spent in the gradient all-reduce (nothing overlaps it: it runs after backward).
//!
//! `RAYON_NUM_THREADS=2 mpi_speed` against `mpirun -n 2 env RAYON_NUM_THREADS=1 mpi_speed`.

use nabla_core::{DType, Generator, Tensor};
use nabla_distributed::{allreduce_seconds, Comm, DistributedOptimizer, Local, Mpi};
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
    for (name, steps) in [("lenet5", 30), ("resnet18", 6)] {
        let cfg = ModelConfig {
            small_input: true,
            ..Default::default()
        };
        let model = build(name, &cfg).unwrap();
        let sgd = Sgd::new(
            model.parameters(),
            SgdOptions {
                lr: 0.01,
                momentum: 0.9,
                ..Default::default()
            },
        )
        .unwrap();
        let mut opt = DistributedOptimizer::new(Box::new(sgd), comm.clone(), 25 << 20, None);
        let mut g = Generator::new(rank as u64);
        let b = global / size;
        let x = Tensor::randn(&[b, 1, 28, 28], DType::F32, &mut g);
        let labels: Vec<usize> = (0..b).map(|i| i % 10).collect();
        let mut step = || {
            let out = model.forward(&x, Mode::Train).unwrap();
            let loss = cross_entropy(&out, &labels[..], &CrossEntropyOptions::default()).unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        };
        step();
        comm.barrier();
        let (t0, c0) = (Instant::now(), allreduce_seconds());
        for _ in 0..steps {
            step();
        }
        comm.barrier();
        let per = t0.elapsed().as_secs_f64() / steps as f64;
        let comm_per = (allreduce_seconds() - c0) / steps as f64;
        let params: usize = model.parameters().iter().map(|p| p.numel()).sum();
        if rank == 0 {
            println!(
                "{name}: {size} rank(s) × {} thread(s), global batch {global}: {:.1} ms per step, of which \
                 {:.1} ms gradient all-reduce ({:.1} MB of f32 gradients)",
                rayon::current_num_threads(),
                per * 1e3,
                comm_per * 1e3,
                params as f64 * 4.0 / 1e6
            );
        }
    }
}
