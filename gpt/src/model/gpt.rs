//! The whole GPT-2 model (`GPT2LMHeadModel`).
//!
//! ids `[B, T]` → token embedding `wte[ids]` + position embedding
//! `wpe[0..T]` `[B, T, C]` → dropout → N blocks → final LayerNorm → logits
//! `[B, T, V]` = h · wteᵀ. The output head *is* the token embedding
//! (weight tying): the vector that represents a token going in also scores
//! it coming out, which saves V·C parameters (38.6M of GPT-2 small's 124M)
//! and gives the embedding a gradient from both ends.

use std::sync::Mutex;

use autograd::nn::{join_name, Embedding, LayerNorm, Module};
use autograd::{dropout, Var};
use tensor::{DType, Generator, Tensor};

use super::block::Block;
use super::config::GPTConfig;
use super::kv_cache::KvCache;
use super::projection::Projection;
use super::token_embedding::TokenEmbedding;

pub struct GPTModel {
    pub config: GPTConfig,
    /// The token embedding, also the output head (an f32 `Embedding`
    /// here; a later chapter may put a packed table in its place).
    pub wte: Box<dyn TokenEmbedding>,
    pub wpe: Embedding,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
    training: bool,
    dropout_gen: Mutex<Generator>,
}

impl GPTModel {
    /// A randomly initialised model (GPT-2's initialisation).
    pub fn new(config: GPTConfig, gen: &mut Generator) -> Self {
        config.validate().unwrap_or_else(|e| panic!("GPTModel::new: invalid config: {e}"));
        let c = config.emb_dim;
        let embedding = |rows: usize, gen: &mut Generator| Embedding {
            weight: Var::parameter(Tensor::normal([rows, c], 0.0, 0.02, DType::F32, gen)),
        };
        let wte = Box::new(embedding(config.vocab_size, gen));
        let wpe = embedding(config.context_length, gen);
        let h = (0..config.n_layers).map(|_| Block::new(&config, gen)).collect();
        let dropout_gen = Mutex::new(Generator::seed(gen.next_u64()));
        let ln_f = LayerNorm::with_eps(c, config.layer_norm_eps);
        GPTModel { wte, wpe, h, ln_f, config, training: false, dropout_gen }
    }

    /// A model from existing layers (a loader that builds them itself,
    /// such as the quantized one, which never allocates f32 weights).
    /// The final norm takes the config's ε.
    pub fn from_parts(
        config: GPTConfig,
        wte: Box<dyn TokenEmbedding>,
        wpe: Embedding,
        h: Vec<Block>,
        mut ln_f: LayerNorm,
    ) -> Self {
        assert_eq!(h.len(), config.n_layers, "GPTModel::from_parts: {} blocks for {} layers", h.len(), config.n_layers);
        ln_f.eps = config.layer_norm_eps;
        GPTModel { config, wte, wpe, h, ln_f, training: false, dropout_gen: Mutex::new(Generator::seed(0)) }
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

    /// The final hidden states `[B, T, C]` (after `ln_f`), before the head.
    pub fn hidden(&self, ids: &Tensor, mut cache: Option<&mut KvCache>) -> Var {
        assert_eq!(ids.rank(), 2, "GPTModel: ids must be [batch, tokens], got {}", ids.shape());
        assert_eq!(ids.dtype(), DType::I64, "GPTModel: ids must be int64, got {}", ids.dtype());
        let t = ids.dim(1);
        let start = cache.as_ref().map_or(0, |c| c.len());
        assert!(
            start + t <= self.config.context_length,
            "GPTModel: {} positions exceed the context length {}",
            start + t,
            self.config.context_length
        );
        let positions = Tensor::arange(start as i64, (start + t) as i64);
        let x = self.wte.lookup(ids).add(&self.wpe.lookup(&positions));
        let mut x = dropout(&x, self.config.drop_rate, self.training, &mut self.dropout_gen.lock().unwrap());
        for (i, block) in self.h.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = block.forward(&x, layer_cache, self.training, &self.dropout_gen);
        }
        self.ln_f.forward(&x)
    }

    /// The tied output head: h `[.., C]` · wteᵀ → `[.., V]`.
    pub fn logits(&self, hidden: &Var) -> Var {
        self.wte.logits(hidden)
    }

    /// Every block's projections, named as their parameters are
    /// (`h.0.attn.c_attn`, …): where LoRA and quantization reach in.
    pub fn projections(&self) -> impl Iterator<Item = (String, &dyn Projection)> {
        self.h
            .iter()
            .enumerate()
            .flat_map(|(i, block)| block.projections().map(|(name, p)| (format!("h.{i}.{name}"), p)))
    }

    /// As [`GPTModel::projections`], each slot open to a replacement.
    pub fn projections_mut(&mut self) -> impl Iterator<Item = (String, &mut Box<dyn Projection>)> {
        self.h
            .iter_mut()
            .enumerate()
            .flat_map(|(i, block)| block.projections_mut().map(|(name, p)| (format!("h.{i}.{name}"), p)))
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.n_layers)
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

    /// Names follow Hugging Face's GPT-2 without the `transformer.` prefix:
    /// `wte.weight`, `h.0.attn.c_attn.weight`, …, `ln_f.bias`.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        self.wte.visit_parameters(&join_name(prefix, "wte"), f);
        self.wpe.visit_parameters(&join_name(prefix, "wpe"), f);
        for (i, block) in self.h.iter().enumerate() {
            block.visit_parameters(&join_name(prefix, &format!("h.{i}")), f);
        }
        self.ln_f.visit_parameters(&join_name(prefix, "ln_f"), f);
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
