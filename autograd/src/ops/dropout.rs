//! Dropout: during training, zero each element with probability p and
//! scale the survivors by 1/(1 − p), so the expected value is unchanged and
//! evaluation (which skips dropout) sees activations of the same size.
//! The backward applies the same mask and scale.

use tensor::{DType, Generator, Tensor};

use crate::var::{BackwardOp, Var};

struct Dropout {
    scaled_mask: Tensor,
}
impl BackwardOp for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.mul(&self.scaled_mask))]
    }
}

/// Dropout with drop probability `p`; the identity when not `training` or
/// when p is 0.
pub fn dropout(x: &Var, p: f64, training: bool, gen: &mut Generator) -> Var {
    assert!((0.0..1.0).contains(&p), "dropout: probability {p} must be in [0, 1)");
    if !training || p == 0.0 {
        return x.clone();
    }
    let keep = Tensor::uniform(x.shape(), 0.0, 1.0, DType::F64, gen).compare_scalar(p, tensor::CmpOp::Ge);
    let scaled_mask = keep.to_dtype(x.dtype()).mul_scalar(1.0 / (1.0 - p));
    let out = x.data().mul(&scaled_mask);
    Var::from_op(out, &[x], || Dropout { scaled_mask })
}
