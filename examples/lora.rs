//! LoRA on a nano GPT: wrap, count, train only the adapters, save them in
//! PEFT's layout, load them onto a fresh copy of the base, merge.
//!
//! ```sh
//! cargo run --release --example lora
//! ```

use autograd::loss::cross_entropy;
use autograd::nn::Module;
use autograd::no_grad;
use autograd::optim::{AdamW, Optimizer};
use gpt::finetune::lora::{apply_lora, load_adapter, merge_lora, save_adapter, LoraConfig};
use gpt::model::{GPTConfig, GPTModel};
use tensor::{Generator, Tensor};

fn base() -> GPTModel {
    GPTModel::new(GPTConfig::preset("nano").unwrap(), &mut Generator::seed(0))
}

fn main() {
    // One repeated sequence: the next token is always (id + 1) mod 512.
    let ids = Tensor::from_vec((0..64).map(|i| (i * 7 % 500) as i64).collect::<Vec<_>>(), [2, 32]).unwrap();
    let targets =
        Tensor::from_vec(ids.to_vec::<i64>().iter().map(|i| (i + 1) % 512).collect::<Vec<_>>(), [2, 32]).unwrap();
    let logits_of = |m: &GPTModel| no_grad(|| m.forward(&ids)).data().to_vec::<f32>();

    let mut model = base();
    let before = logits_of(&model);
    let report = apply_lora(&mut model, &LoraConfig::new(4), &mut Generator::seed(1)).unwrap();
    println!("LoRA rank 4 on c_attn, c_proj, c_fc: {report}");
    println!("wrapped model equals the base before training: {}", logits_of(&model) == before);

    let trainable: Vec<_> = model.parameters().into_iter().filter(|p| p.requires_grad()).collect();
    let mut opt = AdamW::new(trainable, 1e-2);
    for step in 0..=40 {
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(&ids), &targets);
        if step % 10 == 0 {
            println!("step {step:2}: loss {:.3}", loss.item());
        }
        loss.backward();
        opt.step();
    }

    let dir = std::env::temp_dir().join("scratchgpt-example-adapter");
    save_adapter(&model, &dir, "nano (seed 0)").unwrap();
    println!("adapter saved in {} (adapter_config.json, adapter_model.safetensors)", dir.display());
    let mut fresh = base();
    load_adapter(&mut fresh, &dir).unwrap();
    let trained = logits_of(&model);
    println!("loaded onto a fresh base, same logits: {}", logits_of(&fresh) == trained);
    merge_lora(&mut fresh);
    let worst = logits_of(&fresh).iter().zip(&trained).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("merged into plain weights: worst |Δ logit| {worst:.1e}");
}
