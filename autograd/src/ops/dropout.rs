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
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(g.mul(&Var::constant(self.scaled_mask.clone())))])
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Dropout as DropoutLayer, Module};

    fn ones(n: usize) -> Var {
        Var::parameter(Tensor::ones([n], DType::F32))
    }

    #[test]
    fn the_kept_fraction_is_binomial_and_survivors_are_rescaled() {
        let n = 100_000;
        for p in [0.1, 0.5, 0.9] {
            let y = dropout(&ones(n), p, true, &mut Generator::seed(7)).data().to_vec::<f32>();
            let kept = y.iter().filter(|&&v| v != 0.0).count() as f64;
            // Each element is kept independently with probability 1 − p:
            // the count is Binomial(n, 1 − p); five standard deviations.
            let (mean, sd) = (n as f64 * (1.0 - p), (n as f64 * p * (1.0 - p)).sqrt());
            assert!((kept - mean).abs() <= 5.0 * sd, "p {p}: kept {kept}, expected {mean} ± {sd:.0}");
            let scale = (1.0 / (1.0 - p)) as f32;
            assert!(y.iter().all(|&v| v == 0.0 || v == scale), "p {p}: a survivor is not 1/(1 − p)");
            // The expectation is unchanged: the mean stays near 1.
            let average = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            assert!((average - 1.0).abs() <= 5.0 * sd / mean, "p {p}: mean {average}");
        }
    }

    #[test]
    fn evaluation_is_the_identity_and_draws_nothing() {
        let x = Var::parameter(Tensor::uniform([40, 7], -2.0, 2.0, DType::F32, &mut Generator::seed(1)));
        let mut gen = Generator::seed(3);
        let before = gen.state();
        assert_eq!(dropout(&x, 0.5, false, &mut gen).data().to_vec::<f32>(), x.data().to_vec::<f32>());
        assert_eq!(gen.state(), before, "evaluation consumed random numbers");
        // The layer: on while training, the identity once set to evaluate,
        // with or without a gradient graph.
        let mut layer = DropoutLayer::new(0.5, 11);
        assert_ne!(layer.forward(&x).data().to_vec::<f32>(), x.data().to_vec::<f32>());
        layer.set_training(false);
        assert_eq!(layer.forward(&x).data().to_vec::<f32>(), x.data().to_vec::<f32>());
        let evaluated = crate::no_grad(|| layer.forward(&x)).data().to_vec::<f32>();
        assert_eq!(evaluated, x.data().to_vec::<f32>());
    }

    #[test]
    fn the_backward_uses_the_forward_mask() {
        let x = Var::parameter(Tensor::uniform([3000], 0.5, 1.5, DType::F32, &mut Generator::seed(2)));
        let p = 0.4;
        let y = dropout(&x, p, true, &mut Generator::seed(5));
        y.sum_all().backward();
        let (out, grad) = (y.data().to_vec::<f32>(), x.grad().unwrap().to_vec::<f32>());
        let scale = (1.0 / (1.0 - p)) as f32;
        for (i, (&o, &g)) in out.iter().zip(&grad).enumerate() {
            // Dropped in the forward ⇔ no gradient; kept ⇔ gradient 1/(1 − p).
            assert_eq!(g, if o == 0.0 { 0.0 } else { scale }, "element {i}: out {o}, grad {g}");
        }
    }
}
