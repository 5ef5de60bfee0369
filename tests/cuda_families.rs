//! The open model families' own kernels on the GPU against the CPU's:
//! Gemma 2's soft-capped attention scores, a mixture of experts' routing,
//! and a small random model of each family end to end.
//!
//! `#[ignore]`d: they need a CUDA device (`scripts/gpu-run.sh` runs them
//! with `--ignored`). As in `cuda_ops.rs`, each check computes one thing on
//! CPU tensors and on copies of them on the GPU and compares element by
//! element (`cuda::Tolerance`); the routing, a choice of integers, must
//! match exactly, ties included.
//!
//! The models are the `transformers` fixtures of `tests/llama_parity.rs`
//! (random weights, a few layers): two copies of each are loaded, one is
//! moved to the GPU, and the logits, the loss (with the load-balancing
//! loss where the config asks for it) and every parameter's gradient are
//! compared.

mod cuda;

use cuda::{assert_close, assert_same, gpu, nonzero, on, skip_without_gpu, uniform, F32};
use scratchgpt::autograd::loss::cross_entropy;
use scratchgpt::autograd::nn::Module;
use scratchgpt::autograd::Var;
use scratchgpt::gpt::model::GPTModel;
use scratchgpt::tensor::{AttentionOptions, DType, Device, Qkv, Tensor};

/// Heads-first q, k, v (`Hkv` of `H` heads) and an output gradient, sized
/// so the scaled scores reach past the cap used below.
fn attention_inputs(b: usize, h: usize, hkv: usize, t: usize, d: usize) -> [Tensor; 4] {
    [
        nonzero(&[b, h, t, d], 60).mul_scalar(1.5),
        nonzero(&[b, hkv, t, d], 61).mul_scalar(1.5),
        nonzero(&[b, hkv, t, d], 62),
        nonzero(&[b, h, t, d], 63),
    ]
}

/// Soft-capped attention (cap · tanh(S / cap) before the mask and softmax)
/// on the GPU: the output, the weights P and dq, dk, dv equal the CPU
/// kernel's, with grouped heads, a sliding window, a KV cache's shape and
/// the packed layout; a flash request takes the cuBLAS route (the flash
/// kernel has no cap) and gives the same numbers.
#[test]
#[ignore = "needs a CUDA device"]
fn soft_capped_attention_matches_the_cpu() {
    if skip_without_gpu() {
        return;
    }
    let device = gpu();
    let (b, h, t, d, cap) = (2, 4, 37, 32, 0.8);
    for (hkv, window) in [(4, None), (2, Some(9)), (1, Some(40))] {
        let x = attention_inputs(b, h, hkv, t, d);
        let g: Vec<Tensor> = x.iter().map(|t| on(t, device)).collect();
        for flash in [false, true] {
            let options =
                AttentionOptions { window, flash, ..AttentionOptions::new(h).with_kv_heads(hkv) }.with_softcap(cap);
            let what = format!("cap {cap}, Hkv {hkv}, window {window:?}, flash asked {flash}");
            let run = |x: &[Tensor]| Tensor::attention(Qkv::Heads { q: &x[0], k: &x[1], v: &x[2] }, &options);
            let (want, got) = (run(&x), run(&g));
            assert_close(&format!("{what}: out"), &want.out, &got.out, F32.summing(d));
            let (pw, pg) = (want.saved.probs().expect("CPU P"), got.saved.probs().expect("cuBLAS route's P"));
            assert_close(&format!("{what}: P"), pw, pg, F32.summing(d));
            let grads_want = Tensor::attention_backward(&want.saved, &x[3]).into_vec();
            let grads_got = Tensor::attention_backward(&got.saved, &g[3]).into_vec();
            for ((name, w), gr) in ["dq", "dk", "dv"].iter().zip(&grads_want).zip(&grads_got) {
                assert_close(&format!("{what}: {name}"), w, gr, F32.summing(t));
            }
            // Three new queries after all the keys (decoding with a cache).
            let cached = |x: &[Tensor]| {
                let q = x[0].narrow(2, t - 3, 3).contiguous();
                Tensor::attention(Qkv::Heads { q: &q, k: &x[1], v: &x[2] }, &options).out
            };
            assert_close(&format!("{what}: cached"), &cached(&x), &cached(&g), F32.summing(d));
        }
    }
    // Packed [B, T, (H + 2·Hkv)·D].
    let (hkv, dp) = (2, 16);
    let packed = [nonzero(&[b, t, (h + 2 * hkv) * dp], 64).mul_scalar(1.5), nonzero(&[b, t, h * dp], 65)];
    let gpu_packed: Vec<Tensor> = packed.iter().map(|t| on(t, device)).collect();
    let options = AttentionOptions::new(h).with_kv_heads(hkv).with_window(5).with_softcap(0.5);
    let run = |x: &[Tensor]| {
        let f = Tensor::attention(Qkv::Packed(&x[0]), &options);
        (f.out.clone(), Tensor::attention_backward(&f.saved, &x[1]).into_vec().remove(0))
    };
    let ((out_want, d_want), (out_got, d_got)) = (run(&packed), run(&gpu_packed));
    assert_close("packed capped out", &out_want, &out_got, F32.summing(dp));
    assert_close("packed capped dqkv", &d_want, &d_got, F32.summing(t));
}

/// The routing on the GPU and on the CPU: every output the same integers,
/// and the index tensors left on the GPU.
fn same_routing(what: &str, probs: &Tensor, k: usize) {
    let device = gpu();
    let (want, got) = (probs.route_top_k(k), on(probs, device).route_top_k(k));
    assert_eq!(want.offsets, got.offsets, "{what}: group starts");
    for (name, w, g) in [
        ("chosen", &want.chosen, &got.chosen),
        ("tokens", &want.tokens, &got.tokens),
        ("positions", &want.positions, &got.positions),
    ] {
        assert_eq!(g.device(), device, "{what}: {name} left the GPU");
        assert_same(&format!("{what}: {name}"), w, g);
    }
    for e in 0..want.n_experts() {
        let ((tw, pw), (tg, pg)) = (want.expert(e), got.expert(e));
        assert_same(&format!("{what}: expert {e}'s tokens"), &tw, &tg);
        assert_same(&format!("{what}: expert {e}'s positions"), &pw, &pg);
    }
}

/// Top-k routing on the device equals the host's: random probabilities
/// (600 tokens, so the grouping walks many block-wide chunks), k = 1, 2
/// and k = E; rows full of ties in f32 and bf16 (lower index first); an
/// expert no token chooses; no tokens at all; and 130 experts (more than
/// one warp of them in a row).
#[test]
#[ignore = "needs a CUDA device"]
fn top_k_routing_matches_the_cpu() {
    if skip_without_gpu() {
        return;
    }
    let random = uniform(&[600, 8], -2.0, 2.0, 70).softmax(-1);
    for k in [1, 2, 8] {
        same_routing(&format!("random, k {k}"), &random, k);
        same_routing(&format!("random bf16, k {k}"), &random.to_dtype(DType::BF16), k);
    }
    // Four distinct values per row of 8: every row has ties.
    let tied: Vec<f32> = (0..300 * 8).map(|i| ((i / 8 * 3 + i % 8 * 5) % 4) as f32 * 0.25).collect();
    let tied = Tensor::from_vec(tied, [300, 8]).unwrap();
    for k in [1, 3, 8] {
        same_routing(&format!("ties, k {k}"), &tied, k);
        same_routing(&format!("ties bf16, k {k}"), &tied.to_dtype(DType::BF16), k);
    }
    // Expert 5 has probability 0 in every row: its group is empty.
    let mask: Vec<f32> = (0..8).map(|e| if e == 5 { 0.0 } else { 1.0 }).collect();
    let unused = random.mul(&Tensor::from_vec(mask, [8]).unwrap());
    same_routing("an unused expert", &unused, 2);
    assert_eq!(unused.route_top_k(2).count(5), 0);
    same_routing("no tokens", &Tensor::zeros([0, 8], DType::F32), 2);
    same_routing("130 experts", &uniform(&[40, 130], 0.0, 1.0, 71), 6);
}

/// The model's logits and loss (with the load-balancing loss where the
/// config has `output_router_logits`), as `tests/llama_parity.rs` forms it.
fn logits_and_loss(model: &GPTModel, ids: &Tensor) -> (Var, Var) {
    let (logits, aux) = model.forward_with_aux(ids);
    let t = ids.dim(1);
    let loss = cross_entropy(&logits.narrow(1, 0, t - 1), &ids.narrow(1, 1, t - 1).contiguous());
    (logits.clone(), aux.map_or(loss.clone(), |aux| loss.add(&aux)))
}

/// Gemma 2 (soft-capped scores and logits, sliding and full layers),
/// Gemma 3 (QK-norm, local rotary base), Phi-3 (fused projections, partial
/// rotary) and the two mixtures of experts (Mixtral, Qwen3-MoE: routing on
/// the device, dispatch and combine): a small random model of each gives
/// the CPU's logits, loss and every gradient on the GPU.
#[test]
#[ignore = "needs a CUDA device"]
fn each_family_matches_the_cpu() {
    if skip_without_gpu() {
        return;
    }
    let device = gpu();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_family");
    for case in ["gemma2", "gemma3_text", "phi3", "mixtral", "qwen3_moe"] {
        let load = || {
            let mut m = scratchgpt::gpt::weights::load_model(root.join(case)).expect("fixture model");
            m.eval();
            m
        };
        let (cpu, gpu_model) = (load(), load());
        gpu_model.to_device(device).unwrap_or_else(|e| panic!("{case}: model to the GPU: {e}"));
        let vocab = cpu.config.vocab_size as i64;
        let ids: Vec<i64> = (0..2 * 19).map(|i| (i * 37 + 11) % vocab).collect();
        let ids = Tensor::from_vec(ids, [2, 19]).unwrap();
        let (lc, loss_c) = logits_and_loss(&cpu, &ids);
        let (lg, loss_g) = logits_and_loss(&gpu_model, &ids);
        assert_close(&format!("{case}: logits"), &lc.data(), &lg.data(), cuda::Tolerance::of_scale(&lc.data(), 1e-4));
        let (a, b) = (loss_c.item(), loss_g.item());
        assert!((a - b).abs() <= 1e-5 * a.abs(), "{case}: loss {a} vs {b}");
        loss_c.backward();
        loss_g.backward();
        for ((name, pc), (_, pg)) in cpu.named_parameters().into_iter().zip(gpu_model.named_parameters()) {
            // An expert no token chose has no gradient on either device.
            match (pc.grad(), pg.grad()) {
                (Some(gc), Some(gg)) => {
                    assert_eq!(gg.device(), Device::Cuda(0), "{case}: d{name} left the GPU");
                    assert_close(&format!("{case}: d{name}"), &gc, &gg, cuda::Tolerance::of_scale(&gc, 1e-3));
                }
                (None, None) => {}
                (c, g) => panic!(
                    "{case}: {name} has a gradient on one device only (cpu {}, gpu {})",
                    c.is_some(),
                    g.is_some()
                ),
            }
        }
    }
}
