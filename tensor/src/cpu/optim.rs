//! AdamW for host parameters: one pass per parameter through the fused
//! kernel `kernels::cpu::adamw`, which updates the value and both moments
//! in place (f32 or f64; the gradient and moments in the value's dtype).

use kernels::cpu::adamw::{adamw, AdamWStep};

use crate::dtype::DType;
use crate::ops::optim::{AdamWSettings, AdamWSlot};

pub(crate) fn adamw_step(slots: &mut [AdamWSlot<'_>], settings: &AdamWSettings) {
    for slot in slots {
        let h = AdamWStep {
            lr: settings.lr,
            beta1: settings.betas.0,
            beta2: settings.betas.1,
            eps: settings.eps,
            weight_decay: settings.weight_decay,
            t: slot.step,
        };
        let (g, m, v) = (slot.grad, &mut *slot.m, &mut *slot.v);
        match slot.param.dtype() {
            DType::F32 => {
                adamw(slot.param.data_mut::<f32>(), &g.contiguous_data::<f32>(), m.data_mut(), v.data_mut(), h)
            }
            DType::F64 => {
                adamw(slot.param.data_mut::<f64>(), &g.contiguous_data::<f64>(), m.data_mut(), v.data_mut(), h)
            }
            d => panic!("AdamW: parameters must be float32 or float64, got {d}"),
        }
    }
}
