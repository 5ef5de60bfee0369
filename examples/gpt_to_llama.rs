//! From GPT-2's block to Llama's, one change at a time. The walk starts at
//! the `tiny` preset (LayerNorm, a learned position table `wpe`, a GELU MLP
//! 4·C wide, one packed q/k/v projection, biases, the head tied to the token
//! table) and ends at `tiny-llama` (RMSNorm, rotary positions, a SwiGLU MLP
//! about ⅔ as wide, two query heads per key/value head, no biases). After
//! each change it prints the tensors the model's own builders add, drop or
//! reshape (`tensor_specs`, layer 0 and the top level; the other layers
//! repeat layer 0) and the parameter count, and it shows three of the ideas
//! on real tensors: RMSNorm against LayerNorm on one row, rotary embedding's
//! q·k depending only on how far apart the two positions are, and the KV
//! cache that grouped-query attention shrinks. Then it trains both models on
//! the built-in stories (same width, depth, data, tokenizer, seeds and
//! learning rate), prints the two loss curves side by side and samples from
//! each.
//!
//! Run: `cargo run --release --example gpt_to_llama [STEPS]` (60 training
//! steps by default; a debug build trains far slower, so give it a few).

use std::sync::atomic::AtomicBool;

use scratchgpt::autograd::nn::{LayerNorm, RmsNorm};
use scratchgpt::gpt::data::builtin_corpus;
use scratchgpt::gpt::model::build::{tensor_specs, TensorSpec};
use scratchgpt::gpt::model::{GPTConfig, GPTModel, ModelType, Rotary};
use scratchgpt::gpt::quant::memory::kv_cache_bytes_per_token;
use scratchgpt::gpt::tokenizer::{train_bpe, AnyTokenizer, SpecialTokens};
use scratchgpt::gpt::train::{TrainEvent, TrainOptions, Trainer};
use scratchgpt::prelude::*;
use scratchgpt::tensor::RopeScaling;

/// Llama's rule for the SwiGLU width: ⅔ of GPT-2's 4·C, so that three
/// matrices C×F hold what GPT-2's two C×4C do, rounded up to a multiple
/// that suits the hardware (256 for Llama 2, 64 here).
fn swiglu_width(emb_dim: usize, multiple: usize) -> usize {
    (8 * emb_dim / 3).div_ceil(multiple) * multiple
}

/// One change of the walk: what it is, the config after it, and what to
/// show of it beyond the tensors.
struct Step {
    title: &'static str,
    config: GPTConfig,
    ideas: fn(&GPTConfig, &GPTConfig),
}

/// The walk, as the config after each change; the first is the start.
fn walk() -> Vec<Step> {
    let nothing: fn(&GPTConfig, &GPTConfig) = |_, _| {};
    let mut c = GPTConfig::preset("tiny").unwrap();
    let mut steps = vec![Step { title: "GPT-2's block, the `tiny` preset", config: c.clone(), ideas: nothing }];
    // `model_type` picks the norm, the MLP and the q/k/v projections
    // together, and a valid config pairs it with rotary positions: no
    // published checkpoint mixes the two blocks, so one switch makes four
    // changes. `print_change` takes them apart, part by part.
    c.model_type = ModelType::Llama;
    c.rope = Some(Rotary::new(10_000.0, RopeScaling::None));
    steps.push(Step {
        title: "1. model_type llama: RMSNorm, RoPE instead of wpe, SwiGLU (still 4·C wide), q/k/v apart",
        config: c.clone(),
        ideas: |_, llama| {
            show_norms();
            show_rope(llama);
        },
    });
    c.intermediate_size = Some(swiglu_width(c.emb_dim, 64));
    steps.push(Step {
        title: "2. SwiGLU's width ⅔·4·C, rounded up to a multiple of 64: about GPT-2's MLP parameters again",
        config: c.clone(),
        ideas: |_, llama| show_swiglu_width(llama),
    });
    c.n_kv_heads = Some(c.n_heads / 2);
    steps.push(Step {
        title: "3. grouped-query attention: each key/value head serves two query heads",
        config: c.clone(),
        ideas: show_kv_cache,
    });
    (c.qkv_bias, c.out_bias, c.mlp_bias) = (false, false, false);
    steps.push(Step { title: "4. no biases in attention and MLP", config: c.clone(), ideas: nothing });
    steps
}

/// Which part of the model a tensor is, by its name in either family.
fn part_of(name: &str) -> &'static str {
    if name.contains("ln_") || name.contains("norm") {
        "norms"
    } else if name.starts_with("wpe") {
        "positions"
    } else if name.contains("attn") {
        "attention"
    } else if name.contains("mlp") {
        "MLP"
    } else {
        "embedding, head"
    }
}
const PARTS: [&str; 5] = ["embedding, head", "positions", "norms", "attention", "MLP"];

fn count(specs: &[TensorSpec], part: Option<&str>) -> usize {
    let in_part = |s: &&TensorSpec| part.is_none_or(|p| part_of(&s.name) == p);
    specs.iter().filter(in_part).map(|s| s.shape.iter().product::<usize>()).sum()
}

/// Layer 0 and the tensors outside the blocks (`h.3.…`, `layers.3.…` repeat layer 0).
fn shown(spec: &TensorSpec) -> bool {
    !spec.name.split('.').nth(1).and_then(|i| i.parse::<usize>().ok()).is_some_and(|layer| layer > 0)
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits.as_bytes().rchunks(3).rev().map(|g| std::str::from_utf8(g).unwrap()).collect();
    groups.join(",")
}

/// Part by part: the parameters before and after, and the tensors `after`
/// drops (-), reshapes (~) and adds (+), as the builders name them.
fn changes(before: &GPTConfig, after: &GPTConfig) -> Vec<(&'static str, usize, usize, Vec<String>)> {
    let (old, new) = (tensor_specs(before), tensor_specs(after));
    let named = |specs: &[TensorSpec], name: &str| specs.iter().find(|s| s.name == name).cloned();
    let mut parts = Vec::new();
    for part in PARTS {
        let mut lines = Vec::new();
        for s in old.iter().filter(|s| part_of(&s.name) == part && shown(s)) {
            match named(&new, &s.name) {
                None => lines.push(format!("- {} {:?}", s.name, s.shape)),
                Some(t) if t.shape != s.shape => lines.push(format!("~ {} {:?} → {:?}", s.name, s.shape, t.shape)),
                Some(_) => {}
            }
        }
        let added = new.iter().filter(|s| part_of(&s.name) == part && shown(s) && named(&old, &s.name).is_none());
        lines.extend(added.map(|s| format!("+ {} {:?}", s.name, s.shape)));
        if !lines.is_empty() {
            parts.push((part, count(&old, Some(part)), count(&new, Some(part)), lines));
        }
    }
    parts.push(("whole model", count(&old, None), count(&new, None), Vec::new()));
    parts
}

fn print_change(before: &GPTConfig, after: &GPTConfig) {
    for (part, old, new, lines) in changes(before, after) {
        println!("  {part:<16}{:>11} → {:>11} parameters", thousands(old), thousands(new));
        lines.iter().for_each(|line| println!("      {line}"));
    }
}

/// LayerNorm and RMSNorm (weights one, bias zero) of one row.
fn norms_of(row: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let x = Var::constant(Tensor::from_vec(row.to_vec(), [1, row.len()]).unwrap());
    let layer = LayerNorm::with_eps(row.len(), 1e-5).forward(&x).data().to_vec::<f32>();
    let rms = RmsNorm::with_eps(row.len(), 1e-5).forward(&x).data().to_vec::<f32>();
    (layer, rms)
}

/// score[m][n] = q·k after rotary embedding turns q to position m and k to
/// position n, for m, n < len, with the config's rotation.
fn rope_scores(config: &GPTConfig, q: &[f32], k: &[f32], len: usize) -> Vec<Vec<f32>> {
    let d = q.len();
    let tables = config.rope_config().unwrap().tables(0, len);
    // The same vector at every position, laid out [B = 1, T, H = 1, D].
    let turned = |v: &[f32]| {
        let x = Tensor::from_vec(v.iter().copied().cycle().take(len * d).collect::<Vec<_>>(), [1, len, 1, d]);
        x.unwrap().rope(&tables).reshape_to([len, d]).to_vec2::<f32>()
    };
    let (qs, ks) = (turned(q), turned(k));
    qs.iter().map(|q| ks.iter().map(|k| q.iter().zip(k).map(|(a, b)| a * b).sum()).collect()).collect()
}

fn show_norms() {
    let fmt = |v: &[f32]| v.iter().map(|x| format!("{x:+.3}")).collect::<Vec<_>>().join(" ");
    println!("  RMSNorm divides by √(mean(x²)) and keeps the mean; LayerNorm takes the mean away first:");
    for row in [[2.0f32, 4.0, 6.0, 8.0], [-3.0, -1.0, 1.0, 3.0]] {
        let (layer, rms) = norms_of(&row);
        println!("    x = {}   LayerNorm {}   RMSNorm {}", fmt(&row), fmt(&layer), fmt(&rms));
    }
}

fn show_rope(config: &GPTConfig) {
    let d = config.head_dim();
    let mut gen = Generator::seed(7);
    let [q, k] = [0, 1].map(|_| Tensor::normal([d], 0.0, 1.0, DType::F32, &mut gen).to_vec::<f32>());
    let scores = rope_scores(config, &q, &k, 64);
    println!("  RoPE turns q and k by their positions m and n (head size {d}); q·k then depends on m − n alone:");
    for (m, n) in [(3, 0), (17, 14), (63, 60), (3, 2), (40, 39)] {
        println!("    q at {m:>2}, k at {n:>2} (m − n = {}): q·k = {:+.4}", m - n, scores[m][n]);
    }
}

fn show_swiglu_width(config: &GPTConfig) {
    let llama2 = GPTConfig::preset("llama-2-7b").unwrap();
    println!(
        "  F = 8·C/3 rounded up: {} for C = {}; Llama 2 7B rounds to 256: {} for C = {} (its config: {})",
        config.mlp_width(),
        config.emb_dim,
        swiglu_width(llama2.emb_dim, 256),
        llama2.emb_dim,
        llama2.mlp_width()
    );
}

fn show_kv_cache(multi_head: &GPTConfig, grouped: &GPTConfig) {
    let per_token = |c: &GPTConfig| kv_cache_bytes_per_token(c, 4);
    println!(
        "  KV cache per token in f32 (2 · layers · K/V heads · head size · 4 bytes): {} → {} bytes",
        per_token(multi_head),
        per_token(grouped)
    );
    let big = GPTConfig::preset("llama-3.1-8b").unwrap();
    let gib = |c: &GPTConfig| (kv_cache_bytes_per_token(c, 2) * c.context_length as u64) as f64 / (1u64 << 30) as f64;
    println!(
        "  llama-3.1-8b, f16, its full {} tokens cached: {:.0} GiB with its {} K/V heads, {:.0} GiB with {}",
        big.context_length,
        gib(&big),
        big.kv_heads(),
        gib(&GPTConfig { n_kv_heads: None, ..big.clone() }),
        big.n_heads
    );
}

/// One model's training run: the loss of every step, the final validation
/// loss and a sample.
struct Run {
    losses: Vec<f64>,
    val_loss: f64,
    sample: String,
}

/// Trains `config` with the library's trainer, as `examples/pretraining.rs` does.
fn train(
    name: &str,
    config: GPTConfig,
    tokenizer: &AnyTokenizer,
    tokens: &[u32],
    steps: usize,
) -> Result<Run, Box<dyn std::error::Error>> {
    let model = GPTModel::new(config, &mut Generator::seed(123));
    println!("  {name}: {} parameters", thousands(model.num_parameters()));
    let options = TrainOptions {
        steps: Some(steps),
        batch_size: 8,
        context: 64,
        lr: 2e-3,
        warmup: steps / 6,
        eval_every: steps,
        sample_every: 0,
        sample_tokens: 24,
        checkpoint_every: 0,
        ..Default::default()
    };
    let out = std::env::temp_dir().join("scratchgpt-gpt-to-llama-example").join(name);
    let mut trainer = Trainer::new(model, tokenizer.clone(), tokens.to_vec(), "built-in stories".into(), options, out)?;
    let (mut losses, mut val_loss) = (Vec::new(), f64::NAN);
    trainer.run(&AtomicBool::new(false), |event| match event {
        TrainEvent::Step { loss, .. } => losses.push(*loss),
        TrainEvent::Eval { result, .. } => val_loss = result.loss,
        _ => {}
    })?;
    Ok(Run { losses, val_loss, sample: trainer.sample() })
}

/// Both curves on one grid: G for GPT-2, L for Llama, * where they meet.
fn plot(gpt2: &[f64], llama: &[f64]) {
    let (rows, cols) = (10, gpt2.len().min(60));
    let (lo, hi) = gpt2.iter().chain(llama).fold((f64::MAX, f64::MIN), |(lo, hi), &l| (lo.min(l), hi.max(l)));
    let span = (hi - lo).max(1e-9);
    let mut grid = vec![vec![' '; cols]; rows];
    for (curve, mark) in [(gpt2, 'G'), (llama, 'L')] {
        for col in 0..cols {
            let loss = curve[col * curve.len() / cols];
            let cell = &mut grid[((hi - loss) / span * (rows - 1) as f64).round() as usize][col];
            *cell = if *cell == ' ' || *cell == mark { mark } else { '*' };
        }
    }
    for (r, line) in grid.iter().enumerate() {
        println!("  {:6.2} |{}", hi - span * r as f64 / (rows - 1) as f64, line.iter().collect::<String>());
    }
    println!("         +{}> step", "-".repeat(cols));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(format!("STEPS must be a positive number, got {arg:?}"))?,
        None => 60,
    };
    let walk = walk();
    let start = &walk[0].config;
    println!(
        "{}: width {}, {} layers, {} heads, vocabulary {}, context {}: {} parameters",
        walk[0].title,
        start.emb_dim,
        start.n_layers,
        start.n_heads,
        start.vocab_size,
        start.context_length,
        thousands(start.num_parameters())
    );
    println!("(each change lists layer 0's tensors and the top level's; the other layers repeat layer 0)");
    for pair in walk.windows(2) {
        let (before, after) = (&pair[0].config, &pair[1]);
        println!("\n{}", after.title);
        print_change(before, &after.config);
        (after.ideas)(before, &after.config);
    }
    let llama = &walk.last().unwrap().config;
    let untied = GPTConfig { tie_embeddings: false, ..llama.clone() };
    println!("\n5. the head: `GPTConfig::llama` gives it a matrix of its own, as Llama 2 7B and Llama 3.1 8B have");
    print_change(llama, &untied);
    let table = 100 * llama.vocab_size * llama.emb_dim / llama.num_parameters();
    println!("  tiny-llama keeps it tied, as Llama 3.2 1B and SmolLM2 do: its token table is already {table}% of it.");
    assert_eq!(*llama, GPTConfig::preset("tiny-llama").unwrap(), "the walk ends at tiny-llama");
    println!("So the walk ends at the `tiny-llama` preset.");

    // The same data, tokenizer, sizes, seeds and learning rate for both.
    let text = builtin_corpus(200_000);
    let tokenizer = AnyTokenizer::Bpe(train_bpe(&text, 512)?);
    let tokens = tokenizer.encode(&text, SpecialTokens::AsText)?;
    println!(
        "\nTraining both for {steps} steps on {} tokens of the built-in stories ({}-token BPE, context 64):",
        tokens.len(),
        tokenizer.vocab_size()
    );
    let sized = |c: &GPTConfig| GPTConfig { vocab_size: tokenizer.vocab_size(), context_length: 64, ..c.clone() };
    let gpt2 = train("gpt2", sized(start), &tokenizer, &tokens, steps)?;
    let llama = train("llama", sized(llama), &tokenizer, &tokens, steps)?;
    println!("\n  step   GPT-2   Llama   (training loss)");
    let every = (steps / 10).max(1);
    for step in (every..=steps).step_by(every) {
        println!("  {step:>4}  {:6.3}  {:6.3}", gpt2.losses[step - 1], llama.losses[step - 1]);
    }
    println!();
    plot(&gpt2.losses, &llama.losses);
    println!("\nFinal validation loss: GPT-2 {:.3}, Llama {:.3}", gpt2.val_loss, llama.val_loss);
    println!("\nGPT-2 writes: {:?}\nLlama writes: {:?}", gpt2.sample, llama.sample);
    Ok(())
}

#[test]
fn the_walk_goes_from_tiny_to_tiny_llama_and_its_tensors_count_every_parameter() {
    let walk = walk();
    assert_eq!(walk[0].config, GPTConfig::preset("tiny").unwrap());
    assert_eq!(walk.last().unwrap().config, GPTConfig::preset("tiny-llama").unwrap());
    for Step { title, config, .. } in &walk {
        let specs = tensor_specs(config);
        assert_eq!(count(&specs, None), config.num_parameters(), "{title}");
        assert_eq!(PARTS.iter().map(|p| count(&specs, Some(p))).sum::<usize>(), count(&specs, None), "{title}");
    }
    let lines =
        |i: usize| changes(&walk[i - 1].config, &walk[i].config).into_iter().flat_map(|p| p.3).collect::<Vec<_>>();
    assert!(lines(1).contains(&"- wpe.weight [128, 256]".to_string()), "{:?}", lines(1));
    assert!(lines(1).contains(&"+ layers.0.mlp.gate_proj.weight [1024, 256]".to_string()), "{:?}", lines(1));
    assert_eq!(lines(1).len(), 34, "layer 0 and the top level only: {:?}", lines(1));
    let norms = changes(&walk[0].config, &walk[1].config).into_iter().find(|p| p.0 == "norms").unwrap();
    assert_eq!((norms.1, norms.2), (9 * 2 * 256, 9 * 256), "LayerNorm's weight and bias, RMSNorm's weight");
    let kv =
        ["k_proj.weight [256, 256] → [128, 256]", "k_proj.bias [256] → [128]", "v_proj.weight [256, 256] → [128, 256]"];
    assert_eq!(lines(3)[..3], kv.map(|l| format!("~ layers.0.self_attn.{l}")), "{:?}", lines(3));
}

#[test]
fn swiglus_width_keeps_the_mlp_near_gpt2s() {
    assert_eq!((swiglu_width(256, 64), swiglu_width(4096, 256)), (704, 11008));
    let walk = walk();
    let mlp = |i: usize| count(&tensor_specs(&GPTConfig { mlp_bias: false, ..walk[i].config.clone() }), Some("MLP"));
    assert_eq!(mlp(1), 3 * mlp(0) / 2, "three matrices 4·C wide");
    assert!(mlp(2) > mlp(0) && mlp(2) < mlp(0) * 104 / 100, "{} vs {}", mlp(2), mlp(0));
}

#[test]
fn rms_norm_keeps_the_mean_and_equals_layer_norm_on_a_centred_row() {
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
    let (layer, rms) = norms_of(&[2.0, 4.0, 6.0, 8.0]);
    assert!(close(&rms, &[2.0, 4.0, 6.0, 8.0].map(|x| x / 30f32.sqrt())), "{rms:?}");
    assert!(close(&layer, &[-1.3416, -0.4472, 0.4472, 1.3416]), "{layer:?}");
    let (layer, rms) = norms_of(&[-3.0, -1.0, 1.0, 3.0]);
    assert!(close(&layer, &rms), "{layer:?} vs {rms:?}");
}

#[test]
fn ropes_score_depends_on_the_offset_alone() {
    let config = GPTConfig::preset("tiny-llama").unwrap();
    let mut gen = Generator::seed(1);
    let [q, k] = [0, 1].map(|_| Tensor::normal([config.head_dim()], 0.0, 1.0, DType::F32, &mut gen).to_vec::<f32>());
    let scores = rope_scores(&config, &q, &k, 32);
    for (m, row) in scores.iter().enumerate() {
        for n in 0..=m {
            assert!((row[n] - scores[m - n][0]).abs() < 1e-3, "q at {m}, k at {n}: {} vs {}", row[n], scores[m - n][0]);
        }
    }
    assert!((scores[1][0] - scores[2][0]).abs() > 0.1, "the offset changes the score: {scores:?}");
}

#[test]
fn grouped_query_attention_halves_the_kv_cache() {
    let walk = walk();
    let per_token = |i: usize| kv_cache_bytes_per_token(&walk[i].config, 4);
    assert_eq!((per_token(2), per_token(3)), (2 * 4 * 256 * 4, 4 * 256 * 4));
}
