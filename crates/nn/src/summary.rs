//! Per-layer summaries: run one forward pass under [`record`] and get every named child's
//! path, description, output shape and own parameter count, in call order.
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_nn::{summary, Linear, Mode, Module, ReLU, Sequential};
//! let mut g = Generator::new(0);
//! let model = Sequential::new().push(Linear::new(4, 8, &mut g)).push(ReLU).push(Linear::new(8, 2, &mut g));
//! let (y, layers) = summary::record(|| model.forward(&Tensor::ones(&[1, 4], DType::F32), Mode::Eval));
//! assert_eq!(y?.shape(), &[1, 2]);
//! let rows: Vec<(&str, &[usize], usize)> =
//!     layers.iter().map(|l| (l.path.as_str(), l.output_shape.as_slice(), l.params)).collect();
//! assert_eq!(rows, [("0", &[1, 8][..], 40), ("1", &[1, 8][..], 0), ("2", &[1, 2][..], 18)]);
//! # Ok::<(), nabla_nn::Error>(())
//! ```
//!
//! Only calls through [`Module::forward_named`](crate::Module::forward_named) are seen (that
//! is how containers call their children); the recorder costs one thread-local check per call
//! when it is off.

use std::cell::RefCell;

/// One named module call seen while recording.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRecord {
    /// The dotted path of the module in the model (`features.3`).
    pub path: String,
    /// The module's own description (`Conv2d 64→128`).
    pub describe: String,
    /// Nesting depth: 0 for the root's direct children.
    pub depth: usize,
    /// The shape of the output (empty if the call failed).
    pub output_shape: Vec<usize>,
    /// Parameter elements held directly by this module (not by its children).
    pub params: usize,
    /// Whether this module has named children of its own (a container).
    pub has_children: bool,
}

#[derive(Default)]
struct Recorder {
    records: Vec<LayerRecord>,
    /// Indices into `records` of the calls still running, outermost first.
    open: Vec<usize>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Whether a recording is active on this thread.
pub fn is_recording() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

/// Run `f` with recording on; return its result and the calls seen, in call order (a
/// container before its children). Nested calls to `record` see only their own calls.
pub fn record<R>(f: impl FnOnce() -> R) -> (R, Vec<LayerRecord>) {
    let outer = RECORDER.with(|r| r.borrow_mut().replace(Recorder::default()));
    let out = f();
    let mine = RECORDER.with(|r| std::mem::replace(&mut *r.borrow_mut(), outer));
    (out, mine.map(|m| m.records).unwrap_or_default())
}

/// Note the start of a named call (called by `forward_named` while recording).
pub(crate) fn enter(name: &str, describe: String, params: usize) {
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            let parent = rec.open.last().copied();
            let path = match parent {
                Some(p) => crate::module::join(&rec.records[p].path, name),
                None => name.to_string(),
            };
            if let Some(p) = parent {
                rec.records[p].has_children = true;
            }
            rec.open.push(rec.records.len());
            rec.records.push(LayerRecord {
                path,
                describe,
                depth: rec.open.len() - 1,
                output_shape: Vec::new(),
                params,
                has_children: false,
            });
        }
    })
}

/// Note the end of the innermost open call and its output shape (`None`: it failed).
pub(crate) fn exit(shape: Option<&[usize]>) {
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            if let Some(i) = rec.open.pop() {
                rec.records[i].output_shape = shape.map(<[usize]>::to_vec).unwrap_or_default();
            }
        }
    })
}
