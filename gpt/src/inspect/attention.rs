//! Attention maps: for a prompt of T tokens, each chosen head's weights
//! `[T, T]`, query positions down and key positions across. Row q is the
//! softmax that decides how much of each earlier token's value flows into
//! position q; it sums to 1, and keys the model may not see (the future,
//! and for a layer with a sliding window the keys before it) are exactly 0.
//!
//! The numbers are the forward pass's own (`GPTModel::forward_traced`),
//! the same op, scale, mask and window, so the picture cannot drift from
//! what the model computes. [`render_svg`] draws one heatmap per head: a
//! row per chosen layer, a column per chosen head.

use serde::Serialize;

use super::heatmap::{colour, visible, Svg};
use super::{traced_forward, InspectError};
use crate::model::GPTModel;

/// Which heads to show: `None` is every layer, or every head.
#[derive(Clone, Copy, Debug, Default)]
pub struct Selection {
    pub layer: Option<usize>,
    pub head: Option<usize>,
}

#[derive(Serialize, Debug)]
pub struct AttentionMaps {
    /// The prompt's ids and each one's text.
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// The layers and heads shown, in the order of `weights`.
    pub layers: Vec<usize>,
    pub heads: Vec<usize>,
    /// `[layer][head][query][key]`, indexed as `layers` and `heads` list them.
    pub weights: Vec<Vec<Vec<Vec<f32>>>>,
}

/// The attention weights of `model` over `ids` for the selected layers and
/// heads. `tokens` labels each id.
pub fn attention_maps(
    model: &GPTModel,
    ids: &[u32],
    tokens: Vec<String>,
    selection: Selection,
) -> Result<AttentionMaps, InspectError> {
    let (n_layers, n_heads) = (model.config.n_layers, model.config.n_heads);
    let pick = |what: &str, chosen: Option<usize>, count: usize| match chosen {
        Some(i) if i >= count => Err(InspectError(format!(
            "--{what} {i} is out of range: the model has {count} {what}s (0 to {})",
            count - 1
        ))),
        Some(i) => Ok(vec![i]),
        None => Ok((0..count).collect()),
    };
    let layers = pick("layer", selection.layer, n_layers)?;
    let heads = pick("head", selection.head, n_heads)?;
    let (_, trace) = traced_forward(model, ids)?;
    let t = ids.len();
    let weights = layers
        .iter()
        .map(|&layer| {
            // [1, H, T, T] → per head, per query, the T key weights.
            let all = trace.attention[layer].to_vec::<f32>();
            heads.iter().map(|&head| (0..t).map(|q| all[(head * t + q) * t..][..t].to_vec()).collect()).collect()
        })
        .collect();
    Ok(AttentionMaps { ids: ids.to_vec(), tokens, layers, heads, weights })
}

const CELL: f64 = 16.0;
const GAP: f64 = 28.0;
const MARGIN: f64 = 12.0;

/// The maps as an SVG document: a grid of heatmaps (a row per layer, a
/// column per head), each with its query tokens down the left and its key
/// tokens across the top, and a colour scale at the right. Each heatmap is a
/// `<g class="head">` holding one `<rect class="cell">` per (query, key).
pub fn render_svg(maps: &AttentionMaps) -> String {
    let t = maps.tokens.len();
    let labels: Vec<String> = maps.tokens.iter().map(|s| visible(s)).collect();
    // Room for the longest label beside and above each map (about 7 px a
    // character at 11 px), capped so one long token cannot swamp the page.
    let label_room = 8.0 + 7.0 * labels.iter().map(|s| s.chars().count()).max().unwrap_or(1).min(16) as f64;
    let map_side = t as f64 * CELL;
    let (panel_w, panel_h) = (label_room + map_side + GAP, 18.0 + label_room + map_side + GAP);
    let mut svg = Svg::new();
    for (li, &layer) in maps.layers.iter().enumerate() {
        for (hi, &head) in maps.heads.iter().enumerate() {
            let (x0, y0) = (MARGIN + hi as f64 * panel_w, MARGIN + li as f64 * panel_h);
            let (left, top) = (x0 + label_room, y0 + 18.0 + label_room);
            svg.open_group(&format!(r#"class="head" data-layer="{layer}" data-head="{head}""#));
            svg.text(left, y0 + 12.0, &format!("layer {layer} head {head}"), "start", 12.0, "#000", None);
            for (k, label) in labels.iter().enumerate() {
                let x = left + (k as f64 + 0.5) * CELL + 4.0;
                svg.text(x, top - 4.0, label, "start", 11.0, "#333", Some(-90.0));
            }
            for (q, label) in labels.iter().enumerate() {
                svg.text(left - 4.0, top + (q as f64 + 0.5) * CELL + 4.0, label, "end", 11.0, "#333", None);
                for (k, &w) in maps.weights[li][hi][q].iter().enumerate() {
                    let title = format!("{} → {}: {w:.4}", labels[q], labels[k]);
                    let (x, y) = (left + k as f64 * CELL, top + q as f64 * CELL);
                    svg.rect(x, y, CELL, CELL, &colour(w), "cell", Some(&title));
                }
            }
            svg.close_group();
        }
    }
    let grid_w = MARGIN + maps.heads.len() as f64 * panel_w;
    let grid_h = MARGIN + maps.layers.len() as f64 * panel_h;
    svg.legend(grid_w, MARGIN + 40.0, 160.0_f64.min(grid_h - 60.0).max(60.0), "weight");
    svg.finish(grid_w + 60.0, grid_h.max(240.0))
}
