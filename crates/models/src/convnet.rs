//! The torchvision layout shared by LeNet-5, AlexNet, ZFNet and VGG: `features` (a
//! Sequential of convolutions and pooling), an optional parameter-free `avgpool`, a
//! flatten, then `classifier` (a Sequential of linear layers).
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_models::ConvNet;
//! use nabla_nn::{Conv2d, Linear, Mode, Module, ReLU, Sequential};
//! let mut g = Generator::new(0);
//! let net = ConvNet::new(
//!     "tiny",
//!     Sequential::new().push(Conv2d::new(1, 4, 3, &mut g)).push(ReLU),
//!     None,
//!     Sequential::new().push(Linear::new(4 * 2 * 2, 3, &mut g)),
//! );
//! assert_eq!(net.forward(&Tensor::zeros(&[5, 1, 4, 4], DType::F32), Mode::Eval)?.shape(), &[5, 3]);
//! assert_eq!(net.named_parameters()[2].0, "classifier.0.weight");
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use nabla_core::Tensor;
use nabla_nn::{Children, Mode, Module, Result, Sequential};

/// `classifier(flatten(avgpool(features(x))))`, with torchvision's child names.
pub struct ConvNet {
    name: String,
    /// Convolutions, activations, normalization and pooling (`features.N`).
    pub features: Sequential,
    /// Parameter-free pooling between features and classifier (VGG's adaptive 7×7), if any.
    pub avgpool: Option<Box<dyn Module>>,
    /// Fully connected layers (`classifier.N`).
    pub classifier: Sequential,
}

impl ConvNet {
    /// A network named `name` (for descriptions) from its parts.
    pub fn new(
        name: impl Into<String>,
        features: Sequential,
        avgpool: Option<Box<dyn Module>>,
        classifier: Sequential,
    ) -> ConvNet {
        ConvNet {
            name: name.into(),
            features,
            avgpool,
            classifier,
        }
    }

    /// The feature maps before the classifier (after `avgpool`, if any), `[N, C, H, W]`.
    pub fn forward_features(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.features.forward_named("features", x, mode)?;
        match &self.avgpool {
            Some(p) => p.forward_named("avgpool", &y, mode),
            None => Ok(y),
        }
    }
}

impl Module for ConvNet {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = self.forward_features(x, mode)?.flatten(1, -1)?;
        self.classifier.forward_named("classifier", &y, mode)
    }

    fn children(&self, c: &mut Children) {
        c.module("features", &self.features);
        c.module_opt("avgpool", &self.avgpool);
        c.module("classifier", &self.classifier);
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
