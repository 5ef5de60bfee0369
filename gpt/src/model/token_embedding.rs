//! The token embedding, which is also the output head (weight tying).
//!
//! `wte` is a `[V, C]` table used twice: looking up row `id` gives a
//! token's input vector, and h·wteᵀ scores every token as the next one.
//! In this chapter it is a trainable f32 [`Embedding`]. Like the
//! projections (see `projection`), the model holds it behind a small
//! trait, so that quantization (`quant::embedding`) can put a packed table
//! in its place from outside: it is the largest matrix (38.6M of GPT-2
//! small's 124M weights), and a packed lookup decodes just the rows asked
//! for.

use std::any::Any;

use autograd::nn::{Embedding, Module};
use autograd::Var;
use tensor::{Device, Tensor};

/// A `[V, C]` table that embeds token ids and scores hidden states
/// against every token. Its `Module` side lists the table's parameters.
pub trait TokenEmbedding: Module + Any {
    /// Rows for int64 `ids` of any shape: `ids.shape + [C]`.
    fn lookup(&self, ids: &Tensor) -> Var;

    /// The tied head: h `[.., C]` · wteᵀ → `[.., V]`.
    fn logits(&self, hidden: &Var) -> Var;

    /// Why the table cannot run on `device`, if it cannot (see
    /// `Projection::check_device`).
    fn check_device(&self, _device: Device) -> tensor::Result<()> {
        Ok(())
    }
}

impl dyn TokenEmbedding {
    /// The table as a `T`, if it is one.
    pub fn downcast_ref<T: TokenEmbedding>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref()
    }
}

/// The chapter-4 table.
impl TokenEmbedding for Embedding {
    fn lookup(&self, ids: &Tensor) -> Var {
        Embedding::lookup(self, ids)
    }

    fn logits(&self, hidden: &Var) -> Var {
        autograd::linear(hidden, &self.weight, None)
    }
}
