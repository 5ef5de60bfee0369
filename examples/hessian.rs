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

/// What training with the penalty shows.
struct PenaltyRun {
    /// (loss, penalty) before each step.
    steps: Vec<(f64, f64)>,
    /// ∂penalty/∂w1[0, 0] from the recorded backward, and by finite
    /// differences of the penalty.
    penalty_grad: f64,
    penalty_grad_numeric: f64,
}

/// Trains loss + λ‖∂loss/∂x‖² with SGD; the penalty's gradient reaches the
/// weights only through the recorded backward.
fn gradient_penalty() -> PenaltyRun {
    let mut gen = Generator::seed(11);
    let net = Net::new(&mut gen);
    let (x, targets) = batch(&mut gen);
    // The input requires a gradient (the penalty is its norm) but is not
    // trained: the optimizer gets only the weights.
    let x = Var::parameter(x);
    let lambda = 5.0;
    let penalty_of = |net: &Net| -> (Var, Var) {
        let loss = net.loss(&x, &targets);
        let dx = grad(&loss, std::slice::from_ref(&x), true).remove(0);
        (loss, dx.square().sum_all())
    };

    // The penalty's own gradient with respect to one weight, recorded
    // backward against finite differences.
    let (_, penalty) = penalty_of(&net);
    let penalty_grad = grad(&penalty, std::slice::from_ref(&net.w1), false)[0].data().to_vec::<f64>()[0];
    let eps = 1e-6;
    let penalty_at = |delta: f64| {
        let w = net.w1.data();
        let mut nudged = w.to_vec::<f64>();
        nudged[0] += delta;
        net.w1.set_data(Tensor::from_vec(nudged, w.shape().clone()).unwrap());
        let value = penalty_of(&net).1.item();
        net.w1.set_data(w);
        value
    };
    let penalty_grad_numeric = (penalty_at(eps) - penalty_at(-eps)) / (2.0 * eps);

    let mut optimizer = Sgd::new(net.params(), 0.5);
    let mut steps = Vec::new();
    for _ in 0..30 {
        let (loss, penalty) = penalty_of(&net);
        steps.push((loss.item(), penalty.item()));
        optimizer.zero_grad();
        loss.add(&penalty.mul_scalar(lambda)).backward();
        optimizer.step();
    }
    PenaltyRun { steps, penalty_grad, penalty_grad_numeric }
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

    let run = gradient_penalty();
    println!("\nGradient penalty: loss + 5·‖∂loss/∂x‖², SGD lr 0.5");
    println!("  ∂penalty/∂w1[0,0]: recorded backward {:+.8}, finite differences {:+.8}", run.penalty_grad, run.penalty_grad_numeric);
    for (step, (loss, penalty)) in run.steps.iter().enumerate().step_by(5) {
        println!("  step {step:2}: loss {loss:.4}  penalty {penalty:.5}");
    }
    let (last_loss, last_penalty) = run.steps.last().unwrap();
    println!("  step {:2}: loss {last_loss:.4}  penalty {last_penalty:.5}", run.steps.len() - 1);
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
    let run = gradient_penalty();
    let (g, n) = (run.penalty_grad, run.penalty_grad_numeric);
    assert!(g.abs() > 1e-4, "∂penalty/∂w should not vanish: {g}");
    assert!((g - n).abs() < 1e-6 * (1.0 + n.abs()), "recorded {g} vs numeric {n}");
    let (first, last) = (run.steps[0], *run.steps.last().unwrap());
    assert!(last.0 + 5.0 * last.1 < first.0 + 5.0 * first.1, "the objective fell: {first:?} → {last:?}");
    assert!(last.1 < first.1, "the penalty fell: {first:?} → {last:?}");
}
