//! Graphviz DOT export of the graph behind a tensor.

use super::{Edge, GradMeta};
use crate::Tensor;
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Arc;

/// The recorded graph behind `output` as Graphviz DOT: one box per op with its output
/// shape, leaves as ellipses (named from `names` where given), constants and detached
/// inputs dashed.
pub fn to_dot(output: &Tensor, names: &[(&str, &Tensor)]) -> String {
    let mut s = String::from("digraph autograd {\n  rankdir=BT;\n  node [fontname=\"monospace\"];\n");
    let Some(root) = output.grad_meta() else {
        let _ = writeln!(s, "  const [label=\"{:?} (no graph)\", style=dashed];", output.shape());
        s.push_str("}\n");
        return s;
    };
    let name_of = |m: &GradMeta| {
        names
            .iter()
            .find(|(_, t)| t.grad_meta().is_some_and(|tm| tm.id == m.id))
            .map(|(n, _)| n.to_string())
    };
    let mut seen = HashSet::new();
    let mut stack: Vec<Arc<GradMeta>> = vec![root.clone()];
    let mut consts = 0usize;
    while let Some(m) = stack.pop() {
        if !seen.insert(m.id) {
            continue;
        }
        match &m.node {
            None => {
                let label = name_of(&m).unwrap_or_else(|| "leaf".into());
                let _ = writeln!(
                    s,
                    "  n{} [label=\"{} {:?}\", shape=ellipse, style=filled, fillcolor=lightblue];",
                    m.id, label, m.shape
                );
            }
            Some(node) => {
                let _ = writeln!(s, "  n{} [label=\"{} {:?}\", shape=box];", m.id, node.name, m.shape);
                for e in &node.inputs {
                    match e {
                        Edge::Grad(i) => {
                            let _ = writeln!(s, "  n{} -> n{};", i.id, m.id);
                            stack.push(i.clone());
                        }
                        Edge::Const { shape, detached } => {
                            consts += 1;
                            let what = if *detached { "detached" } else { "const" };
                            let _ = writeln!(
                                s,
                                "  c{consts} [label=\"{what} {shape:?}\", shape=note, style=dashed];\n  c{consts} -> n{} [style=dashed];",
                                m.id
                            );
                        }
                    }
                }
            }
        }
    }
    s.push_str("}\n");
    s
}
