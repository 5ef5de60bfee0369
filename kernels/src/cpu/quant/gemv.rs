//! Matrix-vector product against packed weights: y[n] = Σ_k x[k]·W[n, k].
//!
//! This is the whole cost of decoding one token: every weight is used
//! exactly once, so the time is the time to stream the weights from
//! memory. Rows are contiguous, so each output reads one contiguous run of
//! bytes; the outputs are split into blocks of rows over rayon's threads.
//! A block is one call (`PackedMatrix::rows_dot`, `rows_dot_quantized`):
//! SmolLM2-135M's rows are 576 weights, nine chunks of the integer kernel,
//! and a call, a dispatch and a check per row cost as much as a third of
//! them. Rows are read one after another, in memory order: reading four
//! rows side by side (to share x's loads and overlap their sums) was faster
//! with the weights in cache but slower streamed from memory, where four
//! interleaved streams defeat the hardware prefetcher.
//! Several matrices of the same input (q, k and v) are one product:
//! their rows are handed out together ([`gemv_shared_input`]).
//! Every output is one row's dot product in a fixed order (`cpu::dot_order`
//! for f16 and bf16, `int_dot`'s for int8 and int4, whose input row is
//! quantized to 8 bits once, here, for all rows), so the result does not
//! depend on the thread count.

use rayon::prelude::*;

use super::int_dot::{IntPath, QuantizedRow};
use super::Isa;
use super::PackedMatrix;

/// Below this many weights one thread does the whole product. A task is
/// cheap to hand out but costly to wait for when the other core is busy
/// (the caller stalls until the thread that took it is scheduled again),
/// so small products stay on the calling thread. At 2^18 SmolLM2-135M's
/// projections (576 × 576 and 1,536 × 576 weights) are shared and only
/// its key and value projections (192 × 576) are not.
const PARALLEL_MIN_WEIGHTS: usize = 1 << 18;

/// While a decoding pass keeps the threads awake (`cpu::awake`) the other
/// thread is polling, so handing it rows is cheap, and a product is also
/// shared from this many bytes of weights (2^16 f32 weights, 2^17 f16
/// ones): a tiny model's (256 × 768) then use both cores. Counted in
/// bytes, since a product's time is the time to read them: at 2^16
/// weights whatever the format, a 3.5M-parameter GPT-2 decoded 17% faster
/// in f32 (where `cpu::gemm` takes the same threshold) and 4% in f16, but
/// 11% slower in int4, whose products then took a few microseconds each.
/// It only ever lowers [`PARALLEL_MIN_WEIGHTS`]: 256 KiB alone would leave
/// SmolLM2-135M's int4 output projection (576 × 576, 186 KiB), shared
/// until now, to one thread (in an alternating run its int4 decoding did
/// not change beyond this machine's noise either way, 163–173 tokens/s).
const PARALLEL_MIN_BYTES_AWAKE: usize = 1 << 18;

/// Most weights per task when the product is split: tens of microseconds
/// of work, so a few dozen tasks balance two to sixteen cores.
const WEIGHTS_PER_TASK: usize = 1 << 18;

/// Fewest tasks per thread when the product is split, so that a product
/// of a few tasks' weights still keeps every thread busy to the end.
const TASKS_PER_THREAD: usize = 2;

/// y `[rows]` = W `[rows, cols]` · x `[cols]`.
pub fn gemv(isa: Isa, w: &PackedMatrix, x: &[f32], y: &mut [f32]) {
    gemv_shared_input(isa, x, &mut [(w, y)]);
}

/// y_i = W_i · x for several matrices of one input: a layer's query, key
/// and value projections, or its gate and up. Their rows are shared out
/// over the threads as one product, so the threads meet once for all of
/// them instead of once per matrix, and an int8 or int4 input is quantized
/// once. At SmolLM2-135M's size a matrix is a few hundred kilobytes, tens
/// of microseconds of streaming, and handing out and waiting for the tasks
/// of each one separately cost about an eighth of a token (f16, 2 threads:
/// 7.8 ms of products a token one matrix at a time, 6.4 shared). Every output is
/// still its own row's dot product, so the results are one `gemv` per
/// matrix, bit for bit.
pub fn gemv_shared_input(isa: Isa, x: &[f32], products: &mut [(&PackedMatrix, &mut [f32])]) {
    for (w, y) in products.iter() {
        assert_eq!(x.len(), w.cols, "gemv: x holds {} floats, the matrix has {} columns", x.len(), w.cols);
        assert_eq!(y.len(), w.rows, "gemv: y holds {} floats, the matrix has {} rows", y.len(), w.rows);
    }
    let integer = |w: &PackedMatrix| w.multiplies_in_integers();
    let (path, quantized) =
        (IntPath::for_isa(isa), products.iter().any(|(w, _)| integer(w)).then(|| QuantizedRow::new(x)));
    let fill = |w: &PackedMatrix, first: usize, block: &mut [f32]| match &quantized {
        Some(xq) if integer(w) => w.rows_dot_quantized(path, first, xq, block),
        _ => w.rows_dot(isa, first, x, block),
    };
    let weights: usize = products.iter().map(|(w, _)| w.rows * w.cols).sum();
    let shared = weights >= PARALLEL_MIN_WEIGHTS
        || (crate::cpu::awake::threads_are_awake()
            && products.iter().map(|(w, _)| w.weights.bytes()).sum::<usize>() >= PARALLEL_MIN_BYTES_AWAKE);
    if !shared {
        return products.iter_mut().for_each(|(w, y)| fill(w, 0, y));
    }
    // Blocks of consecutive rows, as many per thread over all the matrices
    // as one matrix of their rows would give.
    let all_rows: usize = products.iter().map(|(w, _)| w.rows).sum();
    let per_thread = all_rows.div_ceil(TASKS_PER_THREAD * rayon::current_num_threads());
    let mut blocks = Vec::new();
    for (w, y) in products.iter_mut() {
        let chunk = (WEIGHTS_PER_TASK / w.cols.max(1)).min(per_thread).max(1);
        blocks.extend(y.chunks_mut(chunk).enumerate().map(|(c, block)| (*w, c * chunk, block)));
    }
    blocks.into_par_iter().for_each(|(w, first, block)| fill(w, first, block));
}
