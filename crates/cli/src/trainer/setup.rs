//! Building what a run needs from its configuration: the model, the optimizer and the
//! learning-rate schedule, and the metadata that lets `eval` and `predict` rebuild the model
//! from a checkpoint.

use crate::config::{parse_task, Task, TrainConfig};
use crate::error::{CliError, CliResult};
use nabla_models::ModelConfig;
use nabla_nn::checkpoint::Checkpoint;
use nabla_nn::optim::{
    Adam, AdamOptions, AdamW, AdamWOptions, Optimizer, ParamGroup, RMSprop, RMSpropOptions, Sgd, SgdOptions,
};
use nabla_nn::scheduler::{
    CosineAnnealingLR, ExponentialLR, MultiStepLR, ReduceLROnPlateau, ReduceLROnPlateauOptions, StepLR,
};
use nabla_nn::Module;
use nabla_train::Schedule;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Build `name` from the zoo; an unknown name lists the known ones.
pub fn build_model(name: &str, mc: &ModelConfig) -> CliResult<Box<dyn Module>> {
    if !nabla_models::names().contains(&name) {
        return Err(CliError::new(format!(
            "unknown model {name:?} (known: {})",
            nabla_models::names().join(", ")
        )));
    }
    Ok(nabla_models::build(name, mc)?)
}

/// The zoo's models that `nabla train` does not train, each with what it is and what
/// trains it (none: nothing yet).
const OTHER_TASKS: &[(&str, &str, Option<&str>)] = &[
    (
        "mlp_autoencoder",
        "an autoencoder (it learns to reconstruct its input)",
        Some("nabla autoencode --model mlp_autoencoder"),
    ),
    (
        "conv_autoencoder",
        "an autoencoder (it learns to reconstruct its input)",
        Some("nabla autoencode --model conv_autoencoder"),
    ),
    (
        "generator",
        "a GAN's generator (it trains against a discriminator, from latent vectors)",
        Some("nabla gan"),
    ),
    (
        "discriminator",
        "a GAN's discriminator (it trains against a generator)",
        Some("nabla gan"),
    ),
    (
        "segnet",
        "a segmentation network (a class for every pixel)",
        Some("nabla train --task segment --model segnet"),
    ),
    (
        "fcn_small",
        "a segmentation network (a class for every pixel)",
        Some("nabla train --task segment --model fcn_small"),
    ),
    (
        "classloc",
        "a classifier with a bounding-box head (classification with localization)",
        Some("nabla train --task localize"),
    ),
    (
        "fasterrcnn_small",
        "a two-stage object detector (a class and a box for every object)",
        Some("nabla train --task detect"),
    ),
];

/// Refuse a model that does not fit the task and data: one line naming what it is and what
/// trains it.
pub fn check_trainable(cfg: &TrainConfig) -> CliResult<()> {
    let m = cfg.model.as_str();
    if let Some((_, what, with)) = OTHER_TASKS.iter().find(|(n, _, _)| *n == m) {
        let rest = match with {
            Some(cmd) => format!("train it with {cmd}"),
            None => format!("{m} is not trainable from the command line yet"),
        };
        return Err(CliError::new(format!(
            "--model {m} is {what}; nabla train fits classifiers and regressors ({}), and {rest}",
            trainable_models().join(", ")
        )));
    }
    let table = cfg.dataset == "csv" || cfg.data.is_some();
    if table && m != "mlp" && nabla_models::names().contains(&m) {
        return Err(CliError::new(format!(
            "--model {m} takes images; a table (--data FILE.csv) trains with --model mlp"
        )));
    }
    Ok(())
}

/// The zoo's models `nabla train` trains.
pub fn trainable_models() -> Vec<&'static str> {
    let other = |n: &&str| OTHER_TASKS.iter().any(|(o, _, _)| o == n);
    nabla_models::names().into_iter().filter(|n| !other(n)).collect()
}

/// The optimizer the configuration names, over `params`.
pub fn build_optimizer(cfg: &TrainConfig, params: Vec<nabla_core::Tensor>) -> CliResult<Box<dyn Optimizer>> {
    build_optimizer_groups(cfg, vec![ParamGroup::new(params)])
}

/// The optimizer the configuration names, over parameter groups (a group's own rate wins).
pub fn build_optimizer_groups(cfg: &TrainConfig, params: Vec<ParamGroup>) -> CliResult<Box<dyn Optimizer>> {
    let (lr, wd) = (cfg.lr, cfg.weight_decay);
    let opt: Box<dyn Optimizer> = match cfg.optimizer.as_str() {
        "sgd" => Box::new(Sgd::with_groups(
            params,
            SgdOptions {
                lr,
                momentum: cfg.momentum,
                weight_decay: wd,
                ..Default::default()
            },
        )?),
        "adam" => Box::new(Adam::with_groups(
            params,
            AdamOptions {
                lr,
                weight_decay: wd,
                ..Default::default()
            },
        )?),
        "adamw" => Box::new(AdamW::with_groups(
            params,
            AdamWOptions {
                lr,
                weight_decay: wd,
                ..Default::default()
            },
        )?),
        "rmsprop" => Box::new(RMSprop::with_groups(
            params,
            RMSpropOptions {
                lr,
                momentum: cfg.momentum,
                weight_decay: wd,
                ..Default::default()
            },
        )?),
        other => return Err(CliError::new(format!("unknown optimizer {other:?}"))),
    };
    Ok(opt)
}

/// The learning-rate schedule `cfg.scheduler` names, stepped once per epoch (made after
/// the optimizer, as PyTorch's are).
pub fn schedule(cfg: &TrainConfig, opt: &mut dyn Optimizer) -> CliResult<Schedule> {
    let epochs = cfg.epochs.max(1);
    Ok(match cfg.scheduler.as_str() {
        "none" => Schedule::Constant,
        "cosine" => Schedule::Epoch(Box::new(CosineAnnealingLR::new(opt, epochs, 0.0)?)),
        "step" => {
            let size = cfg.step_size.unwrap_or((epochs / 3).max(1));
            Schedule::Epoch(Box::new(StepLR::new(opt, size, cfg.gamma.unwrap_or(0.1))?))
        }
        "multistep" => {
            let gamma = cfg.gamma.unwrap_or(0.1);
            Schedule::Epoch(Box::new(MultiStepLR::new(opt, &cfg.milestones, gamma)?))
        }
        // Down to 1% of the rate by the last epoch, unless a gamma is given.
        "exponential" => {
            let gamma = cfg.gamma.unwrap_or_else(|| 0.01f64.powf(1.0 / epochs as f64));
            Schedule::Epoch(Box::new(ExponentialLR::new(opt, gamma)?))
        }
        "plateau" => {
            let o = ReduceLROnPlateauOptions {
                patience: cfg.patience.unwrap_or(2),
                factor: cfg.gamma.unwrap_or(0.1),
                ..Default::default()
            };
            Schedule::Plateau(ReduceLROnPlateau::new(opt, o)?)
        }
        other => return Err(CliError::new(format!("unknown scheduler {other:?}"))),
    })
}

/// What a checkpoint says about the run that wrote it, beyond the tensors.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// The zoo name of the model.
    pub model: String,
    /// What the model was built from.
    pub model_config: ModelConfig,
    /// The resolved training configuration.
    pub config: TrainConfig,
    /// Class names by label (empty for regression).
    pub classes: Vec<String>,
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
    /// Per-channel (images) or per-feature (tables) mean and std of the inputs.
    pub normalize: (Vec<f32>, Vec<f32>),
    /// Mean and std of regression targets.
    pub target_scale: Option<(f32, f32)>,
    /// A table's feature columns in the model's order (empty for images, and in checkpoints
    /// written before they were saved).
    pub features: Vec<String>,
}

/// The model config of a run over data with this shape and these classes.
pub fn model_config(cfg: &TrainConfig, input_shape: &[usize], classes: usize) -> ModelConfig {
    let (in_channels, input_size) = match input_shape {
        [c, h, w] => (*c, [*h, *w]),
        [f] => (1, [1, *f]),
        _ => (1, [1, input_shape.iter().product()]),
    };
    ModelConfig {
        num_classes: if cfg.task == Task::Regression { 1 } else { classes },
        in_channels,
        input_size,
        small_input: input_size[0] <= 64 && input_size[1] <= 64,
        hidden: cfg.hidden.clone(),
        activation: cfg.activation.clone(),
        seed: cfg.seed,
        variant: cfg.variant.clone(),
    }
}

fn bad(path: &Path, what: &str) -> CliError {
    CliError::new(format!(
        "{}: not a nabla train checkpoint ({what}); eval and predict need one written by nabla train",
        path.display()
    ))
}

impl RunMeta {
    /// The metadata as checkpoint `extra` strings.
    pub fn to_extra(&self) -> BTreeMap<String, String> {
        let mc = &self.model_config;
        let mut m = BTreeMap::new();
        m.insert("model".into(), self.model.clone());
        let model_config = json!({
            "num_classes": mc.num_classes,
            "in_channels": mc.in_channels,
            "input_size": mc.input_size,
            "small_input": mc.small_input,
            "hidden": mc.hidden,
            "activation": mc.activation,
            "seed": mc.seed,
            "variant": mc.variant,
        });
        m.insert("model_config".into(), model_config.to_string());
        m.insert("dataset".into(), self.config.dataset.clone());
        m.insert("task".into(), self.config.task.name().into());
        m.insert("classes".into(), json!(self.classes).to_string());
        m.insert("input_shape".into(), json!(self.input_shape).to_string());
        m.insert(
            "normalize".into(),
            json!({"mean": self.normalize.0, "std": self.normalize.1}).to_string(),
        );
        if let Some((a, b)) = self.target_scale {
            m.insert("target_scale".into(), json!([a, b]).to_string());
        }
        if !self.features.is_empty() {
            m.insert("features".into(), json!(self.features).to_string());
        }
        m.insert("config".into(), self.config.to_toml());
        m
    }

    /// Read the metadata back from a checkpoint loaded from `path`.
    pub fn from_checkpoint(ck: &Checkpoint, path: &Path) -> CliResult<RunMeta> {
        let get = |k: &str| ck.extra.get(k).ok_or_else(|| bad(path, &format!("no {k:?} entry")));
        let parse = |k: &str| -> CliResult<Value> {
            serde_json::from_str(get(k)?).map_err(|e| bad(path, &format!("{k}: {e}")))
        };
        let mc = parse("model_config")?;
        let count = |v: &Value| v.as_u64().map(|x| x as usize);
        let size = mc["input_size"]
            .as_array()
            .and_then(|a| Some([count(a.first()?)?, count(a.get(1)?)?]));
        let model_config = ModelConfig {
            num_classes: count(&mc["num_classes"]).ok_or_else(|| bad(path, "num_classes"))?,
            in_channels: count(&mc["in_channels"]).ok_or_else(|| bad(path, "in_channels"))?,
            input_size: size.ok_or_else(|| bad(path, "input_size"))?,
            small_input: mc["small_input"].as_bool().unwrap_or(false),
            hidden: mc["hidden"]
                .as_array()
                .map(|a| a.iter().filter_map(count).collect())
                .unwrap_or_default(),
            activation: mc["activation"].as_str().unwrap_or("relu").to_string(),
            seed: mc["seed"].as_u64().unwrap_or(0),
            variant: mc["variant"].as_str().map(String::from),
        };
        let strings =
            |v: Value| -> Option<Vec<String>> { v.as_array()?.iter().map(|s| s.as_str().map(String::from)).collect() };
        let floats =
            |v: &Value| -> Option<Vec<f32>> { v.as_array()?.iter().map(|x| Some(x.as_f64()? as f32)).collect() };
        let norm = parse("normalize")?;
        let normalize = (
            floats(&norm["mean"]).ok_or_else(|| bad(path, "normalize"))?,
            floats(&norm["std"]).ok_or_else(|| bad(path, "normalize"))?,
        );
        let target_scale = match ck.extra.get("target_scale") {
            Some(_) => {
                let v = floats(&parse("target_scale")?).filter(|v| v.len() == 2);
                let v = v.ok_or_else(|| bad(path, "target_scale"))?;
                Some((v[0], v[1]))
            }
            None => None,
        };
        let config = TrainConfig::from_toml(get("config")?, path)?;
        parse_task(get("task")?)?;
        Ok(RunMeta {
            model: get("model")?.clone(),
            model_config,
            config,
            classes: strings(parse("classes")?).ok_or_else(|| bad(path, "classes"))?,
            input_shape: parse("input_shape")?
                .as_array()
                .and_then(|a| a.iter().map(count).collect())
                .ok_or_else(|| bad(path, "input_shape"))?,
            normalize,
            target_scale,
            features: match ck.extra.get("features") {
                Some(_) => strings(parse("features")?).ok_or_else(|| bad(path, "features"))?,
                None => vec![],
            },
        })
    }
}

/// Whether the file starts as safetensors does: an 8-byte little-endian header length that
/// fits the file, then the header's JSON object.
fn looks_like_safetensors(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = [0u8; 9];
    if len < 9 {
        return Ok(false);
    }
    f.read_exact(&mut head)?;
    let [l0, l1, l2, l3, l4, l5, l6, l7, first] = head;
    let n = u64::from_le_bytes([l0, l1, l2, l3, l4, l5, l6, l7]);
    Ok(n >= 2 && n <= len - 8 && first == b'{')
}

/// Read a checkpoint named by `flag` (`--resume `, `--init-from `, or "" for a command's
/// own argument), saying in one line when the file is missing, is not safetensors, or is
/// safetensors that nabla did not write.
pub fn read_checkpoint(path: &Path, flag: &str) -> CliResult<Checkpoint> {
    let p = path.display();
    if !path.is_file() {
        return Err(CliError::new(format!("{flag}{p}: no such checkpoint file")));
    }
    let safetensors = looks_like_safetensors(path).map_err(|e| CliError::io("read", path, e))?;
    if !safetensors {
        return Err(CliError::new(format!(
            "{flag}{p}: not a nabla checkpoint (safetensors) file; nabla train writes last.safetensors and \
             best.safetensors in its run folder"
        )));
    }
    Checkpoint::load(path).map_err(|e| {
        let why = e.to_string();
        let why = why.rsplit(": checkpoint: ").next().unwrap_or(&why).to_string();
        CliError::new(format!(
            "{flag}{p}: a safetensors file, but not a nabla checkpoint ({why})"
        ))
    })
}

/// Load a checkpoint written by `nabla train` and rebuild its model with the saved weights.
pub fn load_trained(path: &Path) -> CliResult<(Box<dyn Module>, RunMeta, Checkpoint)> {
    let ck = read_checkpoint(path, "")?;
    let meta = RunMeta::from_checkpoint(&ck, path)?;
    let model: Box<dyn Module> = match crate::finetune::net::probe_of(&ck.extra, &meta, path)? {
        Some(probe) => Box::new(probe),
        None => build_model(&meta.model, &meta.model_config)?,
    };
    ck.restore_model(&model.state_dict())?;
    Ok((model, meta, ck))
}
