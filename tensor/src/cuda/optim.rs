//! AdamW for CUDA parameters: one kernel launch updates every tensor.
//!
//! For each parameter `ops/optim.rs` hands over its value, gradient and
//! two moment buffers (checked to share its shape); values and moments
//! must be f32 on one device. They are updated in place: each is made a
//! dense, unshared buffer first (a copy only if a view or another tensor
//! still shares it), so no other tensor ever sees the change, as on the
//! CPU. Moments restored on the host are moved to the GPU here.

use kernels::cuda::adamw::{adamw_step as launch, AdamWConfig, AdamWParam};

use super::{bring, ok, packed, storage_mut};
use crate::dtype::DType;
use crate::ops::optim::{AdamWSettings, AdamWSlot};
use crate::tensor::Tensor;

/// Makes `t` a dense f32 buffer that nothing else shares, for an in-place update.
fn own(t: &mut Tensor) {
    assert_eq!(t.dtype(), DType::F32, "AdamW on CUDA: parameters and moments must be float32, got {}", t.dtype());
    let whole = t.is_contiguous() && t.layout().offset() == 0 && super::storage(t).len() == t.numel();
    if !whole {
        *t = super::shape::contiguous_copy(t);
    }
}

/// One AdamW step over all `slots` (PyTorch's formula, as the CPU kernel).
pub(crate) fn adamw_step(slots: &mut [AdamWSlot<'_>], settings: &AdamWSettings) {
    let device = slots[0].param.device();
    let grads: Vec<Tensor> =
        slots.iter().map(|s| packed(&bring(&s.grad.to_dtype(DType::F32), device, "adamw"))).collect();
    for s in slots.iter_mut() {
        own(s.param);
        *s.m = bring(s.m, device, "adamw");
        *s.v = bring(s.v, device, "adamw");
        own(s.m);
        own(s.v);
    }
    let dev = super::cuda_device(slots[0].param).clone();
    let AdamWSettings { lr, betas, eps, weight_decay } = *settings;
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
