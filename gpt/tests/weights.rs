//! Hugging Face folders: round trip, both name spellings, and the errors a
//! damaged folder must produce (naming the file and the tensor).

use std::path::PathBuf;

use autograd::nn::Module;
use autograd::no_grad;
use gpt::model::{GPTConfig, GPTModel};
use gpt::weights::{
    load_model, save_model, save_model_sharded, save_safetensors, SafetensorsFile, WeightFiles, WEIGHTS_INDEX_FILE,
};
use tensor::{Generator, Tensor};

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scratchgpt-weights-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nano() -> GPTModel {
    GPTModel::new(GPTConfig::preset("nano").unwrap(), &mut Generator::seed(11))
}

fn logits(model: &GPTModel) -> Vec<f32> {
    let ids = Tensor::from_vec(vec![1i64, 5, 9, 200, 3, 77], [2, 3]).unwrap();
    no_grad(|| model.forward(&ids)).data().to_vec::<f32>()
}

#[test]
fn save_then_load_gives_identical_logits() {
    let dir = scratch_dir("roundtrip");
    let model = nano();
    save_model(&model, &dir, None).unwrap();
    let file = SafetensorsFile::open(dir.join("model.safetensors")).unwrap();
    // save_pretrained's spelling, Conv1D layout [in, out], no lm_head.
    assert_eq!(file.shape("transformer.h.0.attn.c_attn.weight").unwrap(), vec![64, 192]);
    assert!(!file.contains("lm_head.weight"));
    let loaded = load_model(&dir).unwrap();
    assert_eq!(loaded.config, model.config);
    assert_eq!(logits(&loaded), logits(&model));
    // The weights get the permissions of any file the user creates (the
    // umask's), not a temporary file's private 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(dir.join("probe"), "").unwrap();
        let mode = |name: &str| std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        // (Under a umask of 077 both are 0600 and this shows nothing.)
        assert_eq!(mode("model.safetensors"), mode("probe"));
    }
}

#[test]
fn layer_norm_epsilon_is_read_from_the_folder() {
    let dir = scratch_dir("eps");
    let model = nano();
    save_model(&model, &dir, None).unwrap();
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["layer_norm_epsilon"] = serde_json::json!(0.5);
    std::fs::write(&path, config.to_string()).unwrap();
    let loaded = load_model(&dir).unwrap();
    assert_eq!(loaded.config.layer_norm_eps, 0.5);
    assert!(loaded.h.iter().all(|b| b.ln_1.eps() == 0.5 && b.ln_2.eps() == 0.5) && loaded.ln_f.eps() == 0.5);
    let (a, b) = (logits(&loaded), logits(&model));
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3), "ε = 0.5 changes the logits");
}

#[test]
fn hub_spelling_with_mask_buffers_loads() {
    let dir = scratch_dir("hub");
    let model = nano();
    save_model(&model, &dir, None).unwrap();
    // Rewrite as the hub's original files: no prefix, plus attn.bias buffers.
    let file = SafetensorsFile::open(dir.join("model.safetensors")).unwrap();
    let mut tensors: Vec<(String, Tensor)> = file
        .names()
        .into_iter()
        .map(|n| (n.trim_start_matches("transformer.").to_string(), file.tensor(&n).unwrap()))
        .collect();
    tensors.push(("h.0.attn.bias".into(), Tensor::ones([1, 1, 64, 64], tensor::DType::F32).tril(0)));
    drop(file);
    save_safetensors(dir.join("model.safetensors"), &tensors, None).unwrap();
    assert_eq!(logits(&load_model(&dir).unwrap()), logits(&model));
}

#[test]
fn damaged_folders_are_clear_errors() {
    let model = nano();
    // Missing folder.
    let err = load_model("no/such/folder").err().unwrap().to_string();
    assert!(err.contains("no/such/folder"), "{err}");

    // Truncated weights.
    let dir = scratch_dir("truncated");
    save_model(&model, &dir, None).unwrap();
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.contains("model.safetensors") && err.contains("not a valid safetensors file"), "{err}");

    // A missing tensor.
    let dir = scratch_dir("missing");
    save_model(&model, &dir, None).unwrap();
    let file = SafetensorsFile::open(dir.join("model.safetensors")).unwrap();
    let kept: Vec<(String, Tensor)> = file
        .names()
        .into_iter()
        .filter(|n| n != "transformer.h.1.mlp.c_fc.bias")
        .map(|n| (n.clone(), file.tensor(&n).unwrap()))
        .collect();
    drop(file);
    save_safetensors(dir.join("model.safetensors"), &kept, None).unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.ends_with("missing tensor transformer.h.1.mlp.c_fc.bias"), "{err}");

    // A config that does not match the weights.
    let dir = scratch_dir("mismatch");
    save_model(&model, &dir, None).unwrap();
    let mut config = model.config.clone();
    config.emb_dim = 128;
    std::fs::write(dir.join("config.json"), config.to_hf_json(None).to_string()).unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.contains("transformer.wte.weight has shape [512, 64], expected [512, 128]"), "{err}");
}

#[test]
fn saving_never_leaves_temporary_files() {
    let dir = scratch_dir("atomic");
    save_model(&nano(), &dir, None).unwrap();
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    assert_eq!(nano().num_parameters(), GPTConfig::preset("nano").unwrap().num_parameters());
}

/// A model split over shards loads as the single file does; re-saving in
/// the other layout leaves no stale file that would shadow it; an index
/// that names a missing shard, or places a tensor in a shard without it,
/// is an error naming the file.
#[test]
fn sharded_folders_load_and_resave() {
    let dir = scratch_dir("sharded");
    let model = nano();
    // nano's f32 weights are about 180 KB; 40 KB shards give several.
    save_model_sharded(&model, &dir, None, 40_000).unwrap();
    let index_path = dir.join(WEIGHTS_INDEX_FILE);
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    let shards: std::collections::BTreeSet<&str> =
        index["weight_map"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
    assert!(shards.len() >= 4, "{shards:?}");
    let n = shards.len();
    let expected: std::collections::BTreeSet<String> =
        (1..=n).map(|k| format!("model-{k:05}-of-{n:05}.safetensors")).collect();
    assert_eq!(shards.iter().map(|s| s.to_string()).collect::<std::collections::BTreeSet<_>>(), expected);
    assert!(!dir.join("model.safetensors").exists());
    let files = WeightFiles::open(&dir).unwrap();
    assert_eq!(files.shard_count(), shards.len());
    assert_eq!(files.names().count(), model.named_parameters().len());
    let loaded = load_model(&dir).unwrap();
    assert_eq!(logits(&loaded), logits(&model));

    // A damaged index: a tensor placed in a shard that lacks it, then a
    // shard that does not exist.
    let text = std::fs::read_to_string(&index_path).unwrap();
    let first = shards.iter().next().unwrap().to_string();
    let last = shards.iter().last().unwrap().to_string();
    let wrong = text.replacen(&format!("\"{last}\""), &format!("\"{first}\""), 1);
    std::fs::write(&index_path, &wrong).unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.contains(WEIGHTS_INDEX_FILE) && err.contains("which does not hold it"), "{err}");
    std::fs::write(&index_path, text.replace(&last, "model-00009-of-00009.safetensors")).unwrap();
    let err = load_model(&dir).err().unwrap().to_string();
    assert!(err.contains("model-00009-of-00009.safetensors"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    std::fs::write(&index_path, &text).unwrap();

    // Saved again as one file: the shards and the index are gone, and the
    // folder still loads.
    save_model(&model, &dir, None).unwrap();
    let left: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.iter().all(|n| !n.starts_with("model-") && n != WEIGHTS_INDEX_FILE), "{left:?}");
    assert_eq!(logits(&load_model(&dir).unwrap()), logits(&model));
    // And sharded again: the single file, which would shadow the index, is gone.
    save_model_sharded(&model, &dir, None, 40_000).unwrap();
    assert!(!dir.join("model.safetensors").exists());
    assert_eq!(logits(&load_model(&dir).unwrap()), logits(&model));
}
