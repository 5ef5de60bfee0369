//! LoRA: fine-tune a frozen Linear through a low-rank detour.
//!
//! A pretrained weight W `[out, in]` stays frozen. Beside it sit two small
//! trainable matrices, A `[in, r]` and B `[r, out]` with r ≪ in, out, and
//! the layer computes
//!
//! ```text
//!   y = x·Wᵀ + b + (α/r) · (x·A)·B        x [.., in] → x·A [.., r] → [.., out]
//! ```
//!
//! so the update it learns, ΔW = (α/r)·(A·B)ᵀ, has rank at most r and costs
//! r·(in + out) parameters instead of in·out. B starts at zero, so before
//! the first step the layer is exactly the pretrained one; A starts
//! Kaiming-uniform (bound 1/√in, as PEFT's `lora_A` Linear), so the first
//! gradients reaching B are not zero. Dividing by r keeps the update's size
//! independent of the rank, which `alpha` then sets.
//!
//! After training, `merged()` folds ΔW into W: one plain Linear, no extra
//! cost at inference, giving the same outputs up to float rounding.

use tensor::{DType, Generator, Tensor};

use super::{join_name, Linear, Module};
use crate::var::Var;

/// A rank that cannot work for a layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoraError {
    #[error("LoRA rank must be at least 1, got 0")]
    ZeroRank,
    #[error("LoRA rank {rank} is larger than the layer ({in_features} → {out_features}); use at most {max}", max = .in_features.min(.out_features))]
    TooLarge { rank: usize, in_features: usize, out_features: usize },
}

pub struct LoraLinear {
    /// The pretrained layer; its parameters are frozen by [`LoraLinear::new`].
    pub base: Linear,
    /// `[in, r]`, Kaiming-uniform.
    pub a: Var,
    /// `[r, out]`, zeros.
    pub b: Var,
    pub alpha: f64,
}

impl LoraLinear {
    /// Wraps `base` with a rank-`rank` adapter and freezes `base`.
    pub fn new(base: Linear, rank: usize, alpha: f64, gen: &mut Generator) -> Result<Self, LoraError> {
        let (i, o) = (base.in_features(), base.out_features());
        check_rank(rank, i, o)?;
        let bound = 1.0 / (i as f64).sqrt();
        let a = Var::parameter(Tensor::uniform([i, rank], -bound, bound, DType::F32, gen));
        let b = Var::parameter(Tensor::zeros([rank, o], DType::F32));
        base.weight.set_requires_grad(false);
        if let Some(bias) = &base.bias {
            bias.set_requires_grad(false);
        }
        Ok(LoraLinear { base, a, b, alpha })
    }

    /// An adapter with given A `[in, r]` and B `[r, out]` (loading one).
    pub fn from_parts(base: Linear, a: Tensor, b: Tensor, alpha: f64) -> Result<Self, LoraError> {
        let (i, o) = (base.in_features(), base.out_features());
        check_rank(a.dim(1), i, o)?;
        assert_eq!(a.dims(), [i, a.dim(1)], "LoraLinear: A must be [in, r]");
        assert_eq!(b.dims(), [a.dim(1), o], "LoraLinear: B must be [r, out]");
        let mut lora = LoraLinear::new(base, a.dim(1), alpha, &mut Generator::seed(0))?;
        lora.a = Var::parameter(a);
        lora.b = Var::parameter(b);
        Ok(lora)
    }

    pub fn rank(&self) -> usize {
        self.a.dim(1)
    }

    /// α / r, the factor on the low-rank path.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank() as f64
    }

    /// ΔW = (α/r)·(A·B)ᵀ, `[out, in]` like the base weight.
    pub fn delta_weight(&self) -> Tensor {
        self.a.data().matmul(&self.b.data()).t().contiguous().mul_scalar(self.scaling())
    }

    /// A plain Linear with ΔW folded into W (a trainable copy).
    pub fn merged(&self) -> Linear {
        let w = self.base.weight.data().add(&self.delta_weight());
        Linear::from_weights(Var::parameter(w), self.base.bias.as_ref().map(|b| Var::parameter(b.data())))
    }
}

/// Rank 1 ..= min(in, out): a larger rank adds parameters but no capacity.
pub fn check_rank(rank: usize, in_features: usize, out_features: usize) -> Result<(), LoraError> {
    if rank == 0 {
        return Err(LoraError::ZeroRank);
    }
    if rank > in_features.min(out_features) {
        return Err(LoraError::TooLarge { rank, in_features, out_features });
    }
    Ok(())
}

impl Module for LoraLinear {
    fn forward(&self, x: &Var) -> Var {
        let low_rank = x.matmul(&self.a).matmul(&self.b).mul_scalar(self.scaling());
        self.base.forward(x).add(&low_rank)
    }

    /// `weight`, `bias`, then `lora_A` `[in, r]` and `lora_B` `[r, out]`.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        self.base.visit_parameters(prefix, f);
        f(join_name(prefix, "lora_A"), &self.a);
        f(join_name(prefix, "lora_B"), &self.b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::mse_loss;

    fn layer(gen: &mut Generator) -> Linear {
        Linear::new(6, 5, true, gen)
    }

    #[test]
    fn starts_as_the_base_and_trains_only_a_and_b() {
        let mut gen = Generator::seed(3);
        let base = layer(&mut gen);
        let x = Var::constant(Tensor::randn([4, 6], &mut gen));
        let before = base.forward(&x).data().to_vec::<f32>();
        let lora = LoraLinear::new(base, 2, 4.0, &mut gen).unwrap();
        assert_eq!(lora.forward(&x).data().to_vec::<f32>(), before);
        assert_eq!(lora.num_trainable_parameters(), 2 * (6 + 5));
        assert_eq!(lora.num_parameters(), 6 * 5 + 5 + 2 * (6 + 5));
        let bound = 1.0 / 6f32.sqrt();
        assert!(lora.a.data().to_vec::<f32>().iter().all(|v| v.abs() <= bound));

        let target = Var::constant(Tensor::randn([4, 5], &mut gen));
        mse_loss(&lora.forward(&x), &target).backward();
        assert!(lora.base.weight.grad().is_none() && lora.base.bias.as_ref().unwrap().grad().is_none());
        // B is zero, so A's gradient (through B) is zero at first; B's is not.
        assert!(lora.a.grad().unwrap().to_vec::<f32>().iter().all(|&g| g == 0.0));
        assert!(lora.b.grad().unwrap().to_vec::<f32>().iter().any(|&g| g != 0.0));
    }

    #[test]
    fn merged_layer_gives_the_same_outputs() {
        let mut gen = Generator::seed(4);
        let lora = LoraLinear::new(layer(&mut gen), 3, 8.0, &mut gen).unwrap();
        lora.b.set_data(Tensor::randn([3, 5], &mut gen));
        let x = Var::constant(Tensor::randn([2, 3, 6], &mut gen));
        let (y, merged) = (lora.forward(&x).data().to_vec::<f32>(), lora.merged().forward(&x).data().to_vec::<f32>());
        assert!(y.iter().zip(&merged).all(|(a, b)| (a - b).abs() < 1e-5));
        // …and the adapter changed them.
        assert!(y.iter().zip(layer(&mut Generator::seed(4)).forward(&x).data().to_vec::<f32>()).any(|(a, b)| a != &b));
        assert!((lora.scaling() - 8.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_ranks() {
        let mut gen = Generator::seed(0);
        assert_eq!(LoraLinear::new(layer(&mut gen), 0, 1.0, &mut gen).err(), Some(LoraError::ZeroRank));
        let err = LoraLinear::new(layer(&mut gen), 6, 1.0, &mut gen).err().unwrap();
        assert_eq!(err.to_string(), "LoRA rank 6 is larger than the layer (6 → 5); use at most 5");
    }
}
