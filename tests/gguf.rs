//! GGUF: the block formats against the `gguf` Python package
//! (`scripts/make_gguf_fixtures.py`), the container read back as written,
//! and `export --format gguf` / `--model FILE.gguf` through the binary.

mod common;

use std::path::{Path, PathBuf};

use common::{fails_with, scratch_dir, scratchgpt, train_nano};
use scratchgpt::gpt::gguf::quantize::quantize;
use scratchgpt::gpt::gguf::{GgmlType, GgufFile, GgufWriter, Value, ValueType};
use serde_json::Value as Json;

const FIXTURE: &str = "tests/fixtures/gguf_blocks.gguf";

fn fixture() -> GgufFile {
    GgufFile::open(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).unwrap()
}

#[test]
fn every_block_format_dequantizes_as_gguf_does() {
    let file = fixture();
    for (name, ty) in [
        ("f32", GgmlType::F32),
        ("f16", GgmlType::F16),
        ("bf16", GgmlType::BF16),
        ("q8_0", GgmlType::Q8_0),
        ("q4_0", GgmlType::Q4_0),
        ("q4_k", GgmlType::Q4_K),
        ("q6_k", GgmlType::Q6_K),
    ] {
        let info = file.tensor(name).unwrap();
        assert_eq!(info.ty, ty, "{name}");
        let expected = file.tensor(&format!("{name}.expected")).unwrap();
        assert_eq!(info.shape(), expected.shape(), "{name}");
        let (ours, theirs) = (file.dequantize(info), file.dequantize(expected));
        // Bit for bit: the same operations in the same order.
        let differ = ours.iter().zip(&theirs).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{name}: {differ} of {} values differ", ours.len());
        assert!(theirs.iter().any(|v| *v != 0.0), "{name}: the fixture holds only zeros");
    }
}

#[test]
fn q8_0_and_q4_0_quantize_to_the_same_bytes_as_gguf() {
    let file = fixture();
    let source = file.dequantize(file.tensor("source").unwrap());
    for (name, ty) in [("q8_0", GgmlType::Q8_0), ("q4_0", GgmlType::Q4_0)] {
        let theirs = file.data(file.tensor(name).unwrap());
        let ours = quantize(ty, &source);
        let blocks = ours.chunks(ty.block_bytes()).zip(theirs.chunks(ty.block_bytes()));
        for (row, (a, b)) in blocks.enumerate() {
            assert_eq!(a, b, "{name}: block {row} differs");
        }
    }
}

#[test]
fn metadata_of_every_type_reads_as_written() {
    let file = fixture();
    let expected = [
        ("general.architecture", Value::String("test".into())),
        ("test.u8", Value::U8(200)),
        ("test.i8", Value::I8(-100)),
        ("test.u16", Value::U16(60000)),
        ("test.i16", Value::I16(-30000)),
        ("test.u32", Value::U32(4_000_000_000)),
        ("test.i32", Value::I32(-2_000_000_000)),
        ("test.f32", Value::F32(0.15625)),
        ("test.bool", Value::Bool(true)),
        ("test.string", Value::String("naïve ✓".into())),
        ("test.u64", Value::U64((1 << 63) + 5)),
        ("test.i64", Value::I64(-(1 << 62))),
        ("test.f64", Value::F64(-2.5e-300)),
        ("test.array_i32", Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(-2), Value::I32(3)])),
        (
            "test.array_str",
            Value::Array(ValueType::String, ["a", "", "ĠHello"].iter().map(|s| Value::String(s.to_string())).collect()),
        ),
    ];
    for (key, value) in &expected {
        assert_eq!(file.get(key), Some(value), "{key}");
    }
    // Written by our writer, every value and tensor reads back the same,
    // at an alignment other than the default.
    let dir = scratch_dir("gguf-writer");
    let path = dir.join("copy.gguf");
    let mut w = GgufWriter::new();
    w.set("general.alignment", Value::U32(64));
    for (key, value) in file.metadata() {
        w.set(key, value.clone());
    }
    for info in file.tensors() {
        w.add_tensor(&info.name, &info.shape(), info.ty, file.data(info).to_vec());
    }
    w.write(&path).unwrap();
    let copy = GgufFile::open(&path).unwrap();
    assert_eq!(&copy.metadata()[1..], file.metadata(), "metadata after general.alignment");
    for (a, b) in copy.tensors().iter().zip(file.tensors()) {
        assert_eq!((&a.name, &a.ne, a.ty), (&b.name, &b.ne, b.ty));
        assert_eq!(a.offset % 64, 0, "{} is not aligned", a.name);
        assert_eq!(copy.data(a), file.data(b), "{}", a.name);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(args: &[&str]) -> Json {
    let out = scratchgpt(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

const TEXT: &str = "the cat sat on the mat. the dog ate the bone. ";

/// A nano model with a byte-level BPE tokenizer (GGUF's `gpt2` kind),
/// trained enough that its greedy tokens are not all one, and a text.
fn bpe_model(tag: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(&format!("gguf-{tag}"));
    let run = train_nano(&dir, TEXT, "bpe:300", 20);
    let text = dir.join("eval.txt");
    std::fs::write(&text, "the dog sat on the mat. the cat ate the bone. ".repeat(3)).unwrap();
    (run, text)
}

fn export(model: &Path, out: &Path, to: &str) {
    json(&["export", "--model", s(model), "--format", "gguf", "--out", s(out), "--to", to, "--json"]);
}

#[test]
fn exported_files_generate_and_evaluate_as_the_model_does() {
    let (run, text) = bpe_model("roundtrip");
    let dir = run.parent().unwrap();
    let generate = |m: &Path| {
        // The prompt's ids and the text too: the tokenizer comes from the
        // file's metadata.
        json(&["generate", "--model", s(m), "--prompt", "the cat<|endoftext|>the", "--max-new-tokens", "12", "--json"])
    };
    let loss = |m: &Path| json(&["eval", "--model", s(m), "--data", s(&text), "--json"])["loss"].as_f64().unwrap();
    let (ids, base_loss) = (generate(&run), loss(&run));
    let distinct: std::collections::HashSet<_> =
        ids["new_ids"].as_array().unwrap().iter().map(|v| v.as_u64()).collect();
    assert!(distinct.len() > 1, "a model whose greedy tokens are all one tells nothing: {ids}");

    let f32_file = dir.join("model-f32.gguf");
    export(&run, &f32_file, "f32");
    assert_eq!(generate(&f32_file), ids, "f32 ids");
    assert_eq!(loss(&f32_file), base_loss, "f32 loss");

    // f16 rounds each weight by at most 2⁻¹¹ relative: the loss moves by
    // far less than a percent.
    let f16_file = dir.join("model-f16.gguf");
    export(&run, &f16_file, "f16");
    let f16_loss = loss(&f16_file);
    assert!((f16_loss - base_loss).abs() < 2e-3 * base_loss, "f16 loss {f16_loss} against {base_loss}");

    // Q4_0 loads packed, as our int4; Q8_0 dequantized to f32.
    for (to, scheme, bound) in [("q8_0", Json::Null, 0.01), ("q4_0", Json::from("int4"), 0.05)] {
        let file = dir.join(format!("model-{to}.gguf"));
        export(&run, &file, to);
        let info = json(&["info", "--model", s(&file), "--json"]);
        assert_eq!(info["quantization"], scheme, "{to}");
        let q_loss = loss(&file);
        assert!((q_loss - base_loss).abs() < bound * base_loss, "{to} loss {q_loss} against {base_loss}");
        assert_ne!(q_loss, base_loss, "{to}: no rounding at all?");
    }
}

#[test]
fn bad_files_and_outputs_fail_in_one_line() {
    let (run, _) = bpe_model("bad");
    let dir = run.parent().unwrap();
    let good = dir.join("good.gguf");
    export(&run, &good, "q8_0");
    let bytes = std::fs::read(&good).unwrap();
    let gen = |path: &Path| -> Vec<String> {
        ["generate", "--model", s(path), "--prompt", "the"].iter().map(|a| a.to_string()).collect()
    };
    let fails = |name: &str, data: &[u8], needle: &str| {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        let args = gen(&path);
        fails_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    };
    fails("magic.gguf", b"PK\x03\x04 not a gguf", "not a GGUF file");
    fails("short.gguf", &bytes[..bytes.len() / 2], "truncated");
    fails("header.gguf", &bytes[..300], "truncated");
    // Same-length edits: another architecture, a tensor of a type not read.
    let replace = |from: &[u8], to: &[u8]| {
        let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
        let mut b = bytes.clone();
        b[at..at + to.len()].copy_from_slice(to);
        b
    };
    fails("arch.gguf", &replace(b"\x04\0\0\0\0\0\0\0gpt2", b"\x04\0\0\0\0\0\0\0gptj"), "architecture \"gptj\"");
    // token_embd.weight's info: name, 2 dims, ne0, ne1, then type 8 (Q8_0).
    let name = b"token_embd.weight\x02\0\0\0";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 16;
    let mut q4_1 = bytes.clone();
    q4_1[at..at + 4].copy_from_slice(&3u32.to_le_bytes());
    fails("type.gguf", &q4_1, "Q4_1");

    // Outputs: never a file this program did not write, never the input.
    let foreign = dir.join("notes.gguf");
    std::fs::write(&foreign, "mine").unwrap();
    let export_to = |out: &Path| ["export", "--model", s(&run), "--format", "gguf", "--out", s(out)].map(String::from);
    fails_with(&export_to(&foreign).iter().map(String::as_str).collect::<Vec<_>>(), "not a file this program exported");
    assert_eq!(std::fs::read(&foreign).unwrap(), b"mine");
    let inside = run.join("model.gguf");
    fails_with(&export_to(&inside).iter().map(String::as_str).collect::<Vec<_>>(), "inside the input");
    fails_with(&["export", "--model", s(&good), "--format", "gguf", "--out", s(&good)], "is also an input");
    // A file this program wrote is replaced.
    export(&run, &good, "f32");
    assert!(std::fs::read(&good).unwrap().len() > bytes.len());
    // A packed model has no f32 weights to export; GGUF's tokenizer is BPE.
    let q4 = dir.join("q4.gguf");
    export(&run, &q4, "q4_0");
    fails_with(&["export", "--model", s(&q4), "--format", "gguf", "--out", s(&dir.join("again.gguf"))], "quantized");
    let char_dir = scratch_dir("gguf-char");
    let char_run = common::train_char_nano(&char_dir, TEXT);
    fails_with(
        &["export", "--model", s(&char_run), "--format", "gguf", "--out", s(&char_dir.join("c.gguf"))],
        "byte-level BPE",
    );
}

/// The Llama family through GGUF and back, in the library: each kind of
/// block (`llama` with grouped-query attention and an untied head, whose
/// query and key rows are stored in llama.cpp's interleaved order; `qwen2`
/// with q/k/v biases; `qwen3` with QK-norm and a head size that is not
/// width ÷ heads; `llama` with llama3 rope scaling; `phi3` with fused
/// projections and a partial rotation; `gemma` with norms stored as
/// 1 + w; `gemma2` with four norms a block, caps and a window on alternate
/// layers; `gemma3` with QK-norm and its sliding layers' own rotary base;
/// Mixtral as `llama` and `qwen3moe`, their experts stacked) comes
/// back with its config and its logits in f32 (exactly; Gemma within
/// (1 + w) - 1's rounding), and within Q8_0's rounding in q8_0.
#[test]
fn the_llama_family_round_trips_through_gguf() {
    use scratchgpt::autograd::nn::Module;
    use scratchgpt::gpt::model::{GPTConfig, GPTModel, LayerType, ModelType, MoeConfig, Rotary};
    use scratchgpt::tensor::rope::RopeScaling;
    use scratchgpt::tensor::{Generator, Tensor};
    use LayerType::{FullAttention as Full, SlidingAttention as Sliding};

    let (run, _) = bpe_model("llama-family");
    // Four experts, two per token; training's options as a file gives them.
    let experts = |expert_width| MoeConfig::new(4, 2, expert_width);
    let tokenizer = scratchgpt::gpt::weights::load_tokenizer(&run).unwrap().expect("a tokenizer");
    let base = |model_type| GPTConfig {
        model_type,
        vocab_size: 300,
        context_length: 32,
        n_kv_heads: Some(2),
        rope: Some(Rotary::new(500_000.0, RopeScaling::Linear { factor: 2.0 })),
        layer_norm_eps: 1e-6,
        ..GPTConfig::llama(64, 2, 4, 96)
    };
    let configs = [
        base(ModelType::Llama),
        // q/k biases are reordered with their rows.
        GPTConfig { qkv_bias: true, ..base(ModelType::Llama) },
        GPTConfig { qkv_bias: true, tie_embeddings: true, ..base(ModelType::Qwen2) },
        GPTConfig { qk_norm: true, head_size: Some(32), tie_embeddings: true, ..base(ModelType::Qwen3) },
        // llama3 scaling, as rope_freqs.weight: head 16, so one factor of
        // eight is blended (original context 64), one is 1, six are 8.
        GPTConfig {
            rope: Some(Rotary::new(
                500_000.0,
                RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max: 64 },
            )),
            ..base(ModelType::Llama)
        },
        // Phi-3: fused q/k/v and gate/up; a rotated part of 12 of each
        // head of 16, and a tied head.
        GPTConfig {
            rope: Some(Rotary { partial: 0.75, ..Rotary::new(10_000.0, RopeScaling::None) }),
            ..base(ModelType::Phi3)
        },
        GPTConfig { tie_embeddings: true, ..base(ModelType::Phi3) },
        // 30 of a head of 44: 30 / 44 × 44 truncates to 29, so the reader
        // must pick the factor that gives 30 back.
        GPTConfig {
            head_size: Some(44),
            rope: Some(Rotary { partial: (30.0f64 / 44.0).next_up(), ..Rotary::new(10_000.0, RopeScaling::None) }),
            ..base(ModelType::Phi3)
        },
        // Gemma: norms stored as 1 + w, a head size of its own, tied.
        GPTConfig { tie_embeddings: true, head_size: Some(32), ..base(ModelType::Gemma) },
        // Gemma 2: four norms a block, capped scores and logits (small caps,
        // so that they bite), a window of 4 on layers 0 and 2 of 3.
        GPTConfig {
            n_layers: 3,
            tie_embeddings: true,
            head_size: Some(32),
            attn_softcap: Some(2.0),
            final_softcap: Some(3.0),
            query_pre_attn_scalar: Some(32.0),
            sliding_window: Some(4),
            layer_types: [Sliding, Full, Sliding].into(),
            rope: Some(Rotary::new(10_000.0, RopeScaling::None)),
            ..base(ModelType::Gemma2)
        },
        // Gemma 3: QK-norm, a window of 4 on five layers of six, which
        // turn by base 10000, the sixth by the scaled global rotary.
        GPTConfig {
            n_layers: 6,
            qk_norm: true,
            head_size: Some(32),
            final_softcap: Some(3.0),
            query_pre_attn_scalar: Some(32.0),
            sliding_window: Some(4),
            layer_types: [Sliding, Sliding, Sliding, Sliding, Sliding, Full].into(),
            rope_local: Some(Rotary::new(10_000.0, RopeScaling::None)),
            ..base(ModelType::Gemma3Text)
        },
        // Mixtral: `llama` with experts as wide as intermediate_size.
        GPTConfig { moe: Some(experts(96)), ..base(ModelType::Mixtral) },
        // Qwen3-MoE: QK-norm, experts of their own width.
        GPTConfig { qk_norm: true, head_size: Some(32), moe: Some(experts(64)), ..base(ModelType::Qwen3Moe) },
    ];
    let ids = Tensor::from_vec((0..24).map(|i| (i * 37 % 300) as i64).collect::<Vec<_>>(), [2, 12]).unwrap();
    for config in configs {
        let model = GPTModel::new(config.clone(), &mut Generator::seed(5));
        // Norm weights away from one, so a norm read from the wrong tensor shows.
        for (name, p) in model.named_parameters() {
            if name.contains("norm") {
                p.update_data(|t| *t = t.add(&t.rand_like(&mut Generator::seed(9)).mul_scalar(0.4).add_scalar(-0.2)));
            }
        }
        let want = model.forward(&ids).data();
        // Gemma's norms come back as (1 + w) - 1 in f32: not always w.
        let f32_tolerance = if config.model_type.is_gemma() { 1e-4 } else { 0.0 };
        for (ty, tolerance) in [(GgmlType::F32, f32_tolerance), (GgmlType::Q8_0, 0.05)] {
            let path = run.parent().unwrap().join(format!("{}-{ty}.gguf", config.model_type.name()));
            scratchgpt::gpt::gguf::export(&model, &tokenizer, ty, "test", &path).unwrap();
            let (loaded, _) = scratchgpt::gpt::gguf::load(&path).unwrap();
            assert_eq!(loaded.config, config, "{}: config", config.model_type.name());
            let got = loaded.forward(&ids).data();
            let worst = want.sub(&got).abs().max_all().item_f64();
            assert!(worst <= tolerance, "{} {ty}: logits differ by {worst}", config.model_type.name());
        }
    }
    // An architecture not read, and experts under one without them, are
    // refused in the one wording.
    let llama = GgufFile::open(run.parent().unwrap().join("qwen2-F32.gguf")).unwrap();
    for (key, value, needle) in [
        ("general.architecture", Value::String("gemma3n".into()), "architecture \"gemma3n\" is not imported from GGUF"),
        ("qwen2.expert_count", Value::U32(8), "architecture \"qwen2\" with experts is not imported from GGUF"),
    ] {
        let mut w = GgufWriter::new();
        for (k, v) in llama.metadata() {
            w.set(k, v.clone());
        }
        w.set(key, value);
        for info in llama.tensors() {
            w.add_tensor(&info.name, &info.shape(), info.ty, llama.data(info).to_vec());
        }
        let path = run.parent().unwrap().join("refused.gguf");
        w.write(&path).unwrap();
        let err = scratchgpt::gpt::gguf::load(&path).err().expect("refused").to_string();
        assert!(
            err.contains(needle)
                && err.contains("(supported: gpt2, llama, qwen2, qwen3, qwen3moe, phi3, gemma, gemma2, gemma3)"),
            "{err}"
        );
    }
}

/// The experts as llama.cpp stores them: `blk.N.ffn_{gate,up,down}_exps`
/// hold every expert's matrix in turn (`[E, out, in]`), the router is
/// `ffn_gate_inp`, and the counts and the experts' width are in the
/// metadata; what llama.cpp would run otherwise is refused on export.
#[test]
fn experts_are_stacked_as_llama_cpp_reads_them() {
    use scratchgpt::autograd::nn::Module;
    use scratchgpt::gpt::model::{GPTConfig, GPTModel, ModelType, MoeConfig};
    use scratchgpt::tensor::Generator;

    let (run, _) = bpe_model("experts-stacked");
    let tokenizer = scratchgpt::gpt::weights::load_tokenizer(&run).unwrap().expect("a tokenizer");
    let moe = MoeConfig::new(3, 2, 32);
    let config = GPTConfig {
        model_type: ModelType::Qwen3Moe,
        vocab_size: 300,
        qk_norm: true,
        moe: Some(moe.clone()),
        ..GPTConfig::llama(64, 2, 4, 96)
    };
    let model = GPTModel::new(config.clone(), &mut Generator::seed(3));
    let params: std::collections::HashMap<_, _> = model.named_parameters().into_iter().collect();
    let path = run.parent().unwrap().join("experts.gguf");
    scratchgpt::gpt::gguf::export(&model, &tokenizer, GgmlType::F32, "test", &path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    for (key, want) in
        [("qwen3moe.expert_count", 3), ("qwen3moe.expert_used_count", 2), ("qwen3moe.expert_feed_forward_length", 32)]
    {
        assert_eq!(file.get(key).and_then(Value::as_u64), Some(want), "{key}");
    }
    for (stacked, ours, shape) in [
        ("ffn_gate_exps", "gate_proj", [3, 32, 64]),
        ("ffn_up_exps", "up_proj", [3, 32, 64]),
        ("ffn_down_exps", "down_proj", [3, 64, 32]),
    ] {
        let info = file.tensor(&format!("blk.1.{stacked}.weight")).unwrap();
        assert_eq!(info.shape(), shape, "{stacked}");
        let values = file.dequantize(info);
        for (e, slice) in values.chunks_exact(values.len() / 3).enumerate() {
            let want = params[&format!("layers.1.mlp.experts.{e}.{ours}.weight")].data();
            assert!(slice == &*want.contiguous_data::<f32>(), "{stacked}[{e}] is not expert {e}'s {ours}");
        }
    }
    let router = file.tensor("blk.0.ffn_gate_inp.weight").unwrap();
    assert_eq!(router.shape(), [3, 64]);
    assert!(file.dequantize(router) == *params["layers.0.mlp.gate.weight"].data().contiguous_data::<f32>());
    // In Q4_0 each expert's slice of the stack loads packed as its matrix.
    let q4 = run.parent().unwrap().join("experts-q4_0.gguf");
    scratchgpt::gpt::gguf::export(&model, &tokenizer, GgmlType::Q4_0, "test", &q4).unwrap();
    let stack = GgufFile::open(&q4).unwrap();
    let stack = stack.dequantize(stack.tensor("blk.1.ffn_up_exps.weight").unwrap());
    let (loaded, _) = scratchgpt::gpt::gguf::load(&q4).unwrap();
    let mut checked = 0;
    for (name, projection) in loaded.projections() {
        let Some(e) = name.strip_prefix("layers.1.mlp.experts.").and_then(|r| r.strip_suffix(".up_proj")) else {
            continue;
        };
        let e: usize = e.parse().unwrap();
        let packed = projection.downcast_ref::<scratchgpt::gpt::quant::QuantLinear>().expect("kept packed");
        let got = packed.weight.dequantize();
        assert!(*got.contiguous_data::<f32>() == stack[e * 32 * 64..(e + 1) * 32 * 64], "{name}: not its slice");
        checked += 1;
    }
    assert_eq!(checked, 3, "three experts' up projections");
    // Unnormalised weights or dense layers: llama.cpp's qwen3moe has neither.
    for (moe, needle) in [
        (MoeConfig { norm_topk_prob: false, ..moe.clone() }, "norm_topk_prob false"),
        (MoeConfig { dense_layers: vec![0], ..moe }, "mlp_only_layers [0]"),
    ] {
        let model = GPTModel::new(GPTConfig { moe: Some(moe), ..config.clone() }, &mut Generator::seed(3));
        let err = scratchgpt::gpt::gguf::export(&model, &tokenizer, GgmlType::F32, "test", &path).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}

/// The query and key rows of a Llama model as llama.cpp's converter
/// reorders them for its `llama` architecture
/// (`scripts/make_gguf_rope_order_fixture.py`, the converter's own
/// `permute`) come back, through the loader's reordering, as the Hugging
/// Face weights they were made from.
#[test]
fn query_and_key_rows_are_reordered_as_llama_cpp_stores_them() {
    use scratchgpt::gpt::gguf::llama::from_interleaved;
    use scratchgpt::gpt::weights::SafetensorsFile;

    let file =
        GgufFile::open("tests/fixtures/gguf_rope_order.gguf").expect("run scripts/make_gguf_rope_order_fixture.py");
    let hf = SafetensorsFile::open("tests/fixtures/llama_family/llama/model.safetensors").unwrap();
    let mut checked = 0;
    for info in file.tensors() {
        let (layer, which) = info.name.strip_prefix("blk.").unwrap().split_once('.').unwrap();
        let proj = if which.starts_with("attn_q") { "q_proj" } else { "k_proj" };
        let want = hf.tensor(&format!("model.layers.{layer}.self_attn.{proj}.weight")).unwrap();
        let rows = info.shape()[0];
        let bytes = from_interleaved(file.data(info), rows, 8);
        let got: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(info.shape(), want.dims().to_vec(), "{}", info.name);
        assert_eq!(got, want.contiguous_data::<f32>().to_vec(), "{}: rows in the wrong order", info.name);
        // Read as stored, the rows differ: the reordering is not a no-op.
        assert_ne!(file.dequantize(info), got, "{}", info.name);
        checked += 1;
    }
    assert_eq!(checked, 4, "two layers' q and k");
}
