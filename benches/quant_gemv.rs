//! Decoding's matrix-vector products against int8 and int4 weights, two
//! ways, one thread: the f32 input against weights widened to f32 one by one
//! (`PackedMatrix::row_dot`, the kernels of `quant/int8.rs` and
//! `quant/int4.rs`), and the input quantized to 8 bits with integer dot
//! products (`quant/int_dot.rs`, all rows in one call as `gemv` runs them;
//! the input's quantization is inside the timing).
//!
//! Shapes are GPT-2 small's per-token products: qkv `[2304, 768]`,
//! attention output `[768, 768]`, MLP up `[3072, 768]` and down
//! `[768, 3072]`. Throughput is in weights per second.
//!
//! A second group, `quant_prompt`, times a prompt's product: M input rows
//! against the MLP up weights `[3072, 768]`, one thread, three ways: M
//! matrix-vector passes (`gemv`, small M only), the rows rounded to 8 bits
//! then decoded tiles through the f32 GEMM (`tiled`, the older route), and
//! the integer tiles of `int_tiled`. Throughput is in multiply-adds per
//! second.
//!
//! Run: `cargo bench --bench quant_gemv`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

use scratchgpt::kernels::cpu::quant::int_dot::{IntPath, QuantizedRow};
use scratchgpt::kernels::cpu::quant::{gemv, int_tiled, tiled, Isa, PackedMatrix, PackedWeights, INT4_GROUP};

/// A fixed pseudo-random byte stream (no dependency on a generator crate).
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as u8
        })
        .collect()
}

/// Pseudo-random int8 and int4 weights `[rows, cols]`: int8 values in
/// [-127, 127] with one scale per row, int4 bytes with an f16 scale
/// (0x2000) per group.
struct RandomWeights {
    rows: usize,
    cols: usize,
    int8_values: Vec<i8>,
    int8_scales: Vec<f32>,
    int4_packed: Vec<u8>,
    int4_scales: Vec<u16>,
}

impl RandomWeights {
    fn new(rows: usize, cols: usize) -> Self {
        RandomWeights {
            rows,
            cols,
            int8_values: bytes(rows * cols, 2).iter().map(|&b| ((b % 255) as i16 - 127) as i8).collect(),
            int8_scales: vec![0.01f32; rows],
            int4_packed: bytes(rows * cols / 2, 3),
            int4_scales: vec![0x2000; rows * cols / INT4_GROUP],
        }
    }

    /// The same weights read in place as int8 and as int4.
    fn matrices(&self) -> [(&'static str, PackedMatrix<'_>); 2] {
        let (rows, cols) = (self.rows, self.cols);
        [
            (
                "int8",
                PackedMatrix::new(
                    rows,
                    cols,
                    PackedWeights::Int8 { values: &self.int8_values, scales: &self.int8_scales },
                ),
            ),
            (
                "int4",
                PackedMatrix::new(
                    rows,
                    cols,
                    PackedWeights::Int4 { packed: &self.int4_packed, scales: &self.int4_scales },
                ),
            ),
        ]
    }
}

fn bench(c: &mut Criterion) {
    let isa = Isa::detect();
    let path = IntPath::for_isa(isa);
    let mut group = c.benchmark_group("quant_gemv");
    for (name, rows, cols) in
        [("qkv", 2304, 768), ("attn_out", 768, 768), ("mlp_up", 3072, 768), ("mlp_down", 768, 3072)]
    {
        let x: Vec<f32> = bytes(cols, 1).iter().map(|&b| b as f32 / 128.0 - 1.0).collect();
        let weights = RandomWeights::new(rows, cols);
        let matrices = weights.matrices();
        group.throughput(Throughput::Elements((rows * cols) as u64));
        let mut y = vec![0.0f32; rows];
        for (format, w) in &matrices {
            group.bench_function(BenchmarkId::new(format!("{format}/f32_input"), name), |b| {
                b.iter(|| {
                    for (n, out) in y.iter_mut().enumerate() {
                        *out = w.row_dot(isa, n, &x);
                    }
                })
            });
            group.bench_function(BenchmarkId::new(format!("{format}/int8_input"), name), |b| {
                b.iter(|| {
                    let q = QuantizedRow::new(&x);
                    w.rows_dot_quantized(path, 0, &q, &mut y);
                })
            });
        }
    }
    group.finish();
}

fn bench_prompt(c: &mut Criterion) {
    let isa = Isa::detect();
    let path = IntPath::for_isa(isa);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut group = c.benchmark_group("quant_prompt");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let (rows, cols) = (3072, 768);
    let weights = RandomWeights::new(rows, cols);
    let matrices = weights.matrices();
    for m in [4, 8, 16, 64, 512] {
        let x: Vec<f32> = bytes(m * cols, 1).iter().map(|&b| b as f32 / 128.0 - 1.0).collect();
        let mut y = vec![0.0f32; m * rows];
        group.throughput(Throughput::Elements((m * rows * cols) as u64));
        for (format, w) in &matrices {
            if m <= 16 {
                group.bench_function(BenchmarkId::new(format!("{format}/gemv"), m), |b| {
                    b.iter(|| {
                        pool.install(|| {
                            for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(rows)) {
                                gemv::gemv(isa, w, xr, yr);
                            }
                        })
                    })
                });
            }
            group.bench_function(BenchmarkId::new(format!("{format}/tiled"), m), |b| {
                b.iter(|| {
                    pool.install(|| {
                        let mut rounded = vec![0.0f32; x.len()];
                        for (xr, out) in x.chunks_exact(cols).zip(rounded.chunks_exact_mut(cols)) {
                            QuantizedRow::new(xr).dequantize_into(out);
                        }
                        tiled::matmul(w, &rounded, m, &mut y);
                    })
                })
            });
            group.bench_function(BenchmarkId::new(format!("{format}/int_tiled"), m), |b| {
                b.iter(|| {
                    pool.install(|| {
                        let quantized: Vec<QuantizedRow> = x.chunks_exact(cols).map(QuantizedRow::new).collect();
                        int_tiled::matmul(path, w, &quantized, &mut y);
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, bench_prompt);
criterion_main!(benches);
