//! Learning-rate schedules.
//!
//! Warmup then cosine decay (GPT-2/3, nanoGPT): the rate climbs linearly
//! from 0 to `max_lr` over `warmup` steps, so early large gradients do not
//! wreck the random initialisation, then follows half a cosine down to
//! `min_lr` at `total` steps and stays there.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    Constant(f64),
    WarmupCosine {
        max_lr: f64,
        min_lr: f64,
        warmup: usize,
        total: usize,
    },
    /// Linear warmup, then constant.
    Warmup {
        max_lr: f64,
        warmup: usize,
    },
}

impl LrSchedule {
    /// The rate for 0-based `step`.
    pub fn lr_at(&self, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant(lr) => lr,
            LrSchedule::Warmup { max_lr, warmup } => {
                if step < warmup {
                    max_lr * (step + 1) as f64 / warmup as f64
                } else {
                    max_lr
                }
            }
            LrSchedule::WarmupCosine { max_lr, min_lr, warmup, total } => {
                if step < warmup {
                    return max_lr * (step + 1) as f64 / warmup as f64;
                }
                if step >= total {
                    return min_lr;
                }
                let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                min_lr + 0.5 * (max_lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule::WarmupCosine { max_lr: 1.0, min_lr: 0.1, warmup: 10, total: 110 };
        assert_eq!(s.lr_at(0), 0.1);
        assert_eq!(s.lr_at(9), 1.0);
        assert!((s.lr_at(60) - 0.55).abs() < 1e-12);
        assert_eq!(s.lr_at(500), 0.1);
    }
}
