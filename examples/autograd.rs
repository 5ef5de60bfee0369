//! Automatic differentiation on the book's one-neuron logistic regression:
//! z = x·w + b, a = σ(z), loss = BCE(a, y). Backward fills dL/dw and dL/db.
//!
//! Run: `cargo run --release --example autograd`
//! Prints grad w = -0.0898 and grad b = -0.0817 (PyTorch gives the same).

use scratchgpt::prelude::*;

/// Returns (loss, dL/dw, dL/db).
fn one_neuron() -> (f64, f64, f64) {
    let y = Var::constant(tensor![1.0]); // true label
    let x1 = Var::constant(tensor![1.1]); // input feature
    let w1 = Var::parameter(tensor![2.2]); // weight
    let b = Var::parameter(tensor![0.0]); // bias

    let z = &x1 * &w1 + &b; // net input
    let a = z.sigmoid(); // activation
    let loss = binary_cross_entropy(&a, &y);
    loss.backward();

    let grad = |v: &Var| v.grad().unwrap().item_f64();
    (loss.item(), grad(&w1), grad(&b))
}

fn main() {
    let (loss, grad_w, grad_b) = one_neuron();
    println!("loss   = {loss:.4}");
    println!("grad w = {grad_w:.4}");
    println!("grad b = {grad_b:.4}");
}

#[test]
fn gradients_match_the_book() {
    let (loss, grad_w, grad_b) = one_neuron();
    assert!((loss - 0.0852).abs() < 1e-4, "loss {loss}");
    assert!((grad_w - -0.0898).abs() < 1e-4, "grad w {grad_w}");
    assert!((grad_b - -0.0817).abs() < 1e-4, "grad b {grad_b}");
}
