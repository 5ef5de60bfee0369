//! Indexing ops and their derivatives.
//!
//! Picking by index is a many-to-one read, so its backward is a scatter
//! that adds: `index_select`'s gradient is `index_add`, `gather`'s is
//! `scatter_add`. An embedding row used by three tokens receives the sum of
//! the three tokens' gradients. `index_add` runs the other way, a scatter
//! that adds slices of `src` into `self` at the indices: its backward hands
//! `self` the gradient unchanged and gives `src` the gradient's slices at
//! the same indices (an `index_select`). A mixture-of-experts layer uses the
//! pair: `index_select` dispatches the rows routed to an expert, `index_add`
//! combines its outputs back into their tokens' rows. `where_cond` routes
//! the gradient to whichever operand was chosen at each position (and so
//! does its `backward_graph`; the other indexing ops have no differentiable
//! backward yet).

use tensor::{Shape, Tensor};

use crate::var::{BackwardOp, Var};

struct IndexSelect {
    shape: Shape,
    dim: usize,
    indices: Tensor,
}
impl BackwardOp for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let zeros = Tensor::zeros(self.shape.clone(), g.dtype());
        vec![Some(zeros.index_add(self.dim as isize, &self.indices, g))]
    }
}

/// Rows looked up by id; the backward scatters them back
/// (`Tensor::embedding_backward`).
struct Embedding {
    ids: Tensor,
    vocab: usize,
}
impl BackwardOp for Embedding {
    fn name(&self) -> &'static str {
        "embedding"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        vec![needs[0].then(|| Tensor::embedding_backward(&self.ids, g, self.vocab))]
    }
    fn backward_into(&self, g: &Tensor, _input: usize, sum: &mut Tensor) -> bool {
        sum.embedding_backward_add_(&self.ids, g);
        true
    }
}

struct IndexAdd {
    dim: usize,
    indices: Tensor,
}
impl BackwardOp for IndexAdd {
    fn name(&self) -> &'static str {
        "index_add"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        // out = self + scatter(src): each element of `self` reaches the
        // output once, each slice of `src` lands at its index.
        vec![needs[0].then(|| g.clone()), needs[1].then(|| g.index_select(self.dim as isize, &self.indices))]
    }
}

struct Gather {
    shape: Shape,
    dim: usize,
    index: Tensor,
}
impl BackwardOp for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let zeros = Tensor::zeros(self.shape.clone(), g.dtype());
        vec![Some(zeros.scatter_add(self.dim as isize, &self.index, g))]
    }
}

struct Where {
    mask: Tensor,
    a_shape: Shape,
    b_shape: Shape,
}
impl BackwardOp for Where {
    fn name(&self) -> &'static str {
        "where"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        let zero = Tensor::zeros((), g.dtype());
        vec![
            needs[0].then(|| Tensor::where_cond(&self.mask, g, &zero).sum_to_shape(&self.a_shape)),
            needs[1].then(|| Tensor::where_cond(&self.mask, &zero, g).sum_to_shape(&self.b_shape)),
        ]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let zero = Var::constant(Tensor::zeros((), g.dtype()));
        Some(vec![
            needs[0].then(|| Var::where_cond(&self.mask, g, &zero).sum_to_shape(&self.a_shape)),
            needs[1].then(|| Var::where_cond(&self.mask, &zero, g).sum_to_shape(&self.b_shape)),
        ])
    }
}

impl Var {
    /// Slices along `dim` at int64 `indices` (1-D).
    pub fn index_select(&self, dim: isize, indices: &Tensor) -> Var {
        let x = self.data();
        let d = x.layout().resolve(dim, "index_select");
        Var::from_op(x.index_select(dim, indices), &[self], || IndexSelect {
            shape: x.shape().clone(),
            dim: d,
            indices: indices.clone(),
        })
    }

    /// Adds the slices of `src` along `dim` into `self` at the int64
    /// `indices` (1-D, one per slice of `src`; repeats accumulate):
    /// `torch.index_add`, differentiable in both `self` and `src`.
    pub fn index_add(&self, dim: isize, indices: &Tensor, src: &Var) -> Var {
        let (x, y) = (self.data(), src.data());
        let d = x.layout().resolve(dim, "index_add");
        Var::from_op(x.index_add(dim, indices, &y), &[self, src], || IndexAdd { dim: d, indices: indices.clone() })
    }

    /// `torch.gather` along `dim`.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Var {
        let x = self.data();
        let d = x.layout().resolve(dim, "gather");
        Var::from_op(x.gather(dim, index), &[self], || Gather {
            shape: x.shape().clone(),
            dim: d,
            index: index.clone(),
        })
    }

    /// Rows of this `[vocab, dim]` table for int64 `ids` of any shape.
    pub fn embedding(&self, ids: &Tensor) -> Var {
        let table = self.data();
        let vocab = table.dim(0);
        Var::from_op(table.embedding(ids), &[self], || Embedding { ids: ids.clone(), vocab })
    }

    /// `mask ? a : b` elementwise, with broadcasting.
    pub fn where_cond(mask: &Tensor, a: &Var, b: &Var) -> Var {
        let (x, y) = (a.data(), b.data());
        Var::from_op(Tensor::where_cond(mask, &x, &y), &[a, b], || Where {
            mask: mask.clone(),
            a_shape: x.shape().clone(),
            b_shape: y.shape().clone(),
        })
    }

    /// Replaces positions where `mask` is non-zero with `value`; those
    /// positions get no gradient.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Var {
        let fill = Var::constant(Tensor::full((), value, self.dtype()));
        Var::where_cond(mask, &fill, self)
    }
}
