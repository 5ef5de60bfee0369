//! Matmul throughput: the tensor-level `matmul` beside a raw
//! `matrixmultiply::sgemm` call on the same sizes.
//!
//! Throughput is reported in elements/s where one "element" is one
//! floating-point operation (2·m·k·n per product), so criterion's
//! `Gelem/s` reads as GFLOP/s. Variants per shape:
//! - `raw_sgemm`: one call into matrixmultiply, single-threaded, into a
//!   reused output buffer; `raw_sgemm_new_buffer`: the same into a freshly
//!   allocated one, which is what any op returning a new tensor pays;
//! - `tensor`: `Tensor::matmul`, which splits large products across the
//!   rayon pool. Run once as is (all cores) and once with
//!   `RAYON_NUM_THREADS=1`, where `tensor` against `raw_sgemm` measures our
//!   overhead (layout handling, output allocation) on one thread.
//! Transposed operands (`x·Wᵀ`, `Xᵀ·G`) are passed as strides, never copied.
//!
//! Run: `cargo bench --bench matmul` and `RAYON_NUM_THREADS=1 cargo bench --bench matmul`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scratchgpt::tensor::{Generator, Tensor};

struct Case {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    /// A is stored transposed ([k, m]) and read through `.t()`.
    a_t: bool,
    /// B is stored transposed ([n, k]) and read through `.t()`.
    b_t: bool,
}

const fn case(name: &'static str, m: usize, k: usize, n: usize, a_t: bool, b_t: bool) -> Case {
    Case { name, m, k, n, a_t, b_t }
}

const CASES: &[Case] = &[
    case("square", 256, 256, 256, false, false),
    case("square", 512, 512, 512, false, false),
    case("square", 1024, 1024, 1024, false, false),
    case("square", 2048, 2048, 2048, false, false),
    // GPT-2 small MLP, 256 tokens: forward x·W, backward dX = G·Wᵀ, dW = Xᵀ·G.
    case("mlp_fwd", 256, 768, 3072, false, false),
    case("mlp_bwd_dx_Bt", 256, 3072, 768, false, true),
    case("mlp_bwd_dw_At", 768, 256, 3072, true, false),
    // The LM head: hidden states times the tied embedding, transposed.
    case("lm_head_Bt", 256, 768, 50304, false, true),
];

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
    for c in CASES {
        let (a, b) = operands(c);
        let flops = 2 * c.m * c.k * c.n;
        let id = format!("{}_{}x{}x{}", c.name, c.m, c.k, c.n);
        group.throughput(Throughput::Elements(flops as u64));
        let mut out = vec![0.0f32; c.m * c.n];
        group
            .bench_function(BenchmarkId::new("raw_sgemm", &id), |bch| bch.iter(|| raw_sgemm(&a, &b, out.as_mut_ptr())));
        // The same call into a fresh buffer each time, as an op producing a
        // new tensor must: separates the cost of new memory from ours.
        group.bench_function(BenchmarkId::new("raw_sgemm_new_buffer", &id), |bch| {
            bch.iter(|| {
                let mut fresh = Vec::<f32>::with_capacity(c.m * c.n);
                raw_sgemm(&a, &b, fresh.as_mut_ptr());
                // SAFETY: sgemm has written all m·n elements.
                unsafe { fresh.set_len(c.m * c.n) };
                fresh
            })
        });
        group.bench_function(BenchmarkId::new("tensor", &id), |bch| bch.iter(|| a.matmul(&b)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
