//! One transformer block, pre-norm as GPT-2 and the Llama family:
//!   x = x + dropout(attn(norm_1(x)))
//!   x = x + dropout(mlp(norm_2(x)))
//! The residual additions let gradients flow straight from the loss to every
//! layer; the norms keep each branch's input well scaled.
//!
//! The MLP is GPT-2's `c_proj(gelu(c_fc(x)))`, 4× wide, or the Llama
//! family's SwiGLU, `down_proj(silu(gate_proj(x)) ⊙ up_proj(x))`: a gate
//! decides, per hidden unit, how much of `up` passes. With three matrices
//! instead of two, its width is about ⅔ of 4·C for the same parameters.
//! Phi-3 computes gate and up with one projection, `gate_up_proj` C → 2F
//! (rows gate, then up), and splits its output in two halves.
//! The Gemma family gates with GELU instead (GeGLU, `gelu_tanh(gate) ⊙
//! up`), and Gemma 2 and 3 norm each branch's output as well as its input
//! ("sandwich" norms), before it joins the residual stream:
//!   x = x + post_attention_layernorm(attn(input_layernorm(x)))
//!   x = x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))
//! Mixtral and Qwen3-MoE route each token to k of E such MLPs (`moe`).
//!
//! Names follow Hugging Face: GPT-2's `ln_1`, `attn`, `ln_2`, `mlp.c_fc`;
//! the Llama family's `input_layernorm`, `self_attn`,
//! `post_attention_layernorm`, `mlp.gate_proj`; Mixtral's experts sit in
//! `block_sparse_moe`.

use std::sync::Mutex;

use autograd::nn::Module;
use autograd::{dropout, swiglu, Var};
use tensor::{Generator, RopeTables};

use super::attention::CausalSelfAttention;
use super::build::LayerSource;
use super::config::{GPTConfig, ModelType};
use super::kv_cache::LayerCache;
use super::moe::RoutedMlp;
use super::norm::Norm;
use super::projection::{project_shared_input, Projection};
use super::trace::Trace;

pub enum Mlp {
    /// GPT-2: C → 4C, GELU, 4C → C.
    Gelu { c_fc: Box<dyn Projection>, c_proj: Box<dyn Projection> },
    /// The Llama family: gate and up C → F, SwiGLU, down F → C.
    SwiGlu { gate_proj: Box<dyn Projection>, up_proj: Box<dyn Projection>, down_proj: Box<dyn Projection> },
    /// Phi-3: gate and up fused, C → 2F, SwiGLU of its two halves, down F → C.
    FusedSwiGlu { gate_up_proj: Box<dyn Projection>, down_proj: Box<dyn Projection> },
    /// The Gemma family: the same three projections, GELU (tanh) as the gate.
    GeGlu { gate_proj: Box<dyn Projection>, up_proj: Box<dyn Projection>, down_proj: Box<dyn Projection> },
    /// Mixtral, Qwen3-MoE: a router and E SwiGLU experts, k per token.
    Routed(RoutedMlp),
}

impl Mlp {
    fn build<S: LayerSource>(config: &GPTConfig, layer: usize, name: &str, src: &mut S) -> Result<Mlp, S::Error> {
        if config.moe.as_ref().is_some_and(|m| m.is_sparse(layer)) {
            return Ok(Mlp::Routed(RoutedMlp::build(config, name, src)?));
        }
        let (c, f, bias) = (config.emb_dim, config.mlp_width(), config.mlp_bias);
        let proj_std = 0.02 / (2.0 * config.n_layers as f64).sqrt();
        let mut proj = |part: &str, i, o, std| src.projection(&format!("{name}.{part}"), i, o, bias, std);
        Ok(if config.model_type.is_gpt2() {
            Mlp::Gelu { c_fc: proj("c_fc", c, f, 0.02)?, c_proj: proj("c_proj", f, c, proj_std)? }
        } else if config.model_type.fuses_projections() {
            Mlp::FusedSwiGlu {
                gate_up_proj: proj("gate_up_proj", c, 2 * f, 0.02)?,
                down_proj: proj("down_proj", f, c, proj_std)?,
            }
        } else {
            let (gate_proj, up_proj) = (proj("gate_proj", c, f, 0.02)?, proj("up_proj", c, f, 0.02)?);
            let down_proj = proj("down_proj", f, c, proj_std)?;
            if config.model_type.is_gemma() {
                Mlp::GeGlu { gate_proj, up_proj, down_proj }
            } else {
                Mlp::SwiGlu { gate_proj, up_proj, down_proj }
            }
        })
    }

    /// A routed MLP pushes its router's logits onto `router_logits`, when
    /// given.
    pub fn forward(&self, x: &Var, router_logits: Option<&mut Vec<Var>>) -> Var {
        match self {
            Mlp::Gelu { c_fc, c_proj } => c_proj.forward(&c_fc.forward(x).gelu()),
            Mlp::SwiGlu { gate_proj, up_proj, down_proj } => {
                let [gate, up] = project_shared_input([&**gate_proj, &**up_proj], x);
                down_proj.forward(&swiglu(&gate, &up))
            }
            Mlp::FusedSwiGlu { gate_up_proj, down_proj } => {
                // [.., 2F]: the gate's F columns, then up's (views, no copy).
                let gate_up = gate_up_proj.forward(x);
                let f = gate_up.dims()[gate_up.dims().len() - 1] / 2;
                down_proj.forward(&swiglu(&gate_up.narrow(-1, 0, f), &gate_up.narrow(-1, f, f)))
            }
            // Composed of existing ops (GELU, product): no fused kernel.
            Mlp::GeGlu { gate_proj, up_proj, down_proj } => {
                let [gate, up] = project_shared_input([&**gate_proj, &**up_proj], x);
                down_proj.forward(&gate.gelu().mul(&up))
            }
            Mlp::Routed(routed) => routed.forward(x, router_logits),
        }
    }

    /// The projections, named inside the MLP.
    pub fn projections(&self) -> Vec<(String, &dyn Projection)> {
        match self {
            Mlp::Gelu { c_fc, c_proj } => named(vec![("c_fc", &**c_fc), ("c_proj", &**c_proj)]),
            Mlp::SwiGlu { gate_proj, up_proj, down_proj } | Mlp::GeGlu { gate_proj, up_proj, down_proj } => {
                named(vec![("gate_proj", &**gate_proj), ("up_proj", &**up_proj), ("down_proj", &**down_proj)])
            }
            Mlp::FusedSwiGlu { gate_up_proj, down_proj } => {
                named(vec![("gate_up_proj", &**gate_up_proj), ("down_proj", &**down_proj)])
            }
            Mlp::Routed(routed) => routed.projections(),
        }
    }

    pub fn projections_mut(&mut self) -> Vec<(String, &mut Box<dyn Projection>)> {
        match self {
            Mlp::Gelu { c_fc, c_proj } => named(vec![("c_fc", c_fc), ("c_proj", c_proj)]),
            Mlp::SwiGlu { gate_proj, up_proj, down_proj } | Mlp::GeGlu { gate_proj, up_proj, down_proj } => {
                named(vec![("gate_proj", gate_proj), ("up_proj", up_proj), ("down_proj", down_proj)])
            }
            Mlp::FusedSwiGlu { gate_up_proj, down_proj } => {
                named(vec![("gate_up_proj", gate_up_proj), ("down_proj", down_proj)])
            }
            Mlp::Routed(routed) => routed.projections_mut(),
        }
    }
}

/// Fixed names as owned ones (a routed MLP's are made per expert).
fn named<P>(list: Vec<(&str, P)>) -> Vec<(String, P)> {
    list.into_iter().map(|(n, p)| (n.to_string(), p)).collect()
}

/// The names of a block's parts in this config's family.
struct PartNames {
    norm_1: &'static str,
    attn: &'static str,
    norm_2: &'static str,
    mlp: &'static str,
}

/// The names of Gemma 2 and 3's norms after the attention and the MLP.
const POST_NORMS: [&str; 2] = ["post_attention_layernorm", "post_feedforward_layernorm"];

fn part_names(config: &GPTConfig) -> PartNames {
    if config.model_type.is_gpt2() {
        PartNames { norm_1: "ln_1", attn: "attn", norm_2: "ln_2", mlp: "mlp" }
    } else if config.model_type.has_post_norms() {
        // `post_attention_layernorm` is the attention's output norm here.
        PartNames { norm_1: "input_layernorm", attn: "self_attn", norm_2: "pre_feedforward_layernorm", mlp: "mlp" }
    } else {
        let mlp = if config.model_type == ModelType::Mixtral { "block_sparse_moe" } else { "mlp" };
        PartNames { norm_1: "input_layernorm", attn: "self_attn", norm_2: "post_attention_layernorm", mlp }
    }
}

pub struct Block {
    pub ln_1: Norm,
    pub attn: CausalSelfAttention,
    pub ln_2: Norm,
    pub mlp: Mlp,
    /// Gemma 2 and 3's norms of the attention's and the MLP's outputs.
    pub post_norms: Option<[Norm; 2]>,
    names: PartNames,
    drop_rate: f64,
}

impl Block {
    /// Block `layer`, named `name` (`h.3`, `layers.3`), from `src`.
    pub fn build<S: LayerSource>(config: &GPTConfig, layer: usize, name: &str, src: &mut S) -> Result<Block, S::Error> {
        let names = part_names(config);
        let c = config.emb_dim;
        let post_norms = if config.model_type.has_post_norms() {
            let [a, m] = POST_NORMS.map(|part| format!("{name}.{part}"));
            Some([Norm::build(config, &a, c, src)?, Norm::build(config, &m, c, src)?])
        } else {
            None
        };
        Ok(Block {
            ln_1: Norm::build(config, &format!("{name}.{}", names.norm_1), c, src)?,
            attn: CausalSelfAttention::build(config, layer, &format!("{name}.{}", names.attn), src)?,
            ln_2: Norm::build(config, &format!("{name}.{}", names.norm_2), c, src)?,
            mlp: Mlp::build(config, layer, &format!("{name}.{}", names.mlp), src)?,
            post_norms,
            names,
            drop_rate: config.drop_rate,
        })
    }

    /// `training` turns dropout on, drawing its masks from `gen`; a `trace`
    /// receives the attention weights (see `Trace`); `router_logits` a
    /// routed MLP's router logits.
    pub fn forward(
        &self,
        x: &Var,
        rope: Option<&RopeTables>,
        cache: Option<&mut LayerCache>,
        training: bool,
        gen: &Mutex<Generator>,
        trace: Option<&mut Trace>,
        router_logits: Option<&mut Vec<Var>>,
    ) -> Var {
        let drop = |v: Var| dropout(&v, self.drop_rate, training, &mut gen.lock().unwrap());
        let post = |i: usize, y: Var| match &self.post_norms {
            Some(norms) => norms[i].forward(&y),
            None => y,
        };
        let x = x.add(&drop(post(0, self.attn.forward(&self.ln_1.forward(x), rope, cache, trace))));
        x.add(&drop(post(1, self.mlp.forward(&self.ln_2.forward(&x), router_logits))))
    }

    /// The projections, named inside the block (`attn.c_attn`,
    /// `self_attn.q_proj`, `mlp.gate_proj`, …), in the order they run.
    pub fn projections(&self) -> Vec<(String, &dyn Projection)> {
        let attn = self.attn.projections().into_iter().map(|(n, p)| (format!("{}.{n}", self.names.attn), p));
        let mlp = self.mlp.projections().into_iter().map(|(n, p)| (format!("{}.{n}", self.names.mlp), p));
        attn.chain(mlp).collect()
    }

    /// As [`Block::projections`], each slot open to a replacement.
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Box<dyn Projection>)> {
        let attn_name = self.names.attn;
        let attn = self.attn.projections_mut().into_iter().map(move |(n, p)| (format!("{attn_name}.{n}"), p));
        let mlp_name = self.names.mlp;
        let mlp = self.mlp.projections_mut().into_iter().map(move |(n, p)| (format!("{mlp_name}.{n}"), p));
        attn.chain(mlp).collect()
    }

    pub fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        self.ln_1.visit_parameters(&format!("{prefix}.{}", self.names.norm_1), f);
        self.attn.visit_parameters(&format!("{prefix}.{}", self.names.attn), f);
        self.ln_2.visit_parameters(&format!("{prefix}.{}", self.names.norm_2), f);
        for (name, p) in self.mlp.projections() {
            p.visit_parameters(&format!("{prefix}.{}.{name}", self.names.mlp), f);
        }
        if let Some(norms) = &self.post_norms {
            for (part, norm) in POST_NORMS.iter().zip(norms) {
                norm.visit_parameters(&format!("{prefix}.{part}"), f);
            }
        }
    }
}
