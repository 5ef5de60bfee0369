//! Behaviour of the autograd engine itself: accumulation, no_grad, detach,
//! freezing, freed graphs.

use autograd::nn::{Linear, Module};
use autograd::optim::{clip_grad_norm, AdamW, Optimizer, Sgd};
use autograd::{no_grad, Var};
use tensor::{DType, Generator, Tensor};

fn scalar(v: f64) -> Var {
    Var::parameter(Tensor::new_as(v, DType::F64).unwrap())
}

#[test]
fn a_value_used_twice_accumulates_both_paths() {
    // y = x·x + x  →  dy/dx = 2x + 1 = 7 at x = 3
    let x = scalar(3.0);
    let y = x.mul(&x).add(&x);
    y.backward();
    assert_eq!(x.grad().unwrap().item_f64(), 7.0);
    // Leaf gradients accumulate across backward calls until zeroed.
    x.mul_scalar(2.0).backward();
    assert_eq!(x.grad().unwrap().item_f64(), 9.0);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn no_grad_and_detach_record_nothing() {
    let x = scalar(2.0);
    let y = no_grad(|| x.mul_scalar(3.0));
    assert!(!y.requires_grad());
    assert!(y.op_name().is_none());
    let d = x.mul_scalar(3.0).detach();
    assert!(!d.requires_grad());
    assert!(x.mul_scalar(3.0).requires_grad());
}

#[test]
#[should_panic(expected = "second time")]
fn backward_twice_through_one_graph_panics() {
    let x = scalar(2.0);
    let y = x.exp().mul_scalar(2.0);
    let z = y.add_scalar(1.0);
    z.backward();
    // The graph below z was freed; a second pass cannot reuse it.
    z.backward();
}

#[test]
fn frozen_parameters_get_no_gradient_and_are_not_updated() {
    let mut gen = Generator::seed(0);
    let layer = Linear::new(3, 2, true, &mut gen);
    layer.weight.set_requires_grad(false);
    let x = Var::constant(Tensor::randn([4, 3], &mut gen));
    let before = layer.weight.data().to_vec::<f32>();
    let mut opt = AdamW::new(layer.parameters(), 0.1);
    layer.forward(&x).sum_all().backward();
    assert!(layer.weight.grad().is_none());
    assert!(layer.bias.as_ref().unwrap().grad().is_some());
    opt.step();
    assert_eq!(layer.weight.data().to_vec::<f32>(), before);
    assert_eq!(layer.num_trainable_parameters(), 2);
    assert_eq!(layer.num_parameters(), 8);
}

#[test]
fn sgd_with_momentum_matches_hand_computation() {
    // f = x², grad 2x; momentum 0.9, lr 0.1, from x = 1:
    // step 1: b = 2, x = 0.8; step 2: g = 1.6, b = 0.9·2 + 1.6 = 3.4, x = 0.46
    let x = scalar(1.0);
    let mut opt = Sgd::with_options(vec![x.clone()], 0.1, 0.9, 0.0);
    for _ in 0..2 {
        opt.zero_grad();
        x.square().backward();
        opt.step();
    }
    assert!((x.item() - 0.46).abs() < 1e-12);
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let a = Var::parameter(Tensor::new_as([3.0, 4.0], DType::F64).unwrap());
    a.mul(&a).mul_scalar(0.5).sum_all().backward(); // grad = a = [3, 4], norm 5
    let norm = clip_grad_norm(&[a.clone()], 1.0);
    assert!((norm - 5.0).abs() < 1e-12);
    let g = a.grad().unwrap().to_vec::<f64>();
    assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
}

#[test]
fn optimizer_updates_do_not_change_values_saved_by_a_live_graph() {
    let w = Var::parameter(Tensor::new_as([1.0, 2.0], DType::F64).unwrap());
    let saved = w.data();
    let mut opt = AdamW::new(vec![w.clone()], 0.1);
    let loss = w.square().sum_all();
    loss.backward();
    opt.step();
    assert_eq!(saved.to_vec::<f64>(), vec![1.0, 2.0]);
    assert_ne!(w.data().to_vec::<f64>(), vec![1.0, 2.0]);
}
