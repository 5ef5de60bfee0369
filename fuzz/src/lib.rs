//! What the fuzzers feed arbitrary bytes to: every file format the program
//! reads from a user. Each function takes the fuzzer's bytes, writes them
//! where the real loader looks, and runs that loader; an error is fine, a
//! panic, a hang or a huge allocation is a bug. Where a load succeeds, the
//! result is used a little (a tokenizer encodes and decodes, a model
//! computes), so that what was accepted is shown to work.
//!
//! The cargo-fuzz targets in `fuzz_targets/` call these (run by hand, see
//! `fuzz/README.md`); `tests/fuzz_corpus.rs` runs them on the kept corpus
//! and on a bounded number of mutations of it in every `cargo test`.
//! Inputs holding two files start with the first one's length (u32, little
//! endian), so mutations can move the boundary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use autograd::nn::Module;
use autograd::optim::AdamW;
use gpt::model::{GPTConfig, GPTModel};
use gpt::quant::Scheme;
use gpt::tokenizer::{AnyTokenizer, BpeTokenizer, SpecialTokens};
use gpt::train::{Checkpoint, TrainOptions, TrainerState};
use tensor::{Generator, Tensor};

/// The targets, by the name of their corpus folder.
pub const TARGETS: [(&str, fn(&[u8])); 6] = [
    ("safetensors", safetensors),
    ("config_json", config_json),
    ("tokenizer_files", tokenizer_files),
    ("trainer_state", trainer_state),
    ("quantized_folder", quantized_folder),
    ("peft_config", peft_config),
];

/// A folder of this process for `name`'s files, created once.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scratchgpt-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("writing a fuzz input");
}

/// Splits `[len: u32 LE][first: len bytes][second]`; `None` when too short.
fn two_files(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let rest = &data[4..];
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Joins two files into one fuzz input (the inverse of `two_files`).
pub fn join_files(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut out = (first.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}

/// The safetensors header and tensor table: open, list, read every tensor.
pub fn safetensors(data: &[u8]) {
    let path = scratch("safetensors").join("model.safetensors");
    write(&path, data);
    let Ok(file) = gpt::weights::SafetensorsFile::open(&path) else { return };
    for name in file.names() {
        let _ = file.shape(&name);
        if let Ok(t) = file.tensor(&name) {
            // Reading it back converts every element.
            let _ = t.to_f64_vec();
        }
    }
}

/// A model's `config.json`: parsed, checked, and (being tiny) built.
pub fn config_json(data: &[u8]) {
    let dir = scratch("config_json");
    write(&dir.join("config.json"), data);
    let _ = gpt::quant::folder_scheme(&dir);
    let Ok(config) = gpt::weights::load_config(&dir) else { return };
    config.validate().expect("a loaded config is valid");
    let _ = config.num_parameters();
    if config.num_parameters() < 200_000 {
        let model = GPTModel::new(config.clone(), &mut Generator::seed(0));
        let _ = autograd::no_grad(|| model.forward(&edge_ids(&config)));
    }
}

/// The first and the last token id, as many of them as the context holds
/// (a context of one position is valid).
fn edge_ids(config: &GPTConfig) -> Tensor {
    let ids: Vec<i64> = [0, config.vocab_size as i64 - 1].into_iter().take(config.context_length).collect();
    let n = ids.len();
    Tensor::from_vec(ids, [1, n]).expect("ids")
}

/// `vocab.json` + `merges.txt`: a tokenizer that loads must round-trip text.
pub fn tokenizer_files(data: &[u8]) {
    let Some((vocab, merges)) = two_files(data) else { return };
    let dir = scratch("tokenizer_files");
    write(&dir.join("vocab.json"), vocab);
    write(&dir.join("merges.txt"), merges);
    let Ok(tokenizer) = BpeTokenizer::load(&dir) else { return };
    for text in ["Hello world's  123 naïve\n\n", "<|endoftext|> x", ""] {
        let ids = tokenizer.encode(text, SpecialTokens::AsText).expect("any text encodes");
        assert_eq!(tokenizer.decode(&ids).expect("its own ids decode"), text, "round trip of {text:?}");
    }
    let _ = AnyTokenizer::Bpe(tokenizer).vocab_size();
}

/// A tiny model's checkpoint folder (written once per process), whose
/// `trainer_state.json` the fuzzer replaces.
fn checkpoint_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("trainer_state").join("checkpoint");
        let model = tiny_model();
        let mut opt = AdamW::with_options(model.parameters(), 1e-3, (0.9, 0.95), 1e-8, 0.1);
        // One step, so the optimizer has moments to save and restore.
        let loss = model.forward(&Tensor::from_vec(vec![1i64, 2, 3], [1, 3]).expect("ids")).sum_all();
        loss.backward();
        autograd::optim::Optimizer::step(&mut opt);
        let state = seed_trainer_state(&model);
        let tokenizer = AnyTokenizer::Char(gpt::tokenizer::CharTokenizer::from_text("abcdefghijklmnop"));
        gpt::train::checkpoint::save_checkpoint(
            &dir,
            &model,
            &opt,
            &state,
            &tokenizer,
            gpt::weights::DEFAULT_MAX_SHARD_BYTES,
        )
        .expect("a checkpoint");
        dir
    })
}

fn tiny_config() -> GPTConfig {
    GPTConfig {
        vocab_size: 16,
        context_length: 8,
        emb_dim: 32,
        n_heads: 2,
        n_layers: 1,
        ..GPTConfig::preset("nano").unwrap()
    }
}

fn tiny_model() -> GPTModel {
    GPTModel::new(tiny_config(), &mut Generator::seed(1))
}

fn seed_trainer_state(model: &GPTModel) -> TrainerState {
    TrainerState {
        step: 1,
        total_steps: 3,
        epoch: 0,
        batch_in_epoch: 1,
        dropout_rng: model.dropout_state(),
        adam_steps: vec![1; model.parameters().len()],
        options: TrainOptions::default(),
        tokenizer: "char:16".into(),
        data: "fuzz".into(),
        ranks: 1,
    }
}

/// `trainer_state.json` of a checkpoint: loaded, and the optimizer restored.
pub fn trainer_state(data: &[u8]) {
    let dir = checkpoint_dir();
    write(&dir.join("trainer_state.json"), data);
    let Ok(checkpoint) = Checkpoint::load(dir) else { return };
    let model = &checkpoint.model;
    let mut opt = AdamW::with_options(model.parameters(), 1e-3, (0.9, 0.95), 1e-8, 0.1);
    let _ = Checkpoint::restore_optimizer(&checkpoint.optimizer, &checkpoint.state, model, &mut opt);
}

/// A quantized model folder: `config.json` (with the quantization record)
/// and `model.safetensors` of packed weights and scales; a model that
/// loads must compute.
pub fn quantized_folder(data: &[u8]) {
    let Some((config, weights)) = two_files(data) else { return };
    let dir = scratch("quantized_folder");
    write(&dir.join("config.json"), config);
    write(&dir.join("model.safetensors"), weights);
    let Ok(model) = gpt::weights::load_model(&dir) else { return };
    let _ = autograd::no_grad(|| model.forward(&edge_ids(&model.config)));
}

/// A PEFT `adapter_config.json`.
pub fn peft_config(data: &[u8]) {
    let dir = scratch("peft_config");
    write(&dir.join("adapter_config.json"), data);
    let _ = gpt::finetune::lora::load_adapter_config(&dir);
}

/// Valid inputs for every target, the corpus's starting points.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dir = scratch("seeds");
    let model = tiny_model();
    gpt::weights::save_model(&model, &dir.join("f32"), None).expect("a model folder");
    let read = |p: PathBuf| std::fs::read(p).expect("a seed file");
    let mut seeds = vec![
        ("safetensors", read(dir.join("f32/model.safetensors"))),
        ("config_json", read(dir.join("f32/config.json"))),
    ];
    let text = "the cat sat on the mat. the dog sat on the log. ".repeat(20);
    let tokenizer = gpt::tokenizer::train_bpe(&text, 300).expect("a small BPE");
    AnyTokenizer::Bpe(tokenizer).save(&dir.join("bpe")).expect("tokenizer files");
    seeds.push(("tokenizer_files", join_files(&read(dir.join("bpe/vocab.json")), &read(dir.join("bpe/merges.txt")))));
    let state = serde_json::to_vec_pretty(&seed_trainer_state(&model)).expect("state JSON");
    seeds.push(("trainer_state", state));
    for scheme in [Scheme::Int8, Scheme::Int4] {
        let out = dir.join(format!("q-{scheme}"));
        gpt::quant::quantize_folder(&dir.join("f32"), scheme, &out, true).expect("a quantized folder");
        seeds.push((
            "quantized_folder",
            join_files(&read(out.join("config.json")), &read(out.join("model.safetensors"))),
        ));
    }
    let peft = serde_json::json!({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8.0, "target_modules": ["c_attn", "c_proj"],
        "fan_in_fan_out": true, "bias": "none", "use_rslora": false, "modules_to_save": null,
    });
    seeds.push(("peft_config", peft.to_string().into_bytes()));
    seeds
}
