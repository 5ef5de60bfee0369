//! One transformer block, pre-LayerNorm as GPT-2:
//!   x = x + dropout(attn(ln_1(x)))
//!   x = x + dropout(mlp(ln_2(x)))        mlp = c_proj(gelu(c_fc(·))), 4× wide
//! The residual additions let gradients flow straight from the loss to every
//! layer; the norms keep each branch's input well scaled.

use std::sync::Mutex;

use autograd::nn::{LayerNorm, Module};
use autograd::{dropout, Var};
use tensor::Generator;

use super::attention::CausalSelfAttention;
use super::config::GPTConfig;
use super::init::gpt2_linear;
use super::kv_cache::LayerCache;
use super::projection::Projection;

pub struct Mlp {
    pub c_fc: Box<dyn Projection>,
    pub c_proj: Box<dyn Projection>,
}

impl Mlp {
    pub fn forward(&self, x: &Var) -> Var {
        self.c_proj.forward(&self.c_fc.forward(x).gelu())
    }
}

pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: CausalSelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
    drop_rate: f64,
}

impl Block {
    pub fn new(config: &GPTConfig, gen: &mut Generator) -> Self {
        let c = config.emb_dim;
        let proj_std = 0.02 / (2.0 * config.n_layers as f64).sqrt();
        Block {
            ln_1: LayerNorm::with_eps(c, config.layer_norm_eps),
            attn: CausalSelfAttention::new(config, gen),
            ln_2: LayerNorm::with_eps(c, config.layer_norm_eps),
            mlp: Mlp {
                c_fc: Box::new(gpt2_linear(c, 4 * c, true, 0.02, gen)),
                c_proj: Box::new(gpt2_linear(4 * c, c, true, proj_std, gen)),
            },
            drop_rate: config.drop_rate,
        }
    }

    /// From existing layers (a loader that builds layers itself); the
    /// norms take the config's ε.
    pub fn from_parts(
        mut ln_1: LayerNorm,
        attn: CausalSelfAttention,
        mut ln_2: LayerNorm,
        mlp: Mlp,
        config: &GPTConfig,
    ) -> Self {
        (ln_1.eps, ln_2.eps) = (config.layer_norm_eps, config.layer_norm_eps);
        Block { ln_1, attn, ln_2, mlp, drop_rate: config.drop_rate }
    }

    /// `training` turns dropout on, drawing its masks from `gen`.
    pub fn forward(&self, x: &Var, cache: Option<&mut LayerCache>, training: bool, gen: &Mutex<Generator>) -> Var {
        let drop = |v: Var| dropout(&v, self.drop_rate, training, &mut gen.lock().unwrap());
        let x = x.add(&drop(self.attn.forward(&self.ln_1.forward(x), cache)));
        x.add(&drop(self.mlp.forward(&self.ln_2.forward(&x))))
    }

    /// The four projections, named inside the block.
    pub fn projections(&self) -> [(&'static str, &dyn Projection); 4] {
        [
            ("attn.c_attn", &*self.attn.c_attn),
            ("attn.c_proj", &*self.attn.c_proj),
            ("mlp.c_fc", &*self.mlp.c_fc),
            ("mlp.c_proj", &*self.mlp.c_proj),
        ]
    }

    /// As [`Block::projections`], each slot open to a replacement.
    pub fn projections_mut(&mut self) -> [(&'static str, &mut Box<dyn Projection>); 4] {
        [
            ("attn.c_attn", &mut self.attn.c_attn),
            ("attn.c_proj", &mut self.attn.c_proj),
            ("mlp.c_fc", &mut self.mlp.c_fc),
            ("mlp.c_proj", &mut self.mlp.c_proj),
        ]
    }

    pub fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        self.ln_1.visit_parameters(&format!("{prefix}.ln_1"), f);
        self.attn.visit_parameters(&format!("{prefix}.attn"), f);
        self.ln_2.visit_parameters(&format!("{prefix}.ln_2"), f);
        self.mlp.c_fc.visit_parameters(&format!("{prefix}.mlp.c_fc"), f);
        self.mlp.c_proj.visit_parameters(&format!("{prefix}.mlp.c_proj"), f);
    }
}
