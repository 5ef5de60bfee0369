//! A mixture of experts: the MLP of Mixtral and Qwen3-MoE, E SwiGLU MLPs
//! ("experts") of which each token uses only k.
//!
//! A router, a linear layer C → E without bias, scores every expert for
//! every token; softmax turns the scores into probabilities; the k most
//! probable experts run on the token, and their outputs are summed,
//! weighted by their probabilities (renormalised to sum to 1 by Mixtral,
//! and by Qwen3-MoE when `norm_topk_prob`). So the model holds E MLPs'
//! parameters but spends the compute of k per token: Mixtral 8x7B has
//! 46.7B parameters and uses 12.9B of them for each token.
//!
//! Shapes, for N = B·T tokens of width C:
//!
//! ```text
//! x [N, C] → router logits [N, E] → softmax → top-k ids and weights [N, k]
//! for each expert e, the n_e rows routed to it:
//!     dispatch   rows_e = x[tokens_e]                     [n_e, C]  (index_select)
//!     expert     y_e = down(silu(gate(rows_e)) ⊙ up(rows_e))  [n_e, C]
//!     combine    out[tokens_e] += weight_e · y_e          [N, C]    (index_add)
//! ```
//!
//! Each expert is one grouped product over its own tokens, never over all
//! N: that is what makes the layer sparse. The choice and the grouping are
//! one tensor op (`Tensor::route_top_k`), which runs where the
//! probabilities are: on a GPU only each expert's row count comes back to
//! the host. Dispatch and combine are
//! differentiable (`index_select`'s backward is an `index_add` and the other
//! way round), so every expert gets the gradient of the rows it saw. The
//! choice of the k experts is not differentiable, but their weights are:
//! the router learns through the softmax probabilities of the experts it
//! chose.
//!
//! Left alone, a router tends to send everything to a few experts, which
//! then learn faster and get chosen more. Training adds the Switch
//! Transformer's load-balancing loss ([`load_balancing_loss`]), which is
//! smallest when tokens and probability spread evenly over the experts.
//!
//! Names follow Hugging Face's files: Mixtral's
//! `block_sparse_moe.gate` and `block_sparse_moe.experts.3.w1` (gate), `w3`
//! (up), `w2` (down); Qwen3-MoE's `mlp.gate` and
//! `mlp.experts.3.gate_proj`, `up_proj`, `down_proj`. Each expert is stored
//! as its own three matrices, the way `save_pretrained` writes them.

use autograd::{swiglu, Var};
use serde::{Deserialize, Serialize};
use tensor::Tensor;

use super::build::LayerSource;
use super::config::{GPTConfig, ModelType};
use super::projection::Projection;

/// The options of a mixture-of-experts MLP (`config.json`'s
/// `num_local_experts`/`num_experts`, `num_experts_per_tok`, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoeConfig {
    /// Experts per layer, E.
    pub n_experts: usize,
    /// Experts each token goes to, k.
    pub top_k: usize,
    /// Whether the k chosen probabilities are renormalised to sum to 1
    /// (always for Mixtral; Qwen3-MoE's `norm_topk_prob`).
    pub norm_topk_prob: bool,
    /// Each expert's hidden width (Mixtral's `intermediate_size`,
    /// Qwen3-MoE's `moe_intermediate_size`).
    pub expert_width: usize,
    /// The load-balancing loss's weight in the training loss.
    pub router_aux_loss_coef: f64,
    /// Whether training adds the load-balancing loss (transformers adds it
    /// to the loss only when the config's `output_router_logits` is on).
    pub output_router_logits: bool,
    /// Layers with a dense MLP instead (Qwen3-MoE's `mlp_only_layers`).
    #[serde(default)]
    pub dense_layers: Vec<usize>,
    /// Every this-many-th layer is sparse (Qwen3-MoE's
    /// `decoder_sparse_step`; 1: all of them).
    #[serde(default = "one")]
    pub sparse_step: usize,
}

fn one() -> usize {
    1
}

impl MoeConfig {
    /// E experts of `expert_width`, k per token, renormalised, in every
    /// layer; training without the load-balancing loss, whose weight is
    /// transformers' default. What a GGUF file describes (it keeps no
    /// training options).
    pub fn new(n_experts: usize, top_k: usize, expert_width: usize) -> Self {
        MoeConfig {
            n_experts,
            top_k,
            norm_topk_prob: true,
            expert_width,
            router_aux_loss_coef: 0.001,
            output_router_logits: false,
            dense_layers: Vec::new(),
            sparse_step: 1,
        }
    }

    /// Whether layer `layer` routes (else it has a dense MLP), as
    /// Qwen3-MoE decides.
    pub fn is_sparse(&self, layer: usize) -> bool {
        !self.dense_layers.contains(&layer) && (layer + 1) % self.sparse_step.max(1) == 0
    }

    pub fn validate(&self, n_layers: usize) -> Result<(), String> {
        if self.n_experts == 0 || self.top_k == 0 || self.expert_width == 0 || self.sparse_step == 0 {
            return Err(
                "num_experts, num_experts_per_tok, the experts' width and decoder_sparse_step must be positive".into(),
            );
        }
        if self.n_experts > tensor::ops::moe_route::MAX_EXPERTS {
            return Err(format!(
                "{} experts is more than the limit of {}",
                self.n_experts,
                tensor::ops::moe_route::MAX_EXPERTS
            ));
        }
        if self.top_k > self.n_experts {
            return Err(format!("num_experts_per_tok {} is more than the {} experts", self.top_k, self.n_experts));
        }
        if let Some(layer) = self.dense_layers.iter().find(|&&l| l >= n_layers) {
            return Err(format!("mlp_only_layers names layer {layer} of {n_layers}"));
        }
        if !self.router_aux_loss_coef.is_finite() {
            return Err("router_aux_loss_coef is not a finite number".into());
        }
        // mlp_only_layers naming every layer, or a decoder_sparse_step past
        // the last, leaves no routed layer: a dense model calling itself a
        // mixture, with no router for the load-balancing loss to read.
        if !(0..n_layers).any(|layer| self.is_sparse(layer)) {
            return Err(format!(
                "no layer is a mixture of experts (mlp_only_layers {:?}, decoder_sparse_step {}, {n_layers} layers)",
                self.dense_layers, self.sparse_step
            ));
        }
        Ok(())
    }
}

/// One expert: a SwiGLU MLP, C → F → C.
pub struct Expert {
    pub gate: Box<dyn Projection>,
    pub up: Box<dyn Projection>,
    pub down: Box<dyn Projection>,
}

impl Expert {
    fn forward(&self, x: &Var) -> Var {
        self.down.forward(&swiglu(&self.gate.forward(x), &self.up.forward(x)))
    }
}

/// A routed MLP: the router and E experts.
pub struct RoutedMlp {
    pub router: Box<dyn Projection>,
    pub experts: Vec<Expert>,
    pub top_k: usize,
    pub norm_topk_prob: bool,
    /// The names of an expert's gate, up and down projections in this family.
    part_names: [&'static str; 3],
}

/// An expert's gate, up and down projections as the family names them.
fn expert_part_names(model_type: ModelType) -> [&'static str; 3] {
    match model_type {
        ModelType::Mixtral => ["w1", "w3", "w2"],
        _ => ["gate_proj", "up_proj", "down_proj"],
    }
}

/// The routed MLP's computation with the experts given as a function
/// (`expert(e, rows)`), for the layer and for the gradient check:
/// `x` `[N, C]` and its router logits `[N, E]` → `[N, C]`.
pub fn routed_forward(
    x: &Var,
    logits: &Var,
    top_k: usize,
    normalize: bool,
    expert: &dyn Fn(usize, &Var) -> Var,
) -> Var {
    let (n, c) = (x.dims()[0], x.dims()[1]);
    let probs = logits.softmax(-1);
    // The choice, on the probabilities' device: ids [N, k] and the tokens
    // grouped by expert (the choice has no gradient; the weights below do).
    let routing = probs.data().route_top_k(top_k);
    let weights = probs.gather(1, &routing.chosen); // [N, k], differentiable
    let weights = if normalize { weights.div(&weights.sum(-1, true)) } else { weights };
    let weights = weights.reshape(&[(n * top_k) as isize, 1]);
    let mut out = Var::constant(Tensor::zeros_on([n, c], x.dtype(), x.data().device()));
    // Expert by expert, in order, as transformers adds them up.
    for e in 0..routing.n_experts() {
        if routing.count(e) == 0 {
            continue;
        }
        let (tokens, positions) = routing.expert(e); // views of the grouped lists
        let rows = x.index_select(0, &tokens); // dispatch [n_e, C]
        let y = expert(e, &rows).mul(&weights.index_select(0, &positions)); // [n_e, C] · [n_e, 1]
        out = out.index_add(0, &tokens, &y); // combine
    }
    out
}

impl RoutedMlp {
    pub(crate) fn build<S: LayerSource>(config: &GPTConfig, name: &str, src: &mut S) -> Result<RoutedMlp, S::Error> {
        let moe = config.moe.as_ref().expect("a routed MLP has MoE options");
        let (c, f) = (config.emb_dim, moe.expert_width);
        let proj_std = 0.02 / (2.0 * config.n_layers as f64).sqrt();
        let part_names = expert_part_names(config.model_type);
        let router = src.projection(&format!("{name}.gate"), c, moe.n_experts, false, 0.02)?;
        let experts = (0..moe.n_experts)
            .map(|e| {
                let mut proj =
                    |part: &str, i, o, std| src.projection(&format!("{name}.experts.{e}.{part}"), i, o, false, std);
                Ok(Expert {
                    gate: proj(part_names[0], c, f, 0.02)?,
                    up: proj(part_names[1], c, f, 0.02)?,
                    down: proj(part_names[2], f, c, proj_std)?,
                })
            })
            .collect::<Result<Vec<_>, S::Error>>()?;
        Ok(RoutedMlp { router, experts, top_k: moe.top_k, norm_topk_prob: moe.norm_topk_prob, part_names })
    }

    /// `[.., C]` → `[.., C]`; the router's logits `[N, E]` are pushed onto
    /// `router_logits` when given (for the load-balancing loss).
    pub fn forward(&self, x: &Var, router_logits: Option<&mut Vec<Var>>) -> Var {
        let shape = x.data().shape().clone();
        let c = *x.dims().last().expect("a routed MLP's input has a last dimension");
        let flat = x.reshape(&[-1, c as isize]);
        let logits = self.router.forward(&flat);
        if let Some(log) = router_logits {
            log.push(logits.clone());
        }
        let out =
            routed_forward(&flat, &logits, self.top_k, self.norm_topk_prob, &|e, rows| self.experts[e].forward(rows));
        out.reshape_to(&shape)
    }

    /// The router (`gate`) and every expert's projections
    /// (`experts.3.w1`, …), named inside the MLP.
    pub fn projections(&self) -> Vec<(String, &dyn Projection)> {
        let mut all = vec![("gate".to_string(), &*self.router)];
        for (e, expert) in self.experts.iter().enumerate() {
            for (part, p) in self.part_names.iter().zip([&expert.gate, &expert.up, &expert.down]) {
                all.push((format!("experts.{e}.{part}"), &**p));
            }
        }
        all
    }

    pub fn projections_mut(&mut self) -> Vec<(String, &mut Box<dyn Projection>)> {
        let names = self.part_names;
        let mut all = vec![("gate".to_string(), &mut self.router)];
        for (e, expert) in self.experts.iter_mut().enumerate() {
            for (part, p) in names.iter().zip([&mut expert.gate, &mut expert.up, &mut expert.down]) {
                all.push((format!("experts.{e}.{part}"), p));
            }
        }
        all
    }
}

/// The Switch Transformer's load-balancing loss over every routed layer's
/// logits `[N, E]`, as `transformers`' `load_balancing_loss_func` computes
/// it (without a padding mask):
///
/// ```text
/// f_e = (times expert e is among a token's top k) / rows     (no gradient)
/// P_e = (sum of expert e's softmax probability) / rows
/// loss = E · Σ_e f_e · P_e
/// ```
///
/// rows counting every layer's tokens. With routing spread evenly
/// (f_e = k/E, P_e = 1/E) it is k; it grows as the routing concentrates,
/// and its gradient, through P, pulls probability away from busy experts.
pub fn load_balancing_loss(router_logits: &[Var], n_experts: usize, top_k: usize) -> Var {
    assert!(!router_logits.is_empty(), "load_balancing_loss: no routed layer ran");
    let mut counts = vec![0.0f64; n_experts];
    let mut rows = 0usize;
    let mut prob_sum: Option<Var> = None;
    for logits in router_logits {
        let probs = logits.softmax(-1);
        // Times each expert was chosen: the sizes of its group.
        let routing = probs.data().route_top_k(top_k);
        for (e, count) in counts.iter_mut().enumerate() {
            *count += routing.count(e) as f64;
        }
        rows += logits.dims()[0];
        let per_expert = probs.sum(0, false); // [E]
        prob_sum = Some(match prob_sum {
            None => per_expert,
            Some(sum) => sum.add(&per_expert),
        });
    }
    let prob_sum = prob_sum.expect("at least one layer");
    let counts = Tensor::from_vec(counts, [n_experts]).expect("E counts").to_dtype(prob_sum.dtype());
    let counts =
        Var::constant(counts.to_device(prob_sum.data().device()).expect("the counts move to the logits' device"));
    let rows = rows as f64;
    prob_sum.mul(&counts).sum_all().mul_scalar(n_experts as f64 / (rows * rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::gradcheck::gradcheck;
    use autograd::ops::linear::linear;
    use tensor::{DType, Generator};

    fn random(dims: &[usize], gen: &mut Generator) -> Tensor {
        Tensor::uniform(dims.to_vec(), -1.0, 1.0, DType::F64, gen)
    }

    /// Four experts, top 2, on 6 tokens: the routed layer's gradient, with
    /// respect to the input, the router and each expert's weights, against
    /// finite differences in f64 (renormalised and not).
    #[test]
    fn routed_mlp_passes_the_gradient_check() {
        let (n, c, f, e) = (6, 4, 3, 4);
        let mut gen = Generator::seed(3);
        let mut inputs = vec![random(&[n, c], &mut gen), random(&[e, c], &mut gen)];
        for _ in 0..e {
            inputs.extend([random(&[f, c], &mut gen), random(&[f, c], &mut gen), random(&[c, f], &mut gen)]);
        }
        for normalize in [true, false] {
            let layer = move |v: &[Var]| {
                let expert = |i: usize, rows: &Var| {
                    let (gate, up, down) = (&v[2 + 3 * i], &v[3 + 3 * i], &v[4 + 3 * i]);
                    linear(&swiglu(&linear(rows, gate, None), &linear(rows, up, None)), down, None)
                };
                routed_forward(&v[0], &linear(&v[0], &v[1], None), 2, normalize, &expert).tanh()
            };
            let report = gradcheck(&layer, &inputs);
            assert!(report.pass, "normalize {normalize}: {report}");
        }
    }

    /// What this crate does not build is refused by name: router jitter
    /// in config.json, and layers none of which routes.
    #[test]
    fn unsupported_options_are_refused_by_name() {
        let mut v = GPTConfig::preset("mixtral-8x7b").unwrap().to_hf_json(None);
        v["router_jitter_noise"] = serde_json::json!(0.01);
        assert!(GPTConfig::from_hf_json(&v).unwrap_err().contains("router_jitter_noise 0.01 is not supported"));
        v["router_jitter_noise"] = serde_json::json!(0.0);
        v["num_experts_per_tok"] = serde_json::json!(9);
        assert!(GPTConfig::from_hf_json(&v).unwrap_err().contains("num_experts_per_tok 9 is more than the 8 experts"));
        let mut v = GPTConfig::preset("qwen3-30b-a3b").unwrap().to_hf_json(None);
        v["mlp_only_layers"] = serde_json::json!((0..48).collect::<Vec<_>>());
        assert!(GPTConfig::from_hf_json(&v).unwrap_err().contains("no layer is a mixture of experts"));
        v["mlp_only_layers"] = serde_json::json!([]);
        v["decoder_sparse_step"] = serde_json::json!(49);
        assert!(GPTConfig::from_hf_json(&v).unwrap_err().contains("no layer is a mixture of experts"));
    }

    /// The routing as this layer made it before the tensor op existed, on
    /// the host: a stable sort of each row, then each token appended to its
    /// experts' lists in token order.
    #[allow(clippy::type_complexity)]
    fn route_on_the_host(probs: &Tensor, k: usize) -> (Vec<i64>, Vec<(Vec<i64>, Vec<i64>)>) {
        let (n, e) = (probs.dim(0), probs.dim(1));
        let values = probs.to_f64_vec();
        let mut chosen = Vec::with_capacity(n * k);
        let mut per_expert = vec![(Vec::new(), Vec::new()); e];
        for token in 0..n {
            let row = &values[token * e..(token + 1) * e];
            let mut order: Vec<usize> = (0..e).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            for (slot, &expert) in order[..k].iter().enumerate() {
                chosen.push(expert as i64);
                per_expert[expert].0.push(token as i64);
                per_expert[expert].1.push((token * k + slot) as i64);
            }
        }
        (chosen, per_expert)
    }

    fn same_routing(probs: &Tensor, k: usize, case: &str) {
        let (chosen, per_expert) = route_on_the_host(probs, k);
        let r = probs.route_top_k(k);
        assert_eq!(r.chosen.to_vec::<i64>(), chosen, "{case}: chosen");
        for (e, (tokens, positions)) in per_expert.iter().enumerate() {
            let (t, p) = r.expert(e);
            assert_eq!((&t.to_vec::<i64>(), &p.to_vec::<i64>()), (tokens, positions), "{case}: expert {e}");
        }
    }

    #[test]
    fn routing_picks_the_k_most_probable_and_groups_by_expert() {
        let probs = Tensor::from_vec(vec![0.1f32, 0.6, 0.3, 0.5, 0.2, 0.3], [2, 3]).unwrap();
        let r = probs.route_top_k(2);
        assert_eq!(r.chosen.to_vec::<i64>(), vec![1, 2, 0, 2]);
        assert_eq!(r.offsets, vec![0, 1, 2, 4]);
        assert_eq!(r.expert(2).0.to_vec::<i64>(), vec![0, 1]);
        assert_eq!(r.expert(2).1.to_vec::<i64>(), vec![1, 3]);
    }

    /// The op against the host routing it replaced: random rows, rows of
    /// ties (every expert equal; two pairs), k = E, and an expert no token
    /// chooses (its probability is 0 everywhere).
    #[test]
    fn routing_op_matches_the_host_routing() {
        let mut gen = Generator::seed(11);
        let random = Tensor::uniform(vec![9, 5], 0.0, 1.0, DType::F32, &mut gen).softmax(-1);
        for k in [1, 2, 5] {
            same_routing(&random, k, &format!("random, k {k}"));
        }
        #[rustfmt::skip]
        let ties = Tensor::from_vec(vec![
            0.25f32, 0.25, 0.25, 0.25,
            0.1, 0.4, 0.1, 0.4,
            0.4, 0.1, 0.4, 0.1,
            0.3, 0.3, 0.2, 0.2,
        ], [4, 4]).unwrap();
        for k in 1..=4 {
            same_routing(&ties, k, &format!("ties, k {k}"));
        }
        let unused = Tensor::from_vec(vec![0.5f64, 0.0, 0.5, 0.7, 0.0, 0.3, 0.2, 0.0, 0.8], [3, 3]).unwrap();
        same_routing(&unused, 2, "an unused expert");
        assert_eq!(unused.route_top_k(2).count(1), 0);
    }

    /// Even routing gives k; all tokens on the same experts gives more.
    #[test]
    fn balanced_routing_has_the_smallest_loss() {
        let even = Var::constant(Tensor::zeros([8, 4], DType::F64));
        let loss = load_balancing_loss(&[even], 4, 2).item();
        assert!((loss - 2.0).abs() < 1e-12, "{loss}");
        let skewed = Tensor::from_vec((0..32).map(|i| if i % 4 < 2 { 3.0 } else { 0.0 }).collect::<Vec<f64>>(), [8, 4]);
        let loss = load_balancing_loss(&[Var::constant(skewed.unwrap())], 4, 2).item();
        assert!(loss > 3.5, "{loss}");
    }
}
