//! Autograd semantics, end to end: closed-form backprop, path sums, detached paths,
//! higher-order derivatives, `grad` on chosen inputs, strided inputs, errors, DOT export.

use nabla_core::autograd::to_dot;
use nabla_core::{grad, no_grad, BackwardOptions, DType, Error, Generator, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
}

fn leaf(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap().set_requires_grad(true)
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>().unwrap()
}

/// |got − want| ≤ tol·max(1, |want|) for every element.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

fn sigma(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The lecture's network: p = W1ᵀx + b1, q = σ(p), a = W2ᵀq + b2, ŷ = σ(a),
/// J = ½ Σ_k (t_k − ŷ_k)². Autodiff must equal the backprop formulas worked by hand.
#[test]
fn two_layer_network_matches_closed_form_backprop() {
    let (n, m, kk) = (3, 4, 2);
    let xv = vals(&randn(&[n], 1));
    let w1v = vals(&randn(&[n, m], 2));
    let b1v = vals(&randn(&[m], 3));
    let w2v = vals(&randn(&[m, kk], 4));
    let b2v = vals(&randn(&[kk], 5));
    let tv = vec![0.2, 0.9];

    let x = Tensor::from_slice(&xv, &[n]).unwrap();
    let t = Tensor::from_slice(&tv, &[kk]).unwrap();
    let (w1, b1) = (leaf(&w1v, &[n, m]), leaf(&b1v, &[m]));
    let (w2, b2) = (leaf(&w2v, &[m, kk]), leaf(&b2v, &[kk]));
    let q = x.matmul(&w1).unwrap().add(&b1).unwrap().sigmoid().unwrap();
    let yhat = q.matmul(&w2).unwrap().add(&b2).unwrap().sigmoid().unwrap();
    let j = t
        .sub(&yhat)
        .unwrap()
        .square()
        .unwrap()
        .sum_all()
        .unwrap()
        .mul_scalar(0.5)
        .unwrap();
    let grads = j.backward().unwrap();

    // Forward by hand.
    let p: Vec<f64> = (0..m)
        .map(|l| (0..n).map(|i| w1v[i * m + l] * xv[i]).sum::<f64>() + b1v[l])
        .collect();
    let qh: Vec<f64> = p.iter().map(|&z| sigma(z)).collect();
    let a: Vec<f64> = (0..kk)
        .map(|k| (0..m).map(|l| w2v[l * kk + k] * qh[l]).sum::<f64>() + b2v[k])
        .collect();
    let y: Vec<f64> = a.iter().map(|&z| sigma(z)).collect();
    let jh: f64 = (0..kk).map(|k| 0.5 * (tv[k] - y[k]).powi(2)).sum();
    assert_close("J", &[j.item().unwrap()], &[jh], 1e-12);

    // Backward by hand: δ_k = −(t_k − ŷ_k) ŷ_k (1 − ŷ_k), ∂J/∂W2_{l'k} = δ_k q_{l'},
    // δ'_l = q_l (1 − q_l) Σ_k W2_{lk} δ_k, ∂J/∂W1_{il} = δ'_l x_i.
    let d2: Vec<f64> = (0..kk).map(|k| -(tv[k] - y[k]) * y[k] * (1.0 - y[k])).collect();
    let mut gw2 = vec![0.0; m * kk];
    for l in 0..m {
        for k in 0..kk {
            gw2[l * kk + k] = d2[k] * qh[l];
        }
    }
    let d1: Vec<f64> = (0..m)
        .map(|l| qh[l] * (1.0 - qh[l]) * (0..kk).map(|k| w2v[l * kk + k] * d2[k]).sum::<f64>())
        .collect();
    let mut gw1 = vec![0.0; n * m];
    for i in 0..n {
        for l in 0..m {
            gw1[i * m + l] = d1[l] * xv[i];
        }
    }
    assert_close("dJ/dW2", &vals(grads.get(&w2).unwrap()), &gw2, 1e-10);
    assert_close("dJ/db2", &vals(grads.get(&b2).unwrap()), &d2, 1e-10);
    assert_close("dJ/dW1", &vals(grads.get(&w1).unwrap()), &gw1, 1e-10);
    assert_close("dJ/db1", &vals(grads.get(&b1).unwrap()), &d1, 1e-10);
    assert_eq!(grads.len(), 4, "only the four parameters are leaves that require grad");
}

#[test]
fn gradient_sums_over_all_paths() {
    let xv = [0.3, -1.2, 0.0, 2.0];
    let x = leaf(&xv, &[4]);
    // x reaches y through h (used three times), through 3x and through x·x.
    let h = x.exp().unwrap();
    let y = h
        .mul(&h)
        .unwrap()
        .add(&h)
        .unwrap()
        .add(&x.mul_scalar(3.0).unwrap())
        .unwrap()
        .add(&x.mul(&x).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let g = y.backward().unwrap();
    let want: Vec<f64> = xv
        .iter()
        .map(|&x| 2.0 * (2.0 * x).exp() + x.exp() + 3.0 + 2.0 * x)
        .collect();
    assert_close("dy/dx", &vals(g.get(&x).unwrap()), &want, 1e-12);

    // A broadcast operand is reached once per copy: its gradient sums over them.
    let b = leaf(&[1.0, 2.0, 3.0], &[3]);
    let a = leaf(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let g = a.mul(&b).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(g.get(&b).unwrap()), vec![5.0, 7.0, 9.0]);
    assert_eq!(vals(g.get(&a).unwrap()), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
}

#[test]
fn detached_or_no_grad_path_contributes_nothing() {
    let xv = [0.5, -0.7, 1.3, 2.0];
    let x = leaf(&xv, &[4]);
    // Fresh subgraphs for each backward: a plain backward frees the graph it walks.
    let u = || x.exp().unwrap();
    let v = || x.square().unwrap();
    let grad_of = |y: Tensor| vals(y.sum_all().unwrap().backward().unwrap().get(&x).unwrap());

    let full = grad_of(u().mul(&v()).unwrap());
    let through_v = grad_of(u().detach().mul(&v()).unwrap());
    let through_u = grad_of(u().mul(&v().detach()).unwrap());
    // Closed forms: d(eˣ x²)/dx = eˣ x² + 2x eˣ, split by path.
    let want_v: Vec<f64> = xv.iter().map(|&x| 2.0 * x * x.exp()).collect();
    let want_u: Vec<f64> = xv.iter().map(|&x| x * x * x.exp()).collect();
    assert_close("via v only", &through_v, &want_v, 1e-12);
    assert_close("via u only", &through_u, &want_u, 1e-12);
    let sum: Vec<f64> = through_u.iter().zip(&through_v).map(|(a, b)| a + b).collect();
    assert_close("both paths", &full, &sum, 1e-12);

    // Exactly the other path: the same as with u a plain constant.
    let u_const = Tensor::from_vec(vals(&u()), &[4]).unwrap();
    assert_eq!(through_v, grad_of(u_const.mul(&v()).unwrap()));

    // The same with u computed in a no_grad scope.
    let u_ng = {
        let _guard = no_grad();
        x.exp().unwrap()
    };
    assert!(!u_ng.requires_grad());
    assert!(x.exp().unwrap().requires_grad(), "grad mode is back after the scope");
    assert_eq!(through_v, grad_of(u_ng.mul(&v()).unwrap()));
}

#[test]
fn second_and_third_derivatives_of_a_cube() {
    let xv = [0.5, -1.5, 2.0];
    let x = leaf(&xv, &[3]);
    let cubes = [x.mul(&x).unwrap().mul(&x).unwrap(), x.powf(3.0).unwrap()];
    for y in &cubes {
        let y = y.sum_all().unwrap();
        // grad(.., create_graph = true), twice and three times.
        let g1 = grad(&[&y], None, &[&x], true).unwrap()[0].clone().unwrap();
        assert!(g1.requires_grad(), "create_graph records the backward pass");
        assert_close("3x²", &vals(&g1), &xv.map(|x| 3.0 * x * x), 1e-12);
        let g2 = grad(&[&g1.sum_all().unwrap()], None, &[&x], true).unwrap()[0]
            .clone()
            .unwrap();
        assert_close("6x", &vals(&g2), &xv.map(|x| 6.0 * x), 1e-12);
        let g3 = grad(&[&g2.sum_all().unwrap()], None, &[&x], false).unwrap()[0]
            .clone()
            .unwrap();
        assert_close("6", &vals(&g3), &[6.0; 3], 1e-12);
        assert!(!g3.requires_grad());

        // backward_with(create_graph), then a plain backward of the gradient.
        let opts = BackwardOptions {
            create_graph: true,
            retain_graph: false,
        };
        let g1 = y
            .backward_with(&Tensor::ones_like(&y), opts)
            .unwrap()
            .get(&x)
            .unwrap()
            .clone();
        let g2 = g1.sum_all().unwrap().backward().unwrap();
        assert_close(
            "6x via backward_with",
            &vals(g2.get(&x).unwrap()),
            &xv.map(|x| 6.0 * x),
            1e-12,
        );
    }
}

#[test]
fn hessian_vector_product_matches_closed_form() {
    // f(x) = Σ_{i<n−1} x_i² x_{i+1}: ∂f/∂x_j = 2 x_j x_{j+1} + x_{j−1}²,
    // H_jj = 2 x_{j+1}, H_{j,j+1} = H_{j+1,j} = 2 x_j.
    let n = 6;
    let xv = vals(&randn(&[n], 11));
    let vv = vals(&randn(&[n], 12));
    let x = leaf(&xv, &[n]);
    let v = Tensor::from_slice(&vv, &[n]).unwrap();
    let head = x.narrow(0, 0, n - 1).unwrap();
    let tail = x.narrow(0, 1, n - 1).unwrap();
    let f = head.square().unwrap().mul(&tail).unwrap().sum_all().unwrap();

    let g = grad(&[&f], None, &[&x], true).unwrap()[0].clone().unwrap();
    let mut want_g = vec![0.0; n];
    let mut hv = vec![0.0; n];
    for j in 0..n {
        if j + 1 < n {
            want_g[j] += 2.0 * xv[j] * xv[j + 1];
            hv[j] += 2.0 * xv[j + 1] * vv[j] + 2.0 * xv[j] * vv[j + 1];
        }
        if j > 0 {
            want_g[j] += xv[j - 1] * xv[j - 1];
            hv[j] += 2.0 * xv[j - 1] * vv[j - 1];
        }
    }
    assert_close("∇f", &vals(&g), &want_g, 1e-12);
    let gv = g.mul(&v).unwrap().sum_all().unwrap();
    let got = grad(&[&gv], None, &[&x], false).unwrap()[0].clone().unwrap();
    assert_close("Hv", &vals(&got), &hv, 1e-12);
}

#[test]
fn grad_returns_only_the_requested_inputs() {
    let xv = vals(&randn(&[2, 3], 21));
    let wv = vals(&randn(&[3, 2], 22));
    let x = leaf(&xv, &[2, 3]);
    let w = leaf(&wv, &[3, 2]);
    let z = leaf(&[1.0, 2.0], &[2]);
    let h = x.matmul(&w).unwrap();
    let y = h.tanh().unwrap().sum_all().unwrap().add(&w.sum_all().unwrap()).unwrap();

    let got = grad(&[&y], None, &[&w, &h, &z], false).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got[2].is_none(), "y does not depend on z");
    let (gw, gh) = (got[0].clone().unwrap(), got[1].clone().unwrap());
    assert!(!gw.requires_grad() && !gh.requires_grad());

    // dy/dh = 1 − tanh²(h); dy/dw = xᵀ·dy/dh + 1.
    let hv = vals(&h);
    let dh: Vec<f64> = hv.iter().map(|v| 1.0 - v.tanh().powi(2)).collect();
    let mut dw = vec![1.0; 6];
    for k in 0..3 {
        for j in 0..2 {
            for i in 0..2 {
                dw[k * 2 + j] += xv[i * 3 + k] * dh[i * 2 + j];
            }
        }
    }
    assert_close("dy/dh", &vals(&gh), &dh, 1e-12);
    assert_close("dy/dw", &vals(&gw), &dw, 1e-12);

    // An upstream gradient weights the output; a constant input is an error.
    let two = Tensor::scalar(2.0f64);
    let got = grad(&[&y], Some(&[&two]), &[&h], false).unwrap()[0].clone().unwrap();
    assert_close(
        "2·dy/dh",
        &vals(&got),
        &dh.iter().map(|d| 2.0 * d).collect::<Vec<_>>(),
        1e-12,
    );
    let c = Tensor::ones(&[2], DType::F64);
    assert!(grad(&[&y], None, &[&c], false).is_err());
}

/// A chain of ops: broadcasting mul, sigmoid, add, matmul, tanh, reduction, exp.
fn chain(x: &Tensor, e: &Tensor, w: &Tensor) -> Tensor {
    let z = x
        .mul(e)
        .unwrap()
        .add(&x.sigmoid().unwrap())
        .unwrap()
        .matmul(w)
        .unwrap()
        .tanh()
        .unwrap();
    let s = z.sum(&[0], false).unwrap().square().unwrap().sum_all().unwrap();
    s.add(&x.exp().unwrap().mean_all().unwrap()).unwrap()
}

#[test]
fn strided_and_broadcast_inputs_match_contiguous_copies() {
    let base_x = randn(&[4, 5], 31); // x = baseᵀ[1..4]: strides [1, 5], offset 5
    let base_e = randn(&[4], 32); // e = expand to [3, 4]: stride 0
    let base_w = randn(&[2, 4], 33); // w = baseᵀ: [4, 2]
    let x = base_x.t().unwrap().narrow(0, 1, 3).unwrap();
    let e = base_e.expand([3, 4]).unwrap();
    let w = base_w.t().unwrap();
    assert!(!x.is_contiguous() && !e.is_contiguous() && !w.is_contiguous());
    assert_eq!(e.strides()[0], 0);

    let copy = |t: &Tensor| Tensor::from_vec(vals(t), t.shape()).unwrap().set_requires_grad(true);
    let (xc, ec, wc) = (copy(&x), copy(&e), copy(&w));
    let want = chain(&xc, &ec, &wc);
    let want_g = want.backward().unwrap();

    // The strided tensors themselves as leaves.
    let (xs, es, ws) = (
        x.set_requires_grad(true),
        e.set_requires_grad(true),
        w.set_requires_grad(true),
    );
    assert!(!xs.is_contiguous() && es.strides()[0] == 0);
    let got = chain(&xs, &es, &ws);
    assert_close("value", &[got.item().unwrap()], &[want.item().unwrap()], 1e-12);
    let g = got.backward().unwrap();
    for (name, s, c) in [("x", &xs, &xc), ("e", &es, &ec), ("w", &ws, &wc)] {
        let gs = g.get(s).unwrap();
        assert_eq!(gs.shape(), c.shape(), "grad of {name}");
        assert_close(name, &vals(gs), &vals(want_g.get(c).unwrap()), 1e-12);
    }

    // Leaves behind the views: the gradient lands in the right places of the bases.
    let (bx, be, bw) = (
        base_x.set_requires_grad(true),
        base_e.set_requires_grad(true),
        base_w.set_requires_grad(true),
    );
    let xv = bx.t().unwrap().narrow(0, 1, 3).unwrap();
    let g = chain(&xv, &be.expand([3, 4]).unwrap(), &bw.t().unwrap())
        .backward()
        .unwrap();
    let gbx = g.get(&bx).unwrap();
    assert_eq!(gbx.shape(), &[4, 5]);
    let gx_c = vals(want_g.get(&xc).unwrap());
    let gbx_v = vals(gbx);
    for r in 0..4 {
        for c in 0..5 {
            // base[r, c] is x[c − 1, r] for c in 1..4, and unused otherwise.
            let want = if (1..4).contains(&c) {
                gx_c[(c - 1) * 4 + r]
            } else {
                0.0
            };
            assert_close("base_x", &[gbx_v[r * 5 + c]], &[want], 1e-12);
        }
    }
    let ge_c = vals(want_g.get(&ec).unwrap());
    let col_sums: Vec<f64> = (0..4).map(|j| (0..3).map(|i| ge_c[i * 4 + j]).sum()).collect();
    assert_close("base_e", &vals(g.get(&be).unwrap()), &col_sums, 1e-12);
    let gw_c = want_g.get(&wc).unwrap().t().unwrap();
    assert_close("base_w", &vals(g.get(&bw).unwrap()), &vals(&gw_c), 1e-12);
}

#[test]
fn backward_of_a_non_scalar_needs_an_upstream_gradient() {
    let x = randn(&[2, 3], 41).set_requires_grad(true);
    let y = x.mul_scalar(2.0).unwrap();
    let err = y.backward().err().expect("non-scalar backward must fail").to_string();
    assert!(err.contains("scalar") && err.contains("[2, 3]"), "{err}");
    // With an upstream gradient it works, and a wrong-shaped one is named.
    let g = y
        .backward_with(&Tensor::ones(&[2, 3], DType::F64), BackwardOptions::default())
        .unwrap();
    assert_eq!(vals(g.get(&x).unwrap()), vec![2.0; 6]);
    let y = x.mul_scalar(2.0).unwrap();
    let err = y
        .backward_with(&Tensor::ones(&[3, 2], DType::F64), BackwardOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::ShapeMismatch { lhs, rhs, .. } if lhs == &[2, 3] && rhs == &[3, 2]),
        "{err}"
    );
}

#[test]
fn second_backward_through_a_freed_graph_fails_unless_retained() {
    let x = leaf(&[1.0, 2.0], &[2]);
    let y = x.exp().unwrap().sum_all().unwrap();
    y.backward().unwrap();
    let err = y.backward().err().expect("the graph was freed").to_string();
    assert!(err.contains("retain_graph"), "{err}");

    let y = x.exp().unwrap().sum_all().unwrap();
    let keep = BackwardOptions {
        create_graph: false,
        retain_graph: true,
    };
    let first = vals(y.backward_with(&Tensor::ones_like(&y), keep).unwrap().get(&x).unwrap());
    let second = vals(y.backward().unwrap().get(&x).unwrap());
    assert_eq!(first, second);
    assert_close("eˣ", &first, &[1f64.exp(), 2f64.exp()], 1e-12);
    assert!(y.backward().is_err(), "the plain backward freed it");
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let a = Tensor::zeros(&[2, 3], DType::F32);
    let b = Tensor::zeros(&[4, 5], DType::F32);
    let err = a.add(&b).err().unwrap();
    assert!(
        matches!(&err, Error::ShapeMismatch { op: "add", lhs, rhs, .. } if lhs == &[2, 3] && rhs == &[4, 5]),
        "{err:?}"
    );
    let msg = a.matmul(&b).err().unwrap().to_string();
    assert!(
        msg.contains("matmul") && msg.contains("[2, 3]") && msg.contains("[4, 5]"),
        "{msg}"
    );
    let msg = a.mul(&Tensor::zeros(&[3, 2], DType::F32)).err().unwrap().to_string();
    assert!(
        msg.contains("mul") && msg.contains("[2, 3]") && msg.contains("[3, 2]"),
        "{msg}"
    );
}

#[test]
fn dot_export_shows_ops_shapes_leaves_and_detached_inputs() {
    let x = randn(&[2, 3], 51).set_requires_grad(true);
    let w = randn(&[3, 4], 52).set_requires_grad(true);
    let d = randn(&[4], 53)
        .set_requires_grad(true)
        .mul_scalar(2.0)
        .unwrap()
        .detach();
    let c = Tensor::ones(&[4], DType::F64);
    let y = x.matmul(&w).unwrap().add(&d).unwrap().relu().unwrap().mul(&c).unwrap();
    let dot = to_dot(&y, &[("x", &x), ("w", &w)]);

    assert!(dot.starts_with("digraph"), "{dot}");
    let boxes: Vec<&str> = dot.lines().filter(|l| l.contains("shape=box")).collect();
    assert_eq!(boxes.len(), 4, "one node per op:\n{dot}");
    for op in ["matmul [2, 4]", "add [2, 4]", "relu [2, 4]", "mul [2, 4]"] {
        assert_eq!(
            boxes.iter().filter(|l| l.contains(&format!("\"{op}\""))).count(),
            1,
            "{op}:\n{dot}"
        );
    }
    assert!(
        dot.contains("x [2, 3]") && dot.contains("w [3, 4]"),
        "leaf names:\n{dot}"
    );
    let detached: Vec<&str> = dot.lines().filter(|l| l.contains("detached [4]")).collect();
    assert_eq!(detached.len(), 1, "{dot}");
    assert!(detached[0].contains("style=dashed"), "{dot}");
    assert!(dot.contains("const [4]"), "a plain constant is marked as such:\n{dot}");
    // matmul 2 inputs, add 2, relu 1, mul 2.
    assert_eq!(dot.lines().filter(|l| l.contains("->")).count(), 7, "{dot}");
    assert!(dot.trim_end().ends_with('}'));
}
