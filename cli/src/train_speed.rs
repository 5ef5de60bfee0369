//! This machine's training speed, remembered between commands.
//!
//! `bench train` on the CPU records the GFLOP/s it measured in a small JSON
//! file in the user's cache folder (`$XDG_CACHE_HOME/scratchgpt`, else
//! `~/.cache/scratchgpt`; `SCRATCHGPT_CACHE_DIR` overrides both), and
//! `info --train-tokens` reads it to turn a training run's FLOPs into time.
//! With nothing recorded, `info` measures a few steps of the `tiny` preset
//! instead. Recording is best effort: a cache that cannot be written is
//! skipped silently, since no result depends on it.

use std::path::PathBuf;
use std::time::Instant;

use autograd::loss::cross_entropy;
use autograd::nn::Module;
use autograd::optim::{AdamW, Optimizer};
use gpt::model::{GPTConfig, GPTModel};
use serde::{Deserialize, Serialize};
use tensor::{Generator, Tensor};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSpeed {
    pub gflops: f64,
    pub threads: usize,
    /// "bench train" when recorded by it, "brief" for `measure_briefly`.
    pub source: String,
}

fn cache_file() -> Option<PathBuf> {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = env("SCRATCHGPT_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("scratchgpt")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("scratchgpt")))?;
    Some(dir.join("train-speed.json"))
}

/// Remembers a `bench train` measurement (best effort).
pub fn record(gflops: f64, threads: usize) {
    let Some(path) = cache_file() else { return };
    let speed = TrainSpeed { gflops, threads, source: "bench train".into() };
    if let (Some(dir), Ok(json)) = (path.parent(), serde_json::to_vec_pretty(&speed)) {
        let _ = std::fs::create_dir_all(dir).and_then(|_| gpt::atomic::write_atomic(&path, &json));
    }
}

/// The last recorded measurement, if any.
pub fn last() -> Option<TrainSpeed> {
    let bytes = std::fs::read(cache_file()?).ok()?;
    serde_json::from_slice::<TrainSpeed>(&bytes).ok().filter(|s| s.gflops.is_finite() && s.gflops > 0.0)
}

/// Times two training steps of the `tiny` preset (batch 8 × 64 tokens)
/// after one warm-up step, the same measurement as `bench train`.
pub fn measure_briefly() -> TrainSpeed {
    let config = GPTConfig { drop_rate: 0.0, ..GPTConfig::preset("tiny").expect("tiny is a preset") };
    let (b, t) = (8, 64);
    let mut gen = Generator::seed(0);
    let mut model = GPTModel::new(config.clone(), &mut gen);
    model.train();
    let mut opt = AdamW::new(model.parameters(), 1e-4);
    let mut ids = || {
        let v: Vec<i64> = (0..b * t).map(|_| gen.below(config.vocab_size) as i64).collect();
        Tensor::from_vec(v, [b, t]).expect("b·t ids")
    };
    let mut best = f64::INFINITY;
    for step in 0..3 {
        let (x, y) = (ids(), ids());
        let start = Instant::now();
        opt.zero_grad();
        cross_entropy(&model.forward(&x), &y).backward();
        opt.step();
        if step > 0 {
            best = best.min(start.elapsed().as_secs_f64());
        }
    }
    let flops = (b * t) as f64 * config.train_flops_per_token(t);
    TrainSpeed { gflops: flops / best / 1e9, threads: rayon::current_num_threads(), source: "brief".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_speed_is_read_back() {
        let dir = std::env::temp_dir().join(format!("scratchgpt-speed-{}", std::process::id()));
        std::env::set_var("SCRATCHGPT_CACHE_DIR", &dir);
        record(42.5, 2);
        let speed = last().expect("recorded");
        assert_eq!((speed.gflops, speed.threads, speed.source.as_str()), (42.5, 2, "bench train"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
