//! `scratchgpt bench gemm`: the matrix products of a training step, timed
//! one by one.
//!
//! For a model shape and `--tokens` rows (batch·context), every linear
//! layer's forward y = x·Wᵀ and backward dx = dY·W, dW = dYᵀ·x
//! (`GPTConfig::linear_products`) runs through `Tensor::matmul` with the
//! operands laid out as training lays them out (transposes are strides).
//! Each reports the median time and GFLOP/s (2·m·k·n per product).
//! `scripts/gemm-vs-openblas.sh` runs this beside numpy's OpenBLAS on the
//! same shapes and prints the ratios.

use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;
use tensor::{Generator, Tensor};

use super::bench::{median, with_threads, ModelShape, MAX_TOKENS};
use crate::common::{outln, print_json};

#[derive(clap::Args)]
pub struct GemmArgs {
    #[command(flatten)]
    shape: ModelShape,
    /// Rows of every product: batch × context tokens.
    #[arg(long, default_value_t = 256)]
    tokens: usize,
    /// Timed repetitions per product.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct GemmReport {
    name: String,
    m: usize,
    k: usize,
    n: usize,
    a_transposed: bool,
    b_transposed: bool,
    ms: f64,
    gflops: f64,
}

/// A `[rows, cols]` operand, stored transposed (`[cols, rows]`, read
/// through `.t()`) when `transposed`.
fn operand(rows: usize, cols: usize, transposed: bool, gen: &mut Generator) -> Tensor {
    if transposed {
        Tensor::randn([cols, rows], gen).t()
    } else {
        Tensor::randn([rows, cols], gen)
    }
}

pub fn run(args: GemmArgs) -> Result<i32> {
    if args.tokens == 0 || args.repeats == 0 {
        bail!("--tokens and --repeats must be at least 1");
    }
    if args.tokens > MAX_TOKENS {
        bail!("--tokens must be at most {MAX_TOKENS}");
    }
    let config = args.shape.config(1)?;
    let reports = with_threads(args.threads, || {
        let mut gen = Generator::seed(0);
        let mut reports = Vec::new();
        for p in config.linear_products(args.tokens) {
            let a = operand(p.m, p.k, p.a_transposed, &mut gen);
            let b = operand(p.k, p.n, p.b_transposed, &mut gen);
            // One untimed product first: page faults on the output and the
            // buffer pool's first fill belong to no steady state.
            drop(a.matmul(&b));
            let times: Vec<f64> = (0..args.repeats)
                .map(|_| {
                    let start = Instant::now();
                    let c = a.matmul(&b);
                    let secs = start.elapsed().as_secs_f64();
                    drop(c);
                    secs
                })
                .collect();
            let secs = median(times);
            reports.push(GemmReport {
                gflops: p.flops() / secs / 1e9,
                ms: secs * 1e3,
                name: p.name,
                m: p.m,
                k: p.k,
                n: p.n,
                a_transposed: p.a_transposed,
                b_transposed: p.b_transposed,
            });
        }
        Ok(reports)
    })?;
    if args.json {
        print_json(&reports)?;
    } else {
        outln!("{:<14} {:>6} {:>6} {:>6}  {:>9} {:>8}", "product", "m", "k", "n", "ms", "GFLOP/s")?;
        for r in &reports {
            outln!("{:<14} {:>6} {:>6} {:>6}  {:>9.2} {:>8.1}", r.name, r.m, r.k, r.n, r.ms, r.gflops)?;
        }
    }
    Ok(0)
}
