//! The logit lens: what the model would predict if it stopped after each
//! block.
//!
//! The residual stream after block l, `[T, C]`, goes through the model's
//! own final norm (`ln_f`, `norm`) and output head, giving logits `[T, V]`
//! and, by softmax, a distribution over the next token at every position.
//! Early layers often predict something generic; the guess sharpens toward
//! the last layer, whose row *is* the model's prediction (the same norm and
//! head applied to the same stream as the forward pass).
//!
//! The residual streams come from the real forward pass
//! (`GPTModel::forward_traced`), not from re-running the blocks here.

use autograd::nn::Module;
use autograd::{no_grad, Var};
use serde::Serialize;

use super::heatmap::{colour, dark, visible, Svg};
use super::{traced_forward, InspectError};
use crate::model::GPTModel;

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Guess {
    pub id: u32,
    pub token: String,
    pub prob: f32,
}

#[derive(Serialize, Debug)]
pub struct Lens {
    /// The prompt's ids and each one's text.
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// `[layer][position]`: the `top_k` likeliest next tokens, likeliest
    /// first.
    pub top: Vec<Vec<Vec<Guess>>>,
}

/// The logit lens of `model` over `ids`: per layer and position, the
/// `top_k` likeliest next tokens. `tokens` labels the prompt's ids and
/// `label` any id the lens predicts.
pub fn logit_lens(
    model: &GPTModel,
    ids: &[u32],
    tokens: Vec<String>,
    top_k: usize,
    label: impl Fn(u32) -> String,
) -> Result<Lens, InspectError> {
    if top_k == 0 {
        return Err(InspectError("--top must be at least 1".into()));
    }
    let (_, trace) = traced_forward(model, ids)?;
    let top = trace
        .residual
        .iter()
        .map(|stream| {
            // [1, T, C] → the final norm and the head → [1, T, V] → softmax.
            let probs = no_grad(|| model.logits(&model.ln_f.forward(&Var::constant(stream.clone()))).softmax(-1));
            let probs = probs.data().to_vec::<f32>();
            let vocab = probs.len() / ids.len();
            probs.chunks_exact(vocab).map(|row| top_of(row, top_k, &label)).collect()
        })
        .collect();
    Ok(Lens { ids: ids.to_vec(), tokens, top })
}

/// The `k` largest entries of `probs`, largest first (ties: lower id first).
fn top_of(probs: &[f32], k: usize, label: &impl Fn(u32) -> String) -> Vec<Guess> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.truncate(k);
    order.into_iter().map(|id| Guess { id: id as u32, token: label(id as u32), prob: probs[id] }).collect()
}

const CELL_W: f64 = 84.0;
const CELL_H: f64 = 34.0;
const MARGIN: f64 = 12.0;

/// The lens as an SVG table: a row per layer (0 at the top, the output
/// layer at the bottom), a column per prompt position headed by its token;
/// each cell one `<rect class="cell">` coloured by the top guess's
/// probability, with that token and probability written on it.
pub fn render_svg(lens: &Lens) -> String {
    let label_w = 70.0;
    let header_h = 40.0;
    let mut svg = Svg::new();
    let (left, top) = (MARGIN + label_w, MARGIN + header_h);
    svg.text(
        left,
        MARGIN + 12.0,
        "input token →   (each cell: the next token predicted after that layer)",
        "start",
        12.0,
        "#000",
        None,
    );
    for (p, token) in lens.tokens.iter().enumerate() {
        svg.text(left + (p as f64 + 0.5) * CELL_W, top - 6.0, &shorten(&visible(token)), "middle", 11.0, "#333", None);
    }
    for (layer, row) in lens.top.iter().enumerate() {
        let y = top + layer as f64 * CELL_H;
        svg.text(left - 6.0, y + CELL_H / 2.0 + 4.0, &format!("layer {layer}"), "end", 11.0, "#333", None);
        for (p, guesses) in row.iter().enumerate() {
            let best = &guesses[0];
            let x = left + p as f64 * CELL_W;
            let others: Vec<String> = guesses.iter().map(|g| format!("{} {:.3}", visible(&g.token), g.prob)).collect();
            svg.rect(x, y, CELL_W, CELL_H, &colour(best.prob), "cell", Some(&others.join(", ")));
            let ink = if dark(best.prob) { "#fff" } else { "#000" };
            let cx = x + CELL_W / 2.0;
            svg.text(cx, y + 14.0, &shorten(&visible(&best.token)), "middle", 11.0, ink, None);
            svg.text(cx, y + 28.0, &format!("{:.3}", best.prob), "middle", 10.0, ink, None);
        }
    }
    let width = left + lens.tokens.len() as f64 * CELL_W + 20.0;
    let height = top + lens.top.len() as f64 * CELL_H;
    svg.legend(width, top + 10.0, 120.0, "probability");
    svg.finish(width + 90.0, (height + MARGIN).max(top + 150.0))
}

/// At most 10 characters, so a long token fits its cell.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 10 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(9).collect::<String>())
    }
}
