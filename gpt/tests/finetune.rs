//! Fine-tuning on a nano GPT: LoRA leaves the model unchanged at first,
//! trains only its adapters, merges exactly, and round-trips through PEFT's
//! file layout; a classifier and an instruction run learn their built-in
//! data.

use autograd::loss::cross_entropy;
use autograd::nn::Module;
use autograd::no_grad;
use gpt::finetune::class_data::builtin_classification;
use gpt::finetune::classify::{encode_and_split, fit_classifier, ClassifierConfig, GptClassifier, TrainMode};
use gpt::finetune::lora::{apply_lora, load_adapter, merge_lora, save_adapter, LoraConfig};
use gpt::finetune::FitOptions;
use gpt::model::{GPTConfig, GPTModel};
use gpt::tokenizer::{train_bpe, AnyTokenizer};
use gpt::weights::SafetensorsFile;
use tensor::{Generator, Tensor};

fn nano(seed: u64) -> GPTModel {
    GPTModel::new(GPTConfig::preset("nano").unwrap(), &mut Generator::seed(seed))
}

fn ids() -> Tensor {
    Tensor::from_vec((0..24).map(|i| (i * 37 % 512) as i64).collect::<Vec<_>>(), [2, 12]).unwrap()
}

fn logits(model: &GPTModel) -> Vec<f32> {
    no_grad(|| model.forward(&ids())).data().to_vec::<f32>()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Gives every adapter's B random values, as training would.
fn perturb_adapters(model: &GPTModel) {
    let mut gen = Generator::seed(77);
    for (name, p) in model.named_parameters() {
        if name.ends_with("lora_B") {
            p.set_data(Tensor::randn(p.dims(), &mut gen).mul_scalar(0.05));
        }
    }
}

#[test]
fn lora_starts_equal_trains_only_adapters_and_merges() {
    let base = logits(&nano(1));
    let mut model = nano(1);
    let report = apply_lora(&mut model, &LoraConfig::new(4), &mut Generator::seed(2)).unwrap();
    // nano: C = 64, 2 blocks; per block r·(in + out) over c_attn, c_proj, c_fc, mlp.c_proj.
    let per_block = 4 * ((64 + 192) + (64 + 64) + (64 + 256) + (256 + 64));
    assert_eq!(report.trainable, 2 * per_block);
    assert_eq!(report.total, GPTConfig::preset("nano").unwrap().num_parameters() + 2 * per_block);
    assert_eq!(logits(&model), base, "B = 0: the wrapped model is the base model");

    let x = ids();
    let targets = Tensor::from_vec(x.to_vec::<i64>().iter().map(|i| (i + 1) % 512).collect::<Vec<_>>(), [2, 12]);
    let loss = cross_entropy(&model.forward(&x), &targets.unwrap());
    loss.backward();
    for (name, p) in model.named_parameters() {
        let is_adapter = name.contains(".lora_");
        assert_eq!(p.grad().is_some(), is_adapter, "{name}");
    }
    assert!(model
        .named_parameters()
        .iter()
        .any(|(n, p)| n.ends_with("lora_B") && p.grad().unwrap().to_vec::<f32>().iter().any(|&g| g != 0.0)));

    perturb_adapters(&model);
    let unmerged = logits(&model);
    assert!(max_diff(&unmerged, &base) > 1e-3, "the adapters change the outputs");
    merge_lora(&mut model);
    assert!(model.named_parameters().iter().all(|(n, _)| !n.contains("lora")));
    assert!(max_diff(&logits(&model), &unmerged) < 1e-5);
}

#[test]
fn adapters_round_trip_in_peft_layout() {
    let dir = std::env::temp_dir().join(format!("scratchgpt-adapter-{}", std::process::id()));
    let mut model = nano(3);
    let mut cfg = LoraConfig::new(2);
    cfg.targets = vec!["c_attn".into(), "c_proj".into()];
    apply_lora(&mut model, &cfg, &mut Generator::seed(4)).unwrap();
    perturb_adapters(&model);
    let expected = logits(&model);
    save_adapter(&model, &dir, "runs/nano").unwrap();

    let file = SafetensorsFile::open(dir.join("adapter_model.safetensors")).unwrap();
    assert_eq!(file.shape("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight").unwrap(), [2, 64]);
    assert_eq!(file.shape("base_model.model.transformer.h.1.attn.c_attn.lora_B.weight").unwrap(), [192, 2]);
    assert_eq!(file.shape("base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight").unwrap(), [2, 256]);
    assert!(!file.contains("base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight"));
    assert_eq!(file.names().len(), 2 * 2 * 3);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 2);
    assert_eq!(config["lora_alpha"], 4.0);
    assert_eq!(config["fan_in_fan_out"], true);
    assert_eq!(config["target_modules"], serde_json::json!(["c_attn", "c_proj"]));
    assert_eq!(config["base_model_name_or_path"], "runs/nano");

    let mut fresh = nano(3);
    load_adapter(&mut fresh, &dir).unwrap();
    assert_eq!(logits(&fresh), expected);
    assert_eq!(fresh.num_trainable_parameters(), model.num_trainable_parameters());

    // A base of another shape is refused with a reason.
    let wider = GPTConfig { emb_dim: 32, n_heads: 2, ..GPTConfig::preset("nano").unwrap() };
    let err = load_adapter(&mut GPTModel::new(wider, &mut Generator::seed(0)), &dir).unwrap_err().to_string();
    assert!(err.contains("does not match the base model") && err.contains("h.0.attn.c_attn is 32 → 96"), "{err}");
    let deeper = GPTConfig { n_layers: 1, ..GPTConfig::preset("nano").unwrap() };
    let err = load_adapter(&mut GPTModel::new(deeper, &mut Generator::seed(0)), &dir).unwrap_err().to_string();
    assert!(err.contains("adapters for block 1, but the base model has 1 blocks"), "{err}");

    // PEFT options that change the math are refused, not ignored; their
    // "off" values load as before.
    let path = dir.join("adapter_config.json");
    let saved = std::fs::read_to_string(&path).unwrap();
    let off =
        [("use_rslora", "false"), ("use_dora", "false"), ("alpha_pattern", "{}"), ("layers_to_transform", "null")];
    let on = [
        ("use_rslora", "true", "use_rslora"),
        ("use_dora", "true", "DoRA"),
        ("alpha_pattern", r#"{"c_attn": 16}"#, "alpha_pattern"),
        ("rank_pattern", r#"{"c_attn": 4}"#, "rank_pattern"),
        ("layers_to_transform", "[0]", "layers_to_transform"),
        ("bias", r#""all""#, "trains biases"),
    ];
    let with = |key: &str, value: &str| {
        let mut config: serde_json::Value = serde_json::from_str(&saved).unwrap();
        config[key] = serde_json::from_str(value).unwrap();
        std::fs::write(&path, config.to_string()).unwrap();
    };
    for (key, value) in off {
        with(key, value);
        load_adapter(&mut nano(3), &dir).unwrap_or_else(|e| panic!("{key}: {value}: {e}"));
    }
    for (key, value, needle) in on {
        std::fs::write(&path, &saved).unwrap();
        with(key, value);
        let err = load_adapter(&mut nano(3), &dir).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains("does not implement"), "{key}: {err}");
    }
}

#[test]
fn bad_ranks_are_errors_and_change_nothing() {
    let mut model = nano(5);
    let err = apply_lora(&mut model, &LoraConfig::new(0), &mut Generator::seed(0)).unwrap_err();
    assert_eq!(err.to_string(), "LoRA rank must be at least 1, got 0");
    let err = apply_lora(&mut model, &LoraConfig::new(65), &mut Generator::seed(0)).unwrap_err();
    assert_eq!(err.to_string(), "LoRA rank 65 is larger than the layer (64 → 192); use at most 64");
    assert_eq!(model.num_trainable_parameters(), model.num_parameters());
}

#[test]
fn saved_model_with_adapters_is_saved_merged() {
    let dir = std::env::temp_dir().join(format!("scratchgpt-merged-{}", std::process::id()));
    let mut model = nano(6);
    apply_lora(&mut model, &LoraConfig::new(3), &mut Generator::seed(1)).unwrap();
    perturb_adapters(&model);
    let expected = logits(&model);
    gpt::weights::save_model(&model, &dir, None).unwrap();
    let loaded = gpt::weights::load_model(&dir).unwrap();
    assert!(max_diff(&logits(&loaded), &expected) < 1e-5);
}

#[test]
fn classifier_learns_the_builtin_topics() {
    let data = builtin_classification(360, 0);
    let tokenizer = AnyTokenizer::Bpe(train_bpe(&data.texts.join("\n"), 400).unwrap());
    let config = GPTConfig { vocab_size: tokenizer.vocab_size(), ..GPTConfig::preset("nano").unwrap() };
    let head = ClassifierConfig { classes: data.classes.clone(), max_length: 64, pad_id: 0 };

    // The book's choice: the last block, the final norm and the new head.
    let gpt = GPTModel::new(config.clone(), &mut Generator::seed(0));
    let mut partial = GptClassifier::new(gpt, head.clone(), &mut Generator::seed(1));
    let report = partial.prepare(&TrainMode::LastBlocks(1), &mut Generator::seed(2)).unwrap();
    // The last block (two norms, four projections), ln_f and the [64 → 3] head.
    let block = 4 * 64 + 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64;
    assert_eq!(report.trainable, block + 2 * 64 + 3 * 64 + 3);

    let gpt = GPTModel::new(config, &mut Generator::seed(0));
    let mut model = GptClassifier::new(gpt, head, &mut Generator::seed(1));
    model.prepare(&TrainMode::Full, &mut Generator::seed(2)).unwrap();
    let splits = encode_and_split(&data, &tokenizer, 64, 3).unwrap();
    assert_eq!((splits.train.ids.len(), splits.val.ids.len(), splits.test.ids.len()), (252, 36, 72));
    let opts = FitOptions { epochs: 3, lr: 1e-3, batch_size: 16, ..Default::default() };
    let mut epochs = 0;
    let r = fit_classifier(&mut model, &splits, &opts, |e| {
        epochs += matches!(e, gpt::finetune::FinetuneEvent::Epoch { .. }) as usize
    })
    .unwrap();
    assert_eq!(epochs, 3);
    assert!(r.test_accuracy >= 0.9, "{r:?}");

    // Saved and loaded, it predicts the same probabilities.
    let text = "This morning the snow covered the hills.";
    let probs = model.predict(&tokenizer, text).unwrap();
    let dir = std::env::temp_dir().join(format!("scratchgpt-classifier-{}", std::process::id()));
    model.save(&dir, &tokenizer).unwrap();
    let loaded = GptClassifier::load(&dir).unwrap();
    let again = loaded.predict(&tokenizer, text).unwrap();
    assert!(probs.iter().zip(&again).all(|(a, b)| (a - b).abs() < 1e-5), "{probs:?} {again:?}");
    assert!((again.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    assert!(again[2] > 0.5, "weather: {again:?}");
}

#[test]
fn instruction_prompts_longer_than_the_context_are_an_error() {
    use gpt::finetune::instruct::{encode_record, fit_instructions, InstructOptions, PromptStyle};
    use gpt::finetune::instruct_data::builtin_instructions;
    let records = builtin_instructions(20, 0);
    let text: String = records.iter().map(|r| format!("{} {} {}", r.instruction, r.input, r.output)).collect();
    let tokenizer = AnyTokenizer::Bpe(train_bpe(&text, 300).unwrap());
    let encoded: Vec<_> = records.iter().map(|r| encode_record(&tokenizer, &PromptStyle::Alpaca, r).unwrap()).collect();
    let config =
        GPTConfig { vocab_size: tokenizer.vocab_size(), context_length: 16, ..GPTConfig::preset("nano").unwrap() };
    let mut model = GPTModel::new(config, &mut Generator::seed(0));
    let end = tokenizer.eot_id().unwrap();
    let err = fit_instructions(
        &mut model,
        &encoded,
        &encoded,
        end,
        &InstructOptions { fit: FitOptions::default(), mask_prompt: false },
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("context of 16 tokens"), "{err}");
}
