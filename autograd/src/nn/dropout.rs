//! Dropout as a layer: active in training mode, the identity in eval mode.
//! It owns a seeded generator so runs repeat exactly.

use std::sync::Mutex;

use tensor::Generator;

use super::Module;
use crate::ops::dropout::dropout;
use crate::var::Var;

pub struct Dropout {
    pub p: f64,
    training: bool,
    gen: Mutex<Generator>,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Self {
        Dropout { p, training: true, gen: Mutex::new(Generator::seed(seed)) }
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Var) -> Var {
        dropout(x, self.p, self.training, &mut self.gen.lock().unwrap())
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Var)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
