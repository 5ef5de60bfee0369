//! Where finite differences cannot look: ties, empty means, out-of-range
//! targets, logs at 0, one-element variances, constant rows. Each test pins
//! the value PyTorch 2.x gives (checked against `torch` in f64) or says how
//! ours differs and why.

use autograd::loss::{binary_cross_entropy, cross_entropy, IGNORE_INDEX};
use autograd::{layer_norm, Var};
use tensor::{DType, Tensor};

fn f64_var(values: &[f64], dims: &[usize]) -> Var {
    Var::parameter(Tensor::from_vec(values.to_vec(), dims.to_vec()).unwrap())
}

fn grad_of(x: &Var) -> Vec<f64> {
    x.grad().expect("a gradient").to_vec::<f64>()
}

fn assert_close(got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * w.abs().max(1.0), "element {i}: got {g}, want {w} (all: {got:?})");
    }
}

/// `torch.max(x, dim)` returns the first maximal index and sends the whole
/// gradient there (a tie has no derivative, so finite differences cannot
/// check this; the value is the rule).
#[test]
fn max_along_a_dim_sends_a_tied_gradient_to_the_first_maximum() {
    let x = f64_var(&[1.0, 3.0, 3.0, 2.0, 2.0, 0.0], &[2, 3]);
    x.max(1, false).sum_all().backward();
    assert_eq!(grad_of(&x), [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    // Along dim 0 with keepdim: the column [5, 5] ties too.
    let y = f64_var(&[5.0, 1.0, 5.0, 2.0], &[2, 2]);
    y.max(0, true).sum_all().backward();
    assert_eq!(grad_of(&y), [1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn argmax_returns_the_first_of_tied_maxima() {
    let x = Tensor::new_as([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], DType::F64).unwrap();
    assert_eq!(x.argmax(1, false).to_vec::<i64>(), [1, 0]);
    assert_eq!(x.argmax(0, false).to_vec::<i64>(), [1, 0, 0]);
}

/// `torch.maximum`/`torch.minimum` split a tie's gradient evenly.
#[test]
fn maximum_and_minimum_split_a_tied_gradient_evenly() {
    let (a, b) = (f64_var(&[1.0, 2.0], &[2]), f64_var(&[1.0, 1.0], &[2]));
    a.maximum(&b).sum_all().backward();
    assert_eq!((grad_of(&a), grad_of(&b)), (vec![0.5, 1.0], vec![0.5, 0.0]));
    let (a, b) = (f64_var(&[1.0, 2.0], &[2]), f64_var(&[1.0, 1.0], &[2]));
    a.minimum(&b).sum_all().backward();
    assert_eq!((grad_of(&a), grad_of(&b)), (vec![0.5, 0.0], vec![0.5, 1.0]));
}

/// Every target ignored: the mean over no rows is 0/0, NaN, as in PyTorch,
/// and the gradient is zero (no row contributes), as in PyTorch, so one
/// all-padding batch does not poison the weights with NaN.
#[test]
fn cross_entropy_with_every_target_ignored_is_nan_with_a_zero_gradient() {
    let logits = f64_var(&[0.3, -1.0, 2.0, 0.5, 0.1, 0.2], &[2, 3]);
    let targets = Tensor::from_vec(vec![IGNORE_INDEX, IGNORE_INDEX], [2]).unwrap();
    let loss = cross_entropy(&logits, &targets);
    assert!(loss.item().is_nan(), "loss {}", loss.item());
    loss.backward();
    assert_eq!(grad_of(&logits), [0.0; 6]);
}

/// PyTorch raises `IndexError: Target 4 is out of bounds.`; ours panics with
/// a one-line message before reading any logit (the CUDA path checks the
/// targets on the host first), never indexing out of bounds.
#[test]
#[should_panic(expected = "cross_entropy: target 3 is outside 0..3")]
fn cross_entropy_rejects_a_target_past_the_last_class() {
    let logits = f64_var(&[0.0; 6], &[2, 3]);
    cross_entropy(&logits, &Tensor::from_vec(vec![0i64, 3], [2]).unwrap());
}

#[test]
#[should_panic(expected = "cross_entropy: target -1 is outside 0..3")]
fn cross_entropy_rejects_a_negative_target_other_than_ignore_index() {
    let logits = f64_var(&[0.0; 6], &[2, 3]);
    cross_entropy(&logits, &Tensor::from_vec(vec![-1i64, 2], [2]).unwrap());
}

/// Predictions exactly 0 and 1: PyTorch clamps each log at −100, so a wrong
/// certain prediction costs 100 and a right one 0; the gradient
/// (p − t)/max(p(1 − p), ε)/n is 0 for a right one and ±1e12/n for a wrong
/// one. PyTorch's ε is the f32 value nearest 1e-12 (9.9999999600e-13), so its
/// ±2.50000001e11 differs from our ±2.5e11 in the ninth digit.
#[test]
fn binary_cross_entropy_at_predictions_of_exactly_zero_and_one() {
    let p = f64_var(&[0.0, 1.0, 0.0, 1.0], &[4]);
    let t = Var::constant(Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], [4]).unwrap());
    let loss = binary_cross_entropy(&p, &t);
    assert_eq!(loss.item(), 50.0, "(0 + 0 + 100 + 100) / 4");
    loss.backward();
    assert_close(&grad_of(&p), &[0.0, 0.0, -2.5e11, 2.5e11], 1e-8);
}

/// The variance of one element: unbiased is 0/0 (NaN, value and gradient),
/// biased is 0 with gradient 0, both as PyTorch.
#[test]
fn variance_of_one_element() {
    let x = f64_var(&[2.5], &[1]);
    let unbiased = x.var(0, false, true);
    assert!(unbiased.item().is_nan());
    unbiased.backward();
    assert!(grad_of(&x)[0].is_nan());
    let y = f64_var(&[2.5], &[1]);
    let biased = y.var(0, false, false);
    assert_eq!(biased.item(), 0.0);
    biased.backward();
    assert_eq!(grad_of(&y), [0.0]);
}

/// A constant row has variance 0: x̂ = 0, the output is β, and the gradient
/// is finite (eps bounds 1/√(var + eps)). The numbers are PyTorch's for the
/// same inputs, eps 1e-5, and upstream gradient `r`.
#[test]
fn layer_norm_of_constant_rows_outputs_beta_with_a_finite_gradient() {
    let x = f64_var(&[1.5; 8], &[2, 4]);
    let gamma = f64_var(&[1.0, 2.0, 3.0, 4.0], &[4]);
    let beta = f64_var(&[0.1, 0.2, 0.3, 0.4], &[4]);
    let y = layer_norm(&x, Some((&gamma, &beta)), 1e-5);
    assert_close(&y.data().to_vec::<f64>(), &[0.1, 0.2, 0.3, 0.4, 0.1, 0.2, 0.3, 0.4], 1e-12);
    let r = Tensor::from_vec(vec![1.0, -1.0, 2.0, 0.5, 0.0, 1.0, 1.0, 3.0], [2, 4]).unwrap();
    y.mul(&Var::constant(r)).sum_all().backward();
    let dx = [
        -237.17082451262843,
        -1185.854122563142,
        1343.9680055715612,
        79.05694150420948,
        -1343.9680055715612,
        -711.5124735378854,
        -395.2847075210475,
        2450.7651866304936,
    ];
    assert_close(&grad_of(&x), &dx, 1e-9);
    assert_close(&grad_of(&gamma), &[0.0; 4], 1e-12);
    assert_close(&grad_of(&beta), &[1.0, 0.0, 3.0, 3.5], 1e-12);
}
