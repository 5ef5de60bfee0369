//! The GPT on the GPU against the same GPT on the CPU: logits, loss, every
//! parameter's gradient, 20 AdamW steps, greedy generation, and a training
//! run through the command line.
//!
//! `#[ignore]`d: they need a CUDA device (`scripts/gpu-check.sh`). Two
//! copies of one model are made from one seed; one moves to the GPU.

mod common;
mod cuda;

use cuda::{assert_close, gpu, skip_without_gpu, Tolerance};
use scratchgpt::autograd::loss::cross_entropy;
use scratchgpt::autograd::nn::Module;
use scratchgpt::autograd::optim::{clip_grad_norm, AdamW, Optimizer};
use scratchgpt::gpt::generate::{generate, GenerateOptions};
use scratchgpt::gpt::model::{GPTConfig, GPTModel};
use scratchgpt::tensor::{DType, Device, Generator, Tensor};

/// A small GPT with GPT-2's structure; head size 64 like GPT-2's, so the
/// flash kernel applies too.
fn config() -> GPTConfig {
    GPTConfig {
        vocab_size: 300,
        context_length: 48,
        emb_dim: 128,
        n_heads: 2,
        n_layers: 2,
        ..GPTConfig::preset("nano").unwrap()
    }
}

fn pair() -> (GPTModel, GPTModel) {
    let cpu = GPTModel::new(config(), &mut Generator::seed(3));
    let gpu_model = GPTModel::new(config(), &mut Generator::seed(3));
    gpu_model.to_device(gpu()).expect("model to the GPU");
    (cpu, gpu_model)
}

fn batch(seed: u64, b: usize, t: usize) -> (Tensor, Tensor) {
    let mut g = Generator::seed(seed);
    let mut ids = |n: usize| (0..n).map(|_| g.below(config().vocab_size) as i64).collect::<Vec<_>>();
    (Tensor::from_vec(ids(b * t), [b, t]).unwrap(), Tensor::from_vec(ids(b * t), [b, t]).unwrap())
}

#[test]
#[ignore = "needs a CUDA device"]
fn forward_loss_and_every_gradient_match_the_cpu() {
    if skip_without_gpu() {
        return;
    }
    let (cpu, gpu_model) = pair();
    let (x, y) = batch(1, 3, 40);
    let (lc, lg) = (cpu.forward(&x), gpu_model.forward(&x));
    // Whole-model results are in the model's units, not the inputs': the
    // absolute part of each tolerance is a share of the tensor's largest element.
    assert_close("logits", &lc.data(), &lg.data(), Tolerance::of_scale(&lc.data(), 1e-5));
    let (loss_c, loss_g) = (cross_entropy(&lc, &y), cross_entropy(&lg, &y));
    assert!(
        (loss_c.item() - loss_g.item()).abs() <= 1e-5 * loss_c.item(),
        "loss {} vs {}",
        loss_c.item(),
        loss_g.item()
    );
    loss_c.backward();
    loss_g.backward();
    for ((name, pc), (_, pg)) in cpu.named_parameters().into_iter().zip(gpu_model.named_parameters()) {
        let (gc, gg) = (pc.grad().expect("cpu grad"), pg.grad().expect("gpu grad"));
        assert_eq!(gg.device(), Device::Cuda(0), "{name}: gradient left the GPU");
        assert_close(&format!("d{name}"), &gc, &gg, Tolerance::of_scale(&gc, 1e-4));
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn twenty_training_steps_track_the_cpu() {
    if skip_without_gpu() {
        return;
    }
    for flash in [false, true] {
        scratchgpt::tensor::ops::attention::set_flash(flash);
        let (cpu, gpu_model) = pair();
        let mut opt_c = AdamW::with_options(cpu.parameters(), 1e-3, (0.9, 0.95), 1e-8, 0.1);
        let mut opt_g = AdamW::with_options(gpu_model.parameters(), 1e-3, (0.9, 0.95), 1e-8, 0.1);
        let mut losses = Vec::new();
        for step in 0..20 {
            let (x, y) = batch(100 + step, 4, 32);
            let mut pair_loss = [0.0; 2];
            for (i, (model, opt)) in [(&cpu, &mut opt_c), (&gpu_model, &mut opt_g)].into_iter().enumerate() {
                opt.zero_grad();
                let loss = cross_entropy(&model.forward(&x), &y);
                loss.backward();
                clip_grad_norm(&model.parameters(), 1.0);
                opt.step();
                pair_loss[i] = loss.item();
            }
            losses.push(pair_loss);
        }
        scratchgpt::tensor::ops::attention::set_flash(false);
        for (step, [c, g]) in losses.iter().enumerate() {
            assert!((c - g).abs() <= 1e-4 * c.abs(), "flash {flash}, step {step}: cpu loss {c} gpu loss {g}");
        }
        assert!(losses[19][1] < losses[0][1], "flash {flash}: the GPU run did not learn: {losses:?}");
        // Parameters agree to 1% of each tensor's scale. Not tighter: AdamW
        // divides by √v, so a gradient that is pure rounding noise (the key
        // bias's, which is zero in exact arithmetic: softmax ignores a shift
        // shared by a whole row) still moves its parameter by ~lr per step,
        // in a direction the rounding picks.
        for ((name, pc), (_, pg)) in cpu.named_parameters().into_iter().zip(gpu_model.named_parameters()) {
            assert_close(
                &format!("{name} after 20 steps"),
                &pc.data(),
                &pg.data(),
                Tolerance::of_scale(&pc.data(), 1e-2),
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn greedy_generation_gives_the_same_tokens() {
    if skip_without_gpu() {
        return;
    }
    let (cpu, gpu_model) = pair();
    let prompt = [5u32, 17, 2, 99];
    for use_cache in [true, false] {
        let opts = GenerateOptions { max_new_tokens: 30, use_cache, ..Default::default() };
        let (c, g) = (generate(&cpu, &prompt, &opts, |_| {}), generate(&gpu_model, &prompt, &opts, |_| {}));
        assert_eq!(c, g, "cache {use_cache}");
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn bf16_autocast_trains_like_f32() {
    if skip_without_gpu() {
        return;
    }
    let device = gpu();
    let run = |precision: Option<DType>| {
        scratchgpt::tensor::autocast::with_autocast(precision, || {
            let model = GPTModel::new(config(), &mut Generator::seed(3));
            model.to_device(device).unwrap();
            let mut opt = AdamW::with_options(model.parameters(), 3e-3, (0.9, 0.95), 1e-8, 0.1);
            let mut last = 0.0;
            for step in 0..20 {
                let (x, y) = batch(100 + step, 4, 32);
                opt.zero_grad();
                let loss = cross_entropy(&model.forward(&x), &y);
                loss.backward();
                opt.step();
                last = loss.item();
            }
            // Master weights stay f32.
            assert!(model.parameters().iter().all(|p| p.dtype() == DType::F32));
            last
        })
    };
    let (f32_loss, bf16_loss) = (run(None), run(Some(DType::BF16)));
    assert!((f32_loss - bf16_loss).abs() <= 0.02 * f32_loss, "f32 {f32_loss} vs bf16 {bf16_loss}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn the_command_line_trains_and_generates_on_the_gpu() {
    if skip_without_gpu() {
        return;
    }
    gpu();
    let dir = common::scratch_dir("cuda-train");
    let out = dir.join("run");
    let out_s = out.to_str().unwrap();
    let train = common::scratchgpt(&[
        "train",
        "--device",
        "cuda",
        "--preset",
        "nano",
        "--steps",
        "20",
        "--batch-size",
        "4",
        "--context",
        "32",
        "--eval-every",
        "10",
        "--checkpoint-every",
        "10",
        "--out",
        out_s,
        "--json",
    ]);
    assert!(train.status.success(), "train: {}", String::from_utf8_lossy(&train.stderr));
    let gen = common::scratchgpt(&[
        "generate",
        "--device",
        "cuda",
        "--model",
        out_s,
        "--prompt",
        "Once upon",
        "--max-new-tokens",
        "10",
    ]);
    assert!(gen.status.success(), "generate: {}", String::from_utf8_lossy(&gen.stderr));
    let gen_cpu =
        common::scratchgpt(&["generate", "--model", out_s, "--prompt", "Once upon", "--max-new-tokens", "10"]);
    assert_eq!(gen.stdout, gen_cpu.stdout, "greedy text differs between devices");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs a CUDA device"]
fn half_precision_weights_run_inference() {
    if skip_without_gpu() {
        return;
    }
    let (_, gpu_model) = pair();
    let (x, _) = batch(7, 2, 24);
    let reference = gpu_model.forward(&x).data();
    for dtype in [DType::BF16, DType::F16] {
        let half = GPTModel::new(config(), &mut Generator::seed(3));
        half.to_device(gpu()).unwrap();
        for p in half.parameters() {
            p.set_data(p.data().to_dtype(dtype));
        }
        let logits = scratchgpt::autograd::no_grad(|| half.forward(&x)).data();
        assert_eq!(logits.dtype(), dtype);
        // Half precision keeps 8 (bf16) or 11 (f16) significant bits, and
        // rounding compounds through the layers.
        let widened = logits.to_dtype(DType::F32).to_device(Device::Cpu).unwrap();
        let want = reference.to_device(Device::Cpu).unwrap();
        assert_close(&format!("{dtype} logits"), &want, &on_gpu(&widened), Tolerance::of_scale(&want, 0.03));
    }
}

fn on_gpu(t: &Tensor) -> Tensor {
    t.to_device(Device::Cuda(0)).unwrap()
}

/// The Llama family on the GPU (RMSNorm, rotary embeddings with llama3
/// scaling, SwiGLU, grouped-query attention, a sliding window, q/k/v biases
/// and QK-norm): each `transformers` fixture of `tests/llama_parity.rs`
/// gives transformers' logits and gradients on the GPU too, and the same
/// greedy tokens with and without the KV cache (the rolling window's
/// included).
#[test]
#[ignore = "needs a CUDA device"]
fn the_llama_family_matches_transformers_on_the_gpu() {
    if skip_without_gpu() {
        return;
    }
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_family");
    for case in ["llama", "mistral", "qwen2", "qwen3"] {
        let dir = root.join(case);
        let r =
            common::parity::read_fixture(&dir.join("expected.safetensors"), "scripts/make_llama_family_fixtures.py");
        let mut model = scratchgpt::gpt::weights::load_model(&dir).expect("fixture model");
        model.eval();
        model.to_device(gpu()).expect("model to the GPU");
        let ids = &r["ids"];
        let logits = model.forward(ids);
        let want = &r["logits"];
        assert_close(&format!("{case}: logits"), want, &logits.data(), Tolerance::of_scale(want, 1e-4));
        let t = ids.dim(1);
        cross_entropy(&logits.narrow(1, 0, t - 1), &ids.narrow(1, 1, t - 1).contiguous()).backward();
        for (name, param) in model.named_parameters() {
            let hf = scratchgpt::gpt::weights::hf::hf_name(&model.config, &name);
            let want = &r[&format!("grad.{hf}")];
            let got = param.grad().unwrap_or_else(|| panic!("{case}: {name} has no gradient"));
            assert_close(&format!("{case}: d loss / d {hf}"), want, &got, Tolerance::of_scale(want, 1e-3));
        }
        let ids_of = |t: &Tensor| t.to_vec::<i64>().iter().map(|&i| i as u32).collect::<Vec<u32>>();
        let (prompt, want) = (ids_of(&r["prompt"]), ids_of(&r["greedy_cached"]));
        for use_cache in [true, false] {
            let new_tokens = want.len() - prompt.len();
            let opts = GenerateOptions {
                max_new_tokens: new_tokens,
                temperature: 0.0,
                use_cache,
                stop_token: None,
                ..Default::default()
            };
            let got: Vec<u32> = prompt.iter().copied().chain(generate(&model, &prompt, &opts, |_| {})).collect();
            assert_eq!(got, want, "{case}: greedy tokens, cache {use_cache}");
        }
    }
}
