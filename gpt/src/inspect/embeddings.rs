//! A map of the token embedding: which tokens the model put near each
//! other.
//!
//! The token table `wte` (`embed_tokens` in Llama's names) is `[V, C]`:
//! row `id` is the vector the model starts from when it reads token `id`.
//! Tokens used alike end up with similar rows. Two views of that here:
//!
//! - [`EmbeddingMap`]: the chosen rows `[N, C]` projected onto their first
//!   two principal components ([`crate::inspect::pca`]), `[N, 2]`, drawn as
//!   a labelled scatter ([`plot_map`]);
//! - [`nearest_neighbours`]: for each chosen row, the rows with the largest
//!   cosine similarity `a·b / (|a| |b|)` over the whole vocabulary: a
//!   `[N, C] · [C, V]` product of unit rows.
//!
//! Which tokens: the ids of the user's words ([`pick_words`]), or the most
//! frequent tokens ([`frequent_tokens`]).

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;
use tensor::{DType, Tensor};

use crate::inspect::pca::Pca;
use crate::model::GPTModel;
use crate::tokenizer::{AnyTokenizer, SpecialTokens};

/// The model's token table for the tokenizer's ids, `[V, C]` (f32), where
/// V is the tokenizer's vocabulary (a model may pad its table past it).
/// Read through the table's own lookup, so a quantized table works too.
pub fn token_table(model: &GPTModel, tokenizer: &AnyTokenizer) -> Tensor {
    let v = tokenizer.vocab_size().min(model.config.vocab_size);
    let ids = Tensor::arange(0, v as i64);
    let rows = autograd::no_grad(|| model.wte.lookup(&ids)).data();
    rows.to_device(tensor::Device::Cpu).expect("a copy to the CPU").to_dtype(DType::F32)
}

/// A token chosen for the map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChosenToken {
    /// What the user asked for (the word), or the token's own text.
    pub word: String,
    pub id: u32,
    /// The token's text, with spaces and line breaks made visible.
    pub token: String,
    /// The word was split into this many tokens; only the first is shown.
    pub tokens_in_word: usize,
}

/// A token's text for a label: its bytes decoded (lossily, as a BPE token
/// may be part of a character), whitespace made visible as the attention
/// maps show it (`␣`, `↵`, `⇥`, `␍`; `heatmap::visible`).
pub fn token_text(tokenizer: &AnyTokenizer, id: u32) -> String {
    let bytes = tokenizer.decode_bytes(&[id]).unwrap_or_default();
    super::heatmap::visible(&String::from_utf8_lossy(&bytes))
}

/// The tokens of `words`: each word's first token. A word the tokenizer
/// splits into several tokens keeps its first (its `tokens_in_word` says
/// how many there were, for a warning). An empty word or one that gives
/// no token is an error naming it.
pub fn pick_words(tokenizer: &AnyTokenizer, words: &[String]) -> Result<Vec<ChosenToken>, String> {
    if words.is_empty() {
        return Err("--words lists no word".into());
    }
    words
        .iter()
        .map(|word| {
            if word.is_empty() {
                return Err("--words holds an empty word (two commas in a row?)".into());
            }
            let ids = tokenizer.encode(word, SpecialTokens::AsText).map_err(|e| format!("--words: {word:?}: {e}"))?;
            let &id = ids.first().ok_or_else(|| format!("--words: {word:?} gives no token"))?;
            Ok(ChosenToken { word: word.clone(), id, token: token_text(tokenizer, id), tokens_in_word: ids.len() })
        })
        .collect()
}

/// The `n` most frequent tokens, as far as the tokenizer knows, and how
/// they were chosen. A byte-level BPE numbers its merges in the order it
/// learned them, each joining the most frequent pair left, so its merged
/// tokens in merge order come first (then the single bytes); a character
/// vocabulary, which keeps no counts, gives its first `n` ids (all of it
/// when `n` is its size), and so does a `tokenizer.json`, whose ids
/// usually follow its merges too. Special tokens are left out.
pub fn frequent_tokens(tokenizer: &AnyTokenizer, n: usize) -> Result<(Vec<ChosenToken>, String), String> {
    let specials: std::collections::HashSet<u32> = match tokenizer {
        AnyTokenizer::Bpe(t) => t.specials().iter().map(|(_, id)| *id).collect(),
        _ => [tokenizer.eot_id(), tokenizer.bos_id(), tokenizer.eos_id()].into_iter().flatten().collect(),
    };
    let (order, how): (Vec<u32>, &str) = match tokenizer {
        AnyTokenizer::Bpe(t) => {
            let merged: Vec<u32> = t.merges().iter().map(|m| m.2).collect();
            let is_merged: std::collections::HashSet<u32> = merged.iter().copied().collect();
            let rest = (0..t.vocab_size() as u32).filter(|id| !is_merged.contains(id));
            (
                merged.iter().copied().chain(rest).collect(),
                "the BPE's first merges (the most frequent pairs), then bytes",
            )
        }
        AnyTokenizer::Char(_) => ((0..tokenizer.vocab_size() as u32).collect(), "the character vocabulary in id order"),
        AnyTokenizer::Hf(_) => ((0..tokenizer.vocab_size() as u32).collect(), "the lowest ids of tokenizer.json"),
    };
    let order: Vec<u32> = order.into_iter().filter(|id| !specials.contains(id)).collect();
    if n == 0 || n > order.len() {
        return Err(format!(
            "--top must be between 1 and {} (the vocabulary without special tokens), got {n}",
            order.len()
        ));
    }
    let chosen = order[..n]
        .iter()
        .map(|&id| {
            let token = token_text(tokenizer, id);
            ChosenToken { word: token.clone(), id, token, tokens_in_word: 1 }
        })
        .collect();
    Ok((chosen, how.to_string()))
}

/// The chosen tokens on the plane of their first two principal components.
#[derive(Clone, Debug)]
pub struct EmbeddingMap {
    /// `(x, y)` of each chosen token, in order.
    pub points: Vec<(f64, f64)>,
    /// The variance along each of the two components.
    pub explained_variance: Vec<f64>,
    /// Each component's share of the chosen rows' total variance.
    pub explained_ratio: Vec<f64>,
    /// The chosen rows' total variance (over all C dimensions).
    pub total_variance: f64,
}

/// Projects rows `ids` of `table` `[V, C]` to 2-D by PCA fitted on those
/// rows. Fewer than two dimensions leave the missing coordinate at 0.
pub fn embedding_map(table: &Tensor, ids: &[u32]) -> EmbeddingMap {
    let rows = rows_of(table, ids);
    let pca = Pca::fit(&rows, 2);
    let projected = pca.project(&rows).to_vec2::<f64>();
    let points =
        projected.iter().map(|p| (p.first().copied().unwrap_or(0.0), p.get(1).copied().unwrap_or(0.0))).collect();
    EmbeddingMap {
        points,
        explained_ratio: pca.explained_ratio(),
        explained_variance: pca.explained_variance,
        total_variance: pca.total_variance,
    }
}

fn rows_of(table: &Tensor, ids: &[u32]) -> Tensor {
    let index = Tensor::from_vec(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [ids.len()]).unwrap();
    table.index_select(0, &index)
}

/// Rows scaled to unit length (a zero row stays zero).
fn unit_rows(m: &Tensor) -> Tensor {
    let m = m.to_dtype(DType::F64);
    let norms = m.square().sum(1, true).sqrt().clamp_min(1e-300);
    m.div(&norms)
}

/// A neighbour of a token, and how alike their rows point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Neighbour {
    pub id: u32,
    pub cosine: f64,
}

/// For each of `ids`, the `k` other rows of `table` `[V, C]` with the
/// largest cosine similarity, most similar first (ties: lower id first).
pub fn nearest_neighbours(table: &Tensor, ids: &[u32], k: usize) -> Vec<Vec<Neighbour>> {
    let all = unit_rows(table); // [V, C]
    let queries = unit_rows(&rows_of(table, ids)); // [N, C]
    let similarities = queries.matmul(&all.t()).to_vec2::<f64>(); // [N, V]
    ids.iter()
        .zip(similarities)
        .map(|(&id, row)| {
            let mut others: Vec<Neighbour> = row
                .into_iter()
                .enumerate()
                .filter(|&(other, _)| other as u32 != id)
                .map(|(other, cosine)| Neighbour { id: other as u32, cosine })
                .collect();
            others.sort_by(|a, b| b.cosine.total_cmp(&a.cosine).then(a.id.cmp(&b.id)));
            others.truncate(k);
            others
        })
        .collect()
}

/// Draws `labels` at `map.points` as a scatter into `path` (SVG, replaced
/// whole or not at all), each point with its label as text beside it; the
/// axes are the two principal components with the share of variance each
/// explains.
pub fn plot_map(labels: &[String], map: &EmbeddingMap, title: &str, path: &Path) -> Result<(), String> {
    let svg = render_map(labels, map, title)?;
    crate::atomic::write_atomic(path, svg.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// The SVG text of [`plot_map`].
pub fn render_map(labels: &[String], map: &EmbeddingMap, title: &str) -> Result<String, String> {
    let mut svg = String::new();
    draw_map(labels, map, title, &mut svg).map_err(|e| format!("drawing the map: {e}"))?;
    Ok(svg)
}

fn draw_map(labels: &[String], map: &EmbeddingMap, title: &str, svg: &mut String) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let bounds = |pick: fn(&(f64, f64)) -> f64| {
        let (lo, hi) =
            map.points.iter().map(pick).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // A margin for the labels, and some width for a cloud with none.
        let pad = ((hi - lo) * 0.1).max(1e-3);
        if lo.is_finite() {
            (lo - pad)..(hi + pad)
        } else {
            -1.0..1.0
        }
    };
    let share = |i: usize| map.explained_ratio.get(i).map_or(0.0, |r| 100.0 * r);
    let root = SVGBackend::with_string(svg, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(bounds(|p| p.0), bounds(|p| p.1))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(format!("principal component 1 ({:.1}% of the variance)", share(0)))
        .y_desc(format!("principal component 2 ({:.1}% of the variance)", share(1)))
        .draw()
        .map_err(|e| err(&e))?;
    let style = TextStyle::from(("sans-serif", 14)).color(&BLACK);
    chart
        .draw_series(labels.iter().zip(&map.points).map(|(label, &(x, y))| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 3, BLUE.filled())
                + Text::new(label.clone(), (5, -7), style.clone())
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[[f64; 3]]) -> Tensor {
        Tensor::from_vec(rows.iter().flatten().copied().collect::<Vec<_>>(), [rows.len(), 3]).unwrap()
    }

    #[test]
    fn neighbours_are_ranked_by_cosine_over_the_whole_table() {
        // Row 0 points along x; row 1 nearly so but long (length does not
        // matter); row 2 at 45°; row 3 along y; row 4 opposite to row 0.
        let t = table(&[[1.0, 0.0, 0.0], [10.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]);
        let found = nearest_neighbours(&t, &[0, 3], 3);
        let ids: Vec<Vec<u32>> = found.iter().map(|n| n.iter().map(|x| x.id).collect()).collect();
        assert_eq!(ids, [vec![1, 2, 3], vec![2, 1, 0]]);
        let c = &found[0];
        assert!((c[0].cosine - 10.0 / 101f64.sqrt()).abs() < 1e-12);
        assert!((c[1].cosine - 0.5f64.sqrt()).abs() < 1e-12);
        assert!(c[2].cosine.abs() < 1e-12);
        // All five rows asked for: the opposite row comes last, at −1.
        let last = nearest_neighbours(&t, &[0], 10).remove(0);
        assert_eq!(last.len(), 4);
        assert_eq!(last[3], Neighbour { id: 4, cosine: -1.0 });
    }

    #[test]
    fn the_map_keeps_the_chosen_rows_spread() {
        // Rows 1..=3 on a line along (0, 3, 4)/5, row 0 elsewhere and not chosen.
        let t = table(&[[9.0, 9.0, 9.0], [0.0, 0.0, 0.0], [0.0, 3.0, 4.0], [0.0, 6.0, 8.0]]);
        let map = embedding_map(&t, &[1, 2, 3]);
        // Distances along the line are 5 apart, centered: −5, 0, 5.
        let xs: Vec<f64> = map.points.iter().map(|p| (p.0 * 1e9).round() / 1e9).collect();
        assert_eq!(xs, [-5.0, 0.0, 5.0]);
        assert!(map.points.iter().all(|p| p.1.abs() < 1e-9));
        assert!((map.explained_ratio[0] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_svg_is_well_formed_with_one_label_per_word() {
        let labels: Vec<String> = ["king", "queen", "<&\"'>", "␣the"].map(String::from).to_vec();
        let map = EmbeddingMap {
            points: vec![(0.0, 1.0), (1.0, 0.5), (-1.0, -1.0), (0.3, 0.2)],
            explained_variance: vec![2.0, 1.0],
            explained_ratio: vec![0.6, 0.3],
            total_variance: 10.0 / 3.0,
        };
        let dir = std::env::temp_dir().join(format!("scratchgpt-embedding-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("map.svg");
        plot_map(&labels, &map, "token embeddings <PCA>", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"));
        let texts: Vec<&str> =
            doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
        for label in &labels {
            assert_eq!(texts.iter().filter(|t| **t == label).count(), 1, "{label:?} in {texts:?}");
        }
        assert!(texts.iter().any(|t| t.contains("60.0% of the variance")), "{texts:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
