//! Training metrics: one JSON object per line in `metrics.jsonl` (easy to
//! load in anything), and the run drawn as an SVG: the loss curves, the
//! learning rate, the gradient norm and tokens/s, on one step axis.

use std::cell::Cell;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Metric {
    Train { step: usize, loss: f64, lr: f64, grad_norm: f64, tokens_per_s: f64 },
    Val { step: usize, loss: f64, perplexity: f64 },
}

/// The metrics file in a run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The loss plot in a run folder.
pub const LOSS_PLOT_FILE: &str = "loss.svg";

pub struct MetricsLog {
    path: PathBuf,
    /// A new run replaces the file with its first line, not before: until
    /// then an earlier run's metrics stay readable.
    replace_on_next_append: Cell<bool>,
}

impl MetricsLog {
    /// The log of a run in `dir`, continuing what the file holds.
    pub fn new(dir: &Path) -> Self {
        MetricsLog { path: dir.join(METRICS_FILE), replace_on_next_append: Cell::new(false) }
    }

    /// The log of a new run in `dir`: its first line replaces the file.
    pub fn fresh(dir: &Path) -> Self {
        let log = MetricsLog::new(dir);
        log.replace_on_next_append.set(true);
        log
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, m: &Metric) -> std::io::Result<()> {
        let replace = self.replace_on_next_append.replace(false);
        let mut f = OpenOptions::new().create(true).write(true).append(!replace).truncate(replace).open(&self.path)?;
        writeln!(f, "{}", serde_json::to_string(m).expect("metric serialises"))
    }

    /// Every metric logged so far (lines that do not parse are skipped).
    pub fn read(&self) -> Vec<Metric> {
        std::fs::read_to_string(&self.path)
            .map(|s| s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
            .unwrap_or_default()
    }

    /// Drops lines after `step` (a resumed run rewrites what follows it).
    pub fn truncate_after(&self, step: usize) -> std::io::Result<()> {
        let kept: Vec<String> = self
            .read()
            .into_iter()
            .filter(|m| match m {
                Metric::Train { step: s, .. } | Metric::Val { step: s, .. } => *s <= step,
            })
            .map(|m| serde_json::to_string(&m).expect("metric serialises"))
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        crate::atomic::write_atomic(&self.path, text.as_bytes())
    }
}

/// The titles of the plot's panels, top to bottom.
pub const PLOT_PANELS: [&str; 4] = ["loss", "learning rate", "gradient norm (before clipping)", "tokens/s"];

/// One panel's lines: name (for a legend), points `(step, value)`, colour.
type PanelLines = Vec<(&'static str, Vec<(f64, f64)>, RGBColor)>;

/// Draws a run's metrics into `path` (SVG): four panels sharing the step
/// axis, top to bottom: train and validation loss, the learning rate, the
/// global gradient norm and the speed in tokens/s. Nothing is drawn for a
/// run with no train step yet.
pub fn plot_metrics(metrics: &[Metric], path: &Path) -> Result<(), String> {
    let mut train = Vec::new();
    let (mut lr, mut grad_norm, mut speed) = (Vec::new(), Vec::new(), Vec::new());
    let mut val = Vec::new();
    for m in metrics {
        match *m {
            Metric::Train { step, loss, lr: rate, grad_norm: norm, tokens_per_s } => {
                let x = step as f64;
                train.push((x, loss));
                lr.push((x, rate));
                grad_norm.push((x, norm));
                speed.push((x, tokens_per_s));
            }
            Metric::Val { step, loss, .. } => val.push((step as f64, loss)),
        }
    }
    if train.is_empty() {
        return Ok(());
    }
    let max_step = train.iter().chain(&val).map(|p| p.0).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (900, 1100)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((PLOT_PANELS.len(), 1));
    let series: [PanelLines; 4] = [
        vec![("train", train, BLUE), ("validation", val, RED)],
        vec![("learning rate", lr, GREEN)],
        vec![("gradient norm", grad_norm, MAGENTA)],
        vec![("tokens/s", speed, BLACK)],
    ];
    let y_desc = ["cross-entropy", "lr", "‖g‖₂", "tokens per second"];
    for (i, (area, lines)) in panels.iter().zip(series).enumerate() {
        let y_range = padded_range(lines.iter().flat_map(|(_, points, _)| points.iter().map(|p| p.1)));
        let mut chart = ChartBuilder::on(area)
            .caption(PLOT_PANELS[i], ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..max_step, y_range)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("step").y_desc(y_desc[i]).draw().map_err(|e| err(&e))?;
        let several = lines.len() > 1;
        for (name, points, color) in lines {
            // A NaN or infinity (a diverging step) would bend the axes.
            let points: Vec<(f64, f64)> = points.into_iter().filter(|p| p.1.is_finite()).collect();
            if points.is_empty() {
                continue;
            }
            let drawn = chart.draw_series(LineSeries::new(points, &color)).map_err(|e| err(&e))?;
            if several {
                drawn.label(name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
        if several {
            chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))
}

/// The range of `values` (finite ones) with 5% room on each side, and
/// some width where they are all equal.
fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.05 * lo.abs().max(1e-12) };
    (lo - pad)..(hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_four_titled_panels_and_is_well_formed() {
        let mut metrics: Vec<Metric> = (1..=20)
            .map(|step| Metric::Train {
                step,
                loss: 4.0 / step as f64,
                lr: 1e-3 * (step as f64 / 20.0),
                grad_norm: if step == 7 { f64::NAN } else { 1.0 + step as f64 },
                tokens_per_s: 1000.0,
            })
            .collect();
        metrics.push(Metric::Val { step: 10, loss: 0.5, perplexity: 0.5f64.exp() });
        let dir = std::env::temp_dir().join(format!("scratchgpt-metrics-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LOSS_PLOT_FILE);
        plot_metrics(&metrics, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not XML: {e}"));
        let texts: Vec<&str> =
            doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
        for title in PLOT_PANELS.iter().chain(&["train", "validation"]) {
            assert_eq!(texts.iter().filter(|t| *t == title).count(), 1, "{title:?} in {texts:?}");
        }
        // Each series is a line of its own colour (the loss panel's two also
        // in its legend), the gradient norm's drawn though one step was NaN.
        let stroked = |colour: &str| {
            doc.descendants().filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(colour)).count()
        };
        let (blue, red, green, magenta) = ("#0000FF", "#FF0000", "#00FF00", "#FF00FF");
        assert_eq!([blue, red, green, magenta].map(stroked), [2, 2, 1, 1]);
        let gradient_line = doc
            .descendants()
            .find(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(magenta))
            .and_then(|n| n.attribute("points"))
            .unwrap();
        assert_eq!(gradient_line.split_whitespace().count(), 19, "20 steps, one NaN left out: {gradient_line}");
    }

    #[test]
    fn equal_values_still_get_a_range() {
        let r = padded_range([3.0, 3.0].into_iter());
        assert!(r.start < 3.0 && r.end > 3.0);
        assert_eq!(padded_range([f64::NAN].into_iter()), 0.0..1.0);
    }
}
