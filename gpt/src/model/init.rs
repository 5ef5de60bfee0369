//! GPT-2's initialisation: weights N(0, 0.02), biases zero (residual
//! projections use a smaller std, chosen by the caller).

use autograd::nn::Linear;
use autograd::Var;
use tensor::{DType, Generator, Tensor};

/// A Linear `in → out` with weight N(0, std²) (stored `[out, in]`) and a
/// zero bias.
pub fn gpt2_linear(input: usize, output: usize, bias: bool, std: f64, gen: &mut Generator) -> Linear {
    let weight = Var::parameter(Tensor::normal([output, input], 0.0, std, DType::F32, gen));
    let bias = bias.then(|| Var::parameter(Tensor::zeros([output], DType::F32)));
    Linear::from_weights(weight, bias)
}
