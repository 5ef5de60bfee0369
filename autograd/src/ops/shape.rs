//! Views and joins, and how gradients flow back through them.
//!
//! A view moves no numbers, so its backward moves the gradient back the same
//! way: reshape back, transpose back, inverse-permute. `narrow` pads its
//! gradient with zeros outside the slice; `expand` sums over the repeated
//! dimensions; `cat`/`stack` hand each input its own slice of the gradient.
//! `backward_graph` does the same moves on `Var`s, so they are recorded.

use tensor::{Shape, Tensor};

use crate::var::{BackwardOp, Var};

/// Every view that only changes the dimensions (reshape, squeeze,
/// unsqueeze) and `contiguous` share one backward: reshape the gradient back.
/// `name` is the op that was called, so graph dumps show it.
struct Reshape {
    shape: Shape,
    name: &'static str,
}
impl BackwardOp for Reshape {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.reshape_to(self.shape.clone()))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(g.reshape_to(&self.shape))])
    }
}

struct Transpose {
    d0: isize,
    d1: isize,
}
impl BackwardOp for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.transpose(self.d0, self.d1))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(g.transpose(self.d0, self.d1))])
    }
}

struct Permute {
    order: Vec<usize>,
}
impl BackwardOp for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.permute(&inverse_permutation(&self.order)))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(g.permute(&inverse_permutation(&self.order)))])
    }
}

struct Narrow {
    shape: Shape,
    dim: usize,
    start: usize,
}
impl BackwardOp for Narrow {
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let (before, after) = self.padding(g.dims()[self.dim], g.dtype());
        let parts: Vec<Tensor> = before.into_iter().chain([g.clone()]).chain(after).collect();
        vec![Some(Tensor::cat(&parts, self.dim as isize))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        let (before, after) = self.padding(g.dim(self.dim as isize), g.dtype());
        let (before, after) = (before.map(Var::constant), after.map(Var::constant));
        let parts: Vec<Var> = before.into_iter().chain([g.clone()]).chain(after).collect();
        Some(vec![Some(Var::cat(&parts, self.dim as isize))])
    }
}

impl Narrow {
    /// The zeros that go before and after a slice of `len` to rebuild the
    /// full shape (none where the slice touches that end).
    fn padding(&self, len: usize, dtype: tensor::DType) -> (Option<Tensor>, Option<Tensor>) {
        let zeros = |n: usize| {
            let mut dims = self.shape.dims().to_vec();
            dims[self.dim] = n;
            Tensor::zeros(dims, dtype)
        };
        let full = self.shape.dims()[self.dim];
        let after = full - self.start - len;
        ((self.start > 0).then(|| zeros(self.start)), (after > 0).then(|| zeros(after)))
    }
}

/// The order that undoes `order`: `inverse[order[i]] = i`.
fn inverse_permutation(order: &[usize]) -> Vec<usize> {
    let mut inverse = vec![0; order.len()];
    for (i, &d) in order.iter().enumerate() {
        inverse[d] = i;
    }
    inverse
}

struct Expand {
    shape: Shape,
}
impl BackwardOp for Expand {
    fn name(&self) -> &'static str {
        "expand"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.sum_to_shape(&self.shape))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(g.sum_to_shape(&self.shape))])
    }
}

struct Cat {
    dim: usize,
    sizes: Vec<usize>,
}
impl BackwardOp for Cat {
    fn name(&self) -> &'static str {
        "cat"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        let mut start = 0;
        self.sizes
            .iter()
            .zip(needs)
            .map(|(&n, &need)| {
                let part = need.then(|| g.narrow(self.dim as isize, start, n).contiguous());
                start += n;
                part
            })
            .collect()
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let mut start = 0;
        let parts = self.sizes.iter().zip(needs).map(|(&n, &need)| {
            let part = need.then(|| g.narrow(self.dim as isize, start, n));
            start += n;
            part
        });
        Some(parts.collect())
    }
}

impl Var {
    /// Reshape (one dimension may be -1).
    pub fn reshape(&self, shape: &[isize]) -> Var {
        let x = self.data();
        Var::from_op(x.reshape(shape), &[self], || Reshape { shape: x.shape().clone(), name: "reshape" })
    }
    /// Reshape to a known shape.
    pub fn reshape_to(&self, shape: &Shape) -> Var {
        let dims: Vec<isize> = shape.dims().iter().map(|&d| d as isize).collect();
        self.reshape(&dims)
    }
    pub fn transpose(&self, d0: isize, d1: isize) -> Var {
        Var::from_op(self.data().transpose(d0, d1), &[self], || Transpose { d0, d1 })
    }
    /// Swaps the last two dimensions.
    pub fn t(&self) -> Var {
        self.transpose(-2, -1)
    }
    pub fn permute(&self, order: &[usize]) -> Var {
        Var::from_op(self.data().permute(order), &[self], || Permute { order: order.to_vec() })
    }
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Var {
        let x = self.data();
        let d = x.layout().resolve(dim, "narrow");
        Var::from_op(x.narrow(dim, start, len), &[self], || Narrow { shape: x.shape().clone(), dim: d, start })
    }
    pub fn squeeze(&self, dim: isize) -> Var {
        let x = self.data();
        Var::from_op(x.squeeze(dim), &[self], || Reshape { shape: x.shape().clone(), name: "squeeze" })
    }
    pub fn unsqueeze(&self, dim: isize) -> Var {
        let x = self.data();
        Var::from_op(x.unsqueeze(dim), &[self], || Reshape { shape: x.shape().clone(), name: "unsqueeze" })
    }
    pub fn expand(&self, shape: impl Into<Shape>) -> Var {
        let x = self.data();
        Var::from_op(x.expand(shape), &[self], || Expand { shape: x.shape().clone() })
    }
    /// A dense copy; gradient passes through unchanged.
    pub fn contiguous(&self) -> Var {
        let x = self.data();
        Var::from_op(x.contiguous(), &[self], || Reshape { shape: x.shape().clone(), name: "contiguous" })
    }

    /// Joins along an existing dimension.
    pub fn cat(vars: &[Var], dim: isize) -> Var {
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.data()).collect();
        let out = Tensor::cat(&tensors, dim);
        let d = tensors[0].layout().resolve(dim, "cat");
        let refs: Vec<&Var> = vars.iter().collect();
        Var::from_op(out, &refs, || Cat { dim: d, sizes: tensors.iter().map(|t| t.dims()[d]).collect() })
    }

    /// Joins along a new dimension.
    pub fn stack(vars: &[Var], dim: isize) -> Var {
        let rank = vars[0].rank();
        let d = tensor::shape::resolve_dim(dim, rank + 1, "stack") as isize;
        let expanded: Vec<Var> = vars.iter().map(|v| v.unsqueeze(d)).collect();
        Var::cat(&expanded, d)
    }
}
