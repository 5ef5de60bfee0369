//! The book's first network: Linear(10, 5) → ReLU → Linear(5, 1) → Sigmoid,
//! a binary cross-entropy loss on a random batch, one backward pass and one
//! SGD step. It prints what the PyTorch version prints, in the same format,
//! so the two can be read side by side:
//!
//! ```text
//! cargo run --example simple_net
//! ```
//!
//! `tests/simple_net.rs` runs this same net with PyTorch's weights and checks
//! every printed number against PyTorch's.

use scratchgpt::autograd::nn::{Linear, Relu, Sigmoid};
use scratchgpt::prelude::*;
use scratchgpt::tensor::CmpOp;

fn main() {
    // One seeded generator makes the weights, the batch and the targets, so
    // every run prints the same numbers.
    let mut gen = Generator::seed(123);
    let model = Sequential::new()
        .add(Linear::new(10, 5, true, &mut gen))
        .add(Relu)
        .add(Linear::new(5, 1, true, &mut gen))
        .add(Sigmoid);

    // A batch of 8 examples with 10 features, and a 0/1 label for each.
    let x = Var::constant(Tensor::randn([8, 10], &mut gen));
    let y = Var::constant(Tensor::rand([8, 1], &mut gen).compare_scalar(0.5, CmpOp::Gt).to_dtype(DType::F32));

    let out = model.forward(&x);
    let loss = binary_cross_entropy(&out, &y);
    println!("output:\n{}", out.data());
    println!("loss: {}", loss.data());

    // backward() fills .grad() of every parameter the loss depends on.
    loss.backward();
    for (name, param) in model.named_parameters() {
        let grad = param.grad().expect("every parameter reaches the loss");
        println!("{name}.grad:\n{grad}");
    }

    // One step of plain gradient descent: p ← p − 0.01·grad.
    let mut optimizer = Sgd::new(model.parameters(), 0.01);
    optimizer.step();
    optimizer.zero_grad();
    let loss_after = binary_cross_entropy(&model.forward(&x), &y);
    println!("loss after one SGD step: {}", loss_after.data());
}
