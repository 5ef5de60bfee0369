//! Parity with Hugging Face's GPT-2, the whole model at once (llm.c's
//! `test_gpt2` in spirit). A tiny random `GPT2LMHeadModel`, saved by
//! `transformers` in `tests/fixtures/gpt2-tiny/`, is loaded with
//! `gpt::weights::load_model`, and everything PyTorch computed with it
//! (`tests/fixtures/gpt2_parity.safetensors`) must come out here too:
//!
//! - the logits of a [2, 16] batch and its mean cross-entropy;
//! - the gradient of that loss with respect to every parameter, which checks
//!   the whole backward pass and the loader's names and Conv1D transposes
//!   (Hugging Face stores those four weights per block as [in, out], we store
//!   [out, in]; a missed transpose of a square `c_proj` would still load);
//! - the loss before each of ten AdamW steps and after the last, so the
//!   optimizer, the tied embedding's accumulated gradient and the backward
//!   stay in step over a short training run;
//! - greedy generation, token for token, with and without the KV cache;
//! - the windowed evaluation loss of a longer stream (`gpt::eval`).
//!
//! The op-level fixtures (`tests/torch_parity.rs`) pin each op; this one
//! pins how they are wired into GPT-2. Regenerate both fixture paths with
//! `python3 scripts/make_gpt2_fixtures.py`. The ignored test at the bottom
//! writes our own save of the model for `scripts/check_hf_roundtrip.py`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

mod common;
use common::parity::{assert_close, assert_scalar_close, read_fixture};

use scratchgpt::autograd::loss::cross_entropy;
use scratchgpt::autograd::nn::Module;
use scratchgpt::autograd::no_grad;
use scratchgpt::autograd::optim::{AdamW, Optimizer};
use scratchgpt::gpt::eval::evaluate;
use scratchgpt::gpt::generate::{generate, GenerateOptions};
use scratchgpt::gpt::model::GPTModel;
use scratchgpt::gpt::weights::{load_model, save_model};
use scratchgpt::tensor::Tensor;

// ----- fixtures -------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The tiny model as `transformers` saved it, in evaluation mode.
fn model() -> GPTModel {
    let dir = fixtures_dir().join("gpt2-tiny");
    let mut model = load_model(&dir).unwrap_or_else(|e| {
        panic!("cannot load {}: {e}; regenerate it with `python3 scripts/make_gpt2_fixtures.py`", dir.display())
    });
    model.eval();
    model
}

/// Every tensor of `gpt2_parity.safetensors` by name (float32 and int64).
fn reference() -> BTreeMap<String, Tensor> {
    read_fixture(&fixtures_dir().join("gpt2_parity.safetensors"), "scripts/make_gpt2_fixtures.py")
}

fn get<'a>(r: &'a BTreeMap<String, Tensor>, name: &str) -> &'a Tensor {
    r.get(name).unwrap_or_else(|| panic!("gpt2_parity.safetensors has no tensor `{name}`"))
}

/// Same rule as the loader: GPT-2's Conv1D weights are stored [in, out].
fn is_conv1d_weight(name: &str) -> bool {
    name.ends_with(".weight")
        && [".attn.c_attn", ".attn.c_proj", ".mlp.c_fc", ".mlp.c_proj"].iter().any(|m| name.contains(m))
}

// ----- forward and backward ------------------------------------------------------------

#[test]
fn logits_and_loss_match_transformers() {
    let (model, r) = (model(), reference());
    let logits = model.forward(get(&r, "ids"));
    let d_logits = assert_close("logits", &logits.data(), get(&r, "logits"), 1e-4, 1e-5);
    let loss = cross_entropy(&logits, get(&r, "targets")).item();
    let d_loss = assert_scalar_close("loss", loss, get(&r, "loss").item_f64(), 1e-4 * get(&r, "loss").item_f64());
    println!("logits max |diff| {d_logits:.3e}; loss {loss:.6} |diff| {d_loss:.3e}");
}

#[test]
fn every_gradient_matches_transformers() {
    let (model, r) = (model(), reference());
    let loss = cross_entropy(&model.forward(get(&r, "ids")), get(&r, "targets"));
    loss.backward();
    let theirs: BTreeSet<String> = r.keys().filter_map(|k| k.strip_prefix("grad.")).map(String::from).collect();
    let mut ours = BTreeSet::new();
    let mut worst = (String::new(), 0.0);
    for (name, param) in model.named_parameters() {
        let hf_name = format!("transformer.{name}");
        let want = get(&r, &format!("grad.{hf_name}"));
        let want = if is_conv1d_weight(&name) { want.t().contiguous() } else { want.clone() };
        let got = param.grad().unwrap_or_else(|| panic!("{name} has no gradient"));
        let d = assert_close(&format!("d loss / d {name}"), &got, &want, 1e-3, 1e-5);
        if d > worst.1 {
            worst = (name.clone(), d);
        }
        ours.insert(hf_name);
    }
    assert_eq!(ours, theirs, "parameter names: ours (left) vs Hugging Face's unique parameters (right)");
    println!("{} gradients match; worst max |diff| {:.3e} in {}", ours.len(), worst.1, worst.0);
}

#[test]
fn ten_adamw_steps_follow_transformers() {
    let (mut model, r) = (model(), reference());
    model.train();
    let (ids, targets) = (get(&r, "ids"), get(&r, "targets"));
    let want = get(&r, "adamw.losses").to_vec::<f32>();
    // The settings scripts/make_gpt2_fixtures.py gave torch.optim.AdamW.
    let mut opt = AdamW::with_options(model.parameters(), 1e-2, (0.9, 0.999), 1e-8, 0.01);
    let mut got = Vec::new();
    for _ in 0..want.len() - 1 {
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(ids), targets);
        loss.backward();
        opt.step();
        got.push(loss.item());
    }
    got.push(no_grad(|| cross_entropy(&model.forward(ids), targets).item()));
    let mut worst = 0.0f64;
    for (step, (&g, &w)) in got.iter().zip(&want).enumerate() {
        worst = worst.max(assert_scalar_close(&format!("loss at AdamW step {step}"), g, w as f64, 1e-4));
    }
    println!("AdamW losses {got:.4?}; worst |diff| {worst:.3e}");
}

// ----- generation and evaluation -----------------------------------------------------------

#[test]
fn greedy_generation_matches_transformers_with_and_without_cache() {
    let (model, r) = (model(), reference());
    let prompt: Vec<u32> = get(&r, "gen.prompt").to_vec::<i64>().iter().map(|&t| t as u32).collect();
    let want: Vec<u32> = get(&r, "gen.tokens").to_vec::<i64>().iter().map(|&t| t as u32).collect();
    for use_cache in [true, false] {
        let opts = GenerateOptions {
            max_new_tokens: want.len(),
            temperature: 0.0,
            use_cache,
            stop_token: None,
            ..Default::default()
        };
        let got = generate(&model, &prompt, &opts, |_| {});
        assert_eq!(got, want, "greedy tokens, use_cache = {use_cache}");
    }
}

/// `gpt::eval::evaluate` cuts the stream into windows of N+1 tokens with
/// stride N (the last, shorter one counted if it has two tokens) and averages
/// the cross-entropy over every predicted token; the script computed the same
/// with N = n_positions. Batching full windows together must not change it.
#[test]
fn windowed_eval_loss_matches_transformers() {
    let (model, r) = (model(), reference());
    let stream: Vec<u32> = get(&r, "eval.stream").to_vec::<i64>().iter().map(|&t| t as u32).collect();
    let want = get(&r, "eval.loss").item_f64();
    for batch_size in [1, 3] {
        let got = evaluate(&model, &stream, model.config.context_length, batch_size).expect("a long enough stream");
        assert_eq!(got.tokens as i64, get(&r, "eval.count").to_vec::<i64>()[0], "tokens predicted");
        let d = assert_scalar_close(&format!("windowed eval loss, batch {batch_size}"), got.loss, want, 1e-4);
        println!("eval loss {:.6} over {} tokens (batch {batch_size}); |diff| {d:.3e}", got.loss, got.tokens);
    }
}

// ----- saving --------------------------------------------------------------------------------

#[test]
fn saved_folder_loads_back_to_the_same_logits() {
    let (model, r) = (model(), reference());
    let dir = std::env::temp_dir().join(format!("scratchgpt-gpt2-parity-{}", std::process::id()));
    save_model(&model, &dir, None).unwrap();
    let again = load_model(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let ids = get(&r, "ids");
    let (a, b) = no_grad(|| (model.forward(ids).data(), again.forward(ids).data()));
    assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>(), "logits after save_model → load_model");
}

/// Writes our save of the fixture model to `target/gpt2-roundtrip` for the
/// Python side: `python3 scripts/check_hf_roundtrip.py target/gpt2-roundtrip`
/// loads it with `transformers` and compares its logits with the fixture's.
#[test]
#[ignore = "writes target/gpt2-roundtrip for scripts/check_hf_roundtrip.py"]
fn save_for_transformers_roundtrip() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/gpt2-roundtrip");
    save_model(&model(), &dir, None).unwrap();
    println!("saved {}", dir.display());
}
