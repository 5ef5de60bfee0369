//! Building a model layer by layer from a source of named tensors.
//!
//! A model is built the same way whatever its weights come from: the
//! builders in `gpt`, `block`, `attention` and `norm` walk the
//! architecture the config describes and ask a [`LayerSource`] for each
//! layer by its name (`h.0.attn.c_attn`, `layers.3.mlp.gate_proj`, …):
//! - [`RandomInit`] draws fresh weights (training from scratch);
//! - the Hugging Face loader reads them from a file (`weights::hf`);
//! - the quantized loader builds packed layers (`quant::folder`), and
//!   quantizing in memory packs an existing model's (`quant::convert`);
//! - [`tensor_specs`] records each tensor's name and shape, the list a
//!   loader checks a file against before it reads anything.
//!
//! So the names and shapes of a model's tensors are written once, in the
//! builders, and every loader and writer agrees with them.

use std::convert::Infallible;

use autograd::nn::{Embedding, Linear};
use autograd::Var;
use tensor::{DType, Generator, Tensor};

use super::config::GPTConfig;
use super::init::gpt2_linear;
use super::projection::Projection;
use super::token_embedding::TokenEmbedding;
use super::GPTModel;

/// How a fresh tensor starts (only [`RandomInit`] looks).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, std²).
    Normal(f64),
    Ones,
    Zeros,
}

/// Where a model's layers come from.
pub trait LayerSource {
    type Error;

    /// The projection `name`, `in → out`: a weight `name.weight` stored
    /// `[out, in]` as PyTorch's `nn.Linear` (which the source may hold
    /// otherwise), and `name.bias` `[out]` when `bias`. `std` is the
    /// weight's initial spread.
    fn projection(
        &mut self,
        name: &str,
        input: usize,
        output: usize,
        bias: bool,
        std: f64,
    ) -> Result<Box<dyn Projection>, Self::Error>;

    /// The `[rows, cols]` token table `name` (`name.weight`).
    fn token_embedding(&mut self, name: &str, rows: usize, cols: usize)
        -> Result<Box<dyn TokenEmbedding>, Self::Error>;

    /// A tensor that stays f32 whatever the format: a norm's weight or bias,
    /// the position table.
    fn float(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Var, Self::Error>;
}

/// Fresh weights: GPT-2's initialisation (weights N(0, 0.02²), residual
/// projections smaller, biases zero, norms one).
pub struct RandomInit<'a> {
    pub gen: &'a mut Generator,
}

impl LayerSource for RandomInit<'_> {
    type Error = Infallible;

    fn projection(
        &mut self,
        _: &str,
        i: usize,
        o: usize,
        bias: bool,
        std: f64,
    ) -> Result<Box<dyn Projection>, Infallible> {
        Ok(Box::new(gpt2_linear(i, o, bias, std, self.gen)))
    }

    fn token_embedding(&mut self, _: &str, rows: usize, cols: usize) -> Result<Box<dyn TokenEmbedding>, Infallible> {
        Ok(Box::new(Embedding {
            weight: Var::parameter(Tensor::normal([rows, cols], 0.0, 0.02, DType::F32, self.gen)),
        }))
    }

    fn float(&mut self, _: &str, shape: &[usize], init: Init) -> Result<Var, Infallible> {
        Ok(Var::parameter(match init {
            Init::Normal(std) => Tensor::normal(shape, 0.0, std, DType::F32, self.gen),
            Init::Ones => Tensor::ones(shape, DType::F32),
            Init::Zeros => Tensor::zeros(shape, DType::F32),
        }))
    }
}

/// What a tensor is to the formats that store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A projection's weight `[out, in]`: a matrix a quantized format packs.
    ProjectionWeight,
    /// The token table `[V, C]`, packed too.
    TokenTable,
    /// Stays f32: norms, biases, the position table.
    Float,
}

/// One tensor of a model: our name (the Hugging Face name without its
/// `transformer.`/`model.` prefix), its shape in our layout, its role.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: Role,
}

impl TensorSpec {
    /// Whether a quantized format packs it (a projection's weight or the
    /// token table) rather than keeping it f32.
    pub fn is_matrix(&self) -> bool {
        matches!(self.role, Role::ProjectionWeight | Role::TokenTable)
    }
}

/// Every tensor of the model `config` describes, in the order the model
/// holds them. The config must be valid.
pub fn tensor_specs(config: &GPTConfig) -> Vec<TensorSpec> {
    let mut recorder = Recorder(Vec::new());
    let Ok(_) = GPTModel::build(config.clone(), &mut recorder);
    recorder.0
}

/// A source that notes each request and answers with an empty layer:
/// the model it builds is never run, only its requests are kept.
struct Recorder(Vec<TensorSpec>);

impl Recorder {
    fn note(&mut self, name: String, shape: &[usize], role: Role) {
        self.0.push(TensorSpec { name, shape: shape.to_vec(), role });
    }
}

fn empty() -> Var {
    Var::constant(Tensor::zeros([0], DType::F32))
}

impl LayerSource for Recorder {
    type Error = Infallible;

    fn projection(
        &mut self,
        name: &str,
        i: usize,
        o: usize,
        bias: bool,
        _: f64,
    ) -> Result<Box<dyn Projection>, Infallible> {
        self.note(format!("{name}.weight"), &[o, i], Role::ProjectionWeight);
        if bias {
            self.note(format!("{name}.bias"), &[o], Role::Float);
        }
        Ok(Box::new(Linear::from_weights(empty(), None)))
    }

    fn token_embedding(&mut self, name: &str, rows: usize, cols: usize) -> Result<Box<dyn TokenEmbedding>, Infallible> {
        self.note(format!("{name}.weight"), &[rows, cols], Role::TokenTable);
        Ok(Box::new(Embedding { weight: empty() }))
    }

    fn float(&mut self, name: &str, shape: &[usize], _: Init) -> Result<Var, Infallible> {
        self.note(name.to_string(), shape, Role::Float);
        Ok(empty())
    }
}
