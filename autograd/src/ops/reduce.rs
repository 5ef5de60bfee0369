//! Reductions and their derivatives.
//!
//! A sum copies its incoming gradient to every element it summed
//! (broadcast it back over the reduced dimension); a mean does the same
//! divided by n; a max sends it only to the element that won; a variance
//! sends dy · 2(x − mean)/(n − correction).
//!
//! `backward_graph` writes each with `Var` ops (expand, a constant one-hot
//! mask for max, the centred input for var), and `Var::sum_to_shape` is
//! here: the reduction that undoes a broadcast.

use tensor::{Shape, Tensor};

use crate::var::{BackwardOp, Var};

/// Re-inserts a reduced dimension so the gradient broadcasts over it.
fn unreduce(g: &Tensor, dim: usize, keepdim: bool) -> Tensor {
    if keepdim {
        g.clone()
    } else {
        g.unsqueeze(dim as isize)
    }
}

/// `unreduce` for a `Var`.
fn unreduce_var(g: &Var, dim: usize, keepdim: bool) -> Var {
    if keepdim {
        g.clone()
    } else {
        g.unsqueeze(dim as isize)
    }
}

struct Sum {
    shape: Shape,
    dim: usize,
    keepdim: bool,
}
impl BackwardOp for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(unreduce(g, self.dim, self.keepdim).expand(self.shape.clone()).contiguous())]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(unreduce_var(g, self.dim, self.keepdim).expand(self.shape.clone()))])
    }
}

struct SumAll {
    shape: Shape,
}
impl BackwardOp for SumAll {
    fn name(&self) -> &'static str {
        "sum_all"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(Tensor::full(self.shape.clone(), g.item_f64(), g.dtype()))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        let ones = vec![1isize; self.shape.rank()];
        Some(vec![Some(g.reshape(&ones).expand(self.shape.clone()))])
    }
}

struct Max {
    x_shape: Shape,
    argmax: Tensor,
    dim: usize,
    keepdim: bool,
}
impl BackwardOp for Max {
    fn name(&self) -> &'static str {
        "max"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let d = self.dim as isize;
        let idx = unreduce(&self.argmax, self.dim, self.keepdim);
        let g = unreduce(g, self.dim, self.keepdim);
        vec![Some(Tensor::zeros(self.x_shape.clone(), g.dtype()).scatter_add(d, &idx, &g))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        // dy times a constant one-hot of the argmax: max is piecewise linear.
        let idx = unreduce(&self.argmax, self.dim, self.keepdim);
        let ones = Tensor::ones(idx.shape().clone(), g.dtype());
        let winner = Tensor::zeros(self.x_shape.clone(), g.dtype()).scatter_add(self.dim as isize, &idx, &ones);
        Some(vec![Some(unreduce_var(g, self.dim, self.keepdim).mul(&Var::constant(winner)))])
    }
}

struct Variance {
    x: Tensor,
    dim: usize,
    keepdim: bool,
    unbiased: bool,
}
impl BackwardOp for Variance {
    fn name(&self) -> &'static str {
        "var"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let d = self.dim as isize;
        let n = self.x.dims()[self.dim] as f64;
        let denom = if self.unbiased { n - 1.0 } else { n };
        let centered = self.x.sub(&self.x.mean(d, true));
        vec![Some(centered.mul(&unreduce(g, self.dim, self.keepdim)).mul_scalar(2.0 / denom))]
    }
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        let (x, d) = (&inputs[0], self.dim as isize);
        let n = x.dim(d) as f64;
        let denom = if self.unbiased { n - 1.0 } else { n };
        let centered = x.sub(&x.mean(d, true));
        Some(vec![Some(centered.mul(&unreduce_var(g, self.dim, self.keepdim)).mul_scalar(2.0 / denom))])
    }
}

impl Var {
    /// Sum along `dim` (negative counts from the end).
    pub fn sum(&self, dim: isize, keepdim: bool) -> Var {
        let x = self.data();
        let d = x.layout().resolve(dim, "sum");
        Var::from_op(x.sum(dim, keepdim), &[self], || Sum { shape: x.shape().clone(), dim: d, keepdim })
    }

    /// Sum of every element (a scalar).
    pub fn sum_all(&self) -> Var {
        let x = self.data();
        Var::from_op(x.sum_all(), &[self], || SumAll { shape: x.shape().clone() })
    }

    /// Mean along `dim`.
    pub fn mean(&self, dim: isize, keepdim: bool) -> Var {
        let n = self.dim(dim) as f64;
        self.sum(dim, keepdim).mul_scalar(1.0 / n)
    }

    /// Mean of every element (a scalar).
    pub fn mean_all(&self) -> Var {
        let n = self.numel() as f64;
        self.sum_all().mul_scalar(1.0 / n)
    }

    /// Largest value along `dim`; the gradient flows to the (first) argmax.
    pub fn max(&self, dim: isize, keepdim: bool) -> Var {
        let x = self.data();
        let d = x.layout().resolve(dim, "max");
        Var::from_op(x.max(dim, keepdim), &[self], || Max {
            x_shape: x.shape().clone(),
            argmax: x.argmax(dim, keepdim),
            dim: d,
            keepdim,
        })
    }

    /// Sums a broadcast result back to `shape` (the inverse of
    /// broadcasting `shape` up to `self`'s shape): leading dimensions are
    /// summed away, dimensions where `shape` has 1 are summed keeping them.
    /// A `Var` version of `Tensor::sum_to_shape`, for derivatives that must
    /// stay differentiable.
    pub fn sum_to_shape(&self, shape: &Shape) -> Var {
        let mut out = self.clone();
        for _ in shape.rank()..self.rank() {
            out = out.sum(0, false);
        }
        for (i, &d) in shape.dims().iter().enumerate() {
            if d == 1 && out.dims()[i] != 1 {
                out = out.sum(i as isize, true);
            }
        }
        out
    }

    /// Variance along `dim` (`unbiased` divides by n − 1).
    pub fn var(&self, dim: isize, keepdim: bool, unbiased: bool) -> Var {
        let x = self.data();
        let d = x.layout().resolve(dim, "var");
        Var::from_op(x.var(dim, keepdim, unbiased), &[self], || Variance { x, dim: d, keepdim, unbiased })
    }
}
