//! The nabla model zoo: classic architectures built from nabla-nn layers, by name.
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::{build, ModelConfig};
//! use nabla_nn::{Mode, Module};
//! let cfg = ModelConfig { hidden: vec![128], ..Default::default() };
//! let mlp = build("mlp", &cfg)?;
//! let logits = mlp.forward(&Tensor::zeros(&[4, 1, 28, 28], DType::F32), Mode::Eval)?;
//! assert_eq!(logits.shape(), &[4, 10]);
//! assert!(build("lenet6", &cfg).is_err());
//! # Ok::<(), nabla_nn::Error>(())
//! ```
//!
//! Map of the crate:
//! - [`registry`]: [`ModelConfig`], [`build`] and [`names`], the entry points the CLI uses.
//! - [`mlp`], [`lenet`]: small classifiers for 28×28 and 32×32 images.
//! - [`autoencoder`]: MLP and convolutional autoencoders with a standalone encoder.
//! - [`fasterrcnn`]: `fasterrcnn_small`, a two-stage detector (RPN + RoI heads).
//! - [`segnet`] and [`fcn`] (per-pixel scores), [`classloc`] (class + box), [`dcgan`] (generator and
//!   discriminator).
//! - [`convnet`]: the `features` / `avgpool` / `classifier` layout of torchvision's
//!   sequential models.
//! - [`alexnet`] (the lecture's AlexNet, torchvision's, ZFNet), [`vgg`], [`resnet`],
//!   [`googlenet`]: ImageNet models; torchvision's AlexNet, VGG, ResNet and GoogLeNet have
//!   its names, shapes and parameter counts, so its state dicts load unchanged.
//! - [`layers`]: pooling modules, activations by name, shared constructors.

#![warn(missing_docs)]

pub mod alexnet;
pub mod autoencoder;
pub mod captioner;
pub mod classloc;
pub mod convnet;
pub mod dcgan;
pub mod fasterrcnn;
pub mod fcn;
pub mod googlenet;
pub mod layers;
pub mod lenet;
pub mod mlp;
pub mod registry;
pub mod resnet;
pub mod segnet;
pub mod vgg;

pub use convnet::ConvNet;
pub use googlenet::GoogLeNet;
pub use mlp::Mlp;
pub use registry::{
    build, build_classloc, build_convnet, build_dcgan_discriminator, build_dcgan_generator, build_fasterrcnn,
    build_fcn, build_googlenet, build_mlp, build_resnet, build_segnet, names, ModelConfig,
};
pub use resnet::ResNet;
