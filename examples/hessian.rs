//! Differentiating a gradient: a Hessian-vector product on a tiny network,
//! checked against finite differences, and a gradient penalty trained for a
//! few steps.
//!
//! `autograd::grad(&loss, &params, true)` returns ∂loss/∂params as `Var`s
//! whose backward was recorded (`create_graph`), so they can be
//! differentiated again:
//! - Hessian-vector product: backward of ∇loss · v leaves H·v in `.grad()`,
//!   the curvature of the loss along v, without forming H (which would be
//!   n × n for n parameters).
//! - Gradient penalty (as in WGAN-GP, or input-gradient regularisation):
//!   loss + λ‖∂loss/∂x‖² punishes a model whose loss is sensitive to its
//!   input x. Training it needs the penalty's gradient with respect to the
//!   weights, a second derivative of the loss.
//!
//! Run: `cargo run --release --example hessian`

use scratchgpt::autograd::{grad, linear};
use scratchgpt::prelude::*;

/// Linear(3, 6) → tanh → Linear(6, 2), in f64 so finite differences are
/// accurate.
struct Net {
    w1: Var,
    b1: Var,
    w2: Var,
}

impl Net {
    fn new(gen: &mut Generator) -> Net {
        let mut uniform = |dims: &[usize]| Var::parameter(Tensor::uniform(dims.to_vec(), -0.8, 0.8, DType::F64, gen));
        Net { w1: uniform(&[6, 3]), b1: uniform(&[6]), w2: uniform(&[2, 6]) }
    }
    fn params(&self) -> Vec<Var> {
        vec![self.w1.clone(), self.b1.clone(), self.w2.clone()]
    }
    fn loss(&self, x: &Var, targets: &Tensor) -> Var {
        let hidden = linear(x, &self.w1, Some(&self.b1)).tanh();
        cross_entropy(&linear(&hidden, &self.w2, None), targets)
    }
}

/// A batch of 5 points in 3-D with a class each.
fn batch(gen: &mut Generator) -> (Tensor, Tensor) {
    let x = Tensor::uniform([5, 3], -1.0, 1.0, DType::F64, gen);
    let targets = Tensor::from_vec(vec![0i64, 1, 1, 0, 1], [5]).unwrap();
    (x, targets)
}

/// H·v by double backward and by central differences of the gradient,
/// (∇L(θ + εv) − ∇L(θ − εv)) / 2ε, each flattened over all parameters.
fn hessian_vector_product() -> (Vec<f64>, Vec<f64>) {
    let mut gen = Generator::seed(7);
    let net = Net::new(&mut gen);
    let (x, targets) = batch(&mut gen);
    let x = Var::constant(x);
    let params = net.params();
    let v: Vec<Tensor> = params.iter().map(|p| Tensor::uniform(p.shape(), -1.0, 1.0, DType::F64, &mut gen)).collect();

    // Double backward: g = ∇L as Vars, then backward of g · v.
    let g = grad(&net.loss(&x, &targets), &params, true);
    let g_dot_v = g.iter().zip(&v).map(|(g, v)| g.mul(&Var::constant(v.clone())).sum_all()).reduce(|a, b| a.add(&b));
    g_dot_v.unwrap().backward();
    let hv: Vec<f64> = params.iter().flat_map(|p| p.grad().unwrap().to_vec::<f64>()).collect();

    // Finite differences: move every parameter along v and back.
    let eps = 1e-6;
    let gradient_at = |scale: f64| -> Vec<f64> {
        let original: Vec<Tensor> = params.iter().map(Var::data).collect();
        for ((p, x0), v) in params.iter().zip(&original).zip(&v) {
            p.set_data(x0.add(&v.mul_scalar(scale)));
        }
        let g = grad(&net.loss(&x, &targets), &params, false);
        for (p, x0) in params.iter().zip(original) {
            p.set_data(x0);
        }
        g.iter().flat_map(|g| g.data().to_vec::<f64>()).collect()
    };
    let (ahead, behind) = (gradient_at(eps), gradient_at(-eps));
    let numeric = ahead.iter().zip(&behind).map(|(a, b)| (a - b) / (2.0 * eps)).collect();
    (hv, numeric)
}

/// The batch, a fresh network (the same for every call) and the loss and
/// penalty ‖∂loss/∂x‖² as a function of the network.
struct PenaltySetup {
    net: Net,
    x: Var,
    targets: Tensor,
}

impl PenaltySetup {
    fn new() -> PenaltySetup {
        let mut gen = Generator::seed(11);
        let net = Net::new(&mut gen);
        let (x, targets) = batch(&mut gen);
        // The input requires a gradient (the penalty is its norm) but is not
        // trained: the optimizer gets only the weights.
        PenaltySetup { net, x: Var::parameter(x), targets }
    }

    /// (loss, ‖∂loss/∂x‖²), the penalty built from the recorded gradient.
    fn loss_and_penalty(&self) -> (Var, Var) {
        let loss = self.net.loss(&self.x, &self.targets);
        let dx = grad(&loss, std::slice::from_ref(&self.x), true).remove(0);
        (loss, dx.square().sum_all())
    }
}

/// ∂penalty/∂w1[0, 0] through the recorded backward, and by central
/// differences of the penalty.
fn penalty_gradient() -> (f64, f64) {
    let setup = PenaltySetup::new();
    let w1 = &setup.net.w1;
    let (_, penalty) = setup.loss_and_penalty();
    let recorded = grad(&penalty, std::slice::from_ref(w1), false)[0].data().to_vec::<f64>()[0];
    let eps = 1e-6;
    let penalty_at = |delta: f64| {
        let w = w1.data();
        let mut nudged = w.to_vec::<f64>();
        nudged[0] += delta;
        w1.set_data(Tensor::from_vec(nudged, w.shape().clone()).unwrap());
        let value = setup.loss_and_penalty().1.item();
        w1.set_data(w);
        value
    };
    (recorded, (penalty_at(eps) - penalty_at(-eps)) / (2.0 * eps))
}

/// Trains loss + λ‖∂loss/∂x‖² with SGD for 30 steps; returns (loss,
/// penalty) before each step and after the last. The penalty's gradient
/// reaches the weights only through the recorded backward.
fn train_with_penalty(lambda: f64) -> Vec<(f64, f64)> {
    let setup = PenaltySetup::new();
    let mut optimizer = Sgd::new(setup.net.params(), 0.5);
    let mut history = Vec::new();
    for _ in 0..30 {
        let (loss, penalty) = setup.loss_and_penalty();
        history.push((loss.item(), penalty.item()));
        optimizer.zero_grad();
        loss.add(&penalty.mul_scalar(lambda)).backward();
        optimizer.step();
    }
    let (loss, penalty) = setup.loss_and_penalty();
    history.push((loss.item(), penalty.item()));
    history
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

fn main() {
    let (hv, numeric) = hessian_vector_product();
    println!("Hessian-vector product over {} parameters (first 6):", hv.len());
    println!("  double backward:     {:?}", hv[..6].iter().map(|v| format!("{v:+.6}")).collect::<Vec<_>>());
    println!("  finite differences:  {:?}", numeric[..6].iter().map(|v| format!("{v:+.6}")).collect::<Vec<_>>());
    println!("  max |difference| = {:.2e}", max_abs_diff(&hv, &numeric));

    let (recorded, numeric) = penalty_gradient();
    println!("\nGradient penalty ‖∂loss/∂x‖², its gradient with respect to a weight:");
    println!("  ∂penalty/∂w1[0,0]: recorded backward {recorded:+.8}, finite differences {numeric:+.8}");
    let (plain, penalised) = (train_with_penalty(0.0), train_with_penalty(5.0));
    println!("Training 30 SGD steps (lr 0.5) on loss alone and on loss + 5·penalty:");
    println!("  step   loss alone (loss, penalty)   with penalty (loss, penalty)");
    for step in (0..plain.len()).step_by(10) {
        let ((l0, p0), (l1, p1)) = (plain[step], penalised[step]);
        println!("  {step:4}   {l0:.4}  {p0:.5}              {l1:.4}  {p1:.5}");
    }
}

#[test]
fn the_hessian_vector_product_matches_finite_differences() {
    let (hv, numeric) = hessian_vector_product();
    assert_eq!(hv.len(), 6 * 3 + 6 + 2 * 6);
    let scale = numeric.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(scale > 1e-2, "the curvature along v should not vanish: {scale}");
    assert!(max_abs_diff(&hv, &numeric) < 1e-6, "{hv:?}\n{numeric:?}");
}

#[test]
fn the_penalty_gradient_reaches_the_weights_and_training_shrinks_it() {
    let (recorded, numeric) = penalty_gradient();
    assert!(recorded.abs() > 1e-4, "∂penalty/∂w should not vanish: {recorded}");
    assert!((recorded - numeric).abs() < 1e-6 * (1.0 + numeric.abs()), "recorded {recorded} vs numeric {numeric}");
    let (plain, penalised) = (train_with_penalty(0.0), train_with_penalty(5.0));
    let (start, plain_end, penalised_end) = (plain[0], *plain.last().unwrap(), *penalised.last().unwrap());
    assert_eq!(start, penalised[0], "both runs start from the same network");
    assert!(penalised_end.1 < plain_end.1, "the penalty kept ‖∂loss/∂x‖² smaller: {penalised_end:?} vs {plain_end:?}");
    assert!(penalised_end.1 < start.1, "and below where it started: {penalised_end:?} vs {start:?}");
    assert!(penalised_end.0 < start.0, "while the loss still fell: {penalised_end:?} vs {start:?}");
}
