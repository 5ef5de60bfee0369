//! The binary on bad input: every case is one line on stderr, exit code 2,
//! and nothing half-written. And the JSON outputs parse.

mod common;

use std::path::PathBuf;

use common::{fails_with, scratch_dir, scratchgpt, train_char_nano};

/// A freshly trained nano model folder (`tag` keeps parallel tests apart).
fn nano_model(tag: &str) -> PathBuf {
    let dir = scratch_dir(&format!("cli-model-{tag}"));
    train_char_nano(&dir, "the cat sat on the mat. the dog sat on the log. ")
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    let model = nano_model("bad");
    let m = model.to_str().unwrap();
    let dir = scratch_dir("bad");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let e = empty.to_str().unwrap();

    fails_with(&["generate", "--model", "no/such/model", "--prompt", "hi"], "no/such/model");
    fails_with(&["train", "--data", e], "empty");
    fails_with(&["train", "--batch-size", "0", "--steps", "1"], "--batch-size must be at least 1");
    // A loss that blows up before any checkpoint: the error does not name
    // a checkpoint that does not exist.
    let diverge = dir.join("diverge");
    let data = dir.join("words.txt");
    std::fs::write(&data, "the cat sat on the mat. ".repeat(40)).unwrap();
    let (d, v) = (data.to_str().unwrap(), diverge.to_str().unwrap());
    fails_with(
        &[
            "train",
            "--data",
            d,
            "--tokenizer",
            "char",
            "--preset",
            "nano",
            "--steps",
            "20",
            "--batch-size",
            "2",
            "--context",
            "16",
            "--lr",
            "1e30",
            "--warmup",
            "0",
            "--grad-clip",
            "0",
            "--eval-every",
            "0",
            "--sample-every",
            "0",
            "--checkpoint-every",
            "0",
            "--out",
            v,
        ],
        "no checkpoint was saved yet",
    );
    // Optimizer settings that cannot work, refused before anything is
    // created (no runs/ folder appears in the working directory).
    let cwd = std::env::current_dir().unwrap();
    let had_runs = cwd.join("runs").exists();
    let cases: [(&[&str], &str); 5] = [
        (&["--lr", "NaN"], "--lr must be a positive number"),
        (&["--min-lr=-0.1"], "--min-lr must be between 0 and --lr"),
        (&["--min-lr", "0.5"], "--min-lr must be between 0 and --lr"),
        (&["--weight-decay", "NaN"], "--weight-decay must be a number ≥ 0"),
        (&["--grad-clip=-1"], "--grad-clip must be a number ≥ 0"),
    ];
    for (flags, needle) in cases {
        fails_with(&[&["train", "--steps", "1", "--tokenizer", "char"][..], flags].concat(), needle);
    }
    assert_eq!(cwd.join("runs").exists(), had_runs, "a refused run created runs/");
    let ft = dir.join("ft");
    fails_with(
        &["finetune", "classify", "--model", m, "--weight-decay=-1", "--out", ft.to_str().unwrap()],
        "--weight-decay",
    );
    fails_with(&["eval", "--model", m, "--data", e], "empty");
    fails_with(&["generate", "--model", m, "--prompt", &"the cat ".repeat(20)], "context");
    if !common::gpu_present() {
        fails_with(&["train", "--device", "cuda", "--steps", "1"], "no CUDA device");
    }
    fails_with(&["info", "--preset", "gpt5"], "unknown preset");
    // An error that embeds its cause prints the cause once, not twice.
    let out = scratchgpt(&["eval", "--model", m, "--data", "no/such/file.txt"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");

    // A config that does not match the weights.
    let broken = scratch_dir("broken");
    for f in ["model.safetensors", "char_vocab.json"] {
        std::fs::copy(model.join(f), broken.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    config["n_embd"] = serde_json::json!(128);
    std::fs::write(broken.join("config.json"), config.to_string()).unwrap();
    fails_with(&["generate", "--model", broken.to_str().unwrap(), "--prompt", "the"], "expected [");
    // A NaN among the weights.
    let nan = scratch_dir("nan");
    for f in ["config.json", "char_vocab.json"] {
        std::fs::copy(model.join(f), nan.join(f)).unwrap();
    }
    let file = scratchgpt::gpt::weights::SafetensorsFile::open(model.join("model.safetensors")).unwrap();
    let mut tensors: Vec<(String, scratchgpt::tensor::Tensor)> =
        file.names().iter().map(|n| (n.to_string(), file.tensor(n).unwrap())).collect();
    for (name, t) in tensors.iter_mut() {
        if name.ends_with("ln_f.weight") {
            let mut values = t.to_vec::<f32>();
            values[3] = f32::NAN;
            *t = scratchgpt::tensor::Tensor::from_vec(values, t.dims().to_vec()).unwrap();
        }
    }
    scratchgpt::gpt::weights::save_safetensors(nan.join("model.safetensors"), &tensors, None).unwrap();
    fails_with(
        &["generate", "--model", nan.to_str().unwrap(), "--prompt", "the"],
        "ln_f.weight holds a non-finite value",
    );
    // A config option this GPT-2 does not implement.
    config["n_embd"] = serde_json::json!(64);
    config["tie_word_embeddings"] = serde_json::json!(false);
    std::fs::write(broken.join("config.json"), config.to_string()).unwrap();
    fails_with(&["generate", "--model", broken.to_str().unwrap(), "--prompt", "the"], "\"tie_word_embeddings\": false");

    // A tokenizer bigger than the model's vocabulary.
    let big_vocab = scratch_dir("vocab");
    for f in ["model.safetensors", "config.json"] {
        std::fs::copy(model.join(f), big_vocab.join(f)).unwrap();
    }
    let chars: String = (0..300u32).filter_map(char::from_u32).filter(|c| !c.is_control()).collect();
    let wide = gpt::tokenizer::CharTokenizer::from_text(&chars);
    wide.save(&big_vocab).unwrap();
    fails_with(&["generate", "--model", big_vocab.to_str().unwrap(), "--prompt", "the"], "tokenizer has");
}

#[test]
fn json_outputs_parse() {
    let model = nano_model("json");
    let m = model.to_str().unwrap();
    let out = scratchgpt(&["generate", "--model", m, "--prompt", "the cat", "--max-new-tokens", "5", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["new_ids"].as_array().unwrap().len(), 5);
    assert_eq!(v["prompt_ids"].as_array().unwrap().len(), 7);

    let dir = scratch_dir("eval");
    let data = dir.join("d.txt");
    std::fs::write(&data, "the dog sat on the mat.").unwrap();
    let out = scratchgpt(&["eval", "--model", m, "--data", data.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tokens"], 22);
    assert!((v["perplexity"].as_f64().unwrap() - v["loss"].as_f64().unwrap().exp()).abs() < 1e-6);

    let out = scratchgpt(&["info", "--preset", "gpt2-small", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["parameters"], 124_439_808);
    assert_eq!(v["weight_bytes"]["f32"], 4 * 124_439_808u64);
    // The KV cache layer by layer: gemma-3-1b's 4 full layers hold the whole
    // context (32768), its 22 sliding layers their window (512); one K/V
    // head of 256 is 1 KiB per position and layer in f16.
    let out = scratchgpt(&["info", "--preset", "gemma-3-1b", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kv_cache"]["full_context_f16"], 1024 * (4 * 32768 + 22 * 512u64));
    assert_eq!(v["kv_cache"]["windowed_layers"], 22);

    let out = scratchgpt(&["tokenize", "--text", "Hello world", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"ids": [15496, 995], "count": 2}));
    let out = scratchgpt(&["detokenize", "--ids", "15496,11"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello,\n");
}

#[test]
fn bench_commands_report_json() {
    let out = scratchgpt(&[
        "bench",
        "train",
        "--preset",
        "nano",
        "--batch-size",
        "2",
        "--context",
        "16",
        "--steps",
        "2",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["params"], gpt::model::GPTConfig::preset("nano").unwrap().num_parameters());
    assert_eq!(v["threads"], 1);
    let (ms, tps) = (v["ms_per_step"].as_f64().unwrap(), v["tokens_per_s"].as_f64().unwrap());
    assert!((tps - 32.0 / (ms / 1e3)).abs() / tps < 1e-9, "{v}");
    // On a CPU with vector FMA, utilisation is GFLOP/s over the measured peak.
    if let Some(peak) = v["peak_gflops"].as_f64() {
        let (gflops, mfu) = (v["gflops"].as_f64().unwrap(), v["mfu"].as_f64().unwrap());
        assert!(peak > 0.0 && (mfu - gflops / peak).abs() < 1e-9, "{v}");
    }

    // With --ops, each op's share of the step: the Llama block's ops are
    // among them, the optimizer is, and the shares cover about the step.
    let out = scratchgpt(&[
        "bench",
        "train",
        "--preset",
        "nano-llama",
        "--batch-size",
        "2",
        "--context",
        "16",
        "--steps",
        "2",
        "--ops",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops = v["ops"].as_array().unwrap();
    let named = |op: &str| ops.iter().find(|o| o["op"] == op).unwrap_or_else(|| panic!("no {op} in {v}"));
    for op in ["linear", "attention", "rms_norm", "rope", "swiglu", "cross_entropy"] {
        let o = named(op);
        assert!(o["forward_ms"].as_f64().unwrap() > 0.0 && o["backward_ms"].as_f64().unwrap() > 0.0, "{o}");
    }
    assert!(named("AdamW step")["other_ms"].as_f64().unwrap() > 0.0, "{v}");
    let covered: f64 = ops.iter().map(|o| o["share"].as_f64().unwrap()).sum();
    assert!((0.5..1.1).contains(&covered), "the ops cover {covered} of the step: {v}");
    let shares: Vec<f64> = ops.iter().map(|o| o["share"].as_f64().unwrap()).collect();
    assert!(shares.windows(2).all(|w| w[0] >= w[1]), "largest first: {shares:?}");
    fails_with(&["bench", "train", "--ops", "--device", "cuda:0"], "--ops times ops on the CPU");

    let out =
        scratchgpt(&["bench", "generate", "--preset", "nano", "--prompt-tokens", "4", "--new-tokens", "8", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (tps, ms) = (v["tokens_per_s"].as_f64().unwrap(), v["ms_per_token"].as_f64().unwrap());
    assert!((tps * ms / 1e3 - 1.0).abs() < 1e-9, "{v}");
    assert!(v["prompt_tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    // Bytes a token reads: at least every weight matrix once; their rate.
    let config = gpt::model::GPTConfig::preset("nano").unwrap();
    let (bytes, rate) = (v["bytes_per_token"].as_f64().unwrap(), v["gb_per_s"].as_f64().unwrap());
    assert!(bytes > 4.0 * (config.num_parameters() - config.context_length * config.emb_dim) as f64, "{v}");
    assert!((rate - bytes * tps / 1e9).abs() <= 1e-9 * rate, "{v}");
    assert!(v["read_gb_per_s"].as_f64().unwrap() > 0.0, "{v}");
    fails_with(&["bench", "train", "--preset", "nano", "--batch-size", "0"], "at least 1");

    // Every product of a step: forward, dx and dW of five layers, with the
    // FLOPs and time agreeing.
    let out = scratchgpt(&["bench", "gemm", "--preset", "nano", "--tokens", "40", "--repeats", "1", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let products: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(products.len(), 15);
    for p in &products {
        let (m, k, n) = (p["m"].as_f64().unwrap(), p["k"].as_f64().unwrap(), p["n"].as_f64().unwrap());
        let (ms, gflops) = (p["ms"].as_f64().unwrap(), p["gflops"].as_f64().unwrap());
        assert!(gflops > 0.0 && ((2.0 * m * k * n) / (ms * 1e-3) / 1e9 / gflops - 1.0).abs() < 1e-9, "{p}");
    }
    assert_eq!(products[0]["name"], "qkv.y");
    assert_eq!(products[0]["m"], 40);
    fails_with(&["bench", "gemm", "--tokens", "0"], "at least 1");
}

#[test]
fn info_turns_training_tokens_into_flops_and_time() {
    let cache = scratch_dir("train-speed");
    std::fs::write(cache.join("train-speed.json"), r#"{"gflops": 100.0, "threads": 2, "source": "bench train"}"#)
        .unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["info", "--preset", "gpt2-small", "--train-tokens", "1e9", "--json"])
        .env("SCRATCHGPT_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cost = &info["training_cost"];
    let params = info["parameters"].as_f64().unwrap();
    // 6·N·D plus attention's 12·L·T·C per token (12 layers, 1024, 768).
    let expected = 1e9 * (6.0 * params + 12.0 * 12.0 * 1024.0 * 768.0);
    assert!((cost["flops"].as_f64().unwrap() - expected).abs() < 1e-6 * expected);
    assert!((cost["seconds"].as_f64().unwrap() - expected / 100e9).abs() < 1e-3 * expected / 100e9);
    std::fs::remove_dir_all(&cache).ok();
    fails_with(&["info", "--preset", "nano", "--train-tokens=-5"], "positive number of tokens");
}

#[test]
fn a_vocabulary_padded_past_the_tokenizer_never_generates_its_padding() {
    // nanoGPT's GPT-2: 50,304 rows for the tokenizer's 50,257 tokens.
    let dir = scratch_dir("padded");
    let config = dir.join("config.json");
    let padded = serde_json::json!({"vocab_size": 50304, "n_positions": 32, "n_embd": 32, "n_head": 2, "n_layer": 1});
    std::fs::write(&config, padded.to_string()).unwrap();
    std::fs::write(dir.join("data.txt"), "the cat sat on the mat. ".repeat(80)).unwrap();
    let run = dir.join("run");
    let (c, d, r) = (config.to_str().unwrap(), dir.join("data.txt"), run.to_str().unwrap());
    let train = scratchgpt(&[
        "train",
        "--data",
        d.to_str().unwrap(),
        "--tokenizer",
        "gpt2",
        "--config",
        c,
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--context",
        "16",
        "--eval-every",
        "0",
        "--sample-every",
        "0",
        "--out",
        r,
    ]);
    assert!(train.status.success(), "{}", String::from_utf8_lossy(&train.stderr));
    // Push the padding rows of the tied head to the top of every logit row.
    let weights = run.join("model.safetensors");
    let file = scratchgpt::gpt::weights::SafetensorsFile::open(&weights).unwrap();
    let mut tensors: Vec<(String, scratchgpt::tensor::Tensor)> =
        file.names().iter().map(|n| (n.to_string(), file.tensor(n).unwrap())).collect();
    drop(file);
    for (name, t) in tensors.iter_mut() {
        if name.ends_with("wte.weight") {
            let tail = t.narrow(0, 50257, 47).mul_scalar(1000.0);
            *t = scratchgpt::tensor::Tensor::cat(&[t.narrow(0, 0, 50257), tail], 0);
        }
    }
    scratchgpt::gpt::weights::save_safetensors(&weights, &tensors, None).unwrap();
    let out = scratchgpt(&["generate", "--model", r, "--prompt", "the cat", "--max-new-tokens", "8", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u64> = v["new_ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 8);
    assert!(ids.iter().all(|&id| id < 50257), "{ids:?}");

    // The same folder with its merges.txt cut short: refused, where its
    // words would have become special tokens. (Without tokenizer.json, which
    // a folder's loader prefers, so that merges.txt is what is read.)
    std::fs::remove_file(run.join("tokenizer.json")).unwrap();
    let merges = std::fs::read_to_string(run.join("merges.txt")).unwrap();
    let cut: String = merges.lines().take(1000).map(|l| format!("{l}\n")).collect();
    std::fs::write(run.join("merges.txt"), cut).unwrap();
    fails_with(&["generate", "--model", r, "--prompt", "the cat"], "made by no merge");
}

/// `gradcheck --json`: the seed and, per case, its tier, exact op name,
/// variant, shapes, dtype, errors, tolerance and verdict. `--op max` picks
/// the cases of `max` in both tiers and never `maximum`.
#[test]
fn gradcheck_json_selects_one_op_exactly() {
    let out = scratchgpt(&["gradcheck", "--op", "max", "--seed", "5", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout {stdout} stderr {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(v["seed"], 5);
    let cases = v["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        assert_eq!(c["op"], "max", "{c}");
        for field in ["variant", "shapes", "tolerance"] {
            assert!(c[field].is_string(), "{field} in {c}");
        }
        for field in ["max_abs_err", "max_rel_err", "err_over_tol"] {
            assert!(c[field].as_f64().is_some_and(|x| x >= 0.0), "{field} in {c}");
        }
        assert_eq!(c["pass"], true, "{c}");
    }
    let tiers: Vec<&str> = cases.iter().map(|c| c["tier"].as_str().unwrap()).collect();
    assert!(tiers.contains(&"exact") && tiers.contains(&"kernel"), "{tiers:?}");
    let kernel = cases.iter().find(|c| c["tier"] == "kernel").unwrap();
    assert_eq!(kernel["dtype"], "f32");
    let exact = cases.iter().find(|c| c["tier"] == "exact").unwrap();
    assert_eq!(exact["dtype"], "f64");
}

#[test]
fn gradcheck_prints_its_seed_and_refuses_an_unknown_op() {
    let out = scratchgpt(&["gradcheck", "--tier", "exact", "--op", "exp", "--seed", "42"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.lines().next().unwrap().contains("seed 42"), "{stdout}");
    let out = scratchgpt(&["gradcheck", "--tier", "exact", "--op", "exp"]);
    assert!(String::from_utf8_lossy(&out.stdout).lines().next().unwrap().contains("seed 0"));
    fails_with(&["gradcheck", "--op", "maxx"], "known ops: ");
    fails_with(&["gradcheck", "--op", "maxx"], "maximum");
    fails_with(&["gradcheck", "--tier", "kernel", "--op", "reshape"], "no case in the chosen --tier");
}

#[test]
fn max_shard_size_splits_the_run_and_its_checkpoint_and_both_load() {
    let dir = scratch_dir("shards");
    let data = dir.join("data.txt");
    std::fs::write(&data, "the cat sat on the mat. ".repeat(40)).unwrap();
    let run = dir.join("run");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
    let train = |extra: &[&str]| {
        let mut args = vec!["train", "--data", d, "--json"];
        args.extend(extra);
        let out = scratchgpt(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let new_run = ["--tokenizer", "char", "--preset", "nano", "--batch-size", "2", "--context", "16"];
    let quiet = ["--eval-every", "0", "--sample-every", "0", "--steps", "2", "--out", r, "--max-shard-size", "20KB"];
    train(&[&new_run[..], &quiet[..]].concat());
    for folder in [run.clone(), run.join("checkpoint")] {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("model.safetensors.index.json")).unwrap()).unwrap();
        let mut shards: Vec<&str> =
            index["weight_map"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
        shards.sort();
        shards.dedup();
        assert!(shards.len() > 2, "{}: {shards:?}", folder.display());
        assert!(!folder.join("model.safetensors").exists(), "{}: a single file beside the shards", folder.display());
        for shard in &shards {
            assert!(folder.join(shard).is_file(), "{shard} missing in {}", folder.display());
        }
    }
    // The sharded checkpoint resumes, and the sharded model generates.
    train(&["--resume", r, "--steps", "3"]);
    let out = scratchgpt(&["generate", "--model", r, "--prompt", "the", "--max-new-tokens", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fails_with(&["train", "--steps", "1", "--max-shard-size", "5 parsecs"], "unknown unit");
}

/// A Llama-family folder with a config this program cannot run, or an index
/// naming a shard that is not there: one line naming the file, exit 2.
#[test]
fn a_bad_llama_folder_is_one_line_naming_the_file() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_family/llama");
    let dir = scratch_dir("bad-llama");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(name), model.join(name)).unwrap();
    }
    let m = model.to_str().unwrap();
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let cases: [(&str, serde_json::Value, &str); 4] = [
        ("model_type", "gemma4".into(), "model_type \"gemma4\" is not supported"),
        ("num_key_value_heads", 3.into(), "num_key_value_heads 3 does not divide num_attention_heads 4"),
        ("num_attention_heads", 5.into(), "heads"),
        ("rope_scaling", serde_json::json!({"rope_type": "wavy", "factor": 2.0}), "wavy"),
    ];
    for (key, value, needle) in cases {
        let mut bad = config.clone();
        bad[key] = value;
        if key == "rope_scaling" {
            // transformers 5 writes the scaling inside rope_parameters.
            bad["rope_parameters"]["rope_type"] = "wavy".into();
        }
        std::fs::write(model.join("config.json"), bad.to_string()).unwrap();
        fails_with(&["info", "--model", m], needle);
        fails_with(&["info", "--model", m], "config.json");
    }
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    // An index that names a shard which is not in the folder.
    std::fs::rename(model.join("model.safetensors"), model.join("model-00001-of-00002.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00002-of-00002.safetensors"}});
    std::fs::write(model.join("model.safetensors.index.json"), index.to_string()).unwrap();
    fails_with(&["eval", "--model", m, "--data", m], "model-00002-of-00002.safetensors");
}
