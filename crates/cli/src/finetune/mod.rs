//! `nabla finetune`: start a classifier from another run's or torchvision's weights, with a
//! fresh head for the new classes, and train the head alone (probe, on the top or on an
//! earlier stage, optionally on cached features), the last blocks too (top), or all of it
//! with a smaller body learning rate (full); the loop is `nabla train`'s.

pub mod body;
pub mod features;
pub mod net;
mod source;

use crate::config::{Task, TrainConfig};
use crate::error::{CliError, CliResult};
use crate::train::TrainArgs;
use crate::trainer::setup::{model_config, RunMeta};
use crate::trainer::{folder, make_loader, task::Supervised};
use body::Body;
use clap::Args;
use nabla_core::Tensor;
use nabla_data::Dataset;
use nabla_nn::module::under;
use nabla_nn::optim::ParamGroup;
use nabla_nn::Module;
use net::{FineTuneNet, Pass};
use std::path::PathBuf;
use std::sync::Arc;

/// Fine-tune a zoo classifier from a nabla checkpoint or a torchvision-named state dict.
///
/// The classifier head is replaced (fresh, seeded) for the data's classes and everything
/// else is loaded strictly; the loaded, replaced and left-out tensors are reported. Without
/// --strategy the source's head must already fit the data's classes, and all is trained at
/// --lr. The run folder (default runs/finetune-<model>-<dataset>/version_N) is nabla train's.
#[derive(Debug, Args)]
#[command(after_help = concat!(
    "Strategies:\n  probe  train the new head only; the rest is frozen and runs in eval mode (batch norm's \
     running statistics, no dropout); --probe-layer STAGE puts a linear classifier on that stage's globally \
     pooled features instead\n  top    also train the last block(s) at --body-lr\n  full   train all, the body \
     at --body-lr [default: --head-lr / 10]\n\nPer family (head, top blocks, stages for --probe-layer and \
     nabla features --layer):\n  ",
    "lenet5, alexnet, zfnet, vgg*: head classifier.<last>, top classifier, stages features.<i> of each pooling \
     layer and classifier.<i> after each hidden linear (lenet5: features.2, features.5, classifier.1, \
     classifier.3)\n  resnet*: head fc, top layer4, stages layer1..layer4\n  mlp: head layers.<last>, top the \
     last hidden linear, stages layers.<i> after each hidden linear\n\nExamples:\n  nabla finetune --from \
     runs/source/best.safetensors --strategy probe --dataset imagefolder --data-dir target\n  nabla finetune \
     --from resnet18.safetensors --model resnet18 --strategy full --head-lr 0.01 --dataset imagefolder \
     --data-dir pets"
))]
#[command(
    mut_args(hide_train_only),
    mut_arg("out", |a| a.help("Run folder [default: a new runs/finetune-<model>-<dataset>/version_N]")),
    mut_arg("lr", |a| a.help("Learning rate at the start of the schedule, the head's unless --head-lr [default: 0.05]"))
)]
pub struct FinetuneArgs {
    /// The weights to start from: a nabla checkpoint, or a safetensors state dict with
    /// PyTorch/torchvision names (needs --model)
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// probe, top or full (see below); without it the source's head must fit the classes
    #[arg(long, value_name = "NAME", value_parser = ["probe", "top", "full"])]
    strategy: Option<String>,
    /// Train exactly these layers (name prefixes, comma-separated) and the new head
    #[arg(long, value_name = "PREFIXES", value_delimiter = ',', conflicts_with = "strategy")]
    train_layers: Option<Vec<String>>,
    /// Learning rate of the head [default: --lr]
    #[arg(long, value_name = "RATE")]
    head_lr: Option<f64>,
    /// Learning rate of the other trained layers [default: --head-lr / 10 with a strategy,
    /// --head-lr without]
    #[arg(long, value_name = "RATE")]
    body_lr: Option<f64>,
    /// Probe: a linear classifier on this stage's globally pooled features (see below)
    #[arg(long, value_name = "STAGE")]
    probe_layer: Option<String>,
    /// Probe: run the frozen body once over the data, cache what the head reads and train
    /// the head on that (no augmentation)
    #[arg(long)]
    probe_features: bool,
    /// Probe: average-pool the --probe-layer stage's feature maps to N×N (N·N numbers per
    /// channel) instead of globally
    #[arg(long, value_name = "N", default_value_t = 1, requires = "probe_layer",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    probe_pool: usize,
    #[command(flatten)]
    train: TrainArgs,
}

/// `nabla train`'s flags that have no say in finetuning: other tasks' (and the detection
/// settings, [`crate::config::detect::KEYS`]), resuming and starting points (finetune starts
/// from --from), and data-parallel training. Hidden from `finetune --help`; still parsed, so
/// that the ones finetune refuses say why.
const TRAIN_ONLY: [&str; 9] = [
    "task",
    "resume",
    "init_from",
    "sync_bn",
    "bucket_mb",
    "box_loss",
    "box_weight",
    "class_weights",
    "ignore_index",
];

/// Whether the flag with this id is one of [`TRAIN_ONLY`] or a detection setting.
fn train_only(id: &str) -> bool {
    TRAIN_ONLY.contains(&id) || crate::config::detect::KEYS.contains(&id)
}

/// Hide `a` from the help when it is [`train_only`].
fn hide_train_only(a: clap::Arg) -> clap::Arg {
    if train_only(a.get_id().as_str()) {
        a.hide(true)
    } else {
        a
    }
}

/// Which layers train.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Everything, the head kept from the source (no --strategy).
    Continue,
    /// The new head only.
    Probe,
    /// The new head and the family's last block(s).
    Top,
    /// Everything, with a new head.
    Full,
    /// The new head and these prefixes.
    Layers(Vec<String>),
}

impl FinetuneArgs {
    fn plan(&self) -> CliResult<Plan> {
        let probing = self.probe_layer.is_some() || self.probe_features;
        if self
            .train_layers
            .as_ref()
            .is_some_and(|l| l.iter().any(|p| p.trim().is_empty()))
        {
            return Err(CliError::new(
                "--train-layers: an empty layer name (give name prefixes, e.g. features.3,classifier)",
            ));
        }
        let plan = match (self.strategy.as_deref(), &self.train_layers) {
            (_, Some(l)) => Plan::Layers(l.clone()),
            (Some("probe"), _) => Plan::Probe,
            (Some("top"), _) => Plan::Top,
            (Some("full"), _) => Plan::Full,
            (None, None) if probing => Plan::Probe,
            _ => Plan::Continue,
        };
        if probing && plan != Plan::Probe {
            let flag = if self.probe_features {
                "--probe-features"
            } else {
                "--probe-layer"
            };
            return Err(CliError::new(format!(
                "{flag} trains a linear probe on a frozen network; it goes with --strategy probe"
            )));
        }
        Ok(plan)
    }
}

/// The configuration: the source's model settings (a nabla checkpoint's), then the flags.
fn resolve(a: &FinetuneArgs, meta: Option<&RunMeta>) -> CliResult<TrainConfig> {
    let t = &a.train;
    if t.run.resume.is_some() || t.init_from.is_some() {
        return Err(CliError::new(
            "finetune starts from --from; --resume and --init-from belong to nabla train",
        ));
    }
    // Finetuning runs in one process (it never joins an mpirun world), so the data-parallel
    // flags would do nothing.
    if let Some(flag) = [(t.sync_bn, "--sync-bn"), (t.bucket_mb.is_some(), "--bucket-mb")]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    {
        return Err(CliError::new(format!(
            "{flag}: finetune trains in one process (no data-parallel training under mpirun); drop it"
        )));
    }
    if t.task.as_deref().is_some_and(|k| k != "classification") {
        return Err(CliError::new("finetune trains classifiers (--task classification)"));
    }
    let mut base = TrainConfig::default();
    if let Some(m) = meta {
        base.model = m.model.clone();
        base.hidden = m.config.hidden.clone();
        base.activation = m.config.activation.clone();
        base.variant = m.config.variant.clone();
    } else if t.model.is_none() {
        return Err(CliError::new(format!(
            "--from {}: a plain state dict does not say its model; pass --model NAME",
            a.from.display()
        )));
    }
    let mut cfg = crate::train::resolve_over(t, Some(base))?;
    // Images come at the size the source was trained at, unless asked otherwise.
    if let (Some([_, h, w]), None, "imagefolder") = (
        meta.map(|m| &m.input_shape[..]),
        cfg.images.image_size,
        cfg.dataset.as_str(),
    ) {
        cfg.images.image_size = Some([*h, *w]);
    }
    Ok(cfg)
}

/// Cache what the frozen body gives the head for every sample of `ds` (evaluation mode, no
/// graph), in the dataset's order.
fn cache(
    net: &FineTuneNet,
    ds: &Arc<dyn Dataset>,
    shape: &[usize],
    norm: &(Vec<f32>, Vec<f32>),
) -> CliResult<Arc<dyn Dataset>> {
    let _guard = nabla_core::no_grad();
    let loader = make_loader(ds.clone(), 500, shape, norm, false)?;
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for b in loader.epoch(0) {
        let b = b?;
        rows.push(net.features(&b.inputs)?);
        labels.extend_from_slice(&b.labels);
    }
    let refs: Vec<&Tensor> = rows.iter().collect();
    let all = Tensor::cat(&refs, 0)?;
    Ok(Arc::new(nabla_data::TensorDataset::new(&all, labels)?))
}

/// Run `nabla finetune`.
pub fn run(a: FinetuneArgs) -> CliResult<()> {
    let plan = a.plan()?;
    let src = source::read(&a.from)?;
    let cfg = resolve(&a, src.meta.as_ref())?;
    cfg.validate()?;
    if cfg.task != Task::Classification {
        return Err(CliError::new("finetune trains classifiers (--task classification)"));
    }
    if a.probe_features && cfg.augment {
        return Err(CliError::new(
            "--probe-features caches the features of the images as they are; drop --augment",
        ));
    }
    if cfg.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(cfg.threads).build_global();
    }
    let stop = nabla_train::stop_on_ctrl_c()?;
    let mut data = crate::trainer::data::load(&cfg)?;
    // The body learnt its features on inputs normalized as the source's were (unless
    // --normalize says otherwise).
    if let Some(m) = src.meta.as_ref().filter(|_| cfg.images.normalize.is_none()) {
        if data.input_shape.len() == 3 && m.normalize.0.len() == data.normalize.0.len() {
            data.normalize = m.normalize.clone();
        }
    }
    let classes = data.classes.len();
    let mc = model_config(&cfg, &data.input_shape, classes);
    let body = Body::build(&cfg.model, &mc)?;
    let head = body.head();
    let model_head: Vec<usize> = body
        .state_dict()
        .iter()
        .find(|(n, _)| *n == format!("{head}.weight"))
        .map(|(_, t)| t.shape().to_vec())
        .unwrap_or_default();
    let replace = if plan == Plan::Continue {
        if let Some(got) = src
            .shape(&format!("{head}.weight"))
            .filter(|s| *s != model_head.as_slice())
        {
            return Err(CliError::new(format!(
                "--from {}: its head {head}.weight is {got:?} ({} classes) but the data has {classes} classes \
                 ({head}.weight {model_head:?}); the head is replaced by a fresh one only with --strategy \
                 probe|top|full or --train-layers",
                a.from.display(),
                got.first().copied().unwrap_or(0)
            )));
        }
        vec![]
    } else {
        vec![head.clone()]
    };
    let report =
        nabla_nn::state_dict::load_transfer(body.state_entries(), &src.tensors, &replace).map_err(|e| src.error(&e))?;
    let mut net = FineTuneNet::new(body);
    if let Some(stage) = &a.probe_layer {
        net.body.check_stage(stage, "--probe-layer")?;
        net = net.with_probe(stage, a.probe_pool, &data.input_shape, classes, cfg.seed)?;
    }
    let head = net.head_name();
    match &plan {
        Plan::Continue | Plan::Full => {}
        Plan::Probe | Plan::Top | Plan::Layers(_) => {
            net.freeze();
            net.set_trainable(&head, true)?;
        }
    }
    if plan == Plan::Top {
        for b in net.body.top() {
            net.set_trainable(&b, true)?;
        }
    }
    if let Plan::Layers(prefixes) = &plan {
        for p in prefixes {
            net.set_trainable(p, true).map_err(|_| {
                let mut tops: Vec<String> = Vec::new();
                for (n, _) in net.named_parameters() {
                    let t = n.rsplit_once('.').map_or(n.clone(), |(m, _)| m.to_string());
                    if !tops.contains(&t) {
                        tops.push(t);
                    }
                }
                CliError::new(format!(
                    "--train-layers {p}: names no layer of {} (layers: {})",
                    cfg.model,
                    tops.join(", ")
                ))
            })?;
        }
    }
    // Only now that every flag fits the model.
    source::print_report(&a.from, &report);
    if plan == Plan::Probe {
        net.pass = Pass::FrozenBody;
    }
    let head_lr = a.head_lr.unwrap_or(cfg.lr);
    let body_lr = a.body_lr.unwrap_or(if plan == Plan::Continue {
        head_lr
    } else {
        head_lr / 10.0
    });
    let (mut in_head, mut in_body) = (Vec::new(), Vec::new());
    let mut frozen = 0;
    net.visit("", &mut |n, p| {
        if p.is_buffer() {
        } else if !p.trainable() {
            frozen += p.leaf().numel();
        } else if under(n, &head) {
            in_head.push(p.lend());
        } else {
            in_body.push(p.lend());
        }
    });
    let count = |v: &[Tensor]| v.iter().map(|t| t.numel()).sum::<usize>();
    let trained = format!(
        "training {head} ({} parameters, lr {head_lr}) and {} other parameters (lr {body_lr}); {frozen} frozen",
        count(&in_head),
        count(&in_body),
    );
    let mut groups = vec![ParamGroup::new(in_head).with_lr(head_lr)];
    if !in_body.is_empty() {
        groups.push(ParamGroup::new(in_body).with_lr(body_lr));
    }
    // The inputs the loop sees: images, or the frozen body's cached output.
    let (mut train, mut val, mut test, mut shape) = (
        data.train.clone(),
        data.val.clone(),
        data.test.clone(),
        data.input_shape.clone(),
    );
    if a.probe_features {
        let t0 = std::time::Instant::now();
        let c = |d: &Arc<dyn Dataset>| cache(&net, d, &shape, &data.normalize);
        train = c(&train)?;
        val = val.as_ref().map(c).transpose()?;
        test = test.as_ref().map(c).transpose()?;
        shape = train.get(0)?.shape.clone();
        println!(
            "cached the frozen network's {} features ({} per sample) of {} training, {} validation and {} test \
             samples in {:.1} s",
            net.stage().unwrap_or("top"),
            shape.iter().product::<usize>(),
            train.len(),
            val.as_ref().map_or(0, |d| d.len()),
            test.as_ref().map_or(0, |d| d.len()),
            t0.elapsed().as_secs_f64()
        );
        net.pass = Pass::Cached;
    }
    let base = PathBuf::from("runs").join(format!("finetune-{}-{}", cfg.model, cfg.dataset));
    let out = folder::create_in(cfg.out.as_deref(), &base, false, a.train.run.overwrite)?;
    let banner = format!(
        "finetuning {} from {} on {} ({} training, {} validation samples); {trained}; run folder {}",
        cfg.model,
        a.from.display(),
        cfg.dataset,
        train.len(),
        val.as_ref().map_or(0, |d| d.len()),
        out.display()
    );
    let meta = RunMeta {
        model: cfg.model.clone(),
        model_config: mc,
        config: cfg.clone(),
        classes: data.classes.clone(),
        input_shape: data.input_shape.clone(),
        normalize: data.normalize.clone(),
        target_scale: None,
        features: vec![],
    };
    // A probe's stage and pooling go into the checkpoints, so that eval and predict rebuild it.
    let probe = net.probe_extra();
    let mut task = Supervised::new(Box::new(net), &meta, banner)
        .with_groups(groups)
        .with_extra(probe);
    let loader = make_loader(train, cfg.batch_size, &shape, &data.normalize, cfg.augment)?.num_workers(cfg.workers);
    let eval_loader = |d: &Arc<dyn Dataset>| make_loader(d.clone(), 500, &shape, &data.normalize, false);
    let val_loader = val.as_ref().map(eval_loader).transpose()?;
    let fit = crate::trainer::fit_options(&cfg, &out, None, None, a.train.run.stop_after_steps, None);
    let best = match nabla_train::fit(&mut task, loader, val_loader.as_ref(), &fit, &stop)? {
        nabla_train::Outcome::Stopped(last) => {
            println!("stopped; last weights in {}", last.display());
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                std::process::exit(130);
            }
            return Ok(());
        }
        nabla_train::Outcome::Finished { best } => best,
    };
    let chosen = out.join(if best.is_some() {
        "best.safetensors"
    } else {
        "last.safetensors"
    });
    let validated = match best {
        Some((m, epoch)) => format!("best validation accuracy {:.2}% at epoch {epoch}", 100.0 * m),
        None => "no best checkpoint".into(),
    };
    let tested = match &test {
        Some(t) => {
            let metrics = nabla_train::test(&mut task, &eval_loader(t)?, &chosen, &out)?;
            let acc = metrics
                .iter()
                .find(|(n, _)| n == "test_acc")
                .map_or(f64::NAN, |(_, v)| *v);
            format!("; test accuracy {:.2}%", 100.0 * acc)
        }
        None => String::new(),
    };
    println!("done; {validated}{tested}; files in {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        a: FinetuneArgs,
    }

    #[test]
    fn the_hidden_flags_are_train_flags_and_the_rest_show() {
        let cmd = Cli::command();
        let ids: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
        for id in TRAIN_ONLY.iter().chain(crate::config::detect::KEYS) {
            assert!(ids.contains(id), "{id} is no flag of nabla train");
        }
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            assert_eq!(a.is_hide_set(), train_only(id), "{id}");
        }
    }
}
