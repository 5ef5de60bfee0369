//! Embedding: a `[num_embeddings, dim]` table whose rows are looked up by
//! int64 ids. Initialised N(0, 1) as `torch.nn.Embedding`.

use tensor::{DType, Generator, Tensor};

use super::{join_name, Module};
use crate::var::Var;

pub struct Embedding {
    pub weight: Var,
}

impl Embedding {
    pub fn new(num_embeddings: usize, dim: usize, gen: &mut Generator) -> Self {
        Embedding { weight: Var::parameter(Tensor::normal([num_embeddings, dim], 0.0, 1.0, DType::F32, gen)) }
    }

    /// Looks up int64 `ids` of any shape, giving `ids.shape + [dim]`.
    pub fn lookup(&self, ids: &Tensor) -> Var {
        self.weight.embedding(ids)
    }
}

impl Module for Embedding {
    /// `x` holds int64 ids.
    fn forward(&self, x: &Var) -> Var {
        self.lookup(&x.data())
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        f(join_name(prefix, "weight"), &self.weight);
    }
}
