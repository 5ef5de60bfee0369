//! Stochastic gradient descent with momentum and weight decay, as
//! `torch.optim.SGD` (dampening 0, no Nesterov):
//!   g ← g + λ·p;   b ← μ·b + g (b = g on the first step);   p ← p − lr·b

use tensor::Tensor;

use super::Optimizer;
use crate::var::Var;

pub struct Sgd {
    params: Vec<Var>,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    pub fn new(params: Vec<Var>, lr: f64) -> Self {
        Sgd::with_options(params, lr, 0.0, 0.0)
    }

    pub fn with_options(params: Vec<Var>, lr: f64, momentum: f64, weight_decay: f64) -> Self {
        let n = params.len();
        Sgd { params, lr, momentum, weight_decay, buffers: vec![None; n] }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) {
        for (p, buf) in self.params.iter().zip(&mut self.buffers) {
            let Some(mut g) = p.grad() else { continue };
            let value = p.data();
            if self.weight_decay != 0.0 {
                g = g.add(&value.mul_scalar(self.weight_decay));
            }
            if self.momentum != 0.0 {
                g = match buf.take() {
                    Some(b) => b.mul_scalar(self.momentum).add(&g),
                    None => g,
                };
                *buf = Some(g.clone());
            }
            p.set_data(value.sub(&g.mul_scalar(self.lr)));
        }
    }

    fn zero_grad(&self) {
        self.params.iter().for_each(|p| p.zero_grad());
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}
