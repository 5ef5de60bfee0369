//! Matrix multiplication: where a GPT's time goes, and why a GEMM is not a
//! triple loop.
//!
//! 1. Where the FLOPs go: every product a gpt2-small training step runs
//!    (`GPTConfig::linear_products`), three per linear layer, and their share.
//! 2. The same 512×512×512 product three ways: the textbook i-j-p loop, the
//!    i-p-j loop (the inner loop walks rows of B and C in memory order, so
//!    it vectorises), and `Tensor::matmul` (packed panels, a 12×32 register
//!    tile, both cores). All three agree to rounding; the speeds differ by
//!    two orders of magnitude.
//!
//! Run: `cargo run --release --example gemm`

use std::time::Instant;

use scratchgpt::gpt::model::GPTConfig;
use scratchgpt::prelude::*;

/// C = A·B by the definition: each C[i][j] a dot product down a column of
/// B, which strides through memory n floats at a time.
fn textbook(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..n {
                sum += a[i * n + p] * b[p * n + j];
            }
            c[i * n + j] = sum;
        }
    }
    c
}

/// The loops swapped: row i of C += A[i][p] · row p of B. Same arithmetic,
/// but the inner loop reads and writes contiguous rows.
fn row_by_row(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        let c_row = &mut c[i * n..(i + 1) * n];
        for p in 0..n {
            let a_ip = a[i * n + p];
            for (c, &b) in c_row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *c += a_ip * b;
            }
        }
    }
    c
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

fn main() {
    // 1. A training step's products, gpt2-small, batch 4 × context 64.
    let config = GPTConfig::preset("gpt2-small").expect("preset");
    let products = config.linear_products(256);
    let total: f64 = products.iter().map(|p| p.flops() * p.per_step as f64).sum();
    println!("gpt2-small, 256 tokens: {:.0} GFLOP of matrix products per step", total / 1e9);
    for p in &products {
        let share = p.flops() * p.per_step as f64 / total;
        println!(
            "  {:<12} [{:>5}×{:>5}]·[{:>5}×{:>5}] ×{:<2} {:>5.1}%",
            p.name,
            p.m,
            p.k,
            p.k,
            p.n,
            p.per_step,
            share * 100.0
        );
    }
    let head: f64 = products.iter().filter(|p| p.name.starts_with("lm_head")).map(|p| p.flops()).sum();
    println!("  the tied LM head alone: {:.0}%\n", head / total * 100.0);

    // 2. One product three ways.
    let n = 512;
    let mut gen = Generator::seed(0);
    let (a, b) = (Tensor::randn([n, n], &mut gen), Tensor::randn([n, n], &mut gen));
    let (av, bv) = (a.to_vec::<f32>(), b.to_vec::<f32>());
    let flops = 2.0 * (n * n * n) as f64;
    let (slow, t_slow) = timed(|| textbook(&av, &bv, n));
    let (rows, t_rows) = timed(|| row_by_row(&av, &bv, n));
    drop(a.matmul(&b)); // first call: thread pool start-up, packing buffers
    let (fast, t_fast) = timed(|| a.matmul(&b).to_vec::<f32>());
    let max_diff = |x: &[f32]| x.iter().zip(&fast).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    println!("C = A·B, {n}×{n}×{n} ({:.2} GFLOP):", flops / 1e9);
    println!("  textbook i-j-p loop   {:>8.1} ms  {:>6.1} GFLOP/s", t_slow * 1e3, flops / t_slow / 1e9);
    println!("  i-p-j (row by row)    {:>8.1} ms  {:>6.1} GFLOP/s", t_rows * 1e3, flops / t_rows / 1e9);
    println!("  Tensor::matmul        {:>8.1} ms  {:>6.1} GFLOP/s", t_fast * 1e3, flops / t_fast / 1e9);
    println!(
        "  largest difference from matmul: {:.1e} and {:.1e} (summation order only)",
        max_diff(&slow),
        max_diff(&rows)
    );
    assert!(max_diff(&slow) < 1e-2 && max_diff(&rows) < 1e-2, "the three products must agree");
}
