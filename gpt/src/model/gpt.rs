//! The whole model: GPT-2 (`GPT2LMHeadModel`) and the Llama family
//! (`LlamaForCausalLM` and its relatives), one decoder.
//!
//! ids `[B, T]` → token embedding `wte[ids]` + position embedding
//! `wpe[0..T]` `[B, T, C]` → dropout → N blocks → final LayerNorm → logits
//! `[B, T, V]` = h · wteᵀ. The output head *is* the token embedding
//! (weight tying): the vector that represents a token going in also scores
//! it coming out, which saves V·C parameters (38.6M of GPT-2 small's 124M)
//! and gives the embedding a gradient from both ends.
//!
//! The Llama family differs in three places here: no position table (the
//! positions turn q and k inside attention instead, and the tables of that
//! rotation are made once per forward, here), RMSNorm at the end, and
//! often a head of its own (`lm_head`, `tie_word_embeddings: false`). The
//! blocks differ inside (`block`, `attention`).
//!
//! The Gemma family (see `gemma`) scales the token embeddings by √C,
//! soft-caps the logits (Gemma 2), and turns the sliding layers' q and k
//! by a rotary base of their own (Gemma 3): a second set of tables, made
//! here beside the first.

use std::sync::Mutex;

use autograd::nn::{join_name, Embedding, Module};
use autograd::{dropout, Var};
use tensor::{DType, Device, Generator, RopeTables, Tensor};

use super::block::Block;
use super::build::{Init, LayerSource, RandomInit};
use super::config::GPTConfig;
use super::kv_cache::KvCache;
use super::norm::Norm;
use super::projection::Projection;
use super::token_embedding::TokenEmbedding;
use super::trace::Trace;

pub struct GPTModel {
    pub config: GPTConfig,
    /// The token embedding (`wte`, `embed_tokens`), also the output head
    /// when the head is tied (an f32 `Embedding` here; a later chapter
    /// may put a packed table in its place).
    pub wte: Box<dyn TokenEmbedding>,
    /// The learned position table (GPT-2); `None` with rotary positions.
    pub wpe: Option<Embedding>,
    pub h: Vec<Block>,
    pub ln_f: Norm,
    /// A head of its own (`lm_head`), when it is not tied to `wte`.
    pub lm_head: Option<Box<dyn Projection>>,
    training: bool,
    dropout_gen: Mutex<Generator>,
}

/// The names of the model's top-level parts in this config's family
/// (Hugging Face's, without the `transformer.`/`model.` prefix).
struct TopNames {
    embed: &'static str,
    positions: &'static str,
    layers: &'static str,
    final_norm: &'static str,
}

fn top_names(config: &GPTConfig) -> TopNames {
    if config.model_type.is_gpt2() {
        TopNames { embed: "wte", positions: "wpe", layers: "h", final_norm: "ln_f" }
    } else {
        TopNames { embed: "embed_tokens", positions: "", layers: "layers", final_norm: "norm" }
    }
}

impl GPTModel {
    /// A randomly initialised model (GPT-2's initialisation).
    pub fn new(config: GPTConfig, gen: &mut Generator) -> Self {
        config.validate().unwrap_or_else(|e| panic!("GPTModel::new: invalid config: {e}"));
        let Ok(model) = Self::build(config, &mut RandomInit { gen: &mut *gen });
        // Drawn after the weights, so a seed gives the weights it always gave.
        model.set_dropout_state(Generator::seed(gen.next_u64()).state());
        model
    }

    /// The model `config` describes, every layer asked of `src` by name
    /// (see `build`). The config must be valid.
    pub fn build<S: LayerSource>(config: GPTConfig, src: &mut S) -> Result<Self, S::Error> {
        debug_assert!(config.validate().is_ok(), "GPTModel::build: invalid config");
        let names = top_names(&config);
        let (v, c) = (config.vocab_size, config.emb_dim);
        let wte = src.token_embedding(names.embed, v, c)?;
        let wpe = match config.rope {
            Some(_) => None,
            None => {
                let weight =
                    src.float(&format!("{}.weight", names.positions), &[config.context_length, c], Init::Normal(0.02))?;
                Some(Embedding { weight })
            }
        };
        let h = (0..config.n_layers)
            .map(|i| Block::build(&config, i, &format!("{}.{i}", names.layers), src))
            .collect::<Result<Vec<_>, _>>()?;
        let ln_f = Norm::build(&config, names.final_norm, c, src)?;
        let lm_head = if config.tie_embeddings { None } else { Some(src.projection("lm_head", c, v, false, 0.02)?) };
        Ok(GPTModel {
            config,
            wte,
            wpe,
            h,
            ln_f,
            lm_head,
            training: false,
            dropout_gen: Mutex::new(Generator::seed(0)),
        })
    }

    /// Logits `[B, T, V]` for int64 ids `[B, T]`.
    pub fn forward(&self, ids: &Tensor) -> Var {
        self.logits(&self.hidden(ids, None))
    }

    /// Like `forward`, but continues from (and extends) a KV cache: `ids`
    /// are the next positions after those cached.
    pub fn forward_cached(&self, ids: &Tensor, cache: &mut KvCache) -> Var {
        self.logits(&self.hidden(ids, Some(cache)))
    }

    /// Logits `[B, 1, V]` of the last of `ids`' positions only, continuing
    /// (and extending) `cache` when one is given: all that choosing the
    /// next token needs. Every position still passes through the blocks
    /// (their keys and values fill the cache), but the final norm and the
    /// head run on one row. For GPT-2 the head (768 × 50,257) is a third of
    /// a prompt's arithmetic, so a 512-token prompt skips 511 rows of it, as
    /// llama.cpp does.
    ///
    /// On the CPU the pass runs on a thread of the pool and keeps the other
    /// threads polling for work from start to end (`kernels::cpu::awake`):
    /// decoding is many small products with short serial steps between
    /// them, and a thread that fell asleep in one of those steps wakes too
    /// late for the next product.
    pub fn last_position_logits(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Var {
        let pass = || {
            let residual = self.residual_stream(ids, cache, None, None);
            let t = ids.dim(1);
            self.logits(&self.ln_f.forward(&residual.narrow(1, t - 1, 1)))
        };
        let on_cpu = self.ln_f.parameters().first().is_none_or(|w| w.device() == Device::Cpu);
        if on_cpu {
            // The whole pass on one of the pool's threads (from the main
            // thread each product would be a hand-off and a wake-up),
            // recording or not as this thread is.
            let recording = autograd::is_grad_enabled();
            kernels::cpu::awake::on_a_pool_thread(|| {
                autograd::with_grad_mode(recording, || kernels::cpu::awake::with_threads_awake(pass))
            })
        } else {
            pass()
        }
    }

    /// Logits `[B, T, V]` for int64 ids `[B, T]`, with what the pass saw on
    /// its way: every layer's attention weights and residual stream (see
    /// `Trace`). For looking inside the model; no KV cache.
    pub fn forward_traced(&self, ids: &Tensor) -> (Var, Trace) {
        let mut trace = Trace::default();
        let logits = self.logits(&self.ln_f.forward(&self.residual_stream(ids, None, Some(&mut trace), None)));
        (logits, trace)
    }

    /// Logits `[B, T, V]`, and the load-balancing loss of a mixture of
    /// experts already scaled by `router_aux_loss_coef` when the config asks
    /// for it (`output_router_logits`), to be added to the training loss as
    /// `transformers` adds it.
    pub fn forward_with_aux(&self, ids: &Tensor) -> (Var, Option<Var>) {
        let Some(moe) = self.config.moe.as_ref().filter(|m| m.output_router_logits) else {
            return (self.forward(ids), None);
        };
        let (logits, router_logits) = self.forward_with_router_logits(ids);
        let aux = super::moe::load_balancing_loss(&router_logits, moe.n_experts, moe.top_k);
        (logits, Some(aux.mul_scalar(moe.router_aux_loss_coef)))
    }

    /// Logits `[B, T, V]` and each routed layer's router logits `[B·T, E]`,
    /// in layer order (none without a mixture of experts).
    pub fn forward_with_router_logits(&self, ids: &Tensor) -> (Var, Vec<Var>) {
        let mut router_logits = Vec::new();
        let hidden = self.ln_f.forward(&self.residual_stream(ids, None, None, Some(&mut router_logits)));
        (self.logits(&hidden), router_logits)
    }

    /// The final hidden states `[B, T, C]` (after the final norm), before
    /// the head.
    pub fn hidden(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Var {
        self.ln_f.forward(&self.residual_stream(ids, cache, None, None))
    }

    /// The residual stream `[B, T, C]` after the last block, before the
    /// final norm; a `trace` records each block's attention weights and
    /// output, `router_logits` each routed MLP's router logits.
    fn residual_stream(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        mut trace: Option<&mut Trace>,
        mut router_logits: Option<&mut Vec<Var>>,
    ) -> Var {
        assert_eq!(ids.rank(), 2, "GPTModel: ids must be [batch, tokens], got {}", ids.shape());
        assert_eq!(ids.dtype(), DType::I64, "GPTModel: ids must be int64, got {}", ids.dtype());
        let t = ids.dim(1);
        let start = cache.as_ref().map_or(0, |c| c.len());
        let mut x = self.wte.lookup(ids);
        if self.config.model_type.is_gemma() {
            x = x.mul_scalar(super::gemma::embedding_scale(self.config.emb_dim));
        }
        let mut rope: Option<RopeTables> = None;
        let mut local_rope: Option<RopeTables> = None;
        match (&self.wpe, self.config.rope_config()) {
            (Some(wpe), _) => {
                // A learned table has a row for each position up to the
                // context length, and none beyond.
                assert!(
                    start + t <= self.config.context_length,
                    "GPTModel: {} positions exceed the context length {}",
                    start + t,
                    self.config.context_length
                );
                x = x.add(&wpe.lookup(&Tensor::arange(start as i64, (start + t) as i64)));
            }
            // Rotary positions: cos and sin of these positions, made once
            // and used by every layer.
            (None, Some(rotary)) => {
                let tables = |r: tensor::RopeConfig| {
                    r.tables(start, t).to_device(ids.device()).expect("the tables move to the ids' device")
                };
                rope = Some(tables(rotary));
                local_rope = self.config.local_rope_config().map(tables);
            }
            (None, None) => unreachable!("validated: a model has learned or rotary positions"),
        }
        let mut x = dropout(&x, self.config.drop_rate, self.training, &mut self.dropout_gen.lock().unwrap());
        for (i, block) in self.h.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let rope = if self.config.uses_local_rope(i) { local_rope.as_ref() } else { rope.as_ref() };
            let (training, gen, logits) = (self.training, &self.dropout_gen, router_logits.as_deref_mut());
            x = block.forward(&x, rope, layer_cache, training, gen, trace.as_deref_mut(), logits);
            if let Some(trace) = trace.as_deref_mut() {
                trace.residual.push(x.data());
            }
        }
        x
    }

    /// The output head: h `[.., C]` · Wᵀ → `[.., V]`, W being the token
    /// table when tied, `lm_head` otherwise.
    pub fn logits(&self, hidden: &Var) -> Var {
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => self.wte.logits(hidden),
        };
        match self.config.final_softcap {
            Some(cap) => super::gemma::soft_cap(&logits, cap),
            None => logits,
        }
    }

    /// Every projection, named as its parameters are (`h.0.attn.c_attn`,
    /// `layers.0.self_attn.q_proj`, …, and `lm_head` when untied): where
    /// LoRA and quantization reach in.
    pub fn projections(&self) -> impl Iterator<Item = (String, &dyn Projection)> {
        let layers = top_names(&self.config).layers;
        let blocks = self.h.iter().enumerate().flat_map(move |(i, block)| {
            block.projections().into_iter().map(move |(name, p)| (format!("{layers}.{i}.{name}"), p))
        });
        blocks.chain(self.lm_head.as_deref().map(|head| ("lm_head".to_string(), head)))
    }

    /// As [`GPTModel::projections`], each slot open to a replacement.
    pub fn projections_mut(&mut self) -> impl Iterator<Item = (String, &mut Box<dyn Projection>)> {
        let layers = top_names(&self.config).layers;
        let blocks = self.h.iter_mut().enumerate().flat_map(move |(i, block)| {
            block.projections_mut().into_iter().map(move |(name, p)| (format!("{layers}.{i}.{name}"), p))
        });
        blocks.chain(self.lm_head.as_mut().map(|head| ("lm_head".to_string(), head)))
    }

    /// An empty KV cache for this model: per layer, room for its K/V heads
    /// (and only its window's positions, for a layer with a window).
    pub fn new_cache(&self) -> KvCache {
        KvCache::with_windows((0..self.config.n_layers).map(|i| self.config.window_of(i)).collect())
    }

    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Reseeds the dropout masks (checkpoints restore this).
    pub fn set_dropout_state(&self, state: [u64; 4]) {
        *self.dropout_gen.lock().unwrap() = Generator::from_state(state);
    }

    pub fn dropout_state(&self) -> [u64; 4] {
        self.dropout_gen.lock().unwrap().state()
    }
}

impl Module for GPTModel {
    fn forward(&self, x: &Var) -> Var {
        GPTModel::forward(self, &x.data())
    }

    /// Names follow Hugging Face's without the `transformer.`/`model.`
    /// prefix: `wte.weight`, `h.0.attn.c_attn.weight`, …, `ln_f.bias` for
    /// GPT-2; `embed_tokens.weight`, `layers.0.self_attn.q_proj.weight`, …,
    /// `norm.weight`, `lm_head.weight` for the Llama family.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        let names = top_names(&self.config);
        self.wte.visit_parameters(&join_name(prefix, names.embed), f);
        if let Some(wpe) = &self.wpe {
            wpe.visit_parameters(&join_name(prefix, names.positions), f);
        }
        for (i, block) in self.h.iter().enumerate() {
            block.visit_parameters(&join_name(prefix, &format!("{}.{i}", names.layers)), f);
        }
        self.ln_f.visit_parameters(&join_name(prefix, names.final_norm), f);
        if let Some(head) = &self.lm_head {
            head.visit_parameters(&join_name(prefix, "lm_head"), f);
        }
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// As `Module::to_device`, but first every layer that can refuse is
    /// asked (a packed, quantized one runs on the CPU only), so a refusal
    /// leaves everything where it was.
    fn to_device(&self, device: tensor::Device) -> tensor::Result<()> {
        self.wte.check_device(device)?;
        for (_, p) in self.projections() {
            p.check_device(device)?;
        }
        autograd::nn::move_parameters(self, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::no_grad;

    fn nano() -> GPTModel {
        GPTModel::new(GPTConfig::preset("nano").unwrap(), &mut Generator::seed(0))
    }

    #[test]
    fn shapes_and_parameter_count() {
        let model = nano();
        let ids = Tensor::from_vec((0..10).collect::<Vec<i64>>(), [2, 5]).unwrap();
        assert_eq!(model.forward(&ids).dims(), vec![2, 5, 512]);
        assert_eq!(model.num_parameters(), model.config.num_parameters());
        let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "wte.weight");
        assert!(names.contains(&"h.1.attn.c_attn.bias".to_string()));
        assert_eq!(names.last().unwrap(), "ln_f.bias");
    }

    #[test]
    fn cached_forward_equals_full_forward() {
        let model = nano();
        let ids: Vec<i64> = (0..9).map(|i| (i * 37) % 512).collect();
        let full = no_grad(|| model.forward(&Tensor::from_vec(ids.clone(), [1, 9]).unwrap())).data();
        let mut cache = model.new_cache();
        let first = no_grad(|| model.forward_cached(&Tensor::from_vec(ids[..6].to_vec(), [1, 6]).unwrap(), &mut cache));
        let rest = no_grad(|| model.forward_cached(&Tensor::from_vec(ids[6..].to_vec(), [1, 3]).unwrap(), &mut cache));
        let joined = Tensor::cat(&[first.data(), rest.data()], 1);
        for (a, b) in joined.to_vec::<f32>().iter().zip(full.to_vec::<f32>()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(cache.len(), 9);
    }

    #[test]
    fn last_position_logits_are_the_last_row_of_the_full_forward() {
        let model = nano();
        let ids: Vec<i64> = (0..18).map(|i| (i * 29 + 3) % 512).collect();
        let batch = Tensor::from_vec(ids.clone(), [2, 9]).unwrap();
        let full = no_grad(|| model.forward(&batch)).data();
        let expected = full.narrow(1, 8, 1).to_vec::<f32>();
        let close = |got: &[f32]| {
            assert_eq!(got.len(), expected.len());
            for (a, b) in got.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        };
        let uncached = no_grad(|| model.last_position_logits(&batch, None));
        assert_eq!(uncached.dims(), vec![2, 1, 512]);
        close(&uncached.data().to_vec::<f32>());
        // Through a cache, in two pieces: the cache still gets every position.
        let one_row =
            |range: std::ops::Range<usize>| Tensor::from_vec(ids[range.clone()].to_vec(), [1, range.len()]).unwrap();
        let mut cache = model.new_cache();
        no_grad(|| model.last_position_logits(&one_row(0..5), Some(&mut cache)));
        let last = no_grad(|| model.last_position_logits(&one_row(5..9), Some(&mut cache)));
        assert_eq!(cache.len(), 9);
        assert_eq!(last.dims(), vec![1, 1, 512]);
        let first_row = &expected[..512];
        for (a, b) in last.data().to_vec::<f32>().iter().zip(first_row) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn last_position_logits_record_as_the_calling_thread_does() {
        // The pass runs on a pool thread; from the test's own thread (not
        // one of rayon's) it must still record, or not, as this thread says.
        let model = nano();
        let ids = Tensor::from_vec(vec![3i64, 70, 140], [1, 3]).unwrap();
        assert!(!no_grad(|| model.last_position_logits(&ids, None)).requires_grad());
        let logits = model.last_position_logits(&ids, None);
        assert!(logits.requires_grad());
        logits.sum_all().backward();
        let wte = &model.named_parameters()[0];
        assert_eq!(wte.0, "wte.weight");
        assert!(wte.1.grad().is_some(), "the gradient reaches the embedding");
    }

    #[test]
    fn loss_at_init_is_near_ln_vocab() {
        let model = nano();
        let ids = Tensor::from_vec((0..32).map(|i| (i * 13) % 512).collect::<Vec<i64>>(), [2, 16]).unwrap();
        // Targets differ from the inputs: with a tied head a token scores its
        // own embedding highly even at init.
        let targets = ids.add_scalar(1.0);
        let loss = autograd::loss::cross_entropy(&model.forward(&ids), &targets).item();
        assert!((loss - (512f64).ln()).abs() < 0.2, "loss {loss}");
    }
}
