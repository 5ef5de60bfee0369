//! Quantized folders end to end: a model quantized and loaded computes
//! what its dequantized weights compute in f32, stays close to the
//! original, decodes the same with and without the KV cache, and a folder
//! whose scales do not fit its weights is refused with the file and tensor
//! named.

use std::path::{Path, PathBuf};

use autograd::nn::{Linear, Module};
use autograd::{no_grad, Var};
use gpt::model::{GPTConfig, GPTModel, Projection};
use gpt::quant::{quantize_folder, scheme_of, QuantLinear, QuantMatrix, Scheme};
use gpt::weights::{load_model, save_model, save_raw_safetensors, RawTensor, SafetensorsFile};
use tensor::{Generator, Tensor};

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scratchgpt-quant-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nano() -> GPTModel {
    GPTModel::new(GPTConfig::preset("nano").unwrap(), &mut Generator::seed(5))
}

fn ids() -> Tensor {
    Tensor::from_vec(vec![1i64, 5, 9, 200, 3, 77, 400, 12, 0, 511], [2, 5]).unwrap()
}

fn logits(model: &GPTModel, ids: &Tensor) -> Vec<f32> {
    no_grad(|| model.forward(ids)).data().to_vec::<f32>()
}

/// A saved nano model and its quantized copy.
fn quantized(name: &str, scheme: Scheme) -> (GPTModel, PathBuf, PathBuf) {
    let dir = scratch_dir(name);
    let model = nano();
    save_model(&model, dir.join("f32"), None).unwrap();
    let out = dir.join(scheme.name());
    quantize_folder(&dir.join("f32"), scheme, &out, false).unwrap();
    (model, dir.join("f32"), out)
}

/// The f32 model in `dir` with every quantized matrix replaced by its
/// decoded values: what the quantized model must compute.
fn dequantized_twin(dir: &Path, scheme: Scheme) -> GPTModel {
    let twin = load_model(dir).unwrap();
    for (name, p) in twin.named_parameters() {
        let is_matrix = name != "wpe.weight" && name.ends_with(".weight") && p.dims().len() == 2;
        if is_matrix {
            let w = p.data();
            let q = QuantMatrix::quantize(&w.contiguous_data::<f32>(), w.dim(0), w.dim(1), scheme).unwrap();
            p.set_data(q.dequantize());
        }
    }
    twin
}

#[test]
fn quantized_model_computes_what_its_dequantized_weights_compute() {
    for scheme in Scheme::ALL {
        let (model, f32_dir, q_dir) = quantized(&format!("twin-{scheme}"), scheme);
        let q = load_model(&q_dir).unwrap();
        assert_eq!(scheme_of(&q), Some(scheme));
        let twin = dequantized_twin(&f32_dir, scheme);
        let (got, want, original) = (logits(&q, &ids()), logits(&twin, &ids()), logits(&model, &ids()));
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        // int8 and int4 layers also round their input rows to 8 bits (as
        // llama.cpp does; `kernels::cpu::quant::int_dot`), which the f32
        // twin does not: their bound is that rounding's, still far below
        // what a wrong weight or layout gives (the kernels' own tests check
        // the 8-bit products exactly).
        let bound = match scheme {
            Scheme::F16 | Scheme::BF16 => 1e-4,
            Scheme::Int8 | Scheme::Int4 => 1e-2,
        };
        assert!(worst < bound, "{scheme}: quantized vs dequantized-f32 logits differ by {worst}");
        // And the rounding itself costs little at this size.
        let drift = got.iter().zip(&original).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        let limit = match scheme {
            Scheme::F16 => 1e-3,
            Scheme::BF16 | Scheme::Int8 => 2e-2,
            Scheme::Int4 => 0.2,
        };
        assert!(drift < limit, "{scheme}: logits moved {drift} from the f32 model");
        // Quantized models hold no trainable parameters in their matrices.
        assert!(q.named_parameters().iter().all(|(n, _)| !n.contains("c_attn.weight") && n != "wte.weight"));
    }
}

/// nano with its matrices redrawn at std 0.2 (ten times the usual): the
/// logits spread over several units, so their order carries information a
/// broken quantization would lose (at the usual 0.02 they are all near 0,
/// and a constant output is close to them).
fn spread_out_nano() -> GPTModel {
    let model = nano();
    let mut g = Generator::seed(9);
    for (name, p) in model.named_parameters() {
        if name.ends_with(".weight") && p.dims().len() == 2 {
            p.set_data(Tensor::randn(p.dims(), &mut g).mul_scalar(0.2));
        }
    }
    model
}

/// The share of positions whose largest logit is the same token.
fn top1_agreement(a: &[f32], b: &[f32], vocab: usize) -> f64 {
    let argmax = |row: &[f32]| (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best });
    let rows = a.len() / vocab;
    let same = (0..rows).filter(|&r| argmax(&a[r * vocab..][..vocab]) == argmax(&b[r * vocab..][..vocab])).count();
    same as f64 / rows as f64
}

/// Pearson correlation; NaN when either side is constant.
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&v| v as f64).sum::<f64>() / n, b.iter().map(|&v| v as f64).sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        (ab, aa, bb) = (ab + dx * dy, aa + dx * dx, bb + dy * dy);
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn quantized_logits_keep_the_f32_ranking() {
    let model = spread_out_nano();
    let ids = Tensor::from_vec((0..64).map(|i| (i * 37 % 512) as i64).collect::<Vec<_>>(), [2, 32]).unwrap();
    let original = logits(&model, &ids);
    let spread = correlation(&original, &original.iter().map(|v| v * 2.0 + 1.0).collect::<Vec<_>>());
    assert!((spread - 1.0).abs() < 1e-9, "the correlation helper: {spread}");
    // What the bounds below reject: a constant output.
    let constant = vec![0.5f32; original.len()];
    assert!(top1_agreement(&original, &constant, 512) < 0.1 && correlation(&original, &constant).is_nan());
    for (scheme, min_top1, min_correlation) in
        [(Scheme::F16, 0.95, 0.9999), (Scheme::BF16, 0.9, 0.999), (Scheme::Int8, 0.9, 0.999), (Scheme::Int4, 0.4, 0.9)]
    {
        let q = gpt::quant::quantize_model(&model, scheme).unwrap();
        let got = logits(&q, &ids);
        let (top1, r) = (top1_agreement(&original, &got, 512), correlation(&original, &got));
        assert!(top1 >= min_top1, "{scheme}: top-1 agrees with f32 on {top1} of the positions");
        assert!(r >= min_correlation, "{scheme}: logits correlate with f32 at {r}");
    }
}

/// The packed embedding's rows against the f32 table they came from: int8
/// rounds each weight to within half a step of max|row| / 127 (an
/// independent bound, where the dequantized twin above decodes the same
/// packed rows the model does).
#[test]
fn a_packed_embedding_row_is_its_f32_row_within_half_a_step() {
    let model = spread_out_nano();
    let q = gpt::quant::quantize_model(&model, Scheme::Int8).unwrap();
    let table = model.wte.downcast_ref::<autograd::nn::Embedding>().expect("an f32 table").weight.data();
    let ids = Tensor::from_vec(vec![0i64, 7, 511, 7, 300], [5]).unwrap();
    let got = no_grad(|| q.wte.lookup(&ids)).data().to_vec::<f32>();
    let c = table.dim(1);
    for (k, &id) in [0usize, 7, 511, 7, 300].iter().enumerate() {
        let row = table.narrow(0, id, 1).to_vec::<f32>();
        let half_step = row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0 / 2.0;
        for (j, (&w, &b)) in row.iter().zip(&got[k * c..][..c]).enumerate() {
            assert!((w - b).abs() <= half_step * 1.001, "row {id} [{j}]: {w} packed as {b} (half step {half_step})");
        }
    }
}

#[test]
fn cached_decoding_matches_the_full_forward() {
    let (_, _, dir) = quantized("cache", Scheme::Int4);
    let model = load_model(&dir).unwrap();
    let ids: Vec<i64> = (0..9).map(|i| (i * 37) % 512).collect();
    let full = logits(&model, &Tensor::from_vec(ids.clone(), [1, 9]).unwrap());
    let mut cache = model.new_cache();
    let mut steps = Vec::new();
    no_grad(|| {
        steps.extend(
            model
                .forward_cached(&Tensor::from_vec(ids[..4].to_vec(), [1, 4]).unwrap(), &mut cache)
                .data()
                .to_vec::<f32>(),
        );
        for &id in &ids[4..] {
            steps.extend(
                model.forward_cached(&Tensor::from_vec(vec![id], [1, 1]).unwrap(), &mut cache).data().to_vec::<f32>(),
            );
        }
    });
    let worst = steps.iter().zip(&full).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-4, "cached vs full: {worst}");
}

/// A quantized layer that keeps its packed weight to itself, so the model
/// runs it on its own instead of together with its neighbours.
struct Alone(QuantLinear);

impl Module for Alone {
    fn forward(&self, x: &Var) -> Var {
        self.0.forward(x)
    }
    fn visit_parameters(&self, _prefix: &str, _f: &mut dyn FnMut(String, &Var)) {}
}

impl Projection for Alone {
    fn to_linear(&self) -> Option<Linear> {
        None
    }
}

/// A plain Linear that keeps its weight to itself (a wrapper hands over
/// nothing), so the model runs it on its own.
struct AloneF32(Linear);

impl Module for AloneF32 {
    fn forward(&self, x: &Var) -> Var {
        self.0.forward(x)
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        self.0.visit_parameters(prefix, f)
    }
}

impl Projection for AloneF32 {
    fn to_linear(&self) -> Option<Linear> {
        self.0.to_linear()
    }
}

/// Logits of a prompt and then of three tokens decoded one by one, as bits.
fn prompt_then_decoded_bits(m: &GPTModel) -> Vec<u32> {
    let mut cache = m.new_cache();
    let mut out = Vec::new();
    no_grad(|| {
        let prompt = Tensor::from_vec(vec![3i64, 70, 140, 9], [1, 4]).unwrap();
        out.extend(m.forward_cached(&prompt, &mut cache).data().to_vec::<f32>());
        for id in [12i64, 400, 7] {
            let next = Tensor::from_vec(vec![id], [1, 1]).unwrap();
            out.extend(m.forward_cached(&next, &mut cache).data().to_vec::<f32>());
        }
    });
    out.iter().map(|v| v.to_bits()).collect()
}

/// q, k and v (and gate and up) run as one product give the logits they
/// give one by one, bit for bit, decoding and on a prompt: packed, and as
/// plain f32 Linears (which join while no gradient is recorded).
#[test]
fn projections_of_one_input_together_give_the_bits_of_each_alone() {
    // Qwen2's q, k and v have biases, added after the shared product.
    let with_biases = GPTConfig { qkv_bias: true, ..GPTConfig::preset("nano-llama").unwrap() };
    let configs = [
        ("nano-llama", GPTConfig::preset("nano-llama").unwrap()),
        ("nano-gemma", GPTConfig::preset("nano-gemma").unwrap()),
        ("nano-llama with q, k, v biases", with_biases),
    ];
    for (preset, config) in configs {
        let new_model = || {
            let mut g = Generator::seed(8);
            let model = GPTModel::new(config.clone(), &mut g);
            // Biases start at zero; give them values, so that one left out
            // shows.
            for (_, p) in model.projections() {
                if let Some(bias) = &p.downcast_ref::<Linear>().expect("an f32 model").bias {
                    bias.set_data(Tensor::uniform(bias.shape(), -0.5, 0.5, tensor::DType::F32, &mut g));
                }
            }
            model
        };
        let model = new_model();
        for scheme in [Scheme::F16, Scheme::Int8, Scheme::Int4] {
            let together = gpt::quant::quantize_model(&model, scheme).unwrap();
            let mut alone = gpt::quant::quantize_model(&model, scheme).unwrap();
            for (name, p) in alone.projections_mut() {
                let q = p.downcast_ref::<QuantLinear>().unwrap_or_else(|| panic!("{name} is quantized"));
                *p = Box::new(Alone(QuantLinear { weight: q.weight.clone(), bias: q.bias.clone() }));
            }
            assert_eq!(prompt_then_decoded_bits(&together), prompt_then_decoded_bits(&alone), "{preset} {scheme}");
        }
        let mut alone = new_model();
        for (_, p) in alone.projections_mut() {
            *p = Box::new(AloneF32(p.to_linear().expect("an f32 projection")));
        }
        assert_eq!(prompt_then_decoded_bits(&model), prompt_then_decoded_bits(&alone), "{preset} f32");
    }
}

/// A plain Linear hands its weight over only while no gradient is
/// recorded: in training, q, k and v each run their own `forward`, and
/// their weights get gradients.
#[test]
fn f32_projections_join_only_outside_training() {
    let mut g = Generator::seed(9);
    let linear = Linear::new(8, 4, true, &mut g);
    assert!(linear.shared_input_weight().is_none(), "recording gradients");
    assert!(no_grad(|| linear.shared_input_weight().is_some()), "under no_grad");
    let model = GPTModel::new(GPTConfig::preset("nano-llama").unwrap(), &mut g);
    let ids = Tensor::from_vec(vec![5i64], [1, 1]).unwrap();
    model.forward(&ids).sum_all().backward();
    for (name, p) in model.projections() {
        let weight = p.to_linear().unwrap().weight;
        assert!(weight.grad().is_some(), "{name} has a gradient after one-token backward");
    }
}

#[test]
fn folders_record_the_scheme_and_shrink() {
    let (_, f32_dir, dir) = quantized("layout", Scheme::Int4);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["scratchgpt_quantization"]["scheme"], "int4");
    assert_eq!(config["scratchgpt_quantization"]["group_size"], 32);
    // A damaged record says what it needs in words, not Rust's Option syntax.
    let copy = dir.with_file_name("layout-bad-group");
    std::fs::create_dir_all(&copy).unwrap();
    for (group, says) in [(serde_json::json!(64), "group_size 64"), (serde_json::Value::Null, "none")] {
        let mut bad = config.clone();
        bad["scratchgpt_quantization"]["group_size"] = group;
        std::fs::write(copy.join("config.json"), bad.to_string()).unwrap();
        let err = gpt::quant::folder_scheme(&copy).unwrap_err().to_string();
        assert!(err.ends_with(&format!("int4 needs group_size 32, the config says {says}")), "{err}");
    }
    let file = SafetensorsFile::open(dir.join("model.safetensors")).unwrap();
    assert_eq!(file.shape("transformer.h.0.attn.c_attn.weight").unwrap(), vec![192, 32]);
    assert_eq!(file.shape("transformer.h.0.attn.c_attn.weight_scale").unwrap(), vec![192, 2]);
    let size = |d: &Path| std::fs::metadata(d.join("model.safetensors")).unwrap().len() as f64;
    // nano's position embedding and norms are a larger share than GPT-2's.
    assert!(size(&dir) / size(&f32_dir) < 0.25, "{}", size(&dir) / size(&f32_dir));

    let (_, _, half) = quantized("layout-f16", Scheme::F16);
    let file = SafetensorsFile::open(half.join("model.safetensors")).unwrap();
    // Half precision keeps the f32 folder's (Hugging Face's) layout.
    assert_eq!(file.shape("transformer.h.0.attn.c_attn.weight").unwrap(), vec![64, 192]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(half.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "float16");
}

/// Rewrites `dir`'s weights with `edit` applied to the named tensor.
fn rewrite(dir: &Path, name: &str, edit: impl FnOnce(&mut RawTensor)) {
    let path = dir.join("model.safetensors");
    let file = SafetensorsFile::open(&path).unwrap();
    let mut tensors: Vec<(String, RawTensor)> = file
        .names()
        .into_iter()
        .map(|n| {
            let raw = file.raw(&n).unwrap();
            (n, RawTensor { dtype: raw.dtype, shape: raw.shape, data: raw.data.to_vec() })
        })
        .collect();
    drop(file);
    edit(&mut tensors.iter_mut().find(|(n, _)| n == name).unwrap().1);
    save_raw_safetensors(&path, &tensors, None).unwrap();
}

#[test]
fn scales_that_do_not_fit_their_weights_are_refused() {
    let (_, _, dir) = quantized("bad-scales", Scheme::Int8);
    rewrite(&dir, "transformer.h.1.mlp.c_fc.weight_scale", |t| {
        t.shape = vec![255];
        t.data.truncate(255 * 4);
    });
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.contains("model.safetensors") && err.contains("transformer.h.1.mlp.c_fc.weight_scale"), "{err}");
    assert!(err.contains("does not match its weight transformer.h.1.mlp.c_fc.weight"), "{err}");
    assert_eq!(err.lines().count(), 1);

    let (_, _, dir) = quantized("nan-scale", Scheme::Int4);
    rewrite(&dir, "transformer.wte.weight_scale", |t| {
        t.data[0..2].copy_from_slice(&half::f16::NAN.to_bits().to_le_bytes());
    });
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.contains("transformer.wte.weight_scale holds the scale NaN"), "{err}");

    // A weight stored in another scheme's dtype.
    let (_, _, dir) = quantized("dtype", Scheme::Int4);
    rewrite(&dir, "transformer.h.0.attn.c_proj.weight", |t| t.dtype = safetensors::Dtype::I8);
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.contains("transformer.h.0.attn.c_proj.weight is I8, but a int4 model stores it as U8"), "{err}");

    // A missing scale.
    let (_, _, dir) = quantized("missing", Scheme::Int8);
    let path = dir.join("model.safetensors");
    let file = SafetensorsFile::open(&path).unwrap();
    let tensors: Vec<(String, RawTensor)> = file
        .names()
        .into_iter()
        .filter(|n| n != "transformer.h.0.attn.c_attn.weight_scale")
        .map(|n| {
            let raw = file.raw(&n).unwrap();
            (n, RawTensor { dtype: raw.dtype, shape: raw.shape, data: raw.data.to_vec() })
        })
        .collect();
    drop(file);
    save_raw_safetensors(&path, &tensors, None).unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.contains("missing tensor transformer.h.0.attn.c_attn.weight_scale"), "{err}");
}

#[test]
fn quantize_refuses_what_it_must_not_overwrite() {
    let (_, f32_dir, q_dir) = quantized("refuse", Scheme::Int8);
    let err = quantize_folder(&q_dir, Scheme::Int4, &q_dir.with_file_name("again"), false).unwrap_err().to_string();
    assert!(err.contains("already quantized (int8)"), "{err}");
    let err = quantize_folder(&f32_dir, Scheme::Int4, &f32_dir, false).unwrap_err().to_string();
    assert!(err.contains("is the model being quantized"), "{err}");
    let other = f32_dir.with_file_name("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("todo.txt"), "keep me").unwrap();
    let err = quantize_folder(&f32_dir, Scheme::Int4, &other, false).unwrap_err().to_string();
    assert!(err.contains("not a model folder"), "{err}");
    assert_eq!(std::fs::read_to_string(other.join("todo.txt")).unwrap(), "keep me");
    // Replacing an earlier quantized folder is fine, and leaves no temporary.
    quantize_folder(&f32_dir, Scheme::Int4, &q_dir, false).unwrap();
    assert_eq!(scheme_of(&load_model(&q_dir).unwrap()), Some(Scheme::Int4));
    let leftovers: Vec<_> = std::fs::read_dir(q_dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp") || n.contains(".old"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn quantizing_in_memory_matches_the_folder() {
    let (model, _, dir) = quantized("convert", Scheme::Int8);
    let in_memory = gpt::quant::quantize_model(&model, Scheme::Int8).unwrap();
    assert_eq!(logits(&load_model(&dir).unwrap(), &ids()), logits(&in_memory, &ids()));
    let err = gpt::quant::quantize_model(&in_memory, Scheme::Int4).err().unwrap().to_string();
    assert_eq!(err, "tensor wte.weight is already quantized (int8)");
}

#[test]
fn quantized_models_stay_on_the_cpu() {
    let (_, _, dir) = quantized("device", Scheme::Int8);
    let model = load_model(&dir).unwrap();
    let err = Module::to_device(&model, tensor::Device::Cuda(0)).unwrap_err().to_string();
    assert!(err.contains("a quantized (int8) model runs on the CPU only"), "{err}");
    Module::to_device(&model, tensor::Device::Cpu).unwrap();
}

#[test]
fn quantizing_a_model_with_adapters_packs_what_it_computes() {
    use gpt::finetune::lora::{apply_lora, merge_lora, LoraConfig};
    let mut adapted = nano();
    apply_lora(&mut adapted, &LoraConfig::new(2), &mut Generator::seed(1)).unwrap();
    // Nonzero adapters, so merging them changes the weights.
    for (name, p) in adapted.named_parameters() {
        if name.contains("lora_B") {
            p.set_data(Tensor::randn(p.dims(), &mut Generator::seed(2)).mul_scalar(0.5));
        }
    }
    let packed = gpt::quant::quantize_model(&adapted, Scheme::Int8).unwrap();
    merge_lora(&mut adapted);
    let merged_then_packed = gpt::quant::quantize_model(&adapted, Scheme::Int8).unwrap();
    assert_eq!(logits(&packed, &ids()), logits(&merged_then_packed, &ids()));
    assert_ne!(logits(&packed, &ids()), logits(&gpt::quant::quantize_model(&nano(), Scheme::Int8).unwrap(), &ids()));
}

#[test]
fn adapters_attach_to_f32_models_only() {
    use gpt::finetune::lora::{apply_lora, LoraConfig};
    let (_, _, dir) = quantized("lora", Scheme::Int4);
    let mut model = load_model(&dir).unwrap();
    let err = apply_lora(&mut model, &LoraConfig::new(2), &mut Generator::seed(0)).unwrap_err().to_string();
    assert!(err.contains("this one is quantized (int4)"), "{err}");
    let layer =
        model.h[0].attn.projections()[0].1.downcast_ref::<gpt::quant::QuantLinear>().expect("a packed projection");
    assert!(Module::to_device(layer, tensor::Device::Cuda(0)).is_err());
}
