//! SwiGLU, the gated activation of the Llama MLP, at the tensor level:
//!   swiglu(gate, up) = silu(gate) · up,   silu(x) = x · σ(x)
//! for gate and up of one shape (the `[B, T, hidden]` outputs of
//! `gate_proj` and `up_proj`). One fused pass forward, and one backward
//! pass giving both gradients; see `kernels::cpu::swiglu` and `swiglu.cu`.
//! SiLU alone is `Tensor::silu` (`ops/unary.rs`); its backward is here.

use crate::backend;
use crate::tensor::Tensor;

impl Tensor {
    /// silu(gate) · up elementwise, `self` being gate.
    pub fn swiglu(&self, up: &Tensor) -> Tensor {
        check_same("swiglu", self, up);
        backend::of(&[self, up]).swiglu(self, up)
    }

    /// (dgate, dup) of [`Tensor::swiglu`] for the gradient dy.
    pub fn swiglu_backward(gate: &Tensor, up: &Tensor, dy: &Tensor) -> (Tensor, Tensor) {
        check_same("swiglu_backward", gate, up);
        check_same("swiglu_backward", gate, dy);
        backend::of(&[gate, up, dy]).swiglu_backward(gate, up, dy)
    }

    /// dy · silu'(x) for x = `self`, in one pass (SiLU's backward).
    pub fn silu_backward(&self, dy: &Tensor) -> Tensor {
        check_same("silu_backward", self, dy);
        backend::of(&[self, dy]).silu_backward(self, dy)
    }
}

fn check_same(op: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "{op}: shapes {} and {} differ", a.shape(), b.shape());
    assert_eq!(a.dtype(), b.dtype(), "{op}: dtypes {} and {} differ", a.dtype(), b.dtype());
    assert!(a.dtype().is_float(), "{op}: needs a float tensor, got {}", a.dtype());
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn swiglu_is_silu_of_gate_times_up() {
        let g = Tensor::new_as([-2.0, 0.0, 1.5], DType::F64).unwrap();
        let u = Tensor::new_as([0.5, 3.0, -1.0], DType::F64).unwrap();
        let want = g.mul(&g.sigmoid()).mul(&u).to_vec::<f64>();
        assert_eq!(g.silu().to_vec::<f64>(), g.mul(&g.sigmoid()).to_vec::<f64>());
        let got = g.swiglu(&u).to_vec::<f64>();
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-15));
        let (dg, du) = Tensor::swiglu_backward(&g, &u, &u.ones_like());
        assert!(du.to_vec::<f64>().iter().zip(g.silu().to_vec::<f64>()).all(|(a, b)| (a - b).abs() < 1e-15));
        let slope = g.silu_backward(&u).to_vec::<f64>();
        assert!(dg.to_vec::<f64>().iter().zip(slope).all(|(a, b)| (a - b).abs() < 1e-15));
    }
}
