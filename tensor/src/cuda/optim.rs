//! AdamW for CUDA parameters: one kernel launch updates every tensor.
//!
//! The optimizer (in `autograd`) hands over, for each parameter, its value,
//! gradient and two moment buffers; all must be f32 on one device. Values
//! and moments are updated in place: each is made a dense, unshared buffer
//! first (a copy only if a view or another tensor still shares it), so no
//! other tensor ever sees the change, as on the CPU.

use kernels::cuda::adamw::{adamw_step as launch, AdamWConfig, AdamWParam};

use super::{bring, ok, packed, storage_mut};
use crate::dtype::DType;
use crate::tensor::Tensor;

/// One parameter's part of an AdamW step.
pub struct AdamWSlot<'a> {
    pub param: &'a mut Tensor,
    pub grad: &'a Tensor,
    pub m: &'a mut Tensor,
    pub v: &'a mut Tensor,
    /// This parameter's 1-based step count (bias correction).
    pub step: u64,
}

/// Makes `t` a dense f32 buffer that nothing else shares, for an in-place update.
fn own(t: &mut Tensor) {
    assert_eq!(t.dtype(), DType::F32, "AdamW on CUDA: parameters and moments must be float32, got {}", t.dtype());
    let whole = t.is_contiguous() && t.layout().offset() == 0 && super::storage(t).len() == t.numel();
    if !whole {
        *t = super::shape::contiguous_copy(t);
    }
}

/// One AdamW step over all `slots` (PyTorch's formula, as the CPU kernel).
pub fn adamw_step(slots: &mut [AdamWSlot<'_>], lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) {
    if slots.is_empty() {
        return;
    }
    let device = slots[0].param.device();
    assert!(device.is_cuda(), "adamw_step: parameters must be on a CUDA device, got {device}");
    let grads: Vec<Tensor> = slots
        .iter()
        .map(|s| {
            assert_eq!(
                s.grad.shape(),
                s.param.shape(),
                "AdamW: gradient {} for a parameter {}",
                s.grad.shape(),
                s.param.shape()
            );
            packed(&bring(&s.grad.to_dtype(DType::F32), device, "adamw"))
        })
        .collect();
    for s in slots.iter_mut() {
        assert_eq!(s.param.device(), device, "AdamW on CUDA: parameters on {} and {device}", s.param.device());
        own(s.param);
        if !s.m.device().is_cuda() {
            *s.m = bring(s.m, device, "adamw");
        }
        if !s.v.device().is_cuda() {
            *s.v = bring(s.v, device, "adamw");
        }
        own(s.m);
        own(s.v);
    }
    let dev = super::cuda_device(slots[0].param).clone();
    let config = AdamWConfig { lr, beta1: betas.0, beta2: betas.1, eps, weight_decay };
    // Each slot's three buffers are borrowed mutably at once; they are
    // distinct tensors, and `own` made each storage unique.
    let mut params: Vec<AdamWParam<'_>> = Vec::with_capacity(slots.len());
    for (s, g) in slots.iter_mut().zip(&grads) {
        let len = s.param.numel();
        let step = s.step;
        let param = storage_mut(s.param).slice_mut::<f32>();
        let m = storage_mut(s.m).slice_mut::<f32>();
        let v = storage_mut(s.v).slice_mut::<f32>();
        params.push(AdamWParam { param, grad: super::slice::<f32>(g), m, v, len, step });
    }
    ok(launch(&dev, &mut params, &config), "AdamW");
}
