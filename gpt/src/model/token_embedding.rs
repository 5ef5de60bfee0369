//! The token embedding, which is also the output head (weight tying).
//!
//! `wte` is a `[V, C]` table used twice: looking up row `id` gives a
//! token's input vector, and h·wteᵀ scores every token as the next one.
//! In a quantized model the table is packed (it is the largest matrix,
//! 38.6M of GPT-2 small's 124M weights); a lookup decodes just the rows
//! asked for, and the head runs the quantized matmul over all V rows.

use autograd::nn::{join_name, Embedding};
use autograd::Var;
use tensor::Tensor;

use crate::quant::{QuantMatrix, Scheme};

pub enum TokenEmbedding {
    /// A trainable f32 table.
    Float(Embedding),
    /// A packed table, for inference.
    Quantized(QuantMatrix),
}

impl TokenEmbedding {
    /// Rows for int64 `ids` of any shape: `ids.shape + [C]`.
    pub fn lookup(&self, ids: &Tensor) -> Var {
        match self {
            TokenEmbedding::Float(e) => e.lookup(ids),
            TokenEmbedding::Quantized(q) => Var::constant(q.lookup_rows(ids)),
        }
    }

    /// The tied head: h `[.., C]` · wteᵀ → `[.., V]`.
    pub fn logits(&self, hidden: &Var) -> Var {
        match self {
            TokenEmbedding::Float(e) => autograd::linear(hidden, &e.weight, None),
            TokenEmbedding::Quantized(q) => Var::constant(q.matmul(&hidden.data(), None)),
        }
    }

    /// The f32 table, when the model is not quantized.
    pub fn float(&self) -> Option<&Embedding> {
        match self {
            TokenEmbedding::Float(e) => Some(e),
            TokenEmbedding::Quantized(_) => None,
        }
    }

    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            TokenEmbedding::Float(_) => None,
            TokenEmbedding::Quantized(q) => Some(q.scheme()),
        }
    }

    /// `wte.weight` when trainable; a packed table has no parameters.
    pub fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        if let TokenEmbedding::Float(e) = self {
            f(join_name(prefix, "weight"), &e.weight);
        }
    }
}
