//! Second derivatives: `grad(.., create_graph = true)` for every core op,
//! checked by `gradgradcheck` (the double-backward Hessian-vector product
//! against finite differences of the gradient), plus the API's promises:
//! the gradient matches `backward()`, `.grad()` is left alone, the graph is
//! kept, and an op without a differentiable backward says so.

use autograd::gradcheck::second_order::{gradgradcheck, SecondOrderReport};
use autograd::loss::{cross_entropy, mse_loss, IGNORE_INDEX};
use autograd::{dropout, grad, grad_with, layer_norm, linear, no_grad, rms_norm, swiglu, BackwardOp, Var};
use tensor::{CmpOp, DType, Generator, RopeConfig, Tensor};

type OpFn = Box<dyn Fn(&[Var]) -> Var>;

/// Values in ±[0.2, 1.5]: away from the kinks of relu, abs and max at 0.
fn away_from_zero(dims: &[usize], gen: &mut Generator) -> Tensor {
    let mag = Tensor::uniform(dims.to_vec(), 0.2, 1.5, DType::F64, gen);
    let sign = Tensor::uniform(dims.to_vec(), -1.0, 1.0, DType::F64, gen).compare_scalar(0.0, CmpOp::Ge);
    mag.mul(&sign.to_dtype(DType::F64).mul_scalar(2.0).add_scalar(-1.0))
}

fn positive(dims: &[usize], gen: &mut Generator) -> Tensor {
    Tensor::uniform(dims.to_vec(), 0.5, 2.0, DType::F64, gen)
}

/// (name, inputs, f) for every op that has a differentiable backward, at
/// small sizes, with broadcast, transposed and batched operands.
fn cases() -> Vec<(String, Vec<Tensor>, OpFn)> {
    let gen = std::cell::RefCell::new(Generator::seed(11));
    let r = |dims: &[usize]| away_from_zero(dims, &mut gen.borrow_mut());
    let p = |dims: &[usize]| positive(dims, &mut gen.borrow_mut());
    let mut cases: Vec<(String, Vec<Tensor>, OpFn)> = Vec::new();
    let mut add = |name: &str, inputs: Vec<Tensor>, f: OpFn| cases.push((name.to_string(), inputs, f));

    // Elementwise.
    let x = r(&[2, 3]);
    add("neg", vec![x.clone()], Box::new(|v| v[0].neg()));
    add("abs", vec![x.clone()], Box::new(|v| v[0].abs()));
    add("exp", vec![x.clone()], Box::new(|v| v[0].exp()));
    add("tanh", vec![x.clone()], Box::new(|v| v[0].tanh()));
    add("sigmoid", vec![x.clone()], Box::new(|v| v[0].sigmoid()));
    add("relu", vec![x.clone()], Box::new(|v| v[0].relu()));
    add("gelu", vec![x.clone()], Box::new(|v| v[0].gelu()));
    add("mul_scalar", vec![x.clone()], Box::new(|v| v[0].mul_scalar(-2.5)));
    add("add_scalar", vec![x.clone()], Box::new(|v| v[0].add_scalar(0.75)));
    add("square", vec![x.clone()], Box::new(|v| v[0].square()));
    let pos = p(&[2, 3]);
    add("log", vec![pos.clone()], Box::new(|v| v[0].log()));
    add("sqrt", vec![pos.clone()], Box::new(|v| v[0].sqrt()));
    add("powf", vec![pos.clone()], Box::new(|v| v[0].powf(2.5)));
    add("tanh (transposed input)", vec![r(&[3, 2])], Box::new(|v| v[0].t().tanh()));

    // Broadcast binary ops.
    let (a, b, row, col, row1) = (r(&[2, 3]), r(&[2, 3]), r(&[3]), r(&[2, 1]), r(&[1, 3]));
    type Bin = fn(&Var, &Var) -> Var;
    let binary: [(&str, Bin); 5] =
        [("add", Var::add), ("sub", Var::sub), ("mul", Var::mul), ("maximum", Var::maximum), ("minimum", Var::minimum)];
    for (name, f) in binary {
        add(name, vec![a.clone(), b.clone()], Box::new(move |v| f(&v[0], &v[1])));
        add(&format!("{name} (row)"), vec![a.clone(), row.clone()], Box::new(move |v| f(&v[0], &v[1])));
        add(&format!("{name} (column x row)"), vec![col.clone(), row1.clone()], Box::new(move |v| f(&v[0], &v[1])));
    }
    add("div", vec![a.clone(), p(&[2, 3])], Box::new(|v| v[0].div(&v[1])));
    add("div (row)", vec![a.clone(), p(&[3])], Box::new(|v| v[0].div(&v[1])));
    add("mul (same operand twice)", vec![a.clone()], Box::new(|v| v[0].mul(&v[0])));

    // Reductions.
    let x3 = r(&[2, 3, 4]);
    for dim in [0isize, -1] {
        add(&format!("sum(dim={dim})"), vec![x3.clone()], Box::new(move |v| v[0].sum(dim, false)));
        add(&format!("mean(dim={dim}, keepdim)"), vec![x3.clone()], Box::new(move |v| v[0].mean(dim, true)));
        add(&format!("max(dim={dim})"), vec![x3.clone()], Box::new(move |v| v[0].max(dim, false)));
    }
    add("sum_all", vec![x3.clone()], Box::new(|v| v[0].sum_all()));
    add("mean_all", vec![x3.clone()], Box::new(|v| v[0].mean_all()));
    add("var(unbiased)", vec![x3.clone()], Box::new(|v| v[0].var(-1, false, true)));
    add("var(biased, keepdim)", vec![x3.clone()], Box::new(|v| v[0].var(1, true, false)));

    // Softmax family.
    add("softmax(dim=-1)", vec![x3.clone()], Box::new(|v| v[0].softmax(-1)));
    add("softmax(dim=1)", vec![x3.clone()], Box::new(|v| v[0].softmax(1)));
    add("log_softmax(dim=-1)", vec![x3.clone()], Box::new(|v| v[0].log_softmax(-1)));
    add("log_softmax(dim=0)", vec![x3.clone()], Box::new(|v| v[0].log_softmax(0)));

    // Matmul in every arrangement, and linear.
    let (amk, bkn) = (r(&[2, 4]), r(&[4, 3]));
    add("matmul", vec![amk.clone(), bkn.clone()], Box::new(|v| v[0].matmul(&v[1])));
    add("matmul (transposed operands)", vec![r(&[4, 2]), r(&[3, 4])], Box::new(|v| v[0].t().matmul(&v[1].t())));
    add("matmul (vector x matrix)", vec![r(&[4]), bkn.clone()], Box::new(|v| v[0].matmul(&v[1])));
    add("matmul (matrix x vector)", vec![amk.clone(), r(&[4])], Box::new(|v| v[0].matmul(&v[1])));
    add("matmul (vector x vector)", vec![r(&[4]), r(&[4])], Box::new(|v| v[0].matmul(&v[1])));
    add("matmul (batched)", vec![r(&[2, 2, 4]), r(&[2, 4, 3])], Box::new(|v| v[0].matmul(&v[1])));
    add("matmul (broadcast batch)", vec![r(&[2, 1, 2, 4]), r(&[2, 4, 3])], Box::new(|v| v[0].matmul(&v[1])));
    add("matmul (batched x matrix)", vec![r(&[2, 2, 4]), bkn.clone()], Box::new(|v| v[0].matmul(&v[1])));
    let (w, bias) = (r(&[3, 4]), r(&[3]));
    add("linear", vec![r(&[2, 2, 4]), w.clone(), bias], Box::new(|v| linear(&v[0], &v[1], Some(&v[2]))));
    add("linear (no bias)", vec![r(&[2, 4]), w], Box::new(|v| linear(&v[0], &v[1], None)));
    add("linear then tanh", vec![r(&[2, 4]), r(&[3, 4])], Box::new(|v| linear(&v[0], &v[1], None).tanh()));

    // Normalisation and losses.
    let (gamma, beta) = (r(&[4]), r(&[4]));
    add("layer_norm", vec![x3.clone(), gamma, beta], Box::new(|v| layer_norm(&v[0], Some((&v[1], &v[2])), 1e-5)));
    add("layer_norm (no affine)", vec![x3.clone()], Box::new(|v| layer_norm(&v[0], None, 1e-5)));
    // The Llama block's ops.
    let w3 = r(&[x3.dim(-1)]);
    add("rms_norm", vec![x3.clone(), w3], Box::new(|v| rms_norm(&v[0], Some(&v[1]), 1e-6)));
    add("rms_norm (no weight)", vec![x3.clone()], Box::new(|v| rms_norm(&v[0], None, 1e-6)));
    let tables = RopeConfig::new(10000.0, 4).tables(2, 3);
    add("rope", vec![r(&[2, 3, 2, 4])], Box::new(move |v| v[0].rope(&tables)));
    add("silu", vec![r(&[2, 3])], Box::new(|v| v[0].silu()));
    add("swiglu", vec![r(&[2, 3]), r(&[2, 3])], Box::new(|v| swiglu(&v[0], &v[1])));
    let targets = Tensor::from_vec(vec![2i64, IGNORE_INDEX, 0, 3, 1, 3], [6]).unwrap();
    let t3 = targets.reshape(&[2, 3]);
    add("cross_entropy (ignore_index)", vec![r(&[6, 4])], Box::new(move |v| cross_entropy(&v[0], &targets)));
    add("cross_entropy [B,T,C]", vec![r(&[2, 3, 4])], Box::new(move |v| cross_entropy(&v[0], &t3)));
    add("mse_loss", vec![a.clone(), b.clone()], Box::new(|v| mse_loss(&v[0], &v[1])));

    // Views and joins.
    add("reshape", vec![x3.clone()], Box::new(|v| v[0].reshape(&[-1, 4]).exp()));
    add("transpose", vec![x3.clone()], Box::new(|v| v[0].transpose(0, 2)));
    add("permute", vec![x3.clone()], Box::new(|v| v[0].permute(&[2, 0, 1]).sigmoid()));
    add("narrow", vec![x3.clone()], Box::new(|v| v[0].narrow(2, 1, 2).exp()));
    add("expand", vec![r(&[2, 1])], Box::new(|v| v[0].expand([2, 3]).tanh()));
    add("squeeze/unsqueeze", vec![r(&[2, 1])], Box::new(|v| v[0].squeeze(1).unsqueeze(0)));
    add("contiguous", vec![r(&[3, 2])], Box::new(|v| v[0].t().contiguous().exp()));
    add("cat", vec![a.clone(), r(&[2, 2])], Box::new(|v| Var::cat(&[v[0].clone(), v[1].clone()], 1).tanh()));
    add("stack", vec![a.clone(), b.clone()], Box::new(|v| Var::stack(&[v[0].clone(), v[1].clone()], 1)));
    let mask = r(&[2, 3]).compare_scalar(0.0, CmpOp::Gt);
    add("where", vec![a.clone(), row.clone()], Box::new(move |v| Var::where_cond(&mask, &v[0].exp(), &v[1])));
    add("dropout", vec![x3], Box::new(|v| dropout(&v[0], 0.3, true, &mut Generator::seed(3)).exp()));
    cases
}

#[test]
fn every_core_op_has_correct_second_derivatives() {
    let mut failures = Vec::new();
    let cases = cases();
    for (name, inputs, f) in &cases {
        let report = gradgradcheck(f, inputs);
        if !report.pass {
            failures.push(format!("{name}: {report}"));
        }
    }
    assert!(failures.is_empty(), "gradgradcheck failures:\n{}", failures.join("\n"));
    assert!(cases.len() > 60, "only {} cases", cases.len());
}

#[test]
fn the_hessian_vector_product_of_a_cubic_is_six_x_v() {
    // f = Σ x³: ∇f = 3x², H = diag(6x), so H v = 6 x ⊙ v.
    let x = Var::parameter(Tensor::from_vec(vec![0.5, -1.0, 2.0], [3]).unwrap());
    let v = Tensor::from_vec(vec![1.0, 2.0, -3.0], [3]).unwrap();
    let g = grad(&x.powf(3.0).sum_all(), std::slice::from_ref(&x), true).remove(0);
    assert_eq!(g.data().to_vec::<f64>(), vec![0.75, 3.0, 12.0]);
    g.mul(&Var::constant(v)).sum_all().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), vec![3.0, -12.0, -36.0]);
}

/// y = x³ with a right `backward` (3x²·dy on the saved x) and a
/// `backward_graph` that is wrong in the way `Mistake` says.
struct Cube {
    x: Tensor,
    mistake: Mistake,
}
#[derive(Clone, Copy)]
enum Mistake {
    None,
    /// 3x² from the numbers of x: the right first derivative, but not
    /// recorded as a function of x, so the second derivative misses 6x.
    DetachedInput,
    /// 2x² instead of 3x².
    WrongFactor,
}
impl BackwardOp for Cube {
    fn name(&self) -> &'static str {
        "cube"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.mul(&self.x.square().mul_scalar(3.0)))]
    }
    fn backward_graph(&self, g: &Var, x: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        let x = &x[0];
        let dx = match self.mistake {
            Mistake::None => g.mul(&x.square().mul_scalar(3.0)),
            Mistake::DetachedInput => g.mul(&x.detach().square().mul_scalar(3.0)),
            Mistake::WrongFactor => g.mul(&x.square().mul_scalar(2.0)),
        };
        Some(vec![Some(dx)])
    }
}

fn check_cube(mistake: Mistake) -> SecondOrderReport {
    let x = Tensor::from_vec(vec![0.5, -1.0, 1.5, 2.0], [2, 2]).unwrap();
    gradgradcheck(
        move |v| {
            let x = v[0].data();
            Var::from_op(x.powf(3.0), &[&v[0]], || Cube { x, mistake })
        },
        &[x],
    )
}

#[test]
fn a_wrong_second_derivative_is_caught() {
    assert!(check_cube(Mistake::None).pass, "{}", check_cube(Mistake::None));
    let detached = check_cube(Mistake::DetachedInput);
    assert!(!detached.pass && detached.first_order.pass, "a detached derivative must fail on Hv only: {detached}");
    let wrong = check_cube(Mistake::WrongFactor);
    assert!(!wrong.first_order.pass, "a wrong first derivative must fail the first-order comparison: {wrong}");
}

#[test]
#[should_panic(expected = "`gather` has no differentiable backward")]
fn an_op_without_a_differentiable_backward_names_itself() {
    let x = Var::parameter(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap());
    let picked = x.exp().gather(0, &Tensor::from_vec(vec![2i64, 0], [2]).unwrap());
    grad(&picked.sum_all(), &[x], true);
}

/// A two-layer network's loss and its parameters.
fn tiny_net() -> (Var, Vec<Var>) {
    let mut gen = Generator::seed(5);
    let x = Var::constant(Tensor::uniform([4, 3], -1.0, 1.0, DType::F64, &mut gen));
    let w1 = Var::parameter(Tensor::uniform([5, 3], -1.0, 1.0, DType::F64, &mut gen));
    let w2 = Var::parameter(Tensor::uniform([2, 5], -1.0, 1.0, DType::F64, &mut gen));
    let targets = Tensor::from_vec(vec![0i64, 1, 1, 0], [4]).unwrap();
    let loss = cross_entropy(&linear(&linear(&x, &w1, None).gelu(), &w2, None), &targets);
    (loss, vec![w1, w2])
}

#[test]
fn grad_matches_backward_and_leaves_dot_grad_alone() {
    let (loss, params) = tiny_net();
    let plain = grad(&loss, &params, false);
    let (loss, params) = tiny_net();
    let recorded = grad(&loss, &params, true);
    assert!(params.iter().all(|p| p.grad().is_none()), "grad must not fill .grad()");
    assert!(recorded.iter().all(Var::requires_grad), "create_graph gradients carry a graph");
    assert!(plain.iter().all(|g| !g.requires_grad()), "plain gradients are constants");
    let (loss, params) = tiny_net();
    loss.backward();
    for ((p, a), b) in params.iter().zip(&plain).zip(&recorded) {
        let reference = p.grad().unwrap().to_vec::<f64>();
        for (got, want) in [(a, &reference), (b, &reference)] {
            let got = got.data().to_vec::<f64>();
            assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12), "{got:?} vs {want:?}");
        }
    }
}

#[test]
fn create_graph_keeps_the_graph_for_a_later_backward() {
    let (loss, params) = tiny_net();
    let g = grad(&loss, &params, true);
    // A gradient penalty: the loss plus the squared norm of its gradient,
    // backpropagated through both the forward graph and the recorded one.
    let penalty = g.iter().map(|g| g.square().sum_all()).reduce(|a, b| a.add(&b)).unwrap();
    loss.add(&penalty.mul_scalar(0.1)).backward();
    assert!(params.iter().all(|p| p.grad().is_some()));
}

#[test]
#[should_panic(expected = "second time")]
fn a_plain_grad_frees_the_graph_like_backward() {
    let (loss, params) = tiny_net();
    grad(&loss, &params, false);
    loss.backward();
}

#[test]
fn create_graph_records_even_under_no_grad_and_unused_inputs_get_zeros() {
    let x = Var::parameter(Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
    let unused = Var::parameter(Tensor::from_vec(vec![5.0, 6.0, 7.0], [3]).unwrap());
    let y = x.exp().sum_all();
    let g = no_grad(|| grad(&y, &[x.clone(), unused], true));
    assert!(g[0].requires_grad(), "the recorded backward must be recorded inside no_grad too");
    assert_eq!(g[1].data().to_vec::<f64>(), vec![0.0; 3]);
    // grad_with: a vector output weighted by a grad_output.
    let (x2, w) = (x.square(), Var::constant(Tensor::from_vec(vec![1.0, -1.0], [2]).unwrap()));
    let g = grad_with(&x2, &w, std::slice::from_ref(&x), false).remove(0);
    assert_eq!(g.data().to_vec::<f64>(), vec![2.0, -4.0]);
}
