//! Training metrics: one JSON object per line in `metrics.jsonl` (easy to
//! load in anything), and the loss curves drawn as an SVG.

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

/// Draws train and validation loss against step into `path` (SVG).
pub fn plot_losses(metrics: &[Metric], path: &Path) -> Result<(), String> {
    let train: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| if let Metric::Train { step, loss, .. } = m { Some((*step as f64, *loss)) } else { None })
        .collect();
    let val: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| if let Metric::Val { step, loss, .. } = m { Some((*step as f64, *loss)) } else { None })
        .collect();
    if train.is_empty() {
        return Ok(());
    }
    let max_step = train.iter().chain(&val).map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) =
        train.iter().chain(&val).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("loss", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_step, (lo * 0.95)..(hi * 1.05))
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("step").y_desc("cross-entropy").draw().map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(train, &BLUE))
        .map_err(|e| err(&e))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if !val.is_empty() {
        chart
            .draw_series(LineSeries::new(val, &RED))
            .map_err(|e| err(&e))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
