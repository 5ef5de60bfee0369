//! Matmul throughput: our GEMM beside the `matrixmultiply` crate on the
//! same sizes, squares and every product of a GPT-2 small training step.
//!
//! Throughput is reported in elements/s where one "element" is one
//! floating-point operation (2·m·k·n per product), so criterion's
//! `Gelem/s` reads as GFLOP/s. Variants per shape:
//! - `tensor`: `Tensor::matmul`, our packed AVX-512 kernel (where the CPU has
//!   it) with the product split across the rayon pool;
//! - `matrixmultiply`: one single-threaded `matrixmultiply::sgemm` call into a
//!   reused buffer, the library kernel ours replaced (and still the fallback
//!   without AVX-512). With `RAYON_NUM_THREADS=1` the two are like for like.
//!
//! Transposed operands (`x·Wᵀ`, `dYᵀ·x`) are passed as strides, never copied.
//! The GPT-2 shapes are `GPTConfig::linear_products` for 256 tokens (batch 4
//! × context 64): the qkv, attention-output, MLP-up, MLP-down and LM-head
//! layers' forward `y`, and backward `dx` and `dW`. The comparison with
//! OpenBLAS on the same shapes is `scripts/gemm-vs-openblas.sh`.
//!
//! Run: `cargo bench --bench matmul` and `RAYON_NUM_THREADS=1 cargo bench --bench matmul`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scratchgpt::gpt::model::GPTConfig;
use scratchgpt::tensor::{Generator, Tensor};

struct Case {
    name: String,
    m: usize,
    k: usize,
    n: usize,
    /// A is stored transposed ([k, m]) and read through `.t()`.
    a_t: bool,
    /// B is stored transposed ([n, k]) and read through `.t()`.
    b_t: bool,
}

fn cases() -> Vec<Case> {
    let squares =
        [256, 512, 1024, 2048].map(|s| Case { name: "square".into(), m: s, k: s, n: s, a_t: false, b_t: false });
    let gpt2 = GPTConfig::preset("gpt2-small").expect("preset").linear_products(256).into_iter().map(|p| Case {
        name: p.name,
        m: p.m,
        k: p.k,
        n: p.n,
        a_t: p.a_transposed,
        b_t: p.b_transposed,
    });
    squares.into_iter().chain(gpt2).collect()
}

fn operands(c: &Case) -> (Tensor, Tensor) {
    let mut gen = Generator::seed(0);
    let a = if c.a_t { Tensor::randn([c.k, c.m], &mut gen).t() } else { Tensor::randn([c.m, c.k], &mut gen) };
    let b = if c.b_t { Tensor::randn([c.n, c.k], &mut gen).t() } else { Tensor::randn([c.k, c.n], &mut gen) };
    (a, b)
}

/// C = A·B into `out`, which must hold m·n elements; with β = 0 they may be
/// uninitialised, as sgemm writes each before reading any.
fn raw_sgemm(a: &Tensor, b: &Tensor, out: *mut f32) {
    let (m, k, n) = (a.dims()[0], a.dims()[1], b.dims()[1]);
    let (sa, sb) = (a.strides(), b.strides());
    // SAFETY: the strides describe the tensors' own buffers, which hold
    // every element they index; `out` points at a separate m·n buffer.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.storage_slice::<f32>().as_ptr(),
            sa[0] as isize,
            sa[1] as isize,
            b.storage_slice::<f32>().as_ptr(),
            sb[0] as isize,
            sb[1] as isize,
            0.0,
            out,
            n as isize,
            1,
        )
    }
}

fn bench(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("matmul");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(2));
    for c in cases() {
        let (a, b) = operands(&c);
        let flops = 2 * c.m * c.k * c.n;
        let id = format!("{}_{}x{}x{}", c.name, c.m, c.k, c.n);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(BenchmarkId::new("tensor", &id), |bch| bch.iter(|| a.matmul(&b)));
        let mut out = vec![0.0f32; c.m * c.n];
        group.bench_function(BenchmarkId::new("matrixmultiply", &id), |bch| {
            bch.iter(|| raw_sgemm(&a, &b, out.as_mut_ptr()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
