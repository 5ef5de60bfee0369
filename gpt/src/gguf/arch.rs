//! Architectures by name: how each names its tensors in GGUF (llama.cpp's
//! names, `llama-arch.cpp`) against our parameter names.
//!
//! One table entry per architecture; `{N}` stands for a block's index on
//! both sides. Adding an architecture whose model this crate can build is
//! a new entry here plus its builder. The hyper-parameters sit under keys
//! prefixed by the architecture's name (`gpt2.block_count`, see [`key`]).

/// One architecture's names.
pub struct Architecture {
    /// `general.architecture`.
    pub name: &'static str,
    /// `(ours, GGUF's)` for every tensor the model has.
    pub tensors: &'static [(&'static str, &'static str)],
    /// The output head, when the model ties it to the token embedding:
    /// `(head, embedding)` in GGUF names. Export writes the head as a copy
    /// (llama.cpp's converter does the same for GPT-2); loading checks the
    /// copy and uses the embedding.
    pub tied_head: Option<(&'static str, &'static str)>,
    /// Whether llama.cpp rotates neighbouring pairs of a head (`llama`), so
    /// that the query and key rows are stored reordered (`gguf::llama`).
    pub rope_interleaved: bool,
    /// Whether RMSNorm weights are stored as 1 + w: Gemma's norms scale by
    /// 1 + w, llama.cpp's by what is stored, so its converter adds 1.
    pub norms_shifted: bool,
    /// The names of a mixture of experts, for the architecture that has one.
    pub experts: Option<&'static ExpertNames>,
}

/// A mixture of experts in llama.cpp's layout: the router is one matrix
/// per block (`ffn_gate_inp`, `[E, C]`), and each of the experts' three
/// projections is one 3-D tensor per block holding every expert's matrix
/// in turn (`ffn_gate_exps`: `[E, F, C]`, expert e's `[F, C]` at index e),
/// where we hold E separate matrices. `{E}` stands for the expert.
pub struct ExpertNames {
    /// `(ours, GGUF's)` for the router.
    pub router: (&'static str, &'static str),
    /// `(ours, GGUF's stacked tensor)` for the gate, up and down matrices.
    pub stacked: [(&'static str, &'static str); 3],
}

/// Mixtral's experts (`w1` gate, `w3` up, `w2` down), under `llama`.
const MIXTRAL_EXPERTS: ExpertNames = ExpertNames {
    router: ("layers.{N}.block_sparse_moe.gate.weight", "blk.{N}.ffn_gate_inp.weight"),
    stacked: [
        ("layers.{N}.block_sparse_moe.experts.{E}.w1.weight", "blk.{N}.ffn_gate_exps.weight"),
        ("layers.{N}.block_sparse_moe.experts.{E}.w3.weight", "blk.{N}.ffn_up_exps.weight"),
        ("layers.{N}.block_sparse_moe.experts.{E}.w2.weight", "blk.{N}.ffn_down_exps.weight"),
    ],
};

/// Qwen3-MoE's experts.
const QWEN3MOE_EXPERTS: ExpertNames = ExpertNames {
    router: ("layers.{N}.mlp.gate.weight", "blk.{N}.ffn_gate_inp.weight"),
    stacked: [
        ("layers.{N}.mlp.experts.{E}.gate_proj.weight", "blk.{N}.ffn_gate_exps.weight"),
        ("layers.{N}.mlp.experts.{E}.up_proj.weight", "blk.{N}.ffn_up_exps.weight"),
        ("layers.{N}.mlp.experts.{E}.down_proj.weight", "blk.{N}.ffn_down_exps.weight"),
    ],
};

pub const GPT2: Architecture = Architecture {
    name: "gpt2",
    tensors: &[
        ("wte.weight", "token_embd.weight"),
        ("wpe.weight", "position_embd.weight"),
        ("h.{N}.ln_1.weight", "blk.{N}.attn_norm.weight"),
        ("h.{N}.ln_1.bias", "blk.{N}.attn_norm.bias"),
        ("h.{N}.attn.c_attn.weight", "blk.{N}.attn_qkv.weight"),
        ("h.{N}.attn.c_attn.bias", "blk.{N}.attn_qkv.bias"),
        ("h.{N}.attn.c_proj.weight", "blk.{N}.attn_output.weight"),
        ("h.{N}.attn.c_proj.bias", "blk.{N}.attn_output.bias"),
        ("h.{N}.ln_2.weight", "blk.{N}.ffn_norm.weight"),
        ("h.{N}.ln_2.bias", "blk.{N}.ffn_norm.bias"),
        ("h.{N}.mlp.c_fc.weight", "blk.{N}.ffn_up.weight"),
        ("h.{N}.mlp.c_fc.bias", "blk.{N}.ffn_up.bias"),
        ("h.{N}.mlp.c_proj.weight", "blk.{N}.ffn_down.weight"),
        ("h.{N}.mlp.c_proj.bias", "blk.{N}.ffn_down.bias"),
        ("ln_f.weight", "output_norm.weight"),
        ("ln_f.bias", "output_norm.bias"),
    ],
    tied_head: Some(("output.weight", "token_embd.weight")),
    rope_interleaved: false,
    norms_shifted: false,
    experts: None,
};

/// The Llama family's tensors (`llama`, `qwen2`, `qwen3` name them alike;
/// the biases are Qwen2's, the q/k norms Qwen3's).
const LLAMA_TENSORS: &[(&str, &str)] = &[
    ("embed_tokens.weight", "token_embd.weight"),
    ("layers.{N}.input_layernorm.weight", "blk.{N}.attn_norm.weight"),
    ("layers.{N}.self_attn.q_proj.weight", "blk.{N}.attn_q.weight"),
    ("layers.{N}.self_attn.k_proj.weight", "blk.{N}.attn_k.weight"),
    ("layers.{N}.self_attn.v_proj.weight", "blk.{N}.attn_v.weight"),
    ("layers.{N}.self_attn.q_proj.bias", "blk.{N}.attn_q.bias"),
    ("layers.{N}.self_attn.k_proj.bias", "blk.{N}.attn_k.bias"),
    ("layers.{N}.self_attn.v_proj.bias", "blk.{N}.attn_v.bias"),
    ("layers.{N}.self_attn.q_norm.weight", "blk.{N}.attn_q_norm.weight"),
    ("layers.{N}.self_attn.k_norm.weight", "blk.{N}.attn_k_norm.weight"),
    ("layers.{N}.self_attn.o_proj.weight", "blk.{N}.attn_output.weight"),
    ("layers.{N}.post_attention_layernorm.weight", "blk.{N}.ffn_norm.weight"),
    ("layers.{N}.mlp.gate_proj.weight", "blk.{N}.ffn_gate.weight"),
    ("layers.{N}.mlp.up_proj.weight", "blk.{N}.ffn_up.weight"),
    ("layers.{N}.mlp.down_proj.weight", "blk.{N}.ffn_down.weight"),
    ("norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

pub const LLAMA: Architecture = Architecture {
    name: "llama",
    tensors: LLAMA_TENSORS,
    tied_head: None,
    rope_interleaved: true,
    norms_shifted: false,
    experts: Some(&MIXTRAL_EXPERTS),
};
pub const QWEN2: Architecture = Architecture {
    name: "qwen2",
    tensors: LLAMA_TENSORS,
    tied_head: None,
    rope_interleaved: false,
    norms_shifted: false,
    experts: None,
};
pub const QWEN3: Architecture = Architecture {
    name: "qwen3",
    tensors: LLAMA_TENSORS,
    tied_head: None,
    rope_interleaved: false,
    norms_shifted: false,
    experts: None,
};

/// Qwen3-MoE: Qwen3's attention (QK-norm, halves rotated) and a mixture of
/// experts in every block.
pub const QWEN3MOE: Architecture = Architecture {
    name: "qwen3moe",
    tensors: LLAMA_TENSORS,
    tied_head: None,
    rope_interleaved: false,
    norms_shifted: false,
    experts: Some(&QWEN3MOE_EXPERTS),
};

/// Phi-3's tensors: the Llama family's with q/k/v in one `attn_qkv` (rows
/// q, then k, then v, as `qkv_proj` holds them) and gate and up in one
/// `ffn_up` (`[2F, C]`, gate first, as `gate_up_proj`: llama.cpp's fused
/// SwiGLU takes the first half through SiLU).
const PHI3_TENSORS: &[(&str, &str)] = &[
    ("embed_tokens.weight", "token_embd.weight"),
    ("layers.{N}.input_layernorm.weight", "blk.{N}.attn_norm.weight"),
    ("layers.{N}.self_attn.qkv_proj.weight", "blk.{N}.attn_qkv.weight"),
    ("layers.{N}.self_attn.o_proj.weight", "blk.{N}.attn_output.weight"),
    ("layers.{N}.post_attention_layernorm.weight", "blk.{N}.ffn_norm.weight"),
    ("layers.{N}.mlp.gate_up_proj.weight", "blk.{N}.ffn_up.weight"),
    ("layers.{N}.mlp.down_proj.weight", "blk.{N}.ffn_down.weight"),
    ("norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

pub const PHI3: Architecture = Architecture {
    name: "phi3",
    tensors: PHI3_TENSORS,
    tied_head: None,
    rope_interleaved: false,
    norms_shifted: false,
    experts: None,
};

/// Gemma: the Llama family's tensor names, halves rotated, the head tied
/// (no `output`), norms stored as 1 + w.
pub const GEMMA: Architecture = Architecture {
    name: "gemma",
    tensors: LLAMA_TENSORS,
    tied_head: None,
    rope_interleaved: false,
    norms_shifted: true,
    experts: None,
};

/// Gemma 2 and 3's tensors: four norms a block, the attention's output
/// normed (`post_attention_norm`, which is `post_attention_layernorm`
/// here, not the MLP's input norm as in Llama) and the MLP's input and
/// output (`ffn_norm`, `post_ffw_norm`); Gemma 3's QK-norm weights.
const GEMMA2_TENSORS: &[(&str, &str)] = &[
    ("embed_tokens.weight", "token_embd.weight"),
    ("layers.{N}.input_layernorm.weight", "blk.{N}.attn_norm.weight"),
    ("layers.{N}.self_attn.q_proj.weight", "blk.{N}.attn_q.weight"),
    ("layers.{N}.self_attn.k_proj.weight", "blk.{N}.attn_k.weight"),
    ("layers.{N}.self_attn.v_proj.weight", "blk.{N}.attn_v.weight"),
    ("layers.{N}.self_attn.q_norm.weight", "blk.{N}.attn_q_norm.weight"),
    ("layers.{N}.self_attn.k_norm.weight", "blk.{N}.attn_k_norm.weight"),
    ("layers.{N}.self_attn.o_proj.weight", "blk.{N}.attn_output.weight"),
    ("layers.{N}.post_attention_layernorm.weight", "blk.{N}.post_attention_norm.weight"),
    ("layers.{N}.pre_feedforward_layernorm.weight", "blk.{N}.ffn_norm.weight"),
    ("layers.{N}.post_feedforward_layernorm.weight", "blk.{N}.post_ffw_norm.weight"),
    ("layers.{N}.mlp.gate_proj.weight", "blk.{N}.ffn_gate.weight"),
    ("layers.{N}.mlp.up_proj.weight", "blk.{N}.ffn_up.weight"),
    ("layers.{N}.mlp.down_proj.weight", "blk.{N}.ffn_down.weight"),
    ("norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// Gemma 2: Gemma's with a norm after each branch; score and logit caps,
/// the sliding window and the query scale in `gguf::gemma`.
pub const GEMMA2: Architecture = Architecture {
    name: "gemma2",
    tensors: GEMMA2_TENSORS,
    tied_head: None,
    rope_interleaved: false,
    norms_shifted: true,
    experts: None,
};

/// Gemma 3 (text): Gemma 2's tensors and QK-norm (its norms too stored as
/// 1 + w).
pub const GEMMA3: Architecture = Architecture {
    name: "gemma3",
    tensors: GEMMA2_TENSORS,
    tied_head: None,
    rope_interleaved: false,
    norms_shifted: true,
    experts: None,
};

/// Every architecture this crate reads and writes.
pub const ARCHITECTURES: [&Architecture; 9] =
    [&GPT2, &LLAMA, &QWEN2, &QWEN3, &QWEN3MOE, &PHI3, &GEMMA, &GEMMA2, &GEMMA3];

/// The architecture a model of `config` is written as: Mistral and
/// Mixtral as `llama`, as llama.cpp's converter writes them, Gemma 3's text
/// model as `gemma3`. Every model type has one today; one without would be
/// refused in [`not_exported`]'s wording.
pub fn of_model(config: &crate::model::GPTConfig) -> Result<&'static Architecture, String> {
    use crate::model::ModelType;
    Ok(match config.model_type {
        ModelType::Gpt2 => &GPT2,
        ModelType::Llama | ModelType::Mistral | ModelType::Mixtral => &LLAMA,
        ModelType::Qwen2 => &QWEN2,
        ModelType::Qwen3 => &QWEN3,
        ModelType::Qwen3Moe => &QWEN3MOE,
        ModelType::Phi3 => &PHI3,
        ModelType::Gemma => &GEMMA,
        ModelType::Gemma2 => &GEMMA2,
        ModelType::Gemma3Text => &GEMMA3,
    })
}

/// The model types [`of_model`] writes.
pub const EXPORTED: &str = "gpt2, llama, mistral, mixtral, qwen2, qwen3, qwen3_moe, phi3, gemma, gemma2, gemma3_text";

/// The one wording for a model type with no architecture to write it as.
pub fn not_exported(model_type: &str) -> String {
    format!("model type {model_type} is not exported to GGUF (supported: {EXPORTED})")
}

/// The one wording for a file of an architecture not read here (`what`
/// names it: `architecture "phi3"`), alike for every one of them.
pub fn not_imported(what: &str) -> String {
    let supported: Vec<&str> = ARCHITECTURES.iter().map(|a| a.name).collect();
    format!("{what} is not imported from GGUF (supported: {})", supported.join(", "))
}

/// The architecture named `name`.
pub fn find(name: &str) -> Option<&'static Architecture> {
    ARCHITECTURES.into_iter().find(|a| a.name == name)
}

/// `ARCH.suffix`, e.g. `gpt2.context_length`.
pub fn key(arch: &Architecture, suffix: &str) -> String {
    format!("{}.{suffix}", arch.name)
}

/// `name` matched against `pattern`: the block index if `pattern` has
/// `{N}` (`Some(Some(n))`), `Some(None)` for an exact match.
fn matches(pattern: &str, name: &str) -> Option<Option<usize>> {
    let Some((before, after)) = pattern.split_once("{N}") else {
        return (pattern == name).then_some(None);
    };
    let index = name.strip_prefix(before)?.strip_suffix(after)?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    index.parse().ok().map(Some)
}

fn translate(from: &str, to: &str, name: &str) -> Option<String> {
    Some(match matches(from, name)? {
        Some(n) => to.replace("{N}", &n.to_string()),
        None => to.to_string(),
    })
}

/// `name` matched against an expert's `pattern` (`{N}` and then `{E}`):
/// the block and the expert.
fn matches_expert(pattern: &str, name: &str) -> Option<(usize, usize)> {
    let (before, after) = pattern.split_once("{E}")?;
    let rest = name.strip_suffix(after)?;
    let digits = rest.len() - rest.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (rest, expert) = rest.split_at(digits);
    if expert.is_empty() {
        return None;
    }
    Some((matches(before, rest)??, expert.parse().ok()?))
}

impl Architecture {
    /// The one-to-one names: every tensor's, and the router's.
    fn pairs(&self) -> impl Iterator<Item = &(&'static str, &'static str)> {
        self.tensors.iter().chain(self.experts.map(|e| &e.router))
    }

    /// GGUF's name for our parameter `ours` (an expert's matrix has none
    /// of its own: see [`Architecture::stacked_name`]).
    pub fn gguf_name(&self, ours: &str) -> Option<String> {
        self.pairs().find_map(|(o, g)| translate(o, g, ours))
    }

    /// Our name for GGUF's tensor `gguf`.
    pub fn our_name(&self, gguf: &str) -> Option<String> {
        self.pairs().find_map(|(o, g)| translate(g, o, gguf))
    }

    /// For our expert matrix `ours` (`layers.3.mlp.experts.5.up_proj.weight`),
    /// GGUF's stacked tensor that holds it (`blk.3.ffn_up_exps.weight`) and
    /// its index there (5).
    pub fn stacked_name(&self, ours: &str) -> Option<(String, usize)> {
        self.experts?.stacked.iter().find_map(|(o, g)| {
            let (block, expert) = matches_expert(o, ours)?;
            Some((g.replace("{N}", &block.to_string()), expert))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_not_read_or_written_are_refused_in_one_wording() {
        assert_eq!(
            not_exported("gemma3n"),
            "model type gemma3n is not exported to GGUF (supported: gpt2, llama, mistral, mixtral, qwen2, qwen3, \
             qwen3_moe, phi3, gemma, gemma2, gemma3_text)"
        );
        assert_eq!(
            not_imported("architecture \"gemma3n\""),
            "architecture \"gemma3n\" is not imported from GGUF (supported: gpt2, llama, qwen2, qwen3, qwen3moe, \
             phi3, gemma, gemma2, gemma3)"
        );
    }

    #[test]
    fn gemma_2_and_3_are_written_as_llama_cpp_names_them() {
        let arch_of = |preset| of_model(&crate::model::GPTConfig::preset(preset).unwrap()).map(|a| a.name);
        assert_eq!(arch_of("gemma-2-2b"), Ok("gemma2"));
        assert_eq!(arch_of("gemma-3-1b"), Ok("gemma3"));
        // The MLP's input norm is `ffn_norm`; the attention's output norm has its own name.
        assert_eq!(
            GEMMA2.gguf_name("layers.1.pre_feedforward_layernorm.weight").as_deref(),
            Some("blk.1.ffn_norm.weight")
        );
        assert_eq!(
            GEMMA3.our_name("blk.2.post_attention_norm.weight").as_deref(),
            Some("layers.2.post_attention_layernorm.weight")
        );
    }

    #[test]
    fn mixtures_of_experts_are_written_as_llama_cpp_names_them() {
        let arch_of = |preset| of_model(&crate::model::GPTConfig::preset(preset).unwrap()).map(|a| a.name);
        assert_eq!(arch_of("mixtral-8x7b"), Ok("llama"));
        assert_eq!(arch_of("qwen3-30b-a3b"), Ok("qwen3moe"));
    }

    #[test]
    fn experts_translate_to_their_stacked_tensor_and_index() {
        assert_eq!(
            LLAMA.stacked_name("layers.12.block_sparse_moe.experts.7.w2.weight"),
            Some(("blk.12.ffn_down_exps.weight".to_string(), 7))
        );
        assert_eq!(
            QWEN3MOE.stacked_name("layers.0.mlp.experts.10.gate_proj.weight"),
            Some(("blk.0.ffn_gate_exps.weight".to_string(), 10))
        );
        assert_eq!(QWEN3MOE.stacked_name("layers.0.mlp.gate_proj.weight"), None);
        assert_eq!(QWEN3MOE.stacked_name("layers.0.mlp.experts.x.up_proj.weight"), None);
        assert_eq!(QWEN3.stacked_name("layers.0.mlp.experts.1.up_proj.weight"), None);
        assert_eq!(QWEN3MOE.gguf_name("layers.4.mlp.gate.weight").as_deref(), Some("blk.4.ffn_gate_inp.weight"));
        assert_eq!(
            LLAMA.our_name("blk.4.ffn_gate_inp.weight").as_deref(),
            Some("layers.4.block_sparse_moe.gate.weight")
        );
    }

    #[test]
    fn names_translate_both_ways_with_block_indices() {
        assert_eq!(GPT2.gguf_name("h.11.attn.c_attn.weight").as_deref(), Some("blk.11.attn_qkv.weight"));
        assert_eq!(GPT2.our_name("blk.3.ffn_down.bias").as_deref(), Some("h.3.mlp.c_proj.bias"));
        assert_eq!(GPT2.gguf_name("wte.weight").as_deref(), Some("token_embd.weight"));
        assert_eq!(GPT2.our_name("blk.x.ffn_down.bias"), None);
        assert_eq!(GPT2.our_name("output.weight"), None);
    }
}
