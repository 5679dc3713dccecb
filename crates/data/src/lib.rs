//! nabla's data: datasets (IDX/MNIST family, CIFAR, image folders, CSV), batch loaders with
//! background workers, and seeded image augmentation.
//!
//! ```
//! use nabla_data::transforms::{Compose, Normalize, RandomHorizontalFlip};
//! use nabla_data::{DataLoader, Dataset, ImageDataset};
//! // Four 1×2×2 images with labels 0..4 (any reader produces an `ImageDataset` like this).
//! let ds = ImageDataset::new(vec![255; 16], vec![0, 1, 2, 3], [1, 2, 2],
//!     (0..4).map(|c| c.to_string()).collect(), "mem".as_ref())?;
//! let loader = DataLoader::new(ds, 2)?
//!     .shuffle(true)
//!     .seed(1)
//!     .transform(Compose::new(vec![
//!         Box::new(RandomHorizontalFlip::new(0.5)),
//!         Box::new(Normalize::new(vec![0.5], vec![0.5])?),
//!     ]));
//! for batch in loader.epoch(0) {
//!     let batch = batch?;
//!     assert_eq!(batch.inputs.shape(), &[2, 1, 2, 2]);
//!     assert!(batch.inputs.to_vec_f32().iter().all(|&v| v == 1.0));
//! }
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! Map of the crate:
//! - [`Dataset`], [`TensorDataset`], [`ImageDataset`] (`dataset.rs`): the trait and in-memory sets.
//! - [`BatchBuffers`] (`buffers.rs`): a batch being gathered, in the data set's dtype (f32 or f64).
//! - [`idx`]: IDX files and the MNIST family; [`FashionMnist`] (`fashion.rs`) finds or downloads it.
//! - [`cifar`]: CIFAR-10/100 binary batches. [`ImageFolder`] (`folder.rs`): class subfolders.
//! - [`CsvDataset`] (`csv.rs`): numeric tables with a target column.
//! - [`DataLoader`] (`loader.rs`): shuffling, batching, workers, resumable positions.
//! - [`scenes`]: Fashion-MNIST scenes (items, tight boxes, semantic and instance masks) for
//!   localization and segmentation, and their COCO / mask-folder formats.
//! - [`detection`]: detection images with boxes: scenes, COCO and Pascal VOC folders, tiles,
//!   the loader view, COCO results.
//! - [`text`]: the caption tokenizer, vocabulary, corpus BLEU and pretrained word vectors.
//! - [`captions`]: images with reference captions (scenes, COCO, Flickr8k), scene scores.
//! - [`transforms`]: normalize, crops, flips, resize, affine, composed and seeded.
//! - `http.rs`: the small HTTP/1.1 client the download uses.
//!
//! Every reader checks sizes against the bytes present before allocating, and reports bad
//! input as a [`DataError`] naming the file and the problem.

mod atomic;
mod buffers;
pub mod captions;
pub mod cifar;
mod csv;
mod dataset;
pub mod detection;
mod error;
mod fashion;
mod folder;
mod http;
pub mod idx;
mod loader;
pub mod scenes;
pub mod text;
pub mod transforms;

pub use buffers::BatchBuffers;
pub use csv::{CsvDataset, CsvOptions, FeatureStats, Standardize, Task};
pub use dataset::{Dataset, ImageDataset, ReadLimits, Sample, Target, TensorDataset};
pub use error::{DataError, Result};
pub use fashion::{
    download_verified, fashion_mnist_files, sha256_file, FashionMnist, RemoteFile, FASHION_MNIST_MIRROR, SYSTEM_DIR,
};
pub use folder::{load_image, load_image_u8, probe_image, Fit, ImageFolder};
pub use idx::{MnistFamily, Split, FASHION_MNIST_CLASSES};
pub use loader::{Batch, Batches, DataLoader, LoaderPosition};
