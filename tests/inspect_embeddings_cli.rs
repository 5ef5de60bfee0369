//! `scratchgpt inspect embeddings` through the binary, on nano models: the
//! map's coordinates are the PCA of the chosen rows, the neighbours are the
//! ones the saved table gives, the SVG labels every word once; bad input
//! is one line and exit code 2. Also the metrics and plot `train` saves.

mod common;

use std::path::Path;
use std::process::Output;

use common::{fails_with, scratch_dir, scratchgpt, train_char_nano, train_nano};

const TEXT: &str = "the king and the queen met a man and a woman. ";

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The saved token table `[V, C]`, read straight from the weights file.
fn saved_table(run: &Path) -> (Vec<Vec<f32>>, usize) {
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, view) = file.tensors().into_iter().find(|(name, _)| name.ends_with("wte.weight")).expect("a wte table");
    let c = view.shape()[1];
    let values: Vec<f32> = view.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    (values.chunks(c).map(<[f32]>::to_vec).collect(), c)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn words_on_a_char_model_map_neighbours_and_bad_input() {
    let dir = scratch_dir("inspect-embeddings");
    let run = train_char_nano(&dir, TEXT);
    // `train` saved its metrics and their four-panel plot.
    common::assert_run_metrics(&run, Some(3));

    let model = run.to_str().unwrap();
    let svg = dir.join("map.svg");
    let out = svg.to_str().unwrap();
    let words = ["k", "q", "m", "w", "a", "."];
    let report = json_of(&scratchgpt(&[
        "inspect",
        "embeddings",
        "--model",
        model,
        "--words",
        &words.join(","),
        "--out",
        out,
        "--json",
    ]));
    let tokens = report["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), words.len());
    // The coordinates are centred projections: they sum to 0, and their mean
    // squares are the variances the components explain, in descending order.
    let variance = report["explained_variance"].as_array().unwrap();
    let (v1, v2) = (variance[0].as_f64().unwrap(), variance[1].as_f64().unwrap());
    assert!(v1 >= v2 && v2 > 0.0, "{report}");
    let ratio: f64 = report["explained_ratio"].as_array().unwrap().iter().map(|r| r.as_f64().unwrap()).sum();
    assert!(ratio > 0.0 && ratio <= 1.0 + 1e-9, "{report}");
    let n = words.len() as f64;
    for (axis, var) in [("x", v1), ("y", v2)] {
        let coords: Vec<f64> = tokens.iter().map(|t| t[axis].as_f64().unwrap()).collect();
        assert!(coords.iter().sum::<f64>().abs() < 1e-6, "{axis}: {coords:?}");
        let mean_square = coords.iter().map(|c| c * c).sum::<f64>() / n;
        assert!((mean_square - var).abs() < 1e-6 * var.max(1.0), "{axis}: {mean_square} vs {var}");
    }
    // The neighbours are those of the saved table, over the whole vocabulary.
    let (table, _) = saved_table(&run);
    for (word, token) in words.iter().zip(tokens) {
        assert_eq!(token["word"], *word);
        let id = token["id"].as_u64().unwrap() as usize;
        let mut expected: Vec<(usize, f64)> =
            (0..table.len()).filter(|&o| o != id).map(|o| (o, cosine(&table[id], &table[o]))).collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        let near = token["neighbours"].as_array().unwrap();
        assert_eq!(near.len(), 5);
        for (got, (want_id, want_cos)) in near.iter().zip(&expected) {
            assert_eq!(got["id"].as_u64().unwrap() as usize, *want_id, "{word}: {near:?} vs {expected:?}");
            assert!((got["cosine"].as_f64().unwrap() - want_cos).abs() < 1e-5, "{word}: {got}");
        }
    }
    // The SVG is XML with one label per word.
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("not XML: {e}"));
    let labels: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
    for word in words {
        assert_eq!(labels.iter().filter(|l| **l == word).count(), 1, "{word:?} in {labels:?}");
    }

    // A word of several tokens is shown by its first, with a note.
    let split = scratchgpt(&["inspect", "embeddings", "--model", model, "--words", "king,q", "--out", out, "--json"]);
    let report = json_of(&split);
    assert_eq!(report["tokens"][0]["token"], "k");
    assert_eq!(report["tokens"][0]["tokens_in_word"], 4);
    assert!(String::from_utf8_lossy(&split.stderr).contains("\"king\" is 4 tokens"), "{split:?}");

    // No --words: the whole character vocabulary, and a plain summary.
    let vocab: std::collections::BTreeSet<char> = TEXT.chars().collect();
    let all = json_of(&scratchgpt(&["inspect", "embeddings", "--model", model, "--out", out, "--json"]));
    assert_eq!(all["tokens"].as_array().unwrap().len(), vocab.len());
    let plain = scratchgpt(&["inspect", "embeddings", "--model", model, "--top", "3", "--out", out]);
    let said = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.status.success() && said.starts_with("3 tokens"), "{said}");

    let e = ["inspect", "embeddings", "--model", model, "--out", out];
    fails_with(&[&e[..], &["--words", ""]].concat(), "empty word");
    fails_with(&[&e[..], &["--words", "k,,q"]].concat(), "empty word");
    fails_with(&[&e[..], &["--words", "k,Z"]].concat(), "\"Z\"");
    fails_with(&[&e[..], &["--top", "0"]].concat(), "--top must be at least 1");
    fails_with(&[&e[..], &["--top", "1000"]].concat(), "--top must be between 1 and");
    fails_with(&["inspect", "embeddings", "--model", model, "--out", "map.jpg"], "FILE.svg or FILE.png");
    fails_with(&["inspect", "embeddings", "--model", dir.join("none").to_str().unwrap(), "--out", out], "none");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn top_tokens_of_a_bpe_model_follow_its_merges() {
    let dir = scratch_dir("inspect-embeddings-bpe");
    let run = train_nano(&dir, TEXT, "bpe:270", 1);
    let out = dir.join("top.svg");
    let report = json_of(&scratchgpt(&[
        "inspect",
        "embeddings",
        "--model",
        run.to_str().unwrap(),
        "--top",
        "5",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert!(report["chosen_by"].as_str().unwrap().contains("merges"), "{report}");
    // The first merges of a 270-token BPE take ids 256, 257, ...
    let ids: Vec<u64> = report["tokens"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [256, 257, 258, 259, 260]);
    std::fs::remove_dir_all(&dir).unwrap();
}
