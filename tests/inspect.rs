//! The numbers behind `scratchgpt inspect`: attention maps and the logit
//! lens against what `transformers` computes (`output_attentions=True`,
//! `output_hidden_states=True`, eager attention) on the GPT-2 fixture model
//! and the Llama-family, Phi-3, Gemma and mixture-of-experts ones (soft-capped
//! scores and logits, local and global layers, routed MLPs), and the pictures' SVG. The reference is
//! `tests/fixtures/attention_maps.safetensors`; regenerate it with
//! `python3 scripts/make_attention_map_fixtures.py`.

use std::collections::BTreeMap;
use std::path::PathBuf;

mod common;
use common::parity::read_fixture;

use scratchgpt::autograd::no_grad;
use scratchgpt::gpt::inspect::attention::{attention_maps, render_svg, Selection};
use scratchgpt::gpt::inspect::lens::{self, logit_lens};
use scratchgpt::gpt::model::GPTModel;
use scratchgpt::gpt::weights::load_model;
use scratchgpt::tensor::Tensor;

const CASES: [(&str, &str); 11] = [
    ("gpt2", "gpt2-tiny"),
    ("llama", "llama_family/llama"),
    ("mistral", "llama_family/mistral"),
    ("qwen2", "llama_family/qwen2"),
    ("qwen3", "llama_family/qwen3"),
    ("phi3", "llama_family/phi3"),
    ("gemma", "llama_family/gemma"),
    ("gemma2", "llama_family/gemma2"),
    ("gemma3_text", "llama_family/gemma3_text"),
    ("mixtral", "llama_family/mixtral"),
    ("qwen3_moe", "llama_family/qwen3_moe"),
];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> BTreeMap<String, Tensor> {
    read_fixture(&fixtures().join("attention_maps.safetensors"), "scripts/make_attention_map_fixtures.py")
}

fn model(folder: &str) -> GPTModel {
    load_model(&fixtures().join(folder)).unwrap_or_else(|e| panic!("cannot load {folder}: {e}"))
}

fn ids_of(r: &BTreeMap<String, Tensor>, case: &str) -> Vec<u32> {
    r[&format!("ids.{case}")].to_vec::<i64>().into_iter().map(|id| id as u32).collect()
}

fn labels(ids: &[u32]) -> Vec<String> {
    ids.iter().map(|id| format!("t{id}")).collect()
}

#[test]
fn attention_weights_equal_transformers_rows_sum_to_one_and_masked_keys_are_zero() {
    let r = reference();
    for (case, folder) in CASES {
        let model = model(folder);
        let ids = ids_of(&r, case);
        let t = ids.len();
        let maps = attention_maps(&model, &ids, labels(&ids), Selection::default()).unwrap();
        let (layers, heads) = (model.config.n_layers, model.config.n_heads);
        assert_eq!((maps.weights.len(), maps.weights[0].len()), (layers, heads), "{case}");
        let want = r[&format!("attn.{case}")].to_vec::<f32>(); // [L, H, T, T]
        let mut worst = 0f32;
        let mut windowed = 0;
        for l in 0..layers {
            let window = model.config.window_of(l);
            for h in 0..heads {
                for q in 0..t {
                    let row = &maps.weights[l][h][q];
                    let sum: f32 = row.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-5, "{case} layer {l} head {h} query {q}: row sums to {sum}");
                    for k in 0..t {
                        let got = row[k];
                        let hidden = k > q || window.is_some_and(|w| q - k >= w);
                        if hidden {
                            // Exactly zero, not merely small.
                            assert_eq!(got, 0.0, "{case} layer {l} head {h}: query {q} sees key {k}");
                            windowed += usize::from(k <= q);
                        }
                        let diff = (got - want[((l * heads + h) * t + q) * t + k]).abs();
                        assert!(
                            diff <= 1e-5,
                            "{case} layer {l} head {h} [{q}, {k}]: {got} vs transformers, off by {diff}"
                        );
                        worst = worst.max(diff);
                    }
                }
            }
        }
        // The sliding window is exercised: a window of 4 (Mistral, Mixtral,
        // Gemma 2 and 3's local layers) hides keys.
        let has_window = ["mistral", "mixtral", "gemma2", "gemma3_text"].contains(&case);
        assert_eq!(windowed > 0, has_window, "{case}: {windowed} keys outside a window");
        println!("{case}: largest difference from transformers {worst:.2e}");
    }
}

#[test]
fn one_layer_and_head_are_the_same_numbers_as_in_the_full_grid() {
    let r = reference();
    let model = model("llama_family/qwen3");
    let ids = ids_of(&r, "qwen3");
    let all = attention_maps(&model, &ids, labels(&ids), Selection::default()).unwrap();
    let one = attention_maps(&model, &ids, labels(&ids), Selection { layer: Some(1), head: Some(3) }).unwrap();
    assert_eq!((one.layers.clone(), one.heads.clone()), (vec![1], vec![3]));
    assert_eq!(one.weights[0][0], all.weights[1][3]);
}

#[test]
fn lens_equals_transformers_and_its_last_row_is_the_real_prediction() {
    let r = reference();
    for (case, folder) in CASES {
        let model = model(folder);
        let ids = ids_of(&r, case);
        let t = ids.len();
        let lens = logit_lens(&model, &ids, labels(&ids), 3, |id| format!("t{id}")).unwrap();
        assert_eq!(lens.top.len(), model.config.n_layers, "{case}");
        let (want_id, want_prob) =
            (r[&format!("lens_id.{case}")].to_vec::<i64>(), r[&format!("lens_prob.{case}")].to_vec::<f32>());
        for (l, row) in lens.top.iter().enumerate() {
            for (p, guesses) in row.iter().enumerate() {
                assert_eq!(guesses.len(), 3);
                assert!(guesses.windows(2).all(|g| g[0].prob >= g[1].prob), "{case}: not likeliest first");
                assert_eq!(guesses[0].id as i64, want_id[l * t + p], "{case} layer {l} position {p}");
                let diff = (guesses[0].prob - want_prob[l * t + p]).abs();
                assert!(diff <= 1e-5, "{case} layer {l} position {p}: probability off by {diff}");
            }
        }
        // The last row against the model's own forward pass: argmax and
        // softmax of the real logits.
        let input = Tensor::from_vec(ids.iter().map(|&id| id as i64).collect::<Vec<_>>(), [1, t]).unwrap();
        let probs = no_grad(|| model.forward(&input).softmax(-1)).data().to_vec::<f32>();
        let vocab = model.config.vocab_size;
        for (p, guesses) in lens.top.last().unwrap().iter().enumerate() {
            let row = &probs[p * vocab..][..vocab];
            let (best, &prob) = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
            assert_eq!(guesses[0].id as usize, best, "{case} position {p}");
            assert_eq!(guesses[0].prob, prob, "{case} position {p}");
        }
    }
}

#[test]
fn attention_svg_is_well_formed_with_one_cell_per_query_key_pair_per_head() {
    let r = reference();
    let model = model("gpt2-tiny");
    let ids = ids_of(&r, "gpt2");
    // Labels that must be escaped, and whitespace that must be shown.
    let mut tokens = labels(&ids);
    tokens[1] = "<a&b>".into();
    tokens[2] = " \"x\"\n".into();
    let maps = attention_maps(&model, &ids, tokens, Selection::default()).unwrap();
    let elements = common::xml::parse(&render_svg(&maps));
    let t = ids.len();
    let groups: Vec<usize> = elements
        .iter()
        .enumerate()
        .filter(|(_, e)| e.attributes.get("class").map(String::as_str) == Some("head"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(groups.len(), model.config.n_layers * model.config.n_heads);
    // Each group's cells lie between it and the next group's start.
    for (n, &start) in groups.iter().enumerate() {
        let end = groups.get(n + 1).copied().unwrap_or(elements.len());
        let cells = elements[start..end]
            .iter()
            .filter(|e| e.attributes.get("class").map(String::as_str) == Some("cell"))
            .count();
        assert_eq!(cells, t * t, "head group {n}");
    }
    let texts: Vec<&str> = elements.iter().filter(|e| e.name == "text").map(|e| e.text.as_str()).collect();
    assert!(texts.contains(&"<a&b>"), "the escaped label reads back");
    assert!(texts.contains(&"␣\"x\"↵"), "whitespace is shown");
    assert!(elements.iter().any(|e| e.attributes.get("class").map(String::as_str) == Some("legend")));
}

#[test]
fn lens_svg_is_well_formed_with_one_cell_per_layer_and_position() {
    let r = reference();
    let model = model("llama_family/mistral");
    let ids = ids_of(&r, "mistral");
    let lens = logit_lens(&model, &ids, labels(&ids), 1, |id| format!("<{id}&>")).unwrap();
    let elements = common::xml::parse(&lens::render_svg(&lens));
    let cells = elements.iter().filter(|e| e.attributes.get("class").map(String::as_str) == Some("cell")).count();
    assert_eq!(cells, model.config.n_layers * ids.len());
    let top = &lens.top[0][0][0];
    assert!(elements.iter().any(|e| e.name == "text" && e.text == top.token), "the top token is written as text");
}

#[test]
fn bad_layers_heads_and_prompts_are_refused() {
    let model = model("llama_family/llama");
    let ids = vec![3, 4, 5];
    let at = |layer, head| attention_maps(&model, &ids, labels(&ids), Selection { layer, head });
    assert!(at(Some(2), None).unwrap_err().0.contains("--layer 2 is out of range: the model has 2 layers"));
    assert!(at(None, Some(4)).unwrap_err().0.contains("--head 4 is out of range: the model has 4 heads"));
    assert!(attention_maps(&model, &[], vec![], Selection::default()).unwrap_err().0.contains("empty"));
    let long = vec![1; model.config.context_length + 1];
    let err = logit_lens(&model, &long, labels(&long), 1, |id| id.to_string()).unwrap_err().0;
    assert!(err.contains("context holds"), "{err}");
    assert!(logit_lens(&model, &ids, labels(&ids), 0, |id| id.to_string()).is_err());
}
